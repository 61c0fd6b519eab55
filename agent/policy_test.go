package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// policyConfig is bgpConfig's VPN with the draft's parent policy (see
// srv6/policy_test.go: conference on irp1's delay threshold, crm on irp2's
// bandwidth threshold) towards the far CPE 2001:db8:2200::1, whose routes
// arrive with service SIDs 2001:db8:2205:4:: and :6::. Both constituent
// lists end in the far End.DT6 SID, so their probes come back decapsulated.
const policyConfig = bgpConfig + `
policies:
  - name: sr-policy
    color: 100
    endpoint: 2001:db8:2200::1
    probe_interval: 10ms
    constituents:
      - {color: 10, name: path1, segment_lists: [{segments: [2001:db8:a::1, 2001:db8:2205:6::], weight: 1}]}
      - {color: 20, name: path2, segment_lists: [{segments: [2001:db8:b::1, 2001:db8:2205:6::], weight: 1}]}
    selectors:
      - {name: irp1, priorities: [{priority: 1, color: 10}, {priority: 2, color: 20}], thresholds: {delay: 100ms}, default: 10, wait_to_restore: 60s}
      - {name: irp2, priorities: [{priority: 1, color: 20}, {priority: 2, color: 10}], thresholds: {min_bandwidth: 50M}, default: 20, wait_to_restore: WTR}
    services:
      - {name: conference, selector: irp1}
      - {name: crm, selector: irp2}
    flows:
      - {service: conference, protocol: udp, dst_ports: 10000-20000}
      - {service: crm, dst: 192.168.2.0/24, protocol: tcp, dst_ports: "443"}
      - {service: crm, dscp: 10}
      - {service: conference, fwmark: 0x10/0xff}
`

func policyDoc(wtr string) string { return strings.Replace(policyConfig, "WTR", wtr, 1) }

var (
	path1 = []netip.Addr{a("2001:db8:a::1"), a("2001:db8:2205:6::")}
	path2 = []netip.Addr{a("2001:db8:b::1"), a("2001:db8:2205:6::")}
)

// policyRoutes are the far CPE's VPN routes (next hop the policy's endpoint).
var policyRoutes = []bgp.Route{
	route("vpn4", "192.168.2.0/24", "2001:db8:2205:4::", "65000:2"),
	route("vpn6", "2001:db8:2201::/64", "2001:db8:2205:6::", "65000:2"),
}

// steered is segs ending in sid instead of their last SID.
func steered(segs []netip.Addr, sid string) []netip.Addr {
	return append(slices.Clone(segs[:len(segs)-1]), a(sid))
}

