package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

// cwmpDoc is the agent config of these tests; %s is the ACS URL, %s the
// transfer work dir.
const cwmpDoc = `
identity: {manufacturer: ExampleCo, oui: 00A0C9, product_class: SRv6-CPE, serial_number: CW0001, hardware_version: hw1, software_version: 1.0.0}
wan: {interface: wan0}
srv6: {locator_len: 48, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
  - {name: vpn6, behavior: End.DT6, function: 0x6}
acs:
  url: %s
  username: cpe
  password: cpe-secret
  retry_minimum_wait: 1
  connection_request: {addr: "127.0.0.1:0", path: /cr, username: acs, password: acs-secret}
  connection_request_host: 127.0.0.1
  transfer: {work_dir: %s}
  reboot_command: [/bin/true] # never the machine's
`

func testCWMPConfig(t *testing.T, acsURL string) (Config, string) {
	t.Helper()
	doc := fmt.Sprintf(cwmpDoc, acsURL, t.TempDir())
	c, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c, doc
}

func waitSessions(t *testing.T, acs *cwmptest.Server, n int) []cwmptest.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, err := acs.WaitSessions(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if len(s.Violations) > 0 {
			t.Errorf("session %d: TR-069 violations %q", s.Index, s.Violations)
		}
	}
	return ss
}

func response(s cwmptest.Session, method string) (cwmptest.Message, bool) {
	for _, m := range s.Messages {
		if m.Method == method {
			return m, true
		}
	}
	return cwmptest.Message{}, false
}

