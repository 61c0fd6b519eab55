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

// loopbackProbes runs one twamp sender per target, each in enhanced
// loopback mode over its segment list (draft-gandhi-spring-enhanced-srpm):
// the probe follows the list from our address, the list's last SID
// decapsulates it and the inner header brings it back to us. A target's
// key names everything that needs a new session when it changes; a target
// whose key is already running keeps its session (and the callbacks it
// was started with). A session that fails is restarted after
// sessionRestartWait. The dynamic paths' latency (pathProbes) and the SRv6
// policies' constituent lists (policySide) each run one set.
type loopbackProbes struct {
	log        *zap.Logger
	newSession func(twamp.SenderConfig) (twamp.Session, error)

	mu   sync.Mutex
	ctx  context.Context // start's; nil before and after
	runs map[string]*probeRun
	want []probeTarget // what set last asked for
	wg   sync.WaitGroup
}

// probeTarget is one session: its key and its complete sender config.
type probeTarget struct {
	key string
	cfg twamp.SenderConfig
}

// probeRun is one running session.
type probeRun struct {
	cancel context.CancelFunc

	mu  sync.Mutex
	err error // why the session is not running, if it is not
}

// WithPathProbes replaces the twamp sender of every loopback probe the
// agent runs: the dynamic paths' and the SRv6 policies' constituent lists
// (tests: no raw socket, no packets).
func WithPathProbes(f func(twamp.SenderConfig) (twamp.Session, error)) Option {
	return func(o *options) { o.pathProbes = f }
}

// newLoopbackProbes measures with newSession, or real twamp senders when nil.
func newLoopbackProbes(log *zap.Logger, newSession func(twamp.SenderConfig) (twamp.Session, error)) *loopbackProbes {
	if newSession == nil {
		newSession = func(c twamp.SenderConfig) (twamp.Session, error) { return twamp.NewSender(c, log) }
	}
	return &loopbackProbes{log: log, runs: map[string]*probeRun{}, newSession: newSession}
}

func segKey(segs []netip.Addr) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// start runs the sessions set asks for until ctx ends; done closes once
// every session has stopped.
func (p *loopbackProbes) start(ctx context.Context) <-chan struct{} {
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

// set makes want the running sessions: new keys get a session, gone ones
// lose theirs.
func (p *loopbackProbes) set(want []probeTarget) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want = want
	p.reconcileLocked()
}

func (p *loopbackProbes) reconcileLocked() {
	if p.ctx == nil {
		return
	}
	keep := make(map[string]bool, len(p.want))
	for _, t := range p.want {
		keep[t.key] = true
		if _, ok := p.runs[t.key]; !ok {
			p.runs[t.key] = p.startRun(t)
		}
	}
	for k, r := range p.runs {
		if !keep[k] {
			r.cancel()
			delete(p.runs, k)
		}
	}
}

func (p *loopbackProbes) startRun(t probeTarget) *probeRun {
	ctx, cancel := context.WithCancel(p.ctx)
	r := &probeRun{cancel: cancel}
	cfg := t.cfg
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
				err = fmt.Errorf("probe session %q ended", cfg.Name)
			}
			r.setErr(err)
			p.log.Warn("loopback probe stopped; restarting", zap.String("session", cfg.Name), zap.Error(err), zap.Duration("retry_in", sessionRestartWait))
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

