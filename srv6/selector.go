package srv6

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The policy selector's state machine (draft-yang-srv6ops-policy-selector).
// It is pure: the caller passes the time in with every call, feeds it the
// measurements of the constituents' segment lists as they arrive (damped
// notifications from the STAMP senders), and arms a timer for
// NextEvaluation. Per service it keeps the active choice:
//
//   - the best (lowest) priority level that has a constituent meeting the
//     selector's thresholds; its constituents share the traffic by their
//     weights, and each constituent among its qualifying segment lists by
//     theirs;
//   - degrade at once: when no constituent of the active level meets the
//     thresholds any more, the service moves to the best level that does;
//   - restore after wait-to-restore: a better level takes the service back
//     only once one of its constituents has met the thresholds without
//     interruption for the selector's WaitToRestore (never automatically
//     for a non-revertive selector: Restore does it); a failed segment list
//     or load-share member rejoins its active level after the same wait
//     (non-revertive too: that is no move between levels);
//   - fall back: when no prioritised constituent meets the thresholds, the
//     default constituent carries the service, flagged with the reason;
//   - a list that meets the thresholds from its first measurement has never
//     failed and needs no wait: at boot the order in which the probes'
//     first results arrive does not decide where a service stays.
//
// So a path that oscillates around a threshold can take traffic away from a
// working path at most once per wait-to-restore, and a path failing while in
// its wait restarts it.

// Metric is a set of measured quantities.
type Metric uint8

// The quantities a Measurement can carry.
const (
	MetricDelay Metric = 1 << iota
	MetricJitter
	MetricLoss
	MetricBandwidth
)

// Liveness is what a measurement says of a segment list's session.
type Liveness uint8

const (
	// LivenessUnchanged: the measurement says nothing of liveness.
	LivenessUnchanged Liveness = iota
	// PathUp: replies are coming back (the STAMP session is up).
	PathUp
	// PathDown: the session is down; the list fails every selector.
	PathDown
)

// AllLists as Measurement.List applies a measurement to every segment list
// of the constituent (a per-constituent measurement).
const AllLists = -1

// Measurement is one notification about a segment list of a constituent.
// Only the quantities in Has are updated; the others keep their last value,
// as damped notifications only carry what moved.
type Measurement struct {
	Color uint32
	// List is the segment list's index in its constituent (from 0), or
	// AllLists.
	List int
	// At is when the value was measured (zero: now); a measurement older
	// than the last one applied to the same list is dropped (reordered
	// delivery).
	At       time.Time
	Liveness Liveness
	Has      Metric
	Delay    time.Duration
	Jitter   time.Duration
	// Loss is a ratio, 0 to 1.
	Loss float64
	// Bandwidth is the remaining (available) bandwidth.
	Bandwidth Bandwidth
}

// EventKind says why a service's choice changed.
type EventKind uint8

// Event kinds.
const (
	// EventSelect: onto a level that meets the thresholds, out of fallback,
	// or onto a better level whose first measurement just came in.
	EventSelect EventKind = iota + 1
	// EventDegrade: the active level failed; the best level meeting the
	// thresholds took over at once.
	EventDegrade
	// EventRestore: a better level met the thresholds for wait-to-restore.
	EventRestore
	// EventManualRestore: Restore moved the service to the best level.
	EventManualRestore
	// EventFallback: nothing meets the thresholds; the default carries it.
	EventFallback
	// EventShare: same level, but segment lists or constituents left or
	// rejoined the share.
	EventShare
)

func (k EventKind) String() string {
	switch k {
	case EventSelect:
		return "select"
	case EventDegrade:
		return "degrade"
	case EventRestore:
		return "restore"
	case EventManualRestore:
		return "manual-restore"
	case EventFallback:
		return "fallback"
	case EventShare:
		return "share"
	}
	return "unknown"
}

// Event reports a change of a service's active choice.
type Event struct {
	At      time.Time
	Policy  string
	Service string
	Kind    EventKind
	From    Choice
	To      Choice
	Reason  string
}

