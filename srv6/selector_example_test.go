package srv6_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

func ExampleSelector() {
	a := netip.MustParseAddr
	p := srv6.Policy{
		Name: "to-hq", Color: 100, Endpoint: a("2001:db8:2::1"),
		Constituents: []srv6.Constituent{
			{Color: 10, Name: "fibre", SegmentLists: []srv6.SegmentList{{Segments: srv6.Segments{a("2001:db8:a::1"), a("2001:db8:2::1")}, Weight: 1}}},
			{Color: 20, Name: "lte", SegmentLists: []srv6.SegmentList{{Segments: srv6.Segments{a("2001:db8:b::1"), a("2001:db8:2::1")}, Weight: 1}}},
		},
		Selectors: []srv6.RoutingSelector{{
			Name:          "voice",
			Priorities:    []srv6.PriorityEntry{{Priority: 1, Color: 10}, {Priority: 2, Color: 20}},
			Thresholds:    srv6.Thresholds{Delay: 50 * time.Millisecond, LossPercent: 1},
			Default:       20,
			WaitToRestore: 30 * time.Second,
		}},
		Services: []srv6.PolicyService{{Name: "voip", Selector: "voice"}},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := srv6.NewSelector(p, t0)
	if err != nil {
		panic(err)
	}
	measure := func(at time.Duration, color uint32, delay time.Duration) {
		evs, err := s.Observe(t0.Add(at), srv6.Measurement{
			Color: color, List: srv6.AllLists, Liveness: srv6.PathUp,
			Has: srv6.MetricDelay | srv6.MetricLoss, Delay: delay,
		})
		if err != nil {
			panic(err)
		}
		for _, e := range evs {
			fmt.Printf("%v %s %s: %s -> %s (%s)\n", e.At.Sub(t0), e.Service, e.Kind, e.From, e.To, e.Reason)
		}
	}
	measure(0, 10, 20*time.Millisecond)
	measure(0, 20, 40*time.Millisecond)
	measure(time.Second, 10, 80*time.Millisecond)
	measure(2*time.Second, 10, 20*time.Millisecond)
	next, _ := s.NextEvaluation()
	fmt.Println("re-evaluate at", next.Sub(t0))
	for _, e := range s.Evaluate(next) {
		fmt.Printf("%v %s %s: %s\n", e.At.Sub(t0), e.Service, e.Kind, e.To)
	}
	// Output:
	// 0s voip select: fallback: color 20 list 1 weight 1 (no constituent of selector "voice" meets its thresholds: color 10 (fibre): no measurement yet; color 20 (lte): no measurement yet) -> priority 1: color 10 list 1 weight 1 (priority 1 meets the thresholds)
	// 1s voip degrade: priority 1: color 10 list 1 weight 1 -> priority 2: color 20 list 1 weight 1 (priority 1 fails: color 10 (fibre): delay 80ms above 50ms)
	// re-evaluate at 32s
	// 32s voip restore: priority 1: color 10 list 1 weight 1
}
