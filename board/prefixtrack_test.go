package board

import (
	"net/netip"
	"testing"
)

func TestPrefixTracker(t *testing.T) {
	p1 := netip.MustParsePrefix("2001:db8:1200::/40")
	p2 := netip.MustParsePrefix("2001:db8:4400::/40")
	a1 := netip.MustParseAddr("2001:db8:1200::1")
	a2 := netip.MustParseAddr("2001:db8:4400::1")
	none := netip.Prefix{}
	type read struct {
		p      netip.Prefix // invalid: the read found no prefix
		a      netip.Addr
		want   PrefixChange
		report bool
	}
	tests := []struct {
		name  string
		reads []read
	}{
		{"first", []read{{p1, a1, PrefixChange{New: p1, Addr: a1}, true}}},
		{"first without address", []read{{p1, netip.Addr{}, PrefixChange{New: p1}, true}}},
		{"unchanged", []read{{p1, a1, PrefixChange{New: p1, Addr: a1}, true}, {p1, a1, PrefixChange{}, false}}},
		{"new prefix", []read{{p1, a1, PrefixChange{New: p1, Addr: a1}, true}, {p2, a2, PrefixChange{Old: p1, New: p2, Addr: a2}, true}}},
		{"address only", []read{{p1, a1, PrefixChange{New: p1, Addr: a1}, true}, {p1, a2, PrefixChange{Old: p1, New: p1, Addr: a2}, true}}},
		{"address gone keeps the last", []read{{p1, a1, PrefixChange{New: p1, Addr: a1}, true}, {p1, netip.Addr{}, PrefixChange{}, false}}},
		{"new prefix, address gone", []read{{p1, a1, PrefixChange{New: p1, Addr: a1}, true}, {p2, netip.Addr{}, PrefixChange{Old: p1, New: p2, Addr: a1}, true}}},
		{"gone: nothing; back unchanged: reported again", []read{
			{p1, a1, PrefixChange{New: p1, Addr: a1}, true},
			{none, netip.Addr{}, PrefixChange{}, false},
			{none, netip.Addr{}, PrefixChange{}, false},
			{p1, a1, PrefixChange{Old: p1, New: p1, Addr: a1}, true},
			{p1, a1, PrefixChange{}, false},
		}},
		{"gone, back renumbered", []read{
			{p1, a1, PrefixChange{New: p1, Addr: a1}, true},
			{none, netip.Addr{}, PrefixChange{}, false},
			{p2, a2, PrefixChange{Old: p1, New: p2, Addr: a2}, true},
		}},
	}
	for _, tc := range tests {
		var tr PrefixTracker
		lost := 0
		for i, r := range tc.reads {
			if !r.p.IsValid() {
				if tr.Lost() {
					lost++
				}
				continue
			}
			got, report, _ := tr.Found(r.p, r.a)
			if report != r.report || (report && got != r.want) {
				t.Errorf("%s: read %d: Found = %+v, %v; want %+v, %v", tc.name, i, got, report, r.want, r.report)
			}
		}
		if lost > 1 {
			t.Errorf("%s: Lost reported the loss %d times in a row, want once", tc.name, lost)
		}
	}
}
