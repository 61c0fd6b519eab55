//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The lab's fixed names (scripts/lab.sh, issue 6).
var labNamespaces = []string{"cpe1", "cpe2", "rr", "wan", "alt", "lan1", "lan2", "ctl"}

const (
	labTask  = "lab-cpe1-cpe2"
	cpe1Old  = "2001:db8:1200::1"
	cpe1New  = "2001:db8:4400::1"
	cpe2Addr = "2001:db8:2200::1"
)

// lab drives scripts/lab.sh with its files in a temp dir.
type lab struct {
	t      *testing.T
	script string
	dir    string
}

// needLab skips unless the lab can run here, and starts nothing.
func needLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces (scripts/lab.sh)")
	}
	for _, bin := range []string{"/usr/lib/frr/bgpd", "/usr/bin/vtysh"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("needs FRR (%s): %v", bin, err)
		}
	}
	for _, tool := range []string{"go", "python3", "tcpdump", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && slices.Contains(labNamespaces, f[0]) {
			t.Skipf("namespace %s exists: another lab runs on this machine (scripts/lab.sh down stops it)", f[0])
		}
	}
	script, err := filepath.Abs("../lab.sh")
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, script: script, dir: t.TempDir()}
	t.Cleanup(func() {
		if out, err := l.runErr(60*time.Second, "down"); err != nil {
			t.Errorf("lab.sh down: %v\n%s", err, out)
		}
	})
	return l
}

