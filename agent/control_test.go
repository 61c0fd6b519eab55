package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/twamp"
)

const controlTestConfig = `
wan: {interface: wan0, prefix_source: static, static_prefix: "2001:db8:1200::/40", static_address: "2001:db8:1200::1"}
srv6: {locator_len: 48, function_len: 16, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
  - {name: vpn6, behavior: End.DT6, function: 0x6}
remote:
  - {prefix: "2001:db8:99::/48", segments: ["2001:db8:7705:6::"]}
`

type controlHarness struct {
	agent  *Agent
	socket string
	state  *board.StateDir
	client *http.Client
	stop   func()
}

// startControlAgent runs an agent with a static prefix, the fake dataplane
// and its control socket at socket (none when empty).
func startControlAgent(t *testing.T, socket string, opts ...Option) *controlHarness {
	t.Helper()
	cfg, err := ParseConfig([]byte(controlTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ControlSocket = socket
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, append([]Option{WithLogger(zaptest.NewLogger(t)), WithStateDir(st),
		WithDataplane(dataplane.NewFake(dataplane.Capabilities{EndDT6Table: true, EncapRed: true}))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h := &controlHarness{agent: a, socket: socket, state: st, client: unixClient(socket), stop: runAgent(t, a)}
	deadline := time.Now().Add(5 * time.Second)
	for a.Status().State != StateApplied {
		if time.Now().After(deadline) {
			t.Fatalf("never applied: %+v", a.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h
}

func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}

func (h *controlHarness) do(t *testing.T, method, path string, want int, into any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://srv6cpe"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
}

func TestControlSocketServes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	sock := filepath.Join(dir, "control.sock")
	h := startControlAgent(t, sock)

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v (%v), want 0700", di.Mode(), err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".ctl*")); len(tmp) != 0 {
		t.Errorf("temporary socket names left: %v", tmp)
	}

	var st Status
	h.do(t, "GET", ControlStatus, http.StatusOK, &st)
	if st.State != StateApplied || st.Locator.String() != "2001:db8:1205::/48" || len(st.SIDs) != 2 || st.SIDs[1].SID.String() != "2001:db8:1205:6::" {
		t.Errorf("status = %+v", st)
	}

	var routes ControlRoutesView
	h.do(t, "GET", ControlRoutes, http.StatusOK, &routes)
	var sids []string
	for _, l := range routes.LocalSIDs {
		sids = append(sids, l.SID.String()+" "+l.Behavior)
	}
	if got := strings.Join(sids, ", "); got != "2001:db8:1205:1:: End, 2001:db8:1205:6:: End.DT6" {
		t.Errorf("installed local SIDs: %s", got)
	}
	if len(routes.Encaps) != 1 || routes.Encaps[0].Prefix.String() != "2001:db8:99::/48" || routes.Encaps[0].Mode != "encap" {
		t.Errorf("installed encaps: %+v", routes.Encaps)
	}
	if len(routes.Locators) != 1 || routes.Locators[0].String() != "2001:db8:1205::/48" {
		t.Errorf("installed locators: %v", routes.Locators)
	}

	var bgpv ControlBGPView
	h.do(t, "GET", ControlBGP, http.StatusOK, &bgpv)
	if bgpv.Configured || bgpv.Status != nil {
		t.Errorf("bgp = %+v, want not configured", bgpv)
	}
	var sv ControlSTAMPView
	h.do(t, "GET", ControlSTAMP, http.StatusOK, &sv)
	if len(sv.Tasks) != 0 {
		t.Errorf("stamp = %+v, want no tasks", sv)
	}
	var pathsv ControlPathsView
	h.do(t, "GET", ControlPaths, http.StatusOK, &pathsv)
	if pathsv.Paths == nil || len(pathsv.Paths) != 0 {
		t.Errorf("paths = %+v, want an empty list", pathsv)
	}
	var pv ControlPolicyView
	h.do(t, "GET", ControlPolicy, http.StatusOK, &pv)
	if pv.Policies == nil || len(pv.Policies) != 0 {
		t.Errorf("policy = %+v, want an empty list", pv)
	}
	var cw ControlCWMPView
	h.do(t, "GET", ControlCWMP, http.StatusOK, &cw)
	if cw.ACSURL != "" || cw.PendingEvents == nil || len(cw.PendingEvents) != 0 || len(cw.Transfers) != 0 {
		t.Errorf("cwmp = %+v, want nothing (no acs section), with empty lists", cw)
	}

	var e map[string]string
	h.do(t, "POST", ControlRefresh, http.StatusConflict, &e)
	if !strings.Contains(e["error"], "static") {
		t.Errorf("refresh of a static source: %q", e["error"])
	}
	h.do(t, "GET", "/v1/nothing", http.StatusNotFound, &e)
	if !strings.Contains(e["error"], "/v1/nothing") {
		t.Errorf("404 error = %q", e["error"])
	}
	h.do(t, "POST", ControlStatus, http.StatusNotFound, &e) // read-only
	if !strings.Contains(e["error"], "POST /v1/status") {
		t.Errorf("POST status error = %q", e["error"])
	}

	h.stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after Run returned (%v)", err)
	}
}

// refreshable is a static source that counts Refresh calls.
type refreshable struct {
	*board.StaticPrefix
	n chan struct{}
}

func (r refreshable) Refresh() { r.n <- struct{}{} }

func TestControlRefresh(t *testing.T) {
	src := refreshable{board.NewStaticPrefix(netip.MustParsePrefix("2001:db8:1200::/40"), netip.Addr{}), make(chan struct{}, 1)}
	h := startControlAgent(t, filepath.Join(t.TempDir(), "c.sock"), WithPrefixSource(src))
	var ok map[string]bool
	h.do(t, "POST", ControlRefresh, http.StatusOK, &ok)
	if !ok["refreshed"] || len(src.n) != 1 {
		t.Errorf("refresh answered %v, source refreshed %d times", ok, len(src.n))
	}
}

func TestControlCWMPView(t *testing.T) {
	h := startControlAgent(t, filepath.Join(t.TempDir(), "c.sock"))
	if err := h.agent.cwmp.saveState(cwmpState{ConfigURL: "https://acs.example/cwmp"}); err != nil {
		t.Fatal(err)
	}
	ev, err := cwmpclient.NewEventStore(h.state, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Add(cwmpclient.EventStruct{Code: "4 VALUE CHANGE"}, cwmpclient.EventStruct{Code: "M Reboot", CommandKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	r := cwmpclient.DownloadRecord(cwmpclient.Download{CommandKey: "fw", FileType: cwmpclient.FileFirmware, URL: "http://user:pw@x/fw", Username: "u", Password: "secret"}, time.Unix(1e9, 0))
	if _, err := ev.AddTransfer(r); err != nil {
		t.Fatal(err)
	}
	var cw ControlCWMPView
	raw := json.RawMessage{}
	h.do(t, "GET", ControlCWMP, http.StatusOK, &raw)
	if strings.Contains(string(raw), "secret") || strings.Contains(string(raw), "pw@") {
		t.Errorf("the CWMP view shows transfer credentials: %s", raw)
	}
	if err := json.Unmarshal(raw, &cw); err != nil {
		t.Fatal(err)
	}
	if cw.ACSURL != "https://acs.example/cwmp" || len(cw.PendingEvents) != 2 || cw.PendingEvents[1] != (ControlCWMPEvent{Code: "M Reboot", CommandKey: "k1"}) {
		t.Errorf("cwmp = %+v", cw)
	}
	if len(cw.Transfers) != 1 || cw.Transfers[0].Direction != "download" || cw.Transfers[0].State != "queued" || cw.Transfers[0].CommandKey != "fw" {
		t.Errorf("transfers = %+v", cw.Transfers)
	}
}

func TestControlSocketStaleReplaced(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	// A crashed agent's socket: the file stays, nobody listens.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	h := startControlAgent(t, sock)
	var st Status
	h.do(t, "GET", ControlStatus, http.StatusOK, &st)
	if st.State != StateApplied {
		t.Errorf("state %q", st.State)
	}
}

func TestControlSocketNotTaken(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{live, file} {
		// The agent runs without its socket and leaves the path alone.
		h := startControlAgent(t, p)
		h.stop()
	}
	if fi, err := os.Lstat(live); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("the other process's socket is gone (%v)", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("the regular file at the socket path changed: %q %v", b, err)
	}
}

func TestValidateControl(t *testing.T) {
	long := "/" + strings.Repeat("d", 100) + "/c.sock"
	tests := []struct{ path, err string }{
		{"", ""},
		{DefaultControlSocket, ""},
		{"run/c.sock", `control_socket: "run/c.sock" is not an absolute path`},
		{"/run//c.sock", `is not a clean path (did you mean "/run/c.sock"?)`},
		{"/run/c.sock/", `is not a clean path`},
		{long, "is too long for a unix socket"},
	}
	for _, tt := range tests {
		c := Config{ControlSocket: tt.path}
		errs := c.validateControl()
		switch {
		case tt.err == "" && len(errs) != 0:
			t.Errorf("%q: %v", tt.path, errs)
		case tt.err != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.err)):
			t.Errorf("%q: %v, want %q", tt.path, errs, tt.err)
		}
	}
}

// Agents of one process may put their sockets in one directory.
func TestControlSocketsShareADir(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.sock", "b.sock"} {
		h := startControlAgent(t, filepath.Join(dir, name))
		var st Status
		h.do(t, "GET", ControlStatus, http.StatusOK, &st)
		if st.State != StateApplied {
			t.Errorf("%s: state %q", name, st.State)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".ctl*")); len(left) != 0 {
		t.Errorf("temporary names left: %v", left)
	}
}

// TestControlPaths: /v1/paths reports each dynamic path as Path.{i} does:
// installed (Active, with its latency) or why not.
func TestControlPaths(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	h := startControlAgent(t, sock, WithDataplane(dataplane.NewFake(dataplane.Capabilities{EndDT6Table: true, EncapRed: true, EndB6Encaps: true})),
		WithPathProbes(func(twamp.SenderConfig) (twamp.Session, error) { return idleProbe{}, nil }))
	cfg, err := ParseConfig([]byte(controlTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ControlSocket = sock
	segs := []netip.Addr{netip.MustParseAddr("2001:db8:e100::1"), netip.MustParseAddr("2001:db8:2205:6::")}
	cfg.Paths.List = []PathConfig{
		{ID: "fast", Destination: "2001:db8:2200::1", Segments: segs, BSID: netip.MustParseAddr("2001:db8:1205:b5::"), Priority: 1},
		{ID: "slow", Destination: "2001:db8:2200::1", Segments: segs, BSID: netip.MustParseAddr("2001:db8:1205:b5::"), Priority: 2},
		{ID: "outside", Destination: "2001:db8:2200::1", Segments: segs, BSID: netip.MustParseAddr("2001:db8:77::1"), Priority: 1},
	}
	if err := h.agent.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	var v ControlPathsView
	h.do(t, "GET", ControlPaths, http.StatusOK, &v)
	got := map[string]ControlPathView{}
	for _, p := range v.Paths {
		got[p.ID] = p
	}
	if len(v.Paths) != 3 {
		t.Fatalf("paths = %+v, want 3", v.Paths)
	}
	if p := got["fast"]; p.Status != "Active" || p.BSID != cfg.Paths.List[0].BSID || !slices.Equal(p.Segments, segs) ||
		p.ActivePathInfo != `SegmentList=["2001:db8:e100::1", "2001:db8:2205:6::"]; latency unknown: no probe answered yet` {
		t.Errorf("fast = %+v, want Active with its list and an unknown latency (nothing answers here)", p)
	}
	if p := got["slow"]; p.Status != "Standby" || !strings.Contains(p.Details, `"fast"`) || p.ActivePathInfo != "" {
		t.Errorf("slow = %+v, want Standby behind fast", p)
	}
	if p := got["outside"]; p.Status != "Error" || !strings.Contains(p.Details, "outside the locator") {
		t.Errorf("outside = %+v, want Error naming the locator", p)
	}
}
