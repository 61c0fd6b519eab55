package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// The probe must agree with iproute2 trying the same things.
func TestKernelProbeAgreesWithIproute2(t *testing.T) {
	n := newTestNS(t)
	k := openKernel(t, n)
	caps := k.Capabilities()
	try := func(args string) bool {
		_, err := n.tryIP(args)
		return err == nil
	}
	vrf := try("link add vrfx type vrf table 77")
	if vrf {
		n.ip(t, "link set vrfx up")
	}
	iproute := Capabilities{
		VRF:            vrf,
		EndDT4:         vrf && try("-6 route add 100::1/128 encap seg6local action End.DT4 vrftable 77 dev wan0"),
		EndDT46:        vrf && try("-6 route add 100::2/128 encap seg6local action End.DT46 vrftable 77 dev wan0"),
		EndDT6Table:    try("-6 route add 100::3/128 encap seg6local action End.DT6 table 77 dev wan0"),
		EncapRed:       try("-6 route add 100::4/128 encap seg6 mode encap.red segs 2001:db8::1 dev wan0"),
		EndB6Encaps:    try("-6 route add 100::5/128 encap seg6local action End.B6.Encaps srh segs 2001:db8::1 dev wan0"),
		NexthopObjects: try("-6 nexthop add id 9 encap seg6 mode encap segs 2001:db8::1 dev wan0") && try("-6 route add 100::6/128 nhid 9"),
		EndBPF:         caps.EndBPF, // iproute2 needs a pinned object; the probe's own test covers it
		// iproute2 6.1 has no dscp keyword; TestKernelFlowRulesDSCPForms
		// checks the probe against what the kernel reads back.
		RuleDSCP: caps.RuleDSCP,
	}
	if caps != iproute {
		t.Errorf("probe: %+v\niproute2: %+v", caps, iproute)
	}
	st := k.Status()
	if st.VRFLessFallback != !caps.VRF {
		t.Errorf("status VRFLessFallback %v with VRF %v", st.VRFLessFallback, caps.VRF)
	}
	if !vrf && !strings.Contains(strings.Join(st.ProbeNotes, ";"), "VRF device") {
		t.Errorf("no probe note says why VRF is missing: %v", st.ProbeNotes)
	}
	t.Logf("capabilities %+v, notes %v", caps, st.ProbeNotes)
}

// In a fresh namespace loopback is down, which makes the kernel refuse every
// probe route; the probe brings it up instead of reporting no capabilities.
func TestKernelProbeWithLoopbackDown(t *testing.T) {
	n := newTestNS(t)
	n.ip(t, "link set lo down")
	caps := openKernel(t, n).Capabilities()
	if !caps.EndDT6Table || !caps.EndB6Encaps {
		t.Errorf("with loopback down at start the probe found %+v", caps)
	}
	if out := n.ip(t, "link show lo"); !strings.Contains(out, ",UP") {
		t.Errorf("loopback not brought up: %s", out)
	}
}

