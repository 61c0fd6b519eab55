package agent

import (
	"context"
	"encoding/xml"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
	"github.com/srv6cpe/srv6cpe/twamp"
)

func TestMonitorTaskValidate(t *testing.T) {
	good := MonitorTask{ID: "t1", Role: RoleSender, PeerIP: netip.MustParseAddr("2001:db8::2")}
	good.setDefaults()
	if errs := good.validate(); len(errs) > 0 {
		t.Fatalf("good task: %v", errs)
	}
	if good.Port != 862 || good.Cycle != 60 || good.PacketInterval != 100 || good.Protocol != ProtocolSTAMP {
		t.Errorf("defaults %+v", good)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*MonitorTask)
		field string
	}{
		{"no id", func(t *MonitorTask) { t.ID = "" }, "MonitorTaskID"},
		{"bad id", func(t *MonitorTask) { t.ID = "a b" }, "MonitorTaskID"},
		{"role", func(t *MonitorTask) { t.Role = "Both" }, "Role"},
		{"sender without peer", func(t *MonitorTask) { t.PeerIP = netip.Addr{} }, "PeerIP"},
		{"v4 peer", func(t *MonitorTask) { t.PeerIP = netip.MustParseAddr("192.0.2.1") }, "PeerIP"},
		{"multicast local", func(t *MonitorTask) { t.LocalIP = netip.MustParseAddr("ff02::1") }, "LocalIP"},
		{"link-local peer", func(t *MonitorTask) { t.PeerIP = netip.MustParseAddr("fe80::1") }, "PeerIP"},
		{"protocol", func(t *MonitorTask) { t.Protocol = "OWAMP" }, "Protocol"},
		{"cycle", func(t *MonitorTask) { t.Cycle = 86401 }, "MonitorCycle"},
		{"interval", func(t *MonitorTask) { t.PacketInterval = 1 }, "PacketInterval"},
		{"size", func(t *MonitorTask) { t.PacketSize = 9001 }, "PacketSize"},
		{"dscp", func(t *MonitorTask) { t.DSCP = 64 }, "DSCP"},
		{"segments", func(t *MonitorTask) { t.SegmentList = "2001:db8::1,nonsense" }, "SegmentList"},
		{"reflector segments", func(t *MonitorTask) { t.Role, t.SegmentList = RoleReflector, "2001:db8::1" }, "SegmentList"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := good
			tc.edit(&task)
			errs := task.validate()
			if len(errs) != 1 || errs[0].Field != tc.field {
				t.Errorf("errors %v, want one naming %s", errs, tc.field)
			}
		})
	}
	// A reflector may take any peer.
	r := MonitorTask{ID: "r", Role: RoleReflector}
	r.setDefaults()
	if errs := r.validate(); len(errs) > 0 {
		t.Errorf("reflector without peer: %v", errs)
	}
}

func TestMonitorFieldsParse(t *testing.T) {
	var task MonitorTask
	for name, v := range map[string]string{"Role": "sender", "Protocol": "twamp-light", "UpdatedLocalIP": "2001:db8::1", "Enable": "0", "Port": "8620"} {
		f, ok := monitorFieldNamed(name)
		if !ok {
			t.Fatalf("no field %s", name)
		}
		if err := f.set(&task, v); err != nil {
			t.Fatalf("%s=%s: %v", name, v, err)
		}
	}
	if task.Role != RoleSender || task.Protocol != ProtocolTWAMPLit || task.LocalIP != netip.MustParseAddr("2001:db8::1") || task.enabled() || task.Port != 8620 {
		t.Errorf("parsed %+v", task)
	}
	for name, v := range map[string]string{"PeerIP": "10.0.0.1", "LocalIP": "x", "Port": "70000", "MonitorCycle": "-1", "DSCP": "300", "Enable": "maybe"} {
		f, _ := monitorFieldNamed(name)
		if err := f.set(&task, v); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("%s=%q: error %v, want one naming the value", name, v, err)
		}
	}
}

