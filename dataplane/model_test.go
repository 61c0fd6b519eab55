package dataplane

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/srv6cpe/srv6cpe/srv6"
)

var (
	allCaps = Capabilities{VRF: true, EndDT4: true, EndDT46: true, EndDT6Table: true,
		EncapRed: true, NexthopObjects: true, EndB6Encaps: true, EndBPF: true, RuleDSCP: true}
	// labCaps is what the probe finds on the lab machines (no VRF).
	labCaps = Capabilities{EndDT6Table: true, EncapRed: true, NexthopObjects: true, EndB6Encaps: true, RuleDSCP: true}
)

func TestValidate(t *testing.T) {
	sid := mustAddr("2001:db8:1::1")
	segs := addrs("2001:db8:2::1")
	cases := []struct {
		name string
		caps Capabilities
		d    Desired
		want string // "" = valid; else a substring of the error
	}{
		{"empty", labCaps, Desired{}, ""},
		{"locator v4", labCaps, Desired{Locators: []netip.Prefix{mustPrefix("10.0.0.0/8")}}, "locator 10.0.0.0/8: not an IPv6 prefix"},
		{"locator host bits", labCaps, Desired{Locators: []netip.Prefix{mustPrefix("2001:db8:1::1/48")}}, "want 2001:db8:1::/48"},
		{"locator twice", labCaps, Desired{Locators: []netip.Prefix{mustPrefix("2001:db8:1::/48"), mustPrefix("2001:db8:1::/48")}}, "desired twice"},
		{"sid v4", labCaps, Desired{LocalSIDs: []LocalSID{{SID: mustAddr("10.0.0.1"), Behavior: srv6.End}}}, "SID 10.0.0.1: not a unicast IPv6"},
		{"sid twice", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.End}, {SID: sid, Behavior: srv6.EndDX6, NH6: mustAddr("::")}}}, "2001:db8:1::1/128 is desired twice"},
		{"end.x without nh", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndX}}}, "needs NH6"},
		{"dx4 v6 nh", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX4, NH4: mustAddr("::1")}}}, "next hop ::1 is not an IPv4"},
		{"dx4 no nh", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX4}}}, "needs NH4"},
		{"dx4 lookup", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX4, NH4: mustAddr("0.0.0.0")}}}, ""},
		{"dx6 lookup", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX6, NH6: mustAddr("::")}}}, ""},
		{"dt4 without vrf support", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT4, Table: 10}}}, "use End.DX4 nh4 0.0.0.0"},
		{"dt4 needs vrf", allCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT4, Table: 10}}}, "needs a VRF"},
		{"dt4 unknown vrf", allCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT4, VRF: "blue"}}}, `VRF "blue" is not in the desired VRFs`},
		{"dt4 vrf", allCaps, Desired{VRFs: []VRF{{"blue", 10}}, LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT4, VRF: "blue"}}}, ""},
		{"dt46 table contradicts vrf", allCaps, Desired{VRFs: []VRF{{"blue", 10}}, LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT46, VRF: "blue", Table: 11}}}, "table 11 contradicts VRF"},
		{"vrf without support", labCaps, Desired{VRFs: []VRF{{"blue", 10}}}, `VRF "blue": this kernel cannot create VRF devices`},
		{"vrf reserved table", allCaps, Desired{VRFs: []VRF{{"blue", 254}}}, "table 254 is reserved"},
		{"vrf bad name", allCaps, Desired{VRFs: []VRF{{"a/b", 10}}}, `VRF "a/b": not a valid device name`},
		{"vrf long name", allCaps, Desired{VRFs: []VRF{{"sixteen-chars-xx", 10}}}, "not a valid device name"},
		{"vrf shared table", allCaps, Desired{VRFs: []VRF{{"a", 10}, {"b", 10}}}, `table 10 already belongs to VRF "a"`},
		{"dt6 table without support", Capabilities{}, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT6, Table: 10}}}, "no End.DT6 with a table"},
		{"dt6 main", Capabilities{}, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT6}}}, ""},
		{"b6 red", labCaps, Desired{BSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndB6EncapsRed, Segments: segs}}}, "no End.B6.Encaps.Red action"},
		{"bsid not b6", labCaps, Desired{BSIDs: []LocalSID{{SID: sid, Behavior: srv6.End}}}, "a binding SID must be End.B6.Encaps"},
		{"b6 no segments", labCaps, Desired{BSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndB6Encaps}}}, "empty segment list"},
		{"b6 v4 segment", labCaps, Desired{BSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndB6Encaps, Segments: addrs("10.0.0.1")}}}, "segment 10.0.0.1 is not a unicast IPv6"},
		{"unsupported behaviour", labCaps, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX2}}}, "End.DX2): behaviour not supported"},
		{"encap ok", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: segs}}}, ""},
		{"encap host bits", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.1/24"), Segments: segs}}}, "encap route 10.0.0.1/24: host bits set"},
		{"encap no segments", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24")}}}, "encap route 10.0.0.0/24: empty segment list"},
		{"encap red unsupported", Capabilities{}, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: segs, Mode: EncapRed}}}, "no seg6 encap.red"},
		{"encap bad mode", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: segs, Mode: 7}}}, "unknown encap mode 7"},
		{"encap local table", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: segs, Table: 255}}}, "table 255 is reserved"},
		{"encap same prefix two tables", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: segs}, {Prefix: mustPrefix("10.0.0.0/24"), Segments: segs, Table: 7}}}, ""},
		{"encap twice", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: segs}, {Prefix: mustPrefix("10.0.0.0/24"), Segments: segs}}}, "10.0.0.0/24 is desired twice"},
		{"too many segments", labCaps, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Segments: make([]netip.Addr, 128)}}}, "128 segments, at most 127"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.d.Validate(c.caps, "wan0")
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want ok", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestValidateNeedsDevice(t *testing.T) {
	d := Desired{LocalSIDs: []LocalSID{{SID: mustAddr("2001:db8::1"), Behavior: srv6.End}}}
	if err := d.Validate(labCaps, ""); err == nil || !strings.Contains(err.Error(), "no WAN interface configured") {
		t.Fatalf("Validate without WAN: %v", err)
	}
	d.LocalSIDs[0].Dev = "eth1"
	if err := d.Validate(labCaps, ""); err != nil {
		t.Fatalf("Validate with a device: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	d := Desired{
		VRFs:     []VRF{{"red", 20}, {"blue", 10}},
		Locators: []netip.Prefix{mustPrefix("2001:db8:2::/48"), mustPrefix("2001:db8:1::/48")},
		LocalSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:1::3"), Behavior: srv6.EndDT4, Table: 10, VRF: "blue"},
			{SID: mustAddr("2001:db8:1::2"), Behavior: srv6.EndDT6, Table: 20},                       // table of VRF red
			{SID: mustAddr("2001:db8:1::1"), Behavior: srv6.End, NH4: mustAddr("1.2.3.4"), Table: 9}, // unused fields
			{SID: mustAddr("2001:db8:1::b"), Behavior: srv6.EndB6Encaps, Segments: addrs("2001:db8:9::1")},
		},
		Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), Table: 10, Segments: addrs("2001:db8:9::1"), Dev: "eth9"}},
	}
	got, err := Normalize(d, allCaps, "wan0")
	if err != nil {
		t.Fatal(err)
	}
	want := Desired{
		Locators: []netip.Prefix{mustPrefix("2001:db8:1::/48"), mustPrefix("2001:db8:2::/48")},
		VRFs:     []VRF{{"blue", 10}, {"red", 20}},
		LocalSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:1::1"), Behavior: srv6.End, Dev: "wan0"},
			{SID: mustAddr("2001:db8:1::2"), Behavior: srv6.EndDT6, VRF: "red", Dev: "wan0"},
			{SID: mustAddr("2001:db8:1::3"), Behavior: srv6.EndDT4, VRF: "blue", Dev: "wan0"},
		},
		BSIDs:  []LocalSID{{SID: mustAddr("2001:db8:1::b"), Behavior: srv6.EndB6Encaps, Dev: "wan0", Segments: addrs("2001:db8:9::1")}},
		Encaps: []EncapRoute{{Prefix: mustPrefix("10.0.0.0/24"), VRF: "blue", Segments: addrs("2001:db8:9::1"), Dev: "eth9"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Normalize:\n got %+v\nwant %+v", got, want)
	}
	again, err := Normalize(got, allCaps, "wan0")
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("Normalize is not idempotent: %v\n%+v", err, again)
	}
}

