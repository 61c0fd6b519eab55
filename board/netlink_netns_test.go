package board

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

var nsSeq atomic.Int64

// testNS makes a throwaway network namespace "bd<pid>-<n>" with lo up and
// a veth pair wan0/wan0p, both up, and removes it at the end of the test.
func testNS(t *testing.T) (netns.NsHandle, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth links")
	}
	name := fmt.Sprintf("bd%d-%d", os.Getpid(), nsSeq.Add(1))
	ip(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	ip(t, "-n", name, "link", "set", "lo", "up")
	ip(t, "-n", name, "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p")
	ip(t, "-n", name, "link", "set", "wan0", "up")
	ip(t, "-n", name, "link", "set", "wan0p", "up")
	return h, name
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ipBatch runs several "ip -6" commands from one process, so they reach the
// kernel within a millisecond or so: a burst.
func ipBatch(t *testing.T, ns string, cmds ...string) {
	t.Helper()
	c := exec.Command("ip", "-6", "-n", ns, "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("ip -6 -batch (%d commands, first %q): %v: %s", len(cmds), cmds[0], err, out)
	}
}

// watcher runs Watch in the background and checks at the end that it
// returns nil on cancel and leaves no goroutine behind.
type watcher struct {
	out  chan PrefixChange
	logs *observer.ObservedLogs
	src  *NetlinkPrefix
}

func startWatch(t *testing.T, opt NetlinkPrefixOptions) *watcher {
	t.Helper()
	before := runtime.NumGoroutine()
	core, logs := observer.New(zapcore.DebugLevel)
	opt.Logger = zap.New(core)
	w := &watcher{out: make(chan PrefixChange, 16), logs: logs, src: NewNetlinkPrefix(opt)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.src.Watch(ctx, w.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v after cancel, want nil", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Watch did not return within 2s of cancel")
		}
		// Goroutines of the netlink library exit just after closing their
		// channel; give them a moment.
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d before Watch, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
	return w
}

func (w *watcher) expect(t *testing.T, want PrefixChange, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case got := <-w.out:
		if got != want {
			t.Fatalf("PrefixChange = %+v, want %+v", got, want)
		}
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("no PrefixChange within %v, want %+v", within, want)
		return 0
	}
}

func (w *watcher) expectNone(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case got := <-w.out:
		t.Fatalf("unexpected PrefixChange %+v", got)
	case <-time.After(within):
	}
}

// waitReads waits until at least n re-reads have been logged in total.
func (w *watcher) waitReads(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for w.logs.FilterMessage("re-read").Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d re-reads within %v, want %d", w.logs.FilterMessage("re-read").Len(), within, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	p1200 = netip.MustParsePrefix("2001:db8:1200::/40")
	p4400 = netip.MustParsePrefix("2001:db8:4400::/40")
	a1200 = netip.MustParseAddr("2001:db8:1200::1")
	a4400 = netip.MustParseAddr("2001:db8:4400::1")
)

func TestNetlinkPrefixAddressMode(t *testing.T) {
	h, ns := testNS(t)
	w := startWatch(t, NetlinkPrefixOptions{Interface: "wan0", NetNS: h})
	w.waitReads(t, 1, 2*time.Second) // subscribed and read: only link-local so far
	w.expectNone(t, 200*time.Millisecond)

	ip(t, "-n", ns, "-6", "addr", "add", "2001:db8:1200::1/40", "dev", "wan0", "nodad")
	d := w.expect(t, PrefixChange{New: p1200, Addr: a1200}, time.Second)
	t.Logf("first prefix reported %v after the address was added", d)

	// A burst through an intermediate prefix collapses into one change.
	ipBatch(t, ns,
		"addr add 2001:db8:3300::1/40 dev wan0 nodad",
		"addr del 2001:db8:1200::1/40 dev wan0",
		"addr add 2001:db8:4400::1/40 dev wan0 nodad",
		"addr del 2001:db8:3300::1/40 dev wan0")
	d = w.expect(t, PrefixChange{Old: p1200, New: p4400, Addr: a4400}, time.Second)
	t.Logf("renumbering 1200 -> 4400 reported %v after the burst", d)
	w.expectNone(t, 300*time.Millisecond)

	// Link-local, temporary and host addresses never count.
	ip(t, "-n", ns, "-6", "addr", "add", "2001:db8:1::5/128", "dev", "wan0", "nodad")
	ip(t, "-n", ns, "-6", "addr", "add", "2001:db8:1::6/40", "dev", "wan0", "nodad", "preferred_lft", "0")
	w.expectNone(t, 300*time.Millisecond)

	// The prefix disappears: nothing reported, the last stays.
	ip(t, "-n", ns, "-6", "addr", "flush", "dev", "wan0", "scope", "global")
	w.expectNone(t, 300*time.Millisecond)
	if w.logs.FilterMessage("delegated prefix gone; keeping the last one until a new one arrives").Len() != 1 {
		t.Error("the loss of the prefix was not logged")
	}
	// It comes back unchanged: reported again (Old == New) so the agent
	// re-applies the routes the kernel removed with it, and only once.
	ip(t, "-n", ns, "-6", "addr", "add", "2001:db8:4400::1/40", "dev", "wan0", "nodad")
	w.expect(t, PrefixChange{Old: p4400, New: p4400, Addr: a4400}, time.Second)
	w.expectNone(t, 300*time.Millisecond)

	// Refresh forces a re-read without an event.
	reads := w.logs.FilterMessage("re-read").Len()
	w.src.Refresh()
	w.waitReads(t, reads+1, time.Second)
	w.expectNone(t, 200*time.Millisecond)
}

