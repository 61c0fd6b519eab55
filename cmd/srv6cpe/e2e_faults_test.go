//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// faultRoutes is how many static encap routes each config holds, enough
// that an Apply over the previous config's routes takes long enough for a
// random SIGKILL to land inside it.
const faultRoutes = 20000

// faultConfig is a CPE with faultRoutes static encap routes plus the one the
// traffic stream uses (10.2.0.0/24, the same in every variant so it must
// never leave the kernel). variant changes every other route's segment, so
// switching variants replaces thousands of routes and nexthop objects.
func faultConfig(variant int) string {
	var b strings.Builder
	b.WriteString(`log_level: info
wan: {interface: wan0, prefix_source: address, debounce: 50ms}
srv6: {locator_len: 48, function_len: 16, extension: 0x5, encap_mode: encap, locator_name: loc1}
services:
  - {name: end, behavior: End, function: 0x1}
remote:
  - {prefix: 10.2.0.0/24, segments: ["2001:db8:2205:4::"]}
`)
	for i := range faultRoutes {
		sid := fmt.Sprintf("2001:db8:2205:%x::", 0x100+i%64+64*variant*(i%2))
		fmt.Fprintf(&b, "  - {prefix: 10.%d.%d.0/24, segments: [\"%s\"]}\n", 16+i>>8, i&0xff, sid)
	}
	return b.String()
}

// faultLab is lan1 -> cpe (the daemon) -> wan (decapsulates the stream's
// SID with End.DX4) -> lan2, four namespaces deleted when the test ends.
type faultLab struct{ lan1, cpe, wan, lan2 string }

func newFaultLab(t *testing.T) faultLab {
	t.Helper()
	p := fmt.Sprintf("fi%d", os.Getpid())
	l := faultLab{lan1: p + "l1", cpe: p + "c", wan: p + "w", lan2: p + "l2"}
	for _, ns := range []string{l.lan1, l.cpe, l.wan, l.lan2} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	link := func(a, aDev, b, bDev string) {
		sh(t, "ip", "link", "add", aDev, "netns", a, "type", "veth", "peer", "name", bDev, "netns", b)
		sh(t, "ip", "-n", a, "link", "set", aDev, "up")
		sh(t, "ip", "-n", b, "link", "set", bDev, "up")
	}
	link(l.lan1, "eth0", l.cpe, "lan1")
	link(l.cpe, "wan0", l.wan, "cpe1")
	link(l.wan, "lan2", l.lan2, "eth0")
	for _, c := range [][]string{
		{l.lan1, "addr", "add", "10.1.0.2/24", "dev", "eth0"},
		{l.lan1, "route", "add", "default", "via", "10.1.0.1"},
		{l.cpe, "addr", "add", "10.1.0.1/24", "dev", "lan1"},
		{l.cpe, "addr", "add", "2001:db8:1200::1/40", "dev", "wan0", "nodad"},
		{l.cpe, "-6", "route", "add", "2001:db8:2200::/40", "via", "2001:db8:1200::2", "dev", "wan0"},
		{l.wan, "addr", "add", "2001:db8:1200::2/40", "dev", "cpe1", "nodad"},
		{l.wan, "addr", "add", "10.2.0.1/24", "dev", "lan2"},
		{l.wan, "-6", "route", "add", "2001:db8:2205:4::/128", "encap", "seg6local", "action", "End.DX4", "nh4", "10.2.0.2", "dev", "lan2"},
		{l.lan2, "addr", "add", "10.2.0.2/24", "dev", "eth0"},
	} {
		sh(t, "ip", append([]string{"-n", c[0]}, c[1:]...)...)
	}
	for _, ns := range []string{l.cpe, l.wan} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.all.seg6_enabled=1")
	}
	return l
}

var nhidRE = regexp.MustCompile(`nhid (\d+)`)

// kernelState is the agent's routes (every table, both families) with each
// nexthop id replaced by the object's content, then the nexthop objects
// without their ids: two runs that programmed the same thing compare equal
// whatever ids they picked, and a leaked object shows.
func kernelState(t *testing.T, ns string) []string {
	t.Helper()
	objs := map[string]string{}
	var nhs []string
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, "ip", "-n", ns, "nexthop", "show")), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "id" {
			continue
		}
		content := strings.Join(f[2:], " ")
		objs[f[1]] = content
		nhs = append(nhs, "nexthop "+content)
	}
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(strings.TrimSpace(mustRun(t, "ip", "-n", ns, fam, "route", "show", "proto", "198", "table", "all")), "\n") {
			if l == "" {
				continue
			}
			out = append(out, nhidRE.ReplaceAllStringFunc(l, func(m string) string {
				return "via-object[" + objs[nhidRE.FindStringSubmatch(m)[1]] + "]"
			}))
		}
	}
	slices.Sort(out)
	slices.Sort(nhs)
	return append(out, nhs...)
}

