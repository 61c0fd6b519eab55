package dataplane

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// randomDesired draws a Desired from small pools, so that successive
// draws overlap (unchanged, changed in place, new, gone) and now and then
// collide (the same SID twice: invalid).
func randomDesired(r *rand.Rand) Desired {
	var d Desired
	segPool := [][]netip.Addr{
		addrs("2001:db8:a1::4"),
		addrs("2001:db8:a2::4"),
		addrs("2001:db8:a1::1", "2001:db8:a3::4"),
		addrs("2001:db8:a1::1", "2001:db8:a2::1", "2001:db8:a3::6"),
	}
	seg := func() []netip.Addr { return segPool[r.IntN(len(segPool))] }
	if r.IntN(4) > 0 {
		d.Locators = []netip.Prefix{[]netip.Prefix{mustPrefix("2001:db8:12ff::/48"), mustPrefix("2001:db8:34ff::/48")}[r.IntN(2)]}
	}
	for i := r.IntN(6); i > 0; i-- {
		sid := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x12, 0xff, 0, byte(r.IntN(8))})
		var s LocalSID
		switch r.IntN(5) {
		case 0:
			s = LocalSID{SID: sid, Behavior: srv6.End}
		case 1:
			s = LocalSID{SID: sid, Behavior: srv6.EndDX4, NH4: []netip.Addr{mustAddr("0.0.0.0"), mustAddr("192.0.2.1")}[r.IntN(2)]}
		case 2:
			s = LocalSID{SID: sid, Behavior: srv6.EndDX6, NH6: mustAddr("::")}
		case 3:
			s = LocalSID{SID: sid, Behavior: srv6.EndDT6, Table: []int{0, 100}[r.IntN(2)]}
		case 4:
			s = LocalSID{SID: sid, Behavior: srv6.EndB6Encaps, Segments: seg()}
		}
		if s.Behavior == srv6.EndB6Encaps && r.IntN(2) == 0 {
			d.BSIDs = append(d.BSIDs, s)
		} else {
			d.LocalSIDs = append(d.LocalSIDs, s)
		}
	}
	used := map[rkey]bool{}
	for i := r.IntN(12); i > 0; i-- {
		var p netip.Prefix
		if r.IntN(3) == 0 {
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x99, byte(r.IntN(4))}), 64)
		} else {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(r.IntN(6)), 0, 0}), 16)
		}
		e := EncapRoute{Prefix: p, Table: []int{0, 100}[r.IntN(2)], Segments: seg(), Mode: EncapMode(r.IntN(2))}
		if r.IntN(3) == 0 {
			// A policy's share: distinct segment lists with small
			// weights, so that draws repeat, and now and then 256.
			e.Segments = nil
			for _, j := range r.Perm(len(segPool))[:1+r.IntN(3)] {
				e.Paths = append(e.Paths, EncapPath{Segments: segPool[j], Weight: []uint32{1, 3, 256}[r.IntN(3)]})
			}
		}
		if k := fakeKey(p, e.Table); !used[k] { // keep invalid draws to the SIDs
			used[k] = true
			d.Encaps = append(d.Encaps, e)
		}
	}
	flowPool := []FlowRule{
		// Rules that take each other's priority from draw to draw: a
		// changed selector on one priority (the kernel treats selectors
		// a request leaves out as wildcards).
		{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, DSCP: 46, HasDSCP: true, Table: 100},
		{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, Table: 100},
		{Priority: 601, Family: unix.AF_INET6, Dst: mustPrefix("2001:db8:99::/48"), DSCP: 10, HasDSCP: true, Table: 100},
		{Priority: 601, Family: unix.AF_INET6, Dst: mustPrefix("2001:db8:99::/48"), Table: 100},
		{Priority: 700, Family: unix.AF_INET, FwMark: 7, Table: 101},
		{Priority: 700, Family: unix.AF_INET, FwMark: 7, FwMask: 0xff, Table: 100},
	}
	taken := map[int]bool{}
	for _, j := range r.Perm(len(flowPool))[:r.IntN(4)] {
		if f := flowPool[j]; !taken[f.Priority] || r.IntN(8) == 0 { // now and then two on one priority: invalid
			taken[f.Priority] = true
			d.FlowRules = append(d.FlowRules, f)
		}
	}
	return d
}

// The Fake and the kernel, driven through the same random sequence of
// desired states, agree after every step on the outcome and on what they
// hold; and what they hold is Normalize of the last valid state.
func TestKernelMatchesFake(t *testing.T) {
	ctx := context.Background()
	n := newTestNS(t)
	k := openKernel(t, n)
	caps := k.Capabilities()
	f := NewFake(caps)
	r := rand.New(rand.NewPCG(1, 2))
	var last Desired
	invalid := 0
	for step := 0; step < 60; step++ {
		d := randomDesired(r)
		kerr, ferr := k.Apply(ctx, d), f.Apply(ctx, d)
		if (kerr == nil) != (ferr == nil) {
			t.Fatalf("step %d: kernel %v, fake %v", step, kerr, ferr)
		}
		if kerr != nil {
			if _, err := Normalize(d, caps, "wan0"); err == nil {
				t.Fatalf("step %d: a valid state failed: %v", step, kerr)
			}
			invalid++
		} else {
			last = d
		}
		kd, err := k.Installed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fd, _ := f.Installed(ctx)
		want, _ := Normalize(last, caps, "wan0")
		if !reflect.DeepEqual(kd, fd) || !reflect.DeepEqual(kd, want) {
			t.Fatalf("step %d:\nkernel %+v\nfake   %+v\nwant   %+v", step, kd, fd, want)
		}
	}
	t.Logf("%d of 60 draws invalid", invalid)
	if invalid == 0 || invalid > 40 {
		t.Errorf("%d of 60 draws invalid: the generator does not cover both paths", invalid)
	}
}