// state says whether the set runs (start was called and ctx lives),
// whether key has a session, and why that session is not running.
func (p *loopbackProbes) state(key string) (running, installed bool, err error) {
	p.mu.Lock()
	r, ok := p.runs[key]
	running = p.ctx != nil
	p.mu.Unlock()
	if !ok {
		return running, false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return running, true, r.err
}

// pathProbes measures the latency of each installed dynamic path
// (Path.{i}.ActivePathInfo, §8.4): a loopback session follows the path's
// segment list from our WAN address back to it. The path's last SID must
// decapsulate (End.DX6, or End.DT6 whose table routes our WAN address), as
// the controller's segment lists ending in the remote service SID do;
// otherwise no probe returns and the latency is unknown. Paths with the
// same segment list share one probe.
type pathProbes struct {
	*loopbackProbes
	interval time.Duration

	mu    sync.Mutex
	stats map[string]*pathLatency // by probe key
}

// pathLatency is what a path's probe last measured.
type pathLatency struct {
	mu      sync.Mutex
	rtt     time.Duration
	replyAt time.Time // when the probe of rtt was sent
}

// newPathProbes measures with newSession, or real twamp senders when nil.
func newPathProbes(log *zap.Logger, newSession func(twamp.SenderConfig) (twamp.Session, error)) *pathProbes {
	return &pathProbes{loopbackProbes: newLoopbackProbes(log, newSession), interval: pathProbeInterval, stats: map[string]*pathLatency{}}
}

// pathProbeKey names a path's session: the list and both sources.
func pathProbeKey(segs []netip.Addr, src, outer netip.Addr) string {
	return segKey(segs) + "from " + src.String() + " outer " + outer.String()
}

// follow probes the segment lists of the installed BSIDs from src (our WAN
// address): new lists get a session, gone ones lose theirs.
// outer is the source the probes' outer header carries: the tunnel source
// of our encap traffic when the SID filter is on (a far CPE with its filter
// admits only peer locators), else invalid (the probe's own source).
func (p *pathProbes) follow(bsids []dataplane.LocalSID, src, outer netip.Addr) {
	p.mu.Lock()
	stats := make(map[string]*pathLatency, len(bsids))
	var want []probeTarget
	for _, b := range bsids {
		if b.Behavior != srv6.EndB6Encaps || len(b.Segments) == 0 {
			continue
		}
		key := pathProbeKey(b.Segments, src, outer)
		if _, dup := stats[key]; dup {
			continue
		}
		st := p.stats[key]
		if st == nil {
			st = &pathLatency{}
		}
		stats[key] = st
		want = append(want, probeTarget{key: key, cfg: p.senderConfig(b.Segments, src, outer, st)})
	}
	p.stats = stats
	p.mu.Unlock()
	p.set(want)
}

func (p *pathProbes) senderConfig(segs []netip.Addr, src, outer netip.Addr, st *pathLatency) twamp.SenderConfig {
	name := "path " + strings.TrimSpace(segKey(segs))
	return twamp.SenderConfig{Name: name, Loopback: true, Src: src, OuterSrc: outer, Segments: segs, Interval: p.interval,
		Timeout: 2 * p.interval,
		OnSample: func(s twamp.Sample) {
			if s.Lost {
				return
			}
			st.mu.Lock()
			back := st.replyAt.IsZero() || s.Sent.Sub(st.replyAt) > 5*p.interval
			if s.Sent.After(st.replyAt) {
				st.rtt, st.replyAt = s.RTT, s.Sent
			}
			st.mu.Unlock()
			if back {
				p.log.Info("dynamic path answers its latency probe", zap.String("session", name), zap.String("active_path_info", latencyText(s.RTT)))
			} else {
				p.log.Debug("dynamic path latency", zap.String("session", name), zap.String("active_path_info", latencyText(s.RTT)))
			}
		}}
}

// latency is the ActivePathInfo suffix for segs: "latency <ms> ms" with the
// round trip of the latest probe answered within the last few intervals
// (milliseconds, three decimals), else "latency unknown: <reason>".
func (p *pathProbes) latency(segs []netip.Addr) string {
	p.mu.Lock()
	var key string
	var st *pathLatency
	prefix := segKey(segs) + "from "
	for k, s := range p.stats {
		if strings.HasPrefix(k, prefix) {
			key, st = k, s
			break
		}
	}
	p.mu.Unlock()
	running, installed, err := p.state(key)
	switch {
	case !running:
		return "latency unknown: the agent is not running"
	case st == nil || !installed:
		return "latency unknown: the path is not installed"
	case err != nil:
		return "latency unknown: " + err.Error()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.replyAt.IsZero():
		return "latency unknown: no probe answered yet"
	case time.Since(st.replyAt) > 5*p.interval:
		return fmt.Sprintf("latency unknown: no probe answered since %s", st.replyAt.UTC().Format(time.RFC3339))
	}
	return latencyText(st.rtt)
}

// latencyText is how ActivePathInfo shows a round trip: milliseconds with
// three decimals ("latency 0.412 ms").
func latencyText(rtt time.Duration) string {
	return fmt.Sprintf("latency %.3f ms", float64(rtt)/float64(time.Millisecond))
}
