package cwmpclient

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// newLoopbackClient builds a Client (not running) whose sessions go to
// the ACS double over real HTTP on loopback.
func newLoopbackClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, Deps{
		Store: newMemStore(), Hooks: &fakeHooks{},
		Info:   DeviceInfo{Manufacturer: "Acme", ManufacturerOUI: "00AABB", ProductClass: "SRv6CPE", SerialNumber: "SN1", SoftwareVersion: "1.0"},
		Logger: zaptest.NewLogger(t),
		Interfaces: func() []IPInterface {
			return []IPInterface{{Index: 2, Name: "wan", Status: "Up", IPv6Addresses: []string{"2001:db8::2"}, IPv6Prefixes: []string{"2001:db8:2::/48"}}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkDoubleSession fails on any protocol violation the double saw and
// schema-validates every message the CPE sent.
func checkDoubleSession(t *testing.T, s cwmptest.Session) {
	t.Helper()
	for _, v := range s.Violations {
		t.Errorf("session %d: %s", s.Index, v)
	}
	for _, m := range s.Messages {
		if len(m.Raw) > 0 {
			mustValidate(t, m.Raw)
		}
	}
}

func TestSessionAgainstDouble(t *testing.T) {
	cwmpschema.Tool(t)
	acs := cwmptest.NewServer(t, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "pw"), cwmptest.WithCookie("sid"))
	acs.Enqueue(
		cwmptest.GetParameterNames("Device.ManagementServer.", true),
		cwmptest.GetParameterValues("Device.IP.Interface.2.IPv6Prefix.1.Prefix", "Device.ManagementServer.Password"),
		cwmptest.SetParameterValues("k1", cwmptest.ParameterValue{Name: "Device.ManagementServer.PeriodicInformInterval", Value: "120", Type: "unsignedInt"}),
		cwmptest.SetParameterValues("k2", cwmptest.ParameterValue{Name: "Device.DeviceInfo.UpTime", Value: "1"}),
		cwmptest.GetParameterAttributes("Device.DeviceInfo."),
		cwmptest.Vendor("X_Nope"),
		cwmptest.GetRPCMethods(),
	)
	cfg := testConfig()
	cfg.URL, cfg.Username, cfg.Password = acs.URL, "cpe", "pw"
	c := newLoopbackClient(t, cfg)
	if err := c.session(context.Background()); err != nil {
		t.Fatal(err)
	}
	ss := acs.Sessions()
	if len(ss) != 1 || !ss[0].Ended {
		t.Fatalf("sessions %+v", ss)
	}
	s := ss[0]
	checkDoubleSession(t, s)
	if s.Conns != 1 {
		t.Errorf("session used %d TCP connections, want 1", s.Conns)
	}
	if !s.Inform.HasEvent(EventBootstrap) {
		t.Errorf("first contact without 0 BOOTSTRAP: %+v", s.Inform.Events)
	}
	var got []string
	for _, m := range s.Messages {
		got = append(got, m.Method)
	}
	want := []string{"Inform", "GetRPCMethods", "", "GetParameterNamesResponse", "GetParameterValuesResponse",
		"SetParameterValuesResponse", "Fault", "GetParameterAttributesResponse", "Fault", "GetRPCMethodsResponse"}
	if !slices.Equal(got, want) {
		t.Errorf("CPE sent %q\nwant %q", got, want)
	}
	gpv := string(s.Messages[4].Raw)
	if !strings.Contains(gpv, "2001:db8:2::/48") || !strings.Contains(gpv, `<Name>Device.ManagementServer.Password</Name><Value xsi:type="xsd:string"></Value>`) {
		t.Errorf("GPV response: %s", gpv)
	}
	if ms := readManagementServer(c.Tree()); ms.PeriodicInterval != 2*time.Minute || c.Tree().ParameterKey() != "k1" {
		t.Errorf("SPV not applied: %+v key %q", ms, c.Tree().ParameterKey())
	}
	if f := string(s.Messages[6].Raw); !strings.Contains(f, "<FaultCode>9008</FaultCode>") {
		t.Errorf("read-only SPV answer: %s", f)
	}
}

func TestSessionTLSTrust(t *testing.T) {
	cwmpschema.Tool(t)
	acs := cwmptest.NewServer(t, cwmptest.WithTLS())
	cfg := testConfig()
	cfg.URL = acs.URL

	// Without the ACS's CA the handshake fails: no session at all.
	c := newLoopbackClient(t, cfg)
	if err := c.session(context.Background()); err == nil {
		t.Fatal("session with an untrusted certificate succeeded")
	}
	if n := len(acs.Sessions()); n != 0 {
		t.Fatalf("%d sessions reached the ACS through a bad certificate", n)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, acs.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CABundle = ca
	c = newLoopbackClient(t, cfg)
	if err := c.session(context.Background()); err != nil {
		t.Fatal(err)
	}
	ss := acs.Sessions()
	if len(ss) != 1 || !ss[0].Ended {
		t.Fatalf("sessions %+v", ss)
	}
	checkDoubleSession(t, ss[0])
}

func TestSessionACSGenieFault(t *testing.T) {
	cwmpschema.Tool(t)
	acs := cwmptest.NewServer(t, cwmptest.WithGenieACSFaults(), cwmptest.WithHook(func(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
		if m.Method == "Inform" {
			return &cwmptest.Reply{Fault: 8005}
		}
		return nil
	}))
	cfg := testConfig()
	cfg.URL = acs.URL
	c := newLoopbackClient(t, cfg)
	err := c.session(context.Background())
	if err == nil || !strings.Contains(err.Error(), "8005") {
		t.Fatalf("ACS fault 8005 to the Inform: %v", err)
	}
	if ev := c.events.Pending(); !slices.ContainsFunc(ev, func(e EventStruct) bool { return e.Code == EventBootstrap }) {
		t.Errorf("events dropped after a failed Inform: %v", ev)
	}
}

// BenchmarkSession is one full session on loopback against the double:
// Inform, InformResponse, empty POST, GetParameterValues of the whole tree
// (2,000+ parameters) and its answer, 204. "inform-only" is the anchor:
// the same session without the GetParameterValues.
func BenchmarkSession(b *testing.B) {
	b.Run("inform-only", func(b *testing.B) { benchSession(b, false) })
	b.Run("gpv-whole-tree", func(b *testing.B) { benchSession(b, true) })
}

func benchSession(b *testing.B, gpv bool) {
	acs := cwmptest.NewServer(nil, cwmptest.WithSessionLimit(1))
	defer acs.Close()
	cfg := testConfig()
	cfg.URL = acs.URL
	c := newLoopbackClient(b, cfg)
	c.log = zap.NewNop()
	addBenchRows(b, c.Tree())
	ctx := context.Background()
	if err := c.session(ctx); err != nil { // bootstrap session
		b.Fatal(err)
	}
	n, _ := c.Tree().GetValues([]string{"Device."})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if gpv {
			acs.Enqueue(cwmptest.GetParameterValues("Device."))
		}
		if err := c.session(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(n)), "params")
}

// TestRunEndToEnd runs the whole client (real clock, real HTTP, real
// connection request server) against the double: the boot session, then
// an ACS-initiated session through a digest-authenticated connection
// request that the ACS URL in the Inform told it about.
func TestRunEndToEnd(t *testing.T) {
	cwmpschema.Tool(t)
	acs := cwmptest.NewServer(t, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "pw"), cwmptest.WithCookie("sid"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.URL, cfg.Username, cfg.Password = acs.URL, "cpe", "pw"
	cfg.ConnectionRequest = ConnReqConfig{Path: "/cr", Username: "acs", Password: "crpw"}
	cfg.ConnectionRequestHost = "127.0.0.1"
	c, err := New(cfg, Deps{
		Store: newMemStore(), Hooks: &fakeHooks{}, ConnReqListener: ln,
		Info:   DeviceInfo{Manufacturer: "Acme", ManufacturerOUI: "00AABB", ProductClass: "SRv6CPE", SerialNumber: "SN1", SoftwareVersion: "1.0"},
		Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wait, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	ss, err := acs.WaitSessions(wait, 1)
	if err != nil {
		t.Fatal(err)
	}
	var crURL string
	for _, p := range ss[0].Inform.Params {
		if p.Name == "Device.ManagementServer.ConnectionRequestURL" {
			crURL = p.Value
		}
	}
	if crURL == "" {
		t.Fatalf("no ConnectionRequestURL in %+v", ss[0].Inform.Params)
	}
	acs.Enqueue(cwmptest.GetParameterValues("Device.DeviceInfo.SoftwareVersion"))
	code, err := cwmptest.ConnectionRequestUntilAccepted(wait, crURL, "acs", "crpw")
	if err != nil || code != http.StatusOK {
		t.Fatalf("connection request: %d %v", code, err)
	}
	ss, err = acs.WaitSessions(wait, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !ss[1].Inform.HasEvent(EventConnectionRequest) || ss[1].Inform.HasEvent(EventBoot) {
		t.Errorf("second session events %+v", ss[1].Inform.Events)
	}
	for _, s := range ss {
		checkDoubleSession(t, s)
	}
	if r := ss[1].Responses(); len(r) != 1 || r[0].Method != "GetParameterValuesResponse" {
		t.Errorf("responses %+v", r)
	}
}
