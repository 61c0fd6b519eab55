package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/agent"
)

// bgpLab is the issue 4 topology in network namespaces:
//
//	[l1] eth0 -- lan0 [c1] wan0 --- c1 [wan] c2 --- wan0 [c2] lan0 -- eth0 [l2]
//	                                     rr
//	                                     |
//	                                   wan0 [rr]  FRR bgpd -Z, route reflector
//
// c1 and c2 run the srv6cpe daemon. Each CPE's wan0 carries its delegated
// prefix as a global address (2001:db8:i200::1/40: the prefix source) and a
// stable ULA (fd00:e4:i::2/64) that the BGP session to the reflector
// (fd00:e4:ff::2) runs on, so that renumbering the delegated prefix does
// not take the session down. wan routes each /40 to its CPE.
type bgpLab struct {
	tb    testing.TB
	bin   string
	dir   string
	ns    map[string]string // role (rr wan c1 c2 l1 l2) -> namespace
	rrVty string
	cpes  [2]*bgpCPE
}

type bgpCPE struct {
	i        int // 1 or 2
	ns       string
	cfgPath  string
	stateDir string
	logPath  string
	cmd      *exec.Cmd
	done     chan error
}

const (
	labAS   = 65000
	rrAddr  = "fd00:e4:ff::2"
	bgpdBin = "/usr/lib/frr/bgpd"
)

// wanAddr is CPE i's delegated-prefix address before renumbering.
func wanAddr(i int) string { return fmt.Sprintf("2001:db8:%d200::1/40", i) }

// needBGPLab skips unless the lab can run: root, iproute2, FRR's bgpd.
func needBGPLab(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces and runs srv6cpe and FRR's bgpd in them")
	}
	for _, bin := range []string{"ip", bgpdBin} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("needs %s (Debian packages iproute2, frr): %v", bin, err)
		}
	}
}

