package srv6

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func seg(t testing.TB, s ...string) Segments {
	t.Helper()
	out := make(Segments, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// constituent with one list per weight; list i of color c goes through
// 2001:db8:c:i::1 to the endpoint.
func cons(t testing.TB, color uint32, weights ...uint32) Constituent {
	c := Constituent{Color: color}
	for i, w := range weights {
		c.SegmentLists = append(c.SegmentLists, SegmentList{
			Segments: seg(t, fmt.Sprintf("2001:db8:%d:%d::1", color, i), "2001:db8:ffff::1"),
			Weight:   w,
		})
	}
	return c
}

// basePolicy: constituents 10, 20, 30 (one list each); service "svc" on
// selector "s": 10 at priority 1, 20 at 2, default 30, delay ≤ 50 ms,
// wait-to-restore 10 s.
func basePolicy(t testing.TB) Policy {
	return Policy{
		Name: "p", Color: 100, Endpoint: netip.MustParseAddr("2001:db8:ffff::1"),
		Constituents: []Constituent{cons(t, 10, 1), cons(t, 20, 1), cons(t, 30, 1)},
		Selectors: []RoutingSelector{{
			Name:          "s",
			Priorities:    []PriorityEntry{{Priority: 1, Color: 10}, {Priority: 2, Color: 20}},
			Thresholds:    Thresholds{Delay: 50 * time.Millisecond},
			Default:       30,
			WaitToRestore: 10 * time.Second,
		}},
		Services: []PolicyService{{Name: "svc", Selector: "s"}},
	}
}

// good is a measurement that meets every threshold the tests use.
func good(color uint32) Measurement {
	return Measurement{
		Color: color, List: AllLists, Liveness: PathUp,
		Has:   MetricDelay | MetricJitter | MetricLoss | MetricBandwidth,
		Delay: 10 * time.Millisecond, Jitter: time.Millisecond, Loss: 0, Bandwidth: 100e6,
	}
}

func delay(color uint32, d time.Duration) Measurement {
	return Measurement{Color: color, List: AllLists, Has: MetricDelay, Delay: d}
}

func down(color uint32) Measurement {
	return Measurement{Color: color, List: AllLists, Liveness: PathDown}
}

func up(color uint32) Measurement {
	return Measurement{Color: color, List: AllLists, Liveness: PathUp}
}

func onList(m Measurement, l int) Measurement { m.List = l; return m }

// summary writes a choice compactly: "p1 10.0x1 20.0x3" or "fb 30.0x1".
func summary(c Choice) string {
	var b strings.Builder
	if c.Fallback {
		b.WriteString("fb")
	} else {
		fmt.Fprintf(&b, "p%d", c.Priority)
	}
	for _, p := range c.Paths {
		fmt.Fprintf(&b, " %d.%dx%d", p.Color, p.List, p.Weight)
	}
	return b.String()
}

type step struct {
	at      time.Duration // since t0
	m       *Measurement  // nil: Evaluate (or Restore when restore is set)
	restore string
	want    string   // summary of service "svc" after the step
	events  []string // kinds of the events the step returns, in order
	reason  string   // a substring of the last event's reason, if set
	next    time.Duration
	hasNext bool
}

func mp(m Measurement) *Measurement { return &m }

// then copies base before appending, so cases built on one base never
// share (and overwrite) its backing array.
func then(base []step, more ...step) []step {
	return append(append([]step(nil), base...), more...)
}

func runSteps(t *testing.T, p Policy, steps []step) {
	t.Helper()
	s, err := NewSelector(p, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		var evs []Event
		switch {
		case st.m != nil:
			m := *st.m
			if m.At.IsZero() {
				m.At = now
			}
			evs, err = s.Observe(now, m)
		case st.restore != "":
			evs, err = s.Restore(now, st.restore)
		default:
			evs = s.Evaluate(now)
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		c, _ := s.Choice("svc")
		if got := summary(c); got != st.want {
			t.Errorf("step %d (%v): choice %q, want %q", i, st.at, got, st.want)
		}
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind.String())
			if e.At != now || e.Policy != p.Name {
				t.Errorf("step %d: event %+v: wrong time or policy", i, e)
			}
		}
		if strings.Join(kinds, ",") != strings.Join(st.events, ",") {
			t.Errorf("step %d (%v): events %v, want %v", i, st.at, kinds, st.events)
		}
		if st.reason != "" && (len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Reason, st.reason)) {
			t.Errorf("step %d: reason %q lacks %q", i, lastReason(evs), st.reason)
		}
		if st.hasNext || st.next != 0 {
			n, ok := s.NextEvaluation()
			if ok != st.hasNext || ok && !n.Equal(t0.Add(st.next)) {
				t.Errorf("step %d: next evaluation %v %v, want %v %v", i, n.Sub(t0), ok, st.next, st.hasNext)
			}
		}
	}
}

