package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Issue 9, SID anti-spoofing, end to end on the issue 4 lab (two srv6cpe
// daemons, FRR as reflector) plus an attacker namespace on the WAN side.
// The attacker H.Encaps-wraps IPv4 UDP to lan1 and sends it to cpe1's vpn4
// SID (End.DX4 on this VRF-less kernel): from a source outside every peer
// locator none reach lan1; the same packets from a source inside cpe2's
// locator all do (the control: the packets are right, the filter is what
// drops the others — and the limit: a forged peer source needs BCP 38
// upstream). cpe2's real traffic all arrives. Then cpe2 renumbers (its new
// locator is admitted once BGP delivers it, the old one no longer) and cpe1
// renumbers (the rules follow its new locator).
func TestSIDAntiSpoofing(t *testing.T) {
	if exec.Command(scapyPython, "-c", "import scapy.all").Run() != nil {
		t.Skip("needs python3 with scapy (Debian python3-scapy) to craft SRv6 packets")
	}
	l := newBGPLab(t, "as", true)
	c1, c2 := l.cpes[0], l.cpes[1]
	atk := fmt.Sprintf("as%datk", os.Getpid())
	mustRun(t, "ip", "netns", "add", atk)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", atk).Run() })
	mustRun(t, "ip", "-n", atk, "link", "set", "lo", "up")
	mustRun(t, "ip", "link", "add", "wan0", "netns", atk, "type", "veth", "peer", "name", "atk", "netns", l.ns["wan"])
	mustRun(t, "ip", "-n", atk, "link", "set", "wan0", "up")
	mustRun(t, "ip", "-n", l.ns["wan"], "link", "set", "atk", "up")
	mustRun(t, "ip", "-n", atk, "addr", "add", "fd00:e4:66::2/64", "dev", "wan0", "nodad")
	mustRun(t, "ip", "-n", l.ns["wan"], "addr", "add", "fd00:e4:66::1/64", "dev", "atk", "nodad")
	mustRun(t, "ip", "-n", atk, "-6", "route", "add", "default", "via", "fd00:e4:66::1")

	l.start(c1)
	l.start(c2)
	for _, c := range l.cpes {
		c.waitStatus(t, "the BGP session to FRR established", 30*time.Second, established)
	}
	sid1, sid2 := sidsOf(t, c1), sidsOf(t, c2)
	waitEncaps(t, c1.ns, []string{"192.168.2.0/24 -> " + sid2["vpn4"].String(), lanPrefix6(2) + "/64 -> " + sid2["vpn6"].String()}, 20*time.Second)
	waitEncaps(t, c2.ns, []string{"192.168.1.0/24 -> " + sid1["vpn4"].String(), lanPrefix6(1) + "/64 -> " + sid1["vpn6"].String()}, 20*time.Second)

	loc1, loc2 := locatorOf(sid1["vpn4"]), locatorOf(sid2["vpn4"])
	waitRules(t, c1.ns, []string{
		fmt.Sprintf("1000: from %s to %s iif wan0 lookup main proto 198", loc2, loc1),
		fmt.Sprintf("1001: from all to %s iif wan0 blackhole proto 198", loc1),
	})
	// cpe2's outer source lies inside its locator.
	if got, want := strings.TrimSpace(mustRun(t, "ip", "-n", c2.ns, "sr", "tunsrc", "show")), "tunsrc addr "+lastAddr(loc2).String(); got != want {
		t.Errorf("cpe2: ip sr tunsrc show: %q, want %q", got, want)
	}
	if s := c2.status(); s.Dataplane == nil || s.Dataplane.TunnelSource != lastAddr(loc2) || s.Dataplane.Rules != 2 {
		t.Errorf("cpe2 status: dataplane %+v, want tunnel source %s and 2 rules", s.Dataplane, lastAddr(loc2))
	}

	sink := newUDPSink(t, l.ns["l1"])
	const n = 200
	attack := func(src netip.Addr, sid netip.Addr) int {
		t.Helper()
		before := sink.count()
		sendEncapsulated(t, atk, src, sid, n)
		time.Sleep(300 * time.Millisecond) // the last packets cross three namespaces
		got := sink.count() - before
		return got
	}
	report := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		t.Log(msg)
		fmt.Println(msg)
	}

	// 1. Attacker from its own address and from a forged source in no peer
	// locator: nothing reaches lan1.
	for _, src := range []netip.Addr{netip.MustParseAddr("fd00:e4:66::2"), netip.MustParseAddr("2001:db8:9905::1")} {
		if got := attack(src, sid1["vpn4"]); got != 0 {
			t.Errorf("attacker from %s to cpe1's vpn4 SID %s: %d of %d reached lan1, want 0", src, sid1["vpn4"], got, n)
		} else {
			report("antispoof: attacker src %s -> cpe1 SID %s: 0/%d reached lan1", src, sid1["vpn4"], n)
		}
	}
	// 2. Control: a source inside cpe2's locator is admitted.
	if got := attack(lastAddr(loc2), sid1["vpn4"]); got != n {
		t.Errorf("control: forged cpe2-locator source: %d of %d reached lan1, want all (else the attack packets are malformed)", got, n)
	} else {
		report("antispoof: control, src %s inside cpe2's locator: %d/%d reached lan1", lastAddr(loc2), got, n)
	}
	// 3. cpe2's real traffic: lan2 -> lan1 UDP, all answered.
	echo := newUDPEcho(t, l.ns["l1"], l.ns["l2"])
	real := func(what string) {
		t.Helper()
		ok := 0
		for i := 0; i < 100; i++ {
			if echo.roundTrip("192.168.1.2", 1, time.Second) == nil {
				ok++
			}
		}
		if ok != 100 {
			t.Errorf("%s: lan2 -> lan1 UDP: %d of 100 echoed, want all", what, ok)
		} else {
			report("antispoof: %s: lan2 -> lan1 UDP over SRv6: 100/100 echoed", what)
		}
	}
	real("cpe2's traffic")

	// 4. cpe2 renumbers: once BGP delivers its new SIDs cpe1 admits the
	// new locator, and the old one no longer.
	t0 := time.Now()
	renumber(t, l, 2, "2001:db8:5500::1/40")
	nsid2 := netip.MustParseAddr("2001:db8:5505:4::")
	nloc2 := locatorOf(nsid2)
	waitEncaps(t, c1.ns, []string{"192.168.2.0/24 -> " + nsid2.String(), lanPrefix6(2) + "/64 -> 2001:db8:5505:6::"}, 20*time.Second)
	waitRules(t, c1.ns, []string{
		fmt.Sprintf("1000: from %s to %s iif wan0 lookup main proto 198", nloc2, loc1),
		fmt.Sprintf("1001: from all to %s iif wan0 blackhole proto 198", loc1),
	})
	report("antispoof: cpe2 renumbered %s -> %s: cpe1 admits the new locator after %s", loc2, nloc2, time.Since(t0).Round(time.Millisecond))
	waitEcho(t, echo, "192.168.1.2")
	real("after cpe2 renumbered")
	if got := attack(lastAddr(loc2), sid1["vpn4"]); got != 0 {
		t.Errorf("source in cpe2's old locator %s: %d of %d reached lan1, want 0", loc2, got, n)
	} else {
		report("antispoof: src %s in cpe2's old locator: 0/%d reached lan1", lastAddr(loc2), n)
	}

	// 5. cpe1 renumbers: the rules follow its new locator.
	t0 = time.Now()
	renumber(t, l, 1, "2001:db8:4400::1/40")
	nsid1 := netip.MustParseAddr("2001:db8:4405:4::")
	nloc1 := locatorOf(nsid1)
	waitRules(t, c1.ns, []string{
		fmt.Sprintf("1000: from %s to %s iif wan0 lookup main proto 198", nloc2, nloc1),
		fmt.Sprintf("1001: from all to %s iif wan0 blackhole proto 198", nloc1),
	})
	report("antispoof: cpe1 renumbered %s -> %s: rules follow after %s", loc1, nloc1, time.Since(t0).Round(time.Millisecond))
	if got := strings.TrimSpace(mustRun(t, "ip", "-n", c1.ns, "sr", "tunsrc", "show")); got != "tunsrc addr "+lastAddr(nloc1).String() {
		t.Errorf("cpe1 tunnel source after renumbering: %q, want %s", got, lastAddr(nloc1))
	}
	waitEncaps(t, c2.ns, []string{"192.168.1.0/24 -> " + nsid1.String(), lanPrefix6(1) + "/64 -> 2001:db8:4405:6::"}, 20*time.Second)
	waitEcho(t, echo, "192.168.1.2")
	real("after cpe1 renumbered")
	if got := attack(netip.MustParseAddr("fd00:e4:66::2"), nsid1); got != 0 {
		t.Errorf("attacker to cpe1's new SID %s: %d of %d reached lan1, want 0", nsid1, got, n)
	} else {
		report("antispoof: attacker -> cpe1's new SID %s: 0/%d reached lan1", nsid1, n)
	}
}

