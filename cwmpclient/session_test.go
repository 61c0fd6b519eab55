package cwmpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// acsExchange is what the fake ACS saw from the CPE in one POST.
type acsExchange struct {
	method string // "" for the empty POST
	msg    Message
	ns     string
	id     string
}

// fakeACS answers CPE POSTs in process. Each session: InformResponse to
// the Inform, "answer" for CPE requests, then the scripted ACS requests
// one per POST, then 204. Every CPE message is schema-validated.
type fakeACS struct {
	t  testing.TB
	mu sync.Mutex
	// script holds body XML of the ACS requests of the next session
	// (consumed by it).
	script []string
	// hold sets HoldRequests on the InformResponse.
	hold bool
	// ns is the namespace the ACS answers in (default NS12).
	ns string
	// informFault answers the Inform with this ACS fault code.
	informFault int
	// failDials makes the next dials fail.
	failDials int
	// raw, when set, replaces the next ACS answer verbatim.
	raw []string
	// vendorAnswer names the answer to CPE vendor RPCs (default
	// method+"Response").
	vendorAnswer string

	sessions  int
	urls      []string        // ACS URL of each session
	exchanges [][]acsExchange // per session
}

type fakeConn struct {
	acs     *fakeACS
	session int
	script  []string
	closed  bool
}

func (a *fakeACS) dial(_ context.Context, tc TransportConfig) (conn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failDials > 0 {
		a.failDials--
		return nil, errors.New("connection refused (fake)")
	}
	a.sessions++
	a.urls = append(a.urls, tc.URL)
	a.exchanges = append(a.exchanges, nil)
	script := a.script
	a.script = nil // the script is for one session
	return &fakeConn{acs: a, session: a.sessions - 1, script: script}, nil
}

func (a *fakeACS) env(id, body string, hold bool) []byte {
	ns := a.ns
	if ns == "" {
		ns = NS12
	}
	h := ""
	if id != "" {
		h = `<cwmp:ID soap:mustUnderstand="1">` + id + `</cwmp:ID>`
	}
	if hold {
		h += `<cwmp:HoldRequests soap:mustUnderstand="1">1</cwmp:HoldRequests>`
	}
	return []byte(wrap(ns, h, body))
}

func (c *fakeConn) Post(_ context.Context, body []byte) (int, []byte, error) {
	a := c.acs
	a.mu.Lock()
	defer a.mu.Unlock()
	ex := acsExchange{}
	if len(body) > 0 {
		mustValidate(a.t, body)
		env, err := Decode(body)
		if err != nil {
			a.t.Errorf("CPE sent an envelope the ACS cannot read: %v", err)
			return 500, nil, nil
		}
		ex = acsExchange{method: env.Msg.MethodName(), msg: env.Msg, ns: env.NS, id: env.ID}
	}
	a.exchanges[c.session] = append(a.exchanges[c.session], ex)
	if len(a.raw) > 0 {
		r := a.raw[0]
		a.raw = a.raw[1:]
		if r == "" {
			return http.StatusNoContent, nil, nil
		}
		return http.StatusOK, []byte(r), nil
	}
	switch ex.method {
	case "Inform":
		if a.informFault != 0 {
			return http.StatusOK, a.env(ex.id, fmt.Sprintf(`<soap:Fault><faultcode>Server</faultcode><faultstring>CWMP fault</faultstring><detail><cwmp:Fault><FaultCode>%d</FaultCode><FaultString>x</FaultString></cwmp:Fault></detail></soap:Fault>`, a.informFault), false), nil
		}
		return http.StatusOK, a.env(ex.id, `<cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes></cwmp:InformResponse>`, a.hold), nil
	case "TransferComplete", "GetRPCMethods", "AutonomousTransferComplete":
		resp := `<cwmp:` + ex.method + `Response/>`
		if ex.method == "GetRPCMethods" {
			resp = `<cwmp:GetRPCMethodsResponse><MethodList soapenc:arrayType="xsd:string[1]"><string>Inform</string></MethodList></cwmp:GetRPCMethodsResponse>`
		}
		return http.StatusOK, a.env(ex.id, resp, a.hold), nil
	}
	if strings.HasPrefix(ex.method, "X_") || strings.HasPrefix(ex.method, "Stats_") {
		name := a.vendorAnswer
		if name == "" {
			name = ex.method + "Response"
		}
		return http.StatusOK, a.env(ex.id, `<cwmp:`+name+`><Result>ok</Result></cwmp:`+name+`>`, a.hold), nil
	}
	if len(c.script) > 0 {
		next := c.script[0]
		c.script = c.script[1:]
		return http.StatusOK, a.env(fmt.Sprintf("acs-%d", len(c.script)), next, a.hold), nil
	}
	return http.StatusNoContent, nil, nil
}

