package bgp

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// twoSpeakers starts A (127.0.0.1, active) and B (127.0.0.2, passive) in one
// AS, peering directly over loopback.
func twoSpeakers(t testing.TB) (a, b *Speaker, stopA, stopB func()) {
	t.Helper()
	portB := freePort(t, "127.0.0.2")
	var err error
	a, err = New(Config{
		LocalAS: 65000, RouterID: "10.0.0.1", ListenPort: -1,
		Neighbors: []Neighbor{{Address: "127.0.0.2", RemoteAS: 65000, Port: uint16(portB), SourceAddress: "127.0.0.1", ConnectRetry: 1}},
	}, testLogger(t, "A"))
	if err != nil {
		t.Fatal(err)
	}
	b, err = New(Config{
		LocalAS: 65000, RouterID: "10.0.0.2", ListenPort: portB, ListenAddresses: []string{"127.0.0.2"},
		Neighbors: []Neighbor{{Address: "127.0.0.1", RemoteAS: 65000, Passive: true}},
	}, testLogger(t, "B"))
	if err != nil {
		t.Fatal(err)
	}
	stopB = runSpeaker(t, b)
	stopA = runSpeaker(t, a)
	return a, b, stopA, stopB
}

func exportA(sid string) []Export {
	return []Export{{
		Instance: "red", RD: "65000:1", ExportRTs: []string{"65000:100"},
		Prefixes: prefixes("192.168.1.0/24", "2001:db8:1::/64"),
		SID:      netip.MustParseAddr(sid), Behavior: srv6.EndDT46, Structure: testStructure,
		NextHop: netip.MustParseAddr("2001:db8:ffff::1"),
	}, {
		Instance: "blue", RD: "10.0.0.1:2", ExportRTs: []string{"65000:200"},
		Prefixes: prefixes("10.1.0.0/16"),
		SID:      netip.MustParseAddr("fd00:a:0:0:200::"), Behavior: srv6.EndDX4, Structure: testStructure,
		NextHop: netip.MustParseAddr("2001:db8:ffff::1"),
	}}
}

func TestTwoSpeakersExchangeRenumberWithdraw(t *testing.T) {
	a, b, stopA, _ := twoSpeakers(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A exports before and after Run alike; B imports red only.
	if err := a.SetExports(exportA("fd00:a:0:0:100::")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		t.Fatal(err)
	}
	// B's own export carries the RT it imports: it must not come back as a route.
	if err := b.SetExports([]Export{{
		Instance: "red", RD: "65000:11", ExportRTs: []string{"65000:100"},
		Prefixes: prefixes("192.168.2.0/24"),
		SID:      netip.MustParseAddr("fd00:b:0:0:100::"), Behavior: srv6.EndDT4, Structure: testStructure,
		NextHop: netip.MustParseAddr("2001:db8:ffff::2"),
	}}); err != nil {
		t.Fatal(err)
	}
	wa, wb := a.Watch(ctx), b.Watch(ctx)
	waitEstablished(t, a, 10*time.Second)

	rs := waitRoutes(t, wb, 10*time.Second, "B learns red from A", func(rs []Route) bool {
		return len(rs) == 2 && hasRoute(rs, "red", "192.168.1.0/24", "fd00:a:0:0:100::") && hasRoute(rs, "red", "2001:db8:1::/64", "fd00:a:0:0:100::")
	})
	for _, r := range rs {
		if r.Behavior != srv6.EndDT46 || r.NextHop != netip.MustParseAddr("2001:db8:ffff::1") || r.RD != "65000:1" {
			t.Errorf("route %+v: want End.DT46, next hop 2001:db8:ffff::1, RD 65000:1", r)
		}
	}
	waitRoutes(t, wa, 10*time.Second, "A learns B's red route", func(rs []Route) bool {
		return len(rs) == 1 && hasRoute(rs, "red", "192.168.2.0/24", "fd00:b:0:0:100::") && rs[0].Behavior == srv6.EndDT4
	})
	if got := b.Routes(); len(got) != 2 {
		t.Errorf("B.Routes() = %d routes, want 2:\n%s", len(got), fmtRoutes(got))
	}

	// RT filtering: importing blue's RT on B brings the End.DX4 route in.
	if err := b.SetImports([]ImportPolicy{
		{Instance: "red", ImportRTs: []string{"65000:100"}},
		{Instance: "blue", ImportRTs: []string{"65000:200"}},
	}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, wb, 10*time.Second, "B imports blue", func(rs []Route) bool {
		for _, r := range rs {
			if r.Instance == "blue" && r.Prefix == netip.MustParsePrefix("10.1.0.0/16") {
				return r.Behavior == srv6.EndDX4 && r.RD == "10.0.0.1:2" && len(rs) == 3
			}
		}
		return false
	})

	// Renumbering: a new SID replaces the old one; the old one is gone.
	if err := a.SetExports(exportA("fd00:a:0:0:999::")); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, wb, 10*time.Second, "B moves to the new SID", func(rs []Route) bool {
		for _, r := range rs {
			if r.Instance == "red" && r.SID != netip.MustParseAddr("fd00:a:0:0:999::") {
				return false
			}
		}
		return hasRoute(rs, "red", "192.168.1.0/24", "fd00:a:0:0:999::") && hasRoute(rs, "red", "2001:db8:1::/64", "fd00:a:0:0:999::")
	})

	// Withdrawal: dropping a prefix from the export withdraws it.
	ex := exportA("fd00:a:0:0:999::")
	ex[0].Prefixes = prefixes("192.168.1.0/24")
	if err := a.SetExports(ex); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, wb, 10*time.Second, "B loses 2001:db8:1::/64", func(rs []Route) bool {
		return !hasPrefix(rs, "2001:db8:1::/64") && hasPrefix(rs, "192.168.1.0/24")
	})

	ps := b.Peers()
	if len(ps) != 1 || ps[0].State != StateEstablished || ps[0].PrefixesReceived != 2 || ps[0].PrefixesSent != 1 ||
		ps[0].Uptime <= 0 || ps[0].Address != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("B.Peers() = %+v, want 127.0.0.1 established with an uptime, 2 received, 1 sent", ps)
	}

	// A stops: its session goes down and B's routes from A go with it.
	stopA()
	waitRoutes(t, wb, 10*time.Second, "B drops A's routes when A stops", func(rs []Route) bool { return len(rs) == 0 })
	if ps := a.Peers(); ps[0].State != StateIdle {
		t.Errorf("A.Peers() after stop = %+v, want idle", ps)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already ran") {
		t.Errorf("second Run: %v, want an error", err)
	}
}