func TestCycleAccumulator(t *testing.T) {
	var a cycleAcc
	if _, ok := a.take(time.Now()); ok {
		t.Fatal("an empty cycle reported")
	}
	for i, rtt := range []time.Duration{10, 12, 11} {
		a.add(1, twamp.Sample{Seq: uint32(i), RTT: rtt * time.Millisecond})
	}
	a.add(1, twamp.Sample{Seq: 3, Lost: true})
	r, ok := a.take(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if !ok || r.Latency != "11.000" || r.Jitter != "1.500" || r.PacketLossRate != "25.00" {
		t.Errorf("report %+v", r)
	}
	// A new session (re-target) does not make a delay variation with the old one.
	a.add(2, twamp.Sample{Seq: 0, RTT: 30 * time.Millisecond})
	a.add(2, twamp.Sample{Seq: 1, RTT: 31 * time.Millisecond})
	if r, _ := a.take(time.Now()); r.Jitter != "1.000" || r.Latency != "30.500" || r.PacketLossRate != "0.00" {
		t.Errorf("after re-target %+v", r)
	}
}

// probeFake is a sender session that produces one answered probe per
// millisecond-ish tick (RTT alternating 10 and 12 ms, every 4th lost)
// until stopped.
type probeFake struct {
	cfg twamp.SenderConfig
}

func (p *probeFake) Run(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s := twamp.Sample{Seq: seq, Sent: time.Now(), RTT: 10 * time.Millisecond}
		if seq%2 == 1 {
			s.RTT = 12 * time.Millisecond
		}
		s.Lost = seq%4 == 3
		p.cfg.OnSample(s)
	}
}

func (p *probeFake) Metrics() twamp.Metrics    { return twamp.Metrics{} }
func (p *probeFake) State() twamp.SessionState { return twamp.StateInit }

// sessions records the sender sessions the monitor starts.
type sessions struct {
	mu   sync.Mutex
	cfgs []twamp.SenderConfig
}

func (s *sessions) new(c twamp.SenderConfig) (twamp.Session, error) {
	s.mu.Lock()
	s.cfgs = append(s.cfgs, c)
	s.mu.Unlock()
	return &probeFake{cfg: c}, nil
}

func (s *sessions) last() twamp.SenderConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cfgs) == 0 {
		return twamp.SenderConfig{}
	}
	return s.cfgs[len(s.cfgs)-1]
}

type fakeReflector struct{ cfg twamp.ReflectorConfig }

func (f *fakeReflector) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// startMonitorAgent is start() with the monitor's sessions faked and its
// second shrunk to unit.
func startMonitorAgent(t *testing.T, cfg Config, dir string, unit time.Duration, ss *sessions, refl chan<- twamp.ReflectorConfig) *harness {
	t.Helper()
	st, err := board.OpenStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, src: newFakeSource(), dp: newFakeDataplane(noVRF), state: st}
	h.agent, err = New(cfg, WithLogger(zaptest.NewLogger(t)), WithPrefixSource(h.src), WithDataplane(h.dp), WithStateDir(st),
		func(o *options) { o.cwmp.bootID = func() (string, error) { return "boot-1", nil } })
	if err != nil {
		t.Fatal(err)
	}
	m := h.agent.monitor
	m.mu.Lock()
	m.unit, m.newSession = unit, ss.new
	m.newReflector = func(c twamp.ReflectorConfig) (reflectorRunner, error) {
		if refl != nil {
			refl <- c
		}
		return &fakeReflector{cfg: c}, nil
	}
	m.mu.Unlock()
	h.stop = runAgent(t, h.agent)
	return h
}

// vendorFields reads a vendor message's name/value children.
func vendorFields(m cwmptest.Message) map[string]string {
	out := map[string]string{}
	if m.Body == nil {
		return out
	}
	for _, c := range m.Body.ChildElements() {
		out[c.Tag] = strings.TrimSpace(c.Text())
	}
	return out
}