// The probe leaves nothing behind and sets (and reports) the sysctls.
func TestKernelOpenLeavesNothing(t *testing.T) {
	n := newTestNS(t)
	links := n.ip(t, "link show")
	// A foreign nexthop object on the id the probe would use first.
	n.ip(t, fmt.Sprintf("nexthop add id %d blackhole proto static", probeNHID))
	foreign := n.ip(t, "nexthop show")
	k := openKernel(t, n)
	if got := n.ip(t, "-6 route show table all proto 198") + n.ip(t, "-4 route show table all proto 198") + n.ip(t, "nexthop show"); got != foreign {
		t.Errorf("probe left routes or nexthops, or took the foreign one:\n%s", got)
	}
	if !k.Capabilities().NexthopObjects {
		t.Errorf("nexthop probe failed on a taken id: %v", k.Status().ProbeNotes)
	}
	if got := n.ip(t, "link show"); got != links {
		t.Errorf("probe changed links:\n%s\nwas\n%s", got, links)
	}
	want := map[string]string{
		"net.ipv6.conf.all.forwarding":    "1",
		"net.ipv4.ip_forward":             "1",
		"net.ipv6.conf.all.seg6_enabled":  "1",
		"net.ipv6.conf.wan0.seg6_enabled": "1",
		"net.ipv6.conf.wan0.accept_ra":    "2",
	}
	for _, s := range k.Status().Sysctls {
		if w, ok := want[s.Name]; ok {
			if s.Value != w || s.Err != "" {
				t.Errorf("sysctl %+v, want value %s", s, w)
			}
			if got := sysctlIn(t, n, s.Name); got != w {
				t.Errorf("%s is %s in the namespace, want %s", s.Name, got, w)
			}
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("sysctls not reported: %v", want)
	}
}

func sysctlIn(t *testing.T, n *testNS, name string) string {
	t.Helper()
	var v string
	err := inNetns(n.h, func() error {
		b, err := os.ReadFile(sysctlPath(name))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every behaviour this kernel supports is installed, read back (netlink
// and iproute2) and removed.
func TestKernelBehaviours(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	n.ip(t, "-6 route add fc00:ffff::2/128 dev wan0")
	k := openKernel(t, n)
	caps := k.Capabilities()
	sid := mustAddr("2001:db8:12ff:1::")
	segs := addrs("2001:db8:a1::1", "2001:db8:a2::4")
	cases := []struct {
		name    string
		need    bool
		d       Desired
		iproute string // what `ip route show proto 198` says
	}{
		{"locator", true, Desired{Locators: []netip.Prefix{mustPrefix("2001:db8:12ff::/48")}}, "unreachable 2001:db8:12ff::/48 dev lo"},
		{"End", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.End}}}, "2001:db8:12ff:1::  encap seg6local action End dev wan0"},
		{"End.X", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndX, NH6: mustAddr("fc00:ffff::2")}}}, "action End.X nh6 fc00:ffff::2 dev wan0"},
		{"End.T", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndT, Table: 100}}}, "action End.T table 100 dev wan0"},
		{"End.DX4 lookup", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX4, NH4: mustAddr("0.0.0.0")}}}, "action End.DX4 nh4 0.0.0.0 dev wan0"},
		{"End.DX4 next hop", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX4, NH4: mustAddr("192.0.2.1")}}}, "action End.DX4 nh4 192.0.2.1 dev wan0"},
		{"End.DX6 lookup", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDX6, NH6: mustAddr("::")}}}, "action End.DX6 nh6 :: dev wan0"},
		{"End.DT6 main", true, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT6}}}, "action End.DT6 table main dev wan0"},
		{"End.DT6 table", caps.EndDT6Table, Desired{LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT6, Table: 100}}}, "action End.DT6 table 100 dev wan0"},
		{"End.DT4 vrf", caps.EndDT4, Desired{VRFs: []VRF{{"vpn1", 100}}, LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT4, VRF: "vpn1"}}}, "action End.DT4 vrftable 100 dev wan0"},
		{"End.DT46 vrf", caps.EndDT46, Desired{VRFs: []VRF{{"vpn1", 100}}, LocalSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndDT46, VRF: "vpn1"}}}, "action End.DT46 vrftable 100 dev wan0"},
		{"End.B6.Encaps", caps.EndB6Encaps, Desired{BSIDs: []LocalSID{{SID: sid, Behavior: srv6.EndB6Encaps, Segments: segs}}}, "action End.B6.Encaps segs 2 [ 2001:db8:a1::1 2001:db8:a2::4 ] dev wan0"},
		{"H.Encaps v4", true, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.1.0.0/24"), Segments: segs}}}, "10.1.0.0/24 nhid N  encap seg6 mode encap segs 2 [ 2001:db8:a1::1 2001:db8:a2::4 ] dev wan0"},
		{"H.Encaps v6 table", true, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("2001:db8:99::/64"), Table: 100, Segments: segs}}}, "2001:db8:99::/64 nhid N  encap seg6 mode encap segs 2 [ 2001:db8:a1::1 2001:db8:a2::4 ] dev wan0 table 100"},
		{"H.Encaps.Red", caps.EncapRed, Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.1.0.0/24"), Segments: segs, Mode: EncapRed}}}, "mode encap.red segs 2 [ 2001:db8:a1::1 2001:db8:a2::4 ]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.need {
				if err := k.Apply(ctx, c.d); err == nil {
					t.Errorf("Apply of an unsupported behaviour succeeded")
				} else if !strings.Contains(err.Error(), "nothing applied") {
					t.Errorf("unsupported behaviour: %v, want a validation error", err)
				}
				t.Skipf("this kernel cannot: %+v", caps)
			}
			if err := k.Apply(ctx, c.d); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := ourRoutes(t, n); !strings.Contains(got, c.iproute) {
				t.Errorf("ip route shows\n%s\nwant a line with %q", got, c.iproute)
			}
			want, _ := Normalize(c.d, caps, "wan0")
			if got, err := k.Installed(ctx); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Installed: %v\n got %+v\nwant %+v", err, got, want)
			}
			if err := k.Apply(ctx, Desired{}); err != nil {
				t.Fatalf("Apply(empty): %v", err)
			}
			if got := ourRoutes(t, n) + nexthops(t, n, "198"); got != "" {
				t.Errorf("left after removal:\n%s", got)
			}
		})
	}
}