// MaxPathWeight is the largest weight in a Choice: Linux multipath
// nexthops carry weight−1 in one octet (rtnh_hops), so 256 is what the
// dataplane can program. Larger exact ratios are scaled to fit.
const MaxPathWeight = 256

// WeightedPath is one segment list carrying a share of a service.
type WeightedPath struct {
	Color uint32
	// List is the segment list's index in its constituent (from 0).
	List     int
	Segments []netip.Addr
	Weight   uint32
}

// Choice is the active choice of a service: the segment lists to program
// as one weighted multipath route.
type Choice struct {
	// Priority is the active level; 0 when Fallback.
	Priority int
	// Fallback says no prioritised constituent meets the thresholds and
	// Paths are the default constituent's; Reason says why.
	Fallback bool
	Reason   string
	// Since is when this choice became active.
	Since time.Time
	Paths []WeightedPath
}

// Colors lists the constituents carrying traffic, in Paths order.
func (c Choice) Colors() []uint32 {
	var out []uint32
	for _, p := range c.Paths {
		if !slices.Contains(out, p.Color) {
			out = append(out, p.Color)
		}
	}
	return out
}

// String is a one-line summary for logs.
func (c Choice) String() string {
	var b strings.Builder
	if c.Fallback {
		b.WriteString("fallback")
	} else {
		fmt.Fprintf(&b, "priority %d", c.Priority)
	}
	for i, p := range c.Paths {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "color %d list %d weight %d", p.Color, p.List+1, p.Weight)
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, " (%s)", c.Reason)
	}
	return b.String()
}

func (c Choice) clone() Choice {
	c.Paths = slices.Clone(c.Paths)
	for i := range c.Paths {
		c.Paths[i].Segments = slices.Clone(c.Paths[i].Segments)
	}
	return c
}

// ServiceChoice is a service's name and active choice.
type ServiceChoice struct {
	Service string
	Choice  Choice
}

// pathKey names a segment list: constituent index, list index.
type pathKey struct{ c, l int }

// pathState is the last known measurement of a segment list.
type pathState struct {
	seen   bool
	at     time.Time
	down   bool
	has    Metric
	delay  time.Duration
	jitter time.Duration
	loss   float64
	bw     Bandwidth
}

// qualState: does a list meet a selector's thresholds, and since when.
// failed says it has failed them on a real measurement (or went down): a
// list that meets them from its first measurement has nothing to recover
// from and skips the wait (since stays zero), so the probes' start order at
// boot does not park services on a worse path for a wait-to-restore.
type qualState struct {
	ok     bool
	failed bool
	since  time.Time
}

type member struct {
	c      int // constituent index
	weight uint64
}

type level struct {
	priority int
	members  []member
}

type selState struct {
	cfg    *RoutingSelector
	levels []level // best first
	def    int     // constituent index of the default
	qual   [][]qualState
}

type svcState struct {
	name   string
	sel    int
	level  int // index into levels; -1 in fallback
	use    []pathKey
	choice Choice
}

// Selector runs the selectors of one parent policy. It is not safe for
// concurrent use: the agent's state goroutine owns it.
type Selector struct {
	pol   Policy
	color map[uint32]int
	paths [][]pathState
	sels  []selState
	svcs  []svcState
	now   time.Time
}

