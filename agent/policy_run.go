package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// The policies at run time: one srv6.Selector per policy, fed by a
// loopback probe per constituent segment list, and a timer for the
// selectors' wait-to-restore. A choice that changes signals the agent's
// loop, which reconciles at once: the new routes do not wait for a resync
// or a debounce.
//
// Measurement. Each list's twamp sender probes every probe_interval, a
// probe unanswered three quarters of an interval after it left is lost
// (the sender looks for losses once per interval, before each probe: a
// timeout of a whole interval would race that tick and often wait for the
// next one), and the session's notifications (twamp.Notifier) become
// srv6.Measurements:
//   - EventDown after policyDownAfter consecutive losses: PathDown. With
//     10 ms probes the selector hears of a dead path 30 ms after its first
//     lost probe left, so 30-40 ms after the loss began. A list that
//     never answered since its session started is taken down after as
//     many losses too (the notifier only takes down a session that was up);
//   - EventUp: PathUp;
//   - EventMetrics, a window of policyWindowProbes probes whose delay
//     (average round trip), jitter or loss moved past the damping: delay,
//     jitter and loss.
//
// Remaining bandwidth is not measured in band: the controller reports it
// (ObservePolicyBandwidth).
//
// Three quarters of the probe interval must exceed the round trip of every
// constituent, or each probe counts as lost.

const (
	// policyDownAfter consecutive lost probes take a list down.
	policyDownAfter = 3
	// policyWindowProbes probes make one metrics window.
	policyWindowProbes = 10
	// policyEventRing is how many choice changes a policy keeps for its status.
	policyEventRing = 32
)

// ErrNoPolicy is wrapped by the errors of the policy methods of Agent for
// a policy, service or constituent color that is not configured.
var ErrNoPolicy = errors.New("no such SRv6 policy, service or color")

// policySide runs the policies of the config. Its lock guards everything:
// the probes' callbacks, the control socket and the CWMP model call in
// from their own goroutines.
type policySide struct {
	log    *zap.Logger
	now    func() time.Time
	probes *loopbackProbes
	// changed wakes the agent's loop: a choice changed, reconcile now.
	changed chan struct{}
	// rearm wakes the timer loop: the next wait-to-restore may have moved.
	rearm chan struct{}

	mu         sync.Mutex
	pols       []*policyRun
	src, outer netip.Addr // where the probes leave from (follow)
	following  bool       // follow was called: the probes run
	// gen counts choice changes; applied is the gen the kernel holds and
	// changedAt when the first change after it happened (for the log).
	gen, applied uint64
	changedAt    time.Time
}

// policyRun is one policy's selector and what its status shows.
type policyRun struct {
	cfg    PolicyConfig
	vpn    string
	tables []int // per service
	sel    *srv6.Selector
	lists  [][]*listState // per constituent, per segment list
	events []PolicyEvent  // the latest policyEventRing, oldest first
	notes  []string
	// changed is, per service, the generation of its last choice change.
	changed map[string]uint64
}

// listState is a constituent segment list's probe and last measurement.
type listState struct {
	key string // the probe session's key ("" while no probe runs)

	live     srv6.Liveness
	liveAt   time.Time // twamp's time of the last liveness notification
	everUp   bool      // the session has answered since it started
	lostInit int       // losses before the first answer
	measured time.Time // when the last measurement came (agent clock)
	has      srv6.Metric
	delay    time.Duration
	jitter   time.Duration
	loss     float64
	fwd, bwd time.Duration // one-way delays (End.TSF), 0 when unknown
	bw       srv6.Bandwidth
}