func TestNetlinkPrefixRouteMode(t *testing.T) {
	h, ns := testNS(t)
	const agentProto = "198"
	w := startWatch(t, NetlinkPrefixOptions{Interface: "wan0", Mode: PrefixFromRoute, NetNS: h, IgnoreRouteProtocols: []int{198}})
	w.waitReads(t, 1, 2*time.Second)

	wanAddr := netip.MustParseAddr("2001:db8:ffff::2")
	ip(t, "-n", ns, "-6", "addr", "add", "2001:db8:ffff::2/64", "dev", "wan0", "nodad")
	// odhcp6c/netifd style delegated-prefix route.
	ip(t, "-n", ns, "-6", "route", "add", "unreachable", "2001:db8:1200::/40", "dev", "lo", "proto", "static", "metric", "2147483647")
	d := w.expect(t, PrefixChange{New: p1200, Addr: wanAddr}, time.Second)
	t.Logf("route mode: first prefix reported %v after the route was added", d)

	ipBatch(t, ns,
		"route add unreachable 2001:db8:4400::/40 dev lo proto static metric 2147483647",
		"route del unreachable 2001:db8:1200::/40 dev lo proto static metric 2147483647")
	d = w.expect(t, PrefixChange{Old: p1200, New: p4400, Addr: wanAddr}, time.Second)
	t.Logf("route mode: renumbering reported %v after the change", d)

	// The agent's own locator route inside the prefix, and unrelated routes,
	// are never taken for the delegation, even when the delegation is gone.
	ip(t, "-n", ns, "-6", "route", "add", "unreachable", "2001:db8:44ff::/48", "dev", "lo", "proto", agentProto)
	ip(t, "-n", ns, "-6", "route", "add", "2001:db8:77::/48", "dev", "wan0")
	ip(t, "-n", ns, "-6", "route", "del", "unreachable", "2001:db8:4400::/40", "dev", "lo")
	w.expectNone(t, 300*time.Millisecond)

	// The delegation returns (reported again, Old == New); then the WAN
	// address alone changes.
	ip(t, "-n", ns, "-6", "route", "add", "unreachable", "2001:db8:4400::/40", "dev", "lo", "proto", "static")
	w.expect(t, PrefixChange{Old: p4400, New: p4400, Addr: wanAddr}, time.Second)
	w.expectNone(t, 300*time.Millisecond)
	newWAN := netip.MustParseAddr("2001:db8:fffe::2")
	ipBatch(t, ns,
		"addr add 2001:db8:fffe::2/128 dev wan0 nodad",
		"addr del 2001:db8:ffff::2/64 dev wan0")
	w.expect(t, PrefixChange{Old: p4400, New: p4400, Addr: newWAN}, time.Second)
}

// A flood of route events overflows a tiny socket buffer (ENOBUFS): the
// source resubscribes, re-reads, and still reports the change made at the
// end of the flood.
func TestNetlinkPrefixOverflowResubscribes(t *testing.T) {
	h, ns := testNS(t)
	w := startWatch(t, NetlinkPrefixOptions{Interface: "wan0", Mode: PrefixFromRoute, NetNS: h, ReceiveBufferSize: 1})
	w.waitReads(t, 1, 2*time.Second)
	ip(t, "-n", ns, "-6", "route", "add", "unreachable", "2001:db8:1200::/40", "dev", "lo", "proto", "static")
	w.expect(t, PrefixChange{New: p1200}, time.Second)

	lost := func() int {
		return w.logs.FilterMessage("netlink event subscription lost; resubscribing and re-reading").Len()
	}
	const routes = 2000
	for round := 0; round < 5 && lost() == 0; round++ {
		cmds := make([]string, 0, routes+2)
		for i := range routes {
			cmds = append(cmds, fmt.Sprintf("route replace 2001:db8:9:%x::/64 dev wan0 metric %d", i, round+1))
		}
		ipBatch(t, ns, cmds...)
	}
	if lost() == 0 {
		t.Fatal("no ENOBUFS overflow after 5 floods of route events; the test cannot show the resubscription")
	}
	ipBatch(t, ns,
		"route add unreachable 2001:db8:4400::/40 dev lo proto static",
		"route del unreachable 2001:db8:1200::/40 dev lo")
	w.expect(t, PrefixChange{Old: p1200, New: p4400}, 2*time.Second)
}