// NewSelector validates p and starts its services at time now, before any
// measurement: a service whose selector checks no threshold takes its best
// level at once, the others start on their default constituent.
func NewSelector(p Policy, now time.Time) (*Selector, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s := &Selector{pol: p.clone(), color: make(map[uint32]int, len(p.Constituents)), now: now}
	s.paths = make([][]pathState, len(s.pol.Constituents))
	for i, c := range s.pol.Constituents {
		s.color[c.Color] = i
		s.paths[i] = make([]pathState, len(c.SegmentLists))
	}
	selIdx := make(map[string]int, len(s.pol.Selectors))
	s.sels = make([]selState, len(s.pol.Selectors))
	for i := range s.pol.Selectors {
		cfg := &s.pol.Selectors[i]
		selIdx[cfg.Name] = i
		st := selState{cfg: cfg, def: s.color[cfg.Default], qual: make([][]qualState, len(s.paths))}
		for c := range s.paths {
			st.qual[c] = make([]qualState, len(s.paths[c]))
		}
		entries := slices.Clone(cfg.Priorities)
		slices.SortStableFunc(entries, func(a, b PriorityEntry) int { return a.Priority - b.Priority })
		for _, e := range entries {
			m := member{c: s.color[e.Color], weight: e.weight()}
			if n := len(st.levels); n > 0 && st.levels[n-1].priority == e.Priority {
				st.levels[n-1].members = append(st.levels[n-1].members, m)
			} else {
				st.levels = append(st.levels, level{priority: e.Priority, members: []member{m}})
			}
		}
		s.sels[i] = st
	}
	s.requalify()
	s.svcs = make([]svcState, len(s.pol.Services))
	for i, ps := range s.pol.Services {
		s.svcs[i] = svcState{name: ps.Name, sel: selIdx[ps.Selector], level: -1}
		s.step(&s.svcs[i], false) // the start is not a switch: no event
	}
	return s, nil
}

// Name is the policy's name.
func (s *Selector) Name() string { return s.pol.Name }

// Observe applies a measurement at time now and returns the switches it
// causes. A measurement naming a color or list the policy does not have, or
// carrying impossible values, is refused with an error and changes nothing.
func (s *Selector) Observe(now time.Time, m Measurement) ([]Event, error) {
	c, ok := s.color[m.Color]
	if !ok {
		return nil, fmt.Errorf("policy %s: measurement for color %d, not a constituent", strconv.Quote(s.pol.Name), m.Color)
	}
	lists := len(s.paths[c])
	if m.List != AllLists && (m.List < 0 || m.List >= lists) {
		return nil, fmt.Errorf("policy %s: measurement for segment list %d of color %d, which has %d", strconv.Quote(s.pol.Name), m.List, m.Color, lists)
	}
	if err := checkMeasurement(m); err != nil {
		return nil, fmt.Errorf("policy %s color %d: %w", strconv.Quote(s.pol.Name), m.Color, err)
	}
	s.advance(now)
	if m.At.IsZero() {
		m.At = now
	}
	for l := range s.paths[c] {
		if m.List != AllLists && l != m.List {
			continue
		}
		ps := &s.paths[c][l]
		if ps.seen && m.At.Before(ps.at) {
			continue
		}
		ps.seen, ps.at = true, m.At
		ps.apply(m)
	}
	s.requalify()
	return s.stepAll(""), nil
}

// apply takes m's liveness and the quantities it carries; the others keep
// their last value.
func (ps *pathState) apply(m Measurement) {
	switch m.Liveness {
	case PathUp:
		ps.down = false
	case PathDown:
		ps.down = true
	}
	if m.Has&MetricDelay != 0 {
		ps.delay = m.Delay
	}
	if m.Has&MetricJitter != 0 {
		ps.jitter = m.Jitter
	}
	if m.Has&MetricLoss != 0 {
		ps.loss = m.Loss
	}
	if m.Has&MetricBandwidth != 0 {
		ps.bw = m.Bandwidth
	}
	ps.has |= m.Has
}

func checkMeasurement(m Measurement) error {
	switch {
	case m.Has&MetricDelay != 0 && m.Delay < 0:
		return fmt.Errorf("negative delay %v", m.Delay)
	case m.Has&MetricJitter != 0 && m.Jitter < 0:
		return fmt.Errorf("negative jitter %v", m.Jitter)
	case m.Has&MetricLoss != 0 && !(m.Loss >= 0 && m.Loss <= 1):
		return fmt.Errorf("loss ratio %v outside 0..1", m.Loss)
	case m.Liveness > PathDown:
		return fmt.Errorf("liveness %d unknown", m.Liveness)
	}
	return nil
}