// watch collects every CPE message the ACS double sees, by session.
type watch struct {
	mu   sync.Mutex
	msgs []seen
	// answerData: reply to Stats_Monitor_Data_Resp (else the double's
	// default fault 8000).
	answerData bool
}

type seen struct {
	session int
	msg     cwmptest.Message
	inform  *cwmptest.Inform
}

func (w *watch) hook(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, seen{session: s.Index, msg: m, inform: s.Inform})
	if (m.Method == rpcMonitorData && w.answerData) || m.Method == rpcIPChange {
		return answerVendor(m)
	}
	return nil
}

func (w *watch) setAnswer(v bool) {
	w.mu.Lock()
	w.answerData = v
	w.mu.Unlock()
}

// waitFor returns the first message after from that ok accepts.
func (w *watch) waitFor(t *testing.T, from int, what string, ok func(seen) bool) (seen, int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for i := from; i < len(w.msgs); i++ {
			if ok(w.msgs[i]) {
				s := w.msgs[i]
				w.mu.Unlock()
				return s, i + 1
			}
		}
		w.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s within 15s", what)
	return seen{}, 0
}

func (w *watch) countMethod(method string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.msgs {
		if s.msg.Method == method {
			n++
		}
	}
	return n
}

func (w *watch) raws() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out [][]byte
	for _, s := range w.msgs {
		if len(s.msg.Raw) > 0 {
			out = append(out, s.msg.Raw)
		}
	}
	return out
}

const (
	peer1 = "2001:db8:99::2"
	peer2 = "2001:db8:99::3"
	wan1  = "2001:db8:1200::1"
	wan2  = "2001:db8:3400::1"
)

