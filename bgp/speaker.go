package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/server"
	"go.uber.org/zap"
)

// coalesce is how long the publisher lets route changes accumulate before it
// hands the full set to watchers: a burst of UPDATEs becomes one delivery.
const coalesce = 10 * time.Millisecond

// peersRefresh bounds how often Peers asks GoBGP for the peers' prefix
// counts while routes keep changing. GoBGP counts them by walking the
// adj-RIB-in and running the export policy over the whole RIB (with 10,000
// routes each way, ~11 ms and ~6 MB of garbage per call, BenchmarkPeers10k),
// and the agent polls every second. So Peers asks again only after a
// session or a route changed, and for route changes at most this often:
// the counts may lag a route change by up to peersRefresh; session states
// never lag.
const peersRefresh = 10 * time.Second

// exportChunk is how many paths one AddPath/DeletePath call carries. Each call
// holds GoBGP's server loop: in chunks, the first routes are on the wire while
// the next are added, and peer handling is not held up for a whole table.
const exportChunk = 500

// SessionState is a BGP FSM state (RFC 4271 §8.2.2).
type SessionState string

const (
	StateIdle        SessionState = "idle"
	StateConnect     SessionState = "connect"
	StateActive      SessionState = "active"
	StateOpenSent    SessionState = "opensent"
	StateOpenConfirm SessionState = "openconfirm"
	StateEstablished SessionState = "established"
)

// PeerState is a neighbour's session status.
type PeerState struct {
	Address          netip.Addr
	State            SessionState
	Uptime           time.Duration // time since the session was established; 0 if it is not
	PrefixesReceived uint64
	PrefixesSent     uint64
}

// Speaker is the CPE's BGP speaker: GoBGP driven through its BgpServer API.
// Only one Speaker should run per process: GoBGP keeps its route-selection
// options in package variables.
type Speaker struct {
	cfg Config
	log *zap.Logger

	// exportMu serialises the application of exports to the server.
	exportMu   sync.Mutex
	desired    map[pathKey]exportPath
	advertised map[pathKey]exportPath

	mu      sync.Mutex
	started bool
	srv     *server.BgpServer // nil unless running
	gen     uint64            // bumped when a run ends; stale watch callbacks compare it
	imports map[uint64][]string
	rib     map[pathKey]remoteRoute
	ownSIDs map[netip.Addr]bool
	subs    map[chan []Route]struct{}
	notify  chan struct{}
	seed    maphash.Seed
	lastSum uint64 // hash of the set last handed to watchers
	// ribVersion is bumped by every change of the best paths or of what
	// is advertised, peerVersion by every session state change; peers is
	// the last answer GoBGP gave Peers.
	ribVersion   uint64
	peerVersion  uint64
	peers        peersSnapshot
	peersRefresh time.Duration // peersRefresh; tests shorten it
}

// peersSnapshot is what Peers last read from GoBGP.
type peersSnapshot struct {
	valid                        bool
	gen, ribVersion, peerVersion uint64
	at                           time.Time
	states                       []PeerState
	up                           []time.Time // when each session came up; zero unless established
}

// New checks cfg and returns a speaker; Run starts it.
func New(cfg Config, log *zap.Logger) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bgp config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Speaker{
		cfg:        cfg,
		log:        log,
		desired:    map[pathKey]exportPath{},
		advertised: map[pathKey]exportPath{},
		imports:    map[uint64][]string{},
		rib:        map[pathKey]remoteRoute{},
		ownSIDs:    map[netip.Addr]bool{},
		subs:       map[chan []Route]struct{}{},
		notify:     make(chan struct{}, 1),
		seed:       maphash.MakeSeed(),

		peersRefresh: peersRefresh,
	}, nil
}