func (l *lab) runErr(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.script, args...)
	cmd.Env = append(os.Environ(), "SRV6CPE_LAB_DIR="+l.dir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *lab) run(timeout time.Duration, args ...string) string {
	l.t.Helper()
	start := time.Now()
	out, err := l.runErr(timeout, args...)
	l.t.Logf("lab.sh %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		l.t.Fatalf("lab.sh %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (l *lab) ctlState() State {
	l.t.Helper()
	return readState(l.t, filepath.Join(l.dir, "ctl", "state.json"))
}

// waitCtl waits up to d for ok on the controller's state.
func (l *lab) waitCtl(what string, d time.Duration, ok func(State) bool) State {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := l.ctlState()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(s, "", "  ")
			l.t.Fatalf("controller: %s not within %s; state:\n%s", what, d, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ipOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ping(ns, dst string) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v: %s", dst, ns, err, out)
	}
	return nil
}

// encapLines lists ns's seg6 encap routes the agent owns.
func encapLines(t *testing.T, ns string) string {
	var b strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(ipOut(t, "-n", ns, fam, "route", "show", "proto", "198"), "\n") {
			if strings.Contains(l, "encap seg6 ") {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// The whole issue 6 scenario through scripts/lab.sh, as `make lab` runs it:
// registration, SIDs, BGP, encap routes, lan1 <-> lan2 over SRv6,
// monitoring reports; then cpe1 renumbered: traffic recovers, cpe2 uses the
// new SIDs, the controller got the IP change report with the right
// addresses and told cpe2, and monitoring continues under the same task.
func TestLabScenario(t *testing.T) {
	l := needLab(t)
	up := l.run(240*time.Second, "up")

	// §8.1: both CPEs registered with their capabilities and configured;
	// the controller read back the SIDs the CPEs derived.
	st := l.waitCtl("both CPEs configured", 20*time.Second, func(s State) bool {
		return s.Devices["cpe1"] != nil && s.Devices["cpe2"] != nil && s.Devices["cpe1"].Configured && s.Devices["cpe2"].Configured
	})
	wantSIDs := map[string]map[string]string{
		"cpe1": {"vpn4": "2001:db8:1205:4::", "vpn6": "2001:db8:1205:6::"},
		"cpe2": {"vpn4": "2001:db8:2205:4::", "vpn6": "2001:db8:2205:6::"},
	}
	for name, addr := range map[string]string{"cpe1": cpe1Old, "cpe2": cpe2Addr} {
		d := st.Devices[name]
		if d.DeviceID != "00A0C9-SRv6-CPE-LAB-"+strings.ToUpper(name) || d.SupportedServices != "L3VPN" || d.IPv6Enable != "true" || d.Address != addr || d.ConfigError != "" {
			t.Errorf("%s registration %+v", name, d)
		}
		for svc, sid := range wantSIDs[name] {
			if d.SIDs[svc] != sid || d.TunnelStatus[svc] != "Up" {
				t.Errorf("%s: controller read back %s SID %q tunnel %q, want %s Up", name, svc, d.SIDs[svc], d.TunnelStatus[svc], sid)
			}
		}
		// The SIDs in the kernel: End.DT4/DT6, or End.DX4/DX6 without VRF.
		routes := ipOut(t, "-n", name, "-6", "route", "show", "proto", "198")
		for _, sid := range wantSIDs[name] {
			if !strings.Contains(routes, sid+" ") || !strings.Contains(routes, "seg6local") {
				t.Errorf("%s kernel lacks the seg6local SID %s:\n%s", name, sid, routes)
			}
		}
	}
	// BGP: each CPE's session to the reflector is up and the other's routes
	// are installed as encap routes towards its SIDs.
	for name, peer := range map[string]string{"cpe1": "cpe2", "cpe2": "cpe1"} {
		b, err := os.ReadFile(filepath.Join(l.dir, name, "state", "status.json"))
		if err != nil {
			t.Fatal(err)
		}
		var status struct {
			BGP struct {
				Peers []struct{ State string } `json:"peers"`
			} `json:"bgp"`
		}
		if err := json.Unmarshal(b, &status); err != nil || len(status.BGP.Peers) == 0 || status.BGP.Peers[0].State != "established" {
			t.Errorf("%s BGP peers %+v (%v), want established", name, status.BGP.Peers, err)
		}
		enc := encapLines(t, name)
		for _, sid := range wantSIDs[peer] {
			if !strings.Contains(enc, sid) {
				t.Errorf("%s has no encap route towards %s's SID %s:\n%s", name, peer, sid, enc)
			}
		}
	}
	// Traffic both ways, and the capture lab.sh showed: SRv6 towards
	// cpe2's service SIDs.
	for _, p := range [][2]string{{"lan1", "192.168.2.2"}, {"lan1", "2001:db8:2201::2"}, {"lan2", "192.168.1.2"}, {"lan2", "2001:db8:1201::2"}} {
		if err := ping(p[0], p[1]); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(up, "2001:db8:2205:") {
		t.Error("lab.sh up showed no packet towards cpe2's SIDs on the transit")
	}
	overSRv6(t, "2001:db8:2205:4::", "lan1", "192.168.2.2")
	overSRv6(t, "2001:db8:1205:6::", "lan2", "2001:db8:1201::2")
	// §8.3: the task is in the table and reports arrive.
	st = l.waitCtl("two monitoring reports", 20*time.Second, func(s State) bool {
		tk := s.Tasks[labTask]
		return tk != nil && tk.Reports >= 2
	})
	tk := st.Tasks[labTask]
	if tk.Sender != (TaskEnd{Device: "cpe1", Role: roleSender, LocalIP: cpe1Old, PeerIP: cpe2Addr}) ||
		tk.Reflector != (TaskEnd{Device: "cpe2", Role: roleReflector, LocalIP: cpe2Addr, PeerIP: cpe1Old}) {
		t.Errorf("task table %+v", tk)
	}
	checkReport(t, tk.LastReport, cpe1Old)

	// Renumber cpe1.
	changeAt := time.Now()
	l.run(120*time.Second, "renumber", "cpe1")
	for _, p := range [][2]string{{"lan1", "192.168.2.2"}, {"lan1", "2001:db8:2201::2"}, {"lan2", "192.168.1.2"}, {"lan2", "2001:db8:1201::2"}} {
		if err := ping(p[0], p[1]); err != nil {
			t.Errorf("after renumbering: %v", err)
		}
	}
	overSRv6(t, "2001:db8:4405:4::", "lan2", "192.168.1.2")
	enc := encapLines(t, "cpe2")
	if !strings.Contains(enc, "2001:db8:4405:4::") || !strings.Contains(enc, "2001:db8:4405:6::") || strings.Contains(enc, "2001:db8:1205:") {
		t.Errorf("cpe2's encap routes after renumbering, want cpe1's new SIDs 2001:db8:4405:{4,6}:: only:\n%s", enc)
	}
	st = l.waitCtl("the IP change handled", 20*time.Second, func(s State) bool {
		return len(s.IPChanges) > 0 && s.IPChanges[0].UpdateAnswerAt != nil
	})
	if len(st.IPChanges) != 1 {
		t.Errorf("%d IP change reports, want 1: %+v", len(st.IPChanges), st.IPChanges)
	}
	ev := st.IPChanges[0]
	if ev.Device != "cpe1" || ev.TaskID != labTask || ev.OldIP != cpe1Old || ev.NewIP != cpe1New || ev.Problem != "" ||
		ev.DeviceID != "00A0C9-SRv6-CPE-LAB-CPE1" || ev.UpdateTo != "cpe2" || ev.UpdateAnswer != "Stats_Monitor_Update_ReqResponse Status 0" {
		t.Errorf("IP change event %+v", ev)
	}
	if ts, err := time.Parse(time.RFC3339Nano, ev.ChangeTimestamp); err != nil || ts.Before(changeAt.Add(-time.Second)) {
		t.Errorf("ChangeTimestamp %q (%v), want RFC 3339 after %s", ev.ChangeTimestamp, err, changeAt.UTC())
	}
	tk = st.Tasks[labTask]
	if tk.Sender.LocalIP != cpe1New || tk.Reflector.PeerIP != cpe1New || tk.Updates != 1 {
		t.Errorf("table after renumbering %+v", tk)
	}
	// Monitoring continues under the same MonitorTaskID from the new
	// address, and the reflector answers it there.
	st = l.waitCtl("a clean report from the new address", 30*time.Second, func(s State) bool {
		r := s.Tasks[labTask].LastReport
		if r == nil || r.ReceivedAt.Before(ev.ReceivedAt) || r.Fields["LocalIP"] != cpe1New {
			return false
		}
		loss, err := strconv.ParseFloat(r.Fields["PacketLossRate"], 64)
		return err == nil && loss < 10
	})
	if len(st.Tasks) != 1 {
		t.Errorf("tasks %v, want only %s", st.Tasks, labTask)
	}
	checkReport(t, st.Tasks[labTask].LastReport, cpe1New)

	status := l.run(60*time.Second, "status")
	if !strings.Contains(status, "IP change report from cpe1") || !strings.Contains(status, "latest report") {
		t.Errorf("lab.sh status lacks the controller's view")
	}
	l.run(60*time.Second, "down")
	out := ipOut(t, "netns", "list")
	for _, ns := range labNamespaces {
		if slices.Contains(strings.Fields(out), ns) {
			t.Errorf("namespace %s left after lab.sh down", ns)
		}
	}
}

func checkReport(t *testing.T, r *Report, local string) {
	t.Helper()
	if r == nil {
		t.Error("no monitoring report")
		return
	}
	f := r.Fields
	if f["MonitorTaskID"] != labTask || f["DeviceID"] != "00A0C9-SRv6-CPE-LAB-CPE1" || f["LocalIP"] != local || f["PeerIP"] != cpe2Addr || r.Device != "cpe1" {
		t.Errorf("report %+v, want task %s from cpe1 %s to %s", f, labTask, local, cpe2Addr)
	}
	for _, k := range []string{"Latency", "Jitter", "PacketLossRate"} {
		if _, err := strconv.ParseFloat(f[k], 64); err != nil {
			t.Errorf("report %s = %q: %v", k, f[k], err)
		}
	}
	if _, err := time.Parse(time.RFC3339, f["ReportTimestamp"]); err != nil {
		t.Errorf("report ReportTimestamp %q: %v", f["ReportTimestamp"], err)
	}
}

// overSRv6 pings dst from ns and checks on the transit (netns wan) that
// the echo requests travel in SRv6 packets (a routing header) towards sid.
func overSRv6(t *testing.T, sid, ns, dst string) {
	t.Helper()
	lines := tcpdumpWan(t, "ip6 and dst host "+sid+" and ip6[6] == 43")
	ping := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", dst)
	if out, err := ping.CombinedOutput(); err != nil {
		t.Errorf("ping %s from %s: %v: %s", dst, ns, err, out)
	}
	select {
	case l := <-lines:
		t.Logf("%s -> %s over SRv6: %s", ns, dst, l)
	case <-time.After(5 * time.Second):
		t.Errorf("%s -> %s: no SRv6 packet towards %s on the transit", ns, dst, sid)
	}
}

// tcpdumpWan captures in netns wan (every interface) and hands on each
// line; it returns once the capture runs and stops at the test's end.
func tcpdumpWan(t *testing.T, filter string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", "wan", "tcpdump", "-Z", "root", "--immediate-mode", "-l", "-n", "-tt", "-i", "any", filter)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			default:
			}
		}
	}()
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump in wan did not start listening within 10s")
	}
	time.Sleep(300 * time.Millisecond) // the filter is attached a moment after it says so
	return ch
}

// routeWatch records when routes matching a test first appear in a
// namespace, from the kernel's own notifications.
type routeWatch struct {
	ch   chan netlink.RouteUpdate
	done chan struct{}
}

func watchRoutes(t *testing.T, ns string) *routeWatch {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("netns %s: %v", ns, err)
	}
	t.Cleanup(func() { h.Close() })
	w := &routeWatch{ch: make(chan netlink.RouteUpdate, 4096), done: make(chan struct{})}
	if err := netlink.RouteSubscribeWithOptions(w.ch, w.done, netlink.RouteSubscribeOptions{Namespace: &h,
		ErrorCallback: func(err error) { t.Logf("route events in %s: %v", ns, err) }}); err != nil {
		t.Fatalf("route events in %s: %v", ns, err)
	}
	t.Cleanup(func() { close(w.done) })
	return w
}

// drain forgets pending events.
func (w *routeWatch) drain() {
	for {
		select {
		case <-w.ch:
		default:
			return
		}
	}
}

// wait returns when a new route satisfying ok arrives, or false after d.
func (w *routeWatch) wait(d time.Duration, ok func(netlink.Route) bool) (time.Time, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case u := <-w.ch:
			if u.Type == unix.RTM_NEWROUTE && ok(u.Route) {
				return time.Now(), true
			}
		case <-timer.C:
			return time.Time{}, false
		}
	}
}