func lastReason(evs []Event) string {
	if len(evs) == 0 {
		return ""
	}
	return evs[len(evs)-1].Reason
}

func TestSelectorSwitching(t *testing.T) {
	sec := time.Second
	nonRevertive := basePolicy(t)
	nonRevertive.Selectors[0].NonRevertive = true
	defaultListed := basePolicy(t)
	defaultListed.Selectors[0].Priorities = append(defaultListed.Selectors[0].Priorities, PriorityEntry{Priority: 3, Color: 30})
	noWTR := basePolicy(t)
	noWTR.Selectors[0].WaitToRestore = 0

	allGood := []step{
		{at: 0, m: mp(good(20)), want: "p2 20.0x1", events: []string{"select"}},
		{at: 0, m: mp(good(10)), want: "p1 10.0x1", events: []string{"select"}, reason: "from its first measurement"},
		{at: 0, m: mp(good(30)), want: "p1 10.0x1"},
	}
	degraded := then(allGood,
		step{at: 1 * sec, m: mp(delay(10, 80*time.Millisecond)), want: "p2 20.0x1", events: []string{"degrade"}, reason: "delay 80ms above 50ms"})

	cases := []struct {
		name  string
		p     Policy
		steps []step
	}{
		{"no measurement yet: default, flagged", basePolicy(t), []step{
			{at: 0, want: "fb 30.0x1"},
		}},
		{"first measurements select at once", basePolicy(t), allGood},
		{"first measurements select at once, non-revertive too", nonRevertive, allGood},
		{"degrade at once to the next priority", basePolicy(t), degraded},
		{"restore only after wait-to-restore", basePolicy(t), then(degraded,
			step{at: 2 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p2 20.0x1", next: 12 * sec, hasNext: true},
			step{at: 11*sec + 999*time.Millisecond, want: "p2 20.0x1", next: 12 * sec, hasNext: true},
			step{at: 12 * sec, want: "p1 10.0x1", events: []string{"restore"}, reason: "wait-to-restore of 10s"},
		)},
		{"a failure during the wait restarts it", basePolicy(t), then(degraded,
			step{at: 2 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p2 20.0x1", next: 12 * sec, hasNext: true},
			step{at: 5 * sec, m: mp(delay(10, 90*time.Millisecond)), want: "p2 20.0x1"},
			step{at: 6 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p2 20.0x1", next: 16 * sec, hasNext: true},
			step{at: 12 * sec, want: "p2 20.0x1"},
			step{at: 16 * sec, want: "p1 10.0x1", events: []string{"restore"}},
		)},
		{"wait-to-restore 0 restores at once", noWTR, then(degraded,
			step{at: 2 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p1 10.0x1", events: []string{"restore"}},
		)},
		{"non-revertive: no automatic restore, manual restore", nonRevertive, then(degraded,
			step{at: 2 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p2 20.0x1"},
			step{at: time.Hour, want: "p2 20.0x1"},
			step{at: time.Hour, restore: "svc", want: "p1 10.0x1", events: []string{"manual-restore"}},
			step{at: time.Hour, restore: "svc", want: "p1 10.0x1"},
		)},
		{"manual restore on a revertive selector skips the wait", basePolicy(t), then(degraded,
			step{at: 2 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p2 20.0x1"},
			step{at: 3 * sec, restore: "svc", want: "p1 10.0x1", events: []string{"manual-restore"}},
		)},
		{"manual restore cannot pick a failing path", nonRevertive, then(degraded,
			step{at: 3 * sec, restore: "svc", want: "p2 20.0x1"},
		)},
		{"all failing: the default, flagged, with the reason", basePolicy(t), then(degraded,
			step{at: 2 * sec, m: mp(down(20)), want: "fb 30.0x1", events: []string{"fallback"}, reason: "color 10: delay 80ms above 50ms; color 20: down"},
			// out of fallback at once: there is nothing worse to wait on
			step{at: 3 * sec, m: mp(up(20)), want: "p2 20.0x1", events: []string{"select"}},
		)},
		{"fallback even when the default fails its thresholds", defaultListed, then(degraded,
			step{at: 2 * sec, m: mp(delay(20, time.Second)), want: "p3 30.0x1", events: []string{"degrade"}},
			step{at: 3 * sec, m: mp(delay(30, time.Second)), want: "fb 30.0x1", events: []string{"fallback"}},
		)},
		{"down session degrades, up again waits", basePolicy(t), then(allGood,
			step{at: 1 * sec, m: mp(down(10)), want: "p2 20.0x1", events: []string{"degrade"}, reason: "color 10: down"},
			// the last metrics (good) still stand once up: only the wait holds it
			step{at: 2 * sec, m: mp(up(10)), want: "p2 20.0x1", next: 12 * sec, hasNext: true},
			step{at: 12 * sec, want: "p1 10.0x1", events: []string{"restore"}},
		)},
		{"a worse level does not hold a better one that recovered", basePolicy(t), then(degraded,
			step{at: 2 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p2 20.0x1"},
			// priority 2 fails while 1 waits: 1 meets the thresholds, take it now
			step{at: 3 * sec, m: mp(down(20)), want: "p1 10.0x1", events: []string{"degrade"}, reason: "priority 1 meets the thresholds again"},
		)},
		{"reordered measurement is dropped", basePolicy(t), then(allGood,
			step{at: 5 * sec, m: mp(delay(10, 20*time.Millisecond)), want: "p1 10.0x1"},
			step{at: 6 * sec, m: func() *Measurement { m := delay(10, time.Second); m.At = t0.Add(4 * sec); return &m }(), want: "p1 10.0x1"},
		)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.p, c.steps) })
	}
}

// TestSelectorNoFlap: a better path oscillating around its threshold faster
// than the wait-to-restore never takes the service back; one oscillating
// slower takes it at most once per wait.
func TestSelectorNoFlap(t *testing.T) {
	for _, c := range []struct {
		name        string
		period      time.Duration // half period of the oscillation
		maxSwitches int
	}{
		{"faster than the wait", 3 * time.Second, 1},               // the first degrade only
		{"slower than the wait", 15 * time.Second, 1 + 2*(120/30)}, // degrade, then ≤1 restore+degrade per cycle
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSelector(basePolicy(t), t0)
			if err != nil {
				t.Fatal(err)
			}
			for _, col := range []uint32{10, 20, 30} {
				if _, err := s.Observe(t0, good(col)); err != nil {
					t.Fatal(err)
				}
			}
			switches, lastRestore := 0, time.Time{}
			bad := false
			for now := t0.Add(time.Second); now.Before(t0.Add(120 * time.Second)); now = now.Add(100 * time.Millisecond) {
				var evs []Event
				if now.Sub(t0)%c.period == time.Second%c.period {
					bad = !bad
					d := 20 * time.Millisecond
					if bad {
						d = 70 * time.Millisecond
					}
					evs, _ = s.Observe(now, delay(10, d))
				}
				if n, ok := s.NextEvaluation(); ok && !n.After(now) {
					evs = append(evs, s.Evaluate(now)...)
				}
				for _, e := range evs {
					switches++
					if e.Kind == EventRestore {
						if !lastRestore.IsZero() && e.At.Sub(lastRestore) < 10*time.Second {
							t.Errorf("restores %v apart, closer than the wait-to-restore", e.At.Sub(lastRestore))
						}
						lastRestore = e.At
					}
				}
			}
			if switches > c.maxSwitches {
				t.Errorf("%d switches in 120 s, want at most %d", switches, c.maxSwitches)
			}
			if switches == 0 {
				t.Error("no switch at all: the oscillation did not reach the selector")
			}
		})
	}
}

func TestSelectorLoadShare(t *testing.T) {
	sec := time.Second
	// 10 (weight 3) and 20 (weight 1) share priority 1; 30 is priority 2.
	share := basePolicy(t)
	share.Selectors[0].Priorities = []PriorityEntry{{Priority: 1, Color: 10, Weight: 3}, {Priority: 1, Color: 20, Weight: 1}, {Priority: 2, Color: 30}}
	share.Selectors[0].Default = 10

	// 10 has two lists (weights 2 and 1), 20 one; equal constituent weights.
	lists := basePolicy(t)
	lists.Constituents[0] = cons(t, 10, 2, 1)
	lists.Selectors[0].Priorities = []PriorityEntry{{Priority: 1, Color: 10}, {Priority: 1, Color: 20}, {Priority: 2, Color: 30}}

	// one constituent, two lists 3:1
	single := basePolicy(t)
	single.Constituents[0] = cons(t, 10, 3, 1)

	all := func(w10, w20 string, ev20 ...string) []step {
		return []step{
			{at: 0, m: mp(good(10)), want: w10, events: []string{"select"}},
			{at: 0, m: mp(good(20)), want: w20, events: ev20},
			{at: 0, m: mp(good(30)), want: w20},
		}
	}
	cases := []struct {
		name  string
		p     Policy
		steps []step
	}{
		{"equal priority shares by constituent weight", share, then(all("p1 10.0x1", "p1 10.0x3 20.0x1", "share"),
			step{at: 1 * sec, m: mp(delay(10, time.Second)), want: "p1 20.0x1", events: []string{"share"}, reason: "color 10 leaves (delay 1s above 50ms)"},
			step{at: 2 * sec, m: mp(delay(10, 10*time.Millisecond)), want: "p1 20.0x1", next: 12 * sec, hasNext: true},
			step{at: 12 * sec, want: "p1 10.0x3 20.0x1", events: []string{"share"}, reason: "color 10 joins"},
			step{at: 13 * sec, m: mp(down(10)), want: "p1 20.0x1", events: []string{"share"}},
			step{at: 14 * sec, m: mp(down(20)), want: "p2 30.0x1", events: []string{"degrade"}},
		)},
		{"segment lists share inside their constituent", lists, then(all("p1 10.0x2 10.1x1", "p1 10.0x2 10.1x1 20.0x3", "share"),
			step{at: 1 * sec, m: mp(onList(down(10), 0)), want: "p1 10.1x1 20.0x1", events: []string{"share"}, reason: "color 10 list 1 leaves (down)"},
			step{at: 2 * sec, m: mp(onList(down(10), 1)), want: "p1 20.0x1", events: []string{"share"}},
			step{at: 3 * sec, m: mp(onList(up(10), 1)), want: "p1 20.0x1", next: 13 * sec, hasNext: true},
			step{at: 13 * sec, want: "p1 10.1x1 20.0x1", events: []string{"share"}},
		)},
		{"one constituent, weighted lists", single, then(all("p1 10.0x3 10.1x1", "p1 10.0x3 10.1x1"),
			step{at: 1 * sec, m: mp(onList(delay(10, time.Second), 1)), want: "p1 10.0x1", events: []string{"share"}},
			step{at: 2 * sec, m: mp(onList(delay(10, time.Second), 0)), want: "p2 20.0x1", events: []string{"degrade"}},
		)},
		{"the lists in use fail while the others wait: take the waiting ones", single, then(all("p1 10.0x3 10.1x1", "p1 10.0x3 10.1x1"),
			step{at: 1 * sec, m: mp(onList(down(10), 1)), want: "p1 10.0x1", events: []string{"share"}},
			step{at: 2 * sec, m: mp(onList(up(10), 1)), want: "p1 10.0x1"},
			step{at: 3 * sec, m: mp(onList(down(10), 0)), want: "p1 10.1x1", events: []string{"share"}},
		)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.p, c.steps) })
	}
}

func TestSelectorThresholds(t *testing.T) {
	ms := time.Millisecond
	base := good(10)
	cases := []struct {
		name string
		th   Thresholds
		m    func(*Measurement)
		ok   bool
		why  string
	}{
		{"delay at threshold", Thresholds{Delay: 10 * ms}, nil, true, ""},
		{"delay above", Thresholds{Delay: 10 * ms}, func(m *Measurement) { m.Delay = 10*ms + 1 }, false, "delay 10.000001ms above 10ms"},
		{"jitter at threshold", Thresholds{Jitter: ms}, nil, true, ""},
		{"jitter above", Thresholds{Jitter: ms}, func(m *Measurement) { m.Jitter = 2 * ms }, false, "jitter 2ms above 1ms"},
		{"loss at threshold", Thresholds{LossPercent: 1}, func(m *Measurement) { m.Loss = 0.01 }, true, ""},
		{"loss above", Thresholds{LossPercent: 1}, func(m *Measurement) { m.Loss = 0.02 }, false, "loss 2% above 1%"},
		{"bandwidth at threshold", Thresholds{MinBandwidth: 100e6}, nil, true, ""},
		{"bandwidth under", Thresholds{MinBandwidth: 100e6}, func(m *Measurement) { m.Bandwidth = 99e6 }, false, "remaining bandwidth 99Mbit/s under 100Mbit/s"},
		{"delay unchecked when zero", Thresholds{Jitter: ms}, func(m *Measurement) { m.Delay = time.Hour }, true, ""},
		{"combined, all met", Thresholds{Delay: 10 * ms, Jitter: ms, LossPercent: 1, MinBandwidth: 50e6}, nil, true, ""},
		{"combined, one failing", Thresholds{Delay: 10 * ms, Jitter: ms, LossPercent: 1, MinBandwidth: 50e6}, func(m *Measurement) { m.Loss = 0.5 }, false, "loss 50% above 1%"},
		{"combined, two failing", Thresholds{Delay: 10 * ms, Jitter: ms, LossPercent: 1, MinBandwidth: 50e6},
			func(m *Measurement) { m.Delay, m.Bandwidth = time.Second, 1e6 }, false, "delay 1s above 10ms, remaining bandwidth 1Mbit/s under 50Mbit/s"},
		{"metric never measured", Thresholds{Jitter: ms}, func(m *Measurement) { m.Has = MetricDelay }, false, "no jitter measurement"},
		{"no thresholds: only liveness", Thresholds{}, func(m *Measurement) { m.Has = 0 }, true, ""},
		{"no thresholds, down", Thresholds{}, func(m *Measurement) { m.Liveness = PathDown }, false, "down"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := basePolicy(t)
			p.Selectors[0].Thresholds = c.th
			p.Selectors[0].Priorities = p.Selectors[0].Priorities[:1] // 10 only
			s, err := NewSelector(p, t0)
			if err != nil {
				t.Fatal(err)
			}
			m := base
			if c.m != nil {
				c.m(&m)
			}
			if _, err := s.Observe(t0, m); err != nil {
				t.Fatal(err)
			}
			ch, _ := s.Choice("svc")
			if got := !ch.Fallback; got != c.ok {
				t.Fatalf("meets the thresholds: %v, want %v (%s)", got, c.ok, ch)
			}
			if want := "color 10: " + c.why; !c.ok && !strings.HasSuffix(ch.Reason, want) {
				t.Errorf("reason %q, want it to end with %q", ch.Reason, want)
			}
		})
	}
}