// Run starts GoBGP, adds the neighbours, advertises the exports set so far
// and keeps the imported routes up to date until ctx is cancelled; then it
// stops GoBGP (sessions get a Cease) and returns nil. A Speaker runs once;
// after a failed start (say, the listen address is not there yet) Run may be
// called again.
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("bgp: speaker already ran")
	}
	s.started = true
	s.mu.Unlock()

	srv := server.NewBgpServer(server.LoggerOption(newSlog(s.log.Named("gobgp")), nil))
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		srv.Serve()
	}()
	// StartBgp is served by the Serve loop, so once it returned, Stop works.
	stop := func() {
		srv.Stop()
		<-serveDone
	}

	failed := func() {
		s.mu.Lock()
		s.started = false // a failed start may be retried
		s.gen++           // and callbacks of this attempt are ignored
		clear(s.rib)
		s.mu.Unlock()
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: s.global()}); err != nil {
		stop()
		failed()
		return fmt.Errorf("bgp: start (router id %s, AS %d, port %d): %w", s.cfg.RouterID, s.cfg.LocalAS, s.cfg.ListenPort, err)
	}
	watchCtx, cancelWatch := context.WithCancel(context.Background())
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{
		OnBestPath:   func(paths []*apiutil.Path, _ time.Time) { s.onBestPath(gen, paths) },
		OnPeerUpdate: func(*apiutil.WatchEventMessage_PeerEvent, time.Time) { s.onPeerEvent() },
	}, server.WatchBestPath(true), server.WatchPeer())
	if err != nil {
		cancelWatch()
		stop()
		failed()
		return fmt.Errorf("bgp: watch best paths: %w", err)
	}
	for _, n := range s.cfg.Neighbors {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConfig(n)}); err != nil {
			cancelWatch()
			stop()
			failed()
			return fmt.Errorf("bgp: add neighbour %s: %w", n.Address, err)
		}
	}

	s.exportMu.Lock()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	if err := s.applyExportsLocked(srv); err != nil {
		s.log.Error("advertising exports", zap.Error(err))
	}
	s.exportMu.Unlock()

	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		s.publisher(ctx)
	}()
	s.log.Info("bgp speaker running", zap.Uint32("as", s.cfg.LocalAS), zap.String("router_id", s.cfg.RouterID),
		zap.Int("neighbors", len(s.cfg.Neighbors)))

	<-ctx.Done()

	s.exportMu.Lock()
	s.mu.Lock()
	s.srv = nil
	s.gen++
	s.mu.Unlock()
	clear(s.advertised) // they leave with the server
	s.exportMu.Unlock()

	cancelWatch()
	stop()
	<-pubDone

	// Without sessions no remote route is valid: say so to the watchers.
	s.mu.Lock()
	clear(s.rib)
	s.publishLocked()
	s.mu.Unlock()
	s.log.Info("bgp speaker stopped")
	return nil
}

func (s *Speaker) global() *api.Global {
	port := int32(s.cfg.ListenPort)
	if port == 0 {
		port = 179
	}
	return &api.Global{
		Asn:             s.cfg.LocalAS,
		RouterId:        s.cfg.RouterID,
		ListenPort:      port,
		ListenAddresses: s.cfg.ListenAddresses,
		// Only the VPN families: without this GoBGP builds a RIB for each
		// of its ~30 families, 2048 shards each (8 MB before any route).
		Families: []uint32{
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_L3VPN_IPV4_UNICAST]),
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_L3VPN_IPV6_UNICAST]),
		},
	}
}

func peerConfig(n Neighbor) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address,
			PeerAsn:         n.RemoteAS,
			AuthPassword:    n.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(n.connectRetry()),
			IdleHoldTimeAfterReset: uint64(n.connectRetry()),
			HoldTime:               uint64(n.holdTime()),
			KeepaliveInterval:      uint64(n.KeepaliveInterval),
		}},
		Transport: &api.Transport{
			LocalAddress: n.SourceAddress,
			PassiveMode:  n.Passive,
			RemotePort:   uint32(n.Port),
		},
	}
	for _, f := range n.families() {
		afi := api.Family_AFI_IP
		if f == VPNv6 {
			afi = api.Family_AFI_IP6
		}
		p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: afi, Safi: api.Family_SAFI_MPLS_VPN},
			Enabled: true,
		}})
	}
	return p
}

// SetExports makes the advertised routes equal to exports (level-triggered):
// new routes are advertised, changed ones (a renumbered SID, other RTs)
// replaced in place, and routes no longer wanted withdrawn. Before Run the set
// is kept and advertised when the speaker starts. A bad export rejects the
// whole call and leaves the advertised set unchanged.
func (s *Speaker) SetExports(exports []Export) error {
	desired, err := buildExports(exports)
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	own := make(map[netip.Addr]bool, len(exports))
	for _, e := range exports {
		own[e.SID] = true
	}

	s.exportMu.Lock()
	defer s.exportMu.Unlock()
	s.desired = desired
	s.mu.Lock()
	s.ownSIDs = own
	srv := s.srv
	s.mu.Unlock()
	s.kick() // routes carrying our own SIDs may come or go
	if srv == nil {
		return nil
	}
	return s.applyExportsLocked(srv)
}

