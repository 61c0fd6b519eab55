package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/internal/netnstest"
	"github.com/srv6cpe/srv6cpe/twamp"
	"github.com/srv6cpe/srv6cpe/twamp/endtsf"
)

func TestValidateEndTSF(t *testing.T) {
	base := "wan: {interface: wan0}\nsrv6: {locator_len: 48, function_len: 16, end_tsf: %s}\nservices: [{name: v6, behavior: End.DX6, function: 6}]\n"
	for _, tc := range []struct {
		name, endTSF string
		want         []string // empty: valid
	}{
		{"ok", "{function: 0x7f}", nil},
		{"ok with a second uplink", "{function: 0x7f, interfaces: [alt0]}", nil},
		{"no function", "{}", []string{"srv6.end_tsf.function: must be set and non-zero"}},
		{"too wide", "{function: 0x10000}", []string{"srv6.end_tsf.function: 0x10000 does not fit srv6.function_len 16 bits"}},
		{"a service's", "{function: 6}", []string{`srv6.end_tsf.function: 0x6 is also the function of service "v6"`}},
		{"interfaces", "{function: 7, interfaces: [wan0, alt0, alt0, 'a/b']}", []string{
			`srv6.end_tsf.interfaces[0]: "wan0" is listed twice`, `srv6.end_tsf.interfaces[2]: "alt0" is listed twice`,
			`srv6.end_tsf.interfaces[3]: "a/b" is not a valid interface name`}},
		{"unknown key", "{function: 7, mode: authenticated}", []string{"field mode not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(strings.Replace(base, "%s", tc.endTSF, 1)))
			if len(tc.want) == 0 {
				if err != nil || c.SRv6.EndTSF == nil {
					t.Fatalf("ParseConfig = %v, %+v", err, c.SRv6.EndTSF)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// The SID can be the tunnel source only when no padding follows it.
	_, err := ParseConfig([]byte("wan: {interface: w}\nsrv6: {locator_len: 112, function_len: 16, end_tsf: {function: 0xffff}}\n"))
	if err == nil || !strings.Contains(err.Error(), "the tunnel source") {
		t.Errorf("function 0xffff at /112+16: %v", err)
	}
}

// fakeStamper records what the agent tells the stamping program.
type fakeStamper struct {
	mu      sync.Mutex
	sids    [][]endtsf.SID
	ifs     [][]string
	ifErr   error
	running bool
	closed  bool
}

func (f *fakeStamper) SetSIDs(s []endtsf.SID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sids = append(f.sids, s)
	return nil
}

func (f *fakeStamper) SetInterfaces(n []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ifs = append(f.ifs, n)
	return f.ifErr
}

func (f *fakeStamper) Run(ctx context.Context) {
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
}

func (f *fakeStamper) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running {
		return errors.New("closed while its clock refresh runs")
	}
	f.closed = true
	return nil
}

func (f *fakeStamper) last() ([]endtsf.SID, []string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sids) == 0 || len(f.ifs) == 0 {
		return nil, nil, f.closed
	}
	return f.sids[len(f.sids)-1], f.ifs[len(f.ifs)-1], f.closed
}

// tsfAgent runs an agent on a static prefix with a fake dataplane and the
// given End.TSF probe and stamper.
func tsfAgent(t *testing.T, cfg Config, probe func() error, st tsfStamper) (*Agent, *fakeDataplane, func()) {
	t.Helper()
	sd, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caps := noVRF
	caps.EndB6Encaps = true
	dp := newFakeDataplane(caps)
	ag, err := New(cfg, WithDataplane(dp), WithStateDir(sd), WithLogger(zaptest.NewLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ag.tsf.probe = probe
	ag.tsf.open = func(*zap.Logger) (tsfStamper, error) {
		if st == nil {
			t.Error("stamper loaded although End.TSF is unavailable")
			return nil, errors.New("unavailable")
		}
		return st, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	return ag, dp, stop
}

func tsfConfig(t *testing.T) Config {
	cfg := exampleConfig(t)
	cfg.WAN.PrefixSource, cfg.WAN.StaticPrefix = PrefixStatic, p("2001:db8:1200::/40")
	cfg.SRv6.EndTSF = &EndTSFConfig{Function: 0x7f, Interfaces: []string{"alt0"}}
	return cfg
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The End.TSF SID is derived like a service SID, installed as End.DX6
// nh6 ::, and the stamper follows it (and the interfaces) level-triggered:
// renumbering moves both, removing srv6.end_tsf frees the stamper.
func TestEndTSFFollowsThePrefix(t *testing.T) {
	cfg := tsfConfig(t)
	st := &fakeStamper{}
	ag, dp, stop := tsfAgent(t, cfg, func() error { return nil }, st)
	defer stop()
	sid1, sid2 := a("2001:db8:1205:7f::"), a("2001:db8:4405:7f::")
	waitFor(t, "the End.TSF SID installed and stamped", func() bool {
		sids, _, _ := st.last()
		return dp.sids()[sid1] == "End.DX6" && len(sids) == 1 && sids[0].Addr == sid1
	})
	if _, ifs, _ := st.last(); !slices.Equal(ifs, []string{"wan0", "alt0"}) {
		t.Errorf("stamper interfaces %q, want wan0 and alt0", ifs)
	}
	dp.mu.Lock()
	for _, l := range dp.kernel.LocalSIDs {
		if l.SID == sid1 && (l.NH6.String() != "::" || l.Dev != "wan0") {
			t.Errorf("End.TSF SID route %+v, want End.DX6 nh6 :: dev wan0", l)
		}
	}
	dp.mu.Unlock()
	s := ag.Status()
	if s.EndTSF == nil || !s.EndTSF.Stamping || s.EndTSF.SID != sid1 || s.EndTSF.Installed != "End.DX6 nh6 ::" || s.EndTSF.Error != "" {
		t.Errorf("status %+v", s.EndTSF)
	}
	if len(s.SIDs) != len(cfg.Services) {
		t.Errorf("service SIDs in the status %+v: the End.TSF SID is reported apart", s.SIDs)
	}

	cfg.WAN.StaticPrefix = p("2001:db8:4400::/40")
	if err := ag.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stamper on the renumbered SID", func() bool {
		sids, _, _ := st.last()
		_, stale := dp.sids()[sid1]
		return dp.sids()[sid2] == "End.DX6" && !stale && len(sids) == 1 && sids[0].Addr == sid2
	})

	cfg.SRv6.EndTSF = nil
	if err := ag.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stamper freed and the SID removed", func() bool {
		_, _, closed := st.last()
		_, left := dp.sids()[sid2]
		return closed && !left && ag.Status().EndTSF == nil
	})
}

// Where End.TSF cannot run, the SID is still installed (a plain loopback:
// senders get round trips) and the status says why.
func TestEndTSFUnavailable(t *testing.T) {
	why := errors.New("end.tsf unsupported: load the stamping program: operation not permitted")
	ag, dp, stop := tsfAgent(t, tsfConfig(t), func() error { return why }, nil)
	defer stop()
	waitFor(t, "the End.TSF SID installed", func() bool { return dp.sids()[a("2001:db8:1205:7f::")] == "End.DX6" })
	waitFor(t, "the status", func() bool { return ag.Status().EndTSF != nil })
	s := ag.Status().EndTSF
	if s.Stamping || !strings.Contains(s.Error, "End.TSF unavailable, plain loopback") || !strings.Contains(s.Error, "operation not permitted") {
		t.Errorf("status %+v", s)
	}
}

// A stamper that cannot attach to an interface (the second uplink does not
// exist yet) still stamps on the others, and the status names the link.
func TestEndTSFInterfaceMissing(t *testing.T) {
	st := &fakeStamper{ifErr: errors.New(`end.tsf: interface "alt0": no such network interface`)}
	ag, _, stop := tsfAgent(t, tsfConfig(t), func() error { return nil }, st)
	defer stop()
	waitFor(t, "the status", func() bool { return ag.Status().EndTSF != nil })
	if s := ag.Status().EndTSF; !s.Stamping || !strings.Contains(s.Error, `"alt0"`) {
		t.Errorf("status %+v", s)
	}
}

// tsfChildEnv, when set (to a directory), makes TestEndTSFNetns the far
// node's agent: the parent test re-runs its own binary in the namespace.
const tsfChildEnv = "SRV6CPE_ENDTSF_AGENT"

// TestEndTSFNetns: the agent against the real kernel, as the far node of a
// loopback probe (no daemon: the test binary itself runs the agent in
// namespace c). A sender in namespace a probes over [c's End.TSF SID]; the
// probes return with T2 written (one-way forward and backward delays, good
// UDP checksums as tshark reads them); c renumbered, the SID and the
// stamping follow.
func TestEndTSFNetns(t *testing.T) {
	if dir := os.Getenv(tsfChildEnv); dir != "" {
		runTSFAgent(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and loads eBPF")
	}
	if err := endtsf.Probe(); err != nil {
		t.Skipf("End.TSF unavailable on this kernel (TestEndTSFUnavailable covers the fallback): %v", err)
	}
	na, nc := netnstest.New(t, "tpl", "a"), netnstest.New(t, "tpl", "c")
	netnstest.Link(t, na, "tpla", "fd00:ac::1/64", nc, "tplc", "fd00:ac::2/64 2001:db8:1200::1/40")
	netnstest.Exec(t, na, "ip", "-6", "route", "add", "2001:db8::/32", "via", "fd00:ac::2")
	dir := t.TempDir()
	status := runTSFChild(t, nc, dir)

	sid1 := a("2001:db8:1205:7f::")
	st := status(func(s *EndTSFStatus) bool { return s.SID == sid1 && s.Stamping })
	t.Logf("far node status: %+v", st)
	pcap, stop := netnstest.Capture(t, nc, "tplc", "ip6 and udp")
	m := tsfProbes(t, na, sid1)
	stop()
	if m.Received != 20 || m.Forward.Count != 20 || m.Backward.Count != 20 {
		t.Fatalf("over %s: %+v, want 20 probes with one-way delays", sid1, m)
	}
	t.Logf("over End.TSF %s: RTT p50 %v, forward p50 %v, backward p50 %v", sid1, m.RTT.P50, m.Forward.P50, m.Backward.P50)
	if _, err := exec.LookPath("tshark"); err == nil {
		// The decapsulated probes leaving c: T2 (payload octets 16..23) set,
		// UDP checksum good (status 1).
		out := netnstest.Run(t, "tshark", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-Y",
			"!ipv6.routing && ipv6.dst == fd00:ac::1", "-T", "fields", "-e", "udp.checksum.status", "-e", "udp.payload")
		f := strings.Fields(out)
		if len(f) != 40 {
			t.Fatalf("tshark: %d fields for the probes leaving c, want 2×20:\n%s", len(f), out)
		}
		for i := 0; i < len(f); i += 2 {
			if f[i] != "1" || len(f[i+1]) < 48 || f[i+1][32:48] == "0000000000000000" {
				t.Fatalf("probe %d left c with checksum status %s, payload %s: want 1 and T2 set", i/2, f[i], f[i+1])
			}
		}
	}

	// Renumbered: the SID follows the prefix, and so does the stamping.
	netnstest.Exec(t, nc, "ip", "-6", "addr", "del", "2001:db8:1200::1/40", "dev", "tplc")
	netnstest.Exec(t, nc, "ip", "-6", "addr", "add", "2001:db8:4400::1/40", "dev", "tplc", "nodad")
	sid2 := a("2001:db8:4405:7f::")
	status(func(s *EndTSFStatus) bool { return s.SID == sid2 && s.Stamping })
	if m := tsfProbes(t, na, sid2); m.Received != 20 || m.Forward.Count != 20 {
		t.Fatalf("over %s after renumbering: %+v", sid2, m)
	}
	routes := netnstest.Exec(t, nc, "ip", "-6", "route", "show", "proto", "198")
	if !strings.Contains(routes, sid2.String()+" ") || strings.Contains(routes, sid1.String()+" ") || !strings.Contains(routes, "End.DX6 nh6 :: ") {
		t.Errorf("routes after renumbering, want only %s as End.DX6 nh6 :::\n%s", sid2, routes)
	}
}

// runTSFChild starts the far node's agent in namespace ns (this test
// binary, TestEndTSFNetns, with tsfChildEnv set) and returns a function
// that waits for its End.TSF status to satisfy ok. The agent stops when the
// test ends.
func runTSFChild(t *testing.T, ns, dir string) func(ok func(*EndTSFStatus) bool) EndTSFStatus {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run=^TestEndTSFNetns$", "-test.v")
	cmd.Env = append(os.Environ(), tsfChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close() // the agent stops when its stdin closes
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("far node's agent: %v\n%s", err, out.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("far node's agent did not stop within 10s")
		}
		cancel()
	})
	return func(ok func(*EndTSFStatus) bool) EndTSFStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var s Status
			b, err := os.ReadFile(filepath.Join(dir, StatusFile))
			if err == nil && json.Unmarshal(b, &s) == nil && s.EndTSF != nil && ok(s.EndTSF) {
				return *s.EndTSF
			}
			select {
			case err := <-exited:
				t.Fatalf("far node's agent exited: %v\n%s", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("far node's End.TSF status not as wanted within 10s: %s", b)
			}
		}
	}
}

// runTSFAgent is the child: the agent with the real dataplane on link
// tplc, its prefix from the link's global address, until stdin closes.
func runTSFAgent(t *testing.T, dir string) {
	cfg, err := ParseConfig([]byte(`
state_dir: ` + dir + `
wan: {interface: tplc, prefix_source: address, debounce: 20ms}
srv6: {locator_len: 48, function_len: 16, extension: 0x5, end_tsf: {function: 0x7f}}
services: [{name: vpn6, behavior: End.DX6, function: 6}]
`))
	if err != nil {
		t.Fatal(err)
	}
	ag, err := New(cfg, WithLogger(zaptest.NewLogger(t)), WithResync(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := ag.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// tsfProbes sends 20 enhanced-loopback probes from namespace ns over [sid]
// and returns what the sender measured.
func tsfProbes(t *testing.T, ns string, sid netip.Addr) twamp.Metrics {
	t.Helper()
	var s *twamp.Sender
	err := netnstest.Do(ns, func() (err error) {
		s, err = twamp.NewSender(twamp.SenderConfig{Name: "tsf", Loopback: true, EndTSF: true, ClocksSynced: true,
			Segments: []netip.Addr{sid}, Src: a("fd00:ac::1"), Count: 20, Interval: 10 * time.Millisecond, Timeout: time.Second}, zap.NewNop())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return s.Metrics()
}

// A controller's path whose BSID is the End.TSF SID keeps it: the SID is
// not installed as End.DX6, not stamped (no BSID traffic is touched), and
// the status says why.
func TestEndTSFSIDTakenByABSID(t *testing.T) {
	cfg := tsfConfig(t)
	sid := a("2001:db8:1205:7f::")
	cfg.Paths.List = []PathConfig{{ID: "p1", BSID: sid, Segments: Segments{a("2001:db8:e100::1"), a("2001:db8:2205:6::")}, Priority: 1}}
	st := &fakeStamper{}
	ag, dp, stop := tsfAgent(t, cfg, func() error { return nil }, st)
	defer stop()
	waitFor(t, "the status", func() bool { return ag.Status().EndTSF != nil })
	if s := ag.Status().EndTSF; s.Stamping || s.Installed != "" || !strings.Contains(s.Error, "End.B6.Encaps") {
		t.Errorf("status %+v, want not installed, not stamped, the BSID named", s)
	}
	if sids, _, _ := st.last(); len(sids) != 0 {
		t.Errorf("stamper told to stamp %v", sids)
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	for _, l := range dp.kernel.LocalSIDs {
		if l.SID == sid {
			t.Errorf("End.TSF route %+v installed over the BSID", l)
		}
	}
	if len(dp.kernel.BSIDs) != 1 || dp.kernel.BSIDs[0].SID != sid {
		t.Errorf("BSIDs %+v, want the path's", dp.kernel.BSIDs)
	}
}