// Measurements returns the last known state of every measured segment list
// (liveness and the quantities ever measured). Notifications are damped, so
// a new Selector built on a reloaded policy would wait long for values that
// do not move: the caller replays these into it with Observe (those naming
// a color or list that is gone are refused and can be dropped).
func (s *Selector) Measurements() []Measurement {
	var out []Measurement
	for c := range s.paths {
		for l, ps := range s.paths[c] {
			if !ps.seen {
				continue
			}
			m := Measurement{
				Color: s.pol.Constituents[c].Color, List: l, At: ps.at, Liveness: PathUp,
				Has: ps.has, Delay: ps.delay, Jitter: ps.jitter, Loss: ps.loss, Bandwidth: ps.bw,
			}
			if ps.down {
				m.Liveness = PathDown
			}
			out = append(out, m)
		}
	}
	return out
}

// Evaluate re-evaluates every service at time now; call it when the timer
// set from NextEvaluation fires.
func (s *Selector) Evaluate(now time.Time) []Event {
	s.advance(now)
	return s.stepAll("")
}

// Restore moves service back to the best level that meets the thresholds
// now, without waiting for wait-to-restore: the operator's restore of a
// non-revertive selector. Nothing happens when the service is already
// there or in fallback.
func (s *Selector) Restore(now time.Time, service string) ([]Event, error) {
	if !slices.ContainsFunc(s.svcs, func(v svcState) bool { return v.name == service }) {
		return nil, fmt.Errorf("policy %s has no service %s", strconv.Quote(s.pol.Name), strconv.Quote(service))
	}
	s.advance(now)
	return s.stepAll(service), nil
}

// NextEvaluation is the earliest time a wait-to-restore ends and the choice
// may change without a new measurement; false when none is pending. The
// caller arms a timer and calls Evaluate then.
func (s *Selector) NextEvaluation() (time.Time, bool) {
	var next time.Time
	found := false
	for i := range s.svcs {
		sv := &s.svcs[i]
		if sv.level < 0 {
			continue // leaving fallback never waits
		}
		sel := &s.sels[sv.sel]
		wtr := sel.cfg.WaitToRestore
		first := 0
		if sel.cfg.NonRevertive {
			first = sv.level // only rejoins within the active level
		}
		for li := first; li <= sv.level; li++ {
			s.eachList(sel.levels[li].members, func(k pathKey) {
				q := sel.qual[k.c][k.l]
				if !q.ok || li == sv.level && slices.Contains(sv.use, k) {
					return
				}
				if t := q.since.Add(wtr); t.After(s.now) && (!found || t.Before(next)) {
					next, found = t, true
				}
			})
		}
	}
	return next, found
}

// Choice returns the active choice of service.
func (s *Selector) Choice(service string) (Choice, bool) {
	for i := range s.svcs {
		if s.svcs[i].name == service {
			return s.svcs[i].choice.clone(), true
		}
	}
	return Choice{}, false
}

// Choices returns every service's active choice, in configuration order.
func (s *Selector) Choices() []ServiceChoice {
	out := make([]ServiceChoice, len(s.svcs))
	for i := range s.svcs {
		out[i] = ServiceChoice{Service: s.svcs[i].name, Choice: s.svcs[i].choice.clone()}
	}
	return out
}

// advance moves the clock forward only: a caller's clock step back must not
// shorten or restart a wait.
func (s *Selector) advance(now time.Time) {
	if now.After(s.now) {
		s.now = now
	}
}

