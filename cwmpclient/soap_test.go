package cwmpclient

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// emitted lists one of every message the CPE sends.
func emitted() []Message {
	return []Message{
		Inform{
			DeviceID:     DeviceID{Manufacturer: "Acme & Co <x>", OUI: "00AABB", ProductClass: "SRv6CPE", SerialNumber: "SN1"},
			Events:       []EventStruct{{Code: "0 BOOTSTRAP"}, {Code: "1 BOOT"}, {Code: "M Reboot", CommandKey: "ck"}, {Code: "X 00AABB Vendor Event"}},
			MaxEnvelopes: 1, CurrentTime: t0, RetryCount: 3,
			Params: []ParameterValue{
				{Name: "Device.DeviceInfo.SoftwareVersion", Value: "1.0", Type: "string"},
				{Name: "Device.DeviceInfo.UpTime", Value: "12", Type: "unsignedInt"},
				{Name: "Device.X.Enable", Value: "true", Type: "boolean"},
				{Name: "Device.X.Int", Value: "-3", Type: "int"},
				{Name: "Device.X.Time", Value: "2026-11-21T12:00:00Z", Type: "dateTime"},
				{Name: "Device.X.B64", Value: "AAEC", Type: "base64Binary"},
				{Name: "Device.X.Hex", Value: "0a0b", Type: "hexBinary"},
				{Name: "Device.X.Ctl", Value: "bad\x01char", Type: "string"},
				{Name: "Device.X.BadUint", Value: "", Type: "unsignedInt"},
				{Name: "Device.X.BadTime", Value: "soon", Type: "dateTime"},
				{Name: "Device.X.Unknown", Value: "x", Type: "decimal"},
			},
		},
		Inform{DeviceID: DeviceID{OUI: "00AABB"}},
		TransferComplete{CommandKey: "dl1", StartTime: t0, CompleteTime: t0.Add(time.Second)},
		TransferComplete{CommandKey: "dl2", Fault: FaultStruct{Code: 9010, String: strings.Repeat("long ", 100)}},
		AutonomousTransferComplete{TransferURL: "http://x/y", IsDownload: true, FileType: "1 Firmware Upgrade Image", FileSize: 10, StartTime: t0, CompleteTime: t0},
		GetRPCMethods{},
		VendorMessage{Name: "Stats_IP_Change_Report", Fields: []Field{{Name: "IPv6Prefix", Value: "2001:db8::/48"}, {Name: "Old", Children: []Field{{Name: "A", Value: "1"}}}}},
		GetRPCMethodsResponse{Methods: []string{"GetRPCMethods", "Inform"}},
		GetParameterNamesResponse{Params: []ParameterInfo{{Name: "Device.", Writable: false}, {Name: "Device.X.Enable", Writable: true}}},
		GetParameterNamesResponse{},
		GetParameterValuesResponse{Params: []ParameterValue{{Name: "Device.X.Enable", Value: "1", Type: "boolean"}}},
		SetParameterValuesResponse{Status: 1},
		GetParameterAttributesResponse{Params: []ParameterAttribute{{Name: "Device.X.Enable", Notification: 2, AccessList: []string{"Subscriber"}}, {Name: "Device.X.Int"}}},
		SetParameterAttributesResponse{},
		AddObjectResponse{InstanceNumber: 7},
		DeleteObjectResponse{Status: 0},
		RebootResponse{},
		FactoryResetResponse{},
		DownloadResponse{Status: 1},
		DownloadResponse{Status: 0, StartTime: t0, CompleteTime: t0},
		UploadResponse{Status: 1},
		ScheduleInformResponse{},
		GetQueuedTransfersResponse{Transfers: []QueuedTransfer{{CommandKey: "a", State: 1}, {CommandKey: "b", State: 2}}},
		GetAllQueuedTransfersResponse{Transfers: []AllQueuedTransfer{{CommandKey: "a", State: 1, IsDownload: true, FileType: "1 Firmware Upgrade Image", FileSize: 5}}},
		CancelTransferResponse{},
		NewFault(FaultMethodNotSupported, ""),
		&Fault{Code: FaultInvalidArguments, String: "Invalid arguments", SPV: []SPVFault{
			{Name: "Device.X.A", Code: FaultInvalidName, String: "no such parameter"},
			{Name: "Device.X.B", Code: FaultNotWritable, String: "read-only"},
		}},
	}
}

