package cwmpclient

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icholy/digest"
	"go.uber.org/zap/zaptest"
	"gopkg.in/yaml.v3"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// fakeClock is a manual clock: the client's loop reports each wait on
// sleeping, and the test advances time to fire it.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	timers   []fakeTimer
	sleeping chan time.Duration
	done     chan struct{}
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), sleeping: make(chan time.Duration), done: make(chan struct{})}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.mu.Lock()
	f.timers = append(f.timers, fakeTimer{at: f.now.Add(d), ch: ch})
	f.mu.Unlock()
	select {
	case f.sleeping <- d:
	case <-f.done:
	}
	return ch
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	keep := f.timers[:0]
	for _, t := range f.timers {
		if !t.at.After(f.now) {
			t.ch <- f.now
		} else {
			keep = append(keep, t)
		}
	}
	f.timers = keep
}

// nextSleep waits for the loop to go idle and returns how long it sleeps.
func (f *fakeClock) nextSleep(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-f.sleeping:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("client loop did not go idle")
		return 0
	}
}

type fakeHooks struct {
	mu                       sync.Mutex
	reboots, resets          int
	firmware, configs        []string
	firmwareData             []string
	exportConfig, exportLogs int
}

func (h *fakeHooks) Reboot(context.Context) error {
	h.mu.Lock()
	h.reboots++
	h.mu.Unlock()
	return nil
}
func (h *fakeHooks) FactoryReset(context.Context) error {
	h.mu.Lock()
	h.resets++
	h.mu.Unlock()
	return nil
}
func (h *fakeHooks) ApplyFirmware(_ context.Context, p string) error {
	b, err := os.ReadFile(p)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.firmware = append(h.firmware, p)
	h.firmwareData = append(h.firmwareData, string(b))
	return err
}
func (h *fakeHooks) ApplyConfig(_ context.Context, p string) error {
	h.mu.Lock()
	h.configs = append(h.configs, p)
	h.mu.Unlock()
	return nil
}
func (h *fakeHooks) ExportConfig(context.Context) ([]byte, error) { return []byte("cfg"), nil }
func (h *fakeHooks) ExportLog(context.Context) ([]byte, error)    { return []byte("log"), nil }

// fakeTransfers downloads by writing a file; failing URLs contain "fail".
type fakeTransfers struct {
	dir     string
	uploads []string
}

func (x *fakeTransfers) Download(_ context.Context, r TransferRecord) (string, error) {
	if strings.Contains(r.URL, "fail") {
		return "", NewFault(FaultFileServerUnreachable, "cannot reach %s", r.URL)
	}
	p := filepath.Join(x.dir, "dl")
	return p, os.WriteFile(p, []byte("image:"+r.URL), 0o600)
}

func (x *fakeTransfers) Upload(_ context.Context, r TransferRecord, data []byte) error {
	x.uploads = append(x.uploads, r.URL+"="+string(data))
	return nil
}

type harness struct {
	c      *Client
	clk    *fakeClock
	hooks  *fakeHooks
	acs    *fakeACS
	xfer   *fakeTransfers
	cancel context.CancelFunc
	done   chan error
}

func testConfig() Config {
	return Config{TransportConfig: TransportConfig{URL: "http://acs.test/cwmp"}, NotificationInterval: time.Hour}
}

func startClient(t *testing.T, store Store, acs *fakeACS, cfg Config, deps Deps) *harness {
	t.Helper()
	h := &harness{clk: newFakeClock(), hooks: &fakeHooks{}, acs: acs, xfer: &fakeTransfers{dir: t.TempDir()}}
	deps.Store = store
	deps.Hooks = h.hooks
	deps.Transfers = h.xfer
	deps.Info = DeviceInfo{Manufacturer: "Acme", ManufacturerOUI: "00AABB", ProductClass: "SRv6CPE", SerialNumber: "SN1", SoftwareVersion: "1.0"}
	deps.Clock = h.clk
	deps.Rand = func() float64 { return 0.5 }
	deps.Logger = zaptest.NewLogger(t)
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	c.dial = acs.dial
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- c.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	close(h.clk.done)
	<-h.done
	h.cancel = nil
}