// A route or nexthop object deleted behind the agent's back comes back on
// the next Apply.
func TestKernelRestoresDeleted(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	n.ip(t, "-6 route add fc00:ffff::2/128 dev wan0")
	k := openKernel(t, n)
	d := goldenDesired()
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	want := ourRoutes(t, n)
	n.ip(t, "-4 route del 10.1.1.0/24")
	n.ip(t, "-6 route del 2001:db8:12ff:4::/128")
	n.ip(t, "-6 route del unreachable 2001:db8:12ff::/48")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t, n); got != want {
		t.Errorf("after restore:\n%s\nwant\n%s", got, want)
	}
	// Deleting a nexthop object takes its routes with it.
	id := strings.Fields(nexthops(t, n, "198"))[1]
	n.ip(t, "nexthop del id "+id)
	if got := ourRoutes(t, n); got == want {
		t.Fatalf("deleting nexthop %s removed no route", id)
	}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t, n); got != want {
		t.Errorf("after nexthop restore:\n%s\nwant\n%s", got, want)
	}
	// A route of ours changed behind our back is put right.
	n.ip(t, "-4 route replace 10.1.0.0/24 proto 198 encap seg6 mode encap segs 2001:db8:bad::1 dev wan0")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t, n); got != want {
		t.Errorf("after repair:\n%s\nwant\n%s", got, want)
	}
}

// A foreign route on the very key we want is left alone and reported; the
// rest is applied; once it is gone the next Apply converges.
func TestKernelForeignOnOurKey(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	n.ip(t, "-6 route add fc00:ffff::2/128 dev wan0")
	k := openKernel(t, n)
	n.ip(t, "-4 route add 10.1.1.0/24 proto static dev wan0")
	n.ip(t, "-6 route add 2001:db8:12ff:1::/128 proto static dev wan0")
	d := goldenDesired()
	err := k.Apply(ctx, d)
	var ae *ApplyError
	if !errors.As(err, &ae) || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("Apply: %v, want an ApplyError with EEXIST", err)
	}
	if len(ae.Failed) != 2 || !strings.Contains(err.Error(), "add route 10.1.1.0/24") ||
		!strings.Contains(err.Error(), "add route 2001:db8:12ff:1::/128") || !strings.Contains(err.Error(), "another protocol") {
		t.Errorf("error does not name both routes: %v", err)
	}
	if ae.Applied == 0 {
		t.Errorf("nothing else applied: %v", err)
	}
	if got := n.ip(t, "-4 route show proto static") + n.ip(t, "-6 route show proto static"); !strings.Contains(got, "10.1.1.0/24 dev wan0") || !strings.Contains(got, "2001:db8:12ff:1:: dev wan0") {
		t.Errorf("foreign routes touched:\n%s", got)
	}
	if st := k.Status(); st.LastError == "" {
		t.Errorf("status does not carry the error")
	}
	n.ip(t, "-4 route del 10.1.1.0/24 proto static")
	n.ip(t, "-6 route del 2001:db8:12ff:1::/128 proto static")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatalf("converging Apply: %v", err)
	}
	want, _ := Normalize(d, k.Capabilities(), "wan0")
	if got, _ := k.Installed(ctx); !reflect.DeepEqual(got, want) {
		t.Errorf("not converged:\n got %+v\nwant %+v", got, want)
	}
}

