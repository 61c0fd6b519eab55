package srv6

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseSID(t *testing.T) {
	tests := []struct {
		in       string
		addr     string
		behavior Behavior
		out      string // String() of the result
	}{
		// Q.Suppl.79's own examples.
		{"2001:0C68:3000::1:End", "2001:c68:3000::1", End, "2001:c68:3000::1:End"},
		{"2001:0C68:5000::1:BSID", "2001:c68:5000::1", EndB6Encaps, "2001:c68:5000::1:End.B6.Encaps"},
		{"2001:db8::1:End.DT4", "2001:db8::1", EndDT4, "2001:db8::1:End.DT4"},
		{"2001:db8::1:end.dt46", "2001:db8::1", EndDT46, "2001:db8::1:End.DT46"},
		{"2001:db8::1:End with PSP, USP & USD", "2001:db8::1", EndPSPUSPUSD, "2001:db8::1:End with PSP, USP & USD"},
		// The behaviour word after "::" shares its colon.
		{"2001:db8:1205:4::End.DT4", "2001:db8:1205:4::", EndDT4, "2001:db8:1205:4::End.DT4"},
		{"2001:db8::End", "2001:db8::", End, "2001:db8::End"},
		// Plain addresses, including ones whose last group is hex that looks like a word.
		{"2001:db8::1", "2001:db8::1", 0, "2001:db8::1"},
		{"2001:DB8:0:0:0:0:0:1", "2001:db8::1", 0, "2001:db8::1"},
		{"2001:db8::1:dead", "2001:db8::1:dead", 0, "2001:db8::1:dead"},
		{"2001:db8::Add", "2001:db8::add", 0, "2001:db8::add"},
		{"2001:db8::", "2001:db8::", 0, "2001:db8::"},
		{"2001:db8::1:192.0.2.1", "2001:db8::1:c000:201", 0, "2001:db8::1:c000:201"},
		{"  2001:db8::1:End  ", "2001:db8::1", End, "2001:db8::1:End"},
		{"::1", "::1", 0, "::1"},
		{"fe80::1:End.X", "fe80::1", EndX, "fe80::1:End.X"},
	}
	for _, tt := range tests {
		s, err := ParseSID(tt.in)
		if err != nil {
			t.Errorf("ParseSID(%q): %v", tt.in, err)
			continue
		}
		if s.Addr != netip.MustParseAddr(tt.addr) || s.Behavior != tt.behavior {
			t.Errorf("ParseSID(%q) = %s %v, want %s %v", tt.in, s.Addr, s.Behavior, tt.addr, tt.behavior)
		}
		if got := s.String(); got != tt.out {
			t.Errorf("ParseSID(%q).String() = %q, want %q", tt.in, got, tt.out)
		}
		if again, err := ParseSID(s.String()); err != nil || again != s {
			t.Errorf("ParseSID(%q) = %+v, %v; want %+v", s.String(), again, err, s)
		}
	}
}

func TestParseSIDErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty SID"},
		{"   ", "empty SID"},
		{"192.0.2.1", `"192.0.2.1" is an IPv4 address`},
		{"::ffff:192.0.2.1", `"::ffff:192.0.2.1" is an IPv4-mapped address`},
		{"::ffff:192.0.2.1:End", `is an IPv4-mapped address`},
		{"fe80::1%eth0", `"fe80::1%eth0" has a zone`},
		{"fe80::1%eth0:End", `has a zone`},
		{"::", `"::" is the unspecified address`},
		{"::End", `"::End" is the unspecified address`},
		{"ff02::1", `"ff02::1" is a multicast address`},
		{"2001:db8::1:Foo", `SID "2001:db8::1:Foo": unknown SRv6 behaviour "Foo"`},
		{"2001:db8::1:End.DT5", `unknown SRv6 behaviour "End.DT5"`},
		{"2001:db8::1:", `"2001:db8::1:" is not an IPv6 address`},
		{"2001:db8::1:12345", `"2001:db8::1:12345" is not an IPv6 address`},
		{"2001:db8::1:abcde", `"2001:db8::1:abcde" is not an IPv6 address`},
		{"2001:db8::1:g", `unknown SRv6 behaviour "g"`},
		{"2001:db8::g:1", `"2001:db8::g:1" is not an IPv6 address`},
		{"2001:db8::g:End", `address "2001:db8::g" is not an IPv6 address`},
		{"2001:db8:::End", `address "2001:db8:::" is not an IPv6 address`},
		{"2001:db8::1/64", `is not an IPv6 address`},
		{"End", `"End" is not an IPv6 address`},
		{"2001:db8::1 End", `"2001:db8::1 End" is not an IPv6 address`},
		{strings.Repeat("a", 500), `"` + strings.Repeat("a", 80) + `"...`},
	}
	for _, tt := range tests {
		s, err := ParseSID(tt.in)
		if err == nil {
			t.Errorf("ParseSID(%q) = %v, want an error", tt.in, s)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSID(%q) error %q does not hold %q", tt.in, err, tt.want)
		}
	}
}

