package netnstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Run runs a command (bounded to 30 s) and returns its standard output; a
// failure fails the test with the command's standard error.
func Run(t testing.TB, args ...string) string {
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

// Exec runs a command inside namespace ns.
func Exec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// New creates namespace prefix+pid+suffix with loopback up and forwarding
// on, deleted when the test ends, and returns its name.
func New(t testing.TB, prefix, suffix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d%s", prefix, os.Getpid(), suffix)
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	Exec(t, name, "ip", "link", "set", "lo", "up")
	Exec(t, name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1")
	return name
}

// Link joins namespaces a and b with a veth pair (ifa in a, ifb in b), gives
// each end its addresses (space-separated, with prefix lengths) and sets
// static neighbours, so the first packet of a test does not wait for
// neighbour discovery. Transmit checksum offload is off (when ethtool is
// there), so captures show the real checksums.
func Link(t testing.TB, a, ifa, addrA, b, ifb, addrB string) {
	t.Helper()
	Run(t, "ip", "link", "add", ifa, "netns", a, "type", "veth", "peer", "name", ifb, "netns", b)
	ends := []struct{ ns, ifc, addr string }{{a, ifa, addrA}, {b, ifb, addrB}}
	for _, e := range ends {
		for _, ad := range strings.Fields(e.addr) {
			Exec(t, e.ns, "ip", "addr", "add", ad, "dev", e.ifc, "nodad")
		}
		Exec(t, e.ns, "ip", "link", "set", e.ifc, "up")
		if _, err := exec.LookPath("ethtool"); err == nil {
			Exec(t, e.ns, "ethtool", "-K", e.ifc, "tx", "off")
		}
	}
	for i, e := range ends {
		peer := ends[1-i]
		mac := strings.TrimSpace(Exec(t, peer.ns, "cat", "/sys/class/net/"+peer.ifc+"/address"))
		for _, ad := range strings.Fields(peer.addr) {
			ip, _, _ := strings.Cut(ad, "/")
			Exec(t, e.ns, "ip", "neigh", "replace", ip, "lladdr", mac, "dev", e.ifc, "nud", "permanent")
		}
	}
}
