package cwmpclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

const doubleInform = `<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">1</cwmp:ID></soap-env:Header>
<soap-env:Body><cwmp:Inform><DeviceId><Manufacturer>ACME</Manufacturer><OUI>00D09E</OUI><ProductClass>SDWAN</ProductClass><SerialNumber>SN1</SerialNumber></DeviceId>
<Event><EventStruct><EventCode>1 BOOT</EventCode><CommandKey></CommandKey></EventStruct></Event>
<MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2026-11-21T12:00:00Z</CurrentTime><RetryCount>0</RetryCount><ParameterList></ParameterList></cwmp:Inform></soap-env:Body></soap-env:Envelope>`

// runDoubleSession drives one session by hand over a sessionConn: Inform,
// empty POST, one response, end.
func runDoubleSession(tb testing.TB, acs *cwmptest.Server, cfg TransportConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialSession(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if code, body, err := c.Post(ctx, []byte(doubleInform)); err != nil || code != 200 || !strings.Contains(string(body), "InformResponse") {
		tb.Fatalf("Inform: %d %v %s", code, err, body)
	}
	code, body, err := c.Post(ctx, nil)
	if err != nil || code != 200 {
		tb.Fatalf("empty POST: %d %v", code, err)
	}
	id := between(string(body), `mustUnderstand="1">`, "<")
	resp := strings.Replace(strings.Replace(doubleInform, ">1</cwmp:ID>", ">"+id+"</cwmp:ID>", 1),
		doubleInform[strings.Index(doubleInform, "<cwmp:Inform>"):strings.Index(doubleInform, "</soap-env:Body>")],
		"<cwmp:GetRPCMethodsResponse><MethodList></MethodList></cwmp:GetRPCMethodsResponse>", 1)
	if code, _, err := c.Post(ctx, []byte(resp)); err != nil || code != 204 {
		tb.Fatalf("response: %d %v", code, err)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	return s[:strings.Index(s, b)]
}

func TestSessionConnAgainstDouble(t *testing.T) {
	acs := cwmptest.NewServer(t, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "pw"), cwmptest.WithCookie("JSESSIONID"))
	acs.Enqueue(cwmptest.GetRPCMethods())
	runDoubleSession(t, acs, TransportConfig{URL: acs.URL, Username: "cpe", Password: "pw"})
	sess := acs.Sessions()
	if len(sess) != 1 || !sess[0].Ended || len(sess[0].Violations) != 0 || len(acs.Orphans()) != 0 {
		t.Fatalf("sessions %+v orphans %v", sess, acs.Orphans())
	}
	if acs.Connections() != 1 || sess[0].Conns != 1 || acs.Challenges() != 1 {
		t.Fatalf("%d connections (%d in the session), %d challenges; want 1, 1, 1", acs.Connections(), sess[0].Conns, acs.Challenges())
	}
}

// BenchmarkSessionTransport measures one hand-driven session (dial, digest,
// cookie, three POSTs) against the double on loopback.
func BenchmarkSessionTransport(b *testing.B) {
	acs := cwmptest.NewServer(nil, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "pw"), cwmptest.WithCookie("sid"), cwmptest.WithSessionLimit(16))
	defer acs.Close()
	cfg := TransportConfig{URL: acs.URL, Username: "cpe", Password: "pw"}
	for b.Loop() {
		acs.Enqueue(cwmptest.GetRPCMethods())
		runDoubleSession(b, acs, cfg)
	}
}