func TestSelectorErrors(t *testing.T) {
	s, err := NewSelector(basePolicy(t), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m    Measurement
		want string
	}{
		{Measurement{Color: 99}, "color 99, not a constituent"},
		{Measurement{Color: 10, List: 1}, "segment list 1 of color 10, which has 1"},
		{Measurement{Color: 10, List: -2}, "segment list -2"},
		{Measurement{Color: 10, Has: MetricDelay, Delay: -1}, "negative delay"},
		{Measurement{Color: 10, Has: MetricJitter, Jitter: -1}, "negative jitter"},
		{Measurement{Color: 10, Has: MetricLoss, Loss: 1.5}, "loss ratio 1.5"},
		{Measurement{Color: 10, Liveness: 7}, "liveness 7"},
	} {
		if _, err := s.Observe(t0, c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Observe(%+v) = %v, want %q", c.m, err, c.want)
		}
	}
	if _, err := s.Restore(t0, "nope"); err == nil || !strings.Contains(err.Error(), `no service "nope"`) {
		t.Errorf("Restore(nope) = %v", err)
	}
	if _, ok := s.Choice("nope"); ok {
		t.Error("Choice of an unknown service")
	}
	bad := basePolicy(t)
	bad.Services[0].Selector = "x"
	if _, err := NewSelector(bad, t0); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("NewSelector(bad) = %v, want ErrInvalidPolicy", err)
	}
}

