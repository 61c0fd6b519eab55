package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

const bgpdPath = "/usr/lib/frr/bgpd"

// frrReflector is FRR's bgpd as a route reflector in a namespace of its own.
//
// The Go speakers stay in the test process, in the root namespace, and reach
// it over a veth pair. Re-executing the test binary inside a namespace would
// put each speaker in a child process, where the test could only observe it
// through some IPC of our own; over the veth the test drives the Speaker API
// directly, and only bgpd (a separate program anyway) lives in the namespace.
type frrReflector struct {
	ns, vty   string
	rr        netip.Addr   // bgpd's address
	clients   []netip.Addr // addresses on the root side, one per speaker
	routerID  string
	asn       uint32
	logFile   string
	cmd       *exec.Cmd
	cmdExited chan struct{}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func needRootAndBgpd(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair for FRR")
	}
	if _, err := os.Stat(bgpdPath); err != nil {
		t.Skipf("needs FRR's bgpd at %s (Debian package frr): %v", bgpdPath, err)
	}
}

// startFRR creates namespace bgrr<pid>, a veth pair to it with fd00::/8
// addresses derived from the pid, and runs bgpd -Z there with nClients
// route-reflector clients. Everything is removed in t.Cleanup.
func startFRR(t testing.TB, nClients int) *frrReflector {
	t.Helper()
	needRootAndBgpd(t)
	pid := os.Getpid()
	f := &frrReflector{
		ns:       fmt.Sprintf("bgrr%d", pid),
		routerID: "10.255.0.1",
		asn:      65000,
	}
	host, peer := fmt.Sprintf("bg%dh", pid), fmt.Sprintf("bg%dr", pid)
	pfx := fmt.Sprintf("fd00:6267:%x:%x::", pid>>16, pid&0xffff)
	f.rr = netip.MustParseAddr(pfx + "100")
	for i := 1; i <= nClients; i++ {
		f.clients = append(f.clients, netip.MustParseAddr(fmt.Sprintf("%s%d", pfx, i)))
	}

	run(t, "ip", "netns", "add", f.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", f.ns).Run() })
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	run(t, "ip", "link", "set", peer, "netns", f.ns)
	for _, c := range f.clients {
		run(t, "ip", "-6", "addr", "add", c.String()+"/64", "dev", host, "nodad")
	}
	run(t, "ip", "link", "set", host, "up")
	run(t, "ip", "-n", f.ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", f.ns, "-6", "addr", "add", f.rr.String()+"/64", "dev", peer, "nodad")
	run(t, "ip", "-n", f.ns, "link", "set", peer, "up")

	dir := t.TempDir()
	f.vty = dir
	f.logFile = filepath.Join(dir, "bgpd.log")
	var conf strings.Builder
	fmt.Fprintf(&conf, "hostname rr\nlog file %s debugging\n!\nrouter bgp %d\n bgp router-id %s\n no bgp default ipv4-unicast\n no bgp suppress-duplicates\n",
		f.logFile, f.asn, f.routerID)
	for _, c := range f.clients {
		// extended-nexthop: else FRR reflects VPNv4 routes with next hop 0.0.0.0.
		fmt.Fprintf(&conf, " neighbor %s remote-as %d\n neighbor %s passive\n neighbor %s capability extended-nexthop\n", c, f.asn, c, c)
	}
	for _, af := range []string{"ipv4 vpn", "ipv6 vpn"} {
		fmt.Fprintf(&conf, " address-family %s\n", af)
		for _, c := range f.clients {
			fmt.Fprintf(&conf, "  neighbor %s activate\n  neighbor %s route-reflector-client\n", c, c)
		}
		conf.WriteString(" exit-address-family\n")
	}
	conf.WriteString("!\n")
	confFile := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	f.cmd = exec.Command("ip", "netns", "exec", f.ns, bgpdPath, "-Z", "-S", "-P", "0",
		"-f", confFile, "-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir)
	out, err := os.Create(filepath.Join(dir, "bgpd.out"))
	if err != nil {
		t.Fatal(err)
	}
	f.cmd.Stdout, f.cmd.Stderr = out, out
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("starting bgpd: %v", err)
	}
	f.cmdExited = make(chan struct{})
	go func() {
		_ = f.cmd.Wait()
		out.Close()
		close(f.cmdExited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			f.dump(t)
		}
		// ip netns exec execs bgpd, so this is bgpd's own pid.
		_ = f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.cmdExited:
		case <-time.After(5 * time.Second):
			_ = f.cmd.Process.Kill()
			<-f.cmdExited
		}
	})
	return f
}

// dump logs what bgpd saw, for a failed test.
func (f *frrReflector) dump(t testing.TB) {
	for _, c := range []string{"show bgp summary", "show bgp ipv4 vpn", "show bgp ipv6 vpn"} {
		out, _ := exec.Command("ip", "netns", "exec", f.ns, "vtysh", "--vty_socket", f.vty, "-c", c).CombinedOutput()
		t.Logf("bgpd> %s\n%s", c, out)
	}
	if b, err := os.ReadFile(f.logFile); err == nil {
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("bgpd log (tail):\n%s", b)
	}
}