func TestExportsValidatedBeforeApplying(t *testing.T) {
	s, err := New(Config{LocalAS: 65000, RouterID: "10.0.0.1", ListenPort: -1}, testLogger(t, "S"))
	if err != nil {
		t.Fatal(err)
	}
	good := exportA("fd00:a:0:0:100::")
	if err := s.SetExports(good); err != nil {
		t.Fatal(err)
	}
	bad := exportA("fd00:a:0:0:100::")
	bad[1].RD = "65000:x"
	err = s.SetExports(bad)
	if err == nil || !strings.Contains(err.Error(), `"65000:x"`) || !strings.Contains(err.Error(), `"blue"`) {
		t.Fatalf("SetExports(bad RD) = %v, want an error naming the RD and the instance", err)
	}
	if len(s.desired) != 3 {
		t.Errorf("a rejected SetExports changed the desired set: %d paths, want 3", len(s.desired))
	}
	if err := s.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"1.2.3:4"}}}); err == nil || !strings.Contains(err.Error(), `"1.2.3:4"`) {
		t.Errorf("SetImports(bad RT) = %v, want an error naming it", err)
	}
}

// TestRunStopsCleanly checks that cancelling Run leaves no goroutine behind:
// GoBGP's server loop, FSMs, listeners, watchers and our publisher all end.
func TestRunStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, b, stopA, stopB := twoSpeakers(t)
		ctx, cancel := context.WithCancel(context.Background())
		if err := a.SetExports(exportA("fd00:a:0:0:100::")); err != nil {
			t.Fatal(err)
		}
		if err := b.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
			t.Fatal(err)
		}
		waitRoutes(t, b.Watch(ctx), 10*time.Second, "B learns red", func(rs []Route) bool { return len(rs) == 2 })
		// C keeps trying a neighbour that refuses connections.
		c, err := New(Config{
			LocalAS: 65000, RouterID: "10.0.0.3", ListenPort: -1,
			Neighbors: []Neighbor{{Address: "127.0.0.3", RemoteAS: 65000, Port: uint16(freePort(t, "127.0.0.3")), ConnectRetry: 1}},
		}, testLogger(t, "C"))
		if err != nil {
			t.Fatal(err)
		}
		stopC := runSpeaker(t, c)
		time.Sleep(1500 * time.Millisecond) // at least one refused attempt
		cancel()
		stopA()
		stopB()
		stopC()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left running (before: %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestWatchInitialSetAndClose(t *testing.T) {
	s, err := New(Config{LocalAS: 65000, RouterID: "10.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx)
	if rs := <-ch; len(rs) != 0 {
		t.Errorf("initial set %v, want empty", rs)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("unexpected delivery after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch channel not closed after cancel")
	}
	if ps := s.Peers(); len(ps) != 0 {
		t.Errorf("Peers() without neighbours = %v", ps)
	}
}

// TestTCPMD5 checks that a password (RFC 2385) is set on both the listening
// and the connecting side: with the same password the session comes up, with
// different ones the kernel drops the SYNs and it stays down.
func TestTCPMD5(t *testing.T) {
	for _, tc := range []struct {
		name, pwB string
		up        bool
	}{{"same password", "s3cret", true}, {"other password", "other", false}} {
		t.Run(tc.name, func(t *testing.T) {
			portB := freePort(t, "127.0.0.2")
			a, err := New(Config{
				LocalAS: 65000, RouterID: "10.0.0.1", ListenPort: -1,
				Neighbors: []Neighbor{{Address: "127.0.0.2", RemoteAS: 65000, Port: uint16(portB), SourceAddress: "127.0.0.1", ConnectRetry: 1, Password: "s3cret"}},
			}, testLogger(t, "A"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(Config{
				LocalAS: 65000, RouterID: "10.0.0.2", ListenPort: portB, ListenAddresses: []string{"127.0.0.2"},
				Neighbors: []Neighbor{{Address: "127.0.0.1", RemoteAS: 65000, Passive: true, Password: tc.pwB}},
			}, testLogger(t, "B"))
			if err != nil {
				t.Fatal(err)
			}
			runSpeaker(t, b)
			runSpeaker(t, a)
			if tc.up {
				waitEstablished(t, a, 10*time.Second)
				return
			}
			time.Sleep(3 * time.Second) // three connect attempts
			if ps := a.Peers(); ps[0].State == StateEstablished {
				t.Errorf("session up with different passwords: %+v", ps)
			}
		})
	}
}

func TestRunFailedStartCanBeRetried(t *testing.T) {
	// A port already in use makes StartBgp fail.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	s, err := New(Config{LocalAS: 65000, RouterID: "10.0.0.1", ListenPort: port, ListenAddresses: []string{"127.0.0.2"}}, testLogger(t, "S"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("Run with the port taken = %v, want an error naming port %d", err, port)
	}
	l.Close()
	runSpeaker(t, s) // now it starts
}

// TestPeersFollowSessionsAndRoutes: Peers answers from its last listing
// between changes, counts prefixes again after a route change (here within
// a shortened peersRefresh), and reports a session change at once.
func TestPeersFollowSessionsAndRoutes(t *testing.T) {
	a, b, stopA, _ := twoSpeakers(t)
	a.peersRefresh, b.peersRefresh = 200*time.Millisecond, 200*time.Millisecond
	waitEstablished(t, a, 10*time.Second)
	waitEstablished(t, b, 10*time.Second)

	at := a.peers.at
	if ps := a.Peers(); ps[0].State != StateEstablished || ps[0].Uptime <= 0 {
		t.Fatalf("A's peer: %+v, want established with an uptime", ps[0])
	}
	if a.peers.at != at {
		t.Fatal("Peers asked GoBGP again although nothing changed")
	}

	if err := b.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100", "65000:200"}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetExports(exportA("fd00:a:0:0:100::")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waitRoutes(t, b.Watch(ctx), 10*time.Second, "B learns A's routes", func(rs []Route) bool { return len(rs) == 3 })
	counted := func(s *Speaker, want func(PeerState) bool) PeerState {
		t.Helper()
		var p PeerState
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if p = s.Peers()[0]; want(p) {
				return p
			}
		}
		t.Fatalf("peer state never as wanted: %+v", p)
		return p
	}
	counted(a, func(p PeerState) bool { return p.PrefixesSent == 3 })
	counted(b, func(p PeerState) bool { return p.PrefixesReceived == 3 })

	stopA()
	p := counted(b, func(p PeerState) bool { return p.State != StateEstablished })
	if p.Uptime != 0 || p.PrefixesReceived != 0 {
		t.Fatalf("B's peer after A stopped: %+v, want no uptime and no prefixes", p)
	}
}
