package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

// stubCPE is a minimal TR-069 CPE: it Informs, answers GPV / SPV /
// AddObject on a flat parameter map and the Stats_* requests, sends queued
// vendor RPCs after the InformResponse, and opens a session on a
// connection request.
type stubCPE struct {
	t      *testing.T
	serial string
	acsURL string
	cr     *httptest.Server
	addr   string

	mu       sync.Mutex
	params   map[string]string
	nextInst int
	outbox   [][2]any // vendor RPCs to send: name, fields
	got      []*etree.Element
	sessions int
	crHits   int
	refuse   int // connection requests to answer 503 (busy) first
}

func newStubCPE(t *testing.T, acsURL, serial, addr string, params map[string]string, nextInst int) *stubCPE {
	s := &stubCPE{t: t, serial: serial, acsURL: acsURL, addr: addr, params: params, nextInst: nextInst}
	s.cr = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.crHits++
		refuse := s.refuse > 0
		if refuse {
			s.refuse--
		}
		s.mu.Unlock()
		if refuse {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		go s.session("6 CONNECTION REQUEST")
	}))
	t.Cleanup(s.cr.Close)
	return s
}

func (s *stubCPE) queueVendor(name string, fields ...[2]string) {
	s.mu.Lock()
	s.outbox = append(s.outbox, [2]any{name, fields})
	s.mu.Unlock()
}

// received returns the requests of method the stub got.
func (s *stubCPE) received(method string) []*etree.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*etree.Element
	for _, e := range s.got {
		if e.Tag == method {
			out = append(out, e)
		}
	}
	return out
}

func envelope(id string, fill func(b *etree.Element)) []byte {
	doc := etree.NewDocument()
	env := doc.CreateElement("soap-env:Envelope")
	env.CreateAttr("xmlns:soap-env", "http://schemas.xmlsoap.org/soap/envelope/")
	env.CreateAttr("xmlns:cwmp", cwmptest.NS12)
	env.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
	env.CreateAttr("xmlns:xsd", "http://www.w3.org/2001/XMLSchema")
	h := env.CreateElement("soap-env:Header").CreateElement("cwmp:ID")
	h.CreateAttr("soap-env:mustUnderstand", "1")
	h.SetText(id)
	fill(env.CreateElement("soap-env:Body"))
	b, _ := doc.WriteToBytes()
	return b
}

func paramList(parent *etree.Element, kv map[string]string) {
	l := parent.CreateElement("ParameterList")
	for k, v := range kv {
		p := l.CreateElement("ParameterValueStruct")
		p.CreateElement("Name").SetText(k)
		p.CreateElement("Value").SetText(v)
	}
}

