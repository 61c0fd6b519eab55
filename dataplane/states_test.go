package dataplane

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/srv6"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenDesired is one CPE's dataplane: a locator, its service SIDs in the
// VRF-less fallback, a binding SID, and VPN routes in two tables, some
// sharing a segment list (one nexthop object each).
func goldenDesired() Desired {
	return Desired{
		Locators: []netip.Prefix{mustPrefix("2001:db8:12ff::/48")},
		LocalSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:12ff:1::"), Behavior: srv6.End},
			{SID: mustAddr("2001:db8:12ff:4::"), Behavior: srv6.EndDX4, NH4: mustAddr("0.0.0.0")},
			{SID: mustAddr("2001:db8:12ff:6::"), Behavior: srv6.EndDX6, NH6: mustAddr("::")},
			{SID: mustAddr("2001:db8:12ff:7::"), Behavior: srv6.EndDT6, Table: 100},
			{SID: mustAddr("2001:db8:12ff:8::"), Behavior: srv6.EndX, NH6: mustAddr("fc00:ffff::2")},
		},
		BSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:12ff:b::"), Behavior: srv6.EndB6Encaps, Segments: addrs("2001:db8:a1::1", "2001:db8:a2::4")},
		},
		Encaps: []EncapRoute{
			{Prefix: mustPrefix("10.1.0.0/24"), Segments: addrs("2001:db8:a2::4")},
			{Prefix: mustPrefix("10.1.1.0/24"), Segments: addrs("2001:db8:a2::4")},
			{Prefix: mustPrefix("10.2.0.0/24"), Segments: addrs("2001:db8:a1::1", "2001:db8:a3::4"), Mode: EncapRed},
			{Prefix: mustPrefix("10.9.0.0/16"), Table: 100, Segments: addrs("2001:db8:a3::4")},
			{Prefix: mustPrefix("2001:db8:99::/64"), Segments: addrs("2001:db8:a2::6")},
			// An SRv6 policy's service table: a 3:1 share over two
			// segment lists (one group, shared by the IPv6 route), and
			// a three-way share in the main table.
			{Prefix: mustPrefix("10.60.0.0/24"), Table: 200, Paths: []EncapPath{{addrs("2001:db8:a2::4"), 3}, {addrs("2001:db8:a1::1", "2001:db8:a3::4"), 1}}},
			{Prefix: mustPrefix("2001:db8:60::/64"), Table: 200, Paths: []EncapPath{{addrs("2001:db8:a1::1", "2001:db8:a3::4"), 1}, {addrs("2001:db8:a2::4"), 3}}},
			{Prefix: mustPrefix("10.61.0.0/24"), Paths: []EncapPath{{addrs("2001:db8:a2::4"), 1}, {addrs("2001:db8:a2::6"), 2}, {addrs("2001:db8:a3::4"), 256}}},
		},
		FlowRules: []FlowRule{
			{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, DSCP: 46, HasDSCP: true, Table: 200},
			{Priority: 601, Family: unix.AF_INET6, Dst: mustPrefix("2001:db8:60::/48"), Protocol: unix.IPPROTO_TCP, DstPorts: PortRange{443, 443}, Table: 200},
			{Priority: 700, Family: unix.AF_INET, Src: mustPrefix("192.168.1.0/24"), FwMark: 0x10, FwMask: 0xf0, Table: 200},
		},
	}
}

// partialDesired is half of goldenDesired, one SID changed in place.
func partialDesired() Desired {
	d := goldenDesired()
	d.LocalSIDs = d.LocalSIDs[:2:2]
	d.LocalSIDs = append(d.LocalSIDs, LocalSID{SID: mustAddr("2001:db8:12ff:6::"), Behavior: srv6.End})
	d.Encaps = append(d.Encaps[:2:2], d.Encaps[5])
	d.Encaps[2].Paths = d.Encaps[2].Paths[:1] // one path of the share
	d.FlowRules = d.FlowRules[1:2]
	d.BSIDs = nil
	return d
}

