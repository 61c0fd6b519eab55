package dataplane

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Pure tests of the SRv6 policy dataplane: weighted multipath encap routes
// and flow rules.

var (
	pathA = addrs("2001:db8:a1::1", "2001:db8:a3::4")
	pathB = addrs("2001:db8:a2::4")
	pathC = addrs("2001:db8:a9::4")
)

func mpRoute(p string, table int, paths ...EncapPath) EncapRoute {
	return EncapRoute{Prefix: mustPrefix(p), Table: table, Paths: paths}
}

func TestValidateMultipath(t *testing.T) {
	noNH := labCaps
	noNH.NexthopObjects = false
	many := make([]EncapPath, maxPaths+1)
	for i := range many {
		many[i] = EncapPath{Segments: []netip.Addr{netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})}, Weight: 1}
	}
	cases := []struct {
		name string
		caps Capabilities
		e    EncapRoute
		want string
	}{
		{"ok", labCaps, mpRoute("10.0.0.0/24", 100, EncapPath{pathA, 3}, EncapPath{pathB, 1}), ""},
		{"weight 256", labCaps, mpRoute("10.0.0.0/24", 0, EncapPath{pathA, 256}, EncapPath{pathB, 1}), ""},
		{"v4 without nexthop objects", noNH, mpRoute("10.0.0.0/24", 0, EncapPath{pathA, 3}, EncapPath{pathB, 1}), ""},
		{"one path", noNH, mpRoute("2001:db8:99::/64", 0, EncapPath{pathA, 9}), ""},
		{"weight 0", labCaps, mpRoute("10.0.0.0/24", 0, EncapPath{pathA, 3}, EncapPath{pathB, 0}), "encap route 10.0.0.0/24 path 2: weight 0 outside 1..256"},
		{"weight 257", labCaps, mpRoute("10.0.0.0/24", 0, EncapPath{pathA, 257}, EncapPath{pathB, 1}), "path 1: weight 257 outside 1..256"},
		{"empty path", labCaps, mpRoute("10.0.0.0/24", 0, EncapPath{pathA, 1}, EncapPath{nil, 1}), "encap route 10.0.0.0/24 path 2: empty segment list"},
		{"bad segment", labCaps, mpRoute("10.0.0.0/24", 0, EncapPath{addrs("10.0.0.1"), 1}, EncapPath{pathB, 1}), "path 1: segment 10.0.0.1 is not a unicast IPv6"},
		{"both", labCaps, EncapRoute{Prefix: mustPrefix("10.0.0.0/24"), Segments: pathA, Paths: []EncapPath{{pathB, 1}}}, "both Segments and Paths"},
		{"same path twice", labCaps, mpRoute("10.0.0.0/24", 0, EncapPath{pathA, 1}, EncapPath{pathB, 1}, EncapPath{pathA, 2}), "paths 1 and 3 have the same segments [2001:db8:a1::1,2001:db8:a3::4]"},
		{"too many", labCaps, EncapRoute{Prefix: mustPrefix("10.0.0.0/24"), Paths: many}, "33 paths, at most 32"},
		{"v6 without nexthop objects", noNH, mpRoute("2001:db8:99::/64", 0, EncapPath{pathA, 1}, EncapPath{pathB, 1}), "IPv6 multipath encap route needs nexthop objects"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Desired{Encaps: []EncapRoute{c.e}}.Validate(c.caps, "wan0")
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// Paths come back sorted by segments whatever order they were given in;
// one path is a plain route.
func TestNormalizeMultipath(t *testing.T) {
	d := Desired{Encaps: []EncapRoute{
		mpRoute("10.0.0.0/24", 100, EncapPath{pathC, 1}, EncapPath{pathA, 3}, EncapPath{pathB, 2}),
		mpRoute("10.0.1.0/24", 100, EncapPath{pathB, 7}),
	}}
	got, err := Normalize(d, labCaps, "wan0")
	if err != nil {
		t.Fatal(err)
	}
	want := []EncapRoute{
		{Prefix: mustPrefix("10.0.0.0/24"), Table: 100, Dev: "wan0", Paths: []EncapPath{{pathA, 3}, {pathB, 2}, {pathC, 1}}},
		{Prefix: mustPrefix("10.0.1.0/24"), Table: 100, Dev: "wan0", Segments: pathB},
	}
	if !reflect.DeepEqual(got.Encaps, want) {
		t.Fatalf("Normalize:\n got %+v\nwant %+v", got.Encaps, want)
	}
	// The order of paths is not a change.
	a, _ := plan(d, labCaps, "wan0", &fakeNames{})
	d.Encaps[0].Paths = []EncapPath{{pathB, 2}, {pathA, 3}, {pathC, 1}}
	b, _ := plan(d, labCaps, "wan0", &fakeNames{})
	if ups, dels := diff(a.routes, nil, b); len(ups)+len(dels) != 0 {
		t.Fatalf("reordered paths gave changes %v %v", ups, dels)
	}
	// A weight is.
	d.Encaps[0].Paths[0].Weight = 3
	c, _ := plan(d, labCaps, "wan0", &fakeNames{})
	if ups, _ := diff(a.routes, nil, c); len(ups) != 1 || !ups[0].Replace {
		t.Fatalf("weight change gave %v, want one replace", ups)
	}
}

func TestPathListPacking(t *testing.T) {
	ps := []wpath{{256, packSegs(pathB)}, {1, packSegs(pathA)}}
	p := pathList(packPaths(ps, nil))
	got := p.paths()
	want := []wpath{{1, packSegs(pathA)}, {256, packSegs(pathB)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths %+v, want %+v", got, want)
	}
	if s := p.String(); s != "weight 1 [ 2001:db8:a1::1 2001:db8:a3::4 ] weight 256 [ 2001:db8:a2::4 ]" {
		t.Fatalf("String %q", s)
	}
}

// Inline multipath (no nexthop objects) and groups decode to what was
// written.
func TestMultipathRoundTrip(t *testing.T) {
	v := rval{Kind: kindEncap, Dev: 4, Mode: seg6ModeEnc, HMAC: 7,
		Paths: pathList(packPaths([]wpath{{3, packSegs(pathA)}, {1, packSegs(pathB)}}, nil))}
	for _, key := range []rkey{{unix.AF_INET, 100, mustPrefix("10.1.0.0/16")}, {unix.AF_INET6, 1000, mustPrefix("2001:db8:9::/48")}} {
		var w wbuf
		w.putRoute(1, key, v, 0, true)
		r, err := decodeRoute(body(t, &w), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Key != key || r.Val != v {
			t.Fatalf("decoded %+v %+v\nwant %+v %+v", r.Key, r.Val, key, v)
		}
	}
	// A route on a group reads as the group's; its RTA_MULTIPATH copy is ignored.
	var w wbuf
	w.putRoute(1, rkey{unix.AF_INET, 100, mustPrefix("10.1.0.0/16")}, v, 0xc6000009, true)
	if r, err := decodeRoute(body(t, &w), nil); err != nil || r.NHID != 0xc6000009 || r.Val.Paths != "" {
		t.Fatalf("route on a group decoded %+v %v", r, err)
	}
	members := []grpEntry{{0xc6000001, 256}, {0xc6000002, 1}}
	w = wbuf{}
	w.putGroup(2, 0xc6000009, members)
	n, err := decodeNexthop(body(t, &w), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != 0xc6000009 || n.Proto != RouteProtocol || n.Simple || n.OddGroup || !reflect.DeepEqual(n.Group, members) {
		t.Fatalf("group decoded %+v", n)
	}
}

// An RTA_MULTIPATH the agent would not write (a gateway, different devices)
// is kindOther: replaced, never misread.
func TestForeignMultipathIsOther(t *testing.T) {
	v := rval{Kind: kindEncap, Dev: 4, Mode: seg6ModeEnc,
		Paths: pathList(packPaths([]wpath{{3, packSegs(pathA)}, {1, packSegs(pathB)}}, nil))}
	var w wbuf
	w.putRoute(1, rkey{unix.AF_INET, 100, mustPrefix("10.1.0.0/16")}, v, 0, false)
	b := body(t, &w)
	// The second rtnexthop's ifindex: find it after the first's length.
	mp := sizeofRtmsg
	for mp < len(b) && ne.Uint16(b[mp+2:])&nlaTypeMask != unix.RTA_MULTIPATH {
		mp += align4(int(ne.Uint16(b[mp:])))
	}
	second := mp + nlaHdrLen + int(ne.Uint16(b[mp+nlaHdrLen:]))
	ne.PutUint32(b[second+4:], 5)
	r, err := decodeRoute(b, nil)
	if err != nil || r.Val.Kind != kindOther {
		t.Fatalf("mixed devices decoded %+v %v", r.Val, err)
	}
}

func sampleFlows() []FlowRule {
	return []FlowRule{
		{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{5000, 0}, DSCP: 46, HasDSCP: true, Table: 100},
		{Priority: 601, Family: unix.AF_INET6, Src: mustPrefix("2001:db8:1::/48"), Dst: mustPrefix("2001:db8:2::/48"), Protocol: unix.IPPROTO_TCP,
			SrcPorts: PortRange{1024, 65534}, DstPorts: PortRange{443, 443}, DSCP: 10, HasDSCP: true, FwMark: 0x10, FwMask: 0xf0, IIF: "lan0", Table: 101},
		{Priority: 999, Family: unix.AF_INET, Src: mustPrefix("192.168.1.0/24"), FwMark: 7, Table: 102},
	}
}

func TestFlowRulesValidate(t *testing.T) {
	ok := FlowRule{Priority: 600, Family: unix.AF_INET, Table: 100}
	with := func(f func(*FlowRule)) FlowRule { r := ok; f(&r); return r }
	noDSCP := labCaps
	noDSCP.RuleDSCP = false
	cases := []struct {
		name string
		caps Capabilities
		r    []FlowRule
		want string
	}{
		{"ok", allCaps, sampleFlows(), ""},
		{"priority low", allCaps, []FlowRule{with(func(r *FlowRule) { r.Priority = 499 })}, "priority 499 outside 500..999"},
		{"priority high", allCaps, []FlowRule{with(func(r *FlowRule) { r.Priority = 1000 })}, "priority 1000 outside 500..999"},
		{"family", allCaps, []FlowRule{with(func(r *FlowRule) { r.Family = 3 })}, "family 3 is not AF_INET"},
		{"family mismatch src", allCaps, []FlowRule{with(func(r *FlowRule) { r.Src = mustPrefix("2001:db8::/32") })}, "prefix 2001:db8::/32 does not match family 2"},
		{"family mismatch dst", allCaps, []FlowRule{with(func(r *FlowRule) { r.Family = unix.AF_INET6; r.Dst = mustPrefix("10.0.0.0/8") })}, "prefix 10.0.0.0/8 does not match family 10"},
		{"host bits", allCaps, []FlowRule{with(func(r *FlowRule) { r.Dst = mustPrefix("10.0.0.1/8") })}, "host bits set (want 10.0.0.0/8)"},
		{"ports without protocol", allCaps, []FlowRule{with(func(r *FlowRule) { r.DstPorts = PortRange{80, 80} })}, "ports 80-80 need protocol"},
		{"ports on icmp", allCaps, []FlowRule{with(func(r *FlowRule) { r.Protocol = unix.IPPROTO_ICMP; r.SrcPorts = PortRange{1, 2} })}, "not 1"},
		{"port range backwards", allCaps, []FlowRule{with(func(r *FlowRule) { r.Protocol = unix.IPPROTO_UDP; r.DstPorts = PortRange{90, 80} })}, "port range 90-80"},
		{"port 65535", allCaps, []FlowRule{with(func(r *FlowRule) { r.Protocol = unix.IPPROTO_TCP; r.SrcPorts = PortRange{1024, 65535} })}, "port range 1024-65535 is not within 1..65534"},
		{"port range from 0", allCaps, []FlowRule{with(func(r *FlowRule) { r.Protocol = unix.IPPROTO_UDP; r.DstPorts = PortRange{0, 80} })}, "port range 0-80"},
		{"dscp 64", allCaps, []FlowRule{with(func(r *FlowRule) { r.DSCP, r.HasDSCP = 64, true })}, "DSCP 64 is more than 63"},
		{"dscp without has", allCaps, []FlowRule{with(func(r *FlowRule) { r.DSCP = 46 })}, "DSCP 46 given without HasDSCP"},
		{"v4 dscp without FRA_DSCP", noDSCP, []FlowRule{with(func(r *FlowRule) { r.DSCP, r.HasDSCP = 46, true })}, "cannot match DSCP 46"},
		{"v6 dscp without FRA_DSCP", noDSCP, []FlowRule{with(func(r *FlowRule) { r.Family = unix.AF_INET6; r.DSCP, r.HasDSCP = 46, true })}, ""},
		{"v6 dscp 0 without FRA_DSCP", noDSCP, []FlowRule{with(func(r *FlowRule) { r.Family = unix.AF_INET6; r.HasDSCP = true })}, "cannot match DSCP 0"},
		{"mark outside mask", allCaps, []FlowRule{with(func(r *FlowRule) { r.FwMark, r.FwMask = 0x11, 0xf0 })}, "fwmark 0x11 has bits outside mask 0xf0"},
		{"bad iif", allCaps, []FlowRule{with(func(r *FlowRule) { r.IIF = "a b" })}, `interface "a b"`},
		{"no table", allCaps, []FlowRule{with(func(r *FlowRule) { r.Table = 0 })}, "table 0 is reserved"},
		{"local table", allCaps, []FlowRule{with(func(r *FlowRule) { r.Table = 255 })}, "table 255 is reserved"},
		{"twice", allCaps, []FlowRule{ok, with(func(r *FlowRule) { r.Dst = mustPrefix("0.0.0.0/0") })}, "flow rule 600 lookup 100 and flow rule 600 lookup 100 share priority 600"},
		{"shared priority", allCaps, []FlowRule{ok, with(func(r *FlowRule) { r.FwMark = 1 })}, "flow rule 600 lookup 100 and flow rule 600 fwmark 0x1/0xffffffff lookup 100 share priority 600"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Desired{FlowRules: c.r}.Validate(c.caps, "wan0")
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// What putRule writes for a flow rule, decodeRule reads back, in both
// DSCP forms, and flowRulesOf turns it back into the normalized rule.
func TestFlowRuleEncodeDecode(t *testing.T) {
	for _, caps := range []Capabilities{allCaps, {RuleDSCP: false}} {
		flows := sampleFlows()
		if !caps.RuleDSCP {
			flows = flows[1:] // the IPv4 DSCP rule needs FRA_DSCP
		}
		rules, err := flowKRules(flows, caps)
		if err != nil {
			t.Fatal(err)
		}
		var back []krule
		for _, r := range rules {
			var w wbuf
			w.putRule(1, r)
			got, proto, err := decodeRule(body(t, &w))
			if err != nil {
				t.Fatal(err)
			}
			if got != r || proto != RouteProtocol {
				t.Fatalf("RuleDSCP %v: read back %v proto %d, wrote %v", caps.RuleDSCP, got, proto, r)
			}
			back = append(back, got)
		}
		want, _ := Normalize(Desired{FlowRules: flows}, caps, "wan0")
		if got := flowRulesOf(back); !reflect.DeepEqual(got, want.FlowRules) {
			t.Fatalf("RuleDSCP %v: flow rules\n got %+v\nwant %+v", caps.RuleDSCP, got, want.FlowRules)
		}
	}
}

// The kernel echoes the full DSCP mask (Linux 6.15+): still ours. Any
// other mask, or a selector this code does not know, is not.
func TestFlowRuleEchoedAttrs(t *testing.T) {
	rules, _ := flowKRules(sampleFlows()[:1], allCaps)
	for _, c := range []struct {
		typ   uint16
		val   []byte
		other bool
	}{
		{fraDSCPMask, []byte{0x3f}, false},
		{fraDSCPMask, []byte{0x38}, true},
		{26 /* FRA_FLOWLABEL */, []byte{0, 0, 0, 1}, true},
		{26, []byte{0, 0, 0, 0}, false},
		{fraDportMask, []byte{0xff, 0xff}, false},
		{fraDportMask, []byte{0xf0, 0xff}, true},
	} {
		var w wbuf
		w.putRule(1, rules[0])
		w.attr(c.typ, c.val)
		w.end(0)
		got, _, err := decodeRule(body(t, &w))
		if err != nil || got.Other != c.other {
			t.Errorf("attr %d % x: other %v (%v), want %v", c.typ, c.val, got.Other, err, c.other)
		}
	}
}

func TestNormalizeFlowRules(t *testing.T) {
	in := []FlowRule{
		{Priority: 700, Family: unix.AF_INET6, Src: mustPrefix("::/0"), Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 53}, Table: 7},
		{Priority: 650, Family: unix.AF_INET, FwMark: 3, Table: 7},
	}
	got, err := Normalize(Desired{FlowRules: in}, allCaps, "wan0")
	if err != nil {
		t.Fatal(err)
	}
	want := []FlowRule{
		{Priority: 650, Family: unix.AF_INET, FwMark: 3, FwMask: 0xffffffff, Table: 7},
		{Priority: 700, Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{53, 53}, Table: 7},
	}
	if !reflect.DeepEqual(got.FlowRules, want) {
		t.Fatalf("Normalize:\n got %+v\nwant %+v", got.FlowRules, want)
	}
	if in[0].DstPorts.Hi != 0 || in[1].FwMask != 0 {
		t.Fatal("Normalize changed the caller's rules")
	}
}

// The Fake holds flow rules and multipath routes like the kernel: an
// unchanged set is no operation, a changed choice is one.
func TestFakePolicy(t *testing.T) {
	ctx := context.Background()
	f := NewFake(allCaps)
	d := Desired{
		Encaps:    []EncapRoute{mpRoute("10.60.0.0/24", 100, EncapPath{pathA, 3}, EncapPath{pathB, 1})},
		FlowRules: sampleFlows(),
	}
	if err := f.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Installed(ctx)
	want, _ := Normalize(d, allCaps, "wan0")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("installed %+v\nwant %+v", got, want)
	}
	if r := f.Routes(); len(r) != 1 || r[0] != "10.60.0.0/24 encap seg6 mode encap multipath weight 3 [ 2001:db8:a1::1 2001:db8:a3::4 ] weight 1 [ 2001:db8:a2::4 ] dev wan0 table 100" {
		t.Fatalf("routes %q", r)
	}
	ops := f.Ops()
	if err := f.Apply(ctx, d); err != nil || f.Ops() != ops {
		t.Fatalf("re-apply: %v, %d ops", err, f.Ops()-ops)
	}
	d.Encaps[0].Paths = []EncapPath{{pathB, 1}}
	if err := f.Apply(ctx, d); err != nil || f.Ops() != ops+1 {
		t.Fatalf("switch: %v, %d ops, want 1", err, f.Ops()-ops)
	}
	d.FlowRules = d.FlowRules[1:]
	if err := f.Apply(ctx, d); err != nil || f.Ops() != ops+2 {
		t.Fatalf("one rule less: %v, %d ops, want 1", err, f.Ops()-ops-1)
	}
}
