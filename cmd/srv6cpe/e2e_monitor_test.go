package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

// monitorE2EConfig is one CPE of the monitoring e2e; %s is its serial
// number.
const monitorE2EConfig = `
log_level: info
identity: {manufacturer: ExampleCo, oui: 00A0C9, product_class: SRv6-CPE, serial_number: %s, hardware_version: hw1, software_version: 1.0.0}
wan: {interface: wan0, prefix_source: address, debounce: 50ms}
srv6: {locator_len: 48, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
acs:
  username: cpe
  password: cpe-secret
  retry_minimum_wait: 1
  connection_request: {addr: "[::]:7547", path: /cr, username: acs, password: acs-secret}
  reboot_command: [/bin/true]
`

// monitorACS plays the controller for two CPEs on one ACS double: a
// request queue per device (by serial number), and <Name>Response to the
// CPE's Stats_* RPCs.
type monitorACS struct {
	mu    sync.Mutex
	queue map[string][]cwmptest.Request
}

func (c *monitorACS) enqueue(serial string, r cwmptest.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue[serial] = append(c.queue[serial], r)
}

func (c *monitorACS) hook(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
	switch {
	case m.Method == "Stats_Monitor_Data_Resp", m.Method == "Stats_IP_Change_Report":
		return answerVendor(m)
	case m.Method == "", strings.HasSuffix(m.Method, "Response"), m.Method == "Fault":
		if m.Method == "InformResponse" {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		serial := s.DeviceID().SerialNumber
		if q := c.queue[serial]; len(q) > 0 {
			c.queue[serial] = q[1:]
			return &cwmptest.Reply{Request: &q[0]}
		}
		return &cwmptest.Reply{End: true}
	}
	return nil
}

// vendorMessages lists the CPE's messages named method, with their fields.
func vendorMessages(acs *cwmptest.Server, serial, method string) []map[string]string {
	var out []map[string]string
	for _, s := range acs.Sessions() {
		if s.DeviceID().SerialNumber != serial {
			continue
		}
		for _, m := range s.Messages {
			if m.Method != method || m.Body == nil {
				continue
			}
			f := map[string]string{}
			for _, c := range m.Body.ChildElements() {
				f[c.Tag] = strings.TrimSpace(c.Text())
			}
			out = append(out, f)
		}
	}
	return out
}

// waitVendor waits for a message named method from serial, after the
// first skip ones, that ok accepts.
func waitVendor(t *testing.T, acs *cwmptest.Server, serial, method string, skip int, what string, ok func(map[string]string) bool) (map[string]string, int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		l := vendorMessages(acs, serial, method)
		for i := skip; i < len(l); i++ {
			if ok(l[i]) {
				return l[i], i + 1
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s from %s within 30s; got %v", what, serial, vendorMessages(acs, serial, method))
	return nil, 0
}

// Two real daemons in two namespaces joined by a veth: a STAMP sender task
// on A and a reflector task on B, configured by Stats_Monitor_Config_Req;
// A reports every MonitorCycle; renumbering A sends one IP change report
// (with the VALUE CHANGE of its prefix and locator), the controller
// re-targets B, and A's reports go on under the same MonitorTaskID from
// its new address. Every message is checked against the BBF schemas.
func TestDaemonMonitoring(t *testing.T) {
	bin, dir := needRootAndBuild(t)
	nsA, nsB := fmt.Sprintf("mo%da", os.Getpid()), fmt.Sprintf("mo%db", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "link", "add", "wan0", "netns", nsA, "type", "veth", "peer", "name", "wan0", "netns", nsB)
	const (
		addrA, newA, addrB = "2001:db8:1200::1", "2001:db8:3400::1", "2001:db8:5600::1"
		prefixA, newPrefix = "2001:db8:1200::/40", "2001:db8:3400::/40"
	)
	for ns, a := range map[string]string{nsA: addrA, nsB: addrB} {
		sh(t, "ip", "-n", ns, "link", "set", "wan0", "up")
		sh(t, "ip", "-n", ns, "addr", "add", a+"/40", "dev", "wan0", "nodad")
	}
	// The other side's /40s are on the link.
	for _, p := range []string{"2001:db8:5600::/40"} {
		sh(t, "ip", "-n", nsA, "route", "add", p, "dev", "wan0")
	}
	for _, p := range []string{prefixA, newPrefix} {
		sh(t, "ip", "-n", nsB, "route", "add", p, "dev", "wan0")
	}

	ctl := &monitorACS{queue: map[string][]cwmptest.Request{}}
	acs := cwmptest.New(cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "cpe-secret"), cwmptest.WithHook(ctl.hook))
	ctl.enqueue("CPEB", cwmptest.Vendor("Stats_Monitor_Config_Req", [2]string{"MonitorTaskID", "task-ab"}, [2]string{"Role", "Reflector"},
		[2]string{"LocalIP", ""}, [2]string{"PeerIP", addrA}, [2]string{"Protocol", "STAMP"}, [2]string{"Port", "862"}))
	ctl.enqueue("CPEA", cwmptest.Vendor("Stats_Monitor_Config_Req", [2]string{"MonitorTaskID", "task-ab"}, [2]string{"Role", "Sender"},
		[2]string{"LocalIP", ""}, [2]string{"PeerIP", addrB}, [2]string{"Protocol", "STAMP"}, [2]string{"Port", "862"},
		[2]string{"MonitorCycle", "1"}, [2]string{"PacketInterval", "50"}))

	daemons := map[string]*daemon{}
	for serial, ns := range map[string]string{"CPEA": nsA, "CPEB": nsB} {
		url := serveInNetns(t, ns, acs)
		cfg := filepath.Join(dir, serial+".yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(monitorE2EConfig, serial)), 0o600); err != nil {
			t.Fatal(err)
		}
		d := &daemon{t: t, bin: bin, ns: ns, log: filepath.Join(dir, serial+".log"),
			args: []string{"--config", cfg, "--state-dir", filepath.Join(dir, serial+"-state"), "--acs-url", url}}
		d.start()
		daemons[serial] = d
	}
	for _, d := range daemons {
		d.waitLog("monitoring task configured", 0, 20*time.Second)
	}

	// Reports from A with the measured delay of the veth.
	rep, next := waitVendor(t, acs, "CPEA", "Stats_Monitor_Data_Resp", 0, "report with a latency", func(f map[string]string) bool {
		return f["Latency"] != ""
	})
	lat, err := strconv.ParseFloat(rep["Latency"], 64)
	if err != nil || lat <= 0 || lat > 50 || rep["MonitorTaskID"] != "task-ab" || rep["LocalIP"] != addrA || rep["PeerIP"] != addrB ||
		rep["DeviceID"] != "00A0C9-SRv6-CPE-CPEA" {
		t.Errorf("report %v", rep)
	}
	if _, err := time.Parse(time.RFC3339, rep["ReportTimestamp"]); err != nil {
		t.Errorf("ReportTimestamp: %v", err)
	}
	t.Logf("report before renumbering: %v", rep)

	// Renumber A.
	renumbered := time.Now()
	sh(t, "ip", "-n", nsA, "addr", "del", addrA+"/40", "dev", "wan0")
	sh(t, "ip", "-n", nsA, "addr", "add", newA+"/40", "dev", "wan0", "nodad")
	ipc, _ := waitVendor(t, acs, "CPEA", "Stats_IP_Change_Report", 0, "IP change report", func(map[string]string) bool { return true })
	t.Logf("IP change report %s after the renumbering: %v", time.Since(renumbered).Round(time.Millisecond), ipc)
	if ipc["MonitorTaskID"] != "task-ab" || ipc["OldIP"] != addrA || ipc["NewIP"] != newA || ipc["EventCode"] != "IP_CHANGE" {
		t.Errorf("IP change report %v", ipc)
	}
	// Its session's Inform carries the VALUE CHANGE of the prefix and locator.
	found := false
	for _, s := range acs.Sessions() {
		if _, ok := sessionMessage(s, "Stats_IP_Change_Report"); ok && s.DeviceID().SerialNumber == "CPEA" {
			found = true
			if !s.Inform.HasEvent("4 VALUE CHANGE") || informParam(s.Inform, "Device.X_ITU-INT_SRv6.IPv6Prefix") != newPrefix ||
				informParam(s.Inform, "Device.X_ITU-INT_SRv6.Locator.Prefix") != "2001:db8:3405::/48" {
				t.Errorf("the IP change report's session: events %v, parameters %v", s.Inform.Events, s.Inform.Params)
			}
		}
	}
	if !found {
		t.Error("no session holds the IP change report")
	}
	// The controller re-targets the reflector (§8.3 steps 6-8).
	ctl.enqueue("CPEB", cwmptest.Vendor("Stats_Monitor_Update_Req", [2]string{"MonitorTaskID", "task-ab"}, [2]string{"UpdatedPeerIP", newA}))
	if code := curlDigest(t, nsB, "http://["+addrB+"]:7547/cr", "acs:acs-secret"); code != 200 {
		t.Fatalf("connection request to B: HTTP %d", code)
	}
	daemons["CPEB"].waitLog("monitoring task re-targeted", 0, 20*time.Second)
	// Reports go on under the same task from the new address, answered:
	// three cycles on, every probe counted was sent after B's re-target
	// (a probe is lost after 2 s unanswered).
	skip := max(next, len(vendorMessages(acs, "CPEA", "Stats_Monitor_Data_Resp"))+3)
	rep, _ = waitVendor(t, acs, "CPEA", "Stats_Monitor_Data_Resp", skip, "answered report from the new address", func(f map[string]string) bool {
		return f["LocalIP"] == newA
	})
	if rep["Latency"] == "" || rep["PacketLossRate"] != "0.00" {
		t.Errorf("probes from the new address not answered: %v", rep)
	}
	if rep["MonitorTaskID"] != "task-ab" || rep["PeerIP"] != addrB {
		t.Errorf("report after renumbering %v", rep)
	}
	t.Logf("report after renumbering: %v", rep)
	if n := len(vendorMessages(acs, "CPEA", "Stats_IP_Change_Report")); n != 1 {
		t.Errorf("%d IP change reports, want 1", n)
	}
	for _, s := range acs.Sessions() {
		for _, v := range s.Violations {
			t.Errorf("session %d: %s", s.Index, v)
		}
	}
	validateAll(t, acs.Sessions())
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
