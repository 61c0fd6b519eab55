package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// Vendor RPCs of Q.Suppl.79 §8.3 / §9.4 (see README).
const (
	rpcMonitorConfig = "Stats_Monitor_Config_Req"
	rpcMonitorUpdate = "Stats_Monitor_Update_Req"
	rpcMonitorDelete = "Stats_Monitor_Delete_Req"
	rpcMonitorData   = "Stats_Monitor_Data_Resp"
	rpcIPChange      = "Stats_IP_Change_Report"
	eventIPChange    = "IP_CHANGE"
	faultACSNoMethod = 8000
)

// sessionRestartWait is the pause before a failed probe session or
// reflector is started again.
const sessionRestartWait = 5 * time.Second

// reflectorRunner is what the monitor needs of a twamp.Reflector.
type reflectorRunner interface {
	Run(ctx context.Context) error
}

// monitor runs the monitoring tasks: a twamp session per enabled sender
// task, a reflector per port for the reflector tasks, a report every
// MonitorCycle, and the IP change reports.
type monitor struct {
	a     *Agent
	state *board.StateDir
	log   *zap.Logger
	// unit is one second of MonitorCycle (tests shrink it).
	unit         time.Duration
	newSession   func(twamp.SenderConfig) (twamp.Session, error)
	newReflector func(twamp.ReflectorConfig) (reflectorRunner, error)

	mu       sync.Mutex
	st       monitorState
	owned    bool // the controller configured: st is the overlay
	fallback string
	wan      netip.Addr // the CPE's WAN address the tasks follow
	cl       *cwmpclient.Client
	deviceID string
	syncing  bool // adds of the instance sync / the RPCs: not the ACS's
	// pending are IP change reports made while no client ran (a
	// renumbering found at start): the first client sends them.
	pending []ipChange
	last    map[string]report      // per task id: the last report, however delivered
	results map[uint32]report      // per instance: the last report put in the parameters
	runs    map[string]*taskRun    // sender tasks by id
	refls   map[reflectorKey]*rrun // reflectors by port
	ctx     context.Context        // Run's; nil before and after
	wg      sync.WaitGroup
}

type reflectorKey struct {
	port  uint16
	light bool
}

type rrun struct {
	allow  []netip.Prefix
	cancel context.CancelFunc
	done   chan struct{} // closed once its socket is closed
}

func newMonitor(a *Agent, state *board.StateDir, log *zap.Logger) *monitor {
	return &monitor{a: a, state: state, log: log, unit: time.Second,
		newSession: func(c twamp.SenderConfig) (twamp.Session, error) { return twamp.NewSender(c, log) },
		newReflector: func(c twamp.ReflectorConfig) (reflectorRunner, error) {
			return twamp.NewReflector(c, log)
		},
		results: map[uint32]report{}, last: map[string]report{}, runs: map[string]*taskRun{}, refls: map[reflectorKey]*rrun{}}
}

// load takes the file's tasks, or the controller's overlay when it exists;
// prev is the WAN address the agent last ran with (a change found at start
// is reported too).
func (m *monitor) load(file Config, prev netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wan = prev
	m.st = monitorStateFromFile(file, m.st)
	doc, ok, err := m.loadDoc()
	if err != nil {
		m.log.Error("controller monitoring tasks unreadable; using the config file's", zap.Error(err))
		return
	}
	if ok {
		m.st, m.owned, m.fallback = doc.State, true, doc.FallbackURL
	}
}

// reload takes a reloaded config file's tasks (unless the controller's
// overlay owns them).
func (m *monitor) reload(file Config) {
	m.mu.Lock()
	if !m.owned {
		m.st = monitorStateFromFile(file, m.st)
	}
	m.mu.Unlock()
	m.apply()
}

func (m *monitor) snapshot() monitorState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// saveLocked writes the overlay; m.mu is held.
func (m *monitor) saveLocked() error {
	b, err := json.MarshalIndent(monitorDoc{Version: 1, State: m.st, FallbackURL: m.fallback}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", MonitorOverlayFile, err)
	}
	return m.state.WriteFile(MonitorOverlayFile, append(b, '\n'))
}