// A new delegated prefix: new SIDs in, old ones out, nothing stale.
func TestKernelPrefixChange(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	mk := func(loc string) Desired {
		p := mustPrefix(loc)
		a := p.Addr().As16()
		sid := func(f byte) netip.Addr { b := a; b[7] = f; return netip.AddrFrom16(b) }
		return Desired{
			Locators: []netip.Prefix{p},
			LocalSIDs: []LocalSID{
				{SID: sid(1), Behavior: srv6.End},
				{SID: sid(4), Behavior: srv6.EndDX4, NH4: mustAddr("0.0.0.0")},
				{SID: sid(6), Behavior: srv6.EndDX6, NH6: mustAddr("::")},
			},
		}
	}
	if err := k.Apply(ctx, mk("2001:db8:12ff::/48")); err != nil {
		t.Fatal(err)
	}
	if err := k.Apply(ctx, mk("2001:db8:34ff::/48")); err != nil {
		t.Fatal(err)
	}
	got := ourRoutes(t, n)
	if strings.Contains(got, "12ff") || strings.Count(got, "34ff") != 4 {
		t.Errorf("after the prefix change:\n%s", got)
	}
}

// Without carrier on the WAN a nexthop object cannot be made: the routes
// carry their encap inline and nothing fails. When the kernel flushes
// nexthop objects (carrier loss) the next Apply restores the routes.
func TestKernelNoCarrier(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	d := Desired{Encaps: []EncapRoute{
		{Prefix: mustPrefix("10.1.0.0/24"), Segments: addrs("2001:db8:a2::4")},
		{Prefix: mustPrefix("10.2.0.0/24"), Paths: []EncapPath{{addrs("2001:db8:a2::4"), 3}, {addrs("2001:db8:a3::4"), 1}}},
	}}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t, n); strings.Count(got, "nhid") != 2 {
		t.Fatalf("want nexthop objects with carrier: %s", got)
	}
	n.ip(t, "link set peer0 down") // wan0 loses carrier; the kernel flushes its nexthops
	if err := k.Apply(ctx, d); err != nil {
		t.Fatalf("Apply without carrier: %v", err)
	}
	got := ourRoutes(t, n)
	if !strings.Contains(got, "10.1.0.0/24  encap seg6 mode encap segs 1 [ 2001:db8:a2::4 ] dev wan0") ||
		!strings.Contains(got, "10.2.0.0/24 scope link linkdown \n\tnexthop  encap seg6 mode encap segs 1 [ 2001:db8:a2::4 ] dev wan0 weight 3") {
		t.Errorf("want the routes with inline encap:\n%s", got)
	}
	checkInstalled(t, k, d)
	n.ip(t, "link set peer0 up")
	got = strings.ReplaceAll(got, " linkdown", "")
	if err := k.Apply(ctx, d); err != nil || ourRoutes(t, n) != got {
		t.Errorf("with carrier back, an inline route that is right must stay: %v\n%s", err, ourRoutes(t, n))
	}
}