func newPolicySide(log *zap.Logger, now func() time.Time, newSession func(twamp.SenderConfig) (twamp.Session, error)) *policySide {
	return &policySide{log: log, now: now, probes: newLoopbackProbes(log, newSession),
		changed: make(chan struct{}, 1), rearm: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// configure takes cfg's policies (validated). A policy whose srv6.Policy is
// unchanged keeps its selector, measurements and events; a changed one
// gets a new selector that is handed the old one's measurements
// (notifications are damped: the probes would not repeat them soon).
func (ps *policySide) configure(cfg *Config) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	old := make(map[string]*policyRun, len(ps.pols))
	for _, pr := range ps.pols {
		old[pr.cfg.Name] = pr
	}
	tables := cfg.policyTables()
	now := ps.now()
	pols := make([]*policyRun, 0, len(cfg.Policies))
	for i, pc := range cfg.Policies {
		pr := old[pc.Name]
		if pr == nil || !reflect.DeepEqual(pr.cfg.Policy, pc.Policy) {
			sel, err := srv6.NewSelector(pc.Policy, now)
			if err != nil { // Validate refuses such a config
				ps.log.Error("policy not run", zap.String("policy", pc.Name), zap.Error(err))
				continue
			}
			fresh := &policyRun{sel: sel, lists: make([][]*listState, len(pc.Constituents)), changed: map[string]uint64{}}
			for c, k := range pc.Constituents {
				fresh.lists[c] = make([]*listState, len(k.SegmentLists))
				for l := range k.SegmentLists {
					fresh.lists[c][l] = &listState{}
				}
			}
			if pr != nil {
				fresh.events, fresh.changed = pr.events, pr.changed
				for _, m := range pr.sel.Measurements() {
					evs, err := sel.Observe(now, m)
					if err == nil {
						ps.recordLocked(fresh, evs)
					}
				}
				carryLists(pr, fresh, &pc)
			}
			pr = fresh
		}
		pr.cfg, pr.vpn, pr.tables = pc, cfg.policyVPN(i), tables[i]
		pols = append(pols, pr)
	}
	ps.pols = pols
	ps.followLocked()
	signal(ps.rearm)
}

// carryLists keeps the status of the lists a changed policy still has
// (same color and segments).
func carryLists(from, to *policyRun, pc *PolicyConfig) {
	for c, k := range pc.Constituents {
		for oc, ok := range from.cfg.Constituents {
			if ok.Color != k.Color {
				continue
			}
			for l, sl := range k.SegmentLists {
				if l < len(ok.SegmentLists) && slices.Equal(ok.SegmentLists[l].Segments, sl.Segments) {
					*to.lists[c][l] = *from.lists[oc][l]
					to.lists[c][l].key = "" // followLocked names the session
				}
			}
		}
	}
}

// start runs the probes and the wait-to-restore timer until ctx ends; done
// closes once both have stopped.
func (ps *policySide) start(ctx context.Context) <-chan struct{} {
	probesDone := ps.probes.start(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ps.timerLoop(ctx)
		<-probesDone
	}()
	return done
}

// timerLoop calls Evaluate when the earliest wait-to-restore ends.
func (ps *policySide) timerLoop(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Stop()
		ps.mu.Lock()
		next, ok := ps.nextLocked()
		now := ps.now()
		ps.mu.Unlock()
		var fire <-chan time.Time
		if ok {
			t.Reset(max(next.Sub(now), 0))
			fire = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-ps.rearm:
		case <-fire:
			ps.evaluate()
		}
	}
}

func (ps *policySide) nextLocked() (time.Time, bool) {
	var next time.Time
	found := false
	for _, pr := range ps.pols {
		if t, ok := pr.sel.NextEvaluation(); ok && (!found || t.Before(next)) {
			next, found = t, true
		}
	}
	return next, found
}

// evaluate runs every selector's Evaluate now.
func (ps *policySide) evaluate() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	for _, pr := range ps.pols {
		ps.recordLocked(pr, pr.sel.Evaluate(now))
	}
}

// recordLocked logs and keeps a selector's events and wakes the agent's
// loop when a choice changed.
func (ps *policySide) recordLocked(pr *policyRun, evs []srv6.Event) {
	if len(evs) == 0 {
		return
	}
	for _, e := range evs {
		ps.log.Info("policy service switched", zap.String("policy", e.Policy), zap.String("service", e.Service),
			zap.Stringer("event", e.Kind), zap.String("from", e.From.String()), zap.String("to", e.To.String()), zap.String("reason", e.Reason))
		pe := PolicyEvent{At: e.At, Service: e.Service, Kind: e.Kind.String(), From: e.From.String(), To: e.To.String(), Reason: e.Reason}
		if len(pr.events) >= policyEventRing {
			pr.events = slices.Delete(pr.events, 0, len(pr.events)-policyEventRing+1)
		}
		pr.events = append(pr.events, pe)
	}
	if ps.gen == ps.applied {
		ps.changedAt = time.Now()
	}
	ps.gen++
	for _, e := range evs {
		pr.changed[e.Service] = ps.gen
	}
	signal(ps.changed)
}