// bgpUpdates captures, in netns wan, the BGP messages longer than a
// KEEPALIVE from one speaker to another, and hands on their kernel
// timestamps (the first one's: -i any sees a packet on both links).
func bgpUpdates(t *testing.T, from, to string) <-chan time.Time {
	t.Helper()
	// IPv6 payload length minus the TCP header (data offset at byte 52).
	lines := tcpdumpWan(t, "ip6 and src host "+from+" and dst host "+to+" and tcp and (ip6[4:2] - ((ip6[52] & 0xf0) >> 2)) > 19")
	ch := make(chan time.Time, 1024)
	go func() {
		for l := range lines {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			if sec, err := strconv.ParseFloat(f[0], 64); err == nil {
				ch <- time.Unix(0, int64(sec*1e9))
			}
		}
	}()
	return ch
}

// firstAfter returns the first time on ch not before t0, or false after d.
func firstAfter(ch <-chan time.Time, t0 time.Time, d time.Duration) (time.Time, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ts := <-ch:
			if !ts.Before(t0) {
				return ts, true
			}
		case <-timer.C:
			return time.Time{}, false
		}
	}
}

func inLocator(loc *net.IPNet) func(netlink.Route) bool {
	return func(r netlink.Route) bool {
		_, local := r.Encap.(*netlink.SEG6LocalEncap)
		return local && r.Dst != nil && loc.Contains(r.Dst.IP)
	}
}