// requalify recomputes which lists meet each selector's thresholds; a list
// that meets them again after a failure starts its wait-to-restore now.
func (s *Selector) requalify() {
	for i := range s.sels {
		sel := &s.sels[i]
		for c := range s.paths {
			for l := range s.paths[c] {
				ps := &s.paths[c][l]
				why, broken := failure(sel.cfg.Thresholds, ps)
				ok := why == ""
				q := &sel.qual[c][l]
				if ok != q.ok {
					q.ok = ok
					q.since = time.Time{}
					if q.failed {
						q.since = s.now
					}
				}
				// Only a real failure (down, or a threshold broken) makes a
				// list wait to restore: one merely missing a metric has not
				// failed, or the order measurements arrive in would decide
				// where a service sits.
				q.failed = q.failed || broken
			}
		}
	}
}

// failure says why a list fails th, or "" if it meets them, and whether it
// broke them (down, or a measured value beyond a threshold) rather than
// only lacking a measurement. A list never measured meets an empty set of
// thresholds (static priority routing).
func failure(th Thresholds, ps *pathState) (why string, broken bool) {
	if ps.down {
		return "down", true
	}
	checked := th.Delay > 0 || th.Jitter > 0 || th.LossPercent > 0 || th.MinBandwidth > 0
	if !checked {
		return "", false
	}
	if ps.has == 0 {
		return "no measurement yet", false
	}
	var reasons []string
	missing := 0
	need := func(m Metric, name string) bool {
		if ps.has&m == 0 {
			reasons = append(reasons, "no "+name+" measurement")
			missing++
			return false
		}
		return true
	}
	if th.Delay > 0 && need(MetricDelay, "delay") && ps.delay > th.Delay {
		reasons = append(reasons, fmt.Sprintf("delay %v above %v", ps.delay, th.Delay))
	}
	if th.Jitter > 0 && need(MetricJitter, "jitter") && ps.jitter > th.Jitter {
		reasons = append(reasons, fmt.Sprintf("jitter %v above %v", ps.jitter, th.Jitter))
	}
	if th.LossPercent > 0 && need(MetricLoss, "loss") && ps.loss*100 > th.LossPercent {
		reasons = append(reasons, fmt.Sprintf("loss %.3g%% above %.3g%%", ps.loss*100, th.LossPercent))
	}
	if th.MinBandwidth > 0 && need(MetricBandwidth, "bandwidth") && ps.bw < th.MinBandwidth {
		reasons = append(reasons, fmt.Sprintf("remaining bandwidth %vbit/s under %vbit/s", ps.bw, th.MinBandwidth))
	}
	return strings.Join(reasons, ", "), len(reasons) > missing
}

func (s *Selector) eachList(ms []member, f func(pathKey)) {
	for _, m := range ms {
		for l := range s.paths[m.c] {
			f(pathKey{m.c, l})
		}
	}
}

func (s *Selector) levelHas(sel *selState, li int, pred func(pathKey) bool) bool {
	found := false
	s.eachList(sel.levels[li].members, func(k pathKey) { found = found || pred(k) })
	return found
}

func (s *Selector) stepAll(manual string) []Event {
	var evs []Event
	for i := range s.svcs {
		if ev, ok := s.step(&s.svcs[i], s.svcs[i].name == manual); ok {
			evs = append(evs, ev)
		}
	}
	return evs
}

