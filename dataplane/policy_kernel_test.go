package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Netns tests of the SRv6 policy dataplane: multipath encap routes (nexthop
// groups, or RTA_MULTIPATH without nexthop objects), flow rules, and the
// switch of a service's route under traffic.

// applyCounting applies d and returns how many netlink change requests it sent.
func applyCounting(t *testing.T, k *Kernel, d Desired) int {
	t.Helper()
	before := k.c.sent
	if err := k.Apply(context.Background(), d); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return k.c.sent - before
}

// ourNexthops counts our nexthop objects and groups.
func ourNexthops(t *testing.T, n *testNS) (objects, groups int) {
	t.Helper()
	for _, l := range strings.Split(nexthops(t, n, "198"), "\n") {
		switch {
		case strings.Contains(l, " group "):
			groups++
		case strings.HasPrefix(l, "id "):
			objects++
		}
	}
	return objects, groups
}

func TestKernelMultipath(t *testing.T) {
	for _, objects := range []bool{true, false} {
		t.Run(fmt.Sprintf("nexthop objects %v", objects), func(t *testing.T) {
			n := newTestNS(t)
			k := openKernel(t, n)
			if !objects {
				k.status.Capabilities.NexthopObjects = false
			}
			d := Desired{Encaps: []EncapRoute{
				mpRoute("10.60.0.0/24", 100, EncapPath{pathA, 3}, EncapPath{pathB, 1}),
				mpRoute("10.61.0.0/24", 100, EncapPath{pathB, 1}, EncapPath{pathA, 3}), // the same set
				mpRoute("10.62.0.0/24", 0, EncapPath{pathA, 1}, EncapPath{pathB, 1}, EncapPath{pathC, 256}),
				{Prefix: mustPrefix("10.63.0.0/24"), Segments: pathB}, // shares path B's object
			}}
			if objects {
				d.Encaps = append(d.Encaps, mpRoute("2001:db8:60::/64", 100, EncapPath{pathA, 3}, EncapPath{pathB, 1}))
			}
			applyCounting(t, k, d)
			checkInstalled(t, k, d)
			if objects {
				// Three paths' objects; one group per distinct set (the
				// IPv6 route shares the IPv4 routes' group).
				if o, g := ourNexthops(t, n); o != 3 || g != 2 {
					t.Fatalf("%d objects, %d groups, want 3 and 2:\n%s", o, g, n.ip(t, "nexthop show"))
				}
			} else if out := n.ip(t, "-4 route show table 100 proto 198"); strings.Count(out, "weight 3") != 2 {
				t.Fatalf("inline multipath:\n%s", out)
			}
			if w := applyCounting(t, k, d); w != 0 {
				t.Fatalf("re-Apply of an unchanged state sent %d requests", w)
			}

			// A new choice for one route: one replace, the shared set
			// stays for the other.
			d.Encaps[0].Paths = []EncapPath{{pathA, 1}, {pathB, 3}}
			w := applyCounting(t, k, d)
			checkInstalled(t, k, d)
			if want := map[bool]int{true: 2, false: 1}[objects]; w != want { // group + replace, or replace
				t.Fatalf("switch sent %d requests, want %d", w, want)
			}
			// Everything moves off path A and the shared set: its object
			// and the unused groups go.
			for i := range d.Encaps {
				if d.Encaps[i].Paths != nil {
					d.Encaps[i].Paths = []EncapPath{{pathB, 2}, {pathC, 1}}
				}
			}
			applyCounting(t, k, d)
			checkInstalled(t, k, d)
			if objects {
				if o, g := ourNexthops(t, n); o != 2 || g != 1 {
					t.Fatalf("%d objects, %d groups, want 2 and 1:\n%s", o, g, n.ip(t, "nexthop show"))
				}
			}
			applyCounting(t, k, Desired{})
			if out := ourRoutes(t, n) + nexthops(t, n, "198"); out != "" {
				t.Fatalf("left behind:\n%s", out)
			}
		})
	}
}

// A group of ours that is not what the agent would make (a member
// changed behind its back) is replaced; a foreign group holding one of
// our objects keeps that object alive.
func TestKernelMultipathForeignGroups(t *testing.T) {
	n := newTestNS(t)
	k := openKernel(t, n)
	d := Desired{Encaps: []EncapRoute{mpRoute("10.60.0.0/24", 100, EncapPath{pathA, 3}, EncapPath{pathB, 1})}}
	applyCounting(t, k, d)
	var ids []string
	for _, l := range strings.Split(nexthops(t, n, "198"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && !strings.Contains(l, " group ") {
			ids = append(ids, f[1])
		}
	}
	if len(ids) != 2 {
		t.Fatalf("objects %v", ids)
	}
	n.ip(t, "nexthop add id 4242 group "+ids[0]+" proto static")
	n.ip(t, "-4 route add 10.250.0.0/24 nhid 4242 proto static")
	// Our group gets an extra member of another protocol.
	n.ip(t, "-6 nexthop add id 4243 encap seg6 mode encap segs 2001:db8:f::1 dev wan0 proto static")
	var grp []string
	for _, l := range strings.Split(nexthops(t, n, "198"), "\n") {
		if strings.Contains(l, " group ") {
			grp = strings.Fields(l)
		}
	}
	if len(grp) < 4 {
		t.Fatalf("no group of ours:\n%s", n.ip(t, "nexthop show"))
	}
	n.ip(t, "nexthop replace id "+grp[1]+" group "+grp[3]+"/4243 proto 198")
	applyCounting(t, k, d)
	checkInstalled(t, k, d)
	applyCounting(t, k, Desired{})
	if out := n.ip(t, "nexthop show id "+ids[0]); !strings.Contains(out, "proto 198") {
		t.Fatalf("our object in a foreign group was deleted: %s", out)
	}
	if out := n.ip(t, "-4 route show 10.250.0.0/24"); !strings.Contains(out, "nhid 4242") {
		t.Fatalf("foreign route on the foreign group gone: %q", out)
	}
}

// policyLab is a CPE namespace A with two links to a far namespace B: path
// P1 (segment fc00:b1::100) leaves on a1, path P2 (fc00:b2::100) on a2. On
// B both segments are End.DX4 SIDs that deliver to 10.60.0.1 (on B's lo)
// and drop the rest.
type policyLab struct {
	a, b   *testNS
	k      *Kernel
	p1, p2 []netip.Addr
	lan    string // a LAN namespace behind A (addLAN), "" = none
}

// addLAN puts a LAN namespace behind A (192.168.1.0/24, fd00:1::/64, A
// the default router), so flows can be forwarded through A, as a CPE's are.
func (l *policyLab) addLAN(t *testing.T) {
	t.Helper()
	l.lan = netnstest.New(t, "dpm", fmt.Sprintf("-l%d", nsCounter.Add(1)))
	netnstest.Link(t, l.a.name, "lan0", "192.168.1.1/24 fd00:1::1/64", l.lan, "eth0", "192.168.1.2/24 fd00:1::2/64")
	netnstest.Exec(t, l.lan, "ip", "route", "add", "default", "via", "192.168.1.1")
	netnstest.Exec(t, l.lan, "ip", "-6", "route", "add", "default", "via", "fd00:1::1")
}

func newPolicyLab(t *testing.T) *policyLab {
	t.Helper()
	needRoot(t)
	l := &policyLab{p1: addrs("fc00:b1::100"), p2: addrs("fc00:b2::100")}
	for i, role := range []string{"a", "b"} {
		name := netnstest.New(t, "dpm", fmt.Sprintf("-%s%d", role, nsCounter.Add(1)))
		h, err := netns.GetFromName(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		n := &testNS{name: name, h: h}
		if i == 0 {
			l.a = n
		} else {
			l.b = n
		}
	}
	netnstest.Link(t, l.a.name, "a1", "fc00:1::1/64", l.b.name, "b1", "fc00:1::2/64")
	netnstest.Link(t, l.a.name, "a2", "fc00:2::1/64", l.b.name, "b2", "fc00:2::2/64")
	l.a.ip(t, "addr add 192.0.2.1/32 dev lo")
	l.a.ip(t, "-6 route add fc00:b1::/48 via fc00:1::2 dev a1")
	l.a.ip(t, "-6 route add fc00:b2::/48 via fc00:2::2 dev a2")
	l.b.ip(t, "addr add 10.60.0.1/32 dev lo")
	for _, c := range []string{"all", "default", "lo", "b1", "b2"} {
		writeNSSysctl(t, l.b, "net/ipv4/conf/"+c+"/rp_filter", "0")
	}
	for _, c := range []string{"all", "b1", "b2"} {
		writeNSSysctl(t, l.b, "net/ipv6/conf/"+c+"/seg6_enabled", "1")
	}
	l.b.ip(t, "-6 route add fc00:b1::100/128 encap seg6local action End.DX4 nh4 0.0.0.0 dev b1")
	l.b.ip(t, "-6 route add fc00:b2::100/128 encap seg6local action End.DX4 nh4 0.0.0.0 dev b2")
	nft := "add table netdev dpm\n" +
		"add counter netdev dpm p1\n" +
		"add counter netdev dpm p2\n" +
		"add chain netdev dpm in1 { type filter hook ingress device b1 priority 0; }\n" +
		"add chain netdev dpm in2 { type filter hook ingress device b2 priority 0; }\n" +
		"add rule netdev dpm in1 ip6 nexthdr 43 counter name p1\n" +
		"add rule netdev dpm in2 ip6 nexthdr 43 counter name p2\n"
	cmd := exec.Command("ip", "netns", "exec", l.b.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	var err error
	l.k, err = Open(context.Background(), Options{WANInterface: "a1", Logger: zap.NewNop(), NetNS: l.a.h, SkipSysctls: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.k.Close() })
	return l
}

// tx returns the SRv6 packets (IPv6 with a routing header) B has received
// on path 1 (b1) and path 2 (b2) so far: nftables counters, so that
// neighbour and multicast chatter on the links never counts.
func (l *policyLab) tx(t *testing.T) (uint64, uint64) {
	t.Helper()
	out := netnstest.Exec(t, l.b.name, "nft", "list", "counters", "table", "netdev", "dpm")
	var v [2]uint64
	for i, name := range []string{"p1", "p2"} {
		_, rest, ok := strings.Cut(out, "counter "+name+" {")
		_, rest, ok2 := strings.Cut(rest, "packets ")
		f := strings.Fields(rest)
		if !ok || !ok2 || len(f) == 0 {
			t.Fatalf("no counter %s in:\n%s", name, out)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatalf("counter %s: %v", name, err)
		}
		v[i] = n
	}
	return v[0], v[1]
}

// sendUDP sends one datagram to each destination (all of one family)
// from a socket in A with this TOS / traffic class byte, and returns how
// many sends failed.
func (l *policyLab) sendUDP(t *testing.T, tos int, dsts []netip.AddrPort) int {
	t.Helper()
	return sendUDPFrom(t, l.a.name, tos, dsts)
}

// sendUDPFrom is sendUDP from namespace ns.
func sendUDPFrom(t *testing.T, ns string, tos int, dsts []netip.AddrPort) int {
	t.Helper()
	failed := 0
	v6 := dsts[0].Addr().Is6()
	err := netnstest.Do(ns, func() error {
		fam, level, opt := unix.AF_INET, unix.IPPROTO_IP, unix.IP_TOS
		if v6 {
			fam, level, opt = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_TCLASS
		}
		fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, level, opt, tos); err != nil {
			return err
		}
		for _, d := range dsts {
			var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: d.Addr().As16(), Port: int(d.Port())}
			if !v6 {
				sa = &unix.SockaddrInet4{Addr: d.Addr().As4(), Port: int(d.Port())}
			}
			if unix.Sendto(fd, []byte("policy"), 0, sa) != nil {
				failed++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return failed
}

// (a) A 3:1 multipath route really shares: 4,000 flows (distinct
// destinations) arrive on the two paths about 3:1.
func TestKernelMultipathTraffic(t *testing.T) {
	l := newPolicyLab(t)
	d := Desired{Encaps: []EncapRoute{{Prefix: mustPrefix("10.70.0.0/16"), Dev: "a1",
		Paths: []EncapPath{{l.p1, 3}, {l.p2, 1}}}}}
	if err := l.k.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	checkInstalledDev(t, l.k, d, "a1")
	const flows = 4000
	dsts := make([]netip.AddrPort, flows)
	for i := range dsts {
		dsts[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 70, byte(i >> 8), byte(i)}), 9)
	}
	tx1, tx2 := l.tx(t)
	if f := l.sendUDP(t, 0, dsts); f != 0 {
		t.Fatalf("%d sends failed", f)
	}
	e1, e2 := l.tx(t)
	for i := 0; i < 100 && e1-tx1+e2-tx2 < flows; i++ { // the veths deliver asynchronously
		time.Sleep(5 * time.Millisecond)
		e1, e2 = l.tx(t)
	}
	p1, p2 := e1-tx1, e2-tx2
	ratio := float64(p1) / float64(p2)
	t.Logf("multipath 3:1 over %d flows: path 1 %d packets, path 2 %d, ratio %.2f", flows, p1, p2, ratio)
	if p1+p2 != flows || ratio < 2.4 || ratio > 3.75 {
		t.Fatalf("path 1 %d, path 2 %d packets (ratio %.2f), want %d in about 3:1", p1, p2, ratio, flows)
	}
}

// (b) A flow rule (UDP, port 5000, DSCP 46) sends matching datagrams into
// the service table (path 1) and the rest to the main table (path 2):
// IPv4 with FRA_DSCP, IPv6 with FRA_DSCP and with the tos-field fallback;
// datagrams sent by A itself and forwarded from its LAN.
func TestKernelFlowRuleTraffic(t *testing.T) {
	l := newPolicyLab(t)
	l.addLAN(t)
	probed := l.k.Capabilities().RuleDSCP
	for _, c := range []struct {
		name    string
		family  int
		prefix  string
		viaAttr bool
	}{
		{"IPv4 FRA_DSCP", unix.AF_INET, "10.60.0.0/24", true},
		{"IPv6 FRA_DSCP", unix.AF_INET6, "2001:db8:60::/64", true},
		{"IPv6 tos field", unix.AF_INET6, "2001:db8:60::/64", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.viaAttr && !probed {
				t.Skip("kernel without FRA_DSCP (Linux < 6.12)")
			}
			l.k.status.Capabilities.RuleDSCP = c.viaAttr
			defer func() { l.k.status.Capabilities.RuleDSCP = probed }()
			d := Desired{
				Encaps: []EncapRoute{
					{Prefix: mustPrefix(c.prefix), Table: 100, Dev: "a1", Segments: l.p1},
					{Prefix: mustPrefix(c.prefix), Dev: "a1", Segments: l.p2},
				},
				FlowRules: []FlowRule{{Priority: 600, Family: c.family, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, DSCP: 46, HasDSCP: true, Table: 100}},
			}
			if err := l.k.Apply(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			checkInstalledDev(t, l.k, d, "a1")
			for _, from := range []string{l.a.name, l.lan} {
				flowTraffic(t, l, from, mustPrefix(c.prefix).Addr())
			}
		})
	}
}

// flowTraffic sends 50 datagrams of each kind from namespace ns to
// addresses after base and checks which path they take.
func flowTraffic(t *testing.T, l *policyLab, ns string, base netip.Addr) {
	t.Helper()
	const each = 50
	cases := []struct {
		name string
		tos  int
		port uint16
		p1   bool
	}{
		{"udp 5000 dscp 46", 46 << 2, 5000, true},
		{"udp 5000 dscp 46 ecn", 46<<2 | 1, 5000, true},
		{"udp 5000 best effort", 0, 5000, false},
		{"udp 5000 dscp 10", 10 << 2, 5000, false},
		{"udp 5001 dscp 46", 46 << 2, 5001, false},
	}
	for _, c := range cases {
		dsts := make([]netip.AddrPort, each)
		a := base.Next()
		for i := range dsts {
			a = a.Next()
			dsts[i] = netip.AddrPortFrom(a, c.port)
		}
		tx1, tx2 := l.tx(t)
		if f := sendUDPFrom(t, ns, c.tos, dsts); f != 0 {
			t.Fatalf("%s: %d sends failed", c.name, f)
		}
		// The veths deliver asynchronously: wait (bounded) for all.
		e1, e2 := l.tx(t)
		for i := 0; i < 100 && e1-tx1+e2-tx2 < each; i++ {
			time.Sleep(2 * time.Millisecond)
			e1, e2 = l.tx(t)
		}
		t.Logf("%s from %s: path 1 %d, path 2 %d", c.name, ns, e1-tx1, e2-tx2)
		want1, want2 := uint64(0), uint64(each)
		if c.p1 {
			want1, want2 = each, 0
		}
		if e1-tx1 != want1 || e2-tx2 != want2 {
			t.Errorf("%s: path 1 %d, path 2 %d packets, want %d and %d", c.name, e1-tx1, e2-tx2, want1, want2)
		}
	}
}

// Flow rules in the kernel: read back equal in both DSCP forms (FRA_DSCP,
// and the IPv6 tos field without it), unchanged = no request, a changed
// rule replaces the old one, other protocols' rules are never touched.
func TestKernelFlowRules(t *testing.T) {
	n := newTestNS(t)
	k := openKernel(t, n)
	if !k.Capabilities().RuleDSCP {
		t.Skip("kernel without FRA_DSCP (Linux < 6.12)")
	}
	n.ip(t, "rule add pref 600 ipproto udp dport 5000 lookup 100") // foreign, same selectors
	foreign := n.ip(t, "rule show pref 600")
	for _, viaAttr := range []bool{true, false} {
		k.status.Capabilities.RuleDSCP = viaAttr
		flows := sampleFlows()
		if !viaAttr {
			flows = flows[1:]
		}
		d := Desired{FlowRules: flows}
		applyCounting(t, k, d)
		checkInstalled(t, k, d)
		if w := applyCounting(t, k, d); w != 0 {
			t.Fatalf("re-Apply of unchanged rules sent %d requests", w)
		}
		if !viaAttr && !strings.Contains(n.ip(t, "-6 rule show pref 601"), "tos AF11") {
			t.Fatalf("DSCP 10 not in the IPv6 tos field:\n%s", n.ip(t, "-6 rule show"))
		}
		d.FlowRules[0].Table = 200
		if w := applyCounting(t, k, d); w != 2 {
			t.Fatalf("one changed rule sent %d requests, want 2 (add, delete)", w)
		}
		checkInstalled(t, k, d)
		if got := n.ip(t, "rule show pref 600"); !strings.Contains(got, foreign) {
			t.Fatalf("foreign rule changed:\n%s\nwas\n%s", got, foreign)
		}
	}
	applyCounting(t, k, Desired{})
	checkInstalled(t, k, Desired{})
	if strings.Count(n.ip(t, "rule show")+n.ip(t, "-6 rule show"), "proto 198") != 0 {
		t.Fatalf("rules of ours left:\n%s", n.ip(t, "rule show"))
	}
}

// The DSCP probe agrees with the kernel version (FRA_DSCP is Linux 6.12)
// and leaves no rule behind.
func TestKernelProbeRuleDSCP(t *testing.T) {
	n := newTestNS(t)
	k := openKernel(t, n)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	want := major > 6 || major == 6 && minor >= 12
	if got := k.Capabilities().RuleDSCP; got != want {
		t.Errorf("RuleDSCP %v on Linux %d.%d (notes %v)", got, major, minor, k.Status().ProbeNotes)
	}
	rules, _, err := k.readRules()
	if err != nil || len(rules) != 0 {
		t.Fatalf("probe left rules %v (%v)", rules, err)
	}
}

// snmpCounter reads one counter of /proc/net/snmp ("Ip", "OutNoRoutes")
// or /proc/net/snmp6 ("", "Ip6OutNoRoutes") in namespace ns.
func snmpCounter(t *testing.T, ns, group, name string) int64 {
	t.Helper()
	if group == "" {
		for _, l := range strings.Split(netnstest.Exec(t, ns, "cat", "/proc/net/snmp6"), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == name {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
		t.Fatalf("no %s in snmp6", name)
	}
	var hdr []string
	for _, l := range strings.Split(netnstest.Exec(t, ns, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if hdr == nil {
			hdr = f
			continue
		}
		if i := slices.Index(hdr, name); i > 0 && i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			return v
		}
	}
	t.Fatalf("no %s %s in snmp", group, name)
	return 0
}

// udpStream sends numbered datagrams from A to 10.60.0.1:5000 every
// millisecond and counts on B what arrives, until stop.
type udpStream struct {
	sent, sendErr, recv atomic.Int64
	stop                chan struct{}
	wg                  sync.WaitGroup
	rconn               net.PacketConn
}

func startStream(t *testing.T, l *policyLab) *udpStream {
	t.Helper()
	s := &udpStream{stop: make(chan struct{})}
	err := netnstest.Do(l.b.name, func() error {
		var err error
		s.rconn, err = net.ListenPacket("udp4", "10.60.0.1:5000")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var sconn net.PacketConn
	if err := netnstest.Do(l.a.name, func() error {
		var err error
		sconn, err = net.ListenPacket("udp4", "192.0.2.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 64)
		for {
			if _, _, err := s.rconn.ReadFrom(buf); err != nil {
				return // closed by stopStream
			}
			s.recv.Add(1)
		}
	}()
	go func() {
		defer s.wg.Done()
		defer sconn.Close()
		dst := &net.UDPAddr{IP: net.IPv4(10, 60, 0, 1), Port: 5000}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			if _, err := sconn.WriteTo([]byte(strconv.Itoa(seq)), dst); err != nil {
				s.sendErr.Add(1)
				continue
			}
			s.sent.Add(1)
		}
	}()
	return s
}

// prober sends datagrams back to back (bounded in count) from A to
// 10.60.0.99:5000, which takes the service route and is dropped on B, and
// counts the sends that find no route: it samples the route every few
// microseconds, where the 1 ms stream samples every millisecond.
type prober struct {
	sent, noRoute atomic.Int64
	stop          chan struct{}
	done          chan struct{}
}

// proberMax bounds the prober (at a few microseconds a send, more than the
// switch loop takes).
const proberMax = 2000000

func startProber(t *testing.T, l *policyLab) *prober {
	t.Helper()
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	var fd int
	if err := netnstest.Do(l.a.name, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		defer unix.Close(fd)
		dst := &unix.SockaddrInet4{Addr: [4]byte{10, 60, 0, 99}, Port: 5000}
		for i := 0; i < proberMax; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			if err := unix.Sendto(fd, []byte("probe"), 0, dst); errors.Is(err, unix.ENETUNREACH) {
				p.noRoute.Add(1)
			}
			p.sent.Add(1)
		}
	}()
	return p
}

func (p *prober) stopProber() {
	close(p.stop)
	<-p.done
}

// stopStream stops the sender, lets the last datagrams arrive (bounded)
// and stops the receiver.
func (s *udpStream) stopStream() {
	close(s.stop)
	for i := 0; i < 100 && s.recv.Load() < s.sent.Load(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	s.rconn.Close()
	s.wg.Wait()
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// (c) The switch test: a UDP stream runs through a service table's route
// while 1,000 Apply calls alternate it between two choices (a 3:1 share
// over both paths, and path 2 alone). No datagram is lost to "no route",
// and afterwards nothing leaked: no nexthop objects, groups, routes or
// rules, no goroutines, no heap growth. With nexthop objects (groups) and
// without (inline RTA_MULTIPATH).
func TestKernelPolicySwitch(t *testing.T) {
	for _, objects := range []bool{true, false} {
		t.Run(fmt.Sprintf("nexthop objects %v", objects), func(t *testing.T) { policySwitch(t, objects) })
	}
}

func policySwitch(t *testing.T, objects bool) {
	l := newPolicyLab(t)
	l.k.status.Capabilities.NexthopObjects = objects && l.k.status.Capabilities.NexthopObjects
	ctx := context.Background()
	choice := func(i int) Desired {
		paths := []EncapPath{{l.p1, 3}, {l.p2, 1}}
		if i%2 == 1 {
			paths = []EncapPath{{l.p2, 1}}
		}
		return Desired{
			Encaps:    []EncapRoute{{Prefix: mustPrefix("10.60.0.0/24"), Table: 100, Dev: "a1", Paths: paths}},
			FlowRules: []FlowRule{{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, Table: 100}},
		}
	}
	if err := l.k.Apply(ctx, choice(0)); err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	noRoute4 := snmpCounter(t, l.a.name, "Ip", "OutNoRoutes")
	noRoute6 := snmpCounter(t, l.a.name, "", "Ip6OutNoRoutes")
	s := startStream(t, l)
	pr := startProber(t, l)
	const switches = 1000
	var first, last []uint64
	start := time.Now()
	var applyTime time.Duration
	for i := 1; i <= switches; i++ {
		// Each switch waits for the next datagram (bounded), so traffic
		// crosses every one of them.
		for n, w := s.sent.Load()+s.sendErr.Load(), 0; s.sent.Load()+s.sendErr.Load() == n && w < 50; w++ {
			time.Sleep(100 * time.Microsecond)
		}
		t0 := time.Now()
		if err := l.k.Apply(ctx, choice(i)); err != nil {
			s.stopStream()
			pr.stopProber()
			t.Fatalf("switch %d: %v", i, err)
		}
		applyTime += time.Since(t0)
		if i%10 == 0 && (i <= 100 || i > switches-100) {
			h := heapAfterGC()
			if i <= 100 {
				first = append(first, h)
			} else {
				last = append(last, h)
			}
		}
	}
	elapsed := time.Since(start)
	pr.stopProber()
	s.stopStream()
	sent, recv, sendErr := s.sent.Load(), s.recv.Load(), s.sendErr.Load()
	dNoRoute4 := snmpCounter(t, l.a.name, "Ip", "OutNoRoutes") - noRoute4
	dNoRoute6 := snmpCounter(t, l.a.name, "", "Ip6OutNoRoutes") - noRoute6
	t.Logf("%d switches in %v (Apply mean %v): sent %d, received %d, send errors %d, OutNoRoutes +%d, Ip6OutNoRoutes +%d",
		switches, elapsed.Round(time.Millisecond), (applyTime / switches).Round(time.Microsecond), sent, recv, sendErr, dNoRoute4, dNoRoute6)
	t.Logf("back-to-back prober: %d sends, %d without a route", pr.sent.Load(), pr.noRoute.Load())
	if pr.noRoute.Load() != 0 || pr.sent.Load() >= proberMax {
		t.Errorf("the prober found no route %d times in %d sends (at most %d: it must outlast the switches)", pr.noRoute.Load(), pr.sent.Load(), proberMax)
	}
	if sent < switches/2 || recv != sent || sendErr != 0 || dNoRoute4 != 0 || dNoRoute6 != 0 {
		t.Errorf("lost datagrams: sent %d, received %d, send errors %d, OutNoRoutes +%d, Ip6OutNoRoutes +%d",
			sent, recv, sendErr, dNoRoute4, dNoRoute6)
	}

	// What is held is exactly the last choice: 1 route, 1 rule, and
	// (switch 1000 is even: the 3:1 share) both objects and their group.
	checkInstalledDev(t, l.k, choice(switches), "a1")
	wantO, wantG := 2, 1
	if !objects {
		wantO, wantG = 0, 0
	}
	if o, g := ourNexthops(t, l.a); o != wantO || g != wantG {
		t.Errorf("%d objects, %d groups after the switches, want %d and %d:\n%s", o, g, wantO, wantG, l.a.ip(t, "nexthop show"))
	}
	// The checks have teeth: a switch done as delete-then-add (two
	// Applies) leaves windows the prober finds, and the counters see a
	// missing route (the main table has no 10.60.0.0/24).
	noRoute := choice(0)
	noRoute.Encaps = nil
	pr = startProber(t, l)
	for i := 0; i < 100; i++ {
		if err := l.k.Apply(ctx, noRoute); err != nil {
			pr.stopProber()
			t.Fatal(err)
		}
		if err := l.k.Apply(ctx, choice(i)); err != nil {
			pr.stopProber()
			t.Fatal(err)
		}
	}
	pr.stopProber()
	t.Logf("control, 100 delete-then-add switches: prober %d sends, %d without a route", pr.sent.Load(), pr.noRoute.Load())
	if pr.noRoute.Load() == 0 {
		t.Errorf("the prober saw no window in 100 delete-then-add switches (%d sends)", pr.sent.Load())
	}
	if err := l.k.Apply(ctx, noRoute); err != nil {
		t.Fatal(err)
	}
	before := snmpCounter(t, l.a.name, "Ip", "OutNoRoutes")
	failed := l.sendUDP(t, 0, []netip.AddrPort{netip.MustParseAddrPort("10.60.0.1:5000")})
	if d := snmpCounter(t, l.a.name, "Ip", "OutNoRoutes") - before; failed != 1 || d != 1 {
		t.Errorf("without a route: %d sends failed, OutNoRoutes +%d, want 1 and 1", failed, d)
	}
	if err := l.k.Apply(ctx, Desired{}); err != nil {
		t.Fatal(err)
	}
	if out := ourRoutes(t, l.a) + nexthops(t, l.a, "198"); out != "" {
		t.Errorf("left behind:\n%s", out)
	}
	if r := l.a.ip(t, "rule show") + l.a.ip(t, "-6 rule show"); strings.Contains(r, "proto 198") {
		t.Errorf("rules left:\n%s", r)
	}
	g := runtime.NumGoroutine()
	for i := 0; i < 100 && g > goroutines; i++ {
		time.Sleep(10 * time.Millisecond)
		g = runtime.NumGoroutine()
	}
	f, z := median(first), median(last)
	t.Logf("goroutines %d before, %d after; heap after GC: median %d KiB over switches 1-100, %d KiB over %d-%d",
		goroutines, g, f/1024, z/1024, switches-99, switches)
	if g > goroutines {
		t.Errorf("goroutines %d before, %d after", goroutines, g)
	}
	if z > f+f/4+512<<10 {
		t.Errorf("heap grew: median %d bytes over the first 100 switches, %d over the last 100", f, z)
	}
}
