package srv6

import (
	"fmt"
	"strings"
)

// Behavior is an SRv6 endpoint behaviour, valued by its IANA code point
// ("SRv6 Endpoint Behaviors" registry, RFC 8986 §10.2). The code point is
// what control-plane protocols (BGP, RFC 9252) carry; it is never encoded in
// the function bits of a SID.
type Behavior uint16

// Code points from the IANA registry, checked against RFC 8986 §10.2.2 and
// the registry as of 2025 (13, 25 and 26 are not RFC 8986 behaviours and are
// left out).
const (
	End            Behavior = 1
	EndPSP         Behavior = 2
	EndUSP         Behavior = 3
	EndPSPUSP      Behavior = 4
	EndX           Behavior = 5
	EndXPSP        Behavior = 6
	EndXUSP        Behavior = 7
	EndXPSPUSP     Behavior = 8
	EndT           Behavior = 9
	EndTPSP        Behavior = 10
	EndTUSP        Behavior = 11
	EndTPSPUSP     Behavior = 12
	EndB6Encaps    Behavior = 14
	EndBM          Behavior = 15
	EndDX6         Behavior = 16
	EndDX4         Behavior = 17
	EndDT6         Behavior = 18
	EndDT4         Behavior = 19
	EndDT46        Behavior = 20
	EndDX2         Behavior = 21
	EndDX2V        Behavior = 22
	EndDT2U        Behavior = 23
	EndDT2M        Behavior = 24
	EndB6EncapsRed Behavior = 27
	EndUSD         Behavior = 28
	EndPSPUSD      Behavior = 29
	EndUSPUSD      Behavior = 30
	EndPSPUSPUSD   Behavior = 31
	EndXUSD        Behavior = 32
	EndXPSPUSD     Behavior = 33
	EndXUSPUSD     Behavior = 34
	EndXPSPUSPUSD  Behavior = 35
	EndTUSD        Behavior = 36
	EndTPSPUSD     Behavior = 37
	EndTUSPUSD     Behavior = 38
	EndTPSPUSPUSD  Behavior = 39
	// Opaque is reserved in the registry; FRR sends it when it reflects a
	// route and hides the behaviour.
	Opaque Behavior = 0xFFFF
)

// behaviorNames holds the registry's own spelling of every named code point.
var behaviorNames = map[Behavior]string{
	End:            "End",
	EndPSP:         "End with PSP",
	EndUSP:         "End with USP",
	EndPSPUSP:      "End with PSP & USP",
	EndX:           "End.X",
	EndXPSP:        "End.X with PSP",
	EndXUSP:        "End.X with USP",
	EndXPSPUSP:     "End.X with PSP & USP",
	EndT:           "End.T",
	EndTPSP:        "End.T with PSP",
	EndTUSP:        "End.T with USP",
	EndTPSPUSP:     "End.T with PSP & USP",
	EndB6Encaps:    "End.B6.Encaps",
	EndBM:          "End.BM",
	EndDX6:         "End.DX6",
	EndDX4:         "End.DX4",
	EndDT6:         "End.DT6",
	EndDT4:         "End.DT4",
	EndDT46:        "End.DT46",
	EndDX2:         "End.DX2",
	EndDX2V:        "End.DX2V",
	EndDT2U:        "End.DT2U",
	EndDT2M:        "End.DT2M",
	EndB6EncapsRed: "End.B6.Encaps.Red",
	EndUSD:         "End with USD",
	EndPSPUSD:      "End with PSP & USD",
	EndUSPUSD:      "End with USP & USD",
	EndPSPUSPUSD:   "End with PSP, USP & USD",
	EndXUSD:        "End.X with USD",
	EndXPSPUSD:     "End.X with PSP & USD",
	EndXUSPUSD:     "End.X with USP & USD",
	EndXPSPUSPUSD:  "End.X with PSP, USP & USD",
	EndTUSD:        "End.T with USD",
	EndTPSPUSD:     "End.T with PSP & USD",
	EndTUSPUSD:     "End.T with USP & USD",
	EndTPSPUSPUSD:  "End.T with PSP, USP & USD",
	Opaque:         "Opaque",
}

// behaviorByName maps a normalised name (see normBehavior) to its code point.
var behaviorByName = func() map[string]Behavior {
	m := make(map[string]Behavior, len(behaviorNames)+1)
	for b, n := range behaviorNames {
		m[normBehavior(n)] = b
	}
	// Q.Suppl.79 writes "BSID" after a binding SID; a binding SID is End.B6.Encaps.
	m[normBehavior("BSID")] = EndB6Encaps
	return m
}()

// normBehavior folds case and collapses runs of spaces so "end  WITH psp"
// finds "End with PSP".
func normBehavior(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// String returns the registry name, or "Behavior(N)" for an unnamed code point.
func (b Behavior) String() string {
	if n, ok := behaviorNames[b]; ok {
		return n
	}
	return fmt.Sprintf("Behavior(%d)", uint16(b))
}

// Known reports whether b is a named code point. The zero value (reserved,
// "not to be allocated") is not, so it can mean "no behaviour given".
func (b Behavior) Known() bool {
	_, ok := behaviorNames[b]
	return ok
}

// ParseBehavior accepts a registry name ("End.DT4", "End with PSP"),
// case-insensitively. "BSID" (the word Q.Suppl.79 writes after a binding SID)
// means End.B6.Encaps.
func ParseBehavior(s string) (Behavior, error) {
	if b, ok := behaviorByName[normBehavior(s)]; ok {
		return b, nil
	}
	return 0, fmt.Errorf("unknown SRv6 behaviour %s", clip(s))
}
