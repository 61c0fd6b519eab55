package cwmptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/icholy/digest"

	"github.com/srv6cpe/srv6cpe/cwmpclient/internal/httpdigest"
	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// miniCPE is a hand-written CPE: enough HTTP and SOAP to drive the double.
type miniCPE struct {
	t   *testing.T
	url string
	c   *http.Client
	ns  string
}

func newMiniCPE(t *testing.T, url string, rt http.RoundTripper) *miniCPE {
	jar, _ := cookiejar.New(nil)
	if rt == nil {
		rt = &http.Transport{MaxConnsPerHost: 1}
	}
	return &miniCPE{t: t, url: url, c: &http.Client{Transport: rt, Jar: jar, Timeout: 5 * time.Second}, ns: NS10}
}

func (c *miniCPE) post(body string) (int, Message) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, parseMessage(raw)
}

func (c *miniCPE) envelope(id, inner string) string {
	return `<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="` + c.ns + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soap:Header><cwmp:ID soap:mustUnderstand="1">` + id + `</cwmp:ID></soap:Header>
<soap:Body>` + inner + `</soap:Body></soap:Envelope>`
}

func (c *miniCPE) inform(events ...string) string {
	var ev strings.Builder
	for _, e := range events {
		code, key, _ := strings.Cut(e, "|")
		fmt.Fprintf(&ev, "<EventStruct><EventCode>%s</EventCode><CommandKey>%s</CommandKey></EventStruct>", code, key)
	}
	return c.envelope("cpe-1", `<cwmp:Inform><DeviceId><Manufacturer>ACME</Manufacturer><OUI>00D09E</OUI>
<ProductClass>SDWAN</ProductClass><SerialNumber>SN1</SerialNumber></DeviceId>
<Event>`+ev.String()+`</Event><MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2026-11-21T12:00:00Z</CurrentTime><RetryCount>0</RetryCount>
<ParameterList><ParameterValueStruct><Name>Device.DeviceInfo.SoftwareVersion</Name><Value xsi:type="xsd:string">1.0</Value></ParameterValueStruct></ParameterList>
</cwmp:Inform>`)
}

func waitSessions(t *testing.T, s *Server, n int) []Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := s.WaitSessions(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSessionFlow(t *testing.T) {
	s := NewServer(t, WithCookie("session"))
	s.Enqueue(GetParameterValues("Device.DeviceInfo."), Reboot("rb1"))
	cpe := newMiniCPE(t, s.URL, nil)

	code, resp := cpe.post(cpe.inform("1 BOOT", "M Reboot|k0"))
	if code != 200 || resp.Method != "InformResponse" || resp.ID != "cpe-1" || resp.Text("MaxEnvelopes") != "1" {
		t.Fatalf("InformResponse: %d %s id=%q %s", code, resp.Method, resp.ID, resp.Raw)
	}
	code, req := cpe.post("")
	if code != 200 || req.Method != "GetParameterValues" || req.ID == "" {
		t.Fatalf("after the empty POST: %d %s", code, req.Raw)
	}
	_, req2 := cpe.post(cpe.envelope(req.ID, `<cwmp:GetParameterValuesResponse><ParameterList>
<ParameterValueStruct><Name>Device.DeviceInfo.SerialNumber</Name><Value xsi:type="xsd:string">SN1</Value></ParameterValueStruct>
</ParameterList></cwmp:GetParameterValuesResponse>`))
	if req2.Method != "Reboot" || req2.Text("CommandKey") != "rb1" {
		t.Fatalf("second request %s", req2.Raw)
	}
	code, _ = cpe.post(cpe.envelope(req2.ID, `<cwmp:RebootResponse/>`))
	if code != 204 {
		t.Fatalf("end of session: %d", code)
	}
	sess := waitSessions(t, s, 1)[0]
	if len(sess.Violations) != 0 {
		t.Fatalf("violations %v", sess.Violations)
	}
	if sess.DeviceID() != (DeviceID{"ACME", "00D09E", "SDWAN", "SN1"}) || !sess.Inform.HasEvent("M Reboot") ||
		sess.Inform.Events[1].CommandKey != "k0" || sess.Inform.Params[0].Type != "string" {
		t.Fatalf("inform %+v", sess.Inform)
	}
	if len(sess.Messages) != 4 || sess.Conns != 1 || s.Connections() != 1 {
		t.Fatalf("%d messages over %d conns (%d total)", len(sess.Messages), sess.Conns, s.Connections())
	}
	if v := sess.Responses()[0].Values(); v["Device.DeviceInfo.SerialNumber"] != "SN1" {
		t.Fatalf("GPV response values %v", v)
	}
	if s.Queued() != 0 {
		t.Fatalf("%d requests left", s.Queued())
	}
}

func TestViolations(t *testing.T) {
	s := NewServer(t, WithCookie("session"))
	s.Enqueue(GetRPCMethods(), AddObject("Device.X.", "k"))
	cpe := newMiniCPE(t, s.URL, nil)
	cpe.post(cpe.inform("6 CONNECTION REQUEST"))
	cpe.c.Jar, _ = cookiejar.New(nil) // forget the session cookie
	cpe.post("")                      // GetRPCMethods
	cpe.post(cpe.envelope("wrong-id", `<cwmp:GetRPCMethodsResponse><MethodList/></cwmp:GetRPCMethodsResponse>`))
	cpe.post("") // AddObject is pending
	sess := s.Sessions()[0]
	want := []string{"session cookie", "carries ID", "empty POST while AddObject"}
	for _, w := range want {
		found := false
		for _, v := range sess.Violations {
			found = found || strings.Contains(v, w)
		}
		if !found {
			t.Errorf("no violation about %q in %v", w, sess.Violations)
		}
	}
}

func TestOrphanPost(t *testing.T) {
	s := NewServer(t)
	cpe := newMiniCPE(t, s.URL, nil)
	if code, _ := cpe.post(""); code != 400 {
		t.Fatalf("empty POST without Inform: %d", code)
	}
	if o := s.Orphans(); len(o) != 1 || len(s.Sessions()) != 0 {
		t.Fatalf("orphans %v sessions %d", o, len(s.Sessions()))
	}
}

func TestAuth(t *testing.T) {
	for _, mode := range []AuthMode{AuthBasic, AuthDigest} {
		s := NewServer(t, WithAuth(mode, "cpe", "pw"))
		anon := newMiniCPE(t, s.URL, nil)
		if code, _ := anon.post(anon.inform("1 BOOT")); code != 401 {
			t.Fatalf("mode %d without credentials: %d", mode, code)
		}
		var rt http.RoundTripper = &digest.Transport{Username: "cpe", Password: "pw"}
		if mode == AuthBasic {
			rt = basicRT{"cpe", "pw"}
		}
		cpe := newMiniCPE(t, s.URL, rt)
		if code, resp := cpe.post(cpe.inform("1 BOOT")); code != 200 || resp.Method != "InformResponse" {
			t.Fatalf("mode %d with credentials: %d", mode, code)
		}
		if code, _ := cpe.post(""); code != 204 {
			t.Fatalf("mode %d empty POST: %d", mode, code)
		}
		if len(s.Sessions()) != 1 || s.Challenges() < 1 {
			t.Fatalf("mode %d: %d sessions, %d challenges", mode, len(s.Sessions()), s.Challenges())
		}
	}
}

type basicRT struct{ u, p string }

func (b basicRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.u, b.p)
	return http.DefaultTransport.RoundTrip(r)
}

func TestNamespaces(t *testing.T) {
	s := NewServer(t)
	cpe := newMiniCPE(t, s.URL, nil)
	cpe.ns = NS12
	_, resp := cpe.post(cpe.inform("2 PERIODIC"))
	if resp.Namespace != NS12 {
		t.Fatalf("answered a cwmp-1-2 Inform in %q", resp.Namespace)
	}
	fixed := NewServer(t, WithNamespace(NS10))
	cpe2 := newMiniCPE(t, fixed.URL, nil)
	cpe2.ns = NS12
	if _, resp := cpe2.post(cpe2.inform("2 PERIODIC")); resp.Namespace != NS10 {
		t.Fatalf("fixed namespace: %q", resp.Namespace)
	}
}

func TestHookFaultsAndClose(t *testing.T) {
	for _, genie := range []bool{false, true} {
		opts := []Option{WithHook(func(s Session, m Message) *Reply {
			if m.Method == "Inform" && s.Index == 0 {
				return &Reply{Fault: 8005}
			}
			if m.Method == "Inform" && s.Index == 1 {
				return &Reply{Close: true}
			}
			return nil
		})}
		if genie {
			opts = append(opts, WithGenieACSFaults())
		}
		s := NewServer(t, opts...)
		cpe := newMiniCPE(t, s.URL, nil)
		code, resp := cpe.post(cpe.inform("1 BOOT"))
		if code != 500 || !bytes.Contains(resp.Raw, []byte("<FaultCode>8005</FaultCode>")) {
			t.Fatalf("fault reply: %d %s", code, resp.Raw)
		}
		if got := bytes.Contains(resp.Raw, []byte("soap-env:Body:Fault")); got != genie {
			t.Fatalf("GenieACS form %v, want %v: %s", got, genie, resp.Raw)
		}
		req, _ := http.NewRequest("POST", s.URL, strings.NewReader(cpe.inform("1 BOOT")))
		if _, err := cpe.c.Do(req); err == nil {
			t.Fatal("the connection was not closed")
		}
	}
}

func TestCPERequests(t *testing.T) {
	s := NewServer(t)
	cpe := newMiniCPE(t, s.URL, nil)
	cpe.post(cpe.inform("7 TRANSFER COMPLETE", "M Download|dl"))
	_, tc := cpe.post(cpe.envelope("tc1", `<cwmp:TransferComplete><CommandKey>dl</CommandKey>
<FaultStruct><FaultCode>0</FaultCode><FaultString></FaultString></FaultStruct>
<StartTime>2026-11-21T12:00:00Z</StartTime><CompleteTime>2026-11-21T12:01:00Z</CompleteTime></cwmp:TransferComplete>`))
	if tc.Method != "TransferCompleteResponse" || tc.ID != "tc1" {
		t.Fatalf("TransferComplete answered with %s", tc.Raw)
	}
	_, rpc := cpe.post(cpe.envelope("m1", `<cwmp:GetRPCMethods/>`))
	if rpc.Method != "GetRPCMethodsResponse" || !strings.Contains(string(rpc.Raw), "<string>Inform</string>") {
		t.Fatalf("GetRPCMethods answered with %s", rpc.Raw)
	}
	_, f := cpe.post(cpe.envelope("v1", `<cwmp:X_Unknown/>`))
	if code, _ := f.Fault(); code != 8000 {
		t.Fatalf("unknown CPE request answered with %s", f.Raw)
	}
	if code, _ := cpe.post(""); code != 204 {
		t.Fatalf("end: %d", code)
	}
}

func TestCPEFaultParsing(t *testing.T) {
	s := NewServer(t)
	s.Enqueue(SetParameterValues("k", ParameterValue{Name: "Device.A", Value: "x"}))
	cpe := newMiniCPE(t, s.URL, nil)
	cpe.post(cpe.inform("1 BOOT"))
	_, req := cpe.post("")
	cpe.post(cpe.envelope(req.ID, `<soap:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring><detail>
<cwmp:Fault><FaultCode>9003</FaultCode><FaultString>Invalid arguments</FaultString>
<SetParameterValuesFault><ParameterName>Device.A</ParameterName><FaultCode>9008</FaultCode><FaultString>ro</FaultString></SetParameterValuesFault>
</cwmp:Fault></detail></soap:Fault>`))
	sess := waitSessions(t, s, 1)[0]
	m := sess.Responses()[0]
	if code, _ := m.Fault(); code != 9003 || m.SPVFaults()["Device.A"] != 9008 || len(sess.Violations) != 0 {
		t.Fatalf("fault %s, violations %v", m.Raw, sess.Violations)
	}
}

func TestConnectionRequest(t *testing.T) {
	v, err := httpdigest.NewVerifier(httpdigest.Config{Realm: "cpe"})
	if err != nil {
		t.Fatal(err)
	}
	cpe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := v.Check(r.Method, r.RequestURI, r.Header.Get("Authorization"), "acs", "pw"); err != nil {
			for _, ch := range v.Challenges(errors.Is(err, httpdigest.ErrStale)) {
				w.Header().Add("WWW-Authenticate", ch)
			}
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(cpe.Close)
	s := New()
	if code, err := s.ConnectionRequest(context.Background(), cpe.URL+"/cr", "acs", "pw"); err != nil || code != 200 {
		t.Fatalf("good credentials: %d %v", code, err)
	}
	if code, err := ConnectionRequest(context.Background(), cpe.URL+"/cr", "acs", "no"); err != nil || code != 401 {
		t.Fatalf("bad credentials: %d %v", code, err)
	}
}

func TestWaitSessionsTimeout(t *testing.T) {
	s := NewServer(nil)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitSessions(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSessions: %v", err)
	}
}

// TestMessagesValidate checks every message the double emits against the
// Broadband Forum schemas, for cwmp-1-0 and cwmp-1-2.
func TestMessagesValidate(t *testing.T) {
	reqs := []Request{
		GetRPCMethods(), GetParameterNames("Device.", true), GetParameterValues("Device.A", "Device.B."),
		SetParameterValues("key", ParameterValue{Name: "Device.A", Value: "1", Type: "unsignedInt"}, ParameterValue{Name: "Device.B", Value: "x"}),
		GetParameterAttributes("Device."),
		SetParameterAttributes(SetAttribute{Name: "Device.A", NotificationChange: true, Notification: 2, AccessListChange: true, AccessList: []string{"Subscriber"}}),
		AddObject("Device.X.", "k"), DeleteObject("Device.X.1.", "k"), Reboot("r"), FactoryReset(),
		ScheduleInform(30, "s"), GetQueuedTransfers(), GetAllQueuedTransfers(), CancelTransfer("c"),
		Download(DownloadArgs{CommandKey: "d", FileType: "1 Firmware Upgrade Image", URL: "http://f/fw", FileSize: 10}),
		Upload(UploadArgs{CommandKey: "u", FileType: "2 Vendor Log File", URL: "http://f/up"}),
	}
	s := New()
	for _, ns := range []string{NS10, NS12} {
		st := &sessionState{ns: ns}
		var msgs [][]byte
		for _, r := range reqs {
			msgs = append(msgs, envelope(ns, "id1", r.body))
		}
		msgs = append(msgs,
			s.respond(st, Message{ID: "x"}, "InformResponse"),
			s.respond(st, Message{ID: "x"}, "GetRPCMethodsResponse"),
			s.respond(st, Message{ID: "x"}, "TransferCompleteResponse"),
			s.respond(st, Message{ID: "x"}, "AutonomousTransferCompleteResponse"),
			s.respond(st, Message{ID: "x"}, "RequestDownloadResponse"),
			envelope(ns, "x", func(b *etree.Element) { faultBody(b, 8005, "Retry request", false) }),
		)
		version := "1-2"
		if ns == NS10 {
			version = "1-0"
		}
		if err := cwmpschema.Validate(t, version, msgs...); err != nil {
			t.Errorf("%s: schema validation failed: %v", ns, err)
		}
	}
}

func TestSessionLimit(t *testing.T) {
	s := NewServer(t, WithSessionLimit(2))
	cpe := newMiniCPE(t, s.URL, nil)
	for range 5 {
		cpe.post(cpe.inform("2 PERIODIC"))
		cpe.post("")
	}
	got := waitSessions(t, s, 5)
	if len(got) != 2 || got[0].Index != 3 || got[1].Index != 4 {
		t.Fatalf("kept %d sessions, first index %d", len(got), got[0].Index)
	}
}

func TestRawRequests(t *testing.T) {
	s := NewServer(t)
	s.Enqueue(Raw("X_Nope", []byte(`<cwmp:X_Nope><A>1</A></cwmp:X_Nope>`)), RawEnvelope("Broken", []byte("<not-soap")))
	cpe := newMiniCPE(t, s.URL, nil)
	cpe.post(cpe.inform("1 BOOT"))
	_, req := cpe.post("")
	if req.Method != "X_Nope" || req.ID == "" || req.Text("A") != "1" {
		t.Fatalf("Raw request %s", req.Raw)
	}
	_, req2 := cpe.post(cpe.envelope(req.ID, `<soap:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring><detail><cwmp:Fault><FaultCode>9000</FaultCode><FaultString>no</FaultString></cwmp:Fault></detail></soap:Fault>`))
	if string(req2.Raw) != "<not-soap" {
		t.Fatalf("RawEnvelope sent %q", req2.Raw)
	}
	cpe.post(cpe.envelope("", `<soap:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring><detail><cwmp:Fault><FaultCode>9000</FaultCode><FaultString>no</FaultString></cwmp:Fault></detail></soap:Fault>`))
	if v := s.Sessions()[0].Violations; len(v) != 0 {
		t.Fatalf("violations %v", v)
	}
}

func FuzzParseMessage(f *testing.F) {
	c := &miniCPE{ns: NS12}
	f.Add([]byte(c.inform("1 BOOT", "M Download|k")))
	f.Add([]byte(c.envelope("x", `<soap:Fault><detail><cwmp:Fault><FaultCode>9003</FaultCode><SetParameterValuesFault><ParameterName>A</ParameterName><FaultCode>9007</FaultCode></SetParameterValuesFault></cwmp:Fault></detail></soap:Fault>`)))
	f.Add([]byte(""))
	f.Add([]byte("<a:b xmlns:a='x'/>"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := parseMessage(raw)
		if m.ParseError == nil && len(bytes.TrimSpace(raw)) > 0 && m.Body == nil {
			t.Fatalf("no error and no body for %q", raw)
		}
		// Accessors must cope with whatever parsed.
		_ = m.Text("DeviceId/SerialNumber")
		_, _ = m.Fault()
		_ = m.SPVFaults()
		_ = m.Values()
		_ = m.Names()
		if m.Method == "Inform" {
			_ = parseInform(m)
		}
	})
}
