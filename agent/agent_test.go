package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// fakeSource is a prefix source the test drives through its channel.
type fakeSource struct{ ch chan board.PrefixChange }

func newFakeSource() *fakeSource { return &fakeSource{ch: make(chan board.PrefixChange)} }

func (f *fakeSource) Watch(ctx context.Context, out chan<- board.PrefixChange) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case pc := <-f.ch:
			select {
			case out <- pc:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (f *fakeSource) send(t *testing.T, prefix, addr string) {
	t.Helper()
	pc := board.PrefixChange{New: netip.MustParsePrefix(prefix)}
	if addr != "" {
		pc.Addr = netip.MustParseAddr(addr)
	}
	select {
	case f.ch <- pc:
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not take the prefix")
	}
}

// fakeDataplane records every Apply; the next fail calls return errApply.
// The routes it holds model the kernel: the last successful Desired.
type fakeDataplane struct {
	caps    dataplane.Capabilities
	mu      sync.Mutex
	calls   []dataplane.Desired
	kernel  dataplane.Desired
	fail    int
	applied chan struct{}
}

var errApply = errors.New("netlink: device or resource busy")

func newFakeDataplane(caps dataplane.Capabilities) *fakeDataplane {
	return &fakeDataplane{caps: caps, applied: make(chan struct{}, 100)}
}

func (f *fakeDataplane) Capabilities() dataplane.Capabilities { return f.caps }

func (f *fakeDataplane) Apply(_ context.Context, d dataplane.Desired) error {
	f.mu.Lock()
	defer func() { f.mu.Unlock(); f.applied <- struct{}{} }()
	f.calls = append(f.calls, d)
	if f.fail > 0 {
		f.fail--
		return errApply
	}
	f.kernel = d
	return nil
}

// flush drops every route, as a WAN link going down does.
func (f *fakeDataplane) flush() { f.mu.Lock(); f.kernel = dataplane.Desired{}; f.mu.Unlock() }

func (f *fakeDataplane) setFail(n int) { f.mu.Lock(); f.fail = n; f.mu.Unlock() }

func (f *fakeDataplane) ncalls() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) }

// sids returns the SIDs in the modelled kernel.
func (f *fakeDataplane) sids() map[netip.Addr]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[netip.Addr]string{}
	for _, l := range f.kernel.LocalSIDs {
		m[l.SID] = l.Behavior.String()
	}
	return m
}

func (f *fakeDataplane) waitApply(t *testing.T) {
	t.Helper()
	select {
	case <-f.applied:
	case <-time.After(5 * time.Second):
		t.Fatal("no Apply within 5s")
	}
}

type harness struct {
	t     *testing.T
	agent *Agent
	src   *fakeSource
	dp    *fakeDataplane
	state *board.StateDir
	stop  func() // cancels Run and checks it returned (runAgent)
}

func start(t *testing.T, cfg Config, caps dataplane.Capabilities, stateDir string, opts ...Option) *harness {
	t.Helper()
	st, err := board.OpenStateDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, src: newFakeSource(), dp: newFakeDataplane(caps), state: st}
	opts = append([]Option{
		WithLogger(zaptest.NewLogger(t)), WithPrefixSource(h.src), WithDataplane(h.dp), WithStateDir(st),
		WithRetryBackoff(10*time.Millisecond, 40*time.Millisecond), WithPathProbes(fakePathProbe),
	}, opts...)
	h.agent, err = New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.stop = runAgent(t, h.agent)
	return h
}

