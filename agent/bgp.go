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
	// bgpRestartDelay is the wait before a speaker that failed to start
	// (say, its listen address is not there yet) is started again.
	bgpRestartDelay = 5 * time.Second
)

// BGPFactory builds the speaker for a bgp section; the default is bgp.New.
type BGPFactory func(cfg bgp.Config, log *zap.Logger) (bgp.Service, error)

// WithBGP replaces how the agent builds its BGP speaker (tests pass a
// bgp.Fake). It is used only when the config has a bgp section.
func WithBGP(f BGPFactory) Option { return func(o *options) { o.bgp = f } }

// WithPeerPoll sets how often the BGP peers' state is read into the status.
func WithPeerPoll(d time.Duration) Option { return func(o *options) { o.peerPoll = d } }

func newSpeaker(cfg bgp.Config, log *zap.Logger) (bgp.Service, error) {
	return bgp.New(cfg, log)
}

// bgpSide is the agent's BGP speaker and what the agent last handed it. It
// belongs to Run's goroutine, except that the speaker runs on its own.
type bgpSide struct {
	factory BGPFactory
	log     *zap.Logger
	poll    time.Duration

	cfg     *bgp.Config // the running speaker's config; nil = none runs
	svc     bgp.Service
	cancel  context.CancelFunc
	done    chan struct{}
	routes  <-chan []bgp.Route // the speaker's Watch; nil without a speaker
	ticker  *time.Ticker
	learned []bgp.Route // the last set Watch delivered

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
	svc, err := b.factory(cfg, b.log)
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
	b.ticker = time.NewTicker(b.poll)
	a.setStatus(func(s *Status) {
		s.BGP = &BGPStatus{LocalAS: cfg.LocalAS, RouterID: cfg.RouterID, Peers: peerStatuses(svc.Peers(), nil, a.now())}
	})
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
			a.log.Error("bgp speaker failed; starting it again", zap.Error(err), zap.Duration("in", bgpRestartDelay))
			a.setStatus(func(s *Status) {
				if s.BGP != nil {
					s.BGP.LastError = err.Error()
				}
			})
			select {
			case <-sctx.Done():
				return
			case <-time.After(bgpRestartDelay):
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
	<-b.done
	b.ticker.Stop()
	*b = bgpSide{factory: b.factory, log: b.log, poll: b.poll}
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

// pollPeers reads the peers' session state into the status.
func (a *Agent) pollPeers() {
	if a.bgp.svc == nil {
		return
	}
	ps := a.bgp.svc.Peers()
	now := a.now()
	a.setStatus(func(s *Status) {
		if s.BGP != nil {
			s.BGP.Peers = peerStatuses(ps, s.BGP.Peers, now)
		}
	})
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
func (a *Agent) importStatus(cfg Config, d srv6.Derivation, want dataplane.Desired) {
	if a.bgp.svc == nil {
		return
	}
	_, skipped := importedEncaps(cfg, d, useVRF(a.caps), a.bgp.learned)
	installed := len(want.Encaps) - len(cfg.Remote)
	imported := len(a.bgp.learned)
	a.setStatus(func(s *Status) {
		if s.BGP != nil {
			s.BGP.Imported, s.BGP.Installed, s.BGP.Skipped = imported, installed, slices.Clone(skipped)
		}
	})
}