// step applies the selection rules to one service at s.now.
func (s *Selector) step(sv *svcState, manual bool) (Event, bool) {
	sel := &s.sels[sv.sel]
	wtr := sel.cfg.WaitToRestore
	qualified := func(k pathKey) bool { return sel.qual[k.c][k.l].ok }
	stable := func(k pathKey) bool {
		q := sel.qual[k.c][k.l]
		return q.ok && !s.now.Before(q.since.Add(wtr))
	}

	fresh := func(k pathKey) bool {
		q := sel.qual[k.c][k.l]
		return q.ok && !q.failed
	}

	target, kind, up := sv.level, EventShare, false
	if sv.level >= 0 && s.levelHas(sel, sv.level, qualified) {
		for li := 0; li < sv.level && !up; li++ {
			switch {
			case s.levelHas(sel, li, fresh):
				// never failed: its first measurement came after the one
				// the service is on; taking it is no restore
				target, kind, up = li, EventSelect, true
			case !sel.cfg.NonRevertive && s.levelHas(sel, li, stable):
				target, kind, up = li, EventRestore, true
			case manual && s.levelHas(sel, li, qualified):
				target, kind, up = li, EventManualRestore, true
			}
		}
	} else {
		target = -1
		for li := range sel.levels {
			if s.levelHas(sel, li, qualified) {
				target = li
				break
			}
		}
		switch {
		case target < 0 && sv.level >= 0:
			kind = EventFallback
		case target >= 0 && sv.level < 0:
			kind = EventSelect
		case target >= 0:
			kind = EventDegrade
		}
	}

	var use []pathKey
	if target >= 0 {
		entering := target != sv.level
		s.eachList(sel.levels[target].members, func(k pathKey) {
			switch {
			case !qualified(k):
			case entering && up && kind != EventManualRestore && !stable(k):
				// a move up brings only the lists that waited; the others
				// rejoin when their own wait ends
			case entering || slices.Contains(sv.use, k) || stable(k):
				use = append(use, k)
			}
		})
		if len(use) == 0 { // the lists in use failed, the others are still waiting
			s.eachList(sel.levels[target].members, func(k pathKey) {
				if qualified(k) {
					use = append(use, k)
				}
			})
		}
	} else {
		for l := range s.paths[sel.def] {
			if !s.paths[sel.def][l].down {
				use = append(use, pathKey{sel.def, l})
			}
		}
		if len(use) == 0 { // all down: still a route, the default is the last resort
			for l := range s.paths[sel.def] {
				use = append(use, pathKey{sel.def, l})
			}
		}
	}

	fallbackWhy := ""
	if target < 0 {
		fallbackWhy = "no constituent of selector " + strconv.Quote(sel.cfg.Name) + " meets its thresholds: " + s.levelsFailure(sel, 0, len(sel.levels))
	}
	if target == sv.level && slices.Equal(use, sv.use) {
		sv.choice.Reason = fallbackWhy // a fallback's reason follows the measurements
		return Event{}, false
	}

	var reason string
	switch kind {
	case EventSelect:
		reason = fmt.Sprintf("priority %d meets the thresholds", sel.levels[target].priority)
		if up {
			reason += " from its first measurement"
		}
	case EventDegrade:
		reason = fmt.Sprintf("priority %d fails: %s", sel.levels[sv.level].priority, s.levelsFailure(sel, sv.level, sv.level+1))
		if target < sv.level {
			reason += fmt.Sprintf("; priority %d meets the thresholds again", sel.levels[target].priority)
		}
	case EventRestore:
		reason = fmt.Sprintf("priority %d met the thresholds for the wait-to-restore of %v", sel.levels[target].priority, wtr)
	case EventManualRestore:
		reason = fmt.Sprintf("manual restore to priority %d", sel.levels[target].priority)
	case EventFallback:
		reason = fallbackWhy
	case EventShare:
		reason = s.shareChange(sel, sv.use, use)
	}

	to := Choice{Fallback: target < 0, Reason: fallbackWhy, Since: s.now}
	members := []member{{c: sel.def, weight: 1}}
	if target >= 0 {
		to.Priority = sel.levels[target].priority
		members = sel.levels[target].members
	}
	to.Paths = s.flatten(members, use)

	ev := Event{At: s.now, Policy: s.pol.Name, Service: sv.name, Kind: kind, From: sv.choice.clone(), To: to.clone(), Reason: reason}
	sv.level, sv.use, sv.choice = target, use, to
	return ev, true
}

// levelsFailure lists why each list of levels [from, to) fails.
func (s *Selector) levelsFailure(sel *selState, from, to int) string {
	var why []string
	for li := from; li < to; li++ {
		s.eachList(sel.levels[li].members, func(k pathKey) {
			if f, _ := failure(sel.cfg.Thresholds, &s.paths[k.c][k.l]); f != "" {
				why = append(why, s.pathName(k)+": "+f)
			}
		})
	}
	return strings.Join(why, "; ")
}