func sids(t *testing.T, ss ...string) []SID {
	t.Helper()
	out := make([]SID, len(ss))
	for i, s := range ss {
		var err error
		if out[i], err = ParseSID(s); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestParseSegmentList(t *testing.T) {
	abc := sids(t, "2001:db8::a", "2001:db8::b:End", "2001:db8::c")
	tests := []struct {
		in   string
		want []SID
	}{
		{`["2001:db8::a", "2001:db8::b:End", "2001:db8::c"]`, abc},
		{`["2001:db8::a","2001:db8::b:End","2001:db8::c"]`, abc},
		{` [ '2001:db8::a' , '2001:db8::b:end', 2001:db8::c ] `, abc},
		{`2001:db8::a,2001:db8::b:End,2001:db8::c`, abc},
		{" 2001:db8::a ,\t2001:db8::b:End ,\n2001:db8::c\n", abc},
		{`2001:db8::1`, sids(t, "2001:db8::1")},
		{`["2001:0C68:3000::1:End"]`, sids(t, "2001:c68:3000::1:End")},
		{`["2001:db8::1:End with PSP, USP & USD", "2001:db8::2"]`, sids(t, "2001:db8::1:End with PSP, USP & USD", "2001:db8::2")},
		{`2001:db8::1, 2001:db8::1`, sids(t, "2001:db8::1", "2001:db8::1")},
		{strings.TrimSuffix(strings.Repeat("2001:db8::1,", MaxSegments), ","), sids(t, strings.Split(strings.TrimSuffix(strings.Repeat("2001:db8::1,", MaxSegments), ","), ",")...)},
	}
	for _, tt := range tests {
		got, err := ParseSegmentList(tt.in)
		if err != nil {
			t.Errorf("ParseSegmentList(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSegmentList(%q) = %v, want %v", tt.in, got, tt.want)
		}
		again, err := ParseSegmentList(FormatSegmentList(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q through %q = %v, %v", tt.in, FormatSegmentList(got), again, err)
		}
	}
}

func TestParseSegmentListErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `segment list "" is empty`},
		{"[]", `segment list "[]" is empty`},
		{"[ ]", `is empty`},
		{`["2001:db8::1"`, `unbalanced brackets`},
		{`"2001:db8::1"]`, `unbalanced brackets`},
		{`["2001:db8::1, "2001:db8::2"]`, `unterminated " quote`},
		{`["2001:db8::1" "2001:db8::2"]`, `segment 1: SID "2001:db8::1\" \"2001:db8::2" is not an IPv6 address`},
		{`["2001:db8::1]`, `unterminated " quote`},
		{"2001:db8::1,,2001:db8::2", `segment 2 of "2001:db8::1,,2001:db8::2" is empty`},
		{"2001:db8::1,", `segment 2 of "2001:db8::1," is empty`},
		{`["2001:db8::1", ""]`, `segment 2 of`},
		{"2001:db8::1, 192.0.2.1", `segment 2: SID "192.0.2.1" is an IPv4 address`},
		{"2001:db8::1, 2001:db8::2, 2001:db8::3:Foo", `segment 3: SID "2001:db8::3:Foo": unknown SRv6 behaviour "Foo"`},
		{"2001:db8::1 2001:db8::2", `segment 1: SID "2001:db8::1 2001:db8::2"`},
		{"2001:db8::1;2001:db8::2", `segment 1:`},
		{strings.Repeat("2001:db8::1,", MaxSegments) + "2001:db8::1", `more than 16 segments`},
		{strings.Repeat(",", 100000), `more than 16 segments`},
	}
	for _, tt := range tests {
		got, err := ParseSegmentList(tt.in)
		if err == nil {
			t.Errorf("ParseSegmentList(%q) = %v, want an error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSegmentList(%q) error %q does not hold %q", tt.in, err, tt.want)
		}
		if len(err.Error()) > 300 {
			t.Errorf("ParseSegmentList error is %d bytes long", len(err.Error()))
		}
	}
}