// The Q.Suppl.79 §8.3 flow through the Stats_* RPCs: a task configured by
// Stats_Monitor_Config_Req reports every cycle; a renumbering re-targets it
// under the same MonitorTaskID with one IP change report in the session
// of the 4 VALUE CHANGE; Stats_Monitor_Update_Req re-targets the peer; bad
// requests are refused naming the fields; an ACS that answers fault 8000
// gets the values as parameters with active notification instead.
func TestMonitorRPCFlow(t *testing.T) {
	w := &watch{answerData: true}
	acs := cwmptest.NewServer(t, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "cpe-secret"), cwmptest.WithHook(w.hook))
	cfg, _ := testCWMPConfig(t, acs.URL)
	ss := &sessions{}
	h := startMonitorAgent(t, cfg, t.TempDir(), 50*time.Millisecond, ss, nil)
	h.src.send(t, "2001:db8:1200::/40", wan1)
	first := waitSessions(t, acs, 1)[0]
	crURL := informValue(first.Inform, "Device.ManagementServer.ConnectionRequestURL")

	// A bad request changes nothing and names every bad element.
	acs.Enqueue(cwmptest.Vendor(rpcMonitorConfig, [2]string{"MonitorTaskID", "bad"}, [2]string{"Role", "Sender"},
		[2]string{"PeerIP", "10.1.1.1"}, [2]string{"Port", "70000"}, [2]string{"Colour", "red"}))
	acs.Enqueue(cwmptest.Vendor(rpcMonitorConfig, [2]string{"MonitorTaskID", "task-1"}, [2]string{"Role", "Sender"},
		[2]string{"LocalIP", ""}, [2]string{"PeerIP", peer1}, [2]string{"MonitorCycle", "2"}, [2]string{"PacketInterval", "10"}))
	connectionRequest(t, crURL)
	f, next := w.waitFor(t, 0, "fault for the bad config", func(s seen) bool { return s.msg.Method == "Fault" })
	code, text := f.msg.Fault()
	if code != cwmpclient.FaultInvalidArguments {
		t.Errorf("fault %d %q, want 9003", code, text)
	}
	for _, name := range []string{"PeerIP", "10.1.1.1", "Port", "70000", "Colour"} {
		if !strings.Contains(text, name) {
			t.Errorf("fault string %q does not name %s", text, name)
		}
	}
	resp, next := w.waitFor(t, next, "config response", func(s seen) bool { return s.msg.Method == rpcMonitorConfig+"Response" })
	if v := vendorFields(resp.msg)["Status"]; v != "0" {
		t.Errorf("config response Status %q", v)
	}
	if st := h.agent.monitor.snapshot(); len(st.Tasks) != 1 || st.Tasks[0].Task.ID != "task-1" || st.Tasks[0].Inst == 0 {
		t.Fatalf("tasks after the RPCs: %+v", st.Tasks)
	}

	// Reports every cycle with the window's values.
	var reports []map[string]string
	for len(reports) < 2 {
		var r seen
		r, next = w.waitFor(t, next, "data report", func(s seen) bool { return s.msg.Method == rpcMonitorData })
		reports = append(reports, vendorFields(r.msg))
	}
	for _, r := range reports {
		if r["MonitorTaskID"] != "task-1" || r["DeviceID"] != "00A0C9-SRv6-CPE-CW0001" || r["LocalIP"] != wan1 || r["PeerIP"] != peer1 {
			t.Errorf("report ids %v", r)
		}
		if r["Latency"] < "10.000" || r["Latency"] > "12.000" || len(r["Latency"]) != 6 || r["Jitter"] == "" || r["PacketLossRate"] == "" {
			t.Errorf("report values %v", r)
		}
		if _, err := time.Parse(time.RFC3339, r["ReportTimestamp"]); err != nil {
			t.Errorf("ReportTimestamp: %v", err)
		}
		if _, ok := r["Bandwidth"]; ok {
			t.Errorf("Bandwidth reported though not measured: %v", r)
		}
	}
	if l := h.agent.MonitorTasks(); len(l) != 1 || !l[0].Running || l[0].Reports != "rpc" || l[0].LastReport == nil || l[0].LocalIP != netip.MustParseAddr(wan1) {
		t.Errorf("MonitorTasks %+v", l)
	}
	if c := ss.last(); c.Src != netip.MustParseAddr(wan1) || c.Dst != netip.MustParseAddrPort("["+peer1+"]:862") || c.Interval != 10*time.Millisecond || c.SSID == 0 {
		t.Errorf("sender config %+v", c)
	}
	ssid := ss.last().SSID

	// Renumbering: one IP change report, in the session whose Inform has
	// 4 VALUE CHANGE with the new prefix and locator.
	h.src.send(t, "2001:db8:3400::/40", wan2)
	ipc, next := w.waitFor(t, next, "IP change report", func(s seen) bool { return s.msg.Method == rpcIPChange })
	r := vendorFields(ipc.msg)
	if r["MonitorTaskID"] != "task-1" || r["OldIP"] != wan1 || r["NewIP"] != wan2 || r["EventCode"] != "IP_CHANGE" || r["DeviceID"] != "00A0C9-SRv6-CPE-CW0001" {
		t.Errorf("IP change report %v", r)
	}
	if _, err := time.Parse(time.RFC3339, r["ChangeTimestamp"]); err != nil {
		t.Errorf("ChangeTimestamp: %v", err)
	}
	if in := ipc.inform; !in.HasEvent(cwmpclient.EventValueChange) ||
		informValue(in, SRv6Object+"IPv6Prefix") != "2001:db8:3400::/40" || informValue(in, SRv6Object+"Locator.Prefix") != "2001:db8:3405::/48" {
		t.Errorf("the IP change report's session Inform lacks the VALUE CHANGE: %+v", in)
	}
	rep, next := w.waitFor(t, next, "report from the new address", func(s seen) bool {
		return s.msg.Method == rpcMonitorData && vendorFields(s.msg)["LocalIP"] == wan2
	})
	if v := vendorFields(rep.msg)["MonitorTaskID"]; v != "task-1" {
		t.Errorf("after renumbering the reports come from task %q", v)
	}
	if c := ss.last(); c.Src != netip.MustParseAddr(wan2) || c.SSID != ssid {
		t.Errorf("re-targeted sender %v ssid %d, want %s ssid %d", c.Src, c.SSID, wan2, ssid)
	}
	if n := w.countMethod(rpcIPChange); n != 1 {
		t.Errorf("%d IP change reports, want 1", n)
	}

	// Update: the peer moves, same task.
	acs.Enqueue(cwmptest.Vendor(rpcMonitorUpdate, [2]string{"MonitorTaskID", "nope"}, [2]string{"UpdatedPeerIP", peer2}))
	acs.Enqueue(cwmptest.Vendor(rpcMonitorUpdate, [2]string{"MonitorTaskID", "task-1"}, [2]string{"UpdatedPeerIP", "::1:2:3:zz"}))
	acs.Enqueue(cwmptest.Vendor(rpcMonitorUpdate, [2]string{"MonitorTaskID", "task-1"}, [2]string{"UpdatedPeerIP", peer2}))
	connectionRequest(t, crURL)
	f, next = w.waitFor(t, next, "fault for an unknown task", func(s seen) bool { return s.msg.Method == "Fault" })
	if _, text := f.msg.Fault(); !strings.Contains(text, "MonitorTaskID") || !strings.Contains(text, "nope") {
		t.Errorf("unknown task fault %q", text)
	}
	f, next = w.waitFor(t, next, "fault for a bad address", func(s seen) bool { return s.msg.Method == "Fault" })
	if _, text := f.msg.Fault(); !strings.Contains(text, "UpdatedPeerIP") {
		t.Errorf("bad address fault %q", text)
	}
	_, next = w.waitFor(t, next, "update response", func(s seen) bool { return s.msg.Method == rpcMonitorUpdate+"Response" })
	rep, next = w.waitFor(t, next, "report to the new peer", func(s seen) bool {
		return s.msg.Method == rpcMonitorData && vendorFields(s.msg)["PeerIP"] == peer2
	})
	if v := vendorFields(rep.msg); v["MonitorTaskID"] != "task-1" || v["LocalIP"] != wan2 {
		t.Errorf("after the update: %v", v)
	}
	if c := ss.last(); c.Dst.Addr() != netip.MustParseAddr(peer2) || c.SSID != ssid {
		t.Errorf("updated sender %+v", c)
	}

	// Fault 8000: the values go to the parameters with active notification.
	w.setAnswer(false)
	_, next = w.waitFor(t, next, "a refused report", func(s seen) bool { return s.msg.Method == rpcMonitorData })
	vc, next := w.waitFor(t, next, "VALUE CHANGE with the task's values", func(s seen) bool {
		return s.msg.Method == "Inform" && s.inform.HasEvent(cwmpclient.EventValueChange) &&
			informValue(s.inform, monitorTable+"1.Latency") != ""
	})
	in := vc.inform
	if v := informValue(in, monitorTable+"1.PacketLossRate"); v == "" || informValue(in, monitorTable+"1.ReportTimestamp") == "" {
		t.Errorf("VALUE CHANGE Inform %+v", in.Params)
	}
	if l := h.agent.MonitorTasks(); len(l) != 1 || l[0].Reports != "parameters" {
		t.Errorf("MonitorTasks after fault 8000: %+v", l)
	}
	// ... and no more RPCs to that ACS: the next cycles are parameters too.
	before := w.countMethod(rpcMonitorData)
	w.waitFor(t, next, "another VALUE CHANGE", func(s seen) bool {
		return s.msg.Method == "Inform" && informValue(s.inform, monitorTable+"1.Latency") != ""
	})
	if after := w.countMethod(rpcMonitorData); after != before {
		t.Errorf("%d Stats_Monitor_Data_Resp sent after fault 8000", after-before)
	}
	// Every message the CPE sent is valid CWMP, every session by the rules.
	if err := cwmpschema.Validate(t, "1-2", w.raws()...); err != nil {
		t.Error(err)
	}
	for _, s := range acs.Sessions() {
		for _, v := range s.Violations {
			t.Errorf("session %d: %s", s.Index, v)
		}
	}
}