func mustRun(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newBGPLab builds the namespaces and links; lans adds l1 and l2.
func newBGPLab(tb testing.TB, tag string, lans bool) *bgpLab {
	tb.Helper()
	needBGPLab(tb)
	l := &bgpLab{tb: tb, dir: tb.TempDir(), ns: map[string]string{}}
	l.bin = buildBin(tb, l.dir)
	roles := []string{"rr", "wan", "c1", "c2"}
	if lans {
		roles = append(roles, "l1", "l2")
	}
	for _, r := range roles {
		ns := fmt.Sprintf("e4%d%s%s", os.Getpid(), tag, r)
		l.ns[r] = ns
		mustRun(tb, "ip", "netns", "add", ns)
		tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		mustRun(tb, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	wan := l.ns["wan"]
	mustRun(tb, "ip", "netns", "exec", wan, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	link := func(a, aIf, b, bIf string) {
		mustRun(tb, "ip", "link", "add", aIf, "netns", a, "type", "veth", "peer", "name", bIf, "netns", b)
		mustRun(tb, "ip", "-n", a, "link", "set", aIf, "up")
		mustRun(tb, "ip", "-n", b, "link", "set", bIf, "up")
	}
	addr := func(ns, dev, a string) { mustRun(tb, "ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad") }

	link(l.ns["rr"], "wan0", wan, "rr")
	addr(l.ns["rr"], "wan0", rrAddr+"/64")
	addr(wan, "rr", "fd00:e4:ff::1/64")
	mustRun(tb, "ip", "-n", l.ns["rr"], "-6", "route", "add", "default", "via", "fd00:e4:ff::1")
	for i := 1; i <= 2; i++ {
		c, side := l.ns[fmt.Sprintf("c%d", i)], fmt.Sprintf("c%d", i)
		link(c, "wan0", wan, side)
		addr(c, "wan0", wanAddr(i))
		addr(c, "wan0", fmt.Sprintf("fd00:e4:%d::2/64", i))
		addr(wan, side, fmt.Sprintf("fd00:e4:%d::1/64", i))
		mustRun(tb, "ip", "-n", c, "-6", "route", "add", "default", "via", fmt.Sprintf("fd00:e4:%d::1", i))
		mustRun(tb, "ip", "-n", wan, "-6", "route", "add", netip.MustParsePrefix(wanAddr(i)).Masked().String(), "via", fmt.Sprintf("fd00:e4:%d::2", i))
		if lans {
			h := l.ns[fmt.Sprintf("l%d", i)]
			link(c, "lan0", h, "eth0")
			addr(c, "lan0", fmt.Sprintf("192.168.%d.1/24", i))
			addr(c, "lan0", fmt.Sprintf("%s1/64", lanPrefix6(i)))
			addr(h, "eth0", fmt.Sprintf("192.168.%d.2/24", i))
			addr(h, "eth0", fmt.Sprintf("%s2/64", lanPrefix6(i)))
			mustRun(tb, "ip", "-n", h, "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", i))
			mustRun(tb, "ip", "-n", h, "-6", "route", "add", "default", "via", lanPrefix6(i)+"1")
		}
		l.cpes[i-1] = &bgpCPE{
			i: i, ns: c,
			cfgPath:  filepath.Join(l.dir, side+".yaml"),
			stateDir: filepath.Join(l.dir, side+"-state"),
			logPath:  filepath.Join(l.dir, side+".log"),
		}
	}
	l.startFRR()
	return l
}

// lanPrefix6 is the IPv6 LAN /64 of CPE i, from its delegated prefix, with
// the trailing "::" ready for a host part.
func lanPrefix6(i int) string { return fmt.Sprintf("2001:db8:%d201::", i) }

// frrConfig is the reflector: both CPEs as route-reflector clients for
// VPNv4 and VPNv6, with the two settings FRR 8.4 needs (DESIGN.md).
func frrConfig(logFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname rr\nlog file %s informational\n!\nrouter bgp %d\n bgp router-id 10.255.0.1\n no bgp default ipv4-unicast\n no bgp suppress-duplicates\n", logFile, labAS)
	for i := 1; i <= 2; i++ {
		n := fmt.Sprintf("fd00:e4:%d::2", i)
		// extended-nexthop: else FRR reflects VPNv4 routes with next hop 0.0.0.0.
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s passive\n neighbor %s capability extended-nexthop\n neighbor %s timers connect 1\n", n, labAS, n, n, n)
	}
	for _, af := range []string{"ipv4 vpn", "ipv6 vpn"} {
		fmt.Fprintf(&b, " address-family %s\n", af)
		for i := 1; i <= 2; i++ {
			n := fmt.Sprintf("fd00:e4:%d::2", i)
			fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s route-reflector-client\n", n, n)
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("!\n")
	return b.String()
}

// startFRR runs bgpd -Z in rr with every path (config, pid, vty socket,
// zebra socket) under the test's temp dir, so nothing touches a system FRR.
func (l *bgpLab) startFRR() {
	tb := l.tb
	dir := filepath.Join(l.dir, "frr")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	l.rrVty = dir
	logFile := filepath.Join(dir, "bgpd.log")
	conf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(conf, []byte(frrConfig(logFile)), 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "bgpd.out"))
	if err != nil {
		tb.Fatal(err)
	}
	// -S: stay root (no frr user needed); -P 0: no telnet vty.
	cmd := exec.Command("ip", "netns", "exec", l.ns["rr"], bgpdBin, "-Z", "-S", "-P", "0", "-f", conf,
		"-i", filepath.Join(dir, "bgpd.pid"), "-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		tb.Fatalf("starting bgpd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, c := range []string{"show bgp summary", "show bgp ipv4 vpn", "show bgp ipv6 vpn"} {
				tb.Logf("bgpd> %s\n%s", c, l.vtysh(c))
			}
			if b, err := os.ReadFile(logFile); err == nil {
				tb.Logf("bgpd log (tail):\n%s", tail(b, 8000))
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM) // ip netns exec execs bgpd: this is bgpd
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// vtysh runs a show command in the reflector's bgpd (no zebra needed).
func (l *bgpLab) vtysh(c string) string {
	out, err := exec.Command("ip", "netns", "exec", l.ns["rr"], "vtysh", "--vty_socket", l.rrVty, "-c", c).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("vtysh -c %q: %v\n%s", c, err, out)
	}
	return string(out)
}

// cpeConfig is CPE i's config: vpn4 (End.DT4, the End.DX4 fallback without
// VRF) and vpn6 (End.DT6) in one VPN, each exporting its LAN prefixes with
// RD 65000:i and importing RT 65000:100. lan4 replaces the IPv4 LAN prefixes.
func cpeConfig(i int, lan4 []string) string {
	if lan4 == nil {
		lan4 = []string{fmt.Sprintf("192.168.%d.0/24", i)}
	}
	return fmt.Sprintf(`log_level: info
wan: {interface: wan0, prefix_source: address, debounce: 50ms}
srv6: {locator_len: 48, function_len: 16, extension: 0x5}
bgp:
  local_as: %[2]d
  router_id: 10.0.0.%[1]d
  listen_port: -1
  neighbors:
    - {address: "%[3]s", remote_as: %[2]d, source_address: "fd00:e4:%[1]d::2", connect_retry: 1, hold_time: 9}
services:
  - {name: end, behavior: End, function: 0x1}
  - name: vpn4
    behavior: End.DT4
    function: 0x4
    vrf: vpn1
    table: 100
    route_distinguisher: "%[2]d:%[1]d"
    import_rts: ["%[2]d:100"]
    export_rts: ["%[2]d:100"]
    lan_prefixes: [%[4]s]
  - {name: vpn6, behavior: End.DT6, function: 0x6, vrf: vpn1, table: 100, route_distinguisher: "%[2]d:%[1]d",
     import_rts: ["%[2]d:100"], export_rts: ["%[2]d:100"], lan_prefixes: ["%[5]s/64"]}
`, i, labAS, rrAddr, strings.Join(lan4, ", "), lanPrefix6(i))
}

func (c *bgpCPE) writeConfig(tb testing.TB, lan4 []string) {
	tb.Helper()
	if err := os.WriteFile(c.cfgPath, []byte(cpeConfig(c.i, lan4)), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// start runs srv6cpe in the CPE's namespace.
func (l *bgpLab) start(c *bgpCPE) {
	tb := l.tb
	tb.Helper()
	if _, err := os.Stat(c.cfgPath); err != nil {
		c.writeConfig(tb, nil)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	c.cmd = exec.Command("ip", "netns", "exec", c.ns, l.bin, "--config", c.cfgPath, "--state-dir", c.stateDir)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		tb.Fatal(err)
	}
	logf.Close()
	cmd, done := c.cmd, make(chan error, 1)
	c.done = done
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		select {
		case err := <-done:
			done <- err
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				done <- err
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
		if tb.Failed() {
			b, _ := os.ReadFile(c.logPath)
			tb.Logf("c%d daemon log (tail):\n%s", c.i, tail(b, 8000))
		}
	})
}

// stop sends SIGTERM to the CPE's daemon and waits for it to exit.
func (c *bgpCPE) stop(tb testing.TB) {
	tb.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			tb.Fatalf("c%d: srv6cpe exited with %v after SIGTERM", c.i, err)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("c%d: srv6cpe did not exit within 10s of SIGTERM", c.i)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// status reads the CPE's status.json (zero Status if not there yet).
func (c *bgpCPE) status() agent.Status {
	var s agent.Status
	if b, err := os.ReadFile(filepath.Join(c.stateDir, agent.StatusFile)); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

// waitStatus polls the CPE's status.json until ok, failing after limit.
func (c *bgpCPE) waitStatus(tb testing.TB, what string, limit time.Duration, ok func(agent.Status) bool) agent.Status {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := c.status()
		if ok(s) {
			return s
		}
		select {
		case err := <-c.done:
			c.done <- err
			tb.Fatalf("c%d: srv6cpe exited (%v) while waiting for %s", c.i, err, what)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(s, "", "  ")
			tb.Fatalf("c%d: %s: not within %s; status:\n%s", c.i, what, limit, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func established(s agent.Status) bool {
	return s.BGP != nil && len(s.BGP.Peers) == 1 && s.BGP.Peers[0].State == "established"
}

// encapRoutes lists CPE ns's seg6 encap routes (IPv4 and IPv6) as
// "prefix -> SID", from the agent's route protocol.
func encapRoutes(tb testing.TB, ns string) []string {
	tb.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		for _, line := range strings.Split(mustRun(tb, "ip", "-n", ns, fam, "route", "show", "proto", "198"), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.Contains(line, "encap seg6 ") {
				continue
			}
			i := strings.Index(line, "[ ")
			j := strings.Index(line, " ]")
			if i < 0 || j < i {
				continue
			}
			out = append(out, f[0]+" -> "+line[i+2:j])
		}
	}
	return out
}

func buildBin(tb testing.TB, dir string) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "srv6cpe")
	// As make build does: a stripped binary with the shipping tags, which
	// also keeps fewer pages resident.
	cmd := exec.Command(goBin, "build", "-tags", shippingTags(tb), "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// shippingTags reads the build tags of the shipped binaries from
// scripts/buildtags.
func shippingTags(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("../../scripts/buildtags")
	if err != nil {
		tb.Fatal(err)
	}
	var tags []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			tags = append(tags, line)
		}
	}
	return strings.Join(tags, ",")
}

// srv6Packet is what the capture says about one SRv6-encapsulated packet.
type srv6Packet struct {
	outerDst netip.Addr
	srh      bool  // a Segment Routing Header (routing type 4) is present
	inner    uint8 // 4 (IPv4) or 41 (IPv6)
	proto    uint8 // the inner packet's protocol: 1 ICMP, 17 UDP, 58 ICMPv6
}

// readSRv6Pcap returns the SRv6-encapsulated IPv6 packets in an Ethernet
// pcap file (tcpdump -w), skipping everything else.
func readSRv6Pcap(path string) ([]srv6Packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: %d bytes, no pcap header", path, len(b))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	default:
		bo = binary.BigEndian
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("%s: link type %d, want Ethernet (1)", path, lt)
	}
	var out []srv6Packet
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frame := b[off : off+n]
		off += n
		if len(frame) < 14+40 || binary.BigEndian.Uint16(frame[12:]) != 0x86dd {
			continue
		}
		ip6 := frame[14:]
		p := srv6Packet{outerDst: netip.AddrFrom16([16]byte(ip6[24:40]))}
		nh, rest := ip6[6], ip6[40:]
		if nh == 43 && len(rest) >= 8 && rest[2] == 4 {
			p.srh = true
			hl := 8 * (int(rest[1]) + 1)
			if len(rest) < hl {
				continue
			}
			nh, rest = rest[0], rest[hl:]
		}
		switch {
		case nh == 4 && len(rest) >= 20:
			p.inner, p.proto = 4, rest[9]
		case nh == 41 && len(rest) >= 40:
			p.inner, p.proto = 41, rest[6]
		default:
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// capture runs tcpdump on dev in ns until the returned stop is called,
// which returns the pcap file.
func capture(tb testing.TB, ns, dev, file string) func() string {
	tb.Helper()
	// -Z root: write into the test's (root-only) temp dir; --immediate-mode:
	// every packet reaches the file before SIGINT, not after a 1s block timeout.
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", dev, "-U", "-n", "-s", "256", "-w", file, "ip6")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("tcpdump: %v", err)
	}
	listening := make(chan struct{})
	done := make(chan struct{})
	go func() {
		// tcpdump says "listening on" once the capture is open.
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "listening on") {
				seen = true
				close(listening)
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-listening:
	case <-done:
		tb.Fatal("tcpdump exited before capturing")
	case <-time.After(5 * time.Second):
		tb.Fatal("tcpdump did not start capturing within 5s")
	}
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		return file
	}
	tb.Cleanup(func() { stop() })
	return stop
}