func TestPolicyConfigErrors(t *testing.T) {
	base := policyDoc("60s")
	tests := []struct {
		name, from, to, want string
	}{
		{"vpn unknown", "probe_interval: 10ms", "probe_interval: 10ms\n    vpn: nope", `policies[0] (sr-policy).vpn: "nope" is not a services: entry`},
		{"vpn imports nothing", "probe_interval: 10ms", "probe_interval: 10ms\n    vpn: end", `policies[0] (sr-policy).vpn: service "end" imports no routes`},
		{"probe interval", "probe_interval: 10ms", "probe_interval: 5ms", "policies[0] (sr-policy).probe_interval: 5ms is shorter than 10ms"},
		{"flow service", "{service: conference, protocol: udp", "{service: voice, protocol: udp", `policies[0] (sr-policy).flows[0].service: "voice" is not a service of the policy`},
		{"protocol", "protocol: udp", "protocol: gre2", `flows[0].protocol: "gre2" is not udp, tcp, icmp, ipv6-icmp, sctp or a number 1..255`},
		{"ports without tcp/udp/sctp", "protocol: udp", "protocol: icmp", "flows[0].src_ports/dst_ports: ports need protocol tcp, udp or sctp"},
		{"port range backwards", "10000-20000", "20000-10000", `flows[0].dst_ports: "20000-10000" runs backwards`},
		{"port zero", `dst_ports: "443"`, `dst_ports: "0"`, `flows[1].dst_ports: "0" is not a port range`},
		{"dscp", "dscp: 10", "dscp: 64", "flows[2].dscp: 64 is outside 0..63"},
		{"fwmark outside mask", "0x10/0xff", "0x110/0xff", "flows[3].fwmark: \"0x110/0xff\": mark 0x110 has bits outside mask 0xff"},
		{"fwmark", "0x10/0xff", "mark10", "flows[3].fwmark: \"mark10\" is not a mark"},
		{"prefix host bits", "dst: 192.168.2.0/24", "dst: 192.168.2.1/24", "flows[1].dst: 192.168.2.1/24 has host bits set"},
		{"families disagree", "dst: 192.168.2.0/24", "dst: 192.168.2.0/24, src: \"2001:db8::/32\"", "flows[1].src/dst/protocol"},
		{"icmp to an IPv6 prefix", "{service: crm, dscp: 10}", "{service: crm, protocol: icmp, dst: \"2001:db8::/32\"}", "flows[2].src/dst/protocol"},
		{"selector checks", "default: 10, wait", "default: 30, wait", "default color 30 is not a constituent"},
		{"too many paths", "{segments: [2001:db8:a::1, 2001:db8:2205:6::], weight: 1}", strings.Repeat("{segments: [2001:db8:a::1, 2001:db8:2205:6::], weight: 1}, ", 32) +
			"{segments: [2001:db8:a::1, 2001:db8:2205:6::], weight: 1}", `selectors: "irp1" priority 1 shares over 33 segment lists, more than the 32 paths of a route`},
		{"table collides with a VPN", "srv6: {locator_len: 48, extension: 0x5}", "srv6: {locator_len: 48, extension: 0x5, policy_table_base: 99}",
			"services[1] (vpn4).table: 100 is a policy service table (srv6.policy_table_base 99, 2 tables)"},
		{"table reserved", "srv6: {locator_len: 48, extension: 0x5}", "srv6: {locator_len: 48, extension: 0x5, policy_table_base: 252}",
			"srv6.policy_table_base: 252 puts the 2 policy service tables on 252..253, which holds the reserved table 253"},
	}
	if _, err := ParseConfig([]byte(base)); err != nil {
		t.Fatalf("the base config: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.from) {
				t.Fatalf("%q is not in the config", tc.from)
			}
			_, err := ParseConfig([]byte(strings.Replace(base, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one holding %q", err, tc.want)
			}
		})
	}
	// Two VPNs and no vpn: which one is ambiguous.
	two := strings.Replace(base, "  - {name: vpn6, behavior: End.DT6, function: 0x6, vrf: vpn,", "  - {name: vpn6, behavior: End.DT6, function: 0x6, vrf: other,", 1)
	two = strings.Replace(two, "table: 100, route_distinguisher: \"65000:1\",\n     import_rts: [\"65000:100\"], export_rts: [\"65000:100\"], lan_prefixes: [\"2001", "table: 200, route_distinguisher: \"65000:1\",\n     import_rts: [\"65000:100\"], export_rts: [\"65000:100\"], lan_prefixes: [\"2001", 1)
	if _, err := ParseConfig([]byte(two)); err == nil || !strings.Contains(err.Error(), "vpn: must be set: the services: section has 2 VPNs that import routes (vpn4, vpn6)") {
		t.Errorf("two VPNs: %v", err)
	}
}