// observeLocked hands a measurement to pr's selector.
func (ps *policySide) observeLocked(pr *policyRun, m srv6.Measurement) error {
	evs, err := pr.sel.Observe(ps.now(), m)
	if err != nil {
		return err
	}
	ps.recordLocked(pr, evs)
	signal(ps.rearm)
	return nil
}

// choices is every policy's active choices and the generation they are.
func (ps *policySide) choices() (policyChoices, uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make(policyChoices, len(ps.pols))
	for _, pr := range ps.pols {
		out[pr.cfg.Name] = pr.sel.Choices()
	}
	return out, ps.gen
}

// installed records that the kernel holds the choices of generation gen
// (from choices) and why parts of the policies are not installed.
func (ps *policySide) installed(gen uint64, notes map[string][]string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if gen > ps.applied {
		ps.log.Info("policy routes installed", zap.Duration("since_switch", time.Since(ps.changedAt)), zap.Uint64("generation", gen))
		ps.applied = gen
		if gen != ps.gen {
			ps.changedAt = time.Now() // a later change is pending
		}
	}
	for _, pr := range ps.pols {
		n := notes[pr.cfg.Name]
		if !slices.Equal(n, pr.notes) {
			for _, s := range n {
				ps.log.Warn("policy not fully installed", zap.String("policy", pr.cfg.Name), zap.String("note", s))
			}
			pr.notes = slices.Clone(n)
		}
	}
}

// follow probes every constituent segment list from src (our WAN
// address), outer being the probes' outer source (see pathProbes.follow).
func (ps *policySide) follow(src, outer netip.Addr) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.src, ps.outer, ps.following = src, outer, true
	ps.followLocked()
}

// followLocked starts and stops the probes to match the policies. Without
// a WAN address (a prefix source that gives none) the sender picks the
// source its route to the first segment has.
func (ps *policySide) followLocked() {
	if !ps.following {
		return
	}
	var want []probeTarget
	for _, pr := range ps.pols {
		iv := pr.cfg.probeInterval()
		for c, k := range pr.cfg.Constituents {
			for l, sl := range k.SegmentLists {
				key := fmt.Sprintf("%s|%d|%d|%s|%s|%s|%v|%v", pr.cfg.Name, k.Color, l, segKey(sl.Segments), ps.src, ps.outer, iv, pr.cfg.EndTSF)
				ls := pr.lists[c][l]
				if ls.key != key {
					// A new session: its notifier starts afresh.
					ls.key, ls.liveAt, ls.everUp, ls.lostInit = key, time.Time{}, false, 0
				}
				want = append(want, probeTarget{key: key, cfg: ps.senderConfig(pr, c, l, key)})
			}
		}
	}
	ps.probes.set(want)
}

// senderConfig is the loopback session of list l of constituent c.
func (ps *policySide) senderConfig(pr *policyRun, c, l int, key string) twamp.SenderConfig {
	k := pr.cfg.Constituents[c]
	iv := pr.cfg.probeInterval()
	name := fmt.Sprintf("policy %s color %d list %d", pr.cfg.Name, k.Color, l+1)
	policy := pr.cfg.Name
	return twamp.SenderConfig{
		Name: name, Loopback: true, Src: ps.src, OuterSrc: ps.outer, Segments: slices.Clone(k.SegmentLists[l].Segments),
		Interval: iv, Timeout: iv * 3 / 4, Window: policyWindowProbes * iv,
		EndTSF: pr.cfg.EndTSF, ClocksSynced: pr.cfg.EndTSF,
		Notify: twamp.NotifyConfig{DownAfter: policyDownAfter},
		OnSample: func(s twamp.Sample) {
			if s.Lost {
				ps.measure(policy, c, l, key, func(ls *listState) (srv6.Measurement, bool) {
					if ls.everUp || ls.lostInit >= policyDownAfter {
						return srv6.Measurement{}, false
					}
					ls.lostInit++
					if ls.lostInit < policyDownAfter {
						return srv6.Measurement{}, false
					}
					ls.live = srv6.PathDown
					return srv6.Measurement{Liveness: srv6.PathDown}, true
				})
			}
		},
		OnEvent: func(e twamp.Event) {
			ps.measure(policy, c, l, key, func(ls *listState) (srv6.Measurement, bool) { return ls.event(e) })
		},
	}
}