// session runs one CWMP session; errors fail the test.
func (s *stubCPE) session(event string) {
	s.mu.Lock()
	s.sessions++
	addr := s.addr
	s.mu.Unlock()
	// One connection: the ACS double ties a session to its connection.
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	post := func(body []byte) (*etree.Element, string) {
		resp, err := client.Post(s.acsURL, `text/xml; charset="utf-8"`, bytes.NewReader(body))
		if err != nil {
			s.t.Errorf("stub %s: POST: %v", s.serial, err)
			return nil, ""
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusNoContent || len(raw) == 0 {
			return nil, ""
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(raw); err != nil {
			s.t.Errorf("stub %s: answer %q: %v", s.serial, raw, err)
			return nil, ""
		}
		id := doc.FindElement("//ID")
		el := doc.FindElement("//Body")
		if el == nil || len(el.ChildElements()) != 1 || id == nil {
			s.t.Errorf("stub %s: answer without a method: %s", s.serial, raw)
			return nil, ""
		}
		return el.ChildElements()[0], id.Text()
	}
	inform := envelope("1", func(b *etree.Element) {
		m := b.CreateElement("cwmp:Inform")
		d := m.CreateElement("DeviceId")
		d.CreateElement("Manufacturer").SetText("Stub")
		d.CreateElement("OUI").SetText("00A0C9")
		d.CreateElement("ProductClass").SetText("SRv6-CPE")
		d.CreateElement("SerialNumber").SetText(s.serial)
		ev := m.CreateElement("Event").CreateElement("EventStruct")
		ev.CreateElement("EventCode").SetText(event)
		ev.CreateElement("CommandKey")
		m.CreateElement("MaxEnvelopes").SetText("1")
		m.CreateElement("CurrentTime").SetText(time.Now().UTC().Format(time.RFC3339))
		m.CreateElement("RetryCount").SetText("0")
		paramList(m, map[string]string{
			crURLParam:                             fmt.Sprintf("http://[%s]:%d/", addr, s.cr.Listener.Addr().(*net.TCPAddr).Port),
			srv6Obj + "SupportedServices":          "L3VPN",
			srv6Obj + "Enable":                     "true",
			"Device.DeviceInfo.SoftwareVersion":    "1.0",
			"Device.ManagementServer.ParameterKey": "",
		})
	})
	if m, _ := post(inform); m == nil || m.Tag != "InformResponse" {
		s.t.Errorf("stub %s: Inform not answered with InformResponse", s.serial)
		return
	}
	s.mu.Lock()
	out := s.outbox
	s.outbox = nil
	s.mu.Unlock()
	for i, v := range out {
		name, fields := v[0].(string), v[1].([][2]string)
		m, _ := post(envelope(fmt.Sprint("v", i), func(b *etree.Element) {
			r := b.CreateElement("cwmp:" + name)
			for _, f := range fields {
				r.CreateElement(f[0]).SetText(f[1])
			}
		}))
		if m == nil || m.Tag != name+"Response" {
			s.t.Errorf("stub %s: %s not answered with %sResponse", s.serial, name, name)
		}
	}
	var next []byte // the empty POST first
	for i := 0; i < 50; i++ {
		req, id := post(next)
		if req == nil {
			return
		}
		s.mu.Lock()
		s.got = append(s.got, req.Copy())
		s.mu.Unlock()
		next = envelope(id, func(b *etree.Element) { s.answer(b, req) })
	}
	s.t.Errorf("stub %s: session did not end after 50 requests", s.serial)
}

// answer writes the response to req into the body b.
func (s *stubCPE) answer(b *etree.Element, req *etree.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.Tag {
	case "GetParameterValues":
		vals := map[string]string{}
		for _, n := range req.FindElements("ParameterNames/string") {
			for k, v := range s.params {
				if k == n.Text() || (strings.HasSuffix(n.Text(), ".") && strings.HasPrefix(k, n.Text())) {
					vals[k] = v
				}
			}
		}
		paramList(b.CreateElement("cwmp:GetParameterValuesResponse"), vals)
	case "SetParameterValues":
		for _, p := range req.FindElements("ParameterList/ParameterValueStruct") {
			s.params[p.SelectElement("Name").Text()] = p.SelectElement("Value").Text()
		}
		b.CreateElement("cwmp:SetParameterValuesResponse").CreateElement("Status").SetText("0")
	case "AddObject":
		s.nextInst++
		p := req.SelectElement("ObjectName").Text() + fmt.Sprint(s.nextInst) + "."
		s.params[p+"ServiceID"] = ""
		r := b.CreateElement("cwmp:AddObjectResponse")
		r.CreateElement("InstanceNumber").SetText(fmt.Sprint(s.nextInst))
		r.CreateElement("Status").SetText("0")
	default: // Stats_*
		b.CreateElement("cwmp:" + req.Tag + "Response").CreateElement("Status").SetText("0")
	}
}

// startController serves a controller with lab.yaml (no credentials) on
// loopback and returns the ACS URL and the state file.
func startController(t *testing.T) (string, string) {
	t.Helper()
	cfg, err := LoadConfig("lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ACS = Credentials{} // the stub does no digest
	cfg.ConnectionRequest = Credentials{}
	cfg.Monitor[0].MonitorCycle = 1
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := NewController(cfg, statePath, ln.Addr().String(), cwmptest.ConnectionRequest, zaptest.NewLogger(t))
	// The stubs' connection request URLs name their (fake) WAN address;
	// the requests go to loopback.
	c.cr = func(ctx context.Context, u, user, pass string) (int, error) {
		i := strings.LastIndex(u, "]:")
		return cwmptest.ConnectionRequest(ctx, "http://127.0.0.1:"+u[i+2:], user, pass)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, c, zaptest.NewLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + "/acs", statePath
}

func TestControllerScenario(t *testing.T) {
	acsURL, statePath := startController(t)
	// cpe1 has the file's services (end, vpn4, vpn6 on 1..3); cpe2 has none,
	// so the controller creates its two instances.
	cpe1 := newStubCPE(t, acsURL, "LAB-CPE1", "2001:db8:1200::1", map[string]string{
		serviceTable + "1.ServiceID": "end", serviceTable + "2.ServiceID": "vpn4", serviceTable + "3.ServiceID": "vpn6",
		srv6Obj + "IPv6Prefix": "2001:db8:1200::/40", srv6Obj + "Locator.SRv6Locator": "loc1: 2001:db8:1205::/48",
		serviceTable + "2.ServiceSID": "2001:db8:1205:4::", serviceTable + "3.ServiceSID": "2001:db8:1205:6::",
	}, 3)
	cpe2 := newStubCPE(t, acsURL, "LAB-CPE2", "2001:db8:2200::1", map[string]string{srv6Obj + "IPv6Prefix": "2001:db8:2200::/40"}, 0)
	cpe1.session("0 BOOTSTRAP")
	cpe2.session("0 BOOTSTRAP")

	waitState(t, statePath, "the task configured on both", func(s State) bool {
		tk := s.Tasks["lab-cpe1-cpe2"]
		return tk != nil && tk.Config.Sender != "" && tk.Config.Reflector != ""
	})
	st := readState(t, statePath)
	d1, d2 := st.Devices["cpe1"], st.Devices["cpe2"]
	if d1 == nil || d2 == nil || !d1.Configured || !d2.Configured {
		t.Fatalf("devices %+v %+v, want both registered and configured", d1, d2)
	}
	if d1.DeviceID != "00A0C9-SRv6-CPE-LAB-CPE1" || d1.Address != "2001:db8:1200::1" || d1.SupportedServices != "L3VPN" {
		t.Errorf("cpe1 registration %+v", d1)
	}
	if d1.SIDs["vpn4"] != "2001:db8:1205:4::" || d1.Locator != "loc1: 2001:db8:1205::/48" {
		t.Errorf("cpe1 read back SIDs %v locator %q", d1.SIDs, d1.Locator)
	}
	// The SPV: Appendix I names and the services on the right instances.
	cpe1.mu.Lock()
	for name, want := range map[string]string{"LocatorLength": "48", "FunctionLength": "16", srv6Obj + "Extension": "0x5",
		serviceTable + "2.ServiceType": "L3VPN", serviceTable + "2.LANPrefixes": "192.168.1.0/24", serviceTable + "3.Function": "0x6",
		serviceTable + "2.RouteDistinguisher": "65000:1", serviceTable + "3.ImportRT": "65000:100"} {
		if got := cpe1.params[name]; got != want {
			t.Errorf("cpe1 %s = %q, want %q", name, got, want)
		}
	}
	cpe1.mu.Unlock()
	if n := len(cpe2.received("AddObject")); n != 2 {
		t.Errorf("cpe2 got %d AddObjects, want 2", n)
	}
	cpe2.mu.Lock()
	if cpe2.params[serviceTable+"1.ServiceID"] != "vpn4" || cpe2.params[serviceTable+"2.LANPrefixes"] != "2001:db8:2201::/64" {
		t.Errorf("cpe2 services not on its new instances: %v", cpe2.params)
	}
	cpe2.mu.Unlock()

	// §8.3 steps 1-2: the table and the two Stats_Monitor_Config_Req.
	tk := st.Tasks["lab-cpe1-cpe2"]
	if tk.Sender != (TaskEnd{Device: "cpe1", Role: "Sender", LocalIP: "2001:db8:1200::1", PeerIP: "2001:db8:2200::1"}) ||
		tk.Reflector != (TaskEnd{Device: "cpe2", Role: "Reflector", LocalIP: "2001:db8:2200::1", PeerIP: "2001:db8:1200::1"}) {
		t.Errorf("task table %+v", tk)
	}
	wantFields(t, cpe1.received(methodConfig), "cpe1", map[string]string{"MonitorTaskID": "lab-cpe1-cpe2", "Role": "Sender", "PeerIP": "2001:db8:2200::1", "MonitorCycle": "1"})
	wantFields(t, cpe2.received(methodConfig), "cpe2", map[string]string{"MonitorTaskID": "lab-cpe1-cpe2", "Role": "Reflector", "PeerIP": "2001:db8:1200::1"})

	// §8.3 step 3: a report.
	cpe1.queueVendor(methodData, [2]string{"MonitorTaskID", "lab-cpe1-cpe2"}, [2]string{"DeviceID", d1.DeviceID},
		[2]string{"Latency", "0.123"}, [2]string{"Jitter", "0.010"}, [2]string{"PacketLossRate", "0.00"})
	cpe1.session("6 CONNECTION REQUEST")
	st = readState(t, statePath)
	if r := st.Tasks["lab-cpe1-cpe2"].LastReport; r == nil || r.Fields["Latency"] != "0.123" || r.Device != "cpe1" {
		t.Errorf("last report %+v", r)
	}

	// §8.3 steps 6-8: cpe1 renumbered; cpe2 is told, through a connection
	// request.
	hits := cpe2.crHitsNow()
	cpe1.mu.Lock()
	cpe1.addr = "2001:db8:4400::1"
	cpe1.mu.Unlock()
	cpe1.queueVendor(methodIPChg, [2]string{"MonitorTaskID", "lab-cpe1-cpe2"}, [2]string{"DeviceID", d1.DeviceID},
		[2]string{"OldIP", "2001:db8:1200::1"}, [2]string{"NewIP", "2001:db8:4400::1"},
		[2]string{"ChangeTimestamp", "2026-01-01T00:00:00Z"}, [2]string{"EventCode", "IP_CHANGE"})
	cpe1.session("4 VALUE CHANGE")
	waitState(t, statePath, "the update answered", func(s State) bool {
		return len(s.IPChanges) == 1 && s.IPChanges[0].UpdateAnswerAt != nil
	})
	st = readState(t, statePath)
	ev := st.IPChanges[0]
	if ev.Device != "cpe1" || ev.OldIP != "2001:db8:1200::1" || ev.NewIP != "2001:db8:4400::1" || ev.UpdateTo != "cpe2" || ev.Problem != "" ||
		ev.UpdateAnswer != "Stats_Monitor_Update_ReqResponse Status 0" {
		t.Errorf("IP change event %+v", ev)
	}
	if cpe2.crHitsNow() <= hits {
		t.Error("no connection request to cpe2 for the update")
	}
	wantFields(t, cpe2.received(methodUpdate), "cpe2", map[string]string{"MonitorTaskID": "lab-cpe1-cpe2", "UpdatedPeerIP": "2001:db8:4400::1"})
	if n := len(cpe1.received(methodUpdate)); n != 0 {
		t.Errorf("cpe1, the reporter, got %d updates", n)
	}
	tk = st.Tasks["lab-cpe1-cpe2"]
	if tk.Sender.LocalIP != "2001:db8:4400::1" || tk.Reflector.PeerIP != "2001:db8:4400::1" || tk.Updates != 1 {
		t.Errorf("table after the change %+v", tk)
	}
	if st.Devices["cpe1"].Address != "2001:db8:4400::1" {
		t.Errorf("cpe1 address %q after the change", st.Devices["cpe1"].Address)
	}

	// A report naming an address the table does not have is recorded as a
	// problem, and the update still goes out.
	cpe1.queueVendor(methodIPChg, [2]string{"MonitorTaskID", "lab-cpe1-cpe2"}, [2]string{"OldIP", "2001:db8:9999::1"},
		[2]string{"NewIP", "2001:db8:1200::1"})
	cpe1.session("4 VALUE CHANGE")
	waitState(t, statePath, "the second update answered", func(s State) bool {
		return len(s.IPChanges) == 2 && s.IPChanges[1].UpdateAnswerAt != nil
	})
	if ev := readState(t, statePath).IPChanges[1]; !strings.Contains(ev.Problem, "2001:db8:9999::1") {
		t.Errorf("mismatched OldIP not flagged: %+v", ev)
	}
}

func (s *stubCPE) crHitsNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crHits
}

func wantFields(t *testing.T, reqs []*etree.Element, who string, want map[string]string) {
	t.Helper()
	if len(reqs) != 1 {
		t.Errorf("%s got %d requests, want 1", who, len(reqs))
		return
	}
	for k, v := range want {
		if e := reqs[0].SelectElement(k); e == nil || e.Text() != v {
			t.Errorf("%s: %s field %s missing or not %q", who, reqs[0].Tag, k, v)
		}
	}
}

func readState(t *testing.T, path string) State {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("state %s: %v", path, err)
	}
	return s
}

func waitState(t *testing.T, path, what string, ok func(State) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			var s State
			if json.Unmarshal(b, &s) == nil && ok(s) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s: not within 10s; state:\n%s", what, b)
}

// A CPE busy in a session answers a connection request 503: the
// controller asks again until the CPE comes.
func TestControllerRetriesRefusedConnectionRequest(t *testing.T) {
	acsURL, statePath := startController(t)
	cpe1 := newStubCPE(t, acsURL, "LAB-CPE1", "2001:db8:1200::1", map[string]string{}, 0)
	cpe2 := newStubCPE(t, acsURL, "LAB-CPE2", "2001:db8:2200::1", map[string]string{}, 0)
	cpe1.refuse = 2
	cpe1.session("1 BOOT")
	// cpe2's configuration completes the task; cpe1 is asked for a session.
	cpe2.session("1 BOOT")
	waitState(t, statePath, "the sender configured", func(s State) bool {
		tk := s.Tasks["lab-cpe1-cpe2"]
		return tk != nil && tk.Config.Sender != ""
	})
	if hits := cpe1.crHitsNow(); hits != 3 {
		t.Errorf("cpe1 got %d connection requests, want 3 (two refused)", hits)
	}
}