func TestPolicyDesiredState(t *testing.T) {
	cfg := mustConfig(t, policyDoc("60s"))
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	// conference starts on irp1's default (path1), crm on irp2's (path2).
	got, err := desiredState(cfg, d, noVRF, policyRoutes...)
	if err != nil {
		t.Fatal(err)
	}
	var inTables []string
	for _, e := range got.Encaps {
		if e.Table >= DefaultPolicyTableBase {
			inTables = append(inTables, fmt.Sprintf("%d %s %v %v", e.Table, e.Prefix, e.Segments, e.Paths))
		}
	}
	want := []string{
		fmt.Sprintf("3000 192.168.2.0/24 %v []", steered(path1, "2001:db8:2205:4::")),
		fmt.Sprintf("3001 192.168.2.0/24 %v []", steered(path2, "2001:db8:2205:4::")),
		fmt.Sprintf("3000 2001:db8:2201::/64 %v []", path1),
		fmt.Sprintf("3001 2001:db8:2201::/64 %v []", path2),
	}
	if !slices.Equal(inTables, want) {
		t.Errorf("policy routes\n%q\nwant\n%q", inTables, want)
	}
	// The VPN's own routes stay as they are.
	if n := len(got.Encaps) - len(inTables); n != 2 {
		t.Errorf("%d routes outside the policy tables, want the 2 learned ones", n)
	}

	type rule struct {
		prio, fam, table int
		what             string
	}
	rules := func(rs []dataplane.FlowRule) []rule {
		var out []rule
		for _, r := range rs {
			what := fmt.Sprintf("proto %d dst %v ports %v dscp %v/%d mark %#x/%#x iif %q", r.Protocol, r.Dst, r.DstPorts, r.HasDSCP, r.DSCP, r.FwMark, r.FwMask, r.IIF)
			out = append(out, rule{r.Priority, r.Family, r.Table, what})
		}
		return out
	}
	v4, v6 := unix.AF_INET, unix.AF_INET6
	wantRules := []rule{
		{500, v4, 3000, `proto 17 dst invalid Prefix ports {10000 20000} dscp false/0 mark 0x0/0x0 iif ""`},
		{501, v6, 3000, `proto 17 dst invalid Prefix ports {10000 20000} dscp false/0 mark 0x0/0x0 iif ""`},
		{502, v4, 3001, `proto 6 dst 192.168.2.0/24 ports {443 443} dscp false/0 mark 0x0/0x0 iif ""`},
		// 503: DSCP in an IPv4 rule, which this kernel cannot match.
		{504, v6, 3001, `proto 0 dst invalid Prefix ports {0 0} dscp true/10 mark 0x0/0x0 iif ""`},
		{505, v4, 3000, `proto 0 dst invalid Prefix ports {0 0} dscp false/0 mark 0x10/0xff iif ""`},
		{506, v6, 3000, `proto 0 dst invalid Prefix ports {0 0} dscp false/0 mark 0x10/0xff iif ""`},
	}
	if g := rules(got.FlowRules); !slices.Equal(g, wantRules) {
		t.Errorf("flow rules\n%v\nwant\n%v", g, wantRules)
	}
	_, notes := policyFlowRules(&cfg, noVRF)
	if n := notes["sr-policy"]; len(n) != 1 || !strings.Contains(n[0], "flows[2] (service \"crm\"): not installed for IPv4: this kernel's rules cannot match DSCP 10") {
		t.Errorf("notes %q", n)
	}

	// With VRFs and FRA_DSCP: every rule, each from the VPN's VRF device.
	caps := withVRF
	caps.RuleDSCP = true
	got, err = desiredState(cfg, d, caps, policyRoutes...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.FlowRules) != 7 || got.FlowRules[3].Priority != 503 || got.FlowRules[3].Family != v4 || !got.FlowRules[3].HasDSCP {
		t.Errorf("flow rules with FRA_DSCP: %+v", got.FlowRules)
	}
	for _, r := range got.FlowRules {
		if r.IIF != "vpn" {
			t.Errorf("rule %d from %q, want from vrf vpn", r.Priority, r.IIF)
		}
	}
}