func TestDiff(t *testing.T) {
	k := func(p string) rkey { return fakeKey(mustPrefix(p), 0) }
	a := rval{Kind: kindEncap, Dev: 1, Mode: seg6ModeEnc, Segs: packSegs(addrs("2001:db8::1"))}
	b := a
	b.Mode = seg6ModeRed
	cur := routeSet{k("10.0.0.0/24"): a, k("10.0.1.0/24"): a, k("10.0.2.0/24"): a}
	want := desiredSet{
		routes: routeSet{k("10.0.0.0/24"): a, k("10.0.1.0/24"): b, k("2001:db8:1::/48"): {Kind: kindUnreachable}},
		order:  []rkey{k("2001:db8:1::/48"), k("10.0.0.0/24"), k("10.0.1.0/24")},
	}
	ups, dels := diff(cur, nil, want)
	wantUps := []change{
		{Key: k("2001:db8:1::/48"), Val: rval{Kind: kindUnreachable}}, // in desired order
		{Key: k("10.0.1.0/24"), Val: b, Replace: true},
	}
	if !reflect.DeepEqual(ups, wantUps) {
		t.Errorf("upserts: got %+v, want %+v", ups, wantUps)
	}
	if !reflect.DeepEqual(dels, []rkey{k("10.0.2.0/24")}) {
		t.Errorf("deletes: got %v", dels)
	}
	// With the kernel's listing order, deletions keep it.
	cur[k("10.0.3.0/24")] = a
	order := []rkey{k("10.0.3.0/24"), k("10.0.0.0/24"), k("10.0.2.0/24"), k("10.0.1.0/24")}
	if _, dels := diff(cur, order, want); !reflect.DeepEqual(dels, []rkey{k("10.0.3.0/24"), k("10.0.2.0/24")}) {
		t.Errorf("deletes in kernel order: got %v", dels)
	}
	if ups, dels := diff(want.routes, nil, want); len(ups)+len(dels) != 0 {
		t.Errorf("diff of equal sets: %v %v", ups, dels)
	}
}

