package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// pathProbeInterval is the gap between two loopback probes of a path.
const pathProbeInterval = time.Second

// pathProbes measures the latency of each installed dynamic path
// (Path.{i}.ActivePathInfo, §8.4): a twamp sender in enhanced loopback mode
// follows the path's segment list from our WAN address back to it. The
// path's last SID must decapsulate (End.DX6, or End.DT6 whose table routes
// our WAN address), as the controller's segment lists ending in the remote
// service SID do; otherwise no probe returns and the latency is unknown.
// Paths with the same segment list share one probe.
type pathProbes struct {
	log        *zap.Logger
	interval   time.Duration
	newSession func(twamp.SenderConfig) (twamp.Session, error)

	mu   sync.Mutex
	ctx  context.Context // start's; nil before and after
	runs map[string]*probeRun
	want []pathProbeTarget // what follow last asked for
	wg   sync.WaitGroup
}

type pathProbeTarget struct {
	segs  []netip.Addr
	src   netip.Addr
	outer netip.Addr // outer source: our tunnel source when the SID filter is on
}

// probeRun is one loopback session and what it last measured.
type probeRun struct {
	src, outer netip.Addr
	cancel     context.CancelFunc

	mu      sync.Mutex
	rtt     time.Duration
	replyAt time.Time // when the probe of rtt was sent
	err     error     // why the session is not running, if it is not
}

// WithPathProbes replaces the twamp sender that measures the dynamic
// paths (tests: no raw socket, no packets).
func WithPathProbes(f func(twamp.SenderConfig) (twamp.Session, error)) Option {
	return func(o *options) { o.pathProbes = f }
}

// newPathProbes measures with newSession, or real twamp senders when nil.
func newPathProbes(log *zap.Logger, newSession func(twamp.SenderConfig) (twamp.Session, error)) *pathProbes {
	if newSession == nil {
		newSession = func(c twamp.SenderConfig) (twamp.Session, error) { return twamp.NewSender(c, log) }
	}
	return &pathProbes{log: log, interval: pathProbeInterval, runs: map[string]*probeRun{}, newSession: newSession}
}

func segKey(segs []netip.Addr) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// start runs the probes follow asks for until ctx ends; done closes once
// every session has stopped.
func (p *pathProbes) start(ctx context.Context) <-chan struct{} {
	p.mu.Lock()
	p.ctx = ctx
	p.reconcileLocked()
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		p.ctx = nil
		clear(p.runs)
		p.mu.Unlock()
		p.wg.Wait()
		close(done)
	}()
	return done
}

// follow probes the segment lists of the installed BSIDs from src (our WAN
// address): new lists get a session, gone ones lose theirs.
// outer is the source the probes' outer header carries: the tunnel source
// of our encap traffic when the SID filter is on (a far CPE with its filter
// admits only peer locators), else invalid (the probe's own source).
func (p *pathProbes) follow(bsids []dataplane.LocalSID, src, outer netip.Addr) {
	var want []pathProbeTarget
	for _, b := range bsids {
		if b.Behavior == srv6.EndB6Encaps && len(b.Segments) > 0 {
			want = append(want, pathProbeTarget{segs: b.Segments, src: src, outer: outer})
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want = want
	p.reconcileLocked()
}

func (p *pathProbes) reconcileLocked() {
	if p.ctx == nil {
		return
	}
	keep := map[string]bool{}
	for _, t := range p.want {
		k := segKey(t.segs)
		keep[k] = true
		if r, ok := p.runs[k]; ok && r.src == t.src && r.outer == t.outer {
			continue
		} else if ok {
			r.cancel()
		}
		p.runs[k] = p.startRun(t)
	}
	for k, r := range p.runs {
		if !keep[k] {
			r.cancel()
			delete(p.runs, k)
		}
	}
}

func (p *pathProbes) startRun(t pathProbeTarget) *probeRun {
	ctx, cancel := context.WithCancel(p.ctx)
	r := &probeRun{src: t.src, outer: t.outer, cancel: cancel}
	name := "path " + strings.TrimSpace(segKey(t.segs))
	cfg := twamp.SenderConfig{Name: name, Loopback: true, Src: t.src, OuterSrc: t.outer, Segments: t.segs, Interval: p.interval,
		Timeout: 2 * p.interval,
		OnSample: func(s twamp.Sample) {
			if s.Lost {
				return
			}
			r.mu.Lock()
			back := r.replyAt.IsZero() || s.Sent.Sub(r.replyAt) > 5*p.interval
			if s.Sent.After(r.replyAt) {
				r.rtt, r.replyAt = s.RTT, s.Sent
			}
			r.mu.Unlock()
			if back {
				p.log.Info("dynamic path answers its latency probe", zap.String("session", name), zap.String("active_path_info", latencyText(s.RTT)))
			} else {
				p.log.Debug("dynamic path latency", zap.String("session", name), zap.String("active_path_info", latencyText(s.RTT)))
			}
		}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ctx.Err() == nil {
			sess, err := p.newSession(cfg)
			if err == nil {
				r.setErr(nil)
				err = sess.Run(ctx)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = fmt.Errorf("probe session %q ended", name)
			}
			r.setErr(err)
			p.log.Warn("path latency probe stopped; restarting", zap.String("session", name), zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(sessionRestartWait):
			}
		}
	}()
	return r
}

func (r *probeRun) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// latency is the ActivePathInfo suffix for segs: "latency <ms> ms" with the
// round trip of the latest probe answered within the last few intervals
// (milliseconds, three decimals), else "latency unknown: <reason>".
func (p *pathProbes) latency(segs []netip.Addr) string {
	p.mu.Lock()
	r, ok := p.runs[segKey(segs)]
	running := p.ctx != nil
	p.mu.Unlock()
	switch {
	case !running:
		return "latency unknown: the agent is not running"
	case !ok:
		return "latency unknown: the path is not installed"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err != nil:
		return "latency unknown: " + r.err.Error()
	case r.replyAt.IsZero():
		return "latency unknown: no probe answered yet"
	case time.Since(r.replyAt) > 5*p.interval:
		return fmt.Sprintf("latency unknown: no probe answered since %s", r.replyAt.UTC().Format(time.RFC3339))
	}
	return latencyText(r.rtt)
}

// latencyText is how ActivePathInfo shows a round trip: milliseconds with
// three decimals ("latency 0.412 ms").
func latencyText(rtt time.Duration) string {
	return fmt.Sprintf("latency %.3f ms", float64(rtt)/float64(time.Millisecond))
}