// TestPolicyEncapsMultipath: constituents on one priority share a service
// by their weights; a list of several constituents ending in different
// learned SIDs of one far CPE folds into one path.
func TestPolicyEncapsMultipath(t *testing.T) {
	cfg := mustConfig(t, policyDoc("60s"))
	learned, _ := importedEncaps(cfg, srv6.Derivation{}, false, policyRoutes)
	choice := func(paths ...srv6.WeightedPath) policyChoices {
		return policyChoices{"sr-policy": {{Service: "conference", Choice: srv6.Choice{Priority: 1, Paths: paths}}}}
	}
	w := func(color uint32, segs []netip.Addr, weight uint32) srv6.WeightedPath {
		return srv6.WeightedPath{Color: color, Segments: segs, Weight: weight}
	}
	v4sid, v6sid := "2001:db8:2205:4::", "2001:db8:2205:6::"
	path3 := []netip.Addr{a("2001:db8:b::1"), a("2001:db8:2205:4::")} // path2 to the DT4 SID
	tests := []struct {
		name    string
		caps    dataplane.Capabilities
		choices policyChoices
		want    []string
		note    string
	}{
		{
			name: "one path is a plain route", choices: choice(w(10, path1, 1)),
			want: []string{
				fmt.Sprintf("192.168.2.0/24 %v []", steered(path1, v4sid)),
				fmt.Sprintf("2001:db8:2201::/64 %v []", steered(path1, v6sid)),
			},
		},
		{
			name: "weighted share, IPv6 too with nexthop objects", caps: dataplane.Capabilities{NexthopObjects: true},
			choices: choice(w(10, path1, 3), w(20, path2, 1)),
			want: []string{
				fmt.Sprintf("192.168.2.0/24 [] [{%v 3} {%v 1}]", steered(path1, v4sid), steered(path2, v4sid)),
				fmt.Sprintf("2001:db8:2201::/64 [] [{%v 3} {%v 1}]", path1, path2),
			},
		},
		{
			name: "IPv6 without nexthop objects: the heaviest path", choices: choice(w(10, path1, 1), w(20, path2, 3)),
			want: []string{
				fmt.Sprintf("192.168.2.0/24 [] [{%v 1} {%v 3}]", steered(path1, v4sid), steered(path2, v4sid)),
				fmt.Sprintf("2001:db8:2201::/64 %v []", path2),
			},
			note: `service "conference": IPv6 routes use color 20 list 1 alone`,
		},
		{
			name: "lists equal but for their learned SID fold", caps: dataplane.Capabilities{NexthopObjects: true},
			choices: choice(w(20, path2, 2), w(30, path3, 1), w(10, path1, 1)),
			want: []string{
				fmt.Sprintf("192.168.2.0/24 [] [{%v 3} {%v 1}]", steered(path2, v4sid), steered(path1, v4sid)),
				fmt.Sprintf("2001:db8:2201::/64 [] [{%v 3} {%v 1}]", path2, path1),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, notes := policyEncaps(&cfg, tc.caps, tc.choices, learned, policyRoutes)
			var s []string
			for _, e := range got {
				if e.Table != 3000 {
					t.Errorf("route %s in table %d, want conference's 3000", e.Prefix, e.Table)
				}
				s = append(s, fmt.Sprintf("%s %v %v", e.Prefix, e.Segments, e.Paths))
			}
			if !slices.Equal(s, tc.want) {
				t.Errorf("routes\n%q\nwant\n%q", s, tc.want)
			}
			n := strings.Join(notes["sr-policy"], "; ")
			if tc.note == "" && n != "" || !strings.Contains(n, tc.note) {
				t.Errorf("notes %q, want %q", n, tc.note)
			}
		})
	}

	// With end_tsf the lists end at the far End.TSF SID, there for the
	// probes only: data goes straight to each route's own SID.
	tsf := a("2001:db8:2205:7f::")
	cfg.Policies[0].EndTSF = true
	got, _ := policyEncaps(&cfg, noVRF, choice(w(10, []netip.Addr{a("2001:db8:a::1"), tsf}, 1)), learned, policyRoutes)
	for _, e := range got {
		want := steered([]netip.Addr{a("2001:db8:a::1"), tsf}, map[bool]string{true: v4sid, false: v6sid}[e.Prefix.Addr().Is4()])
		if !slices.Equal(e.Segments, want) {
			t.Errorf("end_tsf: %s encap %v, want %v", e.Prefix, e.Segments, want)
		}
	}
	if len(got) != 2 {
		t.Errorf("end_tsf: %d routes, want 2", len(got))
	}
	cfg.Policies[0].EndTSF = false

	// Routes of another next hop, or beyond the endpoint's locator, stay out.
	other := []bgp.Route{route("vpn4", "192.168.9.0/24", "2001:db8:9905:4::", "65000:9")}
	other[0].NextHop = a("2001:db8:9900::1")
	learned, _ = importedEncaps(cfg, srv6.Derivation{}, false, other)
	if got, _ := policyEncaps(&cfg, noVRF, startChoices(&cfg), learned, other); len(got) != 0 {
		t.Errorf("a route to another CPE was steered: %+v", got)
	}
	// The endpoint given as the far locator steers by SID.
	cfg.Policies[0].Endpoint = a("2001:db8:9905::")
	if got, _ := policyEncaps(&cfg, noVRF, startChoices(&cfg), learned, other); len(got) != 2 {
		t.Errorf("endpoint 2001:db8:9905:: (a locator): %d routes, want one per service", len(got))
	}
}

// policyProbes records the loopback sessions the agent starts and lets
// the test play their notifications.
type policyProbes struct {
	mu   sync.Mutex
	cfgs map[string]twamp.SenderConfig // by session name
	runs map[string]int
}

func newPolicyProbes() *policyProbes {
	return &policyProbes{cfgs: map[string]twamp.SenderConfig{}, runs: map[string]int{}}
}

func (pp *policyProbes) session(c twamp.SenderConfig) (twamp.Session, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.cfgs[c.Name] = c
	pp.runs[c.Name]++
	return idleProbe{}, nil
}

// idleProbe runs until the end and measures nothing by itself.
type idleProbe struct{}

func (idleProbe) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (idleProbe) Metrics() twamp.Metrics        { return twamp.Metrics{} }
func (idleProbe) State() twamp.SessionState     { return twamp.StateInit }