// Monitor.Task.{i} through AddObject and SetParameterValues, bad values
// refused naming the parameter, and the task list kept across a restart.
func TestMonitorTasksByParameters(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(modelDoc + `
monitor:
  tasks:
    - {id: file-refl, role: Reflector, port: 8620}
`))
	if err != nil {
		t.Fatal(err)
	}
	refl := make(chan twamp.ReflectorConfig, 10)
	h := startMonitorAgent(t, cfg, dir, 50*time.Millisecond, &sessions{}, refl)
	h.src.send(t, "2001:db8:1200::/40", wan1)
	select {
	case c := <-refl:
		if c.Port != 8620 || len(c.Allow) != 0 {
			t.Errorf("file reflector %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the file's reflector task did not start")
	}
	tr := cwmpclient.NewTree(nil, "")
	m := h.agent.monitor
	if err := m.register(tr); err != nil {
		t.Fatal(err)
	}
	if err := m.syncInstances(tr); err != nil {
		t.Fatal(err)
	}
	mh := &modelHarness{harness: h, tree: tr, dir: dir}
	if got := mh.get(monitorTable + "1.MonitorTaskID")[monitorTable+"1.MonitorTaskID"]; got != "file-refl" {
		t.Fatalf("file task as instance 1: %q", got)
	}
	n, err := tr.AddObject(monitorTable, "k")
	if err != nil || n != 2 {
		t.Fatalf("AddObject = %d, %v", n, err)
	}
	p := func(i uint32, name string) string { return monitorTable + itoa(i) + "." + name }
	// A bad value: refused per parameter, nothing changed.
	before := m.snapshot()
	err = mh.spv(p(2, "MonitorTaskID"), "refl-2", p(2, "Role"), "Reflector", p(2, "PeerIP"), "2001:db8::zz", p(2, "Port"), "8620")
	wantFault(t, err, cwmpclient.FaultInvalidValue, p(2, "PeerIP"), "2001:db8::zz")
	err = mh.spv(p(2, "MonitorTaskID"), "file-refl", p(2, "Role"), "Reflector")
	wantFault(t, err, cwmpclient.FaultInvalidValue, p(2, "MonitorTaskID"), "file-refl")
	if after := m.snapshot(); len(after.Tasks) != len(before.Tasks) || after.Tasks[1].Task.ID != "" {
		t.Fatalf("a refused SPV changed the tasks: %+v", after)
	}
	if err := mh.spv(p(2, "MonitorTaskID"), "refl-2", p(2, "Role"), "Reflector", p(2, "PeerIP"), peer1, p(2, "Port"), "8620"); err != nil {
		t.Fatal(err)
	}
	// Both reflector tasks share port 8620, and one takes any peer: the
	// reflector is not restarted.
	select {
	case c := <-refl:
		t.Errorf("reflector restarted: %+v", c)
	case <-time.After(100 * time.Millisecond):
	}
	got := mh.get(monitorTable + "2.")
	for name, want := range map[string]string{p(2, "PeerIP"): peer1, p(2, "Protocol"): "STAMP", p(2, "MonitorCycle"): "60", p(2, "Enable"): "true", p(2, "LocalIP"): ""} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	// Persisted: a restart keeps the controller's tasks and their numbers.
	h.stop()
	h2 := startMonitorAgent(t, cfg, dir, 50*time.Millisecond, &sessions{}, nil)
	st := h2.agent.monitor.snapshot()
	if len(st.Tasks) != 2 || st.Tasks[1].Inst != 2 || st.Tasks[1].Task.ID != "refl-2" || st.Tasks[1].Task.PeerIP != netip.MustParseAddr(peer1) {
		t.Errorf("after restart: %+v", st.Tasks)
	}
	// DeleteObject removes the task (a fresh tree numbers the tasks in order).
	tr2 := cwmpclient.NewTree(nil, "")
	if err := h2.agent.monitor.register(tr2); err != nil {
		t.Fatal(err)
	}
	if err := h2.agent.monitor.syncInstances(tr2); err != nil {
		t.Fatal(err)
	}
	if err := tr2.DeleteObject(monitorTable+"2.", "k"); err != nil {
		t.Fatal(err)
	}
	if st := h2.agent.monitor.snapshot(); len(st.Tasks) != 1 || st.Tasks[0].Task.ID != "file-refl" {
		t.Errorf("after DeleteObject: %+v", st.Tasks)
	}
	// Stats_Monitor_Delete_Req does the same by task id.
	del := func(id string) (cwmpclient.Message, error) {
		return h2.agent.monitor.onDeleteReq(context.Background(), cwmpclient.VendorMessage{Name: rpcMonitorDelete,
			Fields: []cwmpclient.Field{{Name: "MonitorTaskID", Value: id}}})
	}
	if _, err := del("nope"); err == nil || !strings.Contains(err.Error(), `MonitorTaskID: "nope"`) {
		t.Errorf("deleting an unknown task: %v", err)
	}
	resp, err := del("file-refl")
	if v, ok := resp.(cwmpclient.VendorMessage); err != nil || !ok || v.Name != rpcMonitorDelete+"Response" || v.Fields[0].Name != "Status" || v.Fields[0].Value != "0" {
		t.Errorf("delete: %+v, %v", resp, err)
	}
	if st := h2.agent.monitor.snapshot(); len(st.Tasks) != 0 {
		t.Errorf("after Stats_Monitor_Delete_Req: %+v", st.Tasks)
	}
}

