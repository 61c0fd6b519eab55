package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// draftPoliciesYAML is the configuration example of
// draft-yang-srv6ops-policy-selector (as srv6's TestDraftExampleConfig
// reads it) with what the agent adds: the VPN it steers, the probe
// interval and the flows of each service.
var draftPoliciesYAML = func() string {
	b, err := os.ReadFile("../srv6/testdata/draft-policy.yaml")
	if err != nil {
		panic(err)
	}
	return string(b) + `    vpn: vpn6
    probe_interval: 10ms
    flows:
      - {service: conference, dscp: 46, protocol: udp, dst_ports: 10000-20000}
      - {service: crm, protocol: tcp, dst: "2001:db8:20::/48", dst_ports: "443"}
`
}()

// policyModelDoc is a CPE with the VPN the policies steer.
const policyModelDoc = modelDoc + `  - {name: vpn6, behavior: End.DT6, function: 0x6, import_rts: ["65000:1"]}
`

const pol1 = policyTable + "1."

// draftObjects are the AddObjects that make room for the draft example
// under Policy.1, in order; on a fresh CPE each gets instance 1 or 2.
var draftObjects = []string{
	policyTable,
	pol1 + "Constituent.", pol1 + "Constituent.",
	pol1 + "Constituent.1.SegmentList.", pol1 + "Constituent.2.SegmentList.",
	pol1 + "Selector.", pol1 + "Selector.",
	pol1 + "Selector.1.Priority.", pol1 + "Selector.1.Priority.",
	pol1 + "Selector.2.Priority.", pol1 + "Selector.2.Priority.",
	pol1 + "Service.", pol1 + "Service.",
	pol1 + "Flow.", pol1 + "Flow.",
}

// draftValues configure the draft example in those objects: name, value,
// xsd type.
var draftValues = [][3]string{
	{"Name", "sr-policy", "string"}, {"Color", "100", "unsignedInt"}, {"Endpoint", "2001:db8:2::1", "string"},
	{"VPN", "vpn6", "string"}, {"ProbeInterval", "10", "unsignedInt"}, {"Enable", "true", "boolean"},
	{"Constituent.1.Color", "10", "unsignedInt"}, {"Constituent.1.Name", "path1", "string"},
	{"Constituent.1.SegmentList.1.Segments", "2001:db8:a::1, 2001:db8:2::1", "string"},
	{"Constituent.1.SegmentList.1.Weight", "1", "unsignedInt"},
	{"Constituent.2.Color", "20", "unsignedInt"}, {"Constituent.2.Name", "path2", "string"},
	{"Constituent.2.SegmentList.1.Segments", "2001:db8:b::1:End, 2001:db8:2::1", "string"},
	{"Selector.1.Name", "irp1", "string"}, {"Selector.1.DefaultColor", "10", "unsignedInt"},
	{"Selector.1.WaitToRestore", "60", "unsignedInt"}, {"Selector.1.DelayThreshold", "100000", "unsignedInt"},
	{"Selector.1.Priority.1.Priority", "1", "unsignedInt"}, {"Selector.1.Priority.1.Color", "10", "unsignedInt"},
	{"Selector.1.Priority.2.Priority", "2", "unsignedInt"}, {"Selector.1.Priority.2.Color", "20", "unsignedInt"},
	{"Selector.2.Name", "irp2", "string"}, {"Selector.2.DefaultColor", "20", "unsignedInt"},
	{"Selector.2.WaitToRestore", "60", "unsignedInt"}, {"Selector.2.BandwidthThreshold", "50000", "unsignedLong"},
	{"Selector.2.Priority.1.Priority", "1", "unsignedInt"}, {"Selector.2.Priority.1.Color", "20", "unsignedInt"},
	{"Selector.2.Priority.2.Priority", "2", "unsignedInt"}, {"Selector.2.Priority.2.Color", "10", "unsignedInt"},
	{"Service.1.Name", "conference", "string"}, {"Service.1.Selector", "irp1", "string"},
	{"Service.2.Name", "crm", "string"}, {"Service.2.Selector", "irp2", "string"},
	{"Flow.1.Service", "conference", "string"}, {"Flow.1.DSCP", "46", "int"}, {"Flow.1.Protocol", "udp", "string"},
	{"Flow.1.DstPorts", "10000-20000", "string"},
	{"Flow.2.Service", "crm", "string"}, {"Flow.2.Protocol", "tcp", "string"}, {"Flow.2.Dst", "2001:db8:20::/48", "string"},
	{"Flow.2.DstPorts", "443", "string"},
}

// draftGPV is what GPV of Policy.1 reads back after draftValues (the
// segment lists in the model's own notation).
var draftGPV = map[string]string{
	"Name": "sr-policy", "Color": "100", "Endpoint": "2001:db8:2::1", "VPN": "vpn6", "ProbeInterval": "10", "Enable": "true", "EndTSF": "false",
	"ConstituentNumberOfEntries": "2", "SelectorNumberOfEntries": "2", "ServiceNumberOfEntries": "2", "FlowNumberOfEntries": "2",
	"Constituent.1.SegmentList.1.Segments": `["2001:db8:a::1", "2001:db8:2::1"]`,
	"Constituent.2.SegmentList.1.Segments": `["2001:db8:b::1", "2001:db8:2::1"]`, "Constituent.2.SegmentList.1.Weight": "1",
	"Constituent.1.SegmentListNumberOfEntries": "1", "Selector.1.PriorityNumberOfEntries": "2",
	"Selector.1.Revertive": "true", "Selector.1.LossThreshold": "0", "Selector.1.BandwidthThreshold": "0",
	"Selector.2.DelayThreshold": "0", "Selector.2.BandwidthThreshold": "50000", "Selector.1.Priority.1.Weight": "0",
	"Flow.1.DSCP": "46", "Flow.2.DSCP": "-1", "Flow.2.Src": "", "Flow.2.FwMark": "",
}