// cfg waits for the session of color's list 1.
func (pp *policyProbes) cfg(t *testing.T, color uint32) twamp.SenderConfig {
	t.Helper()
	name := fmt.Sprintf("policy sr-policy color %d list 1", color)
	deadline := time.Now().Add(5 * time.Second)
	for {
		pp.mu.Lock()
		c, ok := pp.cfgs[name]
		pp.mu.Unlock()
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe session %q", name)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// up plays an Up and a metrics window with delay on color's probe.
func (pp *policyProbes) up(t *testing.T, color uint32, delay time.Duration) {
	c := pp.cfg(t, color)
	c.OnEvent(twamp.Event{At: time.Now(), Kind: twamp.EventUp})
	c.OnEvent(twamp.Event{At: time.Now(), Kind: twamp.EventMetrics,
		Metrics: &twamp.Metrics{Sent: 10, Received: 10, RTT: twamp.Stats{Count: 10, Avg: delay}, Jitter: delay / 10}})
}

func (pp *policyProbes) down(t *testing.T, color uint32) {
	pp.cfg(t, color).OnEvent(twamp.Event{At: time.Now(), Kind: twamp.EventDown})
}

// fakeClock is the agent's clock under the test's control.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startPolicyAgent runs an agent with the far CPE's routes learned.
func startPolicyAgent(t *testing.T, doc string, dp dataplane.Dataplane, opts ...Option) (*harness, *policyProbes) {
	t.Helper()
	fb := bgp.NewFake()
	pp := newPolicyProbes()
	opts = append([]Option{WithPathProbes(pp.session), WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }),
		WithPeerPoll(10 * time.Millisecond), WithBGPSettle(10*time.Millisecond, 50*time.Millisecond)}, opts...)
	if dp != nil {
		opts = append(opts, WithDataplane(dp))
	}
	h := start(t, mustConfig(t, doc), noVRF, t.TempDir(), opts...)
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	var remote []bgp.RemoteRoute
	for _, r := range policyRoutes {
		remote = append(remote, bgp.RemoteRoute{RD: r.RD, RTs: []string{"65000:100"}, Prefix: r.Prefix, SID: r.SID, Behavior: r.Behavior, NextHop: r.NextHop})
	}
	if err := fb.SetRemoteRoutes(remote); err != nil {
		t.Fatal(err)
	}
	return h, pp
}

// tableSegs is what the last applied state routes to 192.168.2.0/24 in
// each policy table.
func (f *fakeDataplane) tableSegs() map[int]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[int]string{}
	for _, e := range f.kernel.Encaps {
		if e.Table >= DefaultPolicyTableBase && e.Prefix == p("192.168.2.0/24") {
			m[e.Table] = fmt.Sprint(e.Segments, e.Paths)
		}
	}
	return m
}

func waitTables(t *testing.T, h *harness, what string, want map[int][]netip.Addr) {
	t.Helper()
	w := map[int]string{}
	for table, segs := range want {
		w[table] = fmt.Sprint(steered(segs, "2001:db8:2205:4::"), []dataplane.EncapPath(nil))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.dp.tableSegs()
		if fmt.Sprint(got) == fmt.Sprint(w) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: policy tables route 192.168.2.0/24 by %v, want %v", what, got, w)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func serviceStatus(t *testing.T, a *Agent, name string) PolicyServiceStatus {
	t.Helper()
	for _, s := range a.PolicyStatus()[0].Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s", name)
	return PolicyServiceStatus{}
}

// TestPolicyAgentSwitches plays the draft's §5 through the agent: the
// probes' notifications and the controller's bandwidth reports move each
// service alone, the routes follow at once, and a service comes back only
// once its wait-to-restore is over.
func TestPolicyAgentSwitches(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)}
	h, pp := startPolicyAgent(t, policyDoc("60s"), nil, WithClock(clock.now))
	waitTables(t, h, "start: each service on its default", map[int][]netip.Addr{3000: path1, 3001: path2})

	c := pp.cfg(t, 10)
	if !c.Loopback || c.Src != a("2001:db8:1200::1") || !slices.Equal(c.Segments, path1) || c.Interval != 10*time.Millisecond ||
		c.Timeout != 7500*time.Microsecond || c.Notify.DownAfter != policyDownAfter {
		t.Errorf("probe of path1: %+v", c)
	}

	for _, color := range []uint32{10, 20} {
		if err := h.agent.ObservePolicyBandwidth("sr-policy", color, 80e6); err != nil {
			t.Fatal(err)
		}
	}
	pp.up(t, 10, 20*time.Millisecond)
	pp.up(t, 20, 30*time.Millisecond)
	waitTables(t, h, "both paths measured", map[int][]netip.Addr{3000: path1, 3001: path2})
	if s := serviceStatus(t, h.agent, "conference"); s.Fallback || s.Priority != 1 || !slices.Equal(s.Colors, []uint32{10}) {
		t.Errorf("conference %+v, want priority 1 on color 10", s)
	}

	// path1 dies: conference moves to path2, crm stays.
	pp.down(t, 10)
	waitTables(t, h, "path1 down", map[int][]netip.Addr{3000: path2, 3001: path2})

	// path2's remaining bandwidth falls under 50M: crm would overflow to
	// path1, which is down: it falls back to its default, path2.
	if err := h.agent.ObservePolicyBandwidth("sr-policy", 20, 40e6); err != nil {
		t.Fatal(err)
	}
	if s := serviceStatus(t, h.agent, "crm"); !s.Fallback || !strings.Contains(s.Reason, "remaining bandwidth 40Mbit/s under 50Mbit/s") {
		t.Errorf("crm %+v, want fallback naming the bandwidth", s)
	}

	// path1 answers again: crm takes it at once (a degrade out of fallback
	// does not wait), conference only after its wait-to-restore.
	pp.up(t, 10, 20*time.Millisecond)
	waitTables(t, h, "path1 back", map[int][]netip.Addr{3000: path2, 3001: path1})
	clock.add(59 * time.Second)
	h.agent.policies.evaluate()
	if s := serviceStatus(t, h.agent, "conference"); !slices.Equal(s.Colors, []uint32{20}) {
		t.Fatalf("conference back on %v 59s into its 60s wait-to-restore", s.Colors)
	}
	clock.add(2 * time.Second)
	signal(h.agent.policies.rearm) // the timer sees the wait is over
	waitTables(t, h, "after the wait-to-restore", map[int][]netip.Addr{3000: path1, 3001: path1})

	st := h.agent.PolicyStatus()[0]
	var kinds []string
	for _, e := range st.Events {
		kinds = append(kinds, e.Service+":"+e.Kind)
	}
	want := []string{"crm:select", "crm:select", "conference:select", "conference:degrade", "crm:fallback", "crm:select", "conference:restore"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}
	if l := st.Constituents[0].Lists[0]; l.State != "up" || l.Delay != 20*time.Millisecond || !l.HasMetrics || l.Bandwidth != 80e6 {
		t.Errorf("path1 status %+v", l)
	}
	if s := serviceStatus(t, h.agent, "conference"); s.Table != 3000 || !s.Installed {
		t.Errorf("conference %+v", s)
	}

	// Errors name what is not configured.
	if err := h.agent.ObservePolicyBandwidth("sr-policy", 30, 1); err == nil || !strings.Contains(err.Error(), "color 30") {
		t.Errorf("bandwidth of color 30: %v", err)
	}
	if err := h.agent.RestorePolicyService("nope", "crm"); err == nil || !strings.Contains(err.Error(), `policy "nope"`) {
		t.Errorf("restore of policy nope: %v", err)
	}
}