// replace makes cand the task list (the controller's), persists it and
// starts/stops/re-targets sessions to match.
func (m *monitor) replace(cand monitorState) error {
	m.mu.Lock()
	prev, prevOwned := m.st, m.owned
	m.st, m.owned = cand, true
	if err := m.saveLocked(); err != nil {
		m.st, m.owned = prev, prevOwned
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()
	m.apply()
	return nil
}

// start runs the tasks and stops them when ctx ends; the channel closes
// once every session has stopped.
func (m *monitor) start(ctx context.Context) <-chan struct{} {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	m.apply()
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		m.ctx = nil
		clear(m.runs)
		clear(m.refls)
		m.mu.Unlock()
		m.wg.Wait()
		close(done)
	}()
	return done
}

// sourceLocked is the address a task probes from; m.mu is held.
func (m *monitor) sourceLocked(t MonitorTask) netip.Addr {
	if t.LocalIP.IsValid() {
		return t.LocalIP
	}
	return m.wan
}

// apply brings the running sessions and reflectors in line with the task
// list: new tasks start, removed or disabled ones stop, a task whose
// addresses alone changed is re-targeted (same cycle, same accumulator).
func (m *monitor) apply() {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx := m.ctx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	want := map[string]MonitorTask{}
	refl := map[reflectorKey][]netip.Prefix{}
	for _, e := range m.st.Tasks {
		t := e.Task
		if !t.complete() || !t.enabled() || len(t.validate()) > 0 {
			continue
		}
		t.setDefaults()
		switch t.Role {
		case RoleSender:
			want[t.ID] = t
		case RoleReflector:
			k := reflectorKey{port: t.Port, light: t.Protocol == ProtocolTWAMPLit}
			l := refl[k]
			if t.PeerIP.IsValid() {
				l = append(l, netip.PrefixFrom(t.PeerIP, 128))
			} else {
				l = append(l, netip.MustParsePrefix("::/0"))
			}
			refl[k] = l
		}
	}
	for id, r := range m.runs {
		t, ok := want[id]
		if ok && sameButAddresses(r.task, t) {
			r.retarget(t, m.sourceLocked(t))
			continue
		}
		r.cancel()
		delete(m.runs, id)
	}
	for id, t := range want {
		if _, ok := m.runs[id]; ok {
			continue
		}
		m.runs[id] = m.startRun(ctx, t, m.sourceLocked(t))
	}
	stopped := map[reflectorKey]*rrun{}
	for k, r := range m.refls {
		if l, ok := refl[k]; ok && slices.Equal(sortedPrefixes(l), r.allow) {
			continue
		}
		r.cancel()
		stopped[k] = r
		delete(m.refls, k)
	}
	for k, l := range refl {
		if _, ok := m.refls[k]; ok {
			continue
		}
		m.refls[k] = m.startReflector(ctx, k, sortedPrefixes(l), stopped[k])
	}
}

func sortedPrefixes(l []netip.Prefix) []netip.Prefix {
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if slices.ContainsFunc(l, func(p netip.Prefix) bool { return p.Bits() == 0 }) {
		return nil // one task takes any peer: no allow-list
	}
	return slices.Compact(l)
}

// sameButAddresses: a and b differ at most in LocalIP and PeerIP.
func sameButAddresses(a, b MonitorTask) bool {
	a.LocalIP, a.PeerIP, b.LocalIP, b.PeerIP = netip.Addr{}, netip.Addr{}, netip.Addr{}, netip.Addr{}
	a.Enable, b.Enable = nil, nil
	return a == b
}

// startReflector serves port k; prev (may be nil) is the reflector it
// replaces, whose socket must be closed before the port is bound again.
func (m *monitor) startReflector(ctx context.Context, k reflectorKey, allow []netip.Prefix, prev *rrun) *rrun {
	rctx, cancel := context.WithCancel(ctx)
	r := &rrun{allow: allow, cancel: cancel, done: make(chan struct{})}
	cfg := twamp.ReflectorConfig{Port: k.port, Allow: allow, TWAMPLight: k.light}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(r.done)
		if prev != nil {
			<-prev.done
		}
		for rctx.Err() == nil {
			rf, err := m.newReflector(cfg)
			if err == nil {
				m.log.Info("monitoring reflector serving", zap.Uint16("port", k.port), zap.Bool("twamp_light", k.light), zap.Stringers("allow", allow))
				err = rf.Run(rctx)
			}
			if rctx.Err() != nil {
				return
			}
			m.log.Error("monitoring reflector stopped; restarting", zap.Uint16("port", k.port), zap.Error(err))
			select {
			case <-rctx.Done():
			case <-time.After(sessionRestartWait):
			}
		}
	}()
	return r
}

