package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/agent"
)

func TestRenderPolicy(t *testing.T) {
	a := netip.MustParseAddr
	at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	v := agent.ControlPolicyView{Policies: []agent.PolicyStatus{{
		Name: "sr-policy", Color: 100, Endpoint: a("2001:db8:2200::1"), VPN: "vpn4", ProbeInterval: 10 * time.Millisecond,
		Constituents: []agent.PolicyConstituentStatus{
			{Color: 10, Name: "path1", Lists: []agent.PolicyListStatus{{Segments: []netip.Addr{a("2001:db8:a::1"), a("2001:db8:2205:6::")}, Weight: 1,
				State: "down", Measured: at, Delay: 1500 * time.Microsecond, Jitter: 100 * time.Microsecond, LossPercent: 30, HasMetrics: true}}},
			{Color: 20, Name: "path2", Lists: []agent.PolicyListStatus{{Segments: []netip.Addr{a("2001:db8:b::1"), a("2001:db8:2205:6::")}, Weight: 1,
				State: "unknown", Bandwidth: 40e6, HasBandwidth: true, ProbeError: "raw socket: operation not permitted"}}},
		},
		Services: []agent.PolicyServiceStatus{
			{Name: "conference", Selector: "irp1", Table: 3000, Priority: 2, Colors: []uint32{20}, Since: at, Installed: true,
				Paths: []agent.PolicyPathStatus{{Color: 20, List: 1, Weight: 1}}},
			{Name: "crm", Selector: "irp2", Table: 3001, Fallback: true, Reason: "no constituent meets its thresholds", Since: at,
				Paths: []agent.PolicyPathStatus{{Color: 20, List: 1, Weight: 1}}},
		},
		Events: []agent.PolicyEvent{{At: at, Service: "conference", Kind: "degrade", To: "priority 2: color 20 list 1 weight 1", Reason: "priority 1 fails: color 10 (path1): down"}},
		Notes:  []string{"flows[2] (service \"crm\"): not installed for IPv4"},
	}}}
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := human(renderPolicy)(body)
	if err != nil {
		t.Fatal(err)
	}
	want := `policy sr-policy: color 100 to 2001:db8:2200::1, steers vpn vpn4, probes every 10ms

COLOR  NAME   LIST  SEGMENTS                         WEIGHT  STATE                                                 DELAY ms  JITTER ms  LOSS %  BANDWIDTH  MEASURED
10     path1  1     2001:db8:a::1,2001:db8:2205:6::  1       down                                                  1.500     0.100      30.00   -          2026-11-22T03:00:00Z
20     path2  1     2001:db8:b::1,2001:db8:2205:6::  1       unknown (probe: raw socket: operation not permitted)  -         -          -       40M        -

SERVICE     SELECTOR  TABLE  ACTIVE                                SINCE                 INSTALLED
conference  irp1      3000   priority 2: color 20 list 1 weight 1  2026-11-22T03:00:00Z  yes
crm         irp2      3001   fallback: color 20 list 1 weight 1    2026-11-22T03:00:00Z  pending
  crm in fallback: no constituent meets its thresholds
  note: flows[2] (service "crm"): not installed for IPv4

AT                    SERVICE     EVENT    TO                                    REASON
2026-11-22T03:00:00Z  conference  degrade  priority 2: color 20 list 1 weight 1  priority 1 fails: color 10 (path1): down
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got, _ = human(renderPolicy)([]byte(`{"policies":[]}`))
	if string(got) != "policy: no SRv6 policies configured\n" {
		t.Errorf("no policies: %q", got)
	}
}

// TestPolicyRestoreCommand: the command posts its two arguments and says
// what the daemon did; a missing argument is a usage error.
func TestPolicyRestoreCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Method + " " + r.URL.String()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"restored":true}` + "\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	var stdout, stderr bytes.Buffer
	if code := run([]string{"policy", "restore", "--socket", sock, "sr-policy", "crm"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if got := <-asked; got != "POST /v1/policy/restore?policy=sr-policy&service=crm" {
		t.Errorf("request %q", got)
	}
	if stdout.String() != "policy sr-policy service crm: restored to its best priority that meets the thresholds\n" {
		t.Errorf("stdout %q", stdout.String())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "restore", "--socket", sock, "sr-policy"}, "srv6cpectl policy restore: missing argument SERVICE (see 'srv6cpectl help policy restore')\n"},
		{[]string{"policy", "restore", "--socket", sock, "a", "b", "c"}, "srv6cpectl policy restore: unexpected argument \"c\" (see 'srv6cpectl help policy restore')\n"},
		{[]string{"policy", "frob"}, "srv6cpectl policy: unknown command \"frob\" (see 'srv6cpectl help policy')\n"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(tc.args, &stdout, &stderr); code != exitUsage || stderr.String() != tc.want || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	stdout.Reset()
	if code := run([]string{"help", "policy"}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "\n  restore ") {
		t.Errorf("help policy: %d %q", code, stdout.String())
	}
}