// TestPolicyManualRestore: a non-revertive selector stays on its backup
// until the operator restores it.
func TestPolicyManualRestore(t *testing.T) {
	doc := strings.Replace(policyDoc("60s"), "default: 10, wait_to_restore: 60s}", "default: 10, wait_to_restore: 1ms, non_revertive: true}", 1)
	h, pp := startPolicyAgent(t, doc, nil)
	pp.up(t, 10, 20*time.Millisecond)
	pp.up(t, 20, 30*time.Millisecond)
	pp.down(t, 10)
	waitTables(t, h, "path1 down", map[int][]netip.Addr{3000: path2, 3001: path2})
	pp.up(t, 10, 20*time.Millisecond)
	time.Sleep(20 * time.Millisecond) // well past the wait-to-restore
	h.agent.policies.evaluate()
	waitTables(t, h, "non-revertive", map[int][]netip.Addr{3000: path2, 3001: path2})
	if err := h.agent.RestorePolicyService("sr-policy", "conference"); err != nil {
		t.Fatal(err)
	}
	waitTables(t, h, "manual restore", map[int][]netip.Addr{3000: path1, 3001: path2})
	if err := h.agent.RestorePolicyService("sr-policy", "voice"); err == nil || !strings.Contains(err.Error(), `service "voice"`) {
		t.Errorf("restore of service voice: %v", err)
	}
}

// TestPolicyNeverAnswers: a list whose probe never answers goes down
// after policyDownAfter losses, though its session was never up.
func TestPolicyNeverAnswers(t *testing.T) {
	doc := strings.Replace(policyDoc("60s"), "thresholds: {delay: 100ms}, default: 10", "default: 10", 1)
	h, pp := startPolicyAgent(t, doc, nil)
	waitTables(t, h, "no thresholds: conference on priority 1 at once", map[int][]netip.Addr{3000: path1, 3001: path2})
	c := pp.cfg(t, 10)
	for i := range policyDownAfter {
		c.OnSample(twamp.Sample{Seq: uint32(i), Sent: time.Now(), Lost: true})
	}
	waitTables(t, h, "path1 never answered", map[int][]netip.Addr{3000: path2, 3001: path2})
	if l := h.agent.PolicyStatus()[0].Constituents[0].Lists[0]; l.State != "down" {
		t.Errorf("path1 %+v, want down", l)
	}
}

