package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
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

// TestRenderPolicyOneWay: with an End.TSF far node the lists' one-way
// delays get their own column; a list without them (plain loopback, or no
// answer yet) shows "-" there, and a zero of a measured pair shows as 0.
func TestRenderPolicyOneWay(t *testing.T) {
	a := netip.MustParseAddr
	at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	list := func(seg string, l agent.PolicyListStatus) agent.PolicyListStatus {
		l.Segments, l.Weight = []netip.Addr{a(seg), a("2001:db8:2205:7::")}, 1
		if l.State == "" {
			l.State = "up"
		}
		return l
	}
	v := agent.ControlPolicyView{Policies: []agent.PolicyStatus{{
		Name: "sr-policy", Color: 100, Endpoint: a("2001:db8:2200::1"), VPN: "vpn6", ProbeInterval: 10 * time.Millisecond,
		Constituents: []agent.PolicyConstituentStatus{
			{Color: 10, Name: "path1", Lists: []agent.PolicyListStatus{
				list("2001:db8:a::1", agent.PolicyListStatus{Measured: at, Delay: 9100 * time.Microsecond, Jitter: 200 * time.Microsecond, HasMetrics: true,
					ForwardDelay: 5100 * time.Microsecond, BackwardDelay: 4 * time.Millisecond}),
				list("2001:db8:c::1", agent.PolicyListStatus{Measured: at, Delay: 80 * time.Microsecond, Jitter: 10 * time.Microsecond, HasMetrics: true,
					ForwardDelay: 80 * time.Microsecond}),
			}},
			{Color: 20, Name: "path2", Lists: []agent.PolicyListStatus{
				list("2001:db8:b::1", agent.PolicyListStatus{Measured: at, Delay: 3 * time.Millisecond, Jitter: 100 * time.Microsecond, HasMetrics: true}),
				list("2001:db8:d::1", agent.PolicyListStatus{State: "unknown"}),
			}},
		},
		Services: []agent.PolicyServiceStatus{{Name: "conference", Selector: "irp1", Table: 3000, Priority: 1, Since: at, Installed: true,
			Paths: []agent.PolicyPathStatus{{Color: 10, List: 1, Weight: 1}}}},
	}, {
		Name: "plain", Color: 200, Endpoint: a("2001:db8:2300::1"), VPN: "vpn6", ProbeInterval: time.Second,
		Constituents: []agent.PolicyConstituentStatus{{Color: 30, Lists: []agent.PolicyListStatus{
			list("2001:db8:e::1", agent.PolicyListStatus{Measured: at, Delay: time.Millisecond, HasMetrics: true})}}},
	}}}
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := human(renderPolicy)(body)
	if err != nil {
		t.Fatal(err)
	}
	want := `policy sr-policy: color 100 to 2001:db8:2200::1, steers vpn vpn6, probes every 10ms

COLOR  NAME   LIST  SEGMENTS                         WEIGHT  STATE    DELAY ms  FWD/BWD ms   JITTER ms  LOSS %  BANDWIDTH  MEASURED
10     path1  1     2001:db8:a::1,2001:db8:2205:7::  1       up       9.100     5.100/4.000  0.200      0.00    -          2026-11-22T03:00:00Z
10     path1  2     2001:db8:c::1,2001:db8:2205:7::  1       up       0.080     0.080/0.000  0.010      0.00    -          2026-11-22T03:00:00Z
20     path2  1     2001:db8:b::1,2001:db8:2205:7::  1       up       3.000     -            0.100      0.00    -          2026-11-22T03:00:00Z
20     path2  2     2001:db8:d::1,2001:db8:2205:7::  1       unknown  -         -            -          -       -          -

SERVICE     SELECTOR  TABLE  ACTIVE                                SINCE                 INSTALLED
conference  irp1      3000   priority 1: color 10 list 1 weight 1  2026-11-22T03:00:00Z  yes

policy plain: color 200 to 2001:db8:2300::1, steers vpn vpn6, probes every 1s

COLOR  NAME  LIST  SEGMENTS                         WEIGHT  STATE  DELAY ms  JITTER ms  LOSS %  BANDWIDTH  MEASURED
30     -     1     2001:db8:e::1,2001:db8:2205:7::  1       up     1.000     0.000      0.00    -          2026-11-22T03:00:00Z

SERVICE  SELECTOR  TABLE  ACTIVE  SINCE  INSTALLED
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestPolicyRestoreCommand: the command posts its two arguments and says
// what the daemon did; a missing argument is a usage error.
func TestPolicyRestoreCommand(t *testing.T) {
	asked := make(chan string, 1)
	sock := fakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Method + " " + r.URL.String()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"restored":true}` + "\n"))
	})

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