// The caller's policy and the choices handed out are copies: editing them
// changes nothing inside.
func TestSelectorCopies(t *testing.T) {
	p := basePolicy(t)
	s, err := NewSelector(p, t0)
	if err != nil {
		t.Fatal(err)
	}
	p.Constituents[2].SegmentLists[0].Segments[0] = netip.MustParseAddr("2001:db8::bad")
	c, _ := s.Choice("svc")
	c.Paths[0].Segments[0] = netip.MustParseAddr("2001:db8::bad")
	c.Paths[0].Weight = 99
	again := s.Choices()[0]
	if again.Service != "svc" || again.Choice.Paths[0].Segments[0] != netip.MustParseAddr("2001:db8:30:0::1") || again.Choice.Paths[0].Weight != 1 {
		t.Errorf("choice changed from outside: %+v", again)
	}
}

func TestSelectorClockStepBack(t *testing.T) {
	sec := time.Second
	runSteps(t, basePolicy(t), []step{
		{at: 0, m: mp(good(10)), want: "p1 10.0x1", events: []string{"select"}},
		{at: 0, m: mp(good(20)), want: "p1 10.0x1"},
		{at: 100 * sec, m: mp(delay(10, time.Second)), want: "p2 20.0x1", events: []string{"degrade"}},
		{at: 101 * sec, m: mp(delay(10, time.Millisecond)), want: "p2 20.0x1", next: 111 * sec, hasNext: true},
		// a clock stepped back does not move the wait's end
		{at: 50 * sec, want: "p2 20.0x1", next: 111 * sec, hasNext: true},
		{at: 111 * sec, want: "p1 10.0x1", events: []string{"restore"}},
	})
}