// TestPolicySwitchLoop forces 1,000 switches of crm through the agent onto
// the validating dataplane Fake: every switch reaches the routes, and the
// loop leaves no route, goroutine or heap behind.
func TestPolicySwitchLoop(t *testing.T) {
	const switches = 1000
	before := runtime.NumGoroutine()
	dp := dataplane.NewFake(noVRF)
	h, _ := startPolicyAgent(t, policyDoc("0s"), dp)
	crmRoute := func(segs []netip.Addr) string {
		return fmt.Sprintf("192.168.2.0/24 encap seg6 mode encap segs [ %s ] dev wan0 table 3001",
			strings.Trim(fmt.Sprint(steered(segs, "2001:db8:2205:4::")), "[]"))
	}
	wait := func(i int, want string) int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			routes := dp.Routes()
			if slices.Contains(routes, want) {
				return len(routes)
			}
			if time.Now().After(deadline) {
				t.Fatalf("switch %d: no route %q in %q", i, want, routes)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	bw := func(v srv6.Bandwidth) {
		if err := h.agent.ObservePolicyBandwidth("sr-policy", 20, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.agent.ObservePolicyBandwidth("sr-policy", 10, 80e6); err != nil {
		t.Fatal(err)
	}
	bw(80e6)
	nroutes := wait(-1, crmRoute(path2))
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var heapAt100 uint64
	var running int
	for i := range switches {
		want := crmRoute(path2)
		if i%2 == 0 { // under 50M: crm overflows to path1, and comes back at once (no wait-to-restore)
			bw(40e6)
			want = crmRoute(path1)
		} else {
			bw(80e6)
		}
		if n := wait(i, want); n != nroutes {
			t.Fatalf("switch %d: %d routes, want %d", i, n, nroutes)
		}
		if i == 100 {
			heapAt100, running = heap(), runtime.NumGoroutine()
		}
	}
	heapEnd := heap()
	t.Logf("heap after 100 switches %d B, after %d %d B; goroutines %d then %d", heapAt100, switches, heapEnd, running, runtime.NumGoroutine())
	if heapEnd > heapAt100+1<<20 {
		t.Errorf("heap grew from %d to %d bytes over %d switches", heapAt100, heapEnd, switches-100)
	}
	if n := len(h.agent.PolicyStatus()[0].Events); n != policyEventRing {
		t.Errorf("%d events kept, want the last %d", n, policyEventRing)
	}
	if n := runtime.NumGoroutine(); n > running+2 {
		t.Errorf("%d goroutines after the loop, %d after 100 switches", n, running)
	}
	h.stop()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the agent stopped, %d before it started", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPolicyControl: /v1/policy answers the status, /v1/policy/restore
// restores, and names what it does not know with 404.
func TestPolicyControl(t *testing.T) {
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ag, err := New(mustConfig(t, policyDoc("60s")), WithLogger(zaptest.NewLogger(t)), WithStateDir(st), WithDataplane(newFakeDataplane(noVRF)),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return bgp.NewFake(), nil }))
	if err != nil {
		t.Fatal(err)
	}
	hd := ag.controlHandler(zaptest.NewLogger(t))
	do := func(method, target string, want int) []byte {
		t.Helper()
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
		if rec.Code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, target, rec.Code, rec.Body, want)
		}
		return rec.Body.Bytes()
	}
	var v ControlPolicyView
	if err := json.Unmarshal(do("GET", ControlPolicy, http.StatusOK), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Policies) != 1 || len(v.Policies[0].Services) != 2 || v.Policies[0].Services[1].Table != 3001 ||
		v.Policies[0].VPN != "vpn4" || v.Policies[0].ProbeInterval != 10*time.Millisecond || v.Policies[0].Constituents[1].Lists[0].State != "unknown" {
		t.Errorf("policy view %+v", v)
	}
	do("POST", ControlPolicyRestore+"?policy=sr-policy&service=crm", http.StatusOK)
	if b := do("POST", ControlPolicyRestore+"?policy=sr-policy&service=voice", http.StatusNotFound); !strings.Contains(string(b), `service \"voice\"`) {
		t.Errorf("restore of an unknown service: %s", b)
	}
}

// TestPolicyDesiredMultipath: a share of two constituents is one weighted
// multipath route the dataplane accepts.
func TestPolicyDesiredMultipath(t *testing.T) {
	doc := strings.Replace(policyDoc("60s"), "    services:\n", `      - {name: share, priorities: [{priority: 1, color: 10, weight: 3}, {priority: 1, color: 20, weight: 1}], default: 10}
    services:
      - {name: bulk, selector: share}
`, 1)
	cfg := mustConfig(t, doc)
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	caps := withVRF
	caps.NexthopObjects = true
	got, err := desiredState(cfg, d, caps, policyRoutes...)
	if err != nil {
		t.Fatal(err)
	}
	var bulk []string
	for _, e := range got.Encaps {
		if e.Table == 3000 { // bulk is the first service now
			bulk = append(bulk, fmt.Sprintf("%s %v", e.Prefix, e.Paths))
		}
	}
	want := []string{
		fmt.Sprintf("192.168.2.0/24 [{%v 3} {%v 1}]", steered(path1, "2001:db8:2205:4::"), steered(path2, "2001:db8:2205:4::")),
		fmt.Sprintf("2001:db8:2201::/64 [{%v 3} {%v 1}]", path1, path2),
	}
	if !slices.Equal(bulk, want) {
		t.Errorf("bulk routes %q, want %q", bulk, want)
	}
}

