package dataplane

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestFakeRecords(t *testing.T) {
	ctx := context.Background()
	f := NewFake(labCaps)
	d := goldenDesired()
	if err := f.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	want, _ := Normalize(d, labCaps, "wan0")
	if got, _ := f.Installed(ctx); !reflect.DeepEqual(got, want) {
		t.Errorf("Installed:\n got %+v\nwant %+v", got, want)
	}
	// 15 routes and 3 flow rules.
	if f.Applies() != 1 || f.Ops() != 18 || len(f.Routes()) != 15 {
		t.Errorf("applies %d ops %d routes %d", f.Applies(), f.Ops(), len(f.Routes()))
	}
	if st := f.Status(); !st.VRFLessFallback || st.Routes != 15 || st.Rules != 3 || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
	if err := f.Apply(ctx, Desired{}); err != nil || len(f.Routes()) != 0 || f.Ops() != 36 {
		t.Errorf("Apply(empty): %v, %d routes, %d ops", err, len(f.Routes()), f.Ops())
	}
}

// FailNext fails operations one by one, as the kernel would: the rest is
// applied, the error says what failed, and the next Apply converges.
func TestFakeFailNext(t *testing.T) {
	ctx := context.Background()
	for _, errno := range []error{unix.EEXIST, unix.ENOMEM, unix.EBUSY} {
		t.Run(errno.Error(), func(t *testing.T) {
			f := NewFake(labCaps)
			d := goldenDesired()
			d.FlowRules = nil // rules go first; this is about routes
			f.FailNext(2, errno)
			err := f.Apply(ctx, d)
			var ae *ApplyError
			if !errors.As(err, &ae) || !errors.Is(err, errno) {
				t.Fatalf("Apply: %v, want an ApplyError wrapping %v", err, errno)
			}
			if len(ae.Failed) != 2 || ae.Applied != 13 {
				t.Errorf("failed %d applied %d: %v", len(ae.Failed), ae.Applied, err)
			}
			// The first two changes go first: the locator and the first SID.
			if !strings.Contains(err.Error(), "add route 2001:db8:12ff::/48") || !strings.Contains(err.Error(), "add route 2001:db8:12ff:1::/128") {
				t.Errorf("error does not name the failed routes: %v", err)
			}
			if len(f.Routes()) != 13 || f.Status().LastError == "" {
				t.Errorf("%d routes held, status %+v", len(f.Routes()), f.Status())
			}
			if err := f.Apply(ctx, d); err != nil {
				t.Fatalf("converging Apply: %v", err)
			}
			if len(f.Routes()) != 15 || f.Ops() != 15 || f.Applies() != 2 {
				t.Errorf("after converging: %d routes, %d ops, %d applies", len(f.Routes()), f.Ops(), f.Applies())
			}
		})
	}
}

func TestFakeForeignOnOurKey(t *testing.T) {
	ctx := context.Background()
	f := NewFake(labCaps)
	f.AddForeignRoute(mustPrefix("10.9.0.0/16"), 100)
	err := f.Apply(ctx, goldenDesired())
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "10.9.0.0/16 table 100") {
		t.Fatalf("Apply: %v", err)
	}
	if len(f.Routes()) != 14 {
		t.Errorf("%d routes, want all but the clashing one", len(f.Routes()))
	}
}

func TestFakeInvalidAppliesNothing(t *testing.T) {
	ctx := context.Background()
	f := NewFake(labCaps)
	d := goldenDesired()
	d.LocalSIDs = append(d.LocalSIDs, LocalSID{SID: mustAddr("2001:db8:12ff:9::"), Behavior: srv6.EndDT4, Table: 10})
	err := f.Apply(ctx, d)
	if err == nil || !strings.Contains(err.Error(), "2001:db8:12ff:9::") || !strings.Contains(err.Error(), "nothing applied") {
		t.Fatalf("Apply: %v", err)
	}
	if len(f.Routes()) != 0 || f.Ops() != 0 || f.Applies() != 1 {
		t.Errorf("an invalid Apply changed state: %v", f.Routes())
	}
}