func (c *fakeConn) Close() { c.closed = true }

// informOf returns the events and parameter names of a session's Inform.
func (a *fakeACS) informOf(session int) (events []string, params []string, retry string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if session >= len(a.exchanges) || len(a.exchanges[session]) == 0 {
		return nil, nil, ""
	}
	v, ok := a.exchanges[session][0].msg.(VendorMessage)
	if !ok || v.Name != "Inform" {
		return nil, nil, ""
	}
	for _, f := range v.Fields {
		switch f.Name {
		case "Event":
			for _, e := range f.Children {
				code, key := e.Children[0].Value, e.Children[1].Value
				if key != "" {
					code += "/" + key
				}
				events = append(events, code)
			}
		case "ParameterList":
			for _, p := range f.Children {
				params = append(params, p.Children[0].Value+"="+p.Children[1].Value)
			}
		case "RetryCount":
			retry = f.Value
		}
	}
	return events, params, retry
}

func (a *fakeACS) methods(session int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.exchanges[session] {
		out = append(out, e.method)
	}
	return out
}

func newSessionDispatcher(t *testing.T) (*Dispatcher, *Tree, *fakeActions) {
	tr, _ := testTree(t, newMemStore())
	act := &fakeActions{}
	return NewDispatcher(tr, act), tr, act
}