func encapTo(loc *net.IPNet) func(netlink.Route) bool {
	return func(r netlink.Route) bool {
		e, ok := r.Encap.(*netlink.SEG6Encap)
		return ok && slices.ContainsFunc(e.Segments, func(ip net.IP) bool { return loc.Contains(ip) })
	}
}

// Issue 6 "Must show": a delegated prefix change on cpe1 -> its new SIDs
// in the kernel, the BGP update cpe1 sends (on the wire towards the
// reflector; also: when cpe2 has installed encap routes towards the new
// SIDs), the IP change report at the controller. Each latency is from the
// address change; p50 over the renumberings; goal 100 ms for all three.
//
//	SRV6CPE_BENCH=1 go test -run TestLabRenumberLatency -v ./scripts/labctl  (as root)
func TestLabRenumberLatency(t *testing.T) {
	n := benchRuns(t)
	l := needLab(t)
	l.run(240*time.Second, "up")
	l.waitCtl("the monitoring task", 20*time.Second, func(s State) bool {
		tk := s.Tasks[labTask]
		return tk != nil && tk.Config.Sender != "" && tk.Config.Reflector != ""
	})
	w1, w2 := watchRoutes(t, "cpe1"), watchRoutes(t, "cpe2")
	updates := bgpUpdates(t, "fd00:0:1::2", "fd00:0:ff::2")
	reflected := bgpUpdates(t, "fd00:0:ff::2", "fd00:0:2::2")
	debounce := labDebounce(t)
	fmt.Printf("anchor: cpe1's WAN debounce %s (examples/lab/cpe1.yaml), the floor of every reaction below\n", debounce)
	addrs := []string{cpe1Old, cpe1New}
	var sids, bgpSent, bgpRefl, bgpUpd, report []time.Duration
	for i := 0; i < n; i++ {
		old, next := addrs[i%2], addrs[(i+1)%2]
		_, newLoc, _ := net.ParseCIDR(strings.TrimSuffix(next, "00::1") + "05::/48") // 2001:db8:4400::1 -> 2001:db8:4405::/48
		oldNet, newNet := strings.TrimSuffix(old, "::1")+"::/40", strings.TrimSuffix(next, "::1")+"::/40"
		reports := len(l.ctlState().IPChanges)
		w1.drain()
		w2.drain()
		t0 := time.Now()
		ipOut(t, "-n", "cpe1", "-6", "addr", "del", old+"/40", "dev", "wan0")
		ipOut(t, "-n", "cpe1", "-6", "addr", "add", next+"/40", "dev", "wan0", "nodad")
		ipOut(t, "-n", "wan", "-6", "route", "replace", newNet, "via", "fd00:0:1::2")
		ipOut(t, "-n", "wan", "-6", "route", "del", oldNet)
		t1, ok1 := w1.wait(10*time.Second, inLocator(newLoc))
		t2, ok2 := w2.wait(10*time.Second, encapTo(newLoc))
		t3, ok3 := firstAfter(updates, t0, 10*time.Second)
		t4, ok4 := firstAfter(reflected, t0, 10*time.Second)
		st := l.waitCtl("the IP change report", 10*time.Second, func(s State) bool {
			return len(s.IPChanges) > reports && s.IPChanges[len(s.IPChanges)-1].NewIP == next && s.IPChanges[len(s.IPChanges)-1].UpdateAnswerAt != nil
		})
		if !ok1 || !ok2 || !ok3 || !ok4 {
			t.Fatalf("renumbering %d: new SIDs in cpe1's kernel %v, encap routes at cpe2 %v, BGP update from cpe1 %v, reflected to cpe2 %v (within 10s)",
				i, ok1, ok2, ok3, ok4)
		}
		bgpRefl = append(bgpRefl, t4.Sub(t0))
		ev := st.IPChanges[len(st.IPChanges)-1]
		sids, bgpSent, bgpUpd, report = append(sids, t1.Sub(t0)), append(bgpSent, t3.Sub(t0)), append(bgpUpd, t2.Sub(t0)), append(report, ev.ReceivedAt.Sub(t0))
		t.Logf("renumbering %d %s -> %s: SIDs in the kernel %s, BGP update sent %s, cpe2 on the new SIDs %s, IP change report at the controller %s",
			i+1, old, next, t1.Sub(t0).Round(time.Millisecond), t3.Sub(t0).Round(time.Millisecond), t2.Sub(t0).Round(time.Millisecond),
			ev.ReceivedAt.Sub(t0).Round(time.Millisecond))
		time.Sleep(time.Second) // let the sessions of this change finish
	}
	for _, m := range []struct {
		what string
		d    []time.Duration
		goal bool
	}{{"new SIDs in cpe1's kernel", sids, true}, {"BGP update sent by cpe1", bgpSent, true},
		{"IP change report at the controller", report, true}, {"(FRR reflects the update to cpe2)", bgpRefl, false},
		{"(cpe2's encap routes on the new SIDs)", bgpUpd, false}} {
		sort.Slice(m.d, func(i, j int) bool { return m.d[i] < m.d[j] })
		p50 := m.d[len(m.d)/2]
		verdict := "meets"
		switch {
		case !m.goal:
			verdict = "for information"
		case p50 > 100*time.Millisecond:
			verdict = "MISSES"
		}
		fmt.Printf("renumber cpe1 -> %-38s p50 %6.1f ms (%5.2fx the debounce)  min %6.1f  max %6.1f  (N=%d; goal p50 <= 100 ms: %s)\n", m.what,
			ms(p50), float64(p50)/float64(debounce), ms(m.d[0]), ms(m.d[len(m.d)-1]), len(m.d), verdict)
	}
}

// labDebounce is the anchor of the benchmark: the WAN debounce of cpe1's
// config, which every reaction to a prefix change waits for first.
func labDebounce(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("../../examples/lab/cpe1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "debounce:"); ok {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("cpe1.yaml debounce %q: %v", v, err)
			}
			return d
		}
	}
	t.Fatal("examples/lab/cpe1.yaml has no wan debounce")
	return 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchRuns skips a lab benchmark unless SRV6CPE_BENCH=1 and says how many
// runs it makes: SRV6CPE_BENCH_N, 1..100, default 10.
func benchRuns(t *testing.T) int {
	t.Helper()
	if os.Getenv("SRV6CPE_BENCH") != "1" {
		t.Skip("benchmark: set SRV6CPE_BENCH=1 (and SRV6CPE_BENCH_N, default 10)")
	}
	if v, err := strconv.Atoi(os.Getenv("SRV6CPE_BENCH_N")); err == nil && v > 0 && v <= 100 {
		return v
	}
	return 10
}
