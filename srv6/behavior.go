package srv6

import (
	"fmt"
	"strings"
)

// Behavior is an SRv6 endpoint behaviour, valued by its IANA code point
// ("SRv6 Endpoint Behaviors" registry, RFC 8986 §10.2).
type Behavior uint16

// Code points from the IANA registry.
const (
	End            Behavior = 1
	EndX           Behavior = 5
	EndT           Behavior = 9
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
	Opaque         Behavior = 0xFFFF
)

var behaviorNames = map[Behavior]string{
	End:            "End",
	EndX:           "End.X",
	EndT:           "End.T",
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
	Opaque:         "Opaque",
}

// String returns the RFC 8986 name, or "Behavior(N)" for an unnamed code point.
func (b Behavior) String() string {
	if n, ok := behaviorNames[b]; ok {
		return n
	}
	return fmt.Sprintf("Behavior(%d)", uint16(b))
}

// ParseBehavior accepts an RFC 8986 name, case-insensitively. "BSID" (the
// word Q.Suppl.79 writes after a binding SID) means End.B6.Encaps.
func ParseBehavior(s string) (Behavior, error) {
	if strings.EqualFold(s, "BSID") {
		return EndB6Encaps, nil
	}
	for b, n := range behaviorNames {
		if strings.EqualFold(n, s) {
			return b, nil
		}
	}
	return 0, fmt.Errorf("unknown SRv6 behaviour %q", s)
}