// event turns a notification into a measurement.
func (ls *listState) event(e twamp.Event) (srv6.Measurement, bool) {
	switch e.Kind {
	case twamp.EventUp, twamp.EventDown:
		// The session's goroutines deliver notifications concurrently:
		// an older liveness than the last one applied is stale.
		if e.At.Before(ls.liveAt) {
			return srv6.Measurement{}, false
		}
		ls.liveAt = e.At
		ls.live = srv6.PathDown
		if e.Kind == twamp.EventUp {
			ls.live, ls.everUp = srv6.PathUp, true
		}
		return srv6.Measurement{Liveness: ls.live}, true
	case twamp.EventMetrics:
		mt := e.Metrics
		if mt == nil || mt.Received+mt.Lost == 0 {
			return srv6.Measurement{}, false
		}
		m := srv6.Measurement{Has: srv6.MetricLoss, Loss: mt.LossRatio()}
		ls.loss = m.Loss
		if mt.Received > 0 {
			m.Has |= srv6.MetricDelay | srv6.MetricJitter
			m.Delay, m.Jitter = mt.RTT.Avg, mt.Jitter
			ls.delay, ls.jitter = m.Delay, m.Jitter
			ls.fwd, ls.bwd = mt.Forward.Avg, mt.Backward.Avg
		}
		ls.has |= m.Has
		return m, true
	}
	return srv6.Measurement{}, false
}

// measure updates list l of constituent c of policy with update and hands
// what it returns to the selector. A session whose key is no longer the
// list's (a reload or a new WAN address replaced it) is not heard.
func (ps *policySide) measure(policy string, c, l int, key string, update func(*listState) (srv6.Measurement, bool)) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pr := ps.find(policy)
	if pr == nil || c >= len(pr.lists) || l >= len(pr.lists[c]) || pr.lists[c][l].key != key {
		return
	}
	ls := pr.lists[c][l]
	m, ok := update(ls)
	if !ok {
		return
	}
	ls.measured = ps.now()
	m.Color, m.List = pr.cfg.Constituents[c].Color, l
	if err := ps.observeLocked(pr, m); err != nil {
		ps.log.Warn("measurement refused", zap.String("policy", policy), zap.Error(err))
	}
}

func (ps *policySide) find(name string) *policyRun {
	for _, pr := range ps.pols {
		if pr.cfg.Name == name {
			return pr
		}
	}
	return nil
}

// restore is RestorePolicyService.
func (ps *policySide) restore(policy, service string) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pr := ps.find(policy)
	if pr == nil {
		return fmt.Errorf("policy %s: %w", strconv.Quote(policy), ErrNoPolicy)
	}
	if !policyHasService(&pr.cfg.Policy, service) {
		return fmt.Errorf("policy %s service %s: %w", strconv.Quote(policy), strconv.Quote(service), ErrNoPolicy)
	}
	evs, err := pr.sel.Restore(ps.now(), service)
	if err != nil {
		return err
	}
	ps.log.Info("policy service restore requested", zap.String("policy", policy), zap.String("service", service), zap.Int("switches", len(evs)))
	ps.recordLocked(pr, evs)
	signal(ps.rearm)
	return nil
}

// bandwidth is ObservePolicyBandwidth.
func (ps *policySide) bandwidth(policy string, color uint32, bw srv6.Bandwidth) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pr := ps.find(policy)
	if pr == nil {
		return fmt.Errorf("policy %s: %w", strconv.Quote(policy), ErrNoPolicy)
	}
	c := slices.IndexFunc(pr.cfg.Constituents, func(k srv6.Constituent) bool { return k.Color == color })
	if c < 0 {
		return fmt.Errorf("policy %s color %d: %w", strconv.Quote(policy), color, ErrNoPolicy)
	}
	now := ps.now()
	for _, ls := range pr.lists[c] {
		ls.bw, ls.has, ls.measured = bw, ls.has|srv6.MetricBandwidth, now
	}
	return ps.observeLocked(pr, srv6.Measurement{Color: color, List: srv6.AllLists, Has: srv6.MetricBandwidth, Bandwidth: bw})
}
