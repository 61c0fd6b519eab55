package twamp

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
)

const us = time.Microsecond

// step is one sample: a delay in µs, or lost.
type step struct {
	delayUS int
	lost    bool
}

func lossy() step         { return step{lost: true} }
func ok(delayUS int) step { return step{delayUS: delayUS} }
func oks(n, d int) []step { return repeat(n, ok(d)) }
func losses(n int) []step { return repeat(n, lossy()) }
func repeat(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestNotifier(t *testing.T) {
	type ev struct {
		at   int // index of the sample that caused it
		kind EventKind
	}
	tests := []struct {
		name  string
		cfg   NotifyConfig
		steps []step
		want  []ev
	}{
		{"up on first reply", NotifyConfig{}, cat(losses(3), oks(2, 100)), []ev{{3, EventUp}}},
		{"down after N once up", NotifyConfig{DownAfter: 3},
			cat(oks(1, 100), losses(2), oks(1, 100), losses(3), losses(2), oks(1, 100)),
			[]ev{{0, EventUp}, {6, EventDown}, {9, EventUp}}},
		{"no down before up", NotifyConfig{DownAfter: 2}, losses(5), nil},
		{"delay TH for M consecutive", NotifyConfig{DelayThreshold: 500 * us, DelayCount: 3},
			cat(oks(1, 100), oks(2, 600), oks(1, 100), oks(3, 600), oks(2, 100), oks(1, 700), oks(3, 100)),
			[]ev{{0, EventUp}, {6, EventDelayAbove}, {12, EventDelayNormal}}},
		{"losses do not break the delay run", NotifyConfig{DelayThreshold: 500 * us, DelayCount: 2},
			cat(oks(1, 600), losses(1), oks(1, 600)),
			[]ev{{0, EventUp}, {2, EventDelayAbove}}},
		{"loss X of Y", NotifyConfig{LossX: 2, LossY: 4},
			cat(oks(1, 100), losses(1), oks(2, 100), losses(1), oks(3, 100)),
			[]ev{{0, EventUp}, {4, EventLossAbove}, {5, EventLossNormal}}},
		{"loss X of Y sliding", NotifyConfig{LossX: 3, LossY: 5},
			cat(oks(1, 100), losses(1), oks(1, 100), losses(1), oks(1, 100), losses(1), oks(4, 100)),
			[]ev{{0, EventUp}, {5, EventLossAbove}, {6, EventLossNormal}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := NewNotifier("s", tc.cfg)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var got []ev
			for i, s := range tc.steps {
				now := t0.Add(time.Duration(i) * time.Second)
				for _, e := range n.Observe(now, Sample{Seq: uint32(i), Lost: s.lost, RTT: time.Duration(s.delayUS) * us}, nil) {
					if !e.At.Equal(now) || e.Session != "s" {
						t.Fatalf("event %+v: time or session wrong", e)
					}
					got = append(got, ev{i, e.Kind})
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("events %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestNotifierDamping(t *testing.T) {
	n := NewNotifier("s", NotifyConfig{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	win := func(avgUS, p99US, jitUS int, lost, recv uint64) Metrics {
		return Metrics{RTT: Stats{Avg: time.Duration(avgUS) * us, P99: time.Duration(p99US) * us},
			Jitter: time.Duration(jitUS) * us, Lost: lost, Received: recv}
	}
	tests := []struct {
		name string
		m    Metrics
		want bool
	}{
		{"first window", win(1000, 2000, 100, 0, 100), true},
		{"9% move", win(1090, 2000, 100, 0, 100), false},
		{"11% move", win(1111, 2000, 100, 0, 100), true},
		{"small value: 40 µs is under 50 µs", win(1111, 2000, 140, 0, 100), false},
		{"small value: 60 µs is over 50 µs", win(1111, 2000, 160, 0, 100), true},
		{"p99 moved", win(1111, 2300, 160, 0, 100), true},
		{"loss 0.05 % is damped", win(1111, 2300, 160, 1, 1999), false},
		{"loss 1 %", win(1111, 2300, 160, 1, 99), true},
		{"same again", win(1111, 2300, 160, 1, 99), false},
	}
	for _, tc := range tests {
		_, got := n.Window(now, tc.m)
		if got != tc.want {
			t.Fatalf("%s: announced %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAccumulator(t *testing.T) {
	var a accumulator
	a.reset(time.Time{})
	// Stateful reflector: sender 0..9; request 3 lost forward (reflector
	// seq does not advance), reply 6 lost backward (it does).
	refl := map[uint32]uint32{0: 0, 1: 1, 2: 2, 4: 3, 5: 4, 7: 6, 8: 7, 9: 8}
	rtt := map[uint32]int{0: 100, 1: 110, 2: 100, 4: 130, 5: 100, 7: 100, 8: 100, 9: 100}
	for s := uint32(0); s < 10; s++ {
		a.sent()
		r, ok := refl[s]
		a.add(&Sample{Seq: s, Lost: !ok, ReflectorSeq: r, RTT: time.Duration(rtt[s]) * us}, true)
	}
	m := a.metrics(time.Time{}, true)
	if m.Sent != 10 || m.Received != 8 || m.Lost != 2 || m.LostForward != 1 || m.LostBackward != 1 {
		t.Fatalf("counts %+v", m)
	}
	if m.RTT.Min != 100*us || m.RTT.Max != 130*us || m.RTT.Avg != 105*us {
		t.Fatalf("rtt %+v", m.RTT)
	}
	// IPDV over consecutive pairs (0,1) (1,2) (4,5) (7,8) (8,9): 10,10,30,0,0.
	if m.Jitter != 10*us {
		t.Fatalf("jitter %v, want 10µs", m.Jitter)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * us)
	}
	s := h.stats()
	for _, c := range []struct {
		got, want time.Duration
	}{{s.P50, 500 * us}, {s.P90, 900 * us}, {s.P99, 990 * us}} {
		if d := float64(c.got-c.want) / float64(c.want); d > 0.035 || d < -0.035 {
			t.Fatalf("quantile %v, want %v ±3.5%%", c.got, c.want)
		}
	}
	if s.Min != us || s.Max != 1000*us || s.Count != 1000 {
		t.Fatalf("stats %+v", s)
	}
	for _, v := range []time.Duration{0, 1, 31, 32, 33, 1<<36 - 1, 1 << 36, 1 << 40, 1<<63 - 1} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("index %d of %d out of range", i, v)
		}
	}
}

func TestAccumulatorSequenceWrap(t *testing.T) {
	var a accumulator
	a.reset(time.Time{})
	// Across 2^32: sender 0xfffffffe..1 with one forward loss at 0xffffffff.
	for _, s := range []struct{ seq, refl uint32 }{{0xfffffffe, 10}, {0, 11}, {1, 12}} {
		a.add(&Sample{Seq: s.seq, ReflectorSeq: s.refl, RTT: 100 * us}, true)
	}
	m := a.metrics(time.Time{}, true)
	if m.LostForward != 1 || m.LostBackward != 0 || a.lastSeq != 1 {
		t.Fatalf("forward %d backward %d last %d", m.LostForward, m.LostBackward, a.lastSeq)
	}
}

func TestFakeSender(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var script []Sample
	for i := 0; i < 30; i++ {
		s := Sample{Seq: uint32(i), Sent: t0.Add(time.Duration(i) * 100 * time.Millisecond), RTT: 200 * us}
		if i >= 20 && i < 25 { // an outage in the third second
			s = Sample{Seq: uint32(i), Sent: s.Sent, Lost: true}
		}
		script = append(script, s)
	}
	var windows []Metrics
	var kinds []EventKind
	f, err := NewFakeSender(SenderConfig{Name: "fake", Dst: netip.MustParseAddrPort("[2001:db8::1]:862"), Window: time.Second,
		Notify: NotifyConfig{DownAfter: 3}, Clock: FixedClock{},
		OnWindow: func(m Metrics) { windows = append(windows, m) },
		OnEvent:  func(e Event) { kinds = append(kinds, e.Kind) }}, zap.NewNop(), script)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := f.Metrics(); m.Sent != 30 || m.Received != 25 || m.Lost != 5 {
		t.Fatalf("metrics %+v", m)
	}
	if len(windows) != 3 || windows[2].Lost != 5 || windows[0].Lost != 0 || windows[0].Sent != 10 {
		t.Fatalf("windows %+v", windows)
	}
	want := []EventKind{EventUp, EventDown, EventUp}
	var got []EventKind
	for _, k := range kinds {
		if k != EventMetrics {
			got = append(got, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || f.State() != StateUp {
		t.Fatalf("events %v state %v, want %v up", got, f.State(), want)
	}
}
