package agent

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// fakeProbeRTT is the round trip every fake path probe reports.
const fakeProbeRTT = 1500 * time.Microsecond

// fakeProbe answers one probe at once, then waits for the end: the agent
// tests send no packets.
type fakeProbe struct{ cfg twamp.SenderConfig }

func fakePathProbe(c twamp.SenderConfig) (twamp.Session, error) { return &fakeProbe{cfg: c}, nil }

func (f *fakeProbe) Run(ctx context.Context) error {
	f.cfg.OnSample(twamp.Sample{Seq: 0, Sent: time.Now(), RTT: fakeProbeRTT})
	<-ctx.Done()
	return nil
}
func (f *fakeProbe) Metrics() twamp.Metrics    { return twamp.Metrics{} }
func (f *fakeProbe) State() twamp.SessionState { return twamp.StateInit }

// failingProbe cannot open its socket, like a sender without CAP_NET_RAW.
type failingProbe struct{}

func (failingProbe) Run(context.Context) error { return errNoRaw }
func (failingProbe) Metrics() twamp.Metrics    { return twamp.Metrics{} }
func (failingProbe) State() twamp.SessionState { return twamp.StateInit }

var errNoRaw = errors.New("raw socket: operation not permitted")

func TestPathProbes(t *testing.T) {
	segsA := []netip.Addr{a("2001:db8:99::1"), a("2001:db8:2205:6::")}
	segsB := []netip.Addr{a("2001:db8:98::1"), a("2001:db8:2205:6::")}
	src := a("2001:db8:1200::1")
	var mu sync.Mutex
	var started []twamp.SenderConfig
	fail := false
	p := newPathProbes(zaptest.NewLogger(t), func(c twamp.SenderConfig) (twamp.Session, error) {
		mu.Lock()
		defer mu.Unlock()
		started = append(started, c)
		if fail {
			return failingProbe{}, nil
		}
		return fakePathProbe(c)
	})
	if got := p.latency(segsA); got != "latency unknown: the agent is not running" {
		t.Errorf("before start: %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := p.start(ctx)
	bsid := func(segs []netip.Addr) dataplane.LocalSID {
		return dataplane.LocalSID{SID: a("2001:db8:1205:b5::"), Behavior: srv6.EndB6Encaps, Segments: segs}
	}
	waitLatency := func(segs []netip.Addr, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for p.latency(segs) != want {
			if time.Now().After(deadline) {
				t.Fatalf("latency %q, want %q", p.latency(segs), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	tunsrc := a("2001:db8:1205:ffff:ffff:ffff:ffff:ffff")
	p.follow([]dataplane.LocalSID{bsid(segsA)}, src, tunsrc)
	waitLatency(segsA, "latency 1.500 ms")
	if got := p.latency(segsB); got != "latency unknown: the path is not installed" {
		t.Errorf("unprobed path: %q", got)
	}
	mu.Lock()
	c := started[0]
	mu.Unlock()
	if !c.Loopback || c.Src != src || c.OuterSrc != tunsrc || len(c.Segments) != 2 || c.Segments[1] != segsA[1] || c.Interval != time.Second {
		t.Errorf("sender config %+v, want loopback from %s (outer %s) along %v every 1s", c, src, tunsrc, segsA)
	}
	// Same list again: the running probe stays; a new list replaces it.
	p.follow([]dataplane.LocalSID{bsid(segsA)}, src, tunsrc)
	mu.Lock()
	fail = true
	mu.Unlock()
	p.follow([]dataplane.LocalSID{bsid(segsB)}, src, netip.Addr{})
	waitLatency(segsB, "latency unknown: raw socket: operation not permitted")
	waitLatency(segsA, "latency unknown: the path is not installed")
	mu.Lock()
	if len(started) != 2 {
		t.Errorf("%d sessions started, want 2 (one per segment list)", len(started))
	}
	mu.Unlock()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("probes did not stop within 5s")
	}
}