func TestEmittedMessagesValidate(t *testing.T) {
	cwmpschema.Tool(t)
	for _, ns := range []string{NS12, NS10} {
		for i, m := range emitted() {
			if ns == NS10 {
				switch m.(type) {
				case AutonomousTransferComplete, GetAllQueuedTransfersResponse:
					continue // not in CWMP 1.0
				}
			}
			b, err := Encode(ns, "id-"+m.MethodName(), m)
			if err != nil {
				t.Fatalf("%d %s: %v", i, m.MethodName(), err)
			}
			mustValidate(t, b)
		}
	}
	b, err := Encode(NS12, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	mustValidate(t, b)
}

func TestEncodeEchoesIDAndEscapes(t *testing.T) {
	b, err := Encode(NS12, "abc<1>", emitted()[0])
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		`<cwmp:ID soap-env:mustUnderstand="1">abc&lt;1&gt;</cwmp:ID>`,
		`soap-enc:arrayType="cwmp:ParameterValueStruct[11]"`,
		`<Name>Device.X.BadUint</Name><Value xsi:type="xsd:string"></Value>`,
		`soap-enc:arrayType="cwmp:EventStruct[4]"`,
		`<Value xsi:type="xsd:unsignedInt">12</Value>`,
		`<MaxEnvelopes>1</MaxEnvelopes>`,
		`<CurrentTime>2026-11-21T12:00:00Z</CurrentTime>`,
		"bad\uFFFDchar",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	if _, err := Encode(NS12, "", VendorMessage{Name: "a b"}); err == nil {
		t.Error("vendor name with a space accepted")
	}
	if _, err := Encode(NS12, "", VendorMessage{Name: "X_A", Fields: []Field{{Name: "ok", Children: []Field{{Name: "1bad"}}}}}); err == nil {
		t.Error("vendor field name starting with a digit accepted")
	}
	for _, oui := range []string{"", "00aabb", "00AABBC", "00AAB"} {
		if _, err := Encode(NS12, "", Inform{DeviceID: DeviceID{OUI: oui}}); err == nil {
			t.Errorf("Inform with OUI %q accepted", oui)
		}
	}
}

const genieFault = `<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="urn:dslforum-org:cwmp-1-0">
<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">42</cwmp:ID></soap-env:Header>
<soap-env:Body><Body:Fault xmlns:Body="http://schemas.xmlsoap.org/soap/envelope/"><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring>
<detail><cwmp:Fault><FaultCode>8005</FaultCode><FaultString>Retry request</FaultString></cwmp:Fault></detail></Body:Fault></soap-env:Body></soap-env:Envelope>`

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(t *testing.T, e *Envelope, err error)
	}{
		{"genieacs Body:Fault element name", strings.ReplaceAll(strings.ReplaceAll(genieFault, `<Body:Fault xmlns:Body="http://schemas.xmlsoap.org/soap/envelope/">`, `<soap-env:Body:Fault>`), `</Body:Fault>`, `</soap-env:Body:Fault>`),
			func(t *testing.T, e *Envelope, err error) {
				if f, ok := e.Msg.(*Fault); err != nil || !ok || f.Code != 8005 {
					t.Fatalf("got %#v %v", e, err)
				}
			}},
		{"empty body", "", func(t *testing.T, e *Envelope, err error) {
			if err != nil || e.Msg != nil {
				t.Fatalf("got %v %v", e, err)
			}
		}},
		{"genieacs fault", genieFault, func(t *testing.T, e *Envelope, err error) {
			f, ok := e.Msg.(*Fault)
			if err != nil || !ok || f.Code != 8005 || e.ID != "42" || e.NS != NS10 {
				t.Fatalf("got %#v %v", e, err)
			}
		}},
		{"cwmp-1-1 gpv with whitespace, hold requests, obsolete NoMoreRequests", wrap(NS11,
			`<cwmp:ID soap:mustUnderstand="1"> 7 </cwmp:ID><cwmp:HoldRequests soap:mustUnderstand="1">1</cwmp:HoldRequests><cwmp:NoMoreRequests>1</cwmp:NoMoreRequests><x:Unknown xmlns:x="urn:x">z</x:Unknown>`,
			`<cwmp:GetParameterValues><ParameterNames soapenc:arrayType="xsd:string[2]"><string>
			  Device.DeviceInfo. </string><string>Device.X.A</string></ParameterNames></cwmp:GetParameterValues>`),
			func(t *testing.T, e *Envelope, err error) {
				g, ok := e.Msg.(GetParameterValues)
				if err != nil || !ok || e.ID != "7" || !e.HoldRequests || !e.NoMoreRequests || e.NS != NS11 ||
					len(g.Names) != 2 || g.Names[0] != "Device.DeviceInfo." {
					t.Fatalf("got %#v %v", e, err)
				}
			}},
		{"unknown mustUnderstand header", wrap(NS12, `<cwmp:ID soap:mustUnderstand="1">9</cwmp:ID><x:Foo xmlns:x="urn:x" soap:mustUnderstand="1"/>`, `<cwmp:Reboot/>`),
			func(t *testing.T, e *Envelope, err error) {
				var mu *MustUnderstandError
				if !errors.As(err, &mu) || e == nil || e.ID != "9" {
					t.Fatalf("got %#v %v", e, err)
				}
			}},
		{"spv with xsi types", wrap(NS12, "", `<cwmp:SetParameterValues><ParameterList soapenc:arrayType="cwmp:ParameterValueStruct[2]">
			<ParameterValueStruct><Name>Device.A</Name><Value xsi:type="xsd:unsignedInt"> 5 </Value></ParameterValueStruct>
			<ParameterValueStruct><Name>Device.B</Name><Value>x</Value></ParameterValueStruct></ParameterList><ParameterKey>k1</ParameterKey></cwmp:SetParameterValues>`),
			func(t *testing.T, e *Envelope, err error) {
				s, ok := e.Msg.(SetParameterValues)
				if err != nil || !ok || s.ParameterKey != "k1" || len(s.Params) != 2 ||
					s.Params[0] != (ParameterValue{"Device.A", "5", "unsignedInt"}) || s.Params[1].Type != "" {
					t.Fatalf("got %#v %v", e.Msg, err)
				}
			}},
		{"download bad size", wrap(NS12, "", `<cwmp:Download><CommandKey>c</CommandKey><FileSize>big</FileSize></cwmp:Download>`),
			func(t *testing.T, e *Envelope, err error) {
				var f *Fault
				if !errors.As(err, &f) || f.Code != FaultInvalidArguments {
					t.Fatalf("got %v", err)
				}
			}},
		{"vendor request", wrap(NS12, "", `<cwmp:Stats_Monitor_Config_Req><TaskID>3</TaskID><Paths><Path>a</Path></Paths></cwmp:Stats_Monitor_Config_Req>`),
			func(t *testing.T, e *Envelope, err error) {
				v, ok := e.Msg.(VendorMessage)
				if err != nil || !ok || v.Name != "Stats_Monitor_Config_Req" || v.Fields[0].Value != "3" || v.Fields[1].Children[0].Value != "a" {
					t.Fatalf("got %#v %v", e.Msg, err)
				}
			}},
		{"not xml", "<a", func(t *testing.T, e *Envelope, err error) {
			if err == nil {
				t.Fatal("accepted")
			}
		}},
		{"no envelope", "<a/>", func(t *testing.T, e *Envelope, err error) {
			if err == nil {
				t.Fatal("accepted")
			}
		}},
		{"too deep", wrap(NS12, "", "<cwmp:X_Deep>"+strings.Repeat("<a>", 100)+strings.Repeat("</a>", 100)+"</cwmp:X_Deep>"),
			func(t *testing.T, e *Envelope, err error) {
				if err == nil || !strings.Contains(err.Error(), "deeper") {
					t.Fatalf("got %v", err)
				}
			}},
		{"too many elements", wrap(NS12, "", "<cwmp:X_Wide>"+strings.Repeat("<a/>", maxElements)+"</cwmp:X_Wide>"),
			func(t *testing.T, e *Envelope, err error) {
				if err == nil || !strings.Contains(err.Error(), "elements") {
					t.Fatalf("got %v", err)
				}
			}},
		{"too large", strings.Repeat(" ", MaxEnvelopeSize+1), func(t *testing.T, e *Envelope, err error) {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatal("accepted")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(tt.in))
			tt.want(t, e, err)
		})
	}
}

func wrap(ns, header, body string) string {
	return `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="` + ns + `">` +
		`<soap:Header>` + header + `</soap:Header><soap:Body>` + body + `</soap:Body></soap:Envelope>`
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(genieFault))
	f.Add([]byte(wrap(NS12, `<cwmp:ID soap:mustUnderstand="1">1</cwmp:ID>`, `<cwmp:GetParameterNames><ParameterPath>Device.</ParameterPath><NextLevel>1</NextLevel></cwmp:GetParameterNames>`)))
	f.Add([]byte(wrap(NS10, "", `<cwmp:SetParameterAttributes><ParameterList><SetParameterAttributesStruct><Name>A</Name><NotificationChange>1</NotificationChange><Notification>2</Notification><AccessList><string>Subscriber</string></AccessList></SetParameterAttributesStruct></ParameterList></cwmp:SetParameterAttributes>`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err == nil && e == nil {
			t.Fatal("nil envelope without error")
		}
		if e != nil {
			// The answer echoes the ID and namespace: it must always encode.
			if _, err := Encode(e.NS, e.ID, GetRPCMethodsResponse{}); err != nil {
				t.Fatalf("answer to %q does not encode: %v", e.ID, err)
			}
		}
	})
}
