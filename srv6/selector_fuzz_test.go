package srv6

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// fuzzPolicy: selector "a" shares priority 1 between 10 (two lists) and 20,
// then 30, checks all four metrics, waits 50 ms, defaults to 40 (listed
// nowhere); "b" is non-revertive, 30 then 10, delay only, defaults to 30.
func fuzzPolicy(t testing.TB) Policy {
	p := Policy{
		Name: "f", Color: 1, Endpoint: netip.MustParseAddr("2001:db8:ffff::1"),
		Constituents: []Constituent{cons(t, 10, 2, 1), cons(t, 20, 1), cons(t, 30, 1), cons(t, 40, 3, 5)},
		Selectors: []RoutingSelector{
			{
				Name:       "a",
				Priorities: []PriorityEntry{{Priority: 1, Color: 10, Weight: 2}, {Priority: 1, Color: 20}, {Priority: 7, Color: 30}},
				Thresholds: Thresholds{Delay: 100 * time.Millisecond, Jitter: 20 * time.Millisecond, LossPercent: 5, MinBandwidth: 50e6},
				Default:    40, WaitToRestore: 50 * time.Millisecond,
			},
			{
				Name:       "b",
				Priorities: []PriorityEntry{{Priority: 1, Color: 30}, {Priority: 2, Color: 10}},
				Thresholds: Thresholds{Delay: 100 * time.Millisecond},
				Default:    30, WaitToRestore: 20 * time.Millisecond, NonRevertive: true,
			},
		},
		Services: []PolicyService{{Name: "s1", Selector: "a"}, {Name: "s2", Selector: "b"}, {Name: "s3", Selector: "a"}},
	}
	return p
}

// shadow keeps its own account of the measurements and of how long each
// list has met each selector's thresholds, written independently of the
// Selector, to check the Selector's choices against.
type shadow struct {
	p      Policy
	ps     map[pathKey]*pathState
	okFrom map[string]map[pathKey]time.Time // selector -> list -> meeting since (absent: not meeting)
	failed map[string]map[pathKey]bool
}

func (sh *shadow) meets(th Thresholds, st *pathState) bool {
	if st.down {
		return false
	}
	if th == (Thresholds{}) {
		return true
	}
	has := func(m Metric) bool { return st.has&m != 0 }
	return (th.Delay == 0 || has(MetricDelay) && st.delay <= th.Delay) &&
		(th.Jitter == 0 || has(MetricJitter) && st.jitter <= th.Jitter) &&
		(th.LossPercent == 0 || has(MetricLoss) && st.loss*100 <= th.LossPercent) &&
		(th.MinBandwidth == 0 || has(MetricBandwidth) && st.bw >= th.MinBandwidth)
}

func (sh *shadow) update(now time.Time) {
	for _, sel := range sh.p.Selectors {
		for k, st := range sh.ps {
			_, was := sh.okFrom[sel.Name][k]
			is := sh.meets(sel.Thresholds, st)
			switch {
			case is && !was && sh.failed[sel.Name][k]:
				sh.okFrom[sel.Name][k] = now
			case is && !was:
				sh.okFrom[sel.Name][k] = time.Time{}
			case !is:
				delete(sh.okFrom[sel.Name], k)
				if st.down || st.has != 0 {
					sh.failed[sel.Name][k] = true
				}
			}
		}
	}
}

