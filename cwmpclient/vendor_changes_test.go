package cwmpclient

import (
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// Vendor RPCs queued with SendVendorWithChanges ride the session whose
// Inform carries the changes the same call noticed, even with sessions
// starting all the while; done gets each message's answer by index.
func TestSendVendorWithChanges(t *testing.T) {
	cwmpschema.Tool(t)
	acs := cwmptest.NewServer(t, cwmptest.WithHook(func(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
		if m.Method == "X_Report" {
			return answerVendor(m)
		}
		return nil
	}))
	cfg := testConfig()
	cfg.URL = acs.URL
	c := newLoopbackClient(t, cfg)
	var prefix atomic.Value
	prefix.Store("2001:db8:1::/48")
	if err := c.Tree().Register("Device.X_Test.Prefix", Param{Type: TypeString, ForceActive: true,
		Get: func([]uint32) (string, error) { return prefix.Load().(string), nil }}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckNotifications(); err != nil { // the first sighting
		t.Fatal(err)
	}
	// Sessions run back to back while the change and the report are queued.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.session(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; len(acs.Sessions()) < 3 && i < 500; i++ {
		time.Sleep(2 * time.Millisecond)
	}
	answers := make(chan string, 2)
	prefix.Store("2001:db8:2::/48")
	err := c.SendVendorWithChanges([]VendorMessage{{Name: "X_Report", Fields: []Field{{Name: "N", Value: "0"}}}, {Name: "X_Report", Fields: []Field{{Name: "N", Value: "1"}}}},
		func(i int, resp Message) {
			if v, ok := resp.(VendorMessage); ok && v.Name == "X_ReportResponse" {
				answers <- string(rune('0' + i))
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{<-answers: true, <-answers: true}
	close(stop)
	wg.Wait()
	if !got["0"] || !got["1"] {
		t.Errorf("answers for %v", got)
	}
	found := 0
	for _, s := range acs.Sessions() {
		checkDoubleSession(t, s)
		reports := 0
		for _, m := range s.Messages {
			if m.Method == "X_Report" {
				reports++
			}
		}
		if reports == 0 {
			continue
		}
		found += reports
		if !s.Inform.HasEvent(EventValueChange) || informParam(s.Inform, "Device.X_Test.Prefix") != "2001:db8:2::/48" {
			t.Errorf("session %d carries the reports without the VALUE CHANGE: %v %v", s.Index, s.Inform.Events, s.Inform.Params)
		}
	}
	if found != 2 {
		t.Errorf("%d reports sent, want 2", found)
	}
	if err := c.SendVendorWithChanges([]VendorMessage{{Name: "bad name"}}, nil); err == nil {
		t.Error("a message name that is no XML name was queued")
	}
}

func informParam(in *cwmptest.Inform, name string) string {
	for _, p := range in.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// answerVendor answers a CPE-originated vendor RPC with an empty
// <Name>Response, as a controller that knows the RPC does.
func answerVendor(m cwmptest.Message) *cwmptest.Reply {
	var id strings.Builder
	_ = xml.EscapeText(&id, []byte(m.ID))
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="` + m.Namespace + `">` +
		`<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">` + id.String() + `</cwmp:ID></soap-env:Header>` +
		`<soap-env:Body><cwmp:` + m.Method + `Response/></soap-env:Body></soap-env:Envelope>`
	return &cwmptest.Reply{Body: []byte(body)}
}
