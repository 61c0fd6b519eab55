package agent

import (
	"context"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/internal/netnstest"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// TestPolicyNetnsSwitch runs the agent's policy side for real: the kernel
// dataplane and STAMP loopback probes every 10 ms in a namespace CPE c,
// whose two constituent paths run through the transit End SIDs of
// namespaces a and b (via the router r) to the far node f, which
// decapsulates (End.DX6) and sends the probes back. A blackhole for
// a's SIDs in r is loss on path1: conference moves to path2 and the time
// from the loss to the installed route is logged; crm stays where it is.
// Without the loss conference comes back after its wait-to-restore.
//
//	c wan0 --- r --- a (End 2001:db8:a::1)
//	           | --- b (End 2001:db8:b::1)
//	           | --- f (End.DX6 2001:db8:2205:6::)
func TestPolicyNetnsSwitch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, programs routes and sends raw STAMP probes")
	}
	c, r := netnstest.New(t, "agp", "c"), netnstest.New(t, "agp", "r")
	ta, tb, f := netnstest.New(t, "agp", "a"), netnstest.New(t, "agp", "b"), netnstest.New(t, "agp", "f")
	netnstest.Link(t, c, "wan0", "2001:db8:1200::1/64", r, "rc", "2001:db8:1200::2/64")
	netnstest.Link(t, r, "ra", "fc00:a::1/64", ta, "a0", "fc00:a::2/64")
	netnstest.Link(t, r, "rb", "fc00:b::1/64", tb, "b0", "fc00:b::2/64")
	netnstest.Link(t, r, "rf", "fc00:f::1/64", f, "f0", "fc00:f::2/64")
	netnstest.Exec(t, c, "ip", "-6", "route", "add", "default", "via", "2001:db8:1200::2", "dev", "wan0")
	for _, rt := range [][]string{
		{"2001:db8:a::/64", "fc00:a::2"}, {"2001:db8:b::/64", "fc00:b::2"}, {"2001:db8:2200::/40", "fc00:f::2"},
		{"2001:db8:1205::/48", "2001:db8:1200::1"},
	} {
		netnstest.Exec(t, r, "ip", "-6", "route", "add", rt[0], "via", rt[1])
	}
	for _, n := range []struct{ ns, ifc, gw, sid, action string }{
		{ta, "a0", "fc00:a::1", "2001:db8:a::1", "End"},
		{tb, "b0", "fc00:b::1", "2001:db8:b::1", "End"},
		{f, "f0", "fc00:f::1", "2001:db8:2205:6::", "End.DX6 nh6 ::"},
	} {
		netnstest.Exec(t, n.ns, "ip", "-6", "route", "add", "default", "via", n.gw)
		netnstest.Exec(t, n.ns, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf."+n.ifc+".seg6_enabled=1")
		args := append([]string{"ip", "-6", "route", "add", n.sid + "/128", "encap", "seg6local", "action"}, strings.Fields(n.action)...)
		netnstest.Exec(t, n.ns, append(args, "dev", n.ifc)...)
	}

	log := zaptest.NewLogger(t)
	h, err := netns.GetFromName(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	k, err := dataplane.Open(context.Background(), dataplane.Options{WANInterface: "wan0", Logger: log, NetNS: h, SkipSysctls: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	doc := strings.Replace(policyDoc("60s"), "wan: {interface: wan0}",
		`wan: {interface: wan0, prefix_source: static, static_prefix: "2001:db8:1200::/40", static_address: "2001:db8:1200::1"}`, 1)
	const wtr = 300 * time.Millisecond
	doc = strings.Replace(doc, "default: 10, wait_to_restore: 60s}", "default: 10, wait_to_restore: 300ms}", 1)
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fb := bgp.NewFake()
	// The probes' sockets are opened in c and stay there.
	probes := func(cfg twamp.SenderConfig) (twamp.Session, error) {
		var s *twamp.Sender
		err := netnstest.Do(c, func() error {
			var err error
			s, err = twamp.NewSender(cfg, log)
			return err
		})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	ag, err := New(mustConfig(t, doc), WithLogger(log), WithDataplane(k), WithStateDir(st), WithPathProbes(probes),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }),
		WithPeerPoll(10*time.Millisecond), WithBGPSettle(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, ag)
	r6 := policyRoutes[1]
	if err := fb.SetRemoteRoutes([]bgp.RemoteRoute{{RD: r6.RD, RTs: []string{"65000:100"}, Prefix: r6.Prefix, SID: r6.SID, Behavior: r6.Behavior, NextHop: r6.NextHop}}); err != nil {
		t.Fatal(err)
	}

	// on is the colors carrying svc once the kernel holds them (none in
	// fallback or while a switch is being installed).
	on := func(svc string) []uint32 {
		for _, s := range ag.PolicyStatus()[0].Services {
			if s.Name == svc && s.Installed && !s.Fallback {
				return s.Colors
			}
		}
		return nil
	}
	waitOn := func(what, svc string, color uint32, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if slices.Equal(on(svc), []uint32{color}) {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("%s: %s not on color %d within %v; status %+v", what, svc, color, limit, ag.PolicyStatus())
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	table := func() string { return netnstest.Exec(t, c, "ip", "-6", "route", "show", "table", "3000") }
	waitOn("both paths measured", "conference", 10, 10*time.Second)
	if rt := table(); !strings.Contains(rt, "2001:db8:a::1") {
		t.Fatalf("table 3000 does not steer over path1:\n%s", rt)
	}

	// The loss is switched through netlink: an "ip" process would add its
	// own start-up time to the measurement.
	rh, err := netns.GetFromName(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rh.Close() })
	nl, err := netlink.NewHandleAt(rh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	ra, err := nl.LinkByName("ra")
	if err != nil {
		t.Fatal(err)
	}
	pathA := &net.IPNet{IP: net.ParseIP("2001:db8:a::"), Mask: net.CIDRMask(64, 128)}
	blackhole := &netlink.Route{Dst: pathA, Type: unix.RTN_BLACKHOLE}
	via := &netlink.Route{Dst: pathA, Gw: net.ParseIP("fc00:a::2"), LinkIndex: ra.Attrs().Index}

	var took, detect []time.Duration
	for rep := range 5 {
		start := time.Now()
		if err := nl.RouteReplace(blackhole); err != nil {
			t.Fatal(err)
		}
		took = append(took, waitOn("loss on path1", "conference", 20, 5*time.Second))
		evs := ag.PolicyStatus()[0].Events
		detect = append(detect, evs[len(evs)-1].At.Sub(start))
		if rt := table(); !strings.Contains(rt, "2001:db8:b::1") || strings.Contains(rt, "2001:db8:a::1") {
			t.Fatalf("rep %d: table 3000 after the switch:\n%s", rep, rt)
		}
		if s := ag.PolicyStatus()[0].Services[1]; !slices.Equal(s.Colors, []uint32{20}) {
			t.Errorf("rep %d: crm moved: %+v", rep, s)
		}
		if err := nl.RouteReplace(via); err != nil {
			t.Fatal(err)
		}
		if back := waitOn("loss over", "conference", 10, 10*time.Second); back < wtr {
			t.Errorf("rep %d: conference back on path1 %v after the loss ended, before its wait-to-restore %v", rep, back, wtr)
		}
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("loss on path1 to conference's route on path2 installed, 10 ms probes, %d runs: median %v, max %v (all %v; the selector decided after %v)",
		len(took), sorted[len(sorted)/2].Round(time.Millisecond/10), sorted[len(sorted)-1].Round(time.Millisecond/10), took, detect)
}