func (s *Selector) shareChange(sel *selState, old, cur []pathKey) string {
	var parts []string
	for _, k := range cur {
		if !slices.Contains(old, k) {
			parts = append(parts, s.pathName(k)+" joins")
		}
	}
	for _, k := range old {
		if !slices.Contains(cur, k) {
			why, _ := failure(sel.cfg.Thresholds, &s.paths[k.c][k.l])
			if why == "" {
				why = "back to the share"
			}
			parts = append(parts, s.pathName(k)+" leaves ("+why+")")
		}
	}
	return strings.Join(parts, "; ")
}

func (s *Selector) pathName(k pathKey) string {
	c := &s.pol.Constituents[k.c]
	n := "color " + strconv.FormatUint(uint64(c.Color), 10)
	if c.Name != "" {
		n += " (" + c.Name + ")"
	}
	if len(c.SegmentLists) > 1 {
		n += " list " + strconv.Itoa(k.l+1)
	}
	return n
}

// flatten turns the lists in use into one weighted multipath: each member
// constituent gets its weight's share of the traffic, split among its lists
// in use by their weights. Exact integer ratios are kept when they fit
// MaxPathWeight, otherwise the shares are scaled to it.
func (s *Selector) flatten(members []member, use []pathKey) []WeightedPath {
	type group struct {
		w, sum uint64
		keys   []pathKey
	}
	var groups []group
	for _, m := range members {
		g := group{w: m.weight}
		for _, k := range use {
			if k.c == m.c {
				g.keys = append(g.keys, k)
				g.sum += uint64(s.pol.Constituents[k.c].SegmentLists[k.l].Weight)
			}
		}
		if len(g.keys) > 0 {
			groups = append(groups, g)
		}
	}
	var paths []WeightedPath
	for _, g := range groups {
		for _, k := range g.keys {
			c := &s.pol.Constituents[k.c]
			paths = append(paths, WeightedPath{Color: c.Color, List: k.l, Segments: slices.Clone(c.SegmentLists[k.l].Segments)})
		}
	}

	// exact: weight = w × a × (L / sum), L the lcm of the groups' sums
	l, exact := uint64(1), true
	for _, g := range groups {
		hi, lo := bits.Mul64(l/gcd(l, g.sum), g.sum)
		l, exact = lo, exact && hi == 0
	}
	ws := make([]uint64, 0, len(paths))
	for _, g := range groups {
		for _, k := range g.keys {
			a := uint64(s.pol.Constituents[k.c].SegmentLists[k.l].Weight)
			h1, x := bits.Mul64(g.w, a)
			h2, y := bits.Mul64(x, l/g.sum)
			exact = exact && h1 == 0 && h2 == 0
			ws = append(ws, y)
		}
	}
	var d uint64
	for _, w := range ws {
		d = gcd(d, w)
	}
	for i := range ws {
		if d > 0 {
			ws[i] /= d
		}
		exact = exact && ws[i] <= MaxPathWeight
	}
	if !exact {
		shares := make([]float64, 0, len(paths))
		var total, top float64
		for _, g := range groups {
			total += float64(g.w)
		}
		for _, g := range groups {
			for _, k := range g.keys {
				a := float64(s.pol.Constituents[k.c].SegmentLists[k.l].Weight)
				sh := float64(g.w) / total * a / float64(g.sum)
				shares = append(shares, sh)
				top = max(top, sh)
			}
		}
		d = 0
		for i, sh := range shares {
			ws[i] = uint64(max(1, math.Round(sh/top*MaxPathWeight)))
			d = gcd(d, ws[i])
		}
		for i := range ws {
			ws[i] /= d
		}
	}
	for i := range paths {
		paths[i].Weight = uint32(ws[i])
	}
	return paths
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
