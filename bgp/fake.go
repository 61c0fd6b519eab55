package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// Service is what the agent uses of a BGP speaker. *Speaker is the real one,
// *Fake the one for tests without sessions.
type Service interface {
	Run(ctx context.Context) error
	SetExports(exports []Export) error
	SetImports(imports []ImportPolicy) error
	Routes() []Route
	Watch(ctx context.Context) <-chan []Route
	Peers() []PeerState
}

var (
	_ Service = (*Speaker)(nil)
	_ Service = (*Fake)(nil)
)

// RemoteRoute is a route as a peer would advertise it, for Fake.
type RemoteRoute struct {
	RD       string
	RTs      []string
	Prefix   netip.Prefix
	SID      netip.Addr
	Behavior srv6.Behavior // 0xFFFF is resolved by family, as from FRR
	NextHop  netip.Addr
}

// Fake is a Service without BGP: tests set the routes "learned from peers"
// and read back what the agent exports. Export validation, import filtering
// by RT, the exclusion of our own SIDs and Watch are the Speaker's own code.
// It is safe for concurrent use.
type Fake struct {
	s *Speaker // never run

	mu      sync.Mutex
	exports []Export
	peers   []PeerState
}

// NewFake returns a Fake with no routes and no peers.
func NewFake() *Fake {
	s, err := New(Config{LocalAS: 64512, RouterID: "192.0.2.1"}, nil)
	if err != nil {
		panic(err) // a constant, valid configuration
	}
	return &Fake{s: s}
}

// Run blocks until ctx is done, like Speaker.Run.
func (f *Fake) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// SetExports validates exports like Speaker.SetExports and records them.
func (f *Fake) SetExports(exports []Export) error {
	if err := f.s.SetExports(exports); err != nil {
		return err
	}
	f.mu.Lock()
	f.exports = slices.Clone(exports)
	f.mu.Unlock()
	f.publish()
	return nil
}

// Exports returns the last exports SetExports accepted.
func (f *Fake) Exports() []Export {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.exports)
}

// SetImports is Speaker.SetImports.
func (f *Fake) SetImports(imports []ImportPolicy) error {
	if err := f.s.SetImports(imports); err != nil {
		return err
	}
	f.publish()
	return nil
}

// Routes is Speaker.Routes.
func (f *Fake) Routes() []Route { return f.s.Routes() }

// Watch is Speaker.Watch.
func (f *Fake) Watch(ctx context.Context) <-chan []Route { return f.s.Watch(ctx) }

// Peers returns what SetPeers set.
func (f *Fake) Peers() []PeerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

// SetPeers sets what Peers returns.
func (f *Fake) SetPeers(ps []PeerState) {
	f.mu.Lock()
	f.peers = slices.Clone(ps)
	f.mu.Unlock()
}

// SetRemoteRoutes replaces every route learned from peers, and watchers get
// the resulting set. A route the Speaker would ignore (an unusable
// behaviour) is an error here, naming it.
func (f *Fake) SetRemoteRoutes(routes []RemoteRoute) error {
	rib := make(map[pathKey]remoteRoute, len(routes))
	for _, r := range routes {
		rd, err := parseRD(r.RD)
		if err != nil {
			return err
		}
		rdKey, err := rdUint64(rd)
		if err != nil {
			return err
		}
		rr := remoteRoute{rd: rd.String(), prefix: r.Prefix.Masked(), sid: r.SID, nextHop: r.NextHop}
		for _, s := range r.RTs {
			c, err := parseRT(s)
			if err != nil {
				return err
			}
			v, err := extUint64(c)
			if err != nil {
				return err
			}
			rr.rts = append(rr.rts, v)
		}
		rr.behavior, err = importBehavior(r.Behavior, r.Prefix.Addr().Is4())
		if err != nil {
			return fmt.Errorf("route %s %s: %w", r.RD, r.Prefix, err)
		}
		rib[pathKey{rd: rdKey, prefix: rr.prefix}] = rr
	}
	f.s.mu.Lock()
	f.s.rib = rib
	f.s.publishLocked()
	f.s.mu.Unlock()
	return nil
}

func (f *Fake) publish() {
	f.s.mu.Lock()
	f.s.publishLocked()
	f.s.mu.Unlock()
}
