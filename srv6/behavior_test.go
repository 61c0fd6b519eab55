package srv6

import (
	"strings"
	"testing"
)

// The registry as RFC 8986 §10.2.2 and IANA's "SRv6 Endpoint Behaviors"
// list it, copied by hand so a typo in behavior.go cannot hide.
var registry = []struct {
	code uint16
	name string
	b    Behavior
}{
	{1, "End", End},
	{2, "End with PSP", EndPSP},
	{3, "End with USP", EndUSP},
	{4, "End with PSP & USP", EndPSPUSP},
	{5, "End.X", EndX},
	{6, "End.X with PSP", EndXPSP},
	{7, "End.X with USP", EndXUSP},
	{8, "End.X with PSP & USP", EndXPSPUSP},
	{9, "End.T", EndT},
	{10, "End.T with PSP", EndTPSP},
	{11, "End.T with USP", EndTUSP},
	{12, "End.T with PSP & USP", EndTPSPUSP},
	{14, "End.B6.Encaps", EndB6Encaps},
	{15, "End.BM", EndBM},
	{16, "End.DX6", EndDX6},
	{17, "End.DX4", EndDX4},
	{18, "End.DT6", EndDT6},
	{19, "End.DT4", EndDT4},
	{20, "End.DT46", EndDT46},
	{21, "End.DX2", EndDX2},
	{22, "End.DX2V", EndDX2V},
	{23, "End.DT2U", EndDT2U},
	{24, "End.DT2M", EndDT2M},
	{27, "End.B6.Encaps.Red", EndB6EncapsRed},
	{28, "End with USD", EndUSD},
	{29, "End with PSP & USD", EndPSPUSD},
	{30, "End with USP & USD", EndUSPUSD},
	{31, "End with PSP, USP & USD", EndPSPUSPUSD},
	{32, "End.X with USD", EndXUSD},
	{33, "End.X with PSP & USD", EndXPSPUSD},
	{34, "End.X with USP & USD", EndXUSPUSD},
	{35, "End.X with PSP, USP & USD", EndXPSPUSPUSD},
	{36, "End.T with USD", EndTUSD},
	{37, "End.T with PSP & USD", EndTPSPUSD},
	{38, "End.T with USP & USD", EndTUSPUSD},
	{39, "End.T with PSP, USP & USD", EndTPSPUSPUSD},
	{0xFFFF, "Opaque", Opaque},
}

func TestBehaviorCodePoints(t *testing.T) {
	for _, r := range registry {
		if uint16(r.b) != r.code {
			t.Errorf("%s = %d, want IANA code point %d", r.name, uint16(r.b), r.code)
		}
		if got := r.b.String(); got != r.name {
			t.Errorf("Behavior(%d).String() = %q, want %q", r.code, got, r.name)
		}
		if !r.b.Known() {
			t.Errorf("Behavior(%d).Known() = false", r.code)
		}
		for _, spelling := range []string{r.name, strings.ToUpper(r.name), strings.ToLower(r.name), " " + strings.ReplaceAll(r.name, " ", "  ") + " "} {
			b, err := ParseBehavior(spelling)
			if err != nil || b != r.b {
				t.Errorf("ParseBehavior(%q) = %v, %v; want %v", spelling, b, err, r.b)
			}
		}
	}
	if len(behaviorNames) != len(registry) {
		t.Errorf("behavior.go names %d code points, the registry table here %d", len(behaviorNames), len(registry))
	}
}

func TestParseBehaviorAliasesAndErrors(t *testing.T) {
	for _, s := range []string{"BSID", "bsid"} {
		if b, err := ParseBehavior(s); err != nil || b != EndB6Encaps {
			t.Errorf("ParseBehavior(%q) = %v, %v; want End.B6.Encaps", s, b, err)
		}
	}
	for _, s := range []string{"", "End.DT5", "End.B6", "Reserved", "Behavior(13)", "EndDT4"} {
		if b, err := ParseBehavior(s); err == nil {
			t.Errorf("ParseBehavior(%q) = %v, want an error", s, b)
		} else if !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("ParseBehavior(%q) error %q does not name the value", s, err)
		}
	}
}

func TestBehaviorUnnamed(t *testing.T) {
	for _, c := range []uint16{0, 13, 25, 26, 40, 0x8000} {
		b := Behavior(c)
		if b.Known() {
			t.Errorf("Behavior(%d).Known() = true", c)
		}
		if b.String() == "" || strings.HasPrefix(b.String(), "End") {
			t.Errorf("Behavior(%d).String() = %q", c, b.String())
		}
	}
}