// taskRun is one sender task: its twamp session (replaced on re-target)
// and its report cycle.
type taskRun struct {
	m      *monitor
	task   MonitorTask // guarded by m.mu
	cancel context.CancelFunc
	moved  chan struct{} // the target changed

	mu     sync.Mutex
	src    netip.Addr
	peer   netip.Addr
	gen    uint64
	acc    cycleAcc
	active bool // a session is running
}

func (m *monitor) startRun(ctx context.Context, t MonitorTask, src netip.Addr) *taskRun {
	rctx, cancel := context.WithCancel(ctx)
	r := &taskRun{m: m, task: t, cancel: cancel, moved: make(chan struct{}, 1), src: src, peer: t.PeerIP}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run(rctx)
	}()
	return r
}

// retarget points the task at new addresses; m.mu is held.
func (r *taskRun) retarget(t MonitorTask, src netip.Addr) {
	r.task = t
	r.mu.Lock()
	changed := r.src != src || r.peer != t.PeerIP
	r.src, r.peer = src, t.PeerIP
	r.mu.Unlock()
	if changed {
		select {
		case r.moved <- struct{}{}:
		default:
		}
	}
}

func (r *taskRun) target() (netip.Addr, netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.src, r.peer
}

func (r *taskRun) run(ctx context.Context) {
	m := r.m
	m.mu.Lock()
	t := r.task
	m.mu.Unlock()
	cycle := time.NewTicker(time.Duration(t.Cycle) * m.unit)
	defer cycle.Stop()
	log := m.log.With(zap.String("task", t.ID))
	for {
		src, peer := r.target()
		r.mu.Lock()
		r.gen++
		gen := r.gen
		r.mu.Unlock()
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		sess, err := m.newSession(r.senderConfig(t, src, peer, gen))
		if err != nil {
			done <- err
		} else {
			log.Info("monitoring session started", zap.Stringer("local", src), zap.Stringer("peer", peer), zap.Uint16("ssid", t.ssid()))
			go func() { done <- sess.Run(sctx) }()
		}
		var again <-chan time.Time
	wait:
		for {
			select {
			case <-ctx.Done():
				stop()
				if done != nil {
					<-done
				}
				return
			case <-cycle.C:
				r.report()
			case <-r.moved:
				stop()
				if done != nil {
					<-done
				}
				break wait
			case err := <-done:
				done = nil
				if err != nil && ctx.Err() == nil {
					log.Error("monitoring session failed; restarting", zap.Error(err), zap.Duration("retry_in", sessionRestartWait))
					again = time.After(sessionRestartWait)
				}
			case <-again:
				break wait
			}
		}
		stop()
	}
}

func (r *taskRun) senderConfig(t MonitorTask, src, peer netip.Addr, gen uint64) twamp.SenderConfig {
	pad := 0
	if n := int(t.PacketSize) - twamp.BaseLen; n > 0 {
		pad = n
	}
	return twamp.SenderConfig{
		Name: t.ID, Dst: netip.AddrPortFrom(peer, t.Port), Src: src,
		Interval: time.Duration(t.PacketInterval) * time.Millisecond,
		Padding:  pad, DSCP: t.DSCP, SSID: t.ssid(), TWAMPLight: t.Protocol == ProtocolTWAMPLit,
		Segments: t.segments(), Window: time.Duration(t.Cycle) * r.m.unit,
		OnSample: func(s twamp.Sample) {
			r.mu.Lock()
			r.acc.add(gen, s)
			r.mu.Unlock()
		},
	}
}