// runAgent runs a until the stop it returns (also called at cleanup; later
// calls return at once) cancels it, and checks that Run then returns nil
// within 5 s.
func runAgent(t *testing.T, a *Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitStatus polls Status until ok holds.
func (h *harness) waitStatus(ok func(Status) bool) Status {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := h.agent.Status()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("status never satisfied the condition; last: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exampleConfig(t *testing.T) Config {
	t.Helper()
	c, err := LoadConfig("../examples/srv6cpe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNoApplyBeforeFirstPrefix(t *testing.T) {
	h := start(t, exampleConfig(t), noVRF, t.TempDir())
	// Reload and the status write both run through the loop, so once
	// Reload returns the loop has handled everything before it.
	if err := h.agent.Reload(exampleConfig(t)); err != nil {
		t.Fatal(err)
	}
	if n := h.dp.ncalls(); n != 0 {
		t.Fatalf("%d Apply calls before any prefix, want 0", n)
	}
	if s := h.agent.Status(); s.State != StateWaitingForPrefix {
		t.Errorf("state = %q, want %q", s.State, StateWaitingForPrefix)
	}
	b, err := h.state.ReadFile(StatusFile)
	if err != nil {
		t.Fatal(err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil || s.State != StateWaitingForPrefix {
		t.Errorf("status.json = %s (%v)", b, err)
	}
}

func TestPrefixChangeReplacesSIDs(t *testing.T) {
	h := start(t, exampleConfig(t), noVRF, t.TempDir())
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.dp.waitApply(t)
	want1 := map[netip.Addr]string{
		a("2001:db8:1205:1::"): "End", a("2001:db8:1205:4::"): "End.DX4", a("2001:db8:1205:6::"): "End.DT6",
	}
	if got := h.dp.sids(); !equalMap(got, want1) {
		t.Fatalf("kernel SIDs = %v, want %v", got, want1)
	}
	s := h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	if s.Prefix != p("2001:db8:1200::/40") || s.Address != a("2001:db8:1200::1") || s.Locator != p("2001:db8:1205::/48") {
		t.Errorf("status = %+v", s)
	}
	if len(s.Fallback) != 1 || !strings.Contains(s.Fallback[0], "vpn1: End.DT4 installed as End.DX4 nh4 0.0.0.0") {
		t.Errorf("fallback = %q", s.Fallback)
	}

	h.src.send(t, "2001:db8:4400::/40", "2001:db8:4400::1")
	h.dp.waitApply(t)
	want2 := map[netip.Addr]string{
		a("2001:db8:4405:1::"): "End", a("2001:db8:4405:4::"): "End.DX4", a("2001:db8:4405:6::"): "End.DT6",
	}
	if got := h.dp.sids(); !equalMap(got, want2) {
		t.Fatalf("after renumbering, kernel SIDs = %v, want %v (no stale SID)", got, want2)
	}
	h.dp.mu.Lock()
	loc := h.dp.kernel.Locators
	h.dp.mu.Unlock()
	if len(loc) != 1 || loc[0] != p("2001:db8:4405::/48") {
		t.Errorf("locators = %v, want only the new one", loc)
	}

	// The same prefix reported again re-applies: after a WAN flap flushed
	// the routes, the prefix's return restores them.
	h.dp.flush()
	h.src.send(t, "2001:db8:4400::/40", "2001:db8:4400::1")
	h.dp.waitApply(t)
	if got := h.dp.sids(); !equalMap(got, want2) {
		t.Errorf("after the prefix came back, kernel SIDs = %v, want %v", got, want2)
	}
}

// A periodic resync restores routes removed behind the agent's back.
func TestResyncRestoresRoutes(t *testing.T) {
	h := start(t, exampleConfig(t), noVRF, t.TempDir(), WithResync(20*time.Millisecond))
	h.src.send(t, "2001:db8:1200::/40", "")
	h.dp.waitApply(t)
	h.dp.flush()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.dp.sids()) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("routes not restored by the resync within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The first Apply's loop round, with its status write, is over by now.
	written, err := h.state.ReadFile(StatusFile)
	if err != nil {
		t.Fatal(err)
	}
	// Resyncs that change nothing do not rewrite status.json.
	n := h.dp.ncalls()
	for h.dp.ncalls() < n+3 {
		h.dp.waitApply(t)
	}
	again, err := h.state.ReadFile(StatusFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(written) {
		t.Errorf("status.json rewritten by resyncs that changed nothing:\n%s\n%s", written, again)
	}
}

func TestReloadBadConfigChangesNothing(t *testing.T) {
	h := start(t, exampleConfig(t), noVRF, t.TempDir())
	h.src.send(t, "2001:db8:1200::/40", "")
	h.dp.waitApply(t)
	before := h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	calls := h.dp.ncalls()

	bad := func(edit func(*Config)) Config {
		c := exampleConfig(t)
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"invalid", bad(func(c *Config) { c.Services[0].Function = c.Services[1].Function }), "is also the function"},
		{"second VPN without VRF", bad(func(c *Config) {
			c.Services = append(c.Services, ServiceConfig{Name: "vpn2", Behavior: "End.DT4", Function: 9, VRF: "vpn2", Table: 200})
		}), `"vpn1" (vrf "vpn1") and "vpn2" (vrf "vpn2") are two VPNs`},
		{"wan changed", bad(func(c *Config) { c.WAN.Interface = "eth1" }), "wan: changed"},
		{"state dir changed", bad(func(c *Config) { c.StateDir = "/elsewhere" }), "state_dir: changed"},
		{"does not fit the prefix", bad(func(c *Config) { c.SRv6.LocatorLen = 36 }), "2001:db8:1200::/40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.agent.Reload(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v, want an error with %q", err, tc.want)
			}
		})
	}
	if got := h.dp.ncalls(); got != calls {
		t.Errorf("Apply calls = %d after rejected reloads, want %d", got, calls)
	}
	after := h.agent.Status()
	if after.State != before.State || after.Locator != before.Locator || len(after.SIDs) != len(before.SIDs) || after.LastError != "" {
		t.Errorf("status changed: %+v -> %+v", before, after)
	}

	// A good reload that adds a service installs its SID.
	good := exampleConfig(t)
	good.Services = append(good.Services, ServiceConfig{Name: "vpn7", Behavior: "End.DX6", Function: 7})
	if err := h.agent.Reload(good); err != nil {
		t.Fatal(err)
	}
	if got := h.dp.sids()[a("2001:db8:1205:7::")]; got != "End.DX6" {
		t.Errorf("new SID after reload: %q, want End.DX6", got)
	}
}

func TestApplyErrorRetriedAndReported(t *testing.T) {
	h := start(t, exampleConfig(t), noVRF, t.TempDir())
	h.dp.setFail(3)
	h.src.send(t, "2001:db8:1200::/40", "")
	h.dp.waitApply(t)
	s := h.waitStatus(func(s Status) bool { return s.Failures >= 1 })
	if s.State != StateRetrying || !strings.Contains(s.LastError, errApply.Error()) || s.NextRetry.IsZero() {
		t.Errorf("status after a failed Apply = %+v", s)
	}
	for range 3 {
		h.dp.waitApply(t)
	}
	s = h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	if s.LastError != "" || s.Failures != 0 || s.LastApply.IsZero() {
		t.Errorf("status after recovery = %+v", s)
	}
	if n := h.dp.ncalls(); n != 4 {
		t.Errorf("Apply calls = %d, want 4 (3 failures, 1 success)", n)
	}
	if len(h.dp.sids()) != 3 {
		t.Errorf("kernel SIDs = %v", h.dp.sids())
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {1000, time.Minute}} {
		if got := backoff(tc.n, time.Second, time.Minute); got != tc.want {
			t.Errorf("backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

// A restart waits for the prefix source even though the last prefix is
// persisted, and shows that prefix as the previous one meanwhile.
func TestRestartWaitsForPrefix(t *testing.T) {
	dir := t.TempDir()
	h := start(t, exampleConfig(t), noVRF, dir)
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.dp.waitApply(t)
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	h.stop()

	h2 := start(t, exampleConfig(t), noVRF, dir)
	if err := h2.agent.Reload(exampleConfig(t)); err != nil { // a loop round trip
		t.Fatal(err)
	}
	s := h2.agent.Status()
	if h2.dp.ncalls() != 0 || s.State != StateWaitingForPrefix {
		t.Fatalf("restart applied before a prefix: calls %d, status %+v", h2.dp.ncalls(), s)
	}
	if s.Previous == nil || s.Previous.Prefix != p("2001:db8:1200::/40") || s.Previous.Locator != p("2001:db8:1205::/48") {
		t.Errorf("previous = %+v", s.Previous)
	}
	h2.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h2.dp.waitApply(t)
	if s := h2.waitStatus(func(s Status) bool { return s.State == StateApplied }); s.Previous != nil {
		t.Errorf("previous still shown after apply: %+v", s.Previous)
	}
}

func TestNewRejectsWhatTheKernelCannotDo(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.Services = append(cfg.Services, ServiceConfig{Name: "vpn2", Behavior: "End.DT4", Function: 9, VRF: "vpn2", Table: 200})
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, WithPrefixSource(newFakeSource()), WithDataplane(newFakeDataplane(noVRF)), WithStateDir(st))
	if !errors.Is(err, ErrKernel) || !strings.Contains(err.Error(), `"vpn1"`) || !strings.Contains(err.Error(), `"vpn2"`) {
		t.Fatalf("New = %v, want ErrKernel naming vpn1 and vpn2", err)
	}
	// With VRFs the same config is fine.
	if _, err := New(cfg, WithPrefixSource(newFakeSource()), WithDataplane(newFakeDataplane(withVRF)), WithStateDir(st)); err != nil {
		t.Fatal(err)
	}
}

func TestRunTwiceAndReloadAfterStop(t *testing.T) {
	h := start(t, exampleConfig(t), noVRF, t.TempDir())
	if err := h.agent.Reload(exampleConfig(t)); err != nil { // Run is looping
		t.Fatal(err)
	}
	if err := h.agent.Run(context.Background()); err == nil {
		t.Error("second Run: no error")
	}
	h.stop()
	if err := h.agent.Reload(exampleConfig(t)); !errors.Is(err, ErrStopped) {
		t.Errorf("Reload after stop = %v, want ErrStopped", err)
	}
}

type failingSource struct{}

func (failingSource) Watch(context.Context, chan<- board.PrefixChange) error {
	return errors.New("netlink subscribe: permission denied")
}

func TestPrefixSourceFailureEndsRun(t *testing.T) {
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ag, err := New(exampleConfig(t), WithPrefixSource(failingSource{}), WithDataplane(newFakeDataplane(noVRF)), WithStateDir(st))
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Run = %v", err)
	}
}

func equalMap(x, y map[netip.Addr]string) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if y[k] != v {
			return false
		}
	}
	return true
}

// Against the dataplane's Fake, which diffs like the kernel: renumbering
// leaves exactly the new routes, none of the old prefix.
func TestRenumberAgainstDataplaneFake(t *testing.T) {
	fake := dataplane.NewFake(noVRF)
	h := start(t, exampleConfig(t), noVRF, t.TempDir(), WithDataplane(fake))
	applies := func(n int) {
		t.Helper()
		h.waitStatus(func(Status) bool { return fake.Applies() >= n })
		h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	}
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	applies(1)
	want1 := []string{
		"2001:db8:1205:1::/128 encap seg6local action End dev wan0",
		"2001:db8:1205:4::/128 encap seg6local action End.DX4 nh4 0.0.0.0 dev wan0",
		"2001:db8:1205:6::/128 encap seg6local action End.DT6 table 254 dev wan0",
		"unreachable 2001:db8:1205::/48",
	}
	if got := fake.Routes(); !sameSet(got, want1) {
		t.Fatalf("routes = %q\nwant %q", got, want1)
	}
	h.src.send(t, "2001:db8:4400::/40", "2001:db8:4400::1")
	applies(2)
	for _, r := range fake.Routes() {
		if strings.Contains(r, "2001:db8:1205:") {
			t.Errorf("stale route after renumbering: %s", r)
		}
	}
	if got := fake.Routes(); len(got) != len(want1) {
		t.Errorf("routes after renumbering = %q", got)
	}
}

func TestReloadChangesStaticPrefix(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.WAN.PrefixSource, cfg.WAN.StaticPrefix = PrefixStatic, p("2001:db8:1200::/40")
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dp := newFakeDataplane(noVRF)
	ag, err := New(cfg, WithDataplane(dp), WithStateDir(st), WithLogger(zaptest.NewLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	defer func() { cancel(); <-done }()
	dp.waitApply(t)
	if _, ok := dp.sids()[a("2001:db8:1205:4::")]; !ok {
		t.Fatalf("SIDs = %v", dp.sids())
	}
	cfg.WAN.StaticPrefix = p("2001:db8:4400::/40")
	if err := ag.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dp.sids()[a("2001:db8:4405:4::")] == "" {
		if time.Now().After(deadline) {
			t.Fatalf("SIDs after the static prefix changed = %v", dp.sids())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, stale := dp.sids()[a("2001:db8:1205:4::")]; stale {
		t.Errorf("old SID still there: %v", dp.sids())
	}
	cfg.WAN.StaticPrefix = p("2001:db8:4400::/56") // longer than the locator
	if err := ag.Reload(cfg); err == nil || !strings.Contains(err.Error(), "2001:db8:4400::/56") {
		t.Errorf("Reload with a static prefix longer than the locator = %v", err)
	}
}

func sameSet(x, y []string) bool {
	if len(x) != len(y) {
		return false
	}
	m := map[string]int{}
	for _, s := range x {
		m[s]++
	}
	for _, s := range y {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
