package cwmpclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// fakeActions records what the dispatcher hands over.
type fakeActions struct {
	reboots, resets int
	rebootKey       string
	scheduled       []time.Duration
	downloads       []Download
	uploads         []Upload
	queue           []AllQueuedTransfer
}

func (f *fakeActions) Reboot(k string) error { f.reboots++; f.rebootKey = k; return nil }
func (f *fakeActions) FactoryReset() error   { f.resets++; return nil }
func (f *fakeActions) ScheduleInform(d time.Duration, _ string) error {
	f.scheduled = append(f.scheduled, d)
	return nil
}
func (f *fakeActions) QueueDownload(d Download) error {
	if len(f.queue) >= 16 {
		return NewFault(FaultResourcesExceeded, "queue full")
	}
	f.downloads = append(f.downloads, d)
	f.queue = append(f.queue, AllQueuedTransfer{CommandKey: d.CommandKey, State: 1, IsDownload: true, FileType: d.FileType, FileSize: d.FileSize})
	return nil
}
func (f *fakeActions) QueueUpload(u Upload) error {
	f.uploads = append(f.uploads, u)
	f.queue = append(f.queue, AllQueuedTransfer{CommandKey: u.CommandKey, State: 1, FileType: u.FileType})
	return nil
}
func (f *fakeActions) Transfers() []AllQueuedTransfer { return slices.Clone(f.queue) }
func (f *fakeActions) CancelTransfer(k string) error {
	i := slices.IndexFunc(f.queue, func(t AllQueuedTransfer) bool { return t.CommandKey == k })
	if i < 0 {
		return NewFault(FaultInvalidArguments, "no transfer %q", k)
	}
	f.queue = slices.Delete(f.queue, i, i+1)
	return nil
}

func TestDispatch(t *testing.T) {
	cwmpschema.Tool(t)
	tr, _ := testTree(t, newMemStore())
	act := &fakeActions{}
	d := NewDispatcher(tr, act)
	d.HandleVendor("X_ACME_Ping", func(_ context.Context, r VendorMessage) (Message, error) {
		return VendorMessage{Name: "X_ACME_PingResponse", Fields: r.Fields}, nil
	})
	ctx := context.Background()
	for _, tc := range []struct {
		req   Message
		fault int
		check func(t *testing.T, resp Message)
	}{
		{GetRPCMethods{}, 0, func(t *testing.T, r Message) {
			m := r.(GetRPCMethodsResponse).Methods
			if !slices.Contains(m, "CancelTransfer") || m[len(m)-1] != "X_ACME_Ping" {
				t.Errorf("methods %v", m)
			}
		}},
		{GetParameterNames{Path: "Device.", NextLevel: true}, 0, func(t *testing.T, r Message) {
			if len(r.(GetParameterNamesResponse).Params) != 2 {
				t.Errorf("%v", r)
			}
		}},
		{GetParameterNames{Path: "Device.Info.Up", NextLevel: true}, FaultInvalidArguments, nil},
		{GetParameterValues{Names: []string{"Device.X."}}, 0, nil},
		{GetParameterValues{Names: []string{"Device.Y."}}, FaultInvalidName, nil},
		{SetParameterValues{Params: []ParameterValue{{Name: "Device.X.Enable", Value: "true"}}, ParameterKey: "pk"}, 0, func(t *testing.T, r Message) {
			if tr.ParameterKey() != "pk" {
				t.Error("ParameterKey not set")
			}
		}},
		{SetParameterValues{Params: []ParameterValue{{Name: "Device.X.Enable", Value: "maybe"}, {Name: "Device.Info.Name", Value: "a"}}}, FaultInvalidArguments, nil},
		{SetParameterValues{ParameterKey: "0123456789012345678901234567890123"}, FaultInvalidArguments, nil},
		{SetParameterValues{Params: []ParameterValue{{Name: "Device.X.Reboot", Value: "x"}}}, 0, func(t *testing.T, r Message) {
			if r.(SetParameterValuesResponse).Status != 1 {
				t.Error("status not 1")
			}
		}},
		{GetParameterAttributes{Names: []string{"Device.X.Enable"}}, 0, nil},
		{SetParameterAttributes{Params: []SetParameterAttributesStruct{{Name: "Device.X.Enable", NotificationChange: true, Notification: 2}}}, 0, nil},
		{SetParameterAttributes{Params: []SetParameterAttributesStruct{{Name: "Device.Info.Up", NotificationChange: true, Notification: 2}}}, FaultNotifyRejected, nil},
		{AddObject{ObjectName: "Device.X.Svc.", ParameterKey: "a1"}, 0, func(t *testing.T, r Message) {
			if r.(AddObjectResponse).InstanceNumber != 1 {
				t.Errorf("%v", r)
			}
		}},
		{AddObject{ObjectName: "Device.X.If."}, FaultInvalidName, nil},
		{DeleteObject{ObjectName: "Device.X.Svc.1."}, 0, nil},
		{DeleteObject{ObjectName: "Device.X.Svc.1."}, FaultInvalidName, nil},
		{Reboot{CommandKey: "rb"}, 0, func(t *testing.T, r Message) {
			if act.reboots != 1 || act.rebootKey != "rb" {
				t.Error("reboot not handed over")
			}
		}},
		{FactoryReset{}, 0, nil},
		{ScheduleInform{DelaySeconds: 30, CommandKey: "s"}, 0, func(t *testing.T, r Message) {
			if !slices.Equal(act.scheduled, []time.Duration{30 * time.Second}) {
				t.Errorf("scheduled %v", act.scheduled)
			}
		}},
		{ScheduleInform{}, FaultInvalidArguments, nil},
		{Download{CommandKey: "d1", FileType: FileFirmware, URL: "https://fw.example/img", FileSize: 10}, 0, func(t *testing.T, r Message) {
			if r.(DownloadResponse).Status != 1 || len(act.downloads) != 1 {
				t.Errorf("%v", r)
			}
		}},
		{Download{FileType: "2 Web Content", URL: "http://x/"}, FaultInvalidArguments, nil},
		{Download{FileType: FileVendorConfig, URL: "ftp://x/"}, FaultUnsupportedProtocol, nil},
		{Download{FileType: FileVendorConfig, URL: "http://u:p@x/"}, FaultInvalidArguments, nil},
		{Upload{CommandKey: "u1", FileType: "4 Vendor Log File 1", URL: "http://x/log"}, 0, nil},
		{Upload{CommandKey: "u2", FileType: "3 Vendor Configuration File", URL: "http://x/cfg"}, 0, nil},
		{Upload{FileType: "4 Vendor Log File 0", URL: "http://x/log"}, FaultInvalidArguments, nil},
		{Upload{FileType: "5 Ringer File", URL: "http://x/log"}, FaultInvalidArguments, nil},
		{GetQueuedTransfers{}, 0, func(t *testing.T, r Message) {
			if len(r.(GetQueuedTransfersResponse).Transfers) != 3 {
				t.Errorf("%v", r)
			}
		}},
		{GetAllQueuedTransfers{}, 0, nil},
		{CancelTransfer{CommandKey: "u1"}, 0, nil},
		{CancelTransfer{CommandKey: "nope"}, FaultInvalidArguments, nil},
		{VendorMessage{Name: "X_ACME_Ping", Fields: []Field{{Name: "A", Value: "1"}}}, 0, nil},
		{VendorMessage{Name: "X_Unknown"}, FaultMethodNotSupported, nil},
		{InformResponse{}, FaultMethodNotSupported, nil},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.req.MethodName(), tc.fault), func(t *testing.T) {
			resp := d.Dispatch(ctx, tc.req)
			f, isFault := resp.(*Fault)
			switch {
			case tc.fault == 0 && isFault:
				t.Fatalf("fault %v", f)
			case tc.fault != 0 && (!isFault || f.Code != tc.fault):
				t.Fatalf("got %#v, want fault %d", resp, tc.fault)
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
			b, err := Encode(NS12, "1", resp)
			if err != nil {
				t.Fatal(err)
			}
			mustValidate(t, b)
		})
	}
}

