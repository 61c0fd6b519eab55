package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestFake(t *testing.T) {
	f := NewFake()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	w := f.Watch(ctx)
	<-w // the initial, empty set

	if err := f.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetExports([]Export{validExport()}); err != nil {
		t.Fatal(err)
	}
	if got := f.Exports(); len(got) != 1 || got[0].Instance != "red" {
		t.Errorf("Exports() = %+v", got)
	}
	bad := validExport()
	bad.RD = "x"
	if err := f.SetExports([]Export{bad}); err == nil {
		t.Error("SetExports accepted a bad RD")
	}
	if got := f.Exports(); len(got) != 1 || got[0].RD != "65000:1" {
		t.Errorf("a rejected SetExports changed Exports(): %+v", got)
	}

	err := f.SetRemoteRoutes([]RemoteRoute{
		{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: netip.MustParsePrefix("192.168.2.0/24"),
			SID: netip.MustParseAddr("fd00:b::100"), Behavior: srv6.Opaque, NextHop: netip.MustParseAddr("2001:db8::2")},
		{RD: "65000:3", RTs: []string{"65000:300"}, Prefix: netip.MustParsePrefix("192.168.3.0/24"),
			SID: netip.MustParseAddr("fd00:c::100"), Behavior: srv6.EndDT4},
		// Our own SID reflected back is not a route.
		{RD: "65000:1", RTs: []string{"65000:100"}, Prefix: netip.MustParsePrefix("192.168.1.0/24"),
			SID: validExport().SID, Behavior: srv6.EndDT46},
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := waitRoutes(t, w, 5*time.Second, "fake routes", func(rs []Route) bool { return len(rs) == 1 })
	if r := rs[0]; r.Instance != "red" || r.Behavior != srv6.EndDT4 || r.RD != "65000:2" || r.SID != netip.MustParseAddr("fd00:b::100") {
		t.Errorf("route %+v", r)
	}
	if err := f.SetRemoteRoutes([]RemoteRoute{{RD: "65000:2", Prefix: netip.MustParsePrefix("2001:db8::/64"), Behavior: srv6.EndDT4}}); err == nil ||
		!strings.Contains(err.Error(), "2001:db8::/64") {
		t.Errorf("End.DT4 on an IPv6 prefix: %v, want an error naming the route", err)
	}
	f.SetPeers([]PeerState{{Address: netip.MustParseAddr("2001:db8::100"), State: StateEstablished}})
	if ps := f.Peers(); len(ps) != 1 || ps[0].State != StateEstablished {
		t.Errorf("Peers() = %+v", ps)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
