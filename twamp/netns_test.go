package twamp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Helpers for tests in network namespaces. Names carry the "tw" prefix and
// the test's pid so parallel runs never collide.

func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s runs in network namespaces", what)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs iproute2 (ip): %v", err)
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// stdout runs a command and returns its standard output only.
func stdout(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return string(out)
}

// nsx runs a command inside namespace ns.
func nsx(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return sh(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// newNS creates a namespace with loopback up, deleted at cleanup.
func newNS(t *testing.T, suffix string) string {
	t.Helper()
	name := fmt.Sprintf("tw%d%s", os.Getpid(), suffix)
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	nsx(t, name, "ip", "link", "set", "lo", "up")
	nsx(t, name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1")
	return name
}

// link joins two namespaces with a veth pair; tx checksum offload is off so
// captured packets carry their real checksums.
func link(t *testing.T, a, ifa, addrA, b, ifb, addrB string) {
	t.Helper()
	sh(t, "ip", "link", "add", ifa, "netns", a, "type", "veth", "peer", "name", ifb, "netns", b)
	ends := []struct{ ns, ifc, addr string }{{a, ifa, addrA}, {b, ifb, addrB}}
	for _, e := range ends {
		for _, ad := range strings.Fields(e.addr) {
			nsx(t, e.ns, "ip", "addr", "add", ad, "dev", e.ifc, "nodad")
		}
		nsx(t, e.ns, "ip", "link", "set", e.ifc, "up")
		if _, err := exec.LookPath("ethtool"); err == nil {
			nsx(t, e.ns, "ethtool", "-K", e.ifc, "tx", "off")
		}
	}
	// Static neighbours: the first probe of a test must not wait for
	// neighbour discovery on a link that has just come up.
	for i, e := range ends {
		peer := ends[1-i]
		mac := strings.TrimSpace(nsx(t, peer.ns, "cat", "/sys/class/net/"+peer.ifc+"/address"))
		for _, ad := range strings.Fields(peer.addr) {
			ip, _, _ := strings.Cut(ad, "/")
			nsx(t, e.ns, "ip", "neigh", "replace", ip, "lladdr", mac, "dev", e.ifc, "nud", "permanent")
		}
	}
}

// inNS runs fn on a thread moved into namespace ns: sockets fn opens live
// there for good.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := netnstest.Do(ns, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// capture runs tcpdump in ns on ifc until the returned stop is called.
func capture(t *testing.T, ns, ifc, filter string) (pcap string, stop func()) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump")
	}
	pcap = t.TempDir() + "/cap.pcap"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", ifc, "-U", "-n", "-w", pcap, filter)
	logf, err := os.Create(pcap + ".log")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	// With -U the pcap header is written as soon as the capture is open.
	for i := 0; i < 100; i++ {
		if st, err := os.Stat(pcap); err == nil && st.Size() >= 24 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return pcap, func() {
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(unix.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		cancel()
		logf.Close()
		if b, _ := os.ReadFile(pcap + ".log"); testing.Verbose() {
			t.Logf("tcpdump: %s", b)
		}
	}
}