// applyExportsLocked advertises the difference between s.desired and
// s.advertised. New and changed routes go first, withdrawals after, so that a
// renumbered route is replaced rather than withdrawn and re-added.
func (s *Speaker) applyExportsLocked(srv *server.BgpServer) error {
	var addKeys []pathKey
	var add []*apiutil.Path
	for k, d := range s.desired {
		if cur, ok := s.advertised[k]; !ok || cur.sig != d.sig {
			addKeys = append(addKeys, k)
			add = append(add, d.path)
		}
	}
	var delKeys []pathKey
	var del []*apiutil.Path
	for k, cur := range s.advertised {
		if _, ok := s.desired[k]; !ok {
			delKeys = append(delKeys, k)
			del = append(del, cur.path)
		}
	}
	var errs []error
	for start := 0; start < len(add); start += exportChunk {
		end := min(start+exportChunk, len(add))
		if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: add[start:end]}); err == nil {
			for _, k := range addKeys[start:end] {
				s.advertised[k] = s.desired[k]
			}
			continue
		}
		// GoBGP reports one error for the whole batch and keeps the paths
		// that were fine: find out path by path which are in.
		for i := start; i < end; i++ {
			k := addKeys[i]
			if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: add[i : i+1]}); err != nil {
				errs = append(errs, fmt.Errorf("advertise %s: %w", k.prefix, err))
				continue
			}
			s.advertised[k] = s.desired[k]
		}
	}
	for start := 0; start < len(del); start += exportChunk {
		end := min(start+exportChunk, len(del))
		if err := srv.DeletePath(apiutil.DeletePathRequest{Paths: del[start:end]}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %d routes: %w", end-start, err))
			continue
		}
		for _, k := range delKeys[start:end] {
			delete(s.advertised, k)
		}
	}
	if len(add)+len(del) > 0 {
		s.mu.Lock()
		s.ribVersion++
		s.mu.Unlock()
		s.log.Debug("bgp exports applied", zap.Int("advertised", len(add)), zap.Int("withdrawn", len(del)), zap.Int("total", len(s.advertised)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	return nil
}

// SetImports sets which instances import which route targets. A route is
// delivered once per instance that imports any of its RTs.
func (s *Speaker) SetImports(imports []ImportPolicy) error {
	m := map[uint64][]string{}
	for _, ip := range imports {
		if ip.Instance == "" {
			return errors.New("bgp: import policy with an empty instance name")
		}
		for _, rt := range ip.ImportRTs {
			c, err := parseRT(rt)
			if err != nil {
				return fmt.Errorf("bgp: import of %q: %w", ip.Instance, err)
			}
			v, err := extUint64(c)
			if err != nil {
				return fmt.Errorf("bgp: import of %q: %w", ip.Instance, err)
			}
			if !slices.Contains(m[v], ip.Instance) {
				m[v] = append(m[v], ip.Instance)
			}
		}
	}
	s.mu.Lock()
	s.imports = m
	s.mu.Unlock()
	s.kick()
	return nil
}

// onBestPath folds a best-path change into the RIB view. A path whose SRv6
// data is missing or unusable removes the destination: its previous SID, if
// any, is no longer what the peer advertises.
func (s *Speaker) onBestPath(gen uint64, paths []*apiutil.Path) {
	type change struct {
		key  pathKey
		r    remoteRoute
		keep bool
	}
	changes := make([]change, 0, len(paths))
	for _, p := range paths {
		key, r, err := decodePath(p)
		switch {
		case errors.Is(err, errNotVPN):
			continue
		case p.Withdrawal || !p.PeerAddress.IsValid():
			// Withdrawn, or our own route won the destination.
			changes = append(changes, change{key: key})
		case err != nil:
			s.log.Warn("ignoring VPN route with unusable SRv6 service data",
				zap.Stringer("peer", p.PeerAddress), zap.String("rd", r.rd), zap.Stringer("prefix", r.prefix), zap.Error(err))
			changes = append(changes, change{key: key})
		default:
			changes = append(changes, change{key: key, r: r, keep: true})
		}
	}
	if len(changes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return // a callback from a run that has ended
	}
	for _, c := range changes {
		if c.keep {
			s.rib[c.key] = c.r
		} else {
			delete(s.rib, c.key)
		}
	}
	s.ribVersion++
	s.kick()
}

// onPeerEvent notes that a session changed state: Peers asks GoBGP again.
func (s *Speaker) onPeerEvent() {
	s.mu.Lock()
	s.peerVersion++
	s.mu.Unlock()
}

func (s *Speaker) kick() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Speaker) publisher(ctx context.Context) {
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.notify:
		}
		timer.Reset(coalesce)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select { // the signal that came during the wait is covered by this publish
		case <-s.notify:
		default:
		}
		s.mu.Lock()
		s.publishLocked()
		s.mu.Unlock()
	}
}