func sidsOf(t *testing.T, c *bgpCPE) map[string]netip.Addr {
	t.Helper()
	m := map[string]netip.Addr{}
	for _, s := range c.waitStatus(t, "SIDs applied", 10*time.Second, applied).SIDs {
		m[s.Name] = s.SID
	}
	return m
}

// locatorOf is the lab's /48 locator of a SID (srv6.locator_len 48).
func locatorOf(sid netip.Addr) netip.Prefix { return netip.PrefixFrom(sid, 48).Masked() }

// lastAddr is the last address of p, where the agent puts the tunnel source.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// renumber moves CPE i's delegated prefix to addr (an address/40) and the
// transit route with it.
func renumber(t *testing.T, l *bgpLab, i int, addr string) {
	t.Helper()
	c := l.cpes[i-1]
	var old string
	for _, f := range strings.Fields(mustRun(t, "ip", "-n", c.ns, "-6", "addr", "show", "dev", "wan0", "scope", "global")) {
		if strings.HasPrefix(f, "2001:db8:") {
			old = f
		}
	}
	if old == "" {
		t.Fatalf("cpe%d: no 2001:db8: address on wan0", i)
	}
	mustRun(t, "ip", "-n", c.ns, "addr", "del", old, "dev", "wan0")
	mustRun(t, "ip", "-n", c.ns, "addr", "add", addr, "dev", "wan0", "nodad")
	mustRun(t, "ip", "-n", l.ns["wan"], "-6", "route", "del", netip.MustParsePrefix(old).Masked().String())
	mustRun(t, "ip", "-n", l.ns["wan"], "-6", "route", "add", netip.MustParsePrefix(addr).Masked().String(), "via", fmt.Sprintf("fd00:e4:%d::2", i))
}