// staleDesired is a previous life: another locator and SIDs, and routes on
// the golden keys that point elsewhere.
func staleDesired() Desired {
	return Desired{
		Locators: []netip.Prefix{mustPrefix("2001:db8:1200::/48")},
		LocalSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:1200:1::"), Behavior: srv6.End},
			{SID: mustAddr("2001:db8:12ff:4::"), Behavior: srv6.EndDX6, NH6: mustAddr("::")},
		},
		BSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:12ff:b::"), Behavior: srv6.EndB6Encaps, Segments: addrs("2001:db8:a9::1")},
		},
		Encaps: []EncapRoute{
			{Prefix: mustPrefix("10.1.0.0/24"), Segments: addrs("2001:db8:a9::4")},
			{Prefix: mustPrefix("10.2.0.0/24"), Segments: addrs("2001:db8:a1::1", "2001:db8:a3::4")},
			{Prefix: mustPrefix("10.200.0.0/24"), Table: 100, Segments: addrs("2001:db8:a9::4"), Mode: EncapRed},
			// The service route on the other choice, and one gone since.
			{Prefix: mustPrefix("10.60.0.0/24"), Table: 200, Paths: []EncapPath{{addrs("2001:db8:a2::4"), 1}, {addrs("2001:db8:a9::4"), 1}}},
			{Prefix: mustPrefix("10.62.0.0/24"), Table: 200, Paths: []EncapPath{{addrs("2001:db8:a9::4"), 1}, {addrs("2001:db8:a9::6"), 1}}},
		},
		FlowRules: []FlowRule{
			{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, DSCP: 34, HasDSCP: true, Table: 200},
			{Priority: 650, Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Table: 201},
		},
	}
}

var nhidRE = regexp.MustCompile(`nhid \d+ `)

// ourRoutes is iproute2's view of our routes, nexthop ids masked (they
// depend on what the kernel held before).
func ourRoutes(t *testing.T, n *testNS) string {
	t.Helper()
	out := n.ip(t, "-4 route show table all proto 198") + n.ip(t, "-6 route show table all proto 198")
	return nhidRE.ReplaceAllString(out, "nhid N ")
}

// ourRuleLines is iproute2's view of our rules, both families.
func ourRuleLines(t *testing.T, n *testNS) string {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.Split(n.ip(t, "-4 rule show")+n.ip(t, "-6 rule show"), "\n") {
		if strings.HasSuffix(l, " proto 198") {
			b.WriteString(strings.Join(strings.Fields(l), " ") + "\n")
		}
	}
	return b.String()
}

func foreignRoutes(t *testing.T, n *testNS) string {
	t.Helper()
	var rules strings.Builder
	for _, l := range strings.Split(n.ip(t, "-4 rule show")+n.ip(t, "-6 rule show"), "\n") {
		if strings.HasSuffix(l, " proto static") {
			rules.WriteString(l + "\n")
		}
	}
	return n.ip(t, "-4 route show table all proto static") + n.ip(t, "-6 route show table all proto static") +
		nexthops(t, n, "static") + rules.String()
}