// udpStream sends a numbered datagram every interval from lan1 to lan2 and
// records when each arrives; stop returns the sent count, the received
// count, the longest time between two consecutive arrivals (it includes the
// sender's own scheduling stalls on a loaded machine), and the outage: the
// longest time between two arrivals with datagrams lost in between.
func udpStream(t *testing.T, l faultLab, interval time.Duration) func() (sent, got int, gap, outage time.Duration) {
	t.Helper()
	var recv *net.UDPConn
	if err := netnstest.Do(l.lan2, func() (err error) {
		recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 2, 0, 2), Port: 9999})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var send *net.UDPConn
	if err := netnstest.Do(l.lan1, func() (err error) {
		send, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 2, 0, 2), Port: 9999})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		got, sent int
		last      time.Time
		gap       time.Duration
		nextSeq   uint64
		outage    time.Duration
	)
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			n, err := recv.Read(buf)
			if err != nil {
				return // closed by stop
			}
			now := time.Now()
			mu.Lock()
			if n == 8 {
				got++
				if seq := binary.BigEndian.Uint64(buf[:8]); seq >= nextSeq {
					if seq > nextSeq && !last.IsZero() {
						outage = max(outage, now.Sub(last))
					}
					nextSeq = seq + 1
				}
				if !last.IsZero() && now.Sub(last) > gap {
					gap = now.Sub(last)
				}
				last = now
			}
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var seq [8]byte
		for i := uint64(0); i < 10_000_000; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(seq[:], i)
			if _, err := send.Write(seq[:]); err == nil {
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}
	}()
	return func() (int, int, time.Duration, time.Duration) {
		close(stop)
		time.Sleep(50 * time.Millisecond) // the last datagrams in flight
		send.Close()
		recv.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		// A stream that stopped for good must not look gapless: datagrams
		// sent after the last arrival make the time since an outage.
		if tail := time.Since(last) - 50*time.Millisecond; nextSeq < uint64(sent) || last.IsZero() {
			outage = max(outage, tail)
		}
		return sent, got, gap, outage
	}
}