// TestPolicyReload: a reload that leaves a policy alone keeps its
// selector; one that changes it hands the new selector the measurements,
// so services stay where they are.
func TestPolicyReload(t *testing.T) {
	h, pp := startPolicyAgent(t, policyDoc("60s"), nil)
	for _, color := range []uint32{10, 20} {
		if err := h.agent.ObservePolicyBandwidth("sr-policy", color, 80e6); err != nil {
			t.Fatal(err)
		}
	}
	pp.up(t, 10, 20*time.Millisecond)
	pp.up(t, 20, 30*time.Millisecond)
	pp.down(t, 10)
	waitTables(t, h, "path1 down", map[int][]netip.Addr{3000: path2, 3001: path2})
	events := len(h.agent.PolicyStatus()[0].Events)

	if err := h.agent.Reload(mustConfig(t, policyDoc("60s"))); err != nil {
		t.Fatal(err)
	}
	if n := len(h.agent.PolicyStatus()[0].Events); n != events {
		t.Errorf("%d events after an unchanged reload, want %d", n, events)
	}
	if err := h.agent.Reload(mustConfig(t, policyDoc("30s"))); err != nil {
		t.Fatal(err)
	}
	waitTables(t, h, "changed policy", map[int][]netip.Addr{3000: path2, 3001: path2})
	st := h.agent.PolicyStatus()[0]
	if s := st.Services[0]; !slices.Equal(s.Colors, []uint32{20}) || s.Fallback {
		t.Errorf("conference after the reload: %+v", s)
	}
	if l := st.Constituents[0].Lists[0]; l.State != "down" || l.Bandwidth != 80e6 {
		t.Errorf("path1 after the reload: %+v", l)
	}
	// The probes of unchanged lists keep running.
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if n := pp.runs["policy sr-policy color 10 list 1"]; n != 1 {
		t.Errorf("path1's probe started %d times", n)
	}
}

// TestPolicyDraftSection5 is the draft's §5 through the agent: conference
// leaves path1 when its delay passes 100 ms, crm overflows off path2 when
// path2's remaining bandwidth falls under 50M; each moves alone.
func TestPolicyDraftSection5(t *testing.T) {
	h, pp := startPolicyAgent(t, policyDoc("60s"), nil)
	// The controller's bandwidth first: a list measured without the
	// bandwidth irp2 checks counts as failed in srv6.Selector (see the
	// report), which would hold crm off path2 for its wait-to-restore.
	for _, color := range []uint32{10, 20} {
		if err := h.agent.ObservePolicyBandwidth("sr-policy", color, 80e6); err != nil {
			t.Fatal(err)
		}
	}
	pp.up(t, 10, 20*time.Millisecond)
	pp.up(t, 20, 30*time.Millisecond)
	waitTables(t, h, "both paths measured", map[int][]netip.Addr{3000: path1, 3001: path2})

	c := pp.cfg(t, 10)
	c.OnEvent(twamp.Event{At: time.Now(), Kind: twamp.EventMetrics,
		Metrics: &twamp.Metrics{Sent: 10, Received: 10, RTT: twamp.Stats{Count: 10, Avg: 150 * time.Millisecond}}})
	waitTables(t, h, "path1's delay 150ms", map[int][]netip.Addr{3000: path2, 3001: path2})
	if err := h.agent.ObservePolicyBandwidth("sr-policy", 20, 40e6); err != nil {
		t.Fatal(err)
	}
	waitTables(t, h, "path2 under 50M", map[int][]netip.Addr{3000: path2, 3001: path1})
	evs := h.agent.PolicyStatus()[0].Events
	last := evs[len(evs)-2:]
	if last[0].Service != "conference" || last[0].Kind != "degrade" || !strings.Contains(last[0].Reason, "delay 150ms above 100ms") ||
		last[1].Service != "crm" || last[1].Kind != "degrade" || !strings.Contains(last[1].Reason, "remaining bandwidth 40Mbit/s under 50Mbit/s") {
		t.Errorf("events %+v", last)
	}
}
