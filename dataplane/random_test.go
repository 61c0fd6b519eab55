package dataplane

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

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
		if k := fakeKey(p, e.Table); !used[k] { // keep invalid draws to the SIDs
			used[k] = true
			d.Encaps = append(d.Encaps, e)
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