// draftPolicies is draftPoliciesYAML as the daemon reads it.
func draftPolicies(t *testing.T) []PolicyConfig {
	t.Helper()
	cfg, err := ParseConfig([]byte(policyModelDoc + draftPoliciesYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Policies) != 1 || len(cfg.Policies[0].Flows) != 2 {
		t.Fatalf("policies %+v", cfg.Policies)
	}
	return cfg.Policies
}

// runningPolicies is the configuration the agent runs now.
func runningPolicies(a *Agent) []PolicyConfig {
	st, base := a.model.snapshot()
	return st.apply(base).Policies
}

func draftSPV() []cwmpclient.ParameterValue {
	out := make([]cwmpclient.ParameterValue, len(draftValues))
	for i, v := range draftValues {
		out[i] = cwmpclient.ParameterValue{Name: pol1 + v[0], Value: v[1], Type: v[2]}
	}
	return out
}

// The seed's §5 example, configured entirely by an ACS with AddObject and
// SetParameterValues: the agent then runs exactly the YAML example's
// policy, GPV reads it back, and every message the CPE sent is valid
// CWMP. A bad value is refused naming the parameter; the controller's
// remaining bandwidth reaches the selector; the policy survives a restart.
func TestPolicyModelDraftExampleFromACS(t *testing.T) {
	want := draftPolicies(t)
	acs := cwmptest.NewServer(t)
	var reqs []cwmptest.Request
	for _, o := range draftObjects {
		reqs = append(reqs, cwmptest.AddObject(o, "add"))
	}
	var spv []cwmptest.ParameterValue
	for _, v := range draftSPV() {
		spv = append(spv, cwmptest.ParameterValue{Name: v.Name, Value: v.Value, Type: v.Type})
	}
	reqs = append(reqs,
		cwmptest.SetParameterValues("draft", spv...),
		cwmptest.GetParameterValues(pol1),
		// Bad: a priority on a color no constituent has; a flow port
		// range backwards. Nothing of it may be applied.
		cwmptest.SetParameterValues("bad",
			cwmptest.ParameterValue{Name: pol1 + "Selector.1.Priority.2.Color", Value: "30", Type: "unsignedInt"},
			cwmptest.ParameterValue{Name: pol1 + "Name", Value: "renamed", Type: "string"}),
		cwmptest.SetParameterValues("bad2", cwmptest.ParameterValue{Name: pol1 + "Flow.1.DstPorts", Value: "20000-10000", Type: "string"}),
		// The controller says path2 has 80 Mbit/s left.
		cwmptest.SetParameterValues("bw", cwmptest.ParameterValue{Name: pol1 + "Constituent.2.RemainingBandwidth", Value: "80000", Type: "long"}),
		cwmptest.GetParameterValues(pol1+"Constituent.2.RemainingBandwidth", pol1+"Status"),
		cwmptest.GetParameterNames(pol1, false),
	)
	acs.Enqueue(reqs...)
	doc := strings.Replace(cwmpDoc, "{name: vpn6, behavior: End.DT6, function: 0x6}",
		`{name: vpn6, behavior: End.DT6, function: 0x6, import_rts: ["65000:1"]}`, 1)
	// A switch reaches the ACS by the client's own notification check.
	doc = strings.Replace(doc, "  retry_minimum_wait: 1\n", "  retry_minimum_wait: 1\n  notification_interval: 50ms\n", 1)
	cfg, err := ParseConfig([]byte(fmt.Sprintf(doc, acs.URL, t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	probes := &scriptedProbes{delay: map[netip.Addr]time.Duration{}}
	h := start(t, cfg, noVRF, dir, WithPathProbes(probes.start))
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	s := waitSessions(t, acs, 1)[0]
	resp := s.Responses()
	if len(resp) != len(reqs) {
		t.Fatalf("%d responses to %d requests: %+v", len(resp), len(reqs), resp)
	}
	for i, o := range draftObjects {
		n := resp[i].Text("InstanceNumber")
		if resp[i].Method != "AddObjectResponse" || (n != "1" && n != "2") {
			t.Fatalf("AddObject %s: %s %q", o, resp[i].Method, n)
		}
	}
	r := resp[len(draftObjects):]
	if r[0].Method != "SetParameterValuesResponse" {
		code, text := r[0].Fault()
		t.Fatalf("draft SPV: %s %d %s", r[0].Method, code, text)
	}
	gpv := r[1].Values()
	for _, v := range draftValues {
		name := pol1 + v[0]
		if w, ok := draftGPV[v[0]]; ok {
			if gpv[name] != w {
				t.Errorf("GPV %s = %q, want %q", name, gpv[name], w)
			}
		} else if gpv[name] != v[1] {
			t.Errorf("GPV %s = %q, want the %q set", name, gpv[name], v[1])
		}
	}
	for k, w := range draftGPV {
		if gpv[pol1+k] != w {
			t.Errorf("GPV %s = %q, want %q", pol1+k, gpv[pol1+k], w)
		}
	}
	if f := r[2].SPVFaults(); r[2].Method != "Fault" || f[pol1+"Selector.1.Priority.2.Color"] != cwmpclient.FaultInvalidValue || len(f) != 1 {
		t.Errorf("SPV of an unknown color: %s %v", r[2].Method, f)
	} else if _, text := r[2].Fault(); !strings.Contains(text, "color 30") {
		t.Errorf("fault %q does not name color 30", text)
	}
	if f := r[3].SPVFaults(); r[3].Method != "Fault" || f[pol1+"Flow.1.DstPorts"] != cwmpclient.FaultInvalidValue {
		t.Errorf("SPV of a backwards port range: %s %v", r[3].Method, f)
	}
	if r[4].Method != "SetParameterValuesResponse" {
		code, text := r[4].Fault()
		t.Errorf("RemainingBandwidth: %s %d %s", r[4].Method, code, text)
	}
	if v := r[5].Values(); v[pol1+"Constituent.2.RemainingBandwidth"] != "80000" || v[pol1+"Status"] != "Running" {
		t.Errorf("after the controller's bandwidth: %v", v)
	}
	names := r[6].Names()
	for _, n := range []string{pol1 + "Selector.2.Priority.2.Weight", pol1 + "Flow.2.FwMark", pol1 + "Constituent.1.RemainingBandwidth", pol1 + "Service.1.Restore"} {
		if !names[n] {
			t.Errorf("GetParameterNames: %s not writable", n)
		}
	}
	for _, n := range []string{pol1 + "Status", pol1 + "Service.1.ActiveColors", pol1 + "Constituent.1.SegmentList.1.Delay"} {
		if w, ok := names[n]; !ok || w {
			t.Errorf("GetParameterNames: %s listed %v, writable %v; want read-only", n, ok, w)
		}
	}
	if got := runningPolicies(h.agent); !reflect.DeepEqual(got, want) {
		t.Errorf("the agent runs\n%+v\nwant the YAML example's\n%+v", got, want)
	}

	// §5 as the controller sees it. Both paths answer their probes in
	// 20 ms; the controller reports 80 Mbit/s left on each: conference
	// (irp1) on path1, crm (irp2) on path2.
	h.waitPolicy(func(p PolicyStatus) bool { return listsUp(p, 2) })
	crURL := informValue(s.Inform, "Device.ManagementServer.ConnectionRequestURL")
	svc1, svc2 := pol1+"Service.1.", pol1+"Service.2."
	choices := []string{svc1 + "ActiveColors", svc1 + "ActivePriority", svc1 + "LastSwitchReason", svc2 + "ActiveColors", svc2 + "ActivePriority", svc2 + "Fallback",
		pol1 + "Constituent.1.SegmentList.1.Delay", pol1 + "Constituent.1.SegmentList.1.Status"}
	session := func(reqs ...cwmptest.Request) map[string]string {
		t.Helper()
		resp := acsRun(t, acs, crURL, append(reqs, cwmptest.GetParameterValues(choices...))...)
		for _, m := range resp {
			if m.Method == "Fault" {
				code, text := m.Fault()
				t.Fatalf("%d %s", code, text)
			}
		}
		return resp[len(resp)-1].Values()
	}
	bw := func(c1, c2 string) cwmptest.Request {
		return cwmptest.SetParameterValues("bw",
			cwmptest.ParameterValue{Name: pol1 + "Constituent.1.RemainingBandwidth", Value: c1, Type: "long"},
			cwmptest.ParameterValue{Name: pol1 + "Constituent.2.RemainingBandwidth", Value: c2, Type: "long"})
	}
	check := func(step string, got map[string]string, conference, crm string) {
		t.Helper()
		if got[svc1+"ActiveColors"] != conference || got[svc2+"ActiveColors"] != crm || got[svc2+"Fallback"] != "false" {
			t.Errorf("%s: conference on %q, crm on %q (%v); want %s and %s", step, got[svc1+"ActiveColors"], got[svc2+"ActiveColors"], got, conference, crm)
		}
	}
	got := session(bw("80000", "80000"))
	check("both paths good", got, "10", "20")
	if got[pol1+"Constituent.1.SegmentList.1.Delay"] != "20000" || got[pol1+"Constituent.1.SegmentList.1.Status"] != "Up" {
		t.Errorf("path1 measured %v", got)
	}
	// CRM overflows off path2 when its remaining bandwidth falls under 50M.
	got = session(bw("80000", "40000"),
		cwmptest.SetParameterAttributes(cwmptest.SetAttribute{Name: svc1 + "ActiveColors", NotificationChange: true, Notification: 2}))
	check("path2 at 40 Mbit/s", got, "10", "10")
	if got[svc2+"ActivePriority"] != "2" {
		t.Errorf("crm on priority %q, want 2", got[svc2+"ActivePriority"])
	}
	// Conference moves to path2 when path1's delay exceeds 100 ms.
	// The ACS asked for active notification of conference's switch.
	probes.setDelay(netip.MustParseAddr("2001:db8:a::1"), 150*time.Millisecond)
	waitACS(t, "a 4 VALUE CHANGE Inform with conference's new ActiveColors", func() bool {
		for _, s := range acs.Sessions() {
			if in := s.Inform; in != nil && in.HasEvent(cwmpclient.EventValueChange) && informValue(in, svc1+"ActiveColors") == "20" {
				return true
			}
		}
		return false
	})
	got = session()
	check("path1 at 150 ms", got, "20", "10")
	if r := got[svc1+"LastSwitchReason"]; !strings.HasPrefix(r, "degrade: ") || !strings.Contains(r, "delay 150ms above 100ms") {
		t.Errorf("conference's last switch: %q", r)
	}

	// A restart keeps the controller's policy (the overlay holds it) under
	// the instance numbers the ACS knows.
	h.stop()
	restartAt := len(acs.Sessions())
	acs.Enqueue(cwmptest.GetParameterValues(pol1))
	h2 := start(t, cfg, noVRF, dir)
	if got := runningPolicies(h2.agent); !reflect.DeepEqual(got, want) {
		t.Errorf("after a restart the agent runs\n%+v\nwant\n%+v", got, want)
	}
	var again map[string]string
	waitACS(t, "the GPV after the restart", func() bool {
		for _, s := range acs.Sessions()[restartAt:] {
			for _, m := range s.Responses() {
				if v := m.Values(); m.Method == "GetParameterValuesResponse" && v[pol1+"Name"] != "" {
					again = v
					return true
				}
			}
		}
		return false
	})
	for _, v := range draftValues {
		if name := pol1 + v[0]; again[name] != gpv[name] {
			t.Errorf("after the restart GPV %s = %q, want %q", name, again[name], gpv[name])
		}
	}

	// Every message the CPE sent is valid CWMP.
	var raws [][]byte
	for _, s := range acs.Sessions() {
		for _, m := range s.Messages {
			if len(m.Raw) > 0 {
				raws = append(raws, m.Raw)
			}
		}
	}
	if err := cwmpschema.Validate(t, "1-2", raws...); err != nil {
		t.Error(err)
	}
}

// waitACS polls ok for up to 20 s.
func waitACS(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// acsRun has the ACS send reqs in a session it asks for, and returns the
// CPE's answers, in order, once every one came (whichever sessions
// carried them).
func acsRun(t *testing.T, acs *cwmptest.Server, crURL string, reqs ...cwmptest.Request) []cwmptest.Message {
	t.Helper()
	answers := func() []cwmptest.Message {
		var out []cwmptest.Message
		for _, s := range acs.Sessions() {
			out = append(out, s.Responses()...)
		}
		return out
	}
	before := len(answers())
	acs.Enqueue(reqs...)
	connectionRequest(t, crURL)
	var got []cwmptest.Message
	waitACS(t, "answer to every request", func() bool {
		got = answers()
		return len(got) >= before+len(reqs)
	})
	return got[before : before+len(reqs)]
}

// scriptedProbes are the probe sessions of a test: each reports its
// segment list up and answering in the delay the test set for the list's
// first segment (20 ms unless set), at start and on every change.
type scriptedProbes struct {
	mu    sync.Mutex
	delay map[netip.Addr]time.Duration
	live  []*scriptedProbe
}

type scriptedProbe struct {
	p   *scriptedProbes
	cfg twamp.SenderConfig
}

func (s *scriptedProbes) start(c twamp.SenderConfig) (twamp.Session, error) {
	return &scriptedProbe{p: s, cfg: c}, nil
}

func (s *scriptedProbes) delayOf(c twamp.SenderConfig) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.delay[c.Segments[0]]; ok {
		return d
	}
	return 20 * time.Millisecond
}

// report delivers as the sender would; never with s.mu held, as the
// agent starts sessions under its own lock.
func (sp *scriptedProbe) report() {
	d := sp.p.delayOf(sp.cfg)
	sp.cfg.OnEvent(twamp.Event{At: time.Now(), Kind: twamp.EventUp})
	sp.cfg.OnEvent(twamp.Event{At: time.Now(), Kind: twamp.EventMetrics, Metrics: &twamp.Metrics{Sent: 10, Received: 10, RTT: twamp.Stats{Count: 10, Avg: d}}})
}

func (sp *scriptedProbe) Run(ctx context.Context) error {
	sp.p.mu.Lock()
	sp.p.live = append(sp.p.live, sp)
	sp.p.mu.Unlock()
	sp.report()
	<-ctx.Done()
	sp.p.mu.Lock()
	sp.p.live = slices.DeleteFunc(sp.p.live, func(o *scriptedProbe) bool { return o == sp })
	sp.p.mu.Unlock()
	return nil
}

func (sp *scriptedProbe) Metrics() twamp.Metrics    { return twamp.Metrics{} }
func (sp *scriptedProbe) State() twamp.SessionState { return twamp.StateInit }

func (s *scriptedProbes) setDelay(first netip.Addr, d time.Duration) {
	s.mu.Lock()
	s.delay[first] = d
	var hit []*scriptedProbe
	for _, sp := range s.live {
		if sp.cfg.Segments[0] == first {
			hit = append(hit, sp)
		}
	}
	s.mu.Unlock()
	for _, sp := range hit {
		sp.report()
	}
}

// waitPolicy polls the agent's first policy until ok holds.
func (h *harness) waitPolicy(ok func(PolicyStatus) bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ps := h.agent.PolicyStatus(); len(ps) > 0 && ok(ps[0]) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("policy status never satisfied the condition; last: %+v", h.agent.PolicyStatus())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listsUp: n constituents, each list up and measured.
func listsUp(p PolicyStatus, n int) bool {
	if len(p.Constituents) != n {
		return false
	}
	for _, c := range p.Constituents {
		for _, l := range c.Lists {
			if l.State != "up" || !l.HasMetrics {
				return false
			}
		}
	}
	return true
}

// fakePolicies is a policy runtime with a fixed status that records what
// it is handed.
type fakePolicies struct {
	mu       sync.Mutex
	status   []PolicyStatus
	bw       []string
	restored []string
	err      error
}

func (f *fakePolicies) PolicyStatus() []PolicyStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.status)
}

func (f *fakePolicies) ObservePolicyBandwidth(policy string, color uint32, bw srv6.Bandwidth) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bw = append(f.bw, fmt.Sprintf("%s/%d=%s", policy, color, bw))
	return f.err
}

func (f *fakePolicies) RestorePolicyService(policy, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = append(f.restored, policy+"/"+service)
	return f.err
}

func (f *fakePolicies) set(fn func(*fakePolicies)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// The policies of the config file appear as Policy.{i}, enabled; the
// read-only status comes from the runtime; RemainingBandwidth and Restore
// go to it; a runtime that refuses rolls the whole SPV back; an ACS can
// have active notification of a service's switch.
func TestPolicyModelStatusAndRuntime(t *testing.T) {
	m := startModel(t, policyModelDoc+draftPoliciesYAML, t.TempDir())
	if got := runningPolicies(m.agent); !reflect.DeepEqual(got, draftPolicies(t)) {
		t.Fatalf("file policies not mirrored: %+v", got)
	}
	since := time.Date(2026, 11, 22, 3, 4, 5, 0, time.UTC)
	fake := &fakePolicies{status: []PolicyStatus{{
		Name: "sr-policy",
		Constituents: []PolicyConstituentStatus{
			{Color: 10, Lists: []PolicyListStatus{{State: "down"}}},
			{Color: 20, Lists: []PolicyListStatus{{State: "up", HasMetrics: true, Delay: 12345 * time.Microsecond, Jitter: 678 * time.Microsecond,
				LossPercent: 0.5, ForwardDelay: 6 * time.Millisecond, Bandwidth: 80e6, HasBandwidth: true}}},
		},
		Services: []PolicyServiceStatus{
			{Name: "conference", Priority: 2, Colors: []uint32{20}, Since: since, Installed: true},
			{Name: "crm", Fallback: true, Colors: []uint32{20}, Reason: "color 20 (path2): remaining bandwidth 40Mbit/s under 50Mbit/s"},
		},
		Events: []PolicyEvent{
			{Service: "conference", Kind: "select", Reason: "first measurement"},
			{Service: "conference", Kind: "degrade", Reason: "color 10 (path1): down"},
			{Service: "crm", Kind: "fallback", Reason: "color 20 (path2): remaining bandwidth 40Mbit/s under 50Mbit/s"},
		},
		Notes: []string{"flows[0]: not installed for IPv4", "flows[1]: not installed"},
	}}}
	m.agent.model.policies = fake
	l1, l2 := pol1+"Constituent.1.SegmentList.1.", pol1+"Constituent.2.SegmentList.1."
	got := m.get(pol1)
	for name, want := range map[string]string{
		pol1 + "Enable": "true", pol1 + "Status": "Running", pol1 + "Name": "sr-policy",
		l1 + "Status": "Down", l1 + "Delay": "-1", l1 + "Loss": "", l1 + "ForwardDelay": "-1",
		l2 + "Status": "Up", l2 + "Delay": "12345", l2 + "Jitter": "678", l2 + "Loss": "0.5", l2 + "ForwardDelay": "6000", l2 + "BackwardDelay": "-1",
		pol1 + "Constituent.1.RemainingBandwidth": "-1", pol1 + "Constituent.2.RemainingBandwidth": "80000",
		pol1 + "Service.1.ActivePriority": "2", pol1 + "Service.1.ActiveColors": "20", pol1 + "Service.1.Fallback": "false",
		pol1 + "Service.1.LastSwitch": "2026-11-22T03:04:05Z", pol1 + "Service.1.FallbackReason": "",
		pol1 + "Service.2.Fallback": "true", pol1 + "Service.2.ActivePriority": "0", pol1 + "Service.2.LastSwitch": "0001-01-01T00:00:00Z",
		pol1 + "Service.2.FallbackReason": "color 20 (path2): remaining bandwidth 40Mbit/s under 50Mbit/s", pol1 + "Service.2.Restore": "false",
		pol1 + "Service.1.LastSwitchReason": "degrade: color 10 (path1): down", pol1 + "Service.1.Installed": "true", pol1 + "Service.2.Installed": "false",
		pol1 + "Notes": "flows[0]: not installed for IPv4; flows[1]: not installed",
	} {
		if got[name] != want {
			t.Errorf("GPV %s = %q, want %q", name, got[name], want)
		}
	}

	// The controller's bandwidth and a manual restore reach the runtime,
	// with a configuration change in the same SPV.
	if err := m.spv(pol1+"Constituent.2.RemainingBandwidth", "40000", pol1+"Service.2.Restore", "true", pol1+"ProbeInterval", "20"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fake.bw, []string{"sr-policy/20=40M"}) || !slices.Equal(fake.restored, []string{"sr-policy/crm"}) {
		t.Errorf("runtime handed bandwidth %v, restores %v", fake.bw, fake.restored)
	}
	if p := runningPolicies(m.agent); p[0].ProbeInterval != 20*time.Millisecond {
		t.Errorf("probe interval %v, want 20ms", p[0].ProbeInterval)
	}
	// A runtime that refuses: the fault names the parameter, and the
	// configuration change of the same SPV is rolled back.
	fake.set(func(f *fakePolicies) { f.err = fmt.Errorf("policy: %w", errors.New("no such policy")) })
	err := m.spv(pol1+"Constituent.1.RemainingBandwidth", "1000", pol1+"ProbeInterval", "30")
	wantFault(t, err, cwmpclient.FaultInvalidValue, pol1+"Constituent.1.RemainingBandwidth", "no such policy")
	if p := runningPolicies(m.agent); p[0].ProbeInterval != 20*time.Millisecond {
		t.Errorf("probe interval %v after a refused SPV, want 20ms kept", p[0].ProbeInterval)
	}
	fake.set(func(f *fakePolicies) { f.err = nil })
	wantFault(t, m.spv(pol1+"Constituent.1.RemainingBandwidth", "-5"), cwmpclient.FaultInvalidValue, pol1+"Constituent.1.RemainingBandwidth", "negative")

	// Active notification of a switch: the ACS asks for it, the runtime's
	// choice changes, the next check starts a session.
	if err := m.tree.SetAttributes([]cwmpclient.SetParameterAttributesStruct{{Name: pol1 + "Service.1.ActiveColors", NotificationChange: true, Notification: 2}}); err != nil {
		t.Fatal(err)
	}
	var active int
	m.tree.OnActiveNotification(func() { active++ })
	if err := m.tree.CheckNotifications(); err != nil {
		t.Fatal(err)
	}
	fake.set(func(f *fakePolicies) {
		f.status[0].Services = []PolicyServiceStatus{{Name: "conference", Priority: 1, Colors: []uint32{10}}}
	})
	if err := m.tree.CheckNotifications(); err != nil {
		t.Fatal(err)
	}
	pending := m.tree.PendingNotifications()
	if active != 1 || len(pending) != 1 || pending[0].Name != pol1+"Service.1.ActiveColors" || pending[0].Value != "10" {
		t.Errorf("after a switch: %d active notifications, pending %+v", active, pending)
	}
	// Measurements refuse active notification: they change every probe.
	if err := m.tree.SetAttributes([]cwmpclient.SetParameterAttributesStruct{{Name: l2 + "Delay", NotificationChange: true, Notification: 2}}); err == nil {
		t.Error("active notification on a measured delay accepted")
	}
}

// Every bad value gets a per-parameter 9007 naming it, and nothing
// changes: not the model, not the overlay file, not the dataplane.
func TestPolicyModelBadValuesChangeNothing(t *testing.T) {
	m := startModel(t, policyModelDoc+draftPoliciesYAML, t.TempDir())
	// The controller owns the configuration, so the overlay exists.
	if err := m.spv(pol1+"ProbeInterval", "20"); err != nil {
		t.Fatal(err)
	}
	c1, c2, s1, s2, f1 := pol1+"Constituent.1.", pol1+"Constituent.2.", pol1+"Selector.1.", pol1+"Selector.2.", pol1+"Flow.1."
	for _, tc := range []struct {
		name  string
		spv   []cwmpclient.ParameterValue
		param string
		texts []string
	}{
		{"endpoint not an address", pv(pol1+"Endpoint", "zz"), pol1 + "Endpoint", []string{"zz"}},
		{"name not a name", pv(pol1+"Name", "a b"), pol1 + "Name", []string{"a b"}},
		{"no name", pv(pol1+"Name", ""), pol1 + "Name", []string{"no name"}},
		{"parent color 0", pv(pol1+"Color", "0"), pol1 + "Color", []string{"color 0"}},
		{"parent color on a constituent", pv(c1+"Color", "100"), c1 + "Color", []string{"own color"}},
		{"two constituents one color", pv(c2+"Color", "10"), c2 + "Color", []string{"color 10 used twice"}},
		{"segments unparsable", pv(c1+"SegmentList.1.Segments", "2001:db8::1, banana"), c1 + "SegmentList.1.Segments", []string{"banana"}},
		{"segment list emptied", pv(c1+"SegmentList.1.Segments", ""), c1 + "SegmentList.1.Segments", []string{"no segment lists"}},
		{"weight 0", pv(c1+"SegmentList.1.Weight", "0"), c1 + "SegmentList.1.Weight", []string{"weight 0"}},
		{"priority on an unknown color", pv(s1+"Priority.2.Color", "30"), s1 + "Priority.2.Color", []string{"names color 30"}},
		{"priority 0", pv(s1+"Priority.1.Priority", "0"), s1 + "Priority.1.Priority", []string{"outside 1..255"}},
		{"priority 256", pv(s1+"Priority.1.Priority", "256"), s1 + "Priority.1.Priority", []string{"256"}},
		{"color listed twice", pv(s2+"Priority.2.Color", "20"), s2 + "Priority.2.Color", []string{"listed twice"}},
		{"default not a constituent", pv(s2+"DefaultColor", "77"), s2 + "DefaultColor", []string{"77"}},
		{"loss over 100", pv(s1+"LossThreshold", "101"), s1 + "LossThreshold", []string{"101"}},
		{"loss not a number", pv(s1+"LossThreshold", "lots"), s1 + "LossThreshold", []string{"lots"}},
		{"two selectors one name", pv(s2+"Name", "irp1"), s2 + "Name", []string{"name used twice"}},
		{"service on an unknown selector", pv(pol1+"Service.2.Selector", "irp9"), pol1 + "Service.2.Selector", []string{"irp9"}},
		{"two services one name", pv(pol1+"Service.2.Name", "conference"), pol1 + "Service.2.Name", []string{"used twice"}},
		{"VPN not a service", pv(pol1+"VPN", "vpn9"), pol1 + "VPN", []string{"vpn9"}},
		{"probe interval too short", pv(pol1+"ProbeInterval", "1"), pol1 + "ProbeInterval", []string{"shorter"}},
		{"DSCP 64", []cwmpclient.ParameterValue{{Name: f1 + "DSCP", Value: "64", Type: "int"}}, f1 + "DSCP", []string{"64"}},
		{"unknown protocol", pv(f1+"Protocol", "quic"), f1 + "Protocol", []string{"quic"}},
		{"ports without protocol", pv(f1+"Protocol", ""), f1 + "Protocol", []string{"ports need protocol"}},
		{"bad prefix", pv(f1+"Src", "2001:db8::1/33"), f1 + "Src", []string{"host bits"}},
		{"bad mark", pv(f1+"FwMark", "0x10/0x0"), f1 + "FwMark", []string{"mask 0"}},
		{"flow on an unknown service", pv(f1+"Service", "video"), f1 + "Service", []string{"video"}},
		{"wrong type", []cwmpclient.ParameterValue{{Name: pol1 + "Color", Value: "true", Type: "boolean"}}, pol1 + "Color", nil},
		{"one good, one bad", append(pv(pol1+"ProbeInterval", "50"), pv(s1+"Priority.2.Color", "30")...), s1 + "Priority.2.Color", []string{"color 30"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := m.snap()
			_, err := m.tree.SetValues(tc.spv, "bad")
			if err == nil {
				t.Fatal("accepted")
			}
			code := cwmpclient.FaultInvalidValue
			if tc.texts == nil {
				code = cwmpclient.FaultInvalidType
			}
			wantFault(t, err, code, tc.param, tc.texts...)
			var f *cwmpclient.Fault
			if errors.As(err, &f) && len(f.SPV) != 1 {
				t.Errorf("faults %+v, want one, on %s", f.SPV, tc.param)
			}
			m.unchangedSince(t, snap)
		})
	}
}

// AddObject leaves the configuration as it was (a new instance is blank
// until a value is set); a half-filled one is refused when it is set,
// naming what is missing; DeleteObject of what another entry still uses is
// refused; a disabled policy is kept but not run.
func TestPolicyModelObjects(t *testing.T) {
	m := startModel(t, policyModelDoc+draftPoliciesYAML, t.TempDir())
	want := draftPolicies(t)
	n, err := m.tree.AddObject(pol1+"Constituent.", "k")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || !reflect.DeepEqual(runningPolicies(m.agent), want) {
		t.Fatalf("AddObject gave instance %d and changed the configuration", n)
	}
	c3 := pol1 + "Constituent.3."
	wantFault(t, m.spv(c3+"Name", "path3"), cwmpclient.FaultInvalidValue, c3+"Name", "color 0")
	ln, err := m.tree.AddObject(c3+"SegmentList.", "k")
	if err != nil {
		t.Fatal(err)
	}
	l := c3 + "SegmentList." + itoa(ln) + "."
	if err := m.spv(c3+"Name", "path3", c3+"Color", "30", l+"Segments", "2001:db8:c::1, 2001:db8:2::1", l+"Weight", "3"); err != nil {
		t.Fatal(err)
	}
	got := runningPolicies(m.agent)[0].Constituents
	if len(got) != 3 || got[2].Color != 30 || got[2].SegmentLists[0].Weight != 3 || got[2].SegmentLists[0].Segments[0] != netip.MustParseAddr("2001:db8:c::1") {
		t.Errorf("constituents %+v", got)
	}
	// Color 20 is in selectors irp1 and irp2.
	err = m.tree.DeleteObject(pol1+"Constituent.2.", "k")
	var f *cwmpclient.Fault
	if !errors.As(err, &f) || f.Code != cwmpclient.FaultRequestDenied || !strings.Contains(f.String, "color 20") {
		t.Errorf("DeleteObject of a constituent in use: %v", err)
	}
	if err := m.tree.DeleteObject(c3, "k"); err != nil {
		t.Fatal(err)
	}
	if got := runningPolicies(m.agent); !reflect.DeepEqual(got, want) {
		t.Errorf("after DeleteObject: %+v", got)
	}
	// Disabled: kept in the model and the tree, not run.
	if err := m.spv(pol1+"Enable", "false"); err != nil {
		t.Fatal(err)
	}
	if got := runningPolicies(m.agent); len(got) != 0 {
		t.Errorf("a disabled policy runs: %+v", got)
	}
	if v := m.get(pol1 + "Name")[pol1+"Name"]; v != "sr-policy" {
		t.Errorf("disabled policy's name %q", v)
	}
	if v := m.get(pol1 + "Status")[pol1+"Status"]; v != "Disabled" {
		t.Errorf("disabled policy's status %q", v)
	}
	if err := m.tree.DeleteObject(pol1, "k"); err != nil {
		t.Fatal(err)
	}
	if v := m.get(SRv6Object + "PolicyNumberOfEntries"); v[SRv6Object+"PolicyNumberOfEntries"] != "0" {
		t.Errorf("PolicyNumberOfEntries %v after deleting the only policy", v)
	}
}

// The model holds every field of a policy: the file's policies survive
// the trip through it, instance numbers stay with their positions, and
// instances the file no longer fills stay, blank and not configured.
func TestPolicyModelRoundTrip(t *testing.T) {
	dscp := uint8(46)
	full := PolicyConfig{
		Policy: srv6.Policy{Name: "p", Color: 1, Endpoint: netip.MustParseAddr("2001:db8::1"),
			Constituents: []srv6.Constituent{{Color: 2, Name: "c", SegmentLists: []srv6.SegmentList{{Segments: srv6.Segments{netip.MustParseAddr("2001:db8::2")}, Weight: 2}}}},
			Selectors: []srv6.RoutingSelector{{Name: "s", Priorities: []srv6.PriorityEntry{{Priority: 1, Color: 2, Weight: 3}},
				Thresholds: srv6.Thresholds{Delay: time.Millisecond, Jitter: time.Microsecond, LossPercent: 1.5, MinBandwidth: 1000},
				Default:    2, WaitToRestore: time.Second, NonRevertive: true}},
			Services: []srv6.PolicyService{{Name: "svc", Selector: "s"}}},
		VPN: "v", ProbeInterval: time.Millisecond, EndTSF: true,
		Flows: []FlowConfig{{Service: "svc", DSCP: &dscp, Protocol: "udp", Src: "a", Dst: "b", SrcPorts: "1", DstPorts: "2", FwMark: "3"}},
	}
	// A field added to the configuration must be added to the model.
	for _, v := range []reflect.Value{reflect.ValueOf(full), reflect.ValueOf(full.Policy), reflect.ValueOf(full.Constituents[0]),
		reflect.ValueOf(full.Constituents[0].SegmentLists[0]), reflect.ValueOf(full.Selectors[0]), reflect.ValueOf(full.Selectors[0].Thresholds),
		reflect.ValueOf(full.Selectors[0].Priorities[0]), reflect.ValueOf(full.Services[0]), reflect.ValueOf(full.Flows[0])} {
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Errorf("%s.%s unset in this test: does the CWMP model carry it?", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	st := modelState{Policies: policiesFromConfig([]PolicyConfig{full}, nil)}
	st = st.clone() // as the overlay stores it
	if got, _ := st.policyConfigs(); !reflect.DeepEqual(got, []PolicyConfig{full}) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", got, []PolicyConfig{full})
	}
	// Numbered as a tree would, then the file loses its second policy and
	// its first policy's flow.
	second := full
	second.Name, second.Color = "q", 9
	st = modelState{Policies: policiesFromConfig([]PolicyConfig{full, second}, nil)}
	st.Policies[0].Inst, st.Policies[1].Inst, st.Policies[0].Flows[0].Inst = 4, 7, 5
	shorter := full
	shorter.Flows = nil
	st = modelState{Policies: policiesFromConfig([]PolicyConfig{shorter}, st.Policies)}
	if len(st.Policies) != 2 || st.Policies[0].Inst != 4 || st.Policies[1].Inst != 7 || st.Policies[1].Enable ||
		len(st.Policies[0].Flows) != 1 || st.Policies[0].Flows[0].Inst != 5 || !st.Policies[0].Flows[0].blank() {
		t.Errorf("renumbered model %+v", st.Policies)
	}
	if got, _ := st.policyConfigs(); !reflect.DeepEqual(got, []PolicyConfig{shorter}) {
		t.Errorf("configured %+v, want the file's one policy", got)
	}
	st.Disabled = true
	if got, _ := st.policyConfigs(); got != nil {
		t.Errorf("SRv6 disabled, policies %+v", got)
	}
}

// numberedDraft is the model of policies numbered as a tree numbers it,
// and the tree's configuration parameters (RemainingBandwidth and Restore
// are the runtime's).
func numberedDraft(t testing.TB, policies []PolicyConfig) (modelState, []string) {
	tree := cwmpclient.NewTree(nil, "")
	// Syncing: the tree's AddObjects are the model's own, as at start.
	if err := (&srv6Model{syncing: true}).registerPolicies(tree); err != nil {
		t.Fatal(err)
	}
	st := modelState{Policies: policiesFromConfig(policies, nil)}
	if err := syncPolicyInstances(tree, &st); err != nil {
		t.Fatal(err)
	}
	names, err := tree.GetNames(policyTable, false)
	if err != nil {
		t.Fatal(err)
	}
	var writable []string
	for _, n := range names {
		if n.Writable && policySetters[changeOf(n.Name, "").Template] != nil {
			writable = append(writable, n.Name)
		}
	}
	if len(writable) < 40 {
		t.Fatalf("%d writable configuration parameters: %v", len(writable), writable)
	}
	return st, writable
}

// changeOf is the change SetParameterValues hands the committer.
func changeOf(name, value string) cwmpclient.Change {
	ch := cwmpclient.Change{Name: name, New: value}
	segs := strings.Split(name, ".")
	for i, seg := range segs {
		if n, err := strconv.ParseUint(seg, 10, 32); err == nil {
			ch.Idx = append(ch.Idx, uint32(n))
			segs[i] = "{i}"
		}
	}
	ch.Template = strings.Join(segs, ".")
	return ch
}

// FuzzPolicyModelValues sets one parameter of the draft example to any
// value, as a committer does: a value is refused or kept, a refused
// configuration's faults name the changed parameter, and the model
// survives the overlay's JSON unchanged.
func FuzzPolicyModelValues(f *testing.F) {
	cfg, err := ParseConfig([]byte(policyModelDoc + draftPoliciesYAML))
	if err != nil {
		f.Fatal(err)
	}
	st, writable := numberedDraft(f, cfg.Policies)
	for i, v := range []string{"0", "30", "", "irp9", "2001:db8::1", "2001:db8:a::1, banana", "true", "101", "0x10/0x0", "65535-1"} {
		f.Add(uint16(i*7), v)
	}
	f.Fuzz(func(t *testing.T, pick uint16, value string) {
		ch := changeOf(writable[int(pick)%len(writable)], value)
		cand := st.clone()
		if policySetters[ch.Template](&cand, ch.Idx, value) != nil {
			return // a 9007 of its own
		}
		if again := cand.clone(); !reflect.DeepEqual(again, cand.clone().clone()) {
			t.Fatalf("model changes through JSON: %+v", again)
		}
		err := checkPolicies(&cand)
		if err == nil {
			return
		}
		// With a second change of the same SPV that sets a value again, the
		// fault still lands on the one that broke the configuration.
		changes := []cwmpclient.Change{ch}
		if other := pol1 + "ProbeInterval"; ch.Name != other {
			changes = append(changes, changeOf(other, "10"))
		}
		faults := attributePolicy(err, changes, &cand)
		i := slices.IndexFunc(faults, func(f cwmpclient.SPVFault) bool { return f.Name == ch.Name })
		if i < 0 || faults[i].Code != cwmpclient.FaultInvalidValue || faults[i].String == "" {
			t.Fatalf("%s=%q: %v gave faults %+v", ch.Name, value, err, faults)
		}
	})
}

// AddObject stops at maxPolicyObjects instances under the policies.
func TestPolicyModelObjectCap(t *testing.T) {
	m := startModel(t, policyModelDoc+draftPoliciesYAML, t.TempDir())
	st, _ := m.agent.model.snapshot()
	st = st.clone()
	p := &st.Policies[0]
	for n := policyObjects(&st); n < maxPolicyObjects; n++ {
		c := &p.Constituents[len(p.Constituents)-1]
		if len(c.Lists) == maxPolicyChildren {
			p.Constituents = append(p.Constituents, modelConstituent{})
			continue
		}
		c.Lists = append(c.Lists, modelSegmentList{Weight: 1})
	}
	// Blank entries: the configuration the agent runs stays the same.
	if err := m.agent.model.replace(st); err != nil {
		t.Fatal(err)
	}
	if err := m.agent.model.syncInstances(m.tree); err != nil {
		t.Fatal(err)
	}
	_, err := m.tree.AddObject(pol1+"Flow.", "k")
	var f *cwmpclient.Fault
	if !errors.As(err, &f) || f.Code != cwmpclient.FaultResourcesExceeded {
		t.Fatalf("AddObject past %d objects: %v", maxPolicyObjects, err)
	}
	if err := m.tree.DeleteObject(pol1+"Constituent.2.", "k"); err == nil {
		t.Fatal("deleted a constituent a selector uses")
	}
	if err := m.tree.DeleteObject(pol1+"Constituent.3.", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.tree.AddObject(pol1+"Flow.", "k"); err != nil {
		t.Errorf("AddObject after a DeleteObject made room: %v", err)
	}
}