func informValue(in *cwmptest.Inform, name string) string {
	for _, p := range in.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// The agent Informs on start with the board identity, answers for its WAN
// interface and SRv6 view, takes a connection request, and reports a new
// delegated prefix at once when the ACS asked for active notification.
func TestCWMPSessionsFromTheAgent(t *testing.T) {
	acs := cwmptest.NewServer(t, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "cpe-secret"), cwmptest.WithCookie("sid"))
	cfg, _ := testCWMPConfig(t, acs.URL)
	h := start(t, cfg, noVRF, t.TempDir(), func(o *options) { o.cwmp.bootID = func() (string, error) { return "boot-1", nil } })
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })

	first := waitSessions(t, acs, 1)[0]
	in := first.Inform
	if !in.HasEvent(cwmpclient.EventBootstrap) || !in.HasEvent(cwmpclient.EventBoot) {
		t.Errorf("first Inform events %v, want 0 BOOTSTRAP and 1 BOOT", in.Events)
	}
	if want := (cwmptest.DeviceID{Manufacturer: "ExampleCo", OUI: "00A0C9", ProductClass: "SRv6-CPE", SerialNumber: "CW0001"}); in.DeviceID != want {
		t.Errorf("DeviceId %+v, want %+v", in.DeviceID, want)
	}
	crURL := informValue(in, "Device.ManagementServer.ConnectionRequestURL")
	if !strings.HasPrefix(crURL, "http://127.0.0.1:") || !strings.HasSuffix(crURL, "/cr") {
		t.Fatalf("ConnectionRequestURL %q, want http://127.0.0.1:PORT/cr", crURL)
	}
	if v := informValue(in, "Device.DeviceInfo.SoftwareVersion"); v != "1.0.0" {
		t.Errorf("SoftwareVersion in the Inform %q", v)
	}

	acs.Enqueue(
		cwmptest.GetParameterValues("Device.IP.Interface.", "Device.X_ITU-INT_SRv6."),
		cwmptest.SetParameterAttributes(cwmptest.SetAttribute{Name: "Device.X_ITU-INT_SRv6.IPv6Prefix", NotificationChange: true, Notification: 2}),
	)
	connectionRequest(t, crURL)
	second := waitSessions(t, acs, 2)[1]
	if !second.Inform.HasEvent(cwmpclient.EventConnectionRequest) || second.Inform.HasEvent(cwmpclient.EventBoot) {
		t.Errorf("second Inform events %v, want 6 CONNECTION REQUEST alone", second.Inform.Events)
	}
	gpv, ok := response(second, "GetParameterValuesResponse")
	if !ok {
		t.Fatalf("no GetParameterValuesResponse in %+v", second.Messages)
	}
	got := gpv.Values()
	for name, want := range map[string]string{
		"Device.IP.Interface.1.Name":                       "wan0",
		"Device.IP.Interface.1.Status":                     "Up",
		"Device.IP.Interface.1.IPv6Address.1.IPAddress":    "2001:db8:1200::1",
		"Device.IP.Interface.1.IPv6Prefix.1.Prefix":        "2001:db8:1200::/40",
		"Device.X_ITU-INT_SRv6.IPv6Prefix":                 "2001:db8:1200::/40",
		"Device.X_ITU-INT_SRv6.Locator.Name":               "loc1",
		"Device.X_ITU-INT_SRv6.Locator.Prefix":             "2001:db8:1205::/48",
		"Device.X_ITU-INT_SRv6.Locator.Length":             "48",
		"Device.X_ITU-INT_SRv6.ServiceNumberOfEntries":     "2",
		"Device.X_ITU-INT_SRv6.Service.1.ServiceID":        "end",
		"Device.X_ITU-INT_SRv6.Service.1.ServiceSID":       "2001:db8:1205:1::",
		"Device.X_ITU-INT_SRv6.Service.2.ServiceType":      "L3VPN",
		"Device.X_ITU-INT_SRv6.Service.2.Behavior":         "End.DT6",
		"Device.X_ITU-INT_SRv6.Service.2.ServiceSID":       "2001:db8:1205:6::",
		"Device.X_ITU-INT_SRv6.Service.2.LocatorName":      "loc1",
		"Device.IP.Interface.1.IPv6AddressNumberOfEntries": "1",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if _, ok := response(second, "SetParameterAttributesResponse"); !ok {
		t.Fatalf("SetParameterAttributes not answered: %+v", second.Messages)
	}

	// Renumbering: the active notification starts a session at once.
	h.src.send(t, "2001:db8:4400::/40", "2001:db8:4400::1")
	third := waitSessions(t, acs, 3)[2]
	if !third.Inform.HasEvent(cwmpclient.EventValueChange) {
		t.Errorf("third Inform events %v, want 4 VALUE CHANGE", third.Inform.Events)
	}
	if v := informValue(third.Inform, "Device.X_ITU-INT_SRv6.IPv6Prefix"); v != "2001:db8:4400::/40" {
		t.Errorf("IPv6Prefix in the VALUE CHANGE Inform = %q, want the new prefix", v)
	}

	b, err := h.state.ReadFile(CWMPStateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st cwmpState
	if err := json.Unmarshal(b, &st); err != nil || st.BootID != "boot-1" || st.ConfigURL != acs.URL {
		t.Errorf("%s = %s (%v), want boot id boot-1 and the ACS URL", CWMPStateFile, b, err)
	}
}

// The ACS moves the CPE to another ACS (SetParameterValues of the URL);
// later the operator points it at a third one in the config: the config
// wins over the stored URL, and each new ACS gets a 0 BOOTSTRAP.
func TestCWMPConfigURLChangeWinsAndBootstraps(t *testing.T) {
	acs1, moved, acs2 := cwmptest.NewServer(t), cwmptest.NewServer(t), cwmptest.NewServer(t)
	acs1.Enqueue(cwmptest.SetParameterValues("move", cwmptest.ParameterValue{Name: "Device.ManagementServer.URL", Value: moved.URL, Type: "string"}))
	cfg, _ := testCWMPConfig(t, acs1.URL)
	h := start(t, cfg, noVRF, t.TempDir())
	waitSessions(t, acs1, 1)
	if in := waitSessions(t, moved, 1)[0].Inform; !in.HasEvent(cwmpclient.EventBootstrap) {
		t.Errorf("Inform to the ACS the first one named: events %v, want 0 BOOTSTRAP", in.Events)
	}

	cfg2 := cfg
	cfg2.ACS.URL = acs2.URL
	if err := h.agent.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if in := waitSessions(t, acs2, 1)[0].Inform; !in.HasEvent(cwmpclient.EventBootstrap) {
		t.Errorf("Inform to the ACS of the reloaded config: events %v, want 0 BOOTSTRAP", in.Events)
	}

	// A reload without acs.url stops the client: the ACS hears nothing more.
	cfg3 := cfg
	cfg3.ACS = ACSConfig{}
	if err := h.agent.Reload(cfg3); err != nil {
		t.Fatal(err)
	}
	h.stop()
	if n := len(acs1.Sessions()); n != 1 {
		t.Errorf("first ACS saw %d sessions, want 1", n)
	}
}

// A configuration file download replaces the daemon's config file and
// reloads it; a bad one is refused and the file kept; firmware is refused
// without fetching it (nothing installs it on plain Linux).
func TestCWMPDownloads(t *testing.T) {
	acs := cwmptest.NewServer(t)
	cfg, doc := testCWMPConfig(t, acs.URL)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "srv6cpe.yaml")
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	good := strings.Replace(doc, "services:\n", "services:\n  - {name: vpn7, behavior: End.DX6, function: 0x7}\n", 1)
	var firmwareFetched atomic.Int32
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good.yaml":
			fmt.Fprint(w, good)
		case "/bad.yaml":
			fmt.Fprint(w, doc+"bogus: 1\n")
		default:
			firmwareFetched.Add(1)
			fmt.Fprint(w, "image")
		}
	}))
	t.Cleanup(files.Close)
	acs.Enqueue(
		cwmptest.Download(cwmptest.DownloadArgs{CommandKey: "fw", FileType: cwmpclient.FileFirmware, URL: files.URL + "/fw.bin"}),
		cwmptest.Download(cwmptest.DownloadArgs{CommandKey: "bad", FileType: cwmpclient.FileVendorConfig, URL: files.URL + "/bad.yaml"}),
		cwmptest.Download(cwmptest.DownloadArgs{CommandKey: "good", FileType: cwmpclient.FileVendorConfig, URL: files.URL + "/good.yaml"}),
	)
	h := start(t, cfg, noVRF, t.TempDir(), WithConfigFile(cfgPath, func() (Config, error) { return LoadConfig(cfgPath) }))
	h.src.send(t, "2001:db8:1200::/40", "")

	faults, reasons := map[string]string{}, map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	for len(faults) < 3 && time.Now().Before(deadline) {
		for _, s := range acs.Sessions() {
			for _, m := range s.Messages {
				if m.Method == "TransferComplete" {
					faults[m.Text("CommandKey")] = m.Text("FaultStruct/FaultCode")
					reasons[m.Text("CommandKey")] = m.Text("FaultStruct/FaultString")
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]string{"fw": "9001", "bad": "9018", "good": "0"}
	for k, w := range want {
		if faults[k] != w {
			t.Errorf("TransferComplete %s: fault %q, want %s (all: %v)", k, faults[k], w, faults)
		}
	}
	if r := reasons["fw"]; !strings.Contains(r, "firmware upgrade is not supported") || !strings.Contains(r, "acs.firmware_command") {
		t.Errorf("firmware refusal says %q; want it to say why and which key enables it", r)
	}
	if r := reasons["bad"]; !strings.Contains(r, "bogus") {
		t.Errorf("bad config refusal says %q; want the offending key", r)
	}
	if n := firmwareFetched.Load(); n != 0 {
		t.Errorf("firmware image fetched %d times, want never", n)
	}
	if b, _ := os.ReadFile(cfgPath); string(b) != good {
		t.Errorf("config file after the downloads:\n%s\nwant the good one", b)
	}
	h.waitStatus(func(s Status) bool { return len(s.SIDs) == 3 })
}

func TestRebooted(t *testing.T) {
	for _, tc := range []struct {
		saved, current string
		err            error
		want           bool
	}{
		{"a", "a", nil, false},
		{"a", "b", nil, true},
		{"", "a", nil, true}, // first start, or after a factory reset
		{"a", "", nil, true},
		{"a", "a", os.ErrNotExist, true}, // not Linux: every start is a boot
	} {
		if got := rebooted(tc.saved, tc.current, tc.err); got != tc.want {
			t.Errorf("rebooted(%q, %q, %v) = %v, want %v", tc.saved, tc.current, tc.err, got, tc.want)
		}
	}
}

// The state dir is the client's store: its files land there.
func TestCWMPStoreIsTheStateDir(t *testing.T) {
	acs := cwmptest.NewServer(t)
	cfg, _ := testCWMPConfig(t, acs.URL)
	stateDir := t.TempDir()
	start(t, cfg, noVRF, stateDir)
	waitSessions(t, acs, 1)
	st, err := board.OpenStateDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CWMPStateFile, "cwmp-client.json", "cwmp-events.json"} {
		if _, err := st.ReadFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// A client that cannot start (its connection request port is taken) is
// started again later; the agent keeps running meanwhile.
func TestCWMPClientRestartsAfterFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acs := cwmptest.NewServer(t)
	cfg, _ := testCWMPConfig(t, acs.URL)
	cfg.ACS.ConnectionRequest.Addr = busy.Addr().String()
	core, logs := observer.New(zap.InfoLevel)
	h := start(t, cfg, noVRF, t.TempDir(), WithLogger(zap.New(core)), func(o *options) { o.cwmp.restart = 50 * time.Millisecond })
	h.src.send(t, "2001:db8:1200::/40", "")
	deadline := time.Now().Add(10 * time.Second)
	for logs.FilterMessage("CWMP client stopped; restarting it later").Len() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed client start logged twice within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.waitStatus(func(s Status) bool { return s.State == StateApplied }) // the agent goes on
	if n := len(acs.Sessions()); n != 0 {
		t.Fatalf("%d sessions while the client could not listen, want 0", n)
	}
	busy.Close()
	in := waitSessions(t, acs, 1)[0].Inform
	if !in.HasEvent(cwmpclient.EventBootstrap) {
		t.Errorf("events %v, want 0 BOOTSTRAP", in.Events)
	}
}

// FactoryReset empties the state dir and reboots (here: the test config's
// harmless reboot command); the next start bootstraps again with the
// factory values.
func TestCWMPFactoryResetBootstrapsAgain(t *testing.T) {
	acs := cwmptest.NewServer(t)
	cfg, _ := testCWMPConfig(t, acs.URL)
	stateDir := t.TempDir()
	acs.Enqueue(
		cwmptest.SetParameterValues("k", cwmptest.ParameterValue{Name: "Device.ManagementServer.PeriodicInformInterval", Value: "777", Type: "unsignedInt"}),
		cwmptest.FactoryReset(),
	)
	h := start(t, cfg, noVRF, stateDir)
	waitSessions(t, acs, 1)
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(filepath.Join(stateDir, "cwmp-tree.json")); err == nil; _, err = os.Stat(filepath.Join(stateDir, "cwmp-tree.json")) {
		if time.Now().After(deadline) {
			t.Fatal("state dir not emptied within 10s of the FactoryReset session")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.stop()

	acs.Enqueue(cwmptest.GetParameterValues("Device.ManagementServer.PeriodicInformInterval"))
	start(t, cfg, noVRF, stateDir)
	s := waitSessions(t, acs, 2)[1]
	if !s.Inform.HasEvent(cwmpclient.EventBootstrap) {
		t.Errorf("Inform after the factory reset: events %v, want 0 BOOTSTRAP", s.Inform.Events)
	}
	gpv, ok := response(s, "GetParameterValuesResponse")
	if v := gpv.Values()["Device.ManagementServer.PeriodicInformInterval"]; !ok || v != "3600" {
		t.Errorf("PeriodicInformInterval after the factory reset = %q, want the factory 3600", v)
	}
}

// connectionRequest asks the CPE for a session, repeating it while the CPE
// still winds down the previous one (503), as an ACS does.
func connectionRequest(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, err := cwmptest.ConnectionRequestUntilAccepted(ctx, url, "acs", "acs-secret"); err != nil || code != http.StatusOK {
		t.Fatalf("connection request: %d, %v", code, err)
	}
}