// waitRules polls ns's protocol-198 IPv6 rules until they are want.
func waitRules(t *testing.T, ns string, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []string
		for _, line := range strings.Split(mustRun(t, "ip", "-n", ns, "-6", "rule", "show"), "\n") {
			if strings.HasSuffix(line, " proto 198") {
				got = append(got, strings.Join(strings.Fields(line), " "))
			}
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules in %s:\n%s\nwant:\n%s", ns, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEcho waits until lan2 -> lan1 UDP is echoed again after a renumbering.
func waitEcho(t *testing.T, e *udpEcho, dst string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if e.roundTrip(dst, 1, 100*time.Millisecond) == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("UDP lan2 -> %s not back within 15s", dst)
}

// udpSink counts the datagrams arriving on port 9999 in one namespace.
type udpSink struct{ n atomic.Int64 }

func (s *udpSink) count() int { return int(s.n.Load()) }

func newUDPSink(t *testing.T, ns string) *udpSink {
	t.Helper()
	var pc net.PacketConn
	if err := netnstest.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp4", ":9999"); return err }); err != nil {
		t.Fatal(err)
	}
	s := &udpSink{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			s.n.Add(1)
		}
	}()
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return s
}

// sendEncapsulated sends n H.Encaps packets (outer IPv6 src -> sid, no SRH,
// inner IPv4 UDP 192.168.2.2 -> 192.168.1.2:9999) from namespace ns with
// scapy.
func sendEncapsulated(t *testing.T, ns string, src, sid netip.Addr, n int) {
	t.Helper()
	script := fmt.Sprintf(`
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IPv6, IP, UDP, Raw, send, conf
conf.verb = 0
p = IPv6(src=%q, dst=%q, nh=4) / IP(src="192.168.2.2", dst="192.168.1.2") / UDP(sport=40000, dport=9999) / Raw(b"spoofed")
send(p, count=%d, inter=0.001)
`, src.String(), sid.String(), n)
	cmd := exec.Command("ip", "netns", "exec", ns, scapyPython, "-c", script)
	done := make(chan struct{})
	time.AfterFunc(60*time.Second, func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
		}
	})
	out, err := cmd.CombinedOutput()
	close(done)
	if err != nil {
		t.Fatalf("scapy in %s: %v\n%s", ns, err, out)
	}
}

// scapyPython is Debian's interpreter, where python3-scapy is installed
// (a pyenv python3 first on PATH would not have it).
const scapyPython = "/usr/bin/python3"