func TestFlattenWeights(t *testing.T) {
	cases := []struct {
		name    string
		entries []uint32   // constituent weights at priority 1
		lists   [][]uint32 // list weights per constituent
		want    []uint32
	}{
		{"one list", []uint32{1}, [][]uint32{{7}}, []uint32{1}},
		{"ratios reduced", []uint32{1}, [][]uint32{{4, 2}}, []uint32{2, 1}},
		{"constituent share split by lists", []uint32{1, 1}, [][]uint32{{2, 1}, {1}}, []uint32{2, 1, 3}},
		{"constituent weights", []uint32{3, 1}, [][]uint32{{1, 1}, {5}}, []uint32{3, 3, 2}},
		{"too fine for 256: scaled", []uint32{1, 1000}, [][]uint32{{1}, {1}}, []uint32{1, 256}},
		{"huge weights: scaled", []uint32{1, 1}, [][]uint32{{4294967295, 1}, {4294967291}}, []uint32{256, 1, 256}},
		{"overflowing lcm: scaled", []uint32{1, 1}, [][]uint32{{4294967295, 4294967294}, {4294967291, 4294967279}}, []uint32{1, 1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := basePolicy(t)
			p.Constituents = nil
			p.Selectors[0].Priorities = nil
			for i, w := range c.entries {
				color := uint32(10 * (i + 1))
				p.Constituents = append(p.Constituents, cons(t, color, c.lists[i]...))
				p.Selectors[0].Priorities = append(p.Selectors[0].Priorities, PriorityEntry{Priority: 1, Color: color, Weight: w})
			}
			p.Selectors[0].Thresholds = Thresholds{}
			p.Selectors[0].Default = 10
			s, err := NewSelector(p, t0)
			if err != nil {
				t.Fatal(err)
			}
			ch, _ := s.Choice("svc")
			var got []uint32
			for _, path := range ch.Paths {
				got = append(got, path.Weight)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("weights %v, want %v", got, c.want)
			}
		})
	}
}

