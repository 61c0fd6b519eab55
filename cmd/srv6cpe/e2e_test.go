package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/agent"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// The real daemon binary in a network namespace: the example config, a WAN
// veth carrying 2001:db8:1200::1/40, renumbering, SIGTERM, a restart that
// must not flush, and a SIGHUP reload.
func TestDaemonInNetns(t *testing.T) {
	bin, dir := needRootAndBuild(t)
	cpe := lab(t, "")
	sh(t, "ip", "-n", cpe, "addr", "add", "2001:db8:1200::1/40", "dev", "wan0", "nodad")

	example, err := os.ReadFile("../../examples/srv6cpe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "srv6cpe.yaml")
	if err := os.WriteFile(cfgPath, example, 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	d := &daemon{t: t, bin: bin, ns: cpe, args: []string{"--config", cfgPath, "--state-dir", stateDir}, log: filepath.Join(dir, "srv6cpe.log")}

	from := d.logSize()
	d.start()
	d.waitLog("SIDs programmed", from, 10*time.Second)
	st := d.status(stateDir)
	vrf := st.Capabilities.VRF && st.Capabilities.EndDT4
	if st.State != agent.StateApplied || st.Locator.String() != "2001:db8:1205::/48" || len(st.SIDs) != 3 {
		t.Errorf("status.json = %+v", st)
	}
	if !vrf && (len(st.Fallback) != 1 || !strings.Contains(st.Fallback[0], "vpn1: End.DT4 installed as End.DX4")) {
		t.Errorf("no VRF, but the status shows no fallback for vpn1: %q", st.Fallback)
	}
	want1 := expected("2001:db8:1205", vrf)
	d.waitRoutes(want1, 5*time.Second)
	t.Logf("routes in %s:\n%s", cpe, strings.Join(routeLines(t, cpe), "\n"))

	// Renumber: old SIDs out, new in, within a second.
	start := time.Now()
	sh(t, "ip", "-n", cpe, "addr", "del", "2001:db8:1200::1/40", "dev", "wan0")
	sh(t, "ip", "-n", cpe, "addr", "add", "2001:db8:4400::1/40", "dev", "wan0", "nodad")
	want2 := expected("2001:db8:4405", vrf)
	d.waitRoutes(want2, 5*time.Second)
	took := time.Since(start)
	t.Logf("renumbered 2001:db8:1200::/40 -> 2001:db8:4400::/40: routes replaced in %s", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("renumbering took %s, want within 1s", took)
	}

	// SIGTERM: exit 0, routes left.
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	if got := routes(t, cpe); !slices.Equal(got, want2) {
		t.Fatalf("routes after SIGTERM = %q, want them left: %q", got, want2)
	}

	// Restart while watching the routes: none may disappear at any time,
	// and the kernel must see no change at all to them (no flush, no re-add).
	watch := watchRoutes(t, cpe, want2)
	monitor := monitorRoutes(t, cpe)
	from = d.logSize()
	d.start()
	d.waitLog("SIDs programmed", from, 10*time.Second)
	samples, gaps := watch()
	events := monitor()
	if len(gaps) > 0 {
		t.Errorf("routes missing during the restart in %d of %d samples, e.g. %q", len(gaps), samples, gaps[0])
	}
	for _, e := range events {
		if strings.Contains(e, "2001:db8:4405:") {
			t.Errorf("route event for our SIDs during the restart: %s", e)
		}
	}
	t.Logf("restart: %d route samples, all %d routes present in each; %d route events, none for our SIDs", samples, len(want2), len(events))

	// SIGHUP with a new service and a remote route: both appear.
	more := bytes.Replace(example, []byte("\nremote: []"), []byte(`
  - {name: vpn7, behavior: End.DX6, function: 0x7}
remote:
  - {prefix: 192.168.2.0/24, vrf: vpn1, segments: [2001:db8:2205:4::]}`), 1)
	if bytes.Equal(more, example) {
		t.Fatal("examples/srv6cpe.yaml has no 'remote: []' line to extend")
	}
	if err := os.WriteFile(cfgPath, more, 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	want3 := append(slices.Clone(want2), "2001:db8:4405:7:: End.DX6")
	slices.Sort(want3)
	d.waitRoutes(want3, 5*time.Second)
	if !vrf {
		out, err := exec.Command("ip", "-n", cpe, "-4", "route", "show", "proto", fmt.Sprint(dataplane.RouteProtocol)).Output()
		if err != nil {
			t.Fatal(err)
		}
		// The route may point at a nexthop object ("nhid N") that carries the encap.
		got := string(out)
		if w := "encap seg6 mode encap segs 1 [ 2001:db8:2205:4:: ] dev wan0"; !strings.HasPrefix(got, "192.168.2.0/24 ") || !strings.Contains(got, w) {
			t.Errorf("IPv4 routes after the reload:\n%s\nwant 192.168.2.0/24 with %q", got, w)
		}
	}

	// A bad file on SIGHUP: logged, old config kept, daemon alive.
	if err := os.WriteFile(cfgPath, append(more, []byte("bogus: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	from = d.logSize()
	d.signal(syscall.SIGHUP)
	d.waitLog("field bogus not found", from, 5*time.Second)
	if got := routes(t, cpe); !slices.Equal(got, want3) {
		t.Errorf("routes after a bad reload = %q, want %q", got, want3)
	}
	if code := d.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit status %d after SIGINT, want 0", code)
	}
}

// The prefix from a delegated-prefix route (as odhcp6c installs it) rather
// than the WAN address; the agent's own locator routes, which lie inside
// that prefix, must never be taken for it.
func TestDaemonRouteMode(t *testing.T) {
	bin, dir := needRootAndBuild(t)
	cpe := lab(t, "r")
	sh(t, "ip", "-n", cpe, "addr", "add", "2001:db8:ffff::1/128", "dev", "wan0", "nodad")
	sh(t, "ip", "-n", cpe, "-6", "route", "add", "unreachable", "2001:db8:1200::/40", "dev", "lo", "proto", "static", "metric", "2147483647")

	example, err := os.ReadFile("../../examples/srv6cpe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := bytes.Replace(example, []byte("prefix_source: address"), []byte("prefix_source: route"), 1)
	cfgPath := filepath.Join(dir, "srv6cpe.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	d := &daemon{t: t, bin: bin, ns: cpe, args: []string{"--config", cfgPath, "--state-dir", stateDir}, log: filepath.Join(dir, "srv6cpe.log")}
	d.start()
	d.waitLog("SIDs programmed", 0, 10*time.Second)
	st := d.status(stateDir)
	vrf := st.Capabilities.VRF && st.Capabilities.EndDT4
	if st.Prefix.String() != "2001:db8:1200::/40" || st.Address.String() != "2001:db8:ffff::1" {
		t.Errorf("status prefix %s address %s, want 2001:db8:1200::/40 and 2001:db8:ffff::1", st.Prefix, st.Address)
	}
	d.waitRoutes(expected("2001:db8:1205", vrf), 5*time.Second)

	start := time.Now()
	sh(t, "ip", "-n", cpe, "-6", "route", "del", "unreachable", "2001:db8:1200::/40", "dev", "lo", "proto", "static", "metric", "2147483647")
	sh(t, "ip", "-n", cpe, "-6", "route", "add", "unreachable", "2001:db8:4400::/40", "dev", "lo", "proto", "static", "metric", "2147483647")
	d.waitRoutes(expected("2001:db8:4405", vrf), 5*time.Second)
	t.Logf("delegated route moved to 2001:db8:4400::/40: SIDs replaced in %s", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > time.Second {
		t.Errorf("renumbering took %s, want within 1s", took)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}

func needRootAndBuild(t *testing.T) (bin, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs srv6cpe in one")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
	dir = t.TempDir()
	return buildBin(t, dir), dir
}

// lab makes a CPE namespace whose wan0 is a veth to an operator-side
// namespace, both deleted when the test ends, and returns the CPE's.
func lab(t *testing.T, tag string) string {
	t.Helper()
	cpe, wan := fmt.Sprintf("ag%d%scpe", os.Getpid(), tag), fmt.Sprintf("ag%d%swan", os.Getpid(), tag)
	for _, ns := range []string{cpe, wan} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh(t, "ip", "link", "add", "wan0", "netns", cpe, "type", "veth", "peer", "name", "cpe1", "netns", wan)
	sh(t, "ip", "-n", cpe, "link", "set", "lo", "up")
	sh(t, "ip", "-n", cpe, "link", "set", "wan0", "up")
	sh(t, "ip", "-n", wan, "link", "set", "cpe1", "up")
	return cpe
}

// expected lists the routes the example config gives for a /40 whose
// locator (extension 0x5) starts with loc, as routes() keys them. vpn1 is
// End.DT4 with VRFs, else the End.DX4 fallback.
func expected(loc string, vrf bool) []string {
	vpn1 := "End.DX4"
	if vrf {
		vpn1 = "End.DT4"
	}
	r := []string{
		loc + ":1:: End",
		loc + ":4:: " + vpn1,
		loc + ":6:: End.DT6",
		"unreachable " + loc + "::/48",
	}
	slices.Sort(r)
	return r
}

// routeLines lists the agent's IPv6 routes in ns as ip prints them.
func routeLines(t *testing.T, ns string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-6", "route", "show", "proto", fmt.Sprint(dataplane.RouteProtocol)).Output()
	if err != nil {
		t.Errorf("ip route show in %s: %v", ns, err)
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// routes keys the agent's IPv6 routes in ns: "SID behaviour" for a
// seg6local route, "unreachable prefix" for a locator.
func routes(t *testing.T, ns string) []string {
	t.Helper()
	var r []string
	for _, l := range routeLines(t, ns) {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "unreachable":
			r = append(r, "unreachable "+f[1])
		case len(f) >= 5 && f[1] == "encap" && f[2] == "seg6local" && f[3] == "action":
			r = append(r, f[0]+" "+f[4])
		case len(f) > 0:
			r = append(r, l)
		}
	}
	slices.Sort(r)
	return r
}

// watchRoutes samples the routes in ns until the returned stop is called;
// stop returns the number of samples and those that lacked a route of want.
func watchRoutes(t *testing.T, ns string, want []string) func() (int, []string) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		samples int
		gaps    []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10000 && ctx.Err() == nil; i++ {
			got := routes(t, ns)
			samples++
			for _, w := range want {
				if !slices.Contains(got, w) {
					gaps = append(gaps, "missing "+w)
					break
				}
			}
		}
	}()
	return func() (int, []string) {
		cancel()
		wg.Wait()
		return samples, gaps
	}
}

// monitorRoutes records the IPv6 route events in ns (ip monitor) until the
// returned stop is called, which returns them.
func monitorRoutes(t *testing.T, ns string) func() []string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("ip", "-n", ns, "-6", "monitor", "route")
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// ip monitor subscribes before it prints anything; give it that moment.
	time.Sleep(100 * time.Millisecond)
	return func() []string {
		time.Sleep(100 * time.Millisecond) // let the last events arrive
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		var ev []string
		for _, l := range strings.Split(out.String(), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				ev = append(ev, l)
			}
		}
		return ev
	}
}

type daemon struct {
	t    *testing.T
	bin  string
	ns   string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan error
}

func (d *daemon) start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	// ip netns exec execs the daemon, so the process we signal is srv6cpe.
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", d.ns, d.bin}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		d.t.Fatal(err)
	}
	logf.Close()
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	d.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if d.t.Failed() {
			b, _ := os.ReadFile(d.log)
			d.t.Logf("daemon log:\n%s", b)
		}
	})
}

func (d *daemon) signal(s os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(s); err != nil {
		d.t.Fatal(err)
	}
}

// stop signals the daemon and returns its exit status.
func (d *daemon) stop(s os.Signal) int {
	d.t.Helper()
	d.signal(s)
	select {
	case err := <-d.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			d.t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		d.t.Fatalf("srv6cpe did not exit within 10s of %s", s)
		return -1
	}
}

// waitRoutes polls until the agent's routes equal want, returning how long it took.
func (d *daemon) waitRoutes(want []string, limit time.Duration) time.Duration {
	d.t.Helper()
	start := time.Now()
	var got []string
	for time.Since(start) < limit {
		if got = routes(d.t, d.ns); slices.Equal(got, want) {
			return time.Since(start)
		}
		select {
		case err := <-d.done:
			d.t.Fatalf("srv6cpe exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.t.Fatalf("routes after %s:\n%s\nwant:\n%s", limit, strings.Join(got, "\n"), strings.Join(want, "\n"))
	return 0
}

// logSize is where the daemon's log ends now.
func (d *daemon) logSize() int {
	b, _ := os.ReadFile(d.log)
	return len(b)
}

// waitLog waits until the daemon's log holds s after offset from.
func (d *daemon) waitLog(s string, from int, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(d.log)
		if len(b) > from && bytes.Contains(b[from:], []byte(s)) {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no %q in the log within %s", s, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// status waits until the daemon's status.json says applied and returns it
// (the log line comes a moment before the file).
func (d *daemon) status(stateDir string) agent.Status {
	d.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var s agent.Status
		b, err := os.ReadFile(filepath.Join(stateDir, agent.StatusFile))
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err == nil && s.State == agent.StateApplied {
			return s
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("status.json not applied within 5s: %v\n%s", err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