func TestClientRetryTiming(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t, failDials: 3}
	h := startClient(t, newMemStore(), acs, testConfig(), Deps{})
	// TR-069 §3.2.1.1 with m=5, k=2000 and the random draw at the middle
	// of each range: [5,10], [10,20], [20,40] seconds.
	for _, want := range []time.Duration{7500 * time.Millisecond, 15 * time.Second, 30 * time.Second} {
		if got := h.clk.nextSleep(t); got != want {
			t.Fatalf("retry wait %v, want %v", got, want)
		}
		h.clk.Advance(want)
	}
	h.clk.nextSleep(t)
	events, params, retry := acs.informOf(0)
	if retry != "3" || !slices.Equal(events, []string{EventBoot, EventBootstrap}) {
		t.Errorf("inform after 3 failures: events %v retry %s", events, retry)
	}
	if !slices.Contains(params, "Device.DeviceInfo.SoftwareVersion=1.0") {
		t.Errorf("forced inform parameters missing: %v", params)
	}
	// Success resets the count; the next session says RetryCount 0.
	if err := h.c.events.Add(EventStruct{Code: "X 00AABB Test"}); err != nil { // no trigger yet
		t.Fatal(err)
	}
	if err := h.c.AddEvent(EventStruct{Code: EventDiagnosticsDone}); err != nil {
		t.Fatal(err)
	}
	h.clk.nextSleep(t)
	events, _, retry = acs.informOf(1)
	if retry != "0" || !slices.Equal(events, []string{"X 00AABB Test", EventDiagnosticsDone}) {
		t.Errorf("second session: events %v retry %s", events, retry)
	}
}

func TestClientEventsSurviveRestart(t *testing.T) {
	cwmpschema.Tool(t)
	store := newMemStore()
	acs := &fakeACS{t: t, informFault: 8005}
	h := startClient(t, store, acs, testConfig(), Deps{})
	if err := h.c.AddEvent(EventStruct{Code: "X 00AABB Pending"}); err != nil {
		t.Fatal(err)
	}
	h.clk.nextSleep(t)
	h.stop()
	if ev, _, _ := acs.informOf(0); !slices.Contains(ev, EventBootstrap) {
		t.Fatalf("first inform %v", ev)
	}

	// Restart: the undelivered events come back once each; 1 BOOT is not
	// doubled.
	acs2 := &fakeACS{t: t}
	h2 := startClient(t, store, acs2, testConfig(), Deps{})
	h2.clk.nextSleep(t)
	h2.stop()
	ev, _, _ := acs2.informOf(0)
	slices.Sort(ev)
	if want := []string{EventBootstrap, EventBoot, "X 00AABB Pending"}; !slices.Equal(ev, want) {
		t.Errorf("after restart: %v, want %v", ev, want)
	}
	if m := acs2.methods(0); !slices.Equal(m, []string{"Inform", "GetRPCMethods", ""}) {
		t.Errorf("bootstrap session sent %v", m)
	}
	if !slices.Equal(h2.c.ACSMethods(), []string{"Inform"}) {
		t.Errorf("ACS methods %v", h2.c.ACSMethods())
	}

	// Bootstrapped: the next boot only says 1 BOOT.
	acs3 := &fakeACS{t: t}
	h3 := startClient(t, store, acs3, testConfig(), Deps{})
	h3.clk.nextSleep(t)
	if ev, _, _ := acs3.informOf(0); !slices.Equal(ev, []string{EventBoot}) {
		t.Errorf("third boot: %v", ev)
	}
}