// Equal lists share one string, and the interner holds only the lists
// seen since the previous rotate (the Kernel rotates once per Apply).
func TestSegInterner(t *testing.T) {
	var si segInterner
	a1 := si.intern(addrs("2001:db8::1", "2001:db8::2"))
	a2 := si.intern(addrs("2001:db8::1", "2001:db8::2"))
	if a1 != a2 || unsafe.StringData(string(a1)) != unsafe.StringData(string(a2)) {
		t.Fatalf("equal lists got two strings: %q %q", a1, a2)
	}
	si.rotate()
	if a3 := si.intern(addrs("2001:db8::1", "2001:db8::2")); unsafe.StringData(string(a3)) != unsafe.StringData(string(a1)) {
		t.Fatal("a list seen before the last rotate was copied again")
	}
	si.intern(addrs("2001:db8::3"))
	si.rotate()
	si.intern(addrs("2001:db8::3"))
	si.rotate()
	if len(si.m)+len(si.old) != 1 {
		t.Fatalf("interner holds %d lists, want the 1 still in use", len(si.m)+len(si.old))
	}
	if got := si.intern(addrs("2001:db8::1", "2001:db8::2")); got != a1 {
		t.Fatalf("re-interned list reads %s, want %s", got, a1)
	}
}

// A resync plans the same state again with the Kernel's interner: that
// gives what plan gives, with the lists of the previous apply reused.
func TestPlanWithInterner(t *testing.T) {
	d := Desired{Encaps: vpnEncaps(2000, 4)}
	var si segInterner
	nm := &fakeNames{}
	first, err := planWith(&si, d, labCaps, "wan0", nm)
	if err != nil {
		t.Fatal(err)
	}
	si.rotate()
	again, err := planWith(&si, d, labCaps, "wan0", nm)
	if err != nil {
		t.Fatal(err)
	}
	want, err := plan(d, labCaps, "wan0", nm)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.routes, want.routes) || !reflect.DeepEqual(again.order, want.order) {
		t.Fatal("planWith differs from plan")
	}
	k := again.order[0]
	if unsafe.StringData(string(again.routes[k].Segs)) != unsafe.StringData(string(first.routes[k].Segs)) {
		t.Fatal("the second plan copied a list the interner held")
	}
}