// A foreign route using one of our nexthop objects keeps it alive (the
// kernel would delete the route with the object).
func TestKernelNexthopUsedByForeignRoute(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	d := Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.1.0.0/24"), Segments: addrs("2001:db8:a2::4")}}}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	id := strings.Fields(nexthops(t, n, "198"))[1]
	n.ip(t, "-4 route add 10.99.0.0/24 proto static nhid "+id)
	if err := k.Apply(ctx, Desired{}); err != nil {
		t.Fatal(err)
	}
	if got := n.ip(t, "-4 route show proto static"); !strings.Contains(got, "10.99.0.0/24 nhid "+id) {
		t.Errorf("foreign route lost: %q", got)
	}
	if got := ourRoutes(t, n); got != "" {
		t.Errorf("our routes left: %s", got)
	}
	n.ip(t, "-4 route del 10.99.0.0/24 proto static")
	if err := k.Apply(ctx, Desired{}); err != nil {
		t.Fatal(err)
	}
	if got := nexthops(t, n, "198"); got != "" {
		t.Errorf("unused nexthop object left: %s", got)
	}
}

// An invalid Desired changes nothing, and the error names the bad value.
func TestKernelInvalidAppliesNothing(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	d := goldenDesired()
	d.Encaps = d.Encaps[:1]
	d.LocalSIDs = d.LocalSIDs[:1]
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	before := ourRoutes(t, n)
	bad := goldenDesired()
	bad.Encaps = append(bad.Encaps, EncapRoute{Prefix: mustPrefix("10.3.0.0/24"), Segments: addrs("2001:db8::1"), Dev: "nosuch0"})
	err := k.Apply(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "nosuch0") || !strings.Contains(err.Error(), "10.3.0.0/24") {
		t.Fatalf("Apply: %v, want an error naming the device and the route", err)
	}
	if got := ourRoutes(t, n); got != before {
		t.Errorf("an invalid Apply changed routes:\n%s\nwas\n%s", got, before)
	}
	vrf := goldenDesired()
	vrf.VRFs = []VRF{{"vpn1", 100}}
	if !k.Capabilities().VRF {
		if err := k.Apply(ctx, vrf); err == nil || !strings.Contains(err.Error(), `VRF "vpn1"`) {
			t.Errorf("Apply with a VRF on a kernel without: %v", err)
		}
	}
}

// Concurrent Applies serialise; the last one wins.
func TestKernelConcurrentApply(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := Desired{Encaps: vpnEncaps(50+i, 2)}
			if err := k.Apply(ctx, d); err != nil {
				t.Errorf("Apply %d: %v", i, err)
			}
			_, _ = k.Installed(ctx)
			_ = k.Status()
		}(i)
	}
	wg.Wait()
	d := Desired{Encaps: vpnEncaps(10, 2)}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(ourRoutes(t, n), "\n"); got != 10 {
		t.Errorf("%d routes, want 10", got)
	}
	if got := k.Status(); got.Routes != 10 || got.Nexthops != 2 || got.Applies != 5 {
		t.Errorf("status %+v", got)
	}
}

// Apply after Close fails cleanly.
func TestKernelClosed(t *testing.T) {
	n := newTestNS(t)
	k := openKernel(t, n)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Apply(context.Background(), Desired{}); !errors.Is(err, errClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
	if _, err := k.Installed(context.Background()); !errors.Is(err, errClosed) {
		t.Errorf("Installed after Close: %v", err)
	}
	_ = k.Status()
}

// A large apply goes through the streamed path: install, change half in
// place (new segment lists: new nexthop objects, the old ones pruned),
// then remove.
func TestKernelLargeApply(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	d := Desired{Encaps: vpnEncaps(3*streamMin, 3)}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	want, _ := Normalize(d, k.Capabilities(), "wan0")
	if got, err := k.Installed(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Installed after the first apply: %v (%d encaps, want %d)", err, len(got.Encaps), len(want.Encaps))
	}
	for i := range d.Encaps {
		if i%2 == 0 {
			d.Encaps[i].Segments = addrs("2001:db8:ff::1", "2001:db8:ff::2")
		} else {
			d.Encaps[i].Segments = addrs("2001:db8:ff::3")
		}
	}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	want, _ = Normalize(d, k.Capabilities(), "wan0")
	if got, err := k.Installed(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Installed after the change: %v", err)
	}
	if nh := strings.Count(nexthops(t, n, "198"), "id "); nh != 2 {
		t.Errorf("%d nexthop objects, want the 2 in use", nh)
	}
	if st := k.Status(); st.Routes != len(d.Encaps) || st.Nexthops != 2 {
		t.Errorf("status %+v", st)
	}
	if err := k.Apply(ctx, Desired{}); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t, n) + nexthops(t, n, "198"); got != "" {
		t.Errorf("left after removal: %.200s", got)
	}
}