// A restart of the software alone (Deps.Restarted) is no boot: no 1 BOOT,
// nothing dropped, and no session at all when nothing is owed.
func TestClientRestartedWithoutReboot(t *testing.T) {
	cwmpschema.Tool(t)
	store := newMemStore()
	acs := &fakeACS{t: t}
	h := startClient(t, store, acs, testConfig(), Deps{})
	h.clk.nextSleep(t) // the boot session bootstraps the URL
	h.stop()

	// Nothing pending: the restart opens no session.
	acs2 := &fakeACS{t: t}
	h2 := startClient(t, store, acs2, testConfig(), Deps{Restarted: true})
	h2.clk.nextSleep(t)
	h2.stop()
	if acs2.sessions != 0 {
		t.Fatalf("restart with nothing pending opened %d sessions", acs2.sessions)
	}

	// Pending events (a connection request and a value change, which a
	// reboot would drop) go out after a restart, without 1 BOOT.
	es, err := NewEventStore(store, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Add(EventStruct{Code: EventConnectionRequest}, EventStruct{Code: EventValueChange}); err != nil {
		t.Fatal(err)
	}
	acs3 := &fakeACS{t: t}
	h3 := startClient(t, store, acs3, testConfig(), Deps{Restarted: true})
	h3.clk.nextSleep(t)
	ev, _, _ := acs3.informOf(0)
	slices.Sort(ev)
	if want := []string{EventValueChange, EventConnectionRequest}; !slices.Equal(ev, want) {
		t.Errorf("after a restart: %v, want %v", ev, want)
	}
}

// Persisted files that do not parse (flash corruption, a hand edit) must not
// keep the CPE from its ACS: each starts afresh, the ACS is bootstrapped
// again, and the files are rewritten whole.
func TestClientCorruptStateStartsAfresh(t *testing.T) {
	cwmpschema.Tool(t)
	store := newMemStore()
	for _, f := range []string{treeFile, clientStateFile, defaultEventsFile} {
		store.files[f] = []byte("{\"trunc")
	}
	acs := &fakeACS{t: t}
	h := startClient(t, store, acs, testConfig(), Deps{})
	h.clk.nextSleep(t)
	ev, _, _ := acs.informOf(0)
	slices.Sort(ev)
	if want := []string{EventBootstrap, EventBoot}; !slices.Equal(ev, want) {
		t.Errorf("first Inform with corrupt state: %v, want %v", ev, want)
	}
	h.stop()
	for _, f := range []string{clientStateFile, defaultEventsFile} {
		if b, _ := store.ReadFile(f); !json.Valid(b) {
			t.Errorf("%s not rewritten: %q", f, b)
		}
	}
}

func TestClientReboot(t *testing.T) {
	cwmpschema.Tool(t)
	store := newMemStore()
	acs := &fakeACS{t: t, script: []string{`<cwmp:Reboot><CommandKey>rk</CommandKey></cwmp:Reboot>`}}
	h := startClient(t, store, acs, testConfig(), Deps{})
	h.waitReboots(t, 1)
	h.stop()
	if acs.sessions != 1 {
		t.Errorf("%d sessions before the reboot, want 1", acs.sessions)
	}
	acs2 := &fakeACS{t: t}
	h2 := startClient(t, store, acs2, testConfig(), Deps{})
	h2.clk.nextSleep(t)
	ev, _, _ := acs2.informOf(0)
	slices.Sort(ev)
	if want := []string{EventBoot, EventMReboot + "/rk"}; !slices.Equal(ev, want) {
		t.Errorf("after reboot: %v, want %v", ev, want)
	}
}

func TestClientScheduleAndPeriodic(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t, script: []string{
		`<cwmp:ScheduleInform><DelaySeconds>60</DelaySeconds><CommandKey>sk</CommandKey></cwmp:ScheduleInform>`,
	}}
	cfg := testConfig()
	cfg.PeriodicInformEnable = true
	cfg.PeriodicInformInterval = 300 * time.Second
	h := startClient(t, newMemStore(), acs, cfg, Deps{})
	if d := h.clk.nextSleep(t); d != time.Minute {
		t.Fatalf("idle for %v, want the scheduled inform in 1m", d)
	}
	h.clk.Advance(time.Minute)
	if d := h.clk.nextSleep(t); d != 240*time.Second {
		t.Fatalf("idle for %v, want the periodic inform in 4m", d)
	}
	ev, _, _ := acs.informOf(1)
	if want := []string{EventScheduled, EventMScheduleInform + "/sk"}; !slices.Equal(ev, want) {
		t.Errorf("scheduled session events %v, want %v", ev, want)
	}
	h.clk.Advance(240 * time.Second)
	h.clk.nextSleep(t)
	if ev, _, _ := acs.informOf(2); !slices.Equal(ev, []string{EventPeriodic}) {
		t.Errorf("periodic session events %v", ev)
	}
}