func TestChoiceString(t *testing.T) {
	s, err := NewSelector(basePolicy(t), t0)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Choice("svc")
	want := `fallback: color 30 list 1 weight 1 (no constituent of selector "s" meets its thresholds: color 10: no measurement yet; color 20: no measurement yet)`
	if c.String() != want {
		t.Errorf("String() = %q\nwant       %q", c.String(), want)
	}
	if fmt.Sprint(c.Colors()) != "[30]" {
		t.Errorf("Colors() = %v", c.Colors())
	}
}

// A reloaded policy starts a new Selector; replaying the old one's last
// measurements puts every service where it was, without waiting for
// notifications that damping may hold back for long.
func TestSelectorReplay(t *testing.T) {
	p := basePolicy(t)
	p.Constituents[0] = cons(t, 10, 1, 1)
	old, err := NewSelector(p, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Measurement{good(10), good(20), good(30), onList(down(10), 1), delay(20, 60*time.Millisecond)} {
		if _, err := old.Observe(t0, m); err != nil {
			t.Fatal(err)
		}
	}
	// the reload drops list 2 of color 10 and adds constituent 40
	p.Constituents[0] = cons(t, 10, 1)
	p.Constituents = append(p.Constituents, cons(t, 40, 1))
	fresh, err := NewSelector(p, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, m := range old.Measurements() {
		if _, err := fresh.Observe(t0.Add(time.Second), m); err != nil {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("%d replayed measurements refused, want 1 (the list that is gone)", dropped)
	}
	was, _ := old.Choice("svc")
	now, _ := fresh.Choice("svc")
	if summary(was) != "p1 10.0x1" || summary(now) != summary(was) {
		t.Errorf("after replay %q, before %q", summary(now), summary(was))
	}
	// 20's delay (60 ms) came along: a failure of 10 finds nothing better
	// than the default
	evs, _ := fresh.Observe(t0.Add(2*time.Second), down(10))
	if len(evs) != 1 || evs[0].Kind != EventFallback {
		t.Errorf("events %+v, want one fallback", evs)
	}
}

// BenchmarkSelectorObserve: the cost of one notification for a policy of
// four constituents (five lists) and three services, alternating a delay
// that switches the services with one that does not.
func BenchmarkSelectorObserve(b *testing.B) {
	p := basePolicy(b)
	p.Constituents = append(p.Constituents, cons(b, 40, 1, 1))
	p.Selectors = append(p.Selectors, RoutingSelector{
		Name:       "share",
		Priorities: []PriorityEntry{{Priority: 1, Color: 10}, {Priority: 1, Color: 40, Weight: 2}, {Priority: 2, Color: 20}},
		Thresholds: Thresholds{Delay: 50 * time.Millisecond, LossPercent: 1}, Default: 30,
	})
	p.Services = append(p.Services, PolicyService{Name: "a", Selector: "share"}, PolicyService{Name: "b", Selector: "s"})
	s, err := NewSelector(p, t0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []uint32{10, 20, 30, 40} {
		if _, err := s.Observe(t0, good(c)); err != nil {
			b.Fatal(err)
		}
	}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		d := 10 * time.Millisecond
		if i%2 == 1 {
			d = 90 * time.Millisecond
		}
		if _, err := s.Observe(now, delay(10, d)); err != nil {
			b.Fatal(err)
		}
	}
}