// A renumbering while the CPE was down is reported once it is back, to
// the first session of its client.
func TestMonitorIPChangeAcrossRestart(t *testing.T) {
	w := &watch{answerData: true}
	acs := cwmptest.NewServer(t, cwmptest.WithAuth(cwmptest.AuthDigest, "cpe", "cpe-secret"), cwmptest.WithHook(w.hook))
	_, doc := testCWMPConfig(t, acs.URL)
	cfg, err := ParseConfig([]byte(doc + `
monitor:
  tasks:
    - {id: file-task, role: Sender, peer_ip: "` + peer1 + `", cycle: 3600}
    - {id: pinned, role: Sender, local_ip: "2001:db8:77::1", peer_ip: "` + peer1 + `", cycle: 3600}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := startMonitorAgent(t, cfg, dir, time.Millisecond, &sessions{}, nil)
	h.src.send(t, "2001:db8:1200::/40", wan1)
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	waitSessions(t, acs, 1)
	h.stop()

	h2 := startMonitorAgent(t, cfg, dir, time.Millisecond, &sessions{}, nil)
	h2.src.send(t, "2001:db8:3400::/40", wan2)
	ipc, _ := w.waitFor(t, 0, "IP change report", func(s seen) bool { return s.msg.Method == rpcIPChange })
	if r := vendorFields(ipc.msg); r["MonitorTaskID"] != "file-task" || r["OldIP"] != wan1 || r["NewIP"] != wan2 || r["DeviceID"] != "00A0C9-SRv6-CPE-CW0001" {
		t.Errorf("IP change report %v", r)
	}
	h2.waitStatus(func(s Status) bool { return s.State == StateApplied })
	time.Sleep(100 * time.Millisecond)
	if n := w.countMethod(rpcIPChange); n != 1 {
		t.Errorf("%d IP change reports, want 1 (the pinned task keeps its address)", n)
	}
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

// The Stats_Monitor_Config_Req elements come from the network: any values
// are refused or accepted without a panic, and an accepted task reads
// back (as Monitor.Task.{i} shows it) to values that are accepted again
// to the same task.
func FuzzMonitorTaskFields(f *testing.F) {
	f.Add("t1", "Sender", "", "2001:db8::2", "STAMP", "862", "60", "100", "0", "0", "", "true")
	f.Add("r", "reflector", "2001:db8::1", "", "twamp-light", "8620", "1", "10", "1500", "46", "", "0")
	f.Add("t", "Sender", "::ffff:1.2.3.4", "fe80::1%eth0", "", "0", "86401", "9", "9001", "64", "2001:db8::1:End,x", "maybe")
	f.Fuzz(func(t *testing.T, id, role, local, peer, proto, port, cycle, interval, size, dscp, segs, enable string) {
		values := []string{id, role, local, peer, proto, port, cycle, interval, size, dscp, segs, enable}
		var task MonitorTask
		ok := true
		for i, fl := range monitorFields {
			if err := fl.set(&task, values[i]); err != nil {
				ok = false
			}
		}
		if !ok {
			return
		}
		task.setDefaults()
		if len(task.validate()) > 0 {
			return
		}
		var again MonitorTask
		for _, fl := range monitorFields {
			if err := fl.set(&again, fl.get(task)); err != nil {
				t.Fatalf("%s read back as %q is refused: %v", fl.name, fl.get(task), err)
			}
		}
		again.setDefaults()
		if errs := again.validate(); len(errs) > 0 {
			t.Fatalf("task read back is invalid: %v", errs)
		}
		for _, fl := range monitorFields {
			if fl.get(again) != fl.get(task) {
				t.Fatalf("%s: %q read back as %q", fl.name, fl.get(task), fl.get(again))
			}
		}
	})
}

// The config file's monitor section: defaults, and every bad value named
// by its key.
func TestMonitorConfigSection(t *testing.T) {
	cfg, err := ParseConfig([]byte(modelDoc + `
monitor:
  tasks:
    - {id: to-hub, role: Sender, peer_ip: "2001:db8:99::2", cycle: 30, packet_interval: 50, segment_list: "2001:db8:a::1, 2001:db8:b::1"}
    - {id: refl, role: Reflector, enable: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := monitorStateFromFile(cfg, monitorState{})
	if len(st.Tasks) != 2 || st.Tasks[0].Task.Port != 862 || st.Tasks[0].Task.Protocol != ProtocolSTAMP || st.Tasks[1].Task.enabled() ||
		len(st.Tasks[0].Task.segments()) != 2 {
		t.Errorf("tasks %+v", st.Tasks)
	}
	for doc, want := range map[string][]string{
		`{id: a, role: Sender}`: {"monitor.tasks[0].peer_ip"},
		`{id: a, role: Sender, peer_ip: "2001:db8::1", cycle: 0, packet_interval: 5, dscp: 70}`:                 {"monitor.tasks[0].packet_interval", "monitor.tasks[0].dscp"},
		`{id: a, role: Reflector, port: 900}, {id: a, role: Reflector, port: 900, protocol: TWAMP-Light}`:       {"monitor.tasks[1].id", "monitor.tasks[1].protocol"},
		`{id: a, role: Sender, peer_ip: "2001:db8::1", colour: red}`:                                            {"colour"},
		`{id: "a b", role: Boss, peer_ip: "2001:db8::1", local_ip: "fe80::1", segment_list: "2001:db8::1,bad"}`: {"monitor.tasks[0].id", "monitor.tasks[0].role", "monitor.tasks[0].local_ip", "monitor.tasks[0].segment_list"},
	} {
		_, err := ParseConfig([]byte(modelDoc + "monitor:\n  tasks: [" + doc + "]\n"))
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want one naming %s", doc, err, w)
			}
		}
	}
}
