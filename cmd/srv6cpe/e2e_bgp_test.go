package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/agent"
	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Issue 4 end to end: two srv6cpe daemons peer with FRR as route reflector,
// exchange VPNv4 and VPNv6 routes, install encap routes towards each
// other's service SIDs, and ICMP and UDP between their LANs flow SRv6
// encapsulated across the transit namespace. Then cpe1 renumbers: cpe2
// moves to the new SIDs and traffic recovers.
func TestBGPL3VPNEndToEnd(t *testing.T) {
	l := newBGPLab(t, "", true)
	c1, c2 := l.cpes[0], l.cpes[1]
	l.start(c1)
	l.start(c2)
	for _, c := range l.cpes {
		c.waitStatus(t, "the BGP session to FRR established", 30*time.Second, established)
	}
	// FRR's own view of the two sessions, through its vty socket (no zebra).
	if n := frrEstablished(t, l); n != 2 {
		t.Errorf("FRR reports %d established sessions, want 2:\n%s", n, l.vtysh("show bgp summary"))
	}

	// Each CPE installs encap routes towards the other's service SIDs.
	sids := func(c *bgpCPE) map[string]netip.Addr {
		m := map[string]netip.Addr{}
		for _, s := range c.waitStatus(t, "SIDs applied", 10*time.Second, applied).SIDs {
			m[s.Name] = s.SID
		}
		return m
	}
	sid1, sid2 := sids(c1), sids(c2)
	t.Logf("cpe1 SIDs %v, cpe2 SIDs %v", sid1, sid2)
	want1 := []string{"192.168.2.0/24 -> " + sid2["vpn4"].String(), lanPrefix6(2) + "/64 -> " + sid2["vpn6"].String()}
	want2 := []string{"192.168.1.0/24 -> " + sid1["vpn4"].String(), lanPrefix6(1) + "/64 -> " + sid1["vpn6"].String()}
	waitEncaps(t, c1.ns, want1, 20*time.Second)
	waitEncaps(t, c2.ns, want2, 20*time.Second)
	st := c1.waitStatus(t, "the status counting the routes", 5*time.Second, func(s agent.Status) bool { return s.BGP != nil && s.BGP.Installed == 2 })
	t.Logf("cpe1: %d prefixes exported, %d routes imported, %d installed; fallback %q", st.BGP.Exported, st.BGP.Imported, st.BGP.Installed, st.Fallback)

	// Traffic lan1 <-> lan2, captured on the transit link to cpe2.
	echo := newUDPEcho(t, l.ns["l2"], l.ns["l1"])
	stop := capture(t, l.ns["wan"], "c2", filepath.Join(t.TempDir(), "transit.pcap"))
	for _, dst := range []string{"192.168.2.2", lanPrefix6(2) + "2"} {
		out, err := exec.Command("ip", "netns", "exec", l.ns["l1"], "ping", "-c", "3", "-i", "0.2", "-W", "2", dst).CombinedOutput()
		if err != nil {
			t.Errorf("ping %s from lan1: %v\n%s", dst, err, out)
		} else {
			t.Logf("ping lan1 -> %s: %s", dst, lastLine(out))
		}
		if err := echo.roundTrip(dst, 3, time.Second); err != nil {
			t.Errorf("UDP lan1 -> %s: %v", dst, err)
		}
	}
	pcap := stop()
	pkts, err := readSRv6Pcap(pcap)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range pkts {
		count[fmt.Sprintf("%s srh=%v inner=%d proto=%d", p.outerDst, p.srh, p.inner, p.proto)]++
	}
	for _, w := range []string{
		fmt.Sprintf("%s srh=true inner=4 proto=1", sid2["vpn4"]),
		fmt.Sprintf("%s srh=true inner=4 proto=17", sid2["vpn4"]),
		fmt.Sprintf("%s srh=true inner=41 proto=58", sid2["vpn6"]),
		fmt.Sprintf("%s srh=true inner=41 proto=17", sid2["vpn6"]),
	} {
		if count[w] == 0 {
			t.Errorf("no packet on the transit link with outer destination %s; seen: %v", w, count)
		}
	}
	t.Logf("SRv6 packets towards cpe2 on the transit link: %v", count)
	// The same capture as tshark decodes it, for the log.
	if out, err := exec.Command("tshark", "-r", pcap, "-Y", "ipv6.routing.type == 4 && ipv6.dst == "+sid2["vpn4"].String(),
		"-T", "fields", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.routing.segleft", "-e", "ip.src", "-e", "ip.dst", "-e", "_ws.col.Protocol").Output(); err == nil {
		lines := strings.SplitN(string(out), "\n", 3)
		t.Logf("tshark: outer src, outer dst (cpe2's vpn4 SID), segments left, inner src, inner dst, protocol:\n%s", strings.Join(lines[:min(2, len(lines))], "\n"))
	}

	// Renumber cpe1: the prefix source sees the new address, cpe1 programs
	// and advertises its new SIDs, FRR reflects them, cpe2 re-points its
	// encap routes; traffic flows again.
	t0 := time.Now()
	mustRun(t, "ip", "-n", c1.ns, "addr", "del", wanAddr(1), "dev", "wan0")
	mustRun(t, "ip", "-n", c1.ns, "addr", "add", "2001:db8:4400::1/40", "dev", "wan0", "nodad")
	mustRun(t, "ip", "-n", l.ns["wan"], "-6", "route", "del", "2001:db8:1200::/40")
	mustRun(t, "ip", "-n", l.ns["wan"], "-6", "route", "add", "2001:db8:4400::/40", "via", "fd00:e4:1::2")
	newSID4, newSID6 := netip.MustParseAddr("2001:db8:4405:4::"), netip.MustParseAddr("2001:db8:4405:6::")
	waitEncaps(t, c2.ns, []string{"192.168.1.0/24 -> " + newSID4.String(), lanPrefix6(1) + "/64 -> " + newSID6.String()}, 20*time.Second)
	learned := time.Since(t0)
	var recovered time.Duration
	for i := 0; i < 200; i++ {
		if echo.roundTrip("192.168.2.2", 1, 100*time.Millisecond) == nil && echo.roundTrip(lanPrefix6(2)+"2", 1, 100*time.Millisecond) == nil {
			recovered = time.Since(t0)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recovered == 0 {
		t.Fatalf("UDP lan1 <-> lan2 did not recover within 10s of renumbering")
	}
	for _, r := range encapRoutes(t, c2.ns) {
		if strings.Contains(r, sid1["vpn4"].String()) || strings.Contains(r, sid1["vpn6"].String()) {
			t.Errorf("cpe2 still routes to cpe1's old SID: %s", r)
		}
	}
	msg := fmt.Sprintf("renumbering cpe1 2001:db8:1200::/40 -> 2001:db8:4400::/40: cpe2 on the new SIDs %s and %s after %s, IPv4+IPv6 UDP lan1<->lan2 back after %s",
		newSID4, newSID6, learned.Round(time.Millisecond), recovered.Round(time.Millisecond))
	t.Log(msg)
	fmt.Println(msg)
	for _, dst := range []string{"192.168.2.2", lanPrefix6(2) + "2"} {
		if out, err := exec.Command("ip", "netns", "exec", l.ns["l1"], "ping", "-c", "2", "-i", "0.2", "-W", "2", dst).CombinedOutput(); err != nil {
			t.Errorf("ping %s after renumbering: %v\n%s", dst, err, out)
		}
	}

	// Restart cpe2: the learned routes stay in its kernel while its session
	// comes back (the agent keeps them until BGP has settled). The other
	// direction is cpe1's: FRR withdraws cpe2's routes when its session
	// ends (no BGP graceful restart), so lan1 -> lan2 pauses until cpe2
	// advertises again; the test reports for how many probes.
	c2.stop(t)
	if got := encapRoutes(t, c2.ns); len(got) != 2 {
		t.Fatalf("cpe2's encap routes after SIGTERM: %q, want both left in place", got)
	}
	l.start(c2)
	restart := time.Now()
	var gaps, lost, probes int
	for time.Since(restart) < 5*time.Second {
		probes++
		if r := encapRoutes(t, c2.ns); len(r) != 2 {
			gaps++
			t.Errorf("%s after cpe2's restart: its encap routes are %q, want both kept", time.Since(restart).Round(time.Millisecond), r)
		}
		if echo.roundTrip("192.168.2.2", 1, 200*time.Millisecond) != nil {
			lost++
		}
		time.Sleep(50 * time.Millisecond)
	}
	st2 := c2.waitStatus(t, "the BGP session back after the restart", 20*time.Second, established)
	waitEncaps(t, c2.ns, []string{"192.168.1.0/24 -> " + newSID4.String(), lanPrefix6(1) + "/64 -> " + newSID6.String()}, 10*time.Second)
	t.Logf("cpe2 restarted: its 2 encap routes present in all %d probes over 5s (%d missing); lan1 -> lan2 UDP lost in %d probes (cpe1 without cpe2's routes until its session is back, up since %s)",
		probes, gaps, lost, st2.BGP.Peers[0].EstablishedAt.Format(time.RFC3339))
}

func applied(s agent.Status) bool { return s.State == agent.StateApplied && len(s.SIDs) > 0 }

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// frrEstablished counts the established sessions in "show bgp summary json".
func frrEstablished(t *testing.T, l *bgpLab) int {
	t.Helper()
	out := l.vtysh("show bgp vrf default summary json")
	var sum map[string]struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Logf("show bgp summary json: %v\n%s", err, out)
		return -1
	}
	up := map[string]bool{}
	for _, af := range sum {
		for addr, p := range af.Peers {
			if p.State == "Established" {
				up[addr] = true
			}
		}
	}
	return len(up)
}

// waitEncaps polls ns's encap routes until they are want (in any order).
func waitEncaps(t *testing.T, ns string, want []string, limit time.Duration) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(limit)
	for {
		got := encapRoutes(t, ns)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("encap routes in %s after %s:\n%s\nwant:\n%s", ns, limit, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpEcho is a UDP echo server on port 7777 in one namespace and a client
// socket in another, both opened from the test process.
type udpEcho struct {
	t      *testing.T
	mu     sync.Mutex
	client net.PacketConn
	seq    int
}

func newUDPEcho(t *testing.T, serverNS, clientNS string) *udpEcho {
	t.Helper()
	var srv, cli net.PacketConn
	if err := netnstest.Do(serverNS, func() (err error) { srv, err = net.ListenPacket("udp", ":7777"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := netnstest.Do(clientNS, func() (err error) { cli, err = net.ListenPacket("udp", ":0"); return err }); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { srv.Close(); cli.Close(); <-done })
	return &udpEcho{t: t, client: cli}
}

// roundTrip sends up to tries datagrams to dst:7777 and returns nil once one
// comes back, each awaited for wait.
func (e *udpEcho) roundTrip(dst string, tries int, wait time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(dst), 7777))
	buf := make([]byte, 64)
	var last error
	for i := 0; i < tries; i++ {
		e.seq++
		msg := fmt.Sprintf("srv6cpe-%d", e.seq)
		if _, err := e.client.WriteTo([]byte(msg), to); err != nil {
			last = err
			continue
		}
		deadline := time.Now().Add(wait)
		_ = e.client.SetReadDeadline(deadline)
		for {
			n, _, err := e.client.ReadFrom(buf)
			if err != nil {
				last = err
				break
			}
			if string(buf[:n]) == msg {
				return nil
			}
			// A late answer to an earlier try: keep reading.
		}
	}
	return fmt.Errorf("no echo in %d tries: %w", tries, last)
}