func FuzzSelector(f *testing.F) {
	f.Add([]byte{0, 1, 0, 10, 10, 0, 1, 5, 2, 200, 200, 200, 2, 100, 0, 0, 0, 0, 3, 1, 1, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, 5, 5, 0, 0, 1, 5, 5, 5, 0, 0, 2, 5, 5, 5, 0, 0, 3, 5, 5, 5, 1, 3, 0, 0, 0, 0, 2, 60, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzPolicy(t)
		now := t0
		s, err := NewSelector(p, now)
		if err != nil {
			t.Fatal(err)
		}
		sh := &shadow{p: p, ps: map[pathKey]*pathState{}, okFrom: map[string]map[pathKey]time.Time{}, failed: map[string]map[pathKey]bool{}}
		var keys []pathKey
		for c, k := range p.Constituents {
			for l := range k.SegmentLists {
				sh.ps[pathKey{c, l}] = &pathState{}
				keys = append(keys, pathKey{c, l})
			}
		}
		for _, sel := range p.Selectors {
			sh.okFrom[sel.Name] = map[pathKey]time.Time{}
			sh.failed[sel.Name] = map[pathKey]bool{}
		}
		sh.update(now)
		selOf := map[string]*RoutingSelector{}
		for i := range p.Services {
			for j := range p.Selectors {
				if p.Selectors[j].Name == p.Services[i].Selector {
					selOf[p.Services[i].Name] = &p.Selectors[j]
				}
			}
		}
		colorIdx := map[uint32]int{}
		for i, c := range p.Constituents {
			colorIdx[c.Color] = i
		}

		// at most 256 operations: longer runs find nothing new and make
		// the engine's minimisation crawl
		for ops := 0; len(data) >= 6 && ops < 256; ops++ {
			op, dt, target, v1, v2, v3 := data[0], data[1], data[2], data[3], data[4], data[5]
			data = data[6:]
			now = now.Add(time.Duration(dt) * time.Millisecond)
			var evs []Event
			switch op % 4 {
			case 0, 1:
				k := keys[int(target)%len(keys)]
				m := Measurement{Color: p.Constituents[k.c].Color, List: k.l, At: now}
				if op&0x10 != 0 {
					m.List = AllLists
				}
				switch v3 % 4 {
				case 1:
					m.Liveness = PathUp
				case 2:
					m.Liveness = PathDown
				}
				m.Has = Metric(v3>>2) & (MetricDelay | MetricJitter | MetricLoss | MetricBandwidth)
				m.Delay = time.Duration(v1) * time.Millisecond
				m.Jitter = time.Duration(v2) * time.Millisecond / 4
				m.Loss = float64(v1) / 255 / 10
				m.Bandwidth = Bandwidth(v2) * 1e6
				evs, err = s.Observe(now, m)
				if err != nil {
					t.Fatalf("Observe(%+v): %v", m, err)
				}
				for _, kk := range keys {
					if kk.c != k.c || m.List != AllLists && kk.l != k.l {
						continue
					}
					sh.ps[kk].apply(m)
				}
				sh.update(now)
			case 2:
				evs = s.Evaluate(now)
			case 3:
				svc := p.Services[int(target)%len(p.Services)].Name
				evs, err = s.Restore(now, svc)
				if err != nil {
					t.Fatal(err)
				}
			}

			for _, e := range evs {
				sel := selOf[e.Service]
				if e.Kind == EventRestore {
					if sel.NonRevertive {
						t.Fatalf("automatic restore of non-revertive %s: %+v", e.Service, e)
					}
					for _, path := range e.To.Paths {
						since, ok := sh.okFrom[sel.Name][pathKey{colorIdx[path.Color], path.List}]
						if !ok || now.Sub(since) < sel.WaitToRestore {
							t.Fatalf("restore of %s onto color %d list %d before its wait ended (meeting: %v since %v)", e.Service, path.Color, path.List, ok, since)
						}
					}
				}
				if e.From.Priority != 0 && e.To.Priority != 0 && e.To.Priority < e.From.Priority && e.Kind == EventShare {
					t.Fatalf("a share change moved levels: %+v", e)
				}
			}
			if again := s.Evaluate(now); len(again) != 0 {
				t.Fatalf("a second evaluation at the same time switched again: %+v", again)
			}
			if n, ok := s.NextEvaluation(); ok && !n.After(now) {
				t.Fatalf("next evaluation %v is not after now %v", n, now)
			}

			for _, sc := range s.Choices() {
				sel, c := selOf[sc.Service], sc.Choice
				if len(c.Paths) == 0 {
					t.Fatalf("%s: no paths: %+v", sc.Service, c)
				}
				var sum uint64
				for _, path := range c.Paths {
					if path.Weight == 0 || path.Weight > MaxPathWeight {
						t.Fatalf("%s: weight %d", sc.Service, path.Weight)
					}
					sum += uint64(path.Weight)
					ci, ok := colorIdx[path.Color]
					if !ok || path.List < 0 || path.List >= len(p.Constituents[ci].SegmentLists) {
						t.Fatalf("%s: color %d list %d is not in the policy", sc.Service, path.Color, path.List)
					}
					if !slices.Equal(path.Segments, p.Constituents[ci].SegmentLists[path.List].Segments) {
						t.Fatalf("%s: segments of color %d list %d differ from the policy's", sc.Service, path.Color, path.List)
					}
					if c.Fallback {
						if path.Color != sel.Default {
							t.Fatalf("%s: fallback onto color %d, not the default %d", sc.Service, path.Color, sel.Default)
						}
						continue
					}
					if !slices.Contains(sel.Priorities, PriorityEntry{Priority: c.Priority, Color: path.Color, Weight: entryWeight(sel, path.Color)}) {
						t.Fatalf("%s: color %d is not at priority %d", sc.Service, path.Color, c.Priority)
					}
					if !sh.meets(sel.Thresholds, sh.ps[pathKey{ci, path.List}]) {
						t.Fatalf("%s: color %d list %d carries traffic but fails the thresholds (%+v)", sc.Service, path.Color, path.List, *sh.ps[pathKey{ci, path.List}])
					}
				}
				if sum == 0 {
					t.Fatalf("%s: weights sum to 0", sc.Service)
				}
				if c.Fallback {
					if c.Reason == "" {
						t.Fatalf("%s: fallback without a reason", sc.Service)
					}
					for _, e := range sel.Priorities {
						for l := range p.Constituents[colorIdx[e.Color]].SegmentLists {
							if sh.meets(sel.Thresholds, sh.ps[pathKey{colorIdx[e.Color], l}]) {
								t.Fatalf("%s: in fallback although color %d list %d meets the thresholds", sc.Service, e.Color, l)
							}
						}
					}
				}
			}
		}
	})
}

func entryWeight(sel *RoutingSelector, color uint32) uint32 {
	for _, e := range sel.Priorities {
		if e.Color == color {
			return e.Weight
		}
	}
	return 0
}