// Many distinct segment lists: one nexthop object each.
func TestKernelManySpecs(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	d := Desired{Encaps: vpnEncaps(1000, 1)}
	for i := range d.Encaps {
		a := d.Encaps[i].Segments[0].As16()
		a[14], a[15] = byte(i>>8), byte(i)
		d.Encaps[i].Segments = []netip.Addr{netip.AddrFrom16(a)}
	}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	want, _ := Normalize(d, k.Capabilities(), "wan0")
	if got, err := k.Installed(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Installed: %v", err)
	}
	if st := k.Status(); st.Nexthops != 1000 || st.Routes != 1000 {
		t.Errorf("status %+v", st)
	}
}

// The route part of the state a read fills: a duplicate key or an odd
// priority goes to extra (the first route on a key stays), and a retried
// dump forgets exactly what that dump added.
func TestStateRoutes(t *testing.T) {
	var st state
	st.resetNexthops()
	segs := packSegs(addrs("2001:db8::1"))
	st.nhs[7] = knh{ID: 7, Proto: RouteProtocol, Simple: true, Spec: encapSpec{Mode: seg6ModeEnc, Dev: 2, Segs: segs}}
	r4 := func(p string, nhid uint32) kroute {
		return kroute{Key: rkey{unix.AF_INET, tableMain, mustPrefix(p)}, Prio: prio4, Proto: RouteProtocol, NHID: nhid, Val: rval{Kind: kindEncap}}
	}
	r6 := kroute{Key: rkey{unix.AF_INET6, tableMain, mustPrefix("2001:db8:1::/48")}, Prio: prio6, Proto: RouteProtocol, Val: rval{Kind: kindUnreachable}}
	st.newRoutes(0)
	st.addRoute(r4("10.0.0.0/24", 7))
	dup := r4("10.0.0.0/24", 9) // an object that is not ours
	st.addRoute(dup)
	odd := r4("10.0.1.0/24", 0)
	odd.Prio = 5
	st.addRoute(odd)
	if got := st.routes[r4("10.0.0.0/24", 0).Key]; got.Segs != segs || got.Kind != kindEncap || st.nhOf[dup.Key] != 7 {
		t.Fatalf("first route on the key: %+v (object %d)", got, st.nhOf[dup.Key])
	}
	if len(st.extra) != 2 || st.extra[0].NHID != 9 || st.extra[0].Val.Kind != kindOther || st.extra[1].Prio != 5 {
		t.Fatalf("extra: %+v", st.extra)
	}
	// The IPv6 dump is interrupted after one route and retried.
	n, nx := len(st.order), len(st.extra)
	st.addRoute(r6)
	st.addRoute(r4("10.0.2.0/24", 0))
	st.dropRoutes(n, nx)
	if len(st.routes) != 1 || len(st.order) != 1 || len(st.extra) != 2 || len(st.nhOf) != 1 {
		t.Fatalf("after the retry's reset: %d routes, order %v, %d extra", len(st.routes), st.order, len(st.extra))
	}
	st.addRoute(r6)
	if len(st.routes) != 2 || st.order[1] != r6.Key {
		t.Fatalf("after the retry: order %v", st.order)
	}
}
