package agent

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// Timings of the BGP side of the agent.
const (
	// DefaultPeerPoll is how often the peers' session state is read into
	// the status.
	DefaultPeerPoll = time.Second
	// DefaultBGPSettle and DefaultBGPSettleMax: after the speaker starts,
	// the encap routes already in the kernel (from before a restart) stay
	// until every neighbour has been up for DefaultBGPSettle, so the table
	// can arrive again, or until DefaultBGPSettleMax has passed.
	DefaultBGPSettle    = 3 * time.Second
	DefaultBGPSettleMax = 60 * time.Second
	// bgpRestartDelay is the wait before a speaker that failed to start
	// (say, its listen address is not there yet) is started again.
	bgpRestartDelay = 5 * time.Second
	// bgpStopTimeout bounds the wait for a stopping speaker.
	bgpStopTimeout = 10 * time.Second
)

// BGPFactory builds the speaker for a bgp section; the default is bgp.New.
type BGPFactory func(cfg bgp.Config, log *zap.Logger) (bgp.Service, error)

// WithBGP replaces how the agent builds its BGP speaker (tests pass a
// bgp.Fake). It is used only when the config has a bgp section.
func WithBGP(f BGPFactory) Option { return func(o *options) { o.bgp.factory = f } }

// WithPeerPoll sets how often the BGP peers' state is read into the status.
func WithPeerPoll(d time.Duration) Option { return func(o *options) { o.bgp.poll = d } }

// WithBGPSettle sets how long the encap routes from before a (re)start are
// kept: until every neighbour has been up for hold, at most limit.
func WithBGPSettle(hold, limit time.Duration) Option {
	return func(o *options) { o.bgp.settle, o.bgp.settleMax = hold, limit }
}

type bgpOptions struct {
	factory           BGPFactory
	poll              time.Duration
	settle, settleMax time.Duration
	restartDelay      time.Duration
}

func defaultBGPOptions() bgpOptions {
	return bgpOptions{factory: newSpeaker, poll: DefaultPeerPoll, settle: DefaultBGPSettle, settleMax: DefaultBGPSettleMax,
		restartDelay: bgpRestartDelay}
}

func (o bgpOptions) check() error {
	if o.factory == nil || o.poll <= 0 || o.settle < 0 || o.settleMax < o.settle {
		return fmt.Errorf("agent: bgp peer poll %s must be positive and settle %s..%s a range", o.poll, o.settle, o.settleMax)
	}
	return nil
}

func newSpeaker(cfg bgp.Config, log *zap.Logger) (bgp.Service, error) {
	return bgp.New(cfg, log)
}

// bgpSide is the agent's BGP speaker and what the agent last handed it. It
// belongs to Run's goroutine, except that the speaker runs on its own.
type bgpSide struct {
	opts bgpOptions
	log  *zap.Logger

	cfg     *bgp.Config // the running speaker's config; nil = none runs
	svc     bgp.Service
	cancel  context.CancelFunc
	done    chan struct{}
	routes  <-chan []bgp.Route // the speaker's Watch; nil without a speaker
	ticker  *time.Ticker
	learned []bgp.Route // the last set Watch delivered

	// stale are the encap routes the kernel held when the speaker started,
	// kept until it has settled (see DefaultBGPSettle); started is when it
	// started, upSince since when every neighbour is up.
	stale   []dataplane.EncapRoute
	started time.Time
	upSince time.Time

	exports    []bgp.Export
	exportsSet bool
	imports    []bgp.ImportPolicy
	importsSet bool
}

// pollC ticks when the peers' state should be read; nil without a speaker.
func (b *bgpSide) pollC() <-chan time.Time {
	if b.ticker == nil {
		return nil
	}
	return b.ticker.C
}

// syncBGP makes the running speaker match a.cfg.BGP: started, restarted
// with a new config (its sessions reset: GoBGP's peers are not reconfigured
// in place), or stopped, and hands it the import policies.
func (a *Agent) syncBGP(ctx context.Context) error {
	b := &a.bgp
	if !reflect.DeepEqual(b.cfg, a.cfg.BGP) {
		if b.svc != nil {
			a.log.Info("bgp config changed: restarting the speaker")
			a.stopBGP()
		}
		if a.cfg.BGP != nil {
			if err := a.startBGP(ctx, *a.cfg.BGP); err != nil {
				return err
			}
		}
	}
	if b.svc == nil {
		return nil
	}
	imports := importsFor(a.cfg)
	if b.importsSet && reflect.DeepEqual(imports, b.imports) {
		return nil
	}
	if err := b.svc.SetImports(imports); err != nil {
		return fmt.Errorf("bgp imports: %w", err) // Validate checked the RTs
	}
	b.imports, b.importsSet = imports, true
	return nil
}