// report sends the cycle's measurement.
func (r *taskRun) report() {
	now := r.m.a.now()
	r.mu.Lock()
	rep, ok := r.acc.take(now)
	src, peer := r.src, r.peer
	r.mu.Unlock()
	m := r.m
	m.mu.Lock()
	t := r.task
	m.mu.Unlock()
	if !ok {
		m.log.Debug("monitoring cycle without samples; no report", zap.String("task", t.ID))
		return
	}
	m.deliver(t.ID, rep, src, peer)
}

// deliver sends a report as Stats_Monitor_Data_Resp, or puts it in the
// task's parameters when the ACS does not take the RPC (fault 8000).
func (m *monitor) deliver(id string, rep report, src, peer netip.Addr) {
	m.mu.Lock()
	m.last[id] = rep
	cl, dev := m.cl, m.deviceID
	m.mu.Unlock()
	if cl == nil {
		return
	}
	// The ACS may have moved itself (ManagementServer.URL).
	url := ""
	if v, err := cl.Tree().GetValues([]string{"Device.ManagementServer.URL"}); err == nil && len(v) == 1 {
		url = v[0].Value
	}
	m.mu.Lock()
	fallback := m.fallback != "" && m.fallback == url
	m.mu.Unlock()
	if fallback {
		m.publish(id, rep)
		return
	}
	msg := vendor(rpcMonitorData, rep.fields(id, dev, src, peer))
	err := cl.SendVendor(msg, func(resp cwmpclient.Message) {
		f, ok := resp.(*cwmpclient.Fault)
		if !ok {
			return
		}
		if f.Code != faultACSNoMethod {
			m.log.Warn("ACS refused a monitoring report", zap.String("task", id), zap.Int("code", f.Code), zap.String("reason", f.String))
			return
		}
		m.mu.Lock()
		m.fallback = url
		var err error
		if m.owned {
			err = m.saveLocked()
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("cannot persist the report fallback", zap.Error(err))
		}
		m.log.Info("ACS does not take "+rpcMonitorData+" (fault 8000): reports go to Monitor.Task parameters with active notification", zap.String("acs", url))
		m.publish(id, rep)
	})
	if err != nil {
		m.log.Warn("monitoring report not queued", zap.String("task", id), zap.Error(err))
	}
}

// publish puts a report in the task's parameters (forced active
// notification) and has the client notice them.
func (m *monitor) publish(id string, rep report) {
	m.mu.Lock()
	i := m.st.byID(id)
	if i < 0 || m.st.Tasks[i].Inst == 0 {
		m.mu.Unlock()
		return
	}
	m.results[m.st.Tasks[i].Inst] = rep
	cl := m.cl
	m.mu.Unlock()
	if cl != nil {
		if err := cl.CheckNotifications(); err != nil {
			m.log.Warn("notification check", zap.Error(err))
		}
	}
}

func vendor(name string, kv []fieldKV) cwmpclient.VendorMessage {
	f := make([]cwmpclient.Field, len(kv))
	for i, e := range kv {
		f[i] = cwmpclient.Field{Name: e.name, Value: e.value}
	}
	return cwmpclient.VendorMessage{Name: name, Fields: f}
}

// wanChanged is told the CPE's WAN address after every reconcile (the
// agent's status already shows it). On a change, every task that follows
// the WAN address is re-targeted under its MonitorTaskID and reported in
// a Stats_IP_Change_Report; the notification check first queues the
// VALUE CHANGE of IPv6Prefix and Locator, so that the session the reports
// open carries both.
func (m *monitor) wanChanged(addr netip.Addr) {
	m.mu.Lock()
	old := m.wan
	if addr == old || !addr.IsValid() {
		m.mu.Unlock()
		return
	}
	m.wan = addr
	cl, dev := m.cl, m.deviceID
	var affected []string
	for _, e := range m.st.Tasks {
		if e.Task.complete() && e.Task.enabled() && !e.Task.LocalIP.IsValid() {
			affected = append(affected, e.Task.ID)
		}
	}
	if !old.IsValid() {
		m.mu.Unlock()
		m.apply()
		return // the first address since a fresh start: nothing changed
	}
	now := m.a.now()
	var changes []ipChange
	for _, id := range affected {
		changes = append(changes, ipChange{id: id, old: old, new: addr, at: now})
	}
	if cl == nil {
		m.pending = append(m.pending, changes...)
	}
	m.mu.Unlock()
	m.log.Info("WAN address changed: re-targeting monitoring tasks", zap.Stringer("old", old), zap.Stringer("new", addr), zap.Strings("tasks", affected))
	m.apply()
	if cl != nil {
		m.sendIPChanges(cl, dev, changes)
	}
}