// The VRF path, which the lab kernel cannot run: VRF names resolve to
// tables in route keys and seg6local vrftable, VRFs come and go.
func TestFakeVRFs(t *testing.T) {
	ctx := context.Background()
	f := NewFake(allCaps)
	d := Desired{
		VRFs: []VRF{{"vpn1", 100}, {"vpn2", 200}},
		LocalSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:12ff:4::"), Behavior: srv6.EndDT4, VRF: "vpn1"},
			{SID: mustAddr("2001:db8:12ff:46::"), Behavior: srv6.EndDT46, VRF: "vpn2"},
		},
		Encaps: []EncapRoute{{Prefix: mustPrefix("10.1.0.0/24"), VRF: "vpn1", Segments: addrs("2001:db8:a2::4")}},
	}
	if err := f.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"10.1.0.0/24 encap seg6 mode encap segs [ 2001:db8:a2::4 ] dev wan0 table 100",
		"2001:db8:12ff:4::/128 encap seg6local action End.DT4 vrftable 100 dev wan0",
		"2001:db8:12ff:46::/128 encap seg6local action End.DT46 vrftable 200 dev wan0",
	}
	if got := f.Routes(); !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	norm, _ := Normalize(d, allCaps, "wan0")
	if got, _ := f.Installed(ctx); !reflect.DeepEqual(got, norm) {
		t.Errorf("Installed:\n got %+v\nwant %+v", got, norm)
	}
	d.VRFs = d.VRFs[:1]
	d.LocalSIDs = d.LocalSIDs[:1]
	if err := f.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Installed(ctx); !reflect.DeepEqual(got.VRFs, []VRF{{"vpn1", 100}}) || len(got.LocalSIDs) != 1 {
		t.Errorf("after dropping vpn2: %+v", got)
	}
}

// The VRF path at the level of the netlink requests: every route planned
// for a VRF state encodes to a request that decodes back to it.
func TestVRFRequests(t *testing.T) {
	d := Desired{
		VRFs: []VRF{{"vpn1", 100}, {"vpn2", 1000}},
		LocalSIDs: []LocalSID{
			{SID: mustAddr("2001:db8:12ff:4::"), Behavior: srv6.EndDT4, VRF: "vpn1"},
			{SID: mustAddr("2001:db8:12ff:46::"), Behavior: srv6.EndDT46, VRF: "vpn2"},
			{SID: mustAddr("2001:db8:12ff:6::"), Behavior: srv6.EndDT6, VRF: "vpn2"},
		},
		Encaps: []EncapRoute{
			{Prefix: mustPrefix("10.1.0.0/24"), VRF: "vpn1", Segments: addrs("2001:db8:a2::4")},
			{Prefix: mustPrefix("2001:db8:99::/64"), VRF: "vpn2", Segments: addrs("2001:db8:a2::6"), Mode: EncapRed},
		},
	}
	ds, err := plan(d, allCaps, "wan0", &fakeNames{})
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]uint32{}
	for _, key := range ds.order {
		v := ds.routes[key]
		var w wbuf
		w.putRoute(1, key, v, 0, false)
		r, err := decodeRoute(w.b[sizeofNlmsghdr:], nil)
		if err != nil || r.Key != key || r.Val != v {
			t.Errorf("%s: decoded %+v %v, want %+v", key, r, err, v)
		}
		tables[key.Dst.String()] = key.Table
		if v.VRFTable != 0 {
			tables[key.Dst.String()+" vrftable"] = v.VRFTable
		}
		if v.Table != 0 && v.Kind == kindLocal {
			tables[key.Dst.String()+" table"] = v.Table
		}
	}
	want := map[string]uint32{
		"2001:db8:12ff:4::/128": tableMain, "2001:db8:12ff:4::/128 vrftable": 100,
		"2001:db8:12ff:46::/128": tableMain, "2001:db8:12ff:46::/128 vrftable": 1000,
		"2001:db8:12ff:6::/128": tableMain, "2001:db8:12ff:6::/128 table": 1000,
		"10.1.0.0/24": 100, "2001:db8:99::/64": 1000,
	}
	if !reflect.DeepEqual(tables, want) {
		t.Errorf("tables %v, want %v", tables, want)
	}
}

func TestFakeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := NewFake(labCaps)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%3 == 0 {
				f.FailNext(1, unix.EBUSY)
			}
			_ = f.Apply(ctx, Desired{Encaps: vpnEncaps(20+i, 2)})
			_, _ = f.Installed(ctx)
			_ = f.Routes()
			_ = f.Status()
		}(i)
	}
	wg.Wait()
	f.FailNext(0, nil)
	if err := f.Apply(ctx, Desired{Encaps: vpnEncaps(5, 1)}); err != nil || len(f.Routes()) != 5 || f.Applies() != 9 {
		t.Errorf("after concurrent use: %v, %d routes, %d applies", err, len(f.Routes()), f.Applies())
	}
}