func TestAddrs(t *testing.T) {
	got := Addrs(sids(t, "2001:db8::1:End", "2001:db8::2"))
	want := []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Addrs = %v, want %v", got, want)
	}
}

func TestParseFunction(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  string
	}{
		{"4", 4, ""},
		{"0x4", 4, ""},
		{"0X4", 4, ""},
		{"0xfFfF", 0xffff, ""},
		{"0", 0, ""},
		{"0x0", 0, ""},
		{"010", 10, ""}, // decimal, not octal
		{"18446744073709551615", 1<<64 - 1, ""},
		{"0xffffffffffffffff", 1<<64 - 1, ""},
		{"18446744073709551616", 0, `value "18446744073709551616" does not fit 64 bits`},
		{"0x10000000000000000", 0, `value "0x10000000000000000" does not fit 64 bits`},
		{"", 0, `value "" is not a decimal or 0x-prefixed hex number`},
		{"0x", 0, `value "0x" is not`},
		{"-1", 0, `value "-1" is not`},
		{"+1", 0, `value "+1" is not`},
		{"0x-1", 0, `value "0x-1" is not`},
		{"1_000", 0, `value "1_000" is not`},
		{"0x1_0", 0, `value "0x1_0" is not`},
		{"0b101", 0, `value "0b101" is not`},
		{"0o17", 0, `value "0o17" is not`},
		{"ff", 0, `value "ff" is not`},
		{" 4", 0, `value " 4" is not`},
		{"4.0", 0, `value "4.0" is not`},
	}
	for _, tt := range tests {
		got, err := ParseFunction(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseFunction(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseFunction(%q) = %d, %v; want an error holding %q", tt.in, got, err, tt.err)
		}
	}
}

func FuzzParseSID(f *testing.F) {
	for _, s := range []string{
		"2001:0C68:3000::1:End", "2001:0C68:5000::1:BSID", "2001:db8::1:End.DT4",
		"2001:db8::End", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0:End", "::",
		"2001:db8::1:End with PSP, USP & USD", "1:2:3:4:5:6:7:8:End.X", ":::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSID(in)
		if err != nil {
			return
		}
		if !s.Addr.Is6() || s.Addr.Is4In6() || s.Addr.Zone() != "" || s.Addr.IsUnspecified() || s.Addr.IsMulticast() {
			t.Fatalf("ParseSID(%q) accepted %v", in, s.Addr)
		}
		again, err := ParseSID(s.String())
		if err != nil || again != s {
			t.Fatalf("ParseSID(%q) = %+v; its String %q parses to %+v, %v", in, s, s.String(), again, err)
		}
	})
}

func FuzzParseSegmentList(f *testing.F) {
	for _, s := range []string{
		`["2001:db8::a", "2001:db8::b:End"]`, "2001:db8::1, 2001:db8::2", `['a']`, `[,]`,
		`["2001:db8::1:End with PSP, USP & USD"]`, `"`, "[", "]", ",,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		segs, err := ParseSegmentList(in)
		if err != nil {
			return
		}
		if len(segs) == 0 || len(segs) > MaxSegments {
			t.Fatalf("ParseSegmentList(%q) gave %d segments", in, len(segs))
		}
		again, err := ParseSegmentList(FormatSegmentList(segs))
		if err != nil || !reflect.DeepEqual(again, segs) {
			t.Fatalf("ParseSegmentList(%q) = %v; formatted %q parses to %v, %v", in, segs, FormatSegmentList(segs), again, err)
		}
	})
}

func FuzzParseFunction(f *testing.F) {
	for _, s := range []string{"4", "0x4", "010", "0x", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, err := ParseFunction(in)
		if err != nil {
			return
		}
		// Whatever is accepted reads back from both spellings.
		for _, s := range []string{strconv.FormatUint(v, 10), "0x" + strconv.FormatUint(v, 16)} {
			if w, err := ParseFunction(s); err != nil || w != v {
				t.Fatalf("ParseFunction(%q) = %d; %q gives %d, %v", in, v, s, w, err)
			}
		}
	})
}
