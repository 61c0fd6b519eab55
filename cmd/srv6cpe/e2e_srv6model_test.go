//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

// srv6ModelConfig is a CPE the controller has not configured yet: no
// service, no path. %s is the ACS URL.
const srv6ModelConfig = `
log_level: info
identity: {manufacturer: ExampleCo, oui: 00A0C9, product_class: SRv6-CPE, serial_number: CW0002, hardware_version: hw1, software_version: 1.0.0}
wan: {interface: wan0, prefix_source: address, debounce: 50ms}
srv6: {locator_len: 64}
acs:
  url: %s
  username: cpe
  password: cpe-secret
  retry_minimum_wait: 1
  connection_request: {addr: "[::]:7547", path: /cr, username: acs, password: acs-secret}
  reboot_command: [/bin/true]
`

// Q.Suppl.79 §8.1 and §8.4 against the real daemon: the Inform registers
// the CPE with IPv6Enable and SupportedServices; the controller reads the
// prefix and locator, configures SRv6 and an L3VPN service with the
// Appendix I names, and a dynamic path; the SIDs and the BSID appear in
// the kernel; a wrong ServiceSID is refused; the configuration survives a
// restart.
func TestDaemonSRv6Model(t *testing.T) {
	bin, dir := needRootAndBuild(t)
	ns := fmt.Sprintf("i6%dcpe", os.Getpid())
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "-n", ns, "link", "add", "wan0", "type", "veth", "peer", "name", "wanpeer")
	for _, l := range []string{"lo", "wan0", "wanpeer"} {
		sh(t, "ip", "-n", ns, "link", "set", l, "up")
	}
	sh(t, "ip", "-n", ns, "addr", "add", "2001:db8:1200::1/40", "dev", "wan0", "nodad")

	acs := cwmptest.New(cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "cpe-secret"))
	acsURL := serveInNetns(t, ns, acs)
	cfgPath, stateDir := filepath.Join(dir, "srv6cpe.yaml"), filepath.Join(dir, "state")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(srv6ModelConfig, acsURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, bin: bin, ns: ns, log: filepath.Join(dir, "srv6cpe.log"),
		args: []string{"--config", cfgPath, "--state-dir", stateDir}}
	d.start()

	// §8.1 registration: the boot Inform carries the capabilities.
	boot := waitSession(t, d, acs, "the boot session", func(s cwmptest.Session) bool { return s.Ended })
	for name, want := range map[string]string{
		"Device.X_ITU-INT_SRv6.Enable": "true", "Device.X_ITU-INT_SRv6.SupportedServices": "L3VPN",
		"Device.DeviceInfo.HardwareVersion": "hw1", "Device.DeviceInfo.SoftwareVersion": "1.0.0",
	} {
		if got := informParam(boot.Inform, name); got != want {
			t.Errorf("boot Inform %s = %q, want %q", name, got, want)
		}
	}
	d.waitLog("SIDs programmed", 0, 10*time.Second)

	// The controller's session: GPV, the Appendix I SPV, a path, a wrong
	// ServiceSID, a confirming one, and the readback.
	const (
		locator = "2001:db8:12ff:ffff::/64"
		sid     = "2001:db8:12ff:ffff:10::"
		bsid    = "2001:db8:12ff:ffff:b5::"
	)
	str := func(name, value string) cwmptest.ParameterValue {
		return cwmptest.ParameterValue{Name: name, Value: value, Type: "string"}
	}
	acs.Enqueue(
		cwmptest.GetParameterValues("IPv6Prefix", "SRv6Locator", "ConnectionStatus"),
		cwmptest.SetParameterValues("cfg-1",
			str("ServiceID", "vpn1"), str("ServiceType", "L3VPN"), str("VPNInstance", "blue"),
			str("LANPrefixes", "2001:db8:1200:10::/64"), str("RouteDistinguisher", "65000:1"),
			str("ImportRT", "65000:1"), str("ExportRT", "65000:1"), str("Device.X_ITU-INT_SRv6.Service.1.Function", "0x10")),
		cwmptest.SetParameterValues("path-1",
			str("PathID", "p1"), str("SourceDevice", "CW0002"), str("DestinationDevice", "CW0003"),
			str("SegmentList", `["2001:db8:2200::1:End", "2001:db8:22ff:ffff:10::"]`), str("TargetBSID", bsid+"BSID"),
			cwmptest.ParameterValue{Name: "PathPriority", Value: "1", Type: "unsignedInt"}),
		cwmptest.SetParameterValues("bad-sid", str("ServiceSID", "2001:db8:12ff:ffff:11::")),
		cwmptest.SetParameterValues("good-sid", str("ServiceSID", sid)),
		cwmptest.GetParameterValues("ServiceSID", "TunnelStatus", "PathID", "ConfigStatus", "ActivePathInfo", "ErrorDetails"),
	)
	before := len(acs.Sessions())
	if code := curlDigest(t, ns, "http://[2001:db8:1200::1]:7547/cr", "acs:acs-secret"); code != 200 {
		t.Fatalf("connection request: HTTP %d", code)
	}
	s := waitSession(t, d, acs, "the controller's session", func(s cwmptest.Session) bool { return s.Index >= before && s.Ended })
	resps := s.Responses()
	if len(resps) != 6 {
		t.Fatalf("the CPE answered %d requests, want 6: %v", len(resps), methods(s))
	}
	gpv := resps[0].Values()
	if gpv["IPv6Prefix"] != "2001:db8:1200::/40" || gpv["SRv6Locator"] != "loc1: "+locator || gpv["ConnectionStatus"] != "Registered" {
		t.Errorf("GPV of IPv6Prefix, SRv6Locator, ConnectionStatus: %v", gpv)
	}
	for i, what := range []string{"the SRv6 + L3VPN SPV", "the path SPV", "", "the confirming ServiceSID"} {
		if what != "" && (resps[i+1].Method != "SetParameterValuesResponse" || resps[i+1].Text("Status") != "0") {
			code, msg := resps[i+1].Fault()
			t.Errorf("%s answered %s (fault %d %s)", what, resps[i+1].Method, code, msg)
		}
	}
	if code, msg := resps[3].Fault(); code == 0 || !strings.Contains(msg, "2001:db8:12ff:ffff:11::") || !strings.Contains(msg, sid) {
		t.Errorf("wrong ServiceSID answered %s, fault %d %q; want a fault naming both SIDs", resps[3].Method, code, msg)
	} else if spv := resps[3].SPVFaults(); code == cwmpclient.FaultInvalidArguments && spv["ServiceSID"] != cwmpclient.FaultInvalidValue {
		t.Errorf("wrong ServiceSID: per-parameter faults %v, want 9007 for ServiceSID", spv)
	} else {
		t.Logf("wrong ServiceSID: fault %d %q, per parameter %v", code, msg, spv)
	}
	got := resps[5].Values()
	// DestinationDevice CW0003 is a name, not an address: nothing is
	// steered, and nothing answers the latency probe in this lone namespace.
	for name, want := range map[string]string{"ServiceSID": sid, "TunnelStatus": "Up", "PathID": "p1", "ConfigStatus": "Active",
		"ActivePathInfo": `SegmentList=["2001:db8:2200::1", "2001:db8:22ff:ffff:10::"]; latency unknown: `,
		"ErrorDetails":   `DestinationDevice "CW0003" is not an IPv6 address or prefix`} {
		if !strings.HasPrefix(got[name], want) {
			t.Errorf("GPV %s = %q, want %q...", name, got[name], want)
		}
	}

	// The kernel holds the service SID (End.DT6 in VPNInstance's VRF, or
	// End.DX6 nh6 :: where the kernel has no VRF) and the binding SID with
	// the segment list.
	wantRoutes := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			lines := routeLines(t, ns)
			hasSID := slices.ContainsFunc(lines, func(l string) bool {
				return strings.HasPrefix(l, sid+" ") && (strings.Contains(l, "End.DT6") || strings.Contains(l, "End.DX6"))
			})
			hasBSID := slices.ContainsFunc(lines, func(l string) bool {
				return strings.HasPrefix(l, bsid+" ") && strings.Contains(l, "End.B6.Encaps") &&
					strings.Contains(l, "2001:db8:2200::1") && strings.Contains(l, "2001:db8:22ff:ffff:10::")
			})
			if hasSID && hasBSID {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kernel routes lack %s End.DT6/DX6 or %s End.B6.Encaps:\n%s", sid, bsid, strings.Join(lines, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wantRoutes()
	t.Logf("kernel routes after the controller's SPVs:\n%s", strings.Join(routeLines(t, ns), "\n"))

	// A power cut: the daemon dies and the routes go with the kernel's
	// state; the next start restores the controller's configuration.
	d.stop(syscall.SIGKILL)
	sh(t, "ip", "-n", ns, "-6", "route", "flush", "proto", "198")
	from := d.logSize()
	restart := time.Now()
	d.start()
	d.waitLog("controller configuration applied over the config file", from, 10*time.Second)
	wantRoutes()
	t.Logf("after a power cut: the controller's SID and BSID back in the kernel %s after the daemon started", time.Since(restart).Round(time.Millisecond))
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	validateAll(t, acs.Sessions())
}