// publishLocked hands every watcher the current set if it differs from the
// last one handed out. A watcher that has not read the previous set gets the
// new one instead (latest wins).
func (s *Speaker) publishLocked() {
	if len(s.subs) == 0 {
		return
	}
	routes := s.routesLocked()
	sum := s.sum(routes)
	if sum == s.lastSum {
		return
	}
	s.lastSum = sum
	first := true
	for ch := range s.subs {
		r := routes
		if !first {
			r = slices.Clone(routes) // each watcher owns its slice
		}
		first = false
		select {
		case <-ch:
		default:
		}
		ch <- r
	}
}

// sum hashes a route set, to skip handing watchers an unchanged one.
func (s *Speaker) sum(routes []Route) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var b [16]byte
	for _, r := range routes {
		h.WriteString(r.Instance)
		h.WriteByte(0)
		b = r.Prefix.Addr().As16()
		h.Write(b[:])
		h.WriteByte(byte(r.Prefix.Bits()))
		b = r.SID.As16()
		h.Write(b[:])
		h.WriteByte(byte(r.Behavior >> 8))
		h.WriteByte(byte(r.Behavior))
		b = r.NextHop.As16()
		h.Write(b[:])
		h.WriteString(r.RD)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// Routes returns the current imported routes, sorted by instance, prefix, RD.
func (s *Speaker) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routesLocked()
}

func (s *Speaker) routesLocked() []Route {
	out := make([]Route, 0, len(s.rib))
	if len(s.imports) == 0 {
		return out
	}
	for _, r := range s.rib {
		if s.ownSIDs[r.sid] {
			continue // our own route reflected back
		}
		start := len(out)
		for _, rt := range r.rts {
			for _, inst := range s.imports[rt] {
				if slices.ContainsFunc(out[start:], func(x Route) bool { return x.Instance == inst }) {
					continue
				}
				out = append(out, Route{Instance: inst, Prefix: r.prefix, SID: r.sid, Behavior: r.behavior, NextHop: r.nextHop, RD: r.rd})
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Instance, b.Instance), comparePrefix(a.Prefix, b.Prefix), cmp.Compare(a.RD, b.RD))
	})
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Watch returns a channel that first holds the current route set and then,
// after each change (coalesced), the full new set. A slow reader only ever
// sees the latest set. The channel is closed when ctx is done.
func (s *Speaker) Watch(ctx context.Context) <-chan []Route {
	ch := make(chan []Route, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	routes := s.routesLocked()
	if len(s.subs) == 1 {
		s.lastSum = s.sum(routes) // the first watcher has this set now
	}
	ch <- routes
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, ch)
		close(ch)
		s.mu.Unlock()
	}()
	return ch
}

// Peers returns the neighbours' session states, in configuration order.
// Before Run (or after it) every neighbour is idle. The prefix counts may
// lag a route change by up to peersRefresh.
func (s *Speaker) Peers() []PeerState {
	s.mu.Lock()
	srv, gen, rv, pv, snap := s.srv, s.gen, s.ribVersion, s.peerVersion, s.peers
	s.mu.Unlock()
	now := time.Now()
	if srv != nil && snap.valid && snap.gen == gen && snap.peerVersion == pv &&
		(snap.ribVersion == rv || now.Sub(snap.at) < s.peersRefresh) {
		out := slices.Clone(snap.states)
		for i := range out {
			if !snap.up[i].IsZero() {
				out[i].Uptime = now.Sub(snap.up[i])
			}
		}
		return out
	}

	out := make([]PeerState, len(s.cfg.Neighbors))
	up := make([]time.Time, len(out))
	index := map[netip.Addr]int{}
	for i, n := range s.cfg.Neighbors {
		a := netip.MustParseAddr(n.Address)
		out[i] = PeerState{Address: a, State: StateIdle}
		index[a] = i
	}
	if srv == nil {
		return out
	}
	err := srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		a, err := netip.ParseAddr(p.State.NeighborAddress)
		if err != nil {
			return
		}
		i, ok := index[a]
		if !ok {
			return
		}
		ps := &out[i]
		ps.State = sessionState(p.State.SessionState)
		if ps.State == StateEstablished && p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			up[i] = p.Timers.State.Uptime.AsTime()
			ps.Uptime = now.Sub(up[i])
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				ps.PrefixesReceived += af.State.Received
				ps.PrefixesSent += af.State.Advertised
			}
		}
	})
	if err != nil {
		s.log.Debug("listing peers", zap.Error(err))
		return out
	}
	s.mu.Lock()
	if s.gen == gen {
		// Versions as read before the listing: a change during it makes
		// the next call ask again.
		s.peers = peersSnapshot{valid: true, gen: gen, ribVersion: rv, peerVersion: pv, at: now,
			states: slices.Clone(out), up: up}
	}
	s.mu.Unlock()
	return out
}

func sessionState(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_SESSION_STATE_CONNECT:
		return StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return StateEstablished
	default:
		return StateIdle
	}
}