func FuzzDispatch(f *testing.F) {
	for _, body := range []string{
		`<cwmp:GetParameterNames><ParameterPath>Device.</ParameterPath><NextLevel>0</NextLevel></cwmp:GetParameterNames>`,
		`<cwmp:GetParameterValues><ParameterNames><string>Device.X.</string></ParameterNames></cwmp:GetParameterValues>`,
		`<cwmp:SetParameterValues><ParameterList><ParameterValueStruct><Name>Device.X.Count</Name><Value xsi:type="xsd:unsignedInt">3</Value></ParameterValueStruct></ParameterList><ParameterKey>k</ParameterKey></cwmp:SetParameterValues>`,
		`<cwmp:AddObject><ObjectName>Device.X.Svc.</ObjectName><ParameterKey></ParameterKey></cwmp:AddObject>`,
		`<cwmp:DeleteObject><ObjectName>Device.X.Svc.1.</ObjectName><ParameterKey></ParameterKey></cwmp:DeleteObject>`,
		`<cwmp:SetParameterAttributes><ParameterList><SetParameterAttributesStruct><Name>Device.</Name><NotificationChange>1</NotificationChange><Notification>1</Notification><AccessListChange>0</AccessListChange><AccessList></AccessList></SetParameterAttributesStruct></ParameterList></cwmp:SetParameterAttributes>`,
		`<cwmp:Download><CommandKey>a</CommandKey><FileType>1 Firmware Upgrade Image</FileType><URL>http://h/f</URL><FileSize>3</FileSize><DelaySeconds>0</DelaySeconds></cwmp:Download>`,
	} {
		f.Add([]byte(wrap(NS12, `<cwmp:ID soap:mustUnderstand="1">1</cwmp:ID>`, body)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if env == nil || env.Msg == nil {
			return
		}
		tr, _ := testTree(t, nil)
		d := NewDispatcher(tr, &fakeActions{})
		var resp Message
		var fault *Fault
		if errors.As(err, &fault) {
			resp = fault
		} else {
			resp = d.Dispatch(context.Background(), env.Msg)
		}
		if _, err := Encode(env.NS, env.ID, resp); err != nil {
			t.Fatalf("response %T does not encode: %v", resp, err)
		}
	})
}