func TestRunSessionServesACS(t *testing.T) {
	cwmpschema.Tool(t)
	d, tr, _ := newSessionDispatcher(t)
	acs := &fakeACS{t: t, script: []string{
		`<cwmp:GetParameterValues><ParameterNames soapenc:arrayType="xsd:string[1]"><string>Device.X.</string></ParameterNames></cwmp:GetParameterValues>`,
		`<cwmp:SetParameterValues><ParameterList soapenc:arrayType="cwmp:ParameterValueStruct[1]"><ParameterValueStruct><Name>Device.X.Count</Name><Value xsi:type="xsd:unsignedInt">9</Value></ParameterValueStruct></ParameterList><ParameterKey>s1</ParameterKey></cwmp:SetParameterValues>`,
		`<cwmp:SetParameterValues><ParameterList soapenc:arrayType="cwmp:ParameterValueStruct[1]"><ParameterValueStruct><Name>Device.Nope</Name><Value>9</Value></ParameterValueStruct></ParameterList><ParameterKey>s2</ParameterKey></cwmp:SetParameterValues>`,
		`<cwmp:X_Unknown_Method/>`,
	}}
	cn, _ := acs.dial(context.Background(), TransportConfig{})
	informed := false
	var tcAck Message
	plan := sessionPlan{
		inform:   Inform{DeviceID: DeviceID{OUI: "00AABB"}, Events: []EventStruct{{Code: EventBoot}}, MaxEnvelopes: 1},
		informed: func() { informed = true },
		requests: []cpeRequest{{msg: TransferComplete{CommandKey: "dl"}, done: func(m Message) { tcAck = m }}},
	}
	if err := runSession(context.Background(), cn, d, plan, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	got := acs.methods(0)
	want := []string{"Inform", "TransferComplete", "", "GetParameterValuesResponse", "SetParameterValuesResponse", "Fault", "Fault"}
	if !slices.Equal(got, want) {
		t.Errorf("CPE sent %q, want %q", got, want)
	}
	if !informed || tcAck == nil {
		t.Errorf("informed=%v transfer ack=%v", informed, tcAck)
	}
	if v, _ := tr.GetValues([]string{"Device.X.Count"}); v[0].Value != "9" || tr.ParameterKey() != "s1" {
		t.Errorf("SPV not applied: %v key %q", v, tr.ParameterKey())
	}
	acs.mu.Lock()
	defer acs.mu.Unlock()
	f5 := acs.exchanges[0][5].msg.(*Fault)
	f6 := acs.exchanges[0][6].msg.(*Fault)
	if f5.Code != FaultInvalidArguments || len(f5.SPV) != 1 || f5.SPV[0].Code != FaultInvalidName || f6.Code != FaultMethodNotSupported {
		t.Errorf("faults %+v %+v", f5, f6)
	}
	if acs.exchanges[0][3].id != "acs-3" {
		t.Errorf("cwmp:ID not echoed: %q", acs.exchanges[0][3].id)
	}
}

func TestRunSessionProtocolCases(t *testing.T) {
	cwmpschema.Tool(t)
	gpn := `<cwmp:GetParameterNames><ParameterPath>Device.Info.</ParameterPath><NextLevel>1</NextLevel></cwmp:GetParameterNames>`
	tests := []struct {
		name    string
		acs     *fakeACS
		wantErr bool
		want    []string
		check   func(t *testing.T, a *fakeACS)
	}{
		{name: "hold requests keeps CPE requests back", acs: &fakeACS{hold: true, script: []string{gpn}},
			want: []string{"Inform", "", "GetParameterNamesResponse"}},
		{name: "acs fault to inform", acs: &fakeACS{informFault: 8005}, wantErr: true, want: []string{"Inform"}},
		{name: "cwmp-1-0 acs", acs: &fakeACS{ns: NS10, script: []string{gpn}},
			want: []string{"Inform", "TransferComplete", "", "GetParameterNamesResponse"},
			check: func(t *testing.T, a *fakeACS) {
				if a.exchanges[0][3].ns != NS10 {
					t.Errorf("answer in %s, want the ACS's %s", a.exchanges[0][3].ns, NS10)
				}
			}},
		{name: "malformed envelopes end the session", acs: &fakeACS{raw: []string{
			string(wrap(NS12, "", `<cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes></cwmp:InformResponse>`)),
			"<garbage", "<garbage", "<garbage"}},
			wantErr: true, want: []string{"Inform", "TransferComplete", "Fault", "Fault"}},
		{name: "mustUnderstand header is a fault", acs: &fakeACS{raw: []string{
			string(wrap(NS12, "", `<cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes></cwmp:InformResponse>`)),
			string(wrap(NS12, `<cwmp:ID soap:mustUnderstand="1">m1</cwmp:ID><x:New xmlns:x="urn:x" soap:mustUnderstand="1">1</x:New>`, `<cwmp:Reboot><CommandKey>k</CommandKey></cwmp:Reboot>`)),
			""}},
			want: []string{"Inform", "TransferComplete", "Fault", ""},
			check: func(t *testing.T, a *fakeACS) {
				if f := a.exchanges[0][2].msg.(*Fault); f.SOAPCode != "soap-env:MustUnderstand" || a.exchanges[0][2].id != "m1" {
					t.Errorf("fault %+v id %q", f, a.exchanges[0][2].id)
				}
			}},
		{name: "http error", acs: &fakeACS{raw: []string{string(wrap(NS12, "", `<cwmp:Reboot/>`))}}, wantErr: true, want: []string{"Inform"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, _, act := newSessionDispatcher(t)
			a := tc.acs
			a.t = t
			cn, _ := a.dial(context.Background(), TransportConfig{})
			plan := sessionPlan{inform: Inform{DeviceID: DeviceID{OUI: "00AABB"}, MaxEnvelopes: 1},
				requests: []cpeRequest{{msg: TransferComplete{CommandKey: "dl"}}}}
			err := runSession(context.Background(), cn, d, plan, zaptest.NewLogger(t))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got := a.methods(0); !slices.Equal(got, tc.want) {
				t.Errorf("CPE sent %q, want %q", got, tc.want)
			}
			if act.reboots != 0 {
				t.Error("request with an unknown mustUnderstand header was executed")
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
}

func TestIsResponseTo(t *testing.T) {
	if !isResponseTo(GetRPCMethods{}, GetRPCMethodsResponse{}) || isResponseTo(TransferComplete{}, GetRPCMethodsResponse{}) ||
		!isResponseTo(VendorMessage{Name: "X_A"}, VendorMessage{Name: "X_AResponse"}) || !isResponseTo(TransferComplete{}, &Fault{}) {
		t.Error("isResponseTo")
	}
	if normalizeNS("urn:dslforum-org:cwmp-1-4") != NS12 || normalizeNS("urn:other") != "" {
		t.Error("normalizeNS")
	}
}

// scriptConn answers POSTs with fixed bodies, then 204.
type scriptConn struct{ bodies [][]byte }

func (s *scriptConn) Post(_ context.Context, _ []byte) (int, []byte, error) {
	if len(s.bodies) == 0 {
		return http.StatusNoContent, nil, nil
	}
	b := s.bodies[0]
	s.bodies = s.bodies[1:]
	return http.StatusOK, b, nil
}

func (s *scriptConn) Close() {}

// FuzzSession feeds arbitrary ACS answers (split on "|||") to a session:
// it must end, with or without an error, and never panic.
func FuzzSession(f *testing.F) {
	ir := wrap(NS12, "", `<cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes></cwmp:InformResponse>`)
	f.Add([]byte(ir + "|||" + wrap(NS12, `<cwmp:ID soap:mustUnderstand="1">1</cwmp:ID>`, `<cwmp:GetParameterValues><ParameterNames><string>Device.</string></ParameterNames></cwmp:GetParameterValues>`)))
	f.Add([]byte(ir + "|||" + wrap(NS12, "", `<cwmp:AddObject><ObjectName>Device.X.Svc.</ObjectName></cwmp:AddObject>`) + "|||<x"))
	f.Add([]byte(ir + "|||" + wrap(NS10, `<cwmp:HoldRequests soap:mustUnderstand="1">1</cwmp:HoldRequests>`, `<cwmp:TransferCompleteResponse/>`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := strings.SplitN(string(b), "|||", 9)
		conn := &scriptConn{}
		for _, p := range parts {
			conn.bodies = append(conn.bodies, []byte(p))
		}
		tr, _ := testTree(t, nil)
		d := NewDispatcher(tr, &fakeActions{})
		plan := sessionPlan{inform: Inform{DeviceID: DeviceID{OUI: "00AABB"}},
			requests: []cpeRequest{{msg: TransferComplete{CommandKey: "k"}}}}
		_ = runSession(context.Background(), conn, d, plan, zap.NewNop())
	})
}

// silentConn never answers.
type silentConn struct{}

func (silentConn) Post(ctx context.Context, _ []byte) (int, []byte, error) {
	<-ctx.Done()
	return 0, nil, ctx.Err()
}

func (silentConn) Close() {}

func TestRunSessionExchangeTimeout(t *testing.T) {
	d, _, _ := newSessionDispatcher(t)
	plan := sessionPlan{inform: Inform{DeviceID: DeviceID{OUI: "00AABB"}}, exchangeTimeout: 50 * time.Millisecond}
	err := runSession(context.Background(), silentConn{}, d, plan, zap.NewNop())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent ACS: %v, want a deadline error", err)
	}
}