func TestClientValueChange(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t}
	h := startClient(t, newMemStore(), acs, testConfig(), Deps{})
	h.clk.nextSleep(t)
	tr := h.c.Tree()
	if err := tr.SetAttributes([]SetParameterAttributesStruct{
		{Name: "Device.DeviceInfo.ProvisioningCode", NotificationChange: true, Notification: 2},
		{Name: "Device.ManagementServer.PeriodicInformInterval", NotificationChange: true, Notification: 1},
	}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetLocal("Device.ManagementServer.PeriodicInformInterval", "77"); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetLocal("Device.DeviceInfo.ProvisioningCode", "PC1"); err != nil {
		t.Fatal(err)
	}
	h.clk.nextSleep(t)
	ev, params, _ := acs.informOf(1)
	if !slices.Equal(ev, []string{EventValueChange}) || !slices.Contains(params, "Device.DeviceInfo.ProvisioningCode=PC1") ||
		!slices.Contains(params, "Device.ManagementServer.PeriodicInformInterval=77") {
		t.Errorf("value change inform: %v %v", ev, params)
	}
	if len(tr.PendingNotifications()) != 0 {
		t.Error("notifications not acknowledged")
	}
}

// waitReboots polls the hooks until n reboots happened.
func (h *harness) waitReboots(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.hooks.mu.Lock()
		got := h.hooks.reboots
		h.hooks.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reboots, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientDownloadAndUpload(t *testing.T) {
	cwmpschema.Tool(t)
	store := newMemStore()
	acs := &fakeACS{t: t, script: []string{
		`<cwmp:Download><CommandKey>dk</CommandKey><FileType>1 Firmware Upgrade Image</FileType><URL>http://files.test/fw.bin</URL><Username></Username><Password></Password><FileSize>0</FileSize><TargetFileName></TargetFileName><DelaySeconds>0</DelaySeconds><SuccessURL></SuccessURL><FailureURL></FailureURL></cwmp:Download>`,
		`<cwmp:Download><CommandKey>bad</CommandKey><FileType>3 Vendor Configuration File</FileType><URL>http://fail.test/c</URL><Username></Username><Password></Password><FileSize>0</FileSize><TargetFileName></TargetFileName><DelaySeconds>30</DelaySeconds><SuccessURL></SuccessURL><FailureURL></FailureURL></cwmp:Download>`,
		`<cwmp:Upload><CommandKey>uk</CommandKey><FileType>2 Vendor Log File</FileType><URL>http://files.test/up</URL><Username></Username><Password></Password><DelaySeconds>0</DelaySeconds></cwmp:Upload>`,
		`<cwmp:GetQueuedTransfers/>`,
	}}
	h := startClient(t, store, acs, testConfig(), Deps{})
	// The firmware is fetched and applied after the session, then the
	// device reboots; nothing else happens before the reboot.
	h.waitReboots(t, 1)
	h.stop()
	acs.mu.Lock()
	queued := acs.exchanges[0][len(acs.exchanges[0])-1].msg.(VendorMessage)
	sessions := acs.sessions
	acs.mu.Unlock()
	if len(queued.Fields[0].Children) != 3 || sessions != 1 {
		t.Errorf("GetQueuedTransfers listed %+v; %d sessions before the reboot", queued.Fields, sessions)
	}
	if !slices.Equal(h.hooks.firmwareData, []string{"image:http://files.test/fw.bin"}) || len(h.xfer.uploads) != 0 {
		t.Errorf("firmware %v uploads %v", h.hooks.firmwareData, h.xfer.uploads)
	}

	// After the boot: the queued upload runs, and the Inform reports both
	// transfers with 1 BOOT; the delayed download still waits.
	acs2 := &fakeACS{t: t}
	h2 := startClient(t, store, acs2, testConfig(), Deps{})
	d := h2.clk.nextSleep(t)
	if !slices.Equal(h2.xfer.uploads, []string{"http://files.test/up=log"}) {
		t.Errorf("uploads after boot %v", h2.xfer.uploads)
	}
	ev, _, _ := acs2.informOf(0)
	if want := []string{EventBoot, EventTransferComplete, EventMDownload + "/dk", EventMUpload + "/uk"}; !slices.Equal(ev, want) {
		t.Errorf("boot session events %v, want %v", ev, want)
	}
	if m := acs2.methods(0); !slices.Equal(m, []string{"Inform", "TransferComplete", "TransferComplete", ""}) {
		t.Errorf("boot session sent %v", m)
	}
	if d != 30*time.Second {
		t.Errorf("idle %v, want the delayed download in 30s", d)
	}
	h2.clk.Advance(d)
	h2.clk.nextSleep(t)
	acs2.mu.Lock()
	tc := acs2.exchanges[1][1].msg.(VendorMessage)
	acs2.mu.Unlock()
	if tc.Name != "TransferComplete" || tc.Fields[0].Value != "bad" || tc.Fields[1].Children[0].Value != "9015" {
		t.Errorf("failed download reported as %+v", tc)
	}
	if n := len(h2.c.events.Transfers()); n != 0 {
		t.Errorf("%d transfer records left after acknowledgement", n)
	}
}

func TestClientConnectionRequest(t *testing.T) {
	cwmpschema.Tool(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acs := &fakeACS{t: t}
	cfg := testConfig()
	cfg.ConnectionRequest = ConnReqConfig{Path: "/cr", Username: "acs", Password: "pw"}
	cfg.ConnectionRequestHost = "127.0.0.1"
	h := startClient(t, newMemStore(), acs, cfg, Deps{ConnReqListener: ln})
	h.clk.nextSleep(t)
	_, params, _ := acs.informOf(0)
	crURL := "http://" + ln.Addr().String() + "/cr"
	if !slices.Contains(params, "Device.ManagementServer.ConnectionRequestURL="+crURL) {
		t.Fatalf("ConnectionRequestURL not reported: %v", params)
	}
	get := func(user, pass string) int {
		cl := &http.Client{Transport: &digest.Transport{Username: user, Password: pass}, Timeout: 5 * time.Second}
		resp, err := cl.Get(crURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("acs", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("bad credentials: HTTP %d", code)
	}
	if code := get("acs", "pw"); code != http.StatusOK {
		t.Fatalf("good credentials: HTTP %d", code)
	}
	h.clk.nextSleep(t)
	if ev, _, _ := acs.informOf(1); !slices.Equal(ev, []string{EventConnectionRequest}) {
		t.Errorf("connection request session events %v", ev)
	}
}

func TestClientACSURLChangeBootstraps(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t, script: []string{
		`<cwmp:SetParameterValues><ParameterList soapenc:arrayType="cwmp:ParameterValueStruct[1]"><ParameterValueStruct><Name>Device.ManagementServer.URL</Name><Value>https://new-acs.test/cwmp</Value></ParameterValueStruct></ParameterList><ParameterKey>u</ParameterKey></cwmp:SetParameterValues>`,
	}}
	h := startClient(t, newMemStore(), acs, testConfig(), Deps{})
	h.clk.nextSleep(t)
	ev, _, _ := acs.informOf(1)
	acs.mu.Lock()
	urls := slices.Clone(acs.urls)
	acs.mu.Unlock()
	if !slices.Equal(urls, []string{"http://acs.test/cwmp", "https://new-acs.test/cwmp"}) || !slices.Equal(ev, []string{EventBootstrap}) {
		t.Errorf("after the URL change: sessions to %v, events %v", urls, ev)
	}
}

func TestClientVendorRPC(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t, vendorAnswer: "Stats_IP_Change_Report_Resp"}
	h := startClient(t, newMemStore(), acs, testConfig(), Deps{})
	h.clk.nextSleep(t)
	got := make(chan Message, 1)
	err := h.c.SendVendor(VendorMessage{Name: "Stats_IP_Change_Report", Fields: []Field{{Name: "IPv6Prefix", Value: "2001:db8::/48"}}}, func(m Message) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	h.clk.nextSleep(t)
	select {
	case m := <-got:
		if v, ok := m.(VendorMessage); !ok || v.Name != "Stats_IP_Change_Report_Resp" {
			t.Errorf("answer %#v", m)
		}
	default:
		t.Fatal("vendor RPC not answered")
	}
	if m := acs.methods(1); !slices.Equal(m, []string{"Inform", "Stats_IP_Change_Report", ""}) {
		t.Errorf("session sent %v", m)
	}
	if err := h.c.SendVendor(VendorMessage{Name: "bad name"}, nil); err == nil {
		t.Error("invalid vendor name accepted")
	}
}

func TestNewRejectsBadDeps(t *testing.T) {
	if _, err := New(testConfig(), Deps{}); err == nil {
		t.Error("missing store and hooks accepted")
	}
	_, err := New(testConfig(), Deps{Store: newMemStore(), Hooks: &fakeHooks{}, Info: DeviceInfo{ManufacturerOUI: "zz"}})
	if err == nil || !strings.Contains(err.Error(), `"zz"`) {
		t.Errorf("bad OUI: %v", err)
	}
}

func TestPeriodicNext(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ms   managementServer
		now  time.Time
		want time.Time
	}{
		{managementServer{}, base, time.Time{}},
		{managementServer{PeriodicEnable: true, PeriodicInterval: time.Hour}, base, base.Add(time.Hour)},
		{managementServer{PeriodicEnable: true, PeriodicInterval: time.Hour, PeriodicTime: base.Add(90 * time.Minute)}, base, base.Add(30 * time.Minute)},
		{managementServer{PeriodicEnable: true, PeriodicInterval: time.Hour, PeriodicTime: base.Add(-10 * time.Minute)}, base, base.Add(50 * time.Minute)},
		{managementServer{PeriodicEnable: true, PeriodicInterval: time.Hour, PeriodicTime: base}, base, base.Add(time.Hour)},
	} {
		if got := periodicNext(tc.ms, tc.now); !got.Equal(tc.want) {
			t.Errorf("periodicNext(%+v) = %v, want %v", tc.ms, got, tc.want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	var cfg Config
	in := `
url: https://acs.example/cwmp
username: cpe
password: pw
ca_bundle: /etc/ssl/acs.pem
periodic_inform_enable: true
periodic_inform_interval: 15m
retry_minimum_wait: 10
connection_request:
  addr: ":7547"
  path: /cr
  username: acs
  password: crpw
connection_request_host: 2001:db8::1
transfer:
  work_dir: /tmp
  max_size: 1048576
cwmp_version: "1-0"
`
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "https://acs.example/cwmp" || cfg.CABundle != "/etc/ssl/acs.pem" || !cfg.PeriodicInformEnable ||
		cfg.PeriodicInformInterval != 15*time.Minute || cfg.RetryMinimumWait != 10 || cfg.ConnectionRequest.Addr != ":7547" ||
		cfg.ConnectionRequest.Password != "crpw" || cfg.ConnectionRequestHost != "2001:db8::1" || cfg.Transfer.MaxSize != 1<<20 || cfg.CWMPVersion != "1-0" {
		t.Errorf("decoded %+v", cfg)
	}
}

func TestClientCWMP10(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t, ns: NS10, script: []string{`<cwmp:GetParameterValues><ParameterNames soapenc:arrayType="xsd:string[1]"><string>Device.ManagementServer.</string></ParameterNames></cwmp:GetParameterValues>`}}
	cfg := testConfig()
	cfg.CWMPVersion = "1-0"
	h := startClient(t, newMemStore(), acs, cfg, Deps{})
	h.clk.nextSleep(t)
	acs.mu.Lock()
	defer acs.mu.Unlock()
	for _, e := range acs.exchanges[0] {
		if e.method != "" && e.ns != NS10 {
			t.Errorf("%s sent in %s, want %s", e.method, e.ns, NS10)
		}
	}
}

func TestClientActiveNotificationThrottle(t *testing.T) {
	cwmpschema.Tool(t)
	acs := &fakeACS{t: t, script: []string{
		`<cwmp:SetParameterValues><ParameterList soapenc:arrayType="cwmp:ParameterValueStruct[1]"><ParameterValueStruct><Name>Device.ManagementServer.DefaultActiveNotificationThrottle</Name><Value xsi:type="xsd:unsignedInt">600</Value></ParameterValueStruct></ParameterList><ParameterKey>t</ParameterKey></cwmp:SetParameterValues>`,
		`<cwmp:SetParameterAttributes><ParameterList soapenc:arrayType="cwmp:SetParameterAttributesStruct[1]"><SetParameterAttributesStruct><Name>Device.DeviceInfo.ProvisioningCode</Name><NotificationChange>1</NotificationChange><Notification>2</Notification><AccessListChange>0</AccessListChange><AccessList soapenc:arrayType="xsd:string[0]"></AccessList></SetParameterAttributesStruct></ParameterList></cwmp:SetParameterAttributes>`,
	}}
	h := startClient(t, newMemStore(), acs, testConfig(), Deps{})
	h.clk.nextSleep(t)
	tr := h.c.Tree()
	if err := tr.SetLocal("Device.DeviceInfo.ProvisioningCode", "A"); err != nil {
		t.Fatal(err)
	}
	h.clk.nextSleep(t) // first change: a session at once
	if err := tr.SetLocal("Device.DeviceInfo.ProvisioningCode", "B"); err != nil {
		t.Fatal(err)
	}
	d := h.clk.nextSleep(t)
	if acs.sessions != 2 || d != 600*time.Second {
		t.Fatalf("second change inside the throttle: %d sessions, idle %v; want 2 and 10m", acs.sessions, d)
	}
	h.clk.Advance(d)
	h.clk.nextSleep(t)
	ev, params, _ := acs.informOf(2)
	if !slices.Equal(ev, []string{EventValueChange}) || !slices.Contains(params, "Device.DeviceInfo.ProvisioningCode=B") {
		t.Errorf("throttled session: %v %v", ev, params)
	}
}

func TestClientEnableCWMPFalse(t *testing.T) {
	acs := &fakeACS{t: t}
	c, err := New(testConfig(), Deps{Store: newMemStore(), Hooks: &fakeHooks{}, Info: DeviceInfo{ManufacturerOUI: "00AABB"}})
	if err != nil {
		t.Fatal(err)
	}
	c.dial = acs.dial
	if err := c.Tree().SetLocal("Device.ManagementServer.EnableCWMP", "false"); err != nil {
		t.Fatal(err)
	}
	if err := c.session(context.Background()); !errors.Is(err, errNoACS) || acs.sessions != 0 {
		t.Errorf("EnableCWMP false: %v, %d sessions", err, acs.sessions)
	}
}
