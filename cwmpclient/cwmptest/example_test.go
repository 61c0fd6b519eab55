package cwmptest_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

// A test points the CPE at the double, scripts what the ACS asks, and
// checks what the CPE answered.
func Example() {
	acs := cwmptest.NewServer(nil, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "secret"), cwmptest.WithCookie("sid"))
	defer acs.Close()
	acs.Enqueue(
		cwmptest.GetParameterValues("Device.DeviceInfo.SoftwareVersion"),
		cwmptest.SetParameterValues("key-1", cwmptest.ParameterValue{Name: "Device.ManagementServer.PeriodicInformInterval", Value: "300", Type: "unsignedInt"}),
	)
	// React to a message, e.g. refuse the first Inform so that the CPE
	// has to retry (TR-069 fault 8005).
	acs.SetHook(func(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
		if m.Method == "Inform" && s.Index == 0 {
			return &cwmptest.Reply{Fault: 8005}
		}
		return nil
	})

	// ... configure the CPE with acs.URL and let it run ...

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	sessions, err := acs.WaitSessions(ctx, 2)
	if err != nil {
		fmt.Println("CPE did not complete its sessions:", err)
		return
	}
	last := sessions[len(sessions)-1]
	fmt.Println(last.DeviceID().SerialNumber, last.Inform.HasEvent("1 BOOT"), last.Violations)
	for _, r := range last.Responses() {
		fmt.Println(r.Method, r.Values())
	}

	// Connection Requests go the other way: the double is the client.
	if code, err := cwmptest.ConnectionRequest(ctx, "http://192.0.2.1:7547/", "acs", "pw"); err == nil && code == http.StatusOK {
		fmt.Println("session requested")
	}
}