// vtysh runs one show command in bgpd.
func (f *frrReflector) vtysh(t testing.TB, c string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", f.ns, "vtysh", "--vty_socket", f.vty, "-c", c).CombinedOutput()
	if err != nil {
		t.Logf("vtysh -c %q: %v", c, err)
	}
	return string(out)
}

// client returns a speaker that peers with the reflector from client address i.
func (f *frrReflector) client(t testing.TB, i int, name string) *Speaker {
	t.Helper()
	s, err := New(Config{
		LocalAS: f.asn, RouterID: fmt.Sprintf("10.0.0.%d", i+1), ListenPort: -1,
		Neighbors: []Neighbor{{Address: f.rr.String(), RemoteAS: f.asn, SourceAddress: f.clients[i].String(), ConnectRetry: 1}},
	}, testLogger(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFRRRouteReflector(t *testing.T) {
	f := startFRR(t, 2)
	a, b := f.client(t, 0, "A"), f.client(t, 1, "B")
	runSpeaker(t, a)
	runSpeaker(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A's red instance is End.DT46: through FRR the behaviour arrives as
	// 0xFFFF and is inferred per family, End.DT4 and End.DT6.
	exportRed := func(sid string, pfx ...string) []Export {
		return []Export{{
			Instance: "red", RD: "65000:1", ExportRTs: []string{"65000:100"},
			Prefixes: prefixes(pfx...), SID: netip.MustParseAddr(sid), Behavior: srv6.EndDT46,
			Structure: testStructure, NextHop: f.clients[0],
		}}
	}
	for _, s := range []*Speaker{a, b} {
		if err := s.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetExports(exportRed("fd00:a:0:0:100::", "192.168.1.0/24", "2001:db8:1::/64")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetExports([]Export{{
		Instance: "red", RD: "65000:2", ExportRTs: []string{"65000:100"},
		Prefixes: prefixes("192.168.2.0/24"), SID: netip.MustParseAddr("fd00:b:0:0:100::"), Behavior: srv6.EndDT4,
		Structure: testStructure, NextHop: f.clients[1],
	}}); err != nil {
		t.Fatal(err)
	}
	wa, wb := a.Watch(ctx), b.Watch(ctx)
	waitEstablished(t, a, 20*time.Second)
	waitEstablished(t, b, 20*time.Second)

	rs := waitRoutes(t, wb, 20*time.Second, "B learns A's routes via FRR", func(rs []Route) bool {
		return hasRoute(rs, "red", "192.168.1.0/24", "fd00:a:0:0:100::") && hasRoute(rs, "red", "2001:db8:1::/64", "fd00:a:0:0:100::")
	})
	if len(rs) != 2 {
		t.Errorf("B has %d routes, want 2 (its own must not come back):\n%s", len(rs), fmtRoutes(rs))
	}
	for _, r := range rs {
		want := srv6.EndDT6
		if r.Prefix.Addr().Is4() {
			want = srv6.EndDT4
		}
		if r.Behavior != want {
			t.Errorf("%s: behaviour %s, want %s (FRR 8.4 reflects 0xFFFF)", r.Prefix, r.Behavior, want)
		}
		if r.NextHop != f.clients[0] {
			t.Errorf("%s: next hop %s, want A's %s (needs extended-nexthop on FRR)", r.Prefix, r.NextHop, f.clients[0])
		}
	}
	waitRoutes(t, wa, 20*time.Second, "A learns B's route via FRR", func(rs []Route) bool {
		return len(rs) == 1 && hasRoute(rs, "red", "192.168.2.0/24", "fd00:b:0:0:100::")
	})
	if os.Getenv("BGP_TEST_LOG") != "" {
		t.Logf("FRR's view:\n%s", f.vtysh(t, "show bgp ipv4 vpn 192.168.1.0/24"))
	}

	// Renumbering: B follows A to the new SID, through FRR.
	t0 := time.Now()
	if err := a.SetExports(exportRed("fd00:a:0:0:777::", "192.168.1.0/24", "2001:db8:1::/64")); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, wb, 20*time.Second, "B moves to A's new SID", func(rs []Route) bool {
		return len(rs) == 2 && hasRoute(rs, "red", "192.168.1.0/24", "fd00:a:0:0:777::") && hasRoute(rs, "red", "2001:db8:1::/64", "fd00:a:0:0:777::")
	})
	t.Logf("renumbering reached B through FRR in %v", time.Since(t0).Round(time.Millisecond))

	// Withdrawal through FRR.
	if err := a.SetExports(exportRed("fd00:a:0:0:777::", "192.168.1.0/24")); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, wb, 20*time.Second, "B loses the withdrawn prefix", func(rs []Route) bool {
		return len(rs) == 1 && hasPrefix(rs, "192.168.1.0/24")
	})
}