// nexthops lists the nexthop objects of one protocol (iproute2 6.1
// cannot filter them by protocol).
func nexthops(t *testing.T, n *testNS, proto string) string {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.Split(n.ip(t, "nexthop show"), "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), "proto "+proto) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestKernelStates applies the same Desired from different starting
// kernel states (tailscale's TestRouterStates idea): the end state must
// be the same every time, equal to the golden file, and foreign routes
// must be untouched.
func TestKernelStates(t *testing.T) {
	ctx := context.Background()
	d := goldenDesired()
	foreign := []string{
		// Other protocols inside our locator and VPN ranges, and a
		// foreign nexthop object with a route using it.
		"-6 route add 2001:db8:12ff:99::/128 proto static encap seg6local action End dev wan0",
		"-6 route add 2001:db8:12ff::/64 proto static dev wan0",
		"-4 route add 10.1.0.0/16 proto static dev wan0",
		"-4 route add 10.9.0.0/16 table 100 proto static dev wan0 metric 10",
		"nexthop add id 4242 encap seg6 mode encap segs 2001:db8:f::1 dev wan0 proto static",
		"-4 route add 10.250.0.0/24 nhid 4242 proto static",
		// A foreign rule with one of our flow rules' selectors.
		"-4 rule add pref 600 ipproto udp dport 5000 lookup 200 protocol static",
	}
	stale := []string{
		// Ours, but nothing Apply would make: a plain route, an odd metric,
		// an unused nexthop object.
		"-4 route add 10.251.0.0/24 proto 198 dev wan0",
		"-6 route add 2001:db8:12ff:1::/128 proto 198 metric 2000 encap seg6local action End dev wan0",
		"nexthop add id 77 encap seg6 mode encap segs 2001:db8:a2::4 dev wan0 proto 198",
		// A group of ours over a foreign object, and a rule of ours
		// with a selector we never set.
		"-6 nexthop add id 78 encap seg6 mode encap segs 2001:db8:a9::9 dev wan0 proto static",
		"nexthop add id 79 group 77/78 proto 198",
		"-4 rule add pref 600 ipproto udp dport 5000 uidrange 1-2 lookup 200 protocol 198",
	}
	states := []struct {
		name    string
		seed    *Desired
		ip      []string
		foreign bool
	}{
		{name: "empty"},
		{name: "partial", seed: ptr(partialDesired())},
		{name: "same", seed: ptr(goldenDesired())},
		{name: "stale", seed: ptr(staleDesired()), ip: stale},
		{name: "foreign", ip: foreign, foreign: true},
		{name: "stale and foreign", seed: ptr(staleDesired()), ip: append(append([]string{}, stale...), foreign...), foreign: true},
	}
	want, err := Normalize(d, labCaps, "wan0")
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			n := newTestNS(t)
			n.ip(t, "-6 route add fc00:ffff::2/128 dev wan0") // End.X next hop neighbour
			k := openKernel(t, n)
			if s.seed != nil {
				if err := k.Apply(ctx, *s.seed); err != nil {
					t.Fatalf("seeding: %v", err)
				}
			}
			for _, c := range s.ip {
				n.ip(t, c)
			}
			before := foreignRoutes(t, n)
			if err := k.Apply(ctx, d); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			got, err := k.Installed(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Installed:\n got %+v\nwant %+v", got, want)
			}
			routes := ourRoutes(t, n) + ourRuleLines(t, n)
			checkGolden(t, "states.golden", routes)
			if first == "" {
				first = routes
			} else if routes != first {
				t.Errorf("end state differs from the first start state's:\n%s\nvs\n%s", routes, first)
			}
			if after := foreignRoutes(t, n); after != before {
				t.Errorf("foreign routes changed:\nbefore\n%s\nafter\n%s", before, after)
			}
			if s.foreign && (!strings.Contains(before, "10.250.0.0/24 nhid 4242") || !strings.Contains(before, "dport 5000 lookup 200 proto static")) {
				t.Errorf("foreign set-up missing: %s", before)
			}
			// Exactly one nexthop object of ours per distinct encap
			// (five), one group per distinct weighted set (two).
			if o, g := ourNexthops(t, n); o != 5 || g != 2 {
				t.Errorf("%d nexthop objects and %d groups of ours, want 5 and 2:\n%s", o, g, n.ip(t, "nexthop show"))
			}
			// Level-triggered: a second Apply sends nothing.
			if w := applyCounting(t, k, d); w != 0 || ourRoutes(t, n)+ourRuleLines(t, n) != routes {
				t.Errorf("re-Apply sent %d requests, or routes changed", w)
			}
		})
	}
}

// TestFakeStates is the same table against the Fake, where meaningful:
// seeded states and foreign routes on other keys.
func TestFakeStates(t *testing.T) {
	ctx := context.Background()
	d := goldenDesired()
	want, err := Normalize(d, labCaps, "wan0")
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for _, seed := range []*Desired{nil, ptr(partialDesired()), ptr(goldenDesired()), ptr(staleDesired())} {
		for _, foreign := range []bool{false, true} {
			f := NewFake(labCaps)
			if seed != nil {
				if err := f.Seed(*seed); err != nil {
					t.Fatal(err)
				}
			}
			if foreign {
				f.AddForeignRoute(mustPrefix("10.1.0.0/16"), 0)
				f.AddForeignRoute(mustPrefix("2001:db8:12ff:99::/128"), 0)
			}
			if err := f.Apply(ctx, d); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			got, _ := f.Installed(ctx)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("seed %v foreign %v: Installed\n got %+v\nwant %+v", seed != nil, foreign, got, want)
			}
			if first == nil {
				first = f.Routes()
				checkGolden(t, "fake_states.golden", strings.Join(first, "\n")+"\n")
			} else if !reflect.DeepEqual(f.Routes(), first) {
				t.Errorf("seed %v foreign %v: routes differ:\n%v\nvs\n%v", seed != nil, foreign, f.Routes(), first)
			}
			ops := f.Ops()
			if err := f.Apply(ctx, d); err != nil || f.Ops() != ops {
				t.Errorf("re-Apply: %v, %d operations", err, f.Ops()-ops)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\n got\n%s\nwant\n%s", name, got, want)
	}
}
