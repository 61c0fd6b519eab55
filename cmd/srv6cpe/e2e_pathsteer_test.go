package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// §8.4 / §9.5 dynamic paths in the BGP lab: cpe1 has a path to cpe2 (its
// BGP next hop) through an End SID on the transit router wan. The VPN
// routes cpe1 learned from cpe2 carry the path's segment list, lan1 -> lan2
// traffic crosses wan with that SRH, and the enhanced-loopback probe along
// the path (transit End, cpe2's End.DX6) measures its latency.
func TestDynamicPathSteering(t *testing.T) {
	l := newBGPLab(t, "dp4", true)
	c1, c2 := l.cpes[0], l.cpes[1]
	const (
		transitSID = "fc00:77::1"
		sid2v4     = "2001:db8:2205:4::" // cpe2's vpn4 (End.DX4) and vpn6 (End.DX6) SIDs
		sid2v6     = "2001:db8:2205:6::"
	)
	wan := l.ns["wan"]
	mustRun(t, "ip", "netns", "exec", wan, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.c1.seg6_enabled=1")
	mustRun(t, "ip", "-n", wan, "-6", "route", "add", transitSID+"/128", "encap", "seg6local", "action", "End", "dev", "c1")

	// The controller's list runs to cpe2's IPv6 service, as a BSID's must.
	paths := fmt.Sprintf(`paths:
  list:
    - {id: via-wan, source: cpe1, destination: "2001:db8:2200::1", segments: ["%s", "%s"], bsid: "2001:db8:1205:b5::", priority: 1}
`, transitSID, sid2v6)
	// At debug level cpe1 logs every probe's latency, as ActivePathInfo shows it.
	cfg1 := strings.Replace(cpeConfig(1, nil), "log_level: info", "log_level: debug", 1)
	if err := os.WriteFile(c1.cfgPath, []byte(cfg1+paths), 0o600); err != nil {
		t.Fatal(err)
	}
	// cpe2's SID filter (on by default with BGP) admits the probes: their
	// outer source is cpe1's tunnel source, inside cpe1's locator.
	cfg2 := cpeConfig(2, nil)
	if err := os.WriteFile(c2.cfgPath, []byte(cfg2), 0o600); err != nil {
		t.Fatal(err)
	}
	l.start(c1)
	l.start(c2)
	for _, c := range l.cpes {
		c.waitStatus(t, "the BGP session to FRR established", 30*time.Second, established)
	}
	waitEncaps(t, c1.ns, []string{
		"192.168.2.0/24 -> " + transitSID + " " + sid2v4,
		lanPrefix6(2) + "/64 -> " + transitSID + " " + sid2v6,
	}, 20*time.Second)
	// cpe2 has no path: straight to cpe1's SIDs.
	waitEncaps(t, c2.ns, []string{"192.168.1.0/24 -> 2001:db8:1205:4::", lanPrefix6(1) + "/64 -> 2001:db8:1205:6::"}, 20*time.Second)

	echo := newUDPEcho(t, l.ns["l2"], l.ns["l1"])
	pcap := filepath.Join(t.TempDir(), "transit.pcap")
	stop := capture(t, wan, "c1", pcap)
	for _, dst := range []string{"192.168.2.2", lanPrefix6(2) + "2"} {
		if err := echo.roundTrip(dst, 3, time.Second); err != nil {
			t.Errorf("UDP lan1 -> %s along the path: %v", dst, err)
		}
	}
	stop()
	pkts, err := readSRv6Pcap(pcap)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range pkts {
		count[fmt.Sprintf("%s srh=%v inner=%d proto=%d", p.outerDst, p.srh, p.inner, p.proto)]++
	}
	for _, w := range []string{transitSID + " srh=true inner=4 proto=17", transitSID + " srh=true inner=41 proto=17"} {
		if count[w] == 0 {
			t.Errorf("no packet towards the transit End SID with an SRH: %q; seen %v", w, count)
		}
	}
	// The SRH lists the path: tshark prints the segments last to first.
	if _, err := exec.LookPath("tshark"); err == nil {
		b, err := exec.Command("tshark", "-r", pcap, "-Y", "ipv6.routing.type == 4 && ipv6.dst == "+transitSID+" && ip",
			"-T", "fields", "-e", "ipv6.routing.srh.addr").Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		out := string(b)
		first := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		if want := sid2v4 + "," + transitSID; first != want {
			t.Errorf("SRH of an IPv4 packet on the transit: %q, want %q", first, want)
		}
		t.Logf("SRH segments (last first) of lan1 -> lan2 IPv4 on the transit: %s", first)
	}

	// ActivePathInfo's latency comes from the loopback probe along the
	// path. The first answer may include the lab's start (neighbour
	// discovery while cpe2 comes up); the fifth is steady state.
	deadline := time.Now().Add(20 * time.Second)
	re := regexp.MustCompile(`dynamic path (?:answers its latency probe|latency).*"active_path_info": "latency ([0-9.]+) ms"`)
	for {
		b, _ := os.ReadFile(c1.logPath)
		if m := re.FindAllSubmatch(b, -1); len(m) >= 5 {
			var all []string
			for _, x := range m {
				all = append(all, string(x[1]))
			}
			msg := fmt.Sprintf("dynamic path via %s to cpe2: loopback probe RTT %s ms (ActivePathInfo's latency; all answers so far: %s ms)",
				transitSID, m[4][1], strings.Join(all, ", "))
			t.Log(msg)
			fmt.Println(msg)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 5 answers to the path's loopback probe within 20s; probe log:\n%s", grepLines(b, "paths"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// grepLines is the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