// ipChange is one task's Stats_IP_Change_Report.
type ipChange struct {
	id       string
	old, new netip.Addr
	at       time.Time
}

// sendIPChanges queues the reports together with the notification check
// that finds the VALUE CHANGE of IPv6Prefix and Locator: the session that
// carries the reports carries both (§8.3).
func (m *monitor) sendIPChanges(cl *cwmpclient.Client, dev string, changes []ipChange) {
	if len(changes) == 0 {
		return
	}
	msgs := make([]cwmpclient.VendorMessage, len(changes))
	for i, c := range changes {
		msgs[i] = vendor(rpcIPChange, []fieldKV{{"MonitorTaskID", c.id}, {"DeviceID", dev}, {"OldIP", c.old.String()},
			{"NewIP", c.new.String()}, {"ChangeTimestamp", rfc3339(c.at)}, {"EventCode", eventIPChange}})
	}
	err := cl.SendVendorWithChanges(msgs, func(i int, resp cwmpclient.Message) {
		if f, ok := resp.(*cwmpclient.Fault); ok {
			m.log.Warn("ACS refused an IP change report", zap.String("task", changes[i].id), zap.Int("code", f.Code), zap.String("reason", f.String))
		}
	})
	if err != nil {
		m.log.Warn("IP change reports", zap.Int("tasks", len(changes)), zap.Error(err))
	}
}

// MonitorTaskStatus is one monitoring task as the agent runs it (for the
// control socket; not in status.json, which a report every cycle would
// rewrite on flash).
type MonitorTaskStatus struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// LocalIP is the address in use: the task's, else the WAN address.
	LocalIP netip.Addr `json:"local_ip,omitzero"`
	PeerIP  netip.Addr `json:"peer_ip,omitzero"`
	Port    uint16     `json:"port"`
	Enabled bool       `json:"enabled"`
	Running bool       `json:"running"`
	// Reports: "rpc" (Stats_Monitor_Data_Resp) or "parameters" (the ACS
	// answered fault 8000); empty for a reflector.
	Reports    string         `json:"reports,omitempty"`
	LastReport *MonitorReport `json:"last_report,omitempty"`
}

// MonitorReport is a sender task's last cycle, in the report's units
// (milliseconds, percent).
type MonitorReport struct {
	Latency        string    `json:"latency_ms"`
	Jitter         string    `json:"jitter_ms"`
	PacketLossRate string    `json:"packet_loss_percent"`
	Time           time.Time `json:"time"`
}

// MonitorTasks lists the monitoring tasks (complete ones) and their state.
func (a *Agent) MonitorTasks() []MonitorTaskStatus {
	m := a.monitor
	m.mu.Lock()
	defer m.mu.Unlock()
	reports := "rpc"
	if m.fallback != "" {
		reports = "parameters"
	}
	var out []MonitorTaskStatus
	for _, e := range m.st.Tasks {
		t := e.Task
		if !t.complete() {
			continue
		}
		s := MonitorTaskStatus{ID: t.ID, Role: t.Role, LocalIP: m.sourceLocked(t), PeerIP: t.PeerIP, Port: t.Port, Enabled: t.enabled()}
		switch t.Role {
		case RoleSender:
			_, s.Running = m.runs[t.ID]
			s.Reports = reports
			if r, ok := m.last[t.ID]; ok {
				s.LastReport = &MonitorReport{Latency: r.Latency, Jitter: r.Jitter, PacketLossRate: r.PacketLossRate, Time: r.Timestamp}
			}
		case RoleReflector:
			_, s.Running = m.refls[reflectorKey{port: t.Port, light: t.Protocol == ProtocolTWAMPLit}]
		}
		out = append(out, s)
	}
	return out
}