func (a *Agent) startBGP(ctx context.Context, cfg bgp.Config) error {
	b := &a.bgp
	svc, err := b.opts.factory(cfg, b.log)
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	c := cfg
	// Not cancelled with ctx: a stopping speaker hands out an empty route
	// set, which must not reach the dataplane while the agent shuts down
	// (routes stay in the kernel). stopBGP, after the loop, stops it.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cfg, b.svc, b.cancel, b.done = &c, svc, cancel, make(chan struct{})
	b.routes = svc.Watch(sctx)
	b.ticker = time.NewTicker(b.opts.poll)
	b.started, b.upSince = time.Now(), time.Time{}
	b.stale = a.installedLearned(ctx)
	a.setStatus(func(s *Status) {
		s.BGP = &BGPStatus{LocalAS: cfg.LocalAS, RouterID: cfg.RouterID, Peers: peerStatuses(svc.Peers(), nil, a.now())}
	})
	delay := b.opts.restartDelay
	go func(done chan struct{}) {
		defer close(done)
		for {
			err := svc.Run(sctx)
			if sctx.Err() != nil {
				return
			}
			if err == nil {
				err = fmt.Errorf("bgp speaker stopped by itself")
			}
			a.log.Error("bgp speaker failed; starting it again", zap.Error(err), zap.Duration("in", delay))
			a.setStatus(func(s *Status) {
				if s.BGP != nil {
					s.BGP.SpeakerError = err.Error()
				}
			})
			select {
			case <-sctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}(b.done)
	return nil
}

// stopBGP stops the speaker (its sessions get a Cease) and forgets what it
// learned and was given.
func (a *Agent) stopBGP() {
	b := &a.bgp
	if b.svc == nil {
		return
	}
	b.cancel()
	select {
	case <-b.done:
	case <-time.After(bgpStopTimeout):
		// GoBGP should stop at once; if not, do not hold the agent up.
		a.log.Warn("bgp speaker did not stop in time; going on without it", zap.Duration("waited", bgpStopTimeout))
	}
	b.ticker.Stop()
	*b = bgpSide{opts: b.opts, log: b.log}
	a.setStatus(func(s *Status) { s.BGP = nil })
}

// onRoutes takes a route set from the speaker's Watch; it reports whether
// the dataplane must be recomputed.
func (a *Agent) onRoutes(routes []bgp.Route, ok bool) bool {
	b := &a.bgp
	if !ok {
		b.routes = nil // the speaker is stopping
		return false
	}
	b.learned = routes
	a.log.Debug("bgp routes", zap.Int("imported", len(routes)))
	return true
}

// pollPeers reads the peers' session state into the status. It reports
// whether the dataplane must be recomputed: the speaker has settled and the
// routes kept from before its start go.
func (a *Agent) pollPeers() bool {
	b := &a.bgp
	if b.svc == nil {
		return false
	}
	ps := b.svc.Peers()
	now := a.now()
	running := slices.ContainsFunc(ps, func(p bgp.PeerState) bool { return p.State != bgp.StateIdle })
	a.setStatus(func(s *Status) {
		if s.BGP != nil {
			s.BGP.Peers = peerStatuses(ps, s.BGP.Peers, now)
			if running {
				s.BGP.SpeakerError = "" // a restart after it worked
			}
		}
	})
	if b.stale == nil {
		return false
	}
	up := true
	for _, p := range ps {
		up = up && p.State == bgp.StateEstablished
	}
	switch {
	case !up:
		b.upSince = time.Time{}
	case b.upSince.IsZero():
		b.upSince = time.Now()
	}
	settled := up && time.Since(b.upSince) >= b.opts.settle
	if !settled && time.Since(b.started) < b.opts.settleMax {
		return false
	}
	a.log.Info("bgp settled: encap routes from before the start now follow BGP alone",
		zap.Int("kept_until_now", len(b.stale)), zap.Bool("all_neighbours_up", up))
	b.stale = nil
	return true
}

// installedLearned reads the encap routes the kernel holds that the config
// does not make (learned by an earlier run or an earlier speaker), to keep
// them while the speaker learns the table again. nil if there are none or
// the dataplane cannot tell.
func (a *Agent) installedLearned(ctx context.Context) []dataplane.EncapRoute {
	r, ok := a.dp.(interface {
		Installed(context.Context) (dataplane.Desired, error)
	})
	if !ok {
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, a.applyTimeout)
	defer cancel()
	inst, err := r.Installed(ictx)
	if err != nil {
		a.log.Warn("cannot read the installed encap routes; learned routes are re-learned from scratch", zap.Error(err))
		return nil
	}
	static := staticEncapKeys(a.cfg, useVRF(a.caps))
	var out []dataplane.EncapRoute
	for _, e := range inst.Encaps {
		if !static[encapKey{e.Table, e.Prefix}] {
			out = append(out, e)
		}
	}
	if len(out) > 0 {
		a.log.Info("keeping the installed encap routes until BGP has settled", zap.Int("routes", len(out)))
	}
	return out
}

// withStale adds the routes kept from before the speaker's start to the
// desired encap routes, where nothing else routes their prefix.
func (a *Agent) withStale(encaps []dataplane.EncapRoute) []dataplane.EncapRoute {
	if len(a.bgp.stale) == 0 {
		return encaps
	}
	have := make(map[encapKey]bool, len(encaps))
	for _, e := range encaps {
		have[encapKey{e.Table, e.Prefix}] = true
	}
	// A kept route is signed with today's key: the key it carried in the
	// kernel may be gone from the config, and the state would be refused.
	var key uint32
	if h := a.cfg.SRv6.HMAC; h != nil {
		key = h.KeyID
	}
	for _, e := range a.bgp.stale {
		if !have[encapKey{e.Table, e.Prefix}] {
			e.HMACKeyID = key
			encaps = append(encaps, e)
		}
	}
	return encaps
}

// peerStatuses converts the speaker's peer states. The time a session came
// up is computed from its uptime and kept from the previous status while it
// stays up, so that status.json only changes when something did.
func peerStatuses(ps []bgp.PeerState, prev []BGPPeerStatus, now time.Time) []BGPPeerStatus {
	out := make([]BGPPeerStatus, len(ps))
	for i, p := range ps {
		st := BGPPeerStatus{Address: p.Address, State: string(p.State), PrefixesReceived: p.PrefixesReceived, PrefixesSent: p.PrefixesSent}
		if p.State == bgp.StateEstablished {
			st.EstablishedAt = now.Add(-p.Uptime).Truncate(time.Second)
			for _, o := range prev {
				if o.Address == p.Address && !o.EstablishedAt.IsZero() {
					if d := st.EstablishedAt.Sub(o.EstablishedAt); d > -2*time.Second && d < 2*time.Second {
						st.EstablishedAt = o.EstablishedAt
					}
				}
			}
		}
		out[i] = st
	}
	return out
}

// exportBGP advertises the services' LAN prefixes with the SIDs just
// installed (want is what Apply put in the kernel), or withdraws them all
// when d is nil. The speaker is only told about a change.
func (a *Agent) exportBGP(d *srv6.Derivation, want dataplane.Desired, wanAddr netip.Addr) {
	b := &a.bgp
	if b.svc == nil {
		return
	}
	var exports []bgp.Export
	var problem string
	if d != nil {
		nh := a.nextHop(wanAddr)
		exports = exportsFor(a.cfg, *d, want, nh)
		if len(exports) > 0 && !nh.IsValid() {
			exports, problem = nil, "no WAN IPv6 address to advertise as next hop (the prefix source gave none, and no neighbour has an IPv6 source_address): nothing exported"
		}
	}
	if b.exportsSet && reflect.DeepEqual(exports, b.exports) {
		return
	}
	err := b.svc.SetExports(exports)
	if err != nil {
		problem = err.Error()
		a.log.Error("bgp export failed; retried at the next resync", zap.Error(err))
		b.exportsSet = false
	} else {
		b.exports, b.exportsSet = exports, true
		n := 0
		for _, e := range exports {
			n += len(e.Prefixes)
		}
		fields := []zap.Field{zap.Int("prefixes", n)}
		for _, e := range exports {
			fields = append(fields, zap.String(e.Instance, fmt.Sprintf("%s %s RD %s", e.SID, e.Behavior, e.RD)))
		}
		a.log.Info("bgp exports", fields...)
	}
	if problem != "" {
		a.log.Warn("bgp export problem", zap.String("problem", problem))
	}
	a.setStatus(func(s *Status) {
		if s.BGP == nil {
			return
		}
		s.BGP.Exported = 0
		for _, e := range b.exports {
			s.BGP.Exported += len(e.Prefixes)
		}
		s.BGP.LastError = problem
	})
}

// nextHop is the address routes are advertised with: the CPE's WAN address,
// else the first IPv6 source address of a neighbour.
func (a *Agent) nextHop(wanAddr netip.Addr) netip.Addr {
	if wanAddr.Is6() && !wanAddr.Is4In6() {
		return wanAddr
	}
	if a.cfg.BGP != nil {
		for _, n := range a.cfg.BGP.Neighbors {
			if s, err := netip.ParseAddr(n.SourceAddress); err == nil && s.Is6() && !s.Is4In6() {
				return s
			}
		}
	}
	return netip.Addr{}
}

// importStatus records what became of the learned routes.
func (a *Agent) importStatus(cfg Config, want dataplane.Desired, skipped []string) {
	if a.bgp.svc == nil {
		return
	}
	installed := len(want.Encaps) - len(cfg.Remote)
	imported := len(a.bgp.learned)
	a.setStatus(func(s *Status) {
		if s.BGP != nil {
			s.BGP.Imported, s.BGP.Installed, s.BGP.Skipped = imported, installed, slices.Clone(skipped)
		}
	})
}