// waitState polls until the kernel in ns equals want and returns how long
// that took, or fails after limit showing the difference.
func waitState(t *testing.T, d *daemon, want []string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < limit {
		if got = kernelState(t, d.ns); slices.Equal(got, want) {
			return time.Since(start)
		}
		select {
		case err := <-d.done:
			t.Fatalf("srv6cpe exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	t.Fatalf("kernel not as a clean run left it after %s: %d entries missing (e.g. %q), %d extra (e.g. %q)",
		limit, len(missing), head(missing), len(extra), head(extra))
	return 0
}

func head(s []string) []string { return s[:min(3, len(s))] }

// afterChanges subscribes to ns's route and nexthop events now; the
// returned wait blocks until k of them arrived (or 10s passed).
func afterChanges(t *testing.T, ns string, k int) func() {
	t.Helper()
	cmd := exec.Command("ip", "-n", ns, "monitor", "route", "nexthop")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for n := 0; sc.Scan(); n++ {
			if n+1 == k {
				close(reached)
			}
		}
	}()
	// ip monitor subscribes before it prints anything; give it that moment.
	time.Sleep(100 * time.Millisecond)
	return func() {
		select {
		case <-reached:
		case <-time.After(10 * time.Second):
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// kill9 SIGKILLs the daemon and waits for it to be gone.
func (d *daemon) kill9() {
	d.t.Helper()
	d.signal(syscall.SIGKILL)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.t.Fatal("srv6cpe still running 10s after SIGKILL")
	}
}

// kill -9 in the middle of an Apply, then a restart: the kernel ends as a
// clean run leaves it (routes and nexthop objects, no leftovers), and the
// lan1 -> lan2 stream through a route both configs share never stops,
// since the routes stay in the kernel across the crash.
func TestDaemonKill9MidApply(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute: 20 crash-restart cycles over 20,000 routes")
	}
	bin, dir := needRootAndBuild(t)
	l := newFaultLab(t)
	cfgPath, stateDir := filepath.Join(dir, "srv6cpe.yaml"), filepath.Join(dir, "state")
	d := &daemon{t: t, bin: bin, ns: l.cpe, args: []string{"--config", cfgPath, "--state-dir", stateDir}, log: filepath.Join(dir, "srv6cpe.log")}
	writeCfg := func(variant int) {
		if err := os.WriteFile(cfgPath, []byte(faultConfig(variant)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		// Deleting a nexthop object deletes the routes using it (ip cannot
		// flush those); no VRFs here, so the rest is in the main table.
		sh(t, "ip", "-n", l.cpe, "nexthop", "flush")
		sh(t, "ip", "-n", l.cpe, "-4", "route", "flush", "proto", "198")
		sh(t, "ip", "-n", l.cpe, "-6", "route", "flush", "proto", "198")
		if n := len(kernelState(t, l.cpe)); n != 0 {
			t.Fatalf("%d entries left after the flush", n)
		}
	}

	// Clean runs: what each config gives from an empty kernel, and how long
	// the daemon takes from exec to the last entry (the kill window).
	var ref [2][]string
	var window time.Duration
	for v := range 2 {
		flush()
		writeCfg(v)
		from := d.logSize()
		start := time.Now()
		d.start()
		d.waitLog("SIDs programmed", from, 30*time.Second)
		ref[v] = kernelState(t, l.cpe)
		if n := len(ref[v]); n < faultRoutes {
			t.Fatalf("clean run of variant %d: %d kernel entries, want at least %d", v, n, faultRoutes)
		}
		window = max(window, time.Since(start))
		if code := d.stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("exit %d after SIGTERM", code)
		}
		t.Logf("clean run of variant %d: %d routes and nexthop objects in %s", v, len(ref[v]), time.Since(start).Round(time.Millisecond))
	}
	if slices.Equal(ref[0], ref[1]) {
		t.Fatal("the two variants give the same kernel state; the test would not replace anything")
	}
	// The kernel holds variant 1 now; bring it to 0 before streaming.
	writeCfg(0)
	d.start()
	waitState(t, d, ref[0], 30*time.Second)

	stream := udpStream(t, l, time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	const restarts = 20
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var converge []time.Duration
	midApply, killedBefore, killedAfter := 0, 0, 0
	for i := range restarts {
		// Switch the config and restart: the new daemon replaces thousands
		// of routes, and is killed at a random point of that.
		v := (i + 1) % 2
		writeCfg(v)
		d.kill9()
		// Kill after the k-th route or nexthop change the kernel reports,
		// k random within the first 8000 of the about 10,000 this switch
		// makes: most kills land inside the Apply.
		afterK := afterChanges(t, l.cpe, 1+rng.IntN(8000))
		d.start()
		afterK()
		d.kill9()
		switch ks := kernelState(t, l.cpe); {
		case slices.Equal(ks, ref[v]):
			killedAfter++
		case slices.Equal(ks, ref[1-v]):
			killedBefore++
		default:
			midApply++ // half old, half new: the kill landed inside the Apply
		}
		d.start()
		converge = append(converge, waitState(t, d, ref[v], 30*time.Second))
	}
	sent, got, gap, outage := stream()
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	slices.Sort(converge)
	t.Logf("%d kill -9 + restart cycles (clean run %s; killed after a random number of kernel changes: %d inside the Apply, %d before it changed anything, %d after it): kernel equal to a clean run after each, convergence median %s max %s",
		restarts, window.Round(time.Millisecond), midApply, killedBefore, killedAfter, converge[len(converge)/2].Round(time.Millisecond), converge[len(converge)-1].Round(time.Millisecond))
	t.Logf("lan1 -> lan2 UDP every 1ms through the shared encap route: %d sent, %d received, longest outage (arrivals around lost datagrams) %s, longest gap between arrivals %s",
		sent, got, outage.Round(time.Millisecond), gap.Round(time.Millisecond))
	if got == 0 || sent-got > sent/100 {
		t.Errorf("stream lost %d of %d datagrams across the restarts", sent-got, sent)
	}
	if outage > 500*time.Millisecond {
		t.Errorf("forwarding stopped for %s during the restarts; the routes must stay in the kernel", outage)
	}
}

// The BGP session of cpe1 flaps at the reflector three ways: an
// administrative shutdown held until both CPEs have dropped the routes;
// the same while cpe1 changes what it advertises (a route added, so cpe2
// must end without the old set's leftovers or the new one's lacking); and
// a hard reset (clear bgp) too quick to wait out. Each time both CPEs end
// with exactly the encap routes towards each other's current routes: none
// stale, none missing.
func TestBGPPeerFlapLab(t *testing.T) {
	l := newBGPLab(t, "fi", false)
	c1, c2 := l.cpes[0], l.cpes[1]
	l.start(c1)
	l.start(c2)
	for _, c := range l.cpes {
		c.waitStatus(t, "the BGP session to FRR established", 30*time.Second, established)
	}
	sids := map[int]map[string]string{}
	for _, c := range l.cpes {
		sids[c.i] = map[string]string{}
		for _, s := range c.waitStatus(t, "SIDs applied", 10*time.Second, applied).SIDs {
			sids[c.i][s.Name] = s.SID.String()
		}
	}
	// towards is what CPE i must hold for CPE j's routes.
	towards := func(j int, lan4 []string) []string {
		var out []string
		for _, p := range lan4 {
			out = append(out, p+" -> "+sids[j]["vpn4"])
		}
		return append(out, lanPrefix6(j)+"/64 -> "+sids[j]["vpn6"])
	}
	lan1 := []string{"192.168.1.0/24"}
	waitEncaps(t, c1.ns, towards(2, []string{"192.168.2.0/24"}), 20*time.Second)
	waitEncaps(t, c2.ns, towards(1, lan1), 20*time.Second)

	neighbor := "fd00:e4:1::2"
	rrConf := func(cmd string) {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", l.ns["rr"], "vtysh", "--vty_socket", l.rrVty,
			"-c", "configure terminal", "-c", fmt.Sprintf("router bgp %d", labAS), "-c", cmd).CombinedOutput()
		if err != nil || strings.Contains(string(out), "%") {
			t.Fatalf("vtysh %q: %v\n%s", cmd, err, out)
		}
	}
	// FRR's count of sessions to cpe1 that ended: proof each flap happened.
	drops := func() int {
		t.Helper()
		var nb map[string]struct {
			Dropped int `json:"connectionsDropped"`
		}
		out := l.vtysh("show bgp neighbors " + neighbor + " json")
		if err := json.Unmarshal([]byte(out), &nb); err != nil {
			t.Fatalf("show bgp neighbors json: %v\n%s", err, out)
		}
		return nb[neighbor].Dropped
	}
	for flap, kind := range []string{"shutdown", "shutdown+readvertise", "clear"} {
		dropped := drops()
		t0 := time.Now()
		switch kind {
		case "shutdown", "shutdown+readvertise":
			rrConf("neighbor " + neighbor + " shutdown")
			// Both sides lose the routes: cpe2 by withdrawal from the
			// reflector, cpe1 with its session.
			waitEncaps(t, c2.ns, nil, 20*time.Second)
			waitEncaps(t, c1.ns, nil, 20*time.Second)
			down := time.Since(t0)
			if kind == "shutdown+readvertise" {
				lan1 = []string{"192.168.1.0/24", "192.168.11.0/24"}
				c1.writeConfig(t, lan1)
				if err := c1.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			rrConf("no neighbor " + neighbor + " shutdown")
			t.Logf("flap %d (%s): both CPEs without the routes %s after the shutdown", flap+1, kind, down.Round(time.Millisecond))
		case "clear":
			out, err := exec.Command("ip", "netns", "exec", l.ns["rr"], "vtysh", "--vty_socket", l.rrVty, "-c", "clear bgp "+neighbor).CombinedOutput()
			if err != nil {
				t.Fatalf("clear bgp: %v\n%s", err, out)
			}
		}
		for i := 0; drops() == dropped; i++ {
			if i == 100 {
				t.Fatalf("flap %d (%s): FRR never dropped the session", flap+1, kind)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t1 := time.Now()
		c1.waitStatus(t, "the session back", 30*time.Second, established)
		waitEncaps(t, c2.ns, towards(1, lan1), 30*time.Second)
		waitEncaps(t, c1.ns, towards(2, []string{"192.168.2.0/24"}), 30*time.Second)
		t.Logf("flap %d (%s): both CPEs back to exactly the current routes %s after the session was restored (c2 holds %q)",
			flap+1, kind, time.Since(t1).Round(time.Millisecond), encapRoutes(t, c2.ns))
	}
}
