//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// cwmpE2EConfig has no acs.url: the command line gives it (--acs-url).
// Its reboot command (%s: a file) only leaves a mark: the tests run as
// root, and a Reboot RPC must not reboot the machine.
const cwmpE2EConfig = `
log_level: info
identity: {manufacturer: ExampleCo, oui: 00A0C9, product_class: SRv6-CPE, serial_number: CW0001, hardware_version: hw1, software_version: 1.0.0}
wan: {interface: wan0, prefix_source: address, debounce: 50ms}
srv6: {locator_len: 48, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
  - {name: vpn6, behavior: End.DT6, function: 0x6}
acs:
  username: cpe
  password: cpe-secret
  retry_minimum_wait: 1
  max_body: 65536
  connection_request: {addr: "[::]:7547", path: /cr, username: acs, password: acs-secret}
  reboot_command: [/bin/sh, -c, "echo reboot >> %s"]
`

// The real daemon with --acs-url in a network namespace, the ACS double
// listening on the namespace's loopback: the boot Inform, RPCs, a
// connection request, malformed and oversized answers, SIGTERM in the
// middle of a session and the restart that follows.
func TestDaemonCWMP(t *testing.T) {
	bin, dir := needRootAndBuild(t)
	ns := cwmpLab(t, "")
	acs := cwmptest.New(cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "cpe-secret"), cwmptest.WithCookie("sid"))
	acsURL := serveInNetns(t, ns, acs)

	cfgPath, mark := filepath.Join(dir, "srv6cpe.yaml"), filepath.Join(dir, "rebooted")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(cwmpE2EConfig, mark)), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	d := &daemon{t: t, bin: bin, ns: ns, log: filepath.Join(dir, "srv6cpe.log"),
		args: []string{"--config", cfgPath, "--state-dir", stateDir, "--acs-url", acsURL}}
	d.start()
	d.waitLog("SIDs programmed", 0, 10*time.Second)

	// 1. The boot Inform.
	first := waitSession(t, d, acs, "the boot session", func(s cwmptest.Session) bool { return s.Ended })
	in := first.Inform
	if !in.HasEvent(cwmpclient.EventBootstrap) || !in.HasEvent(cwmpclient.EventBoot) {
		t.Errorf("boot Inform events %v, want 0 BOOTSTRAP and 1 BOOT", in.Events)
	}
	if want := (cwmptest.DeviceID{Manufacturer: "ExampleCo", OUI: "00A0C9", ProductClass: "SRv6-CPE", SerialNumber: "CW0001"}); in.DeviceID != want {
		t.Errorf("DeviceId %+v, want %+v", in.DeviceID, want)
	}
	names := map[string]string{}
	for _, p := range in.Params {
		names[p.Name] = p.Value
	}
	for _, n := range []string{"Device.RootDataModelVersion", "Device.DeviceInfo.HardwareVersion", "Device.DeviceInfo.SoftwareVersion",
		"Device.DeviceInfo.ProvisioningCode", "Device.ManagementServer.ParameterKey", "Device.ManagementServer.ConnectionRequestURL"} {
		if _, ok := names[n]; !ok {
			t.Errorf("boot Inform ParameterList lacks %s (has %v)", n, names)
		}
	}
	if names["Device.DeviceInfo.HardwareVersion"] != "hw1" || names["Device.DeviceInfo.SoftwareVersion"] != "1.0.0" {
		t.Errorf("versions in the Inform: %v", names)
	}
	t.Logf("boot Inform: events %v, DeviceId %+v, %d parameters", in.Events, in.DeviceID, len(in.Params))

	// The connection request URL carries the WAN address, known once the
	// prefix is (a VALUE CHANGE session reports it if the boot Inform
	// went out first).
	wantCR := "http://[2001:db8:1200::1]:7547/cr"
	waitSession(t, d, acs, "ConnectionRequestURL "+wantCR, func(s cwmptest.Session) bool {
		return s.Inform != nil && informParam(s.Inform, "Device.ManagementServer.ConnectionRequestURL") == wantCR
	})

	// 2. A connection request: bad credentials are refused, good ones
	// start a session in which the ACS reads and writes parameters.
	if code := curlDigest(t, ns, wantCR, "acs:wrong"); code != http.StatusUnauthorized {
		t.Errorf("connection request with a bad password: HTTP %d, want 401", code)
	}
	acs.Enqueue(
		cwmptest.GetParameterValues("Device.DeviceInfo.", "Device.IP.Interface.1.IPv6Prefix."),
		cwmptest.SetParameterValues("key-1", cwmptest.ParameterValue{Name: "Device.ManagementServer.PeriodicInformInterval", Value: "600", Type: "unsignedInt"}),
		cwmptest.GetParameterValues("Device.ManagementServer.PeriodicInformInterval", "Device.ManagementServer.ParameterKey"),
	)
	before := len(acs.Sessions())
	if code := curlDigest(t, ns, wantCR, "acs:acs-secret"); code != http.StatusOK {
		t.Fatalf("connection request: HTTP %d, want 200", code)
	}
	cr := waitSession(t, d, acs, "the connection request session", func(s cwmptest.Session) bool {
		return s.Index >= before && s.Ended && s.Inform.HasEvent(cwmpclient.EventConnectionRequest)
	})
	resps := cr.Responses()
	if len(resps) != 3 {
		t.Fatalf("connection request session answered %d requests, want 3: %+v", len(resps), resps)
	}
	if v := resps[0].Values(); v["Device.DeviceInfo.SerialNumber"] != "CW0001" || v["Device.IP.Interface.1.IPv6Prefix.1.Prefix"] != "2001:db8:1200::/40" {
		t.Errorf("GetParameterValues: %v", v)
	}
	if resps[1].Method != "SetParameterValuesResponse" || resps[1].Text("Status") != "0" {
		t.Errorf("SetParameterValues answered %s status %q", resps[1].Method, resps[1].Text("Status"))
	}
	if v := resps[2].Values(); v["Device.ManagementServer.PeriodicInformInterval"] != "600" || v["Device.ManagementServer.ParameterKey"] != "key-1" {
		t.Errorf("values after the SetParameterValues: %v", v)
	}

	// 3. Malformed SOAP, then an answer over acs.max_body: the session
	// ends, the daemon lives, and the next session works.
	before = len(acs.Sessions())
	from := d.logSize()
	acs.Enqueue(cwmptest.RawEnvelope("Garbage", []byte("<soap:Envelope><unclosed>")))
	var oversized sync.Once
	acs.SetHook(func(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
		var r *cwmptest.Reply
		if m.Method == "Fault" {
			oversized.Do(func() { r = &cwmptest.Reply{Body: bytes.Repeat([]byte("<a>"), 100_000)} })
		}
		return r
	})
	if code := curlDigest(t, ns, wantCR, "acs:acs-secret"); code != http.StatusOK {
		t.Fatalf("connection request: HTTP %d, want 200", code)
	}
	bad := waitSession(t, d, acs, "the malformed-SOAP session", func(s cwmptest.Session) bool {
		_, ok := sessionMessage(s, "Fault")
		return s.Index >= before && ok
	})
	if f, ok := sessionMessage(bad, "Fault"); !ok {
		t.Errorf("malformed envelope: no CWMP fault from the CPE; messages %v", methods(bad))
	} else if code, _ := f.Fault(); code != cwmpclient.FaultInvalidArguments {
		t.Errorf("malformed envelope: fault %d, want %d", code, cwmpclient.FaultInvalidArguments)
	}
	acs.SetHook(nil)
	d.waitLog("session failed", from, 10*time.Second)
	before = len(acs.Sessions())
	if code := curlDigest(t, ns, wantCR, "acs:acs-secret"); code != http.StatusOK {
		t.Fatalf("connection request after the bad session: HTTP %d, want 200", code)
	}
	waitSession(t, d, acs, "a clean session after the bad one", func(s cwmptest.Session) bool {
		return s.Index >= before && s.Ended && len(s.Violations) == 0
	})
	if d.cmd.ProcessState != nil {
		t.Fatalf("srv6cpe exited: %v", d.cmd.ProcessState)
	}

	// 4. SIGTERM while the ACS holds the Inform of a scheduled session:
	// the daemon exits 0 and the events stay in the state dir.
	acs.Enqueue(cwmptest.ScheduleInform(1, "sched-1"))
	if code := curlDigest(t, ns, wantCR, "acs:acs-secret"); code != http.StatusOK {
		t.Fatalf("connection request: HTTP %d, want 200", code)
	}
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	acs.SetHook(func(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
		if m.Method == "Inform" && s.Inform.HasEvent(cwmpclient.EventScheduled) {
			select {
			case held <- struct{}{}:
			default:
			}
			<-release
			return &cwmptest.Reply{Close: true}
		}
		return nil
	})
	select {
	case <-held:
	case <-time.After(15 * time.Second):
		t.Fatal("no 3 SCHEDULED Inform within 15s")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM mid-session, want 0", code)
	}
	close(release)
	acs.SetHook(nil)
	events, err := os.ReadFile(filepath.Join(stateDir, "cwmp-events.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{cwmpclient.EventScheduled, cwmpclient.EventMScheduleInform, "sched-1"} {
		if !bytes.Contains(events, []byte(e)) {
			t.Errorf("cwmp-events.json after SIGTERM lacks %q:\n%s", e, events)
		}
	}

	// 5. Restart (no reboot): the undelivered events go out again, with no
	// 1 BOOT (TR-069 keeps it for a power-on or reset) and no new 0
	// BOOTSTRAP (same ACS).
	before = len(acs.Sessions())
	from = d.logSize()
	d.start()
	d.waitLog("agent restarted without a device reboot", from, 10*time.Second)
	again := waitSession(t, d, acs, "the session after the restart", func(s cwmptest.Session) bool {
		return s.Index >= before && s.Ended
	})
	if !again.Inform.HasEvent(cwmpclient.EventScheduled) || !again.Inform.HasEvent(cwmpclient.EventMScheduleInform) ||
		again.Inform.HasEvent(cwmpclient.EventBootstrap) || again.Inform.HasEvent(cwmpclient.EventBoot) {
		t.Errorf("Inform after the restart: events %v, want 3 SCHEDULED and M ScheduleInform again, no 0 BOOTSTRAP, no 1 BOOT", again.Inform.Events)
	}
	t.Logf("Inform after a restart without reboot: events %v", again.Inform.Events)

	// 6. A Reboot RPC: the board's reboot command runs after the session,
	// and the Inform after the (simulated) reboot carries M Reboot.
	acs.Enqueue(cwmptest.Reboot("rb-1"))
	if code := curlDigest(t, ns, wantCR, "acs:acs-secret"); code != http.StatusOK {
		t.Fatalf("connection request: HTTP %d, want 200", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(mark); string(b) != "reboot\n"; b, _ = os.ReadFile(mark) {
		if time.Now().After(deadline) {
			t.Fatalf("reboot command not run within 10s (mark file %q)", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	before = len(acs.Sessions())
	d.start()
	rb := waitSession(t, d, acs, "the session after the reboot", func(s cwmptest.Session) bool {
		return s.Index >= before && s.Ended
	})
	if !slices.Contains(rb.Inform.Events, cwmptest.Event{Code: cwmpclient.EventMReboot, CommandKey: "rb-1"}) {
		t.Errorf("Inform after the Reboot RPC: events %v, want M Reboot rb-1", rb.Inform.Events)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}

	for _, s := range acs.Sessions() {
		if s.Inform != nil {
			t.Logf("session #%d: events %v, CPE sent %v, retry count %s, ended %v", s.Index, s.Inform.Events, methods(s), s.Inform.RetryCount, s.Ended)
		}
	}
	validateAll(t, acs.Sessions())
}

// SIGHUP with a new acs.url in the file: the client restarts and
// bootstraps with the new ACS; a file with a bad acs section changes
// nothing.
func TestDaemonCWMPReload(t *testing.T) {
	bin, dir := needRootAndBuild(t)
	ns := cwmpLab(t, "r")
	acs1, acs2 := cwmptest.New(), cwmptest.New()
	url1, url2 := serveInNetns(t, ns, acs1), serveInNetns(t, ns, acs2)

	cfgPath := filepath.Join(dir, "srv6cpe.yaml")
	write := func(acsURL string) {
		doc := strings.Replace(fmt.Sprintf(cwmpE2EConfig, filepath.Join(dir, "rebooted")), "acs:\n", "acs:\n  url: "+acsURL+"\n", 1)
		if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(url1)
	d := &daemon{t: t, bin: bin, ns: ns, log: filepath.Join(dir, "srv6cpe.log"),
		args: []string{"--config", cfgPath, "--state-dir", filepath.Join(dir, "state")}}
	d.start()
	waitSession(t, d, acs1, "the boot session with the first ACS", func(s cwmptest.Session) bool {
		return s.Ended && s.Inform.HasEvent(cwmpclient.EventBootstrap)
	})

	from := d.logSize()
	write("ftp://nowhere/")
	d.signal(syscall.SIGHUP)
	d.waitLog(`acs.url: \"ftp://nowhere/\"`, from, 5*time.Second)

	write(url2)
	d.signal(syscall.SIGHUP)
	in := waitSession(t, d, acs2, "a session with the second ACS", func(s cwmptest.Session) bool { return s.Ended }).Inform
	if !in.HasEvent(cwmpclient.EventBootstrap) {
		t.Errorf("first Inform to the new ACS: events %v, want 0 BOOTSTRAP", in.Events)
	}
	t.Logf("after SIGHUP with a new acs.url: %v", in.Events)
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	validateAll(t, append(acs1.Sessions(), acs2.Sessions()...))
}

// cwmpLab makes a namespace with loopback up and a WAN veth (both ends
// inside it) carrying 2001:db8:1200::1/40, deleted when the test ends.
func cwmpLab(t *testing.T, tag string) string {
	t.Helper()
	ns := fmt.Sprintf("cw%d%scpe", os.Getpid(), tag)
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "-n", ns, "link", "add", "wan0", "type", "veth", "peer", "name", "wanpeer")
	for _, l := range []string{"lo", "wan0", "wanpeer"} {
		sh(t, "ip", "-n", ns, "link", "set", l, "up")
	}
	sh(t, "ip", "-n", ns, "addr", "add", "2001:db8:1200::1/40", "dev", "wan0", "nodad")
	return ns
}

// serveInNetns serves acs on 127.0.0.1 of namespace ns, from this process,
// and returns its URL.
func serveInNetns(t *testing.T, ns string, acs *cwmptest.Server) string {
	t.Helper()
	ln, err := listenInNetns(ns, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: acs, ConnContext: acs.ConnContext, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/acs"
}

// listenInNetns opens a listening socket inside namespace ns: a socket
// keeps the namespace it was made in.
func listenInNetns(ns, addr string) (ln net.Listener, err error) {
	err = netnstest.Do(ns, func() error {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// curlDigest sends a connection request with curl --digest from inside the
// namespace and returns the HTTP status. While the CPE still winds down a
// session it answers 503 (TR-069 §3.2.2), so the request is repeated, as an
// ACS does, for a bounded time.
func curlDigest(t *testing.T, ns, url, userpass string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
			"--max-time", "10", "--digest", "-u", userpass, url).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", url, err)
		}
		var code int
		if _, err := fmt.Sscan(string(out), &code); err != nil {
			t.Fatalf("curl printed %q", out)
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return code
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSession polls the double until a session satisfies ok, for 20s,
// failing early if the daemon exits.
func waitSession(t *testing.T, d *daemon, acs *cwmptest.Server, what string, ok func(cwmptest.Session) bool) cwmptest.Session {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range acs.Sessions() {
			if s.Inform != nil && ok(s) {
				return s
			}
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("waiting for %s: srv6cpe exited: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	var got []string
	for _, s := range acs.Sessions() {
		if s.Inform != nil {
			got = append(got, fmt.Sprintf("#%d %v ended=%v %v", s.Index, s.Inform.Events, s.Ended, methods(s)))
		}
	}
	t.Fatalf("no %s within 20s; sessions:\n%s", what, strings.Join(got, "\n"))
	return cwmptest.Session{}
}

func informParam(in *cwmptest.Inform, name string) string {
	for _, p := range in.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

func sessionMessage(s cwmptest.Session, method string) (cwmptest.Message, bool) {
	for _, m := range s.Messages {
		if m.Method == method {
			return m, true
		}
	}
	return cwmptest.Message{}, false
}

func methods(s cwmptest.Session) []string {
	var out []string
	for _, m := range s.Messages {
		out = append(out, cmpOr(m.Method, "(empty)"))
	}
	return out
}

func cmpOr(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// validateAll runs every message the daemon sent through the BBF schemas.
func validateAll(t *testing.T, sessions []cwmptest.Session) {
	t.Helper()
	byVersion := map[string][][]byte{}
	for _, s := range sessions {
		for _, m := range s.Messages {
			if len(bytes.TrimSpace(m.Raw)) == 0 {
				continue
			}
			v := "1-4"
			if m.Namespace == cwmpclient.NS10 {
				v = "1-0"
			}
			byVersion[v] = append(byVersion[v], m.Raw)
		}
	}
	n := 0
	for v, msgs := range byVersion {
		if err := cwmpschema.Validate(t, v, msgs...); err != nil {
			t.Error(err)
		}
		n += len(msgs)
	}
	if n == 0 {
		t.Error("no message to validate")
	}
	t.Logf("%d messages from the daemon validated against the BBF CWMP schemas", n)
}

// The flag is checked like the file's key.
func TestACSURLFlagValidated(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config", "../../examples/srv6cpe.yaml", "--acs-url", "ftp://acs/"}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), `acs.url: "ftp://acs/"`) {
		t.Errorf("exit %d, stderr %q; want %d and the acs.url complaint", code, stderr.String(), exitUsage)
	}
}
