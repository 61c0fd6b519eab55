package board

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// PrefixMode says where the netlink source finds the delegated prefix.
type PrefixMode string

const (
	// PrefixFromAddress: the WAN interface's global IPv6 address carries the
	// delegated prefix as its prefix length: 2001:db8:1200::1/40 on the WAN
	// means prefix 2001:db8:1200::/40 and CPE address 2001:db8:1200::1.
	// Host addresses (/128, e.g. DHCPv6 IA_NA) are not candidates.
	PrefixFromAddress PrefixMode = "address"
	// PrefixFromRoute: the delegated prefix is the unreachable route a
	// DHCPv6-PD client installs for it (OpenWrt netifd/odhcp6c: "unreachable
	// 2001:db8:1200::/40 dev lo proto static metric 2147483647"); the CPE
	// address is the WAN interface's global address (a /128 is fine).
	PrefixFromRoute PrefixMode = "route"
)

// Defaults of NetlinkPrefixOptions.
const (
	DefaultDebounce = 100 * time.Millisecond
	// maxDebounceFactor bounds how long a continuous stream of events can
	// postpone the re-read: at most this many Debounce periods.
	maxDebounceFactor = 10
	minRetry          = 100 * time.Millisecond
	maxRetry          = 10 * time.Second
	// healthySubscription is how long a subscription must have lived for its
	// loss to be retried at once rather than after a growing back-off.
	healthySubscription = 10 * time.Second
)

// NetlinkPrefixOptions configures NewNetlinkPrefix.
type NetlinkPrefixOptions struct {
	// Interface is the WAN interface (required).
	Interface string
	// Mode is PrefixFromAddress (default when empty) or PrefixFromRoute.
	Mode PrefixMode
	// RouteTable is the routing table searched in route mode (0 = main).
	RouteTable int
	// RouteProtocol, when non-zero, takes only routes of this rtnetlink
	// protocol in route mode (e.g. 4 = static for netifd, 16 = dhcp).
	RouteProtocol int
	// IgnoreRouteProtocols are never taken in route mode. The agent lists
	// the dataplane's own protocol here: its locator unreachable routes lie
	// inside the delegated prefix and must never be mistaken for it.
	IgnoreRouteProtocols []int
	// Debounce is the quiet time after an event before the full re-read
	// (default 100 ms). A steady stream of events delays the re-read by at
	// most ten times this.
	Debounce time.Duration
	// ReceiveBufferSize sets SO_RCVBUF of the event sockets (0 = kernel
	// default). An overflow is handled (resubscribe and re-read) either way.
	ReceiveBufferSize int
	// Logger receives the source's logs (nil = none).
	Logger *zap.Logger
	// NetNS is the network namespace to watch; the zero value (and
	// netns.None()) means the caller's own namespace.
	NetNS netns.NsHandle
}

// NetlinkPrefix watches the delegated prefix through rtnetlink. Events only
// trigger a full re-read of the addresses (and routes) after a debounce; the
// result, never the event content, decides what is reported.
//
// When the prefix disappears (WAN down, lease lost, interface gone) nothing
// is reported and the last prefix stays in force, so the CPE keeps its SIDs
// until a new prefix arrives; the loss is logged. When the same prefix comes
// back it is reported again with Old == New: the kernel removed the routes
// on the WAN device while it was down, and the agent must re-apply them. Likewise in route mode a
// vanished WAN address keeps the last one. A change of Addr alone is
// reported with Old == New.
type NetlinkPrefix struct {
	opt NetlinkPrefixOptions
	log *zap.Logger

	mu    sync.Mutex
	pokes map[chan struct{}]struct{} // one per running Watch, for Refresh
}

// NewNetlinkPrefix returns a netlink prefix source. Options are checked
// when Watch starts.
func NewNetlinkPrefix(opt NetlinkPrefixOptions) *NetlinkPrefix {
	if opt.Mode == "" {
		opt.Mode = PrefixFromAddress
	}
	if opt.Debounce <= 0 {
		opt.Debounce = DefaultDebounce
	}
	if opt.RouteTable == 0 {
		opt.RouteTable = unix.RT_TABLE_MAIN
	}
	if opt.NetNS == 0 {
		opt.NetNS = netns.None()
	}
	log := opt.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &NetlinkPrefix{
		opt:   opt,
		log:   log.With(zap.String("wan", opt.Interface), zap.String("mode", string(opt.Mode))),
		pokes: map[chan struct{}]struct{}{},
	}
}

// Refresh makes every running Watch re-read the kernel state (after the
// debounce), for a SIGHUP or an OpenWrt hotplug call. It never blocks.
func (s *NetlinkPrefix) Refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.pokes {
		poke(p)
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a re-read is already pending; it will see this change too
	}
}

func (o NetlinkPrefixOptions) validate() error {
	if o.Interface == "" {
		return errors.New("netlink prefix source: no WAN interface configured")
	}
	if len(o.Interface) >= unix.IFNAMSIZ {
		return fmt.Errorf("netlink prefix source: interface name %q longer than %d bytes", o.Interface, unix.IFNAMSIZ-1)
	}
	if o.Mode != PrefixFromAddress && o.Mode != PrefixFromRoute {
		return fmt.Errorf("netlink prefix source: mode %q: want %q or %q", o.Mode, PrefixFromAddress, PrefixFromRoute)
	}
	if o.RouteTable < 0 {
		return fmt.Errorf("netlink prefix source: route table %d is negative", o.RouteTable)
	}
	return nil
}

// Watch reports the prefix as soon as one is found, then every change,
// until ctx ends; it then returns nil. It returns an error only for bad
// options or when it cannot open a netlink socket in the namespace at all;
// lost event subscriptions (e.g. ENOBUFS on overflow) are re-established and
// followed by a full re-read, and failed re-reads are retried.
func (s *NetlinkPrefix) Watch(ctx context.Context, out chan<- PrefixChange) error {
	if err := s.opt.validate(); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(s.opt.NetNS, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink prefix source: netlink socket in namespace %v: %w", s.opt.NetNS, err)
	}
	defer h.Close()

	pokes := make(chan struct{}, 1)
	s.mu.Lock()
	s.pokes[pokes] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pokes, pokes)
		s.mu.Unlock()
	}()

	subCtx, stopSubs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopSubs()
		wg.Wait() // no goroutine outlives Watch
	}()
	ns := s.opt.NetNS
	wg.Go(func() {
		subscribeLoop(subCtx, s.log, "address", pokes, func(ch chan netlink.AddrUpdate, done chan struct{}, onErr func(error)) error {
			return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
				Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: s.opt.ReceiveBufferSize,
			})
		}, func(u netlink.AddrUpdate) bool { return u.LinkAddress.IP.To4() == nil })
	})
	if s.opt.Mode == PrefixFromRoute {
		wg.Go(func() {
			subscribeLoop(subCtx, s.log, "route", pokes, func(ch chan netlink.RouteUpdate, done chan struct{}, onErr func(error)) error {
				return netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
					Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: s.opt.ReceiveBufferSize,
				})
			}, s.relevantRoute)
		})
	}
	return s.loop(ctx, h, pokes, out)
}

// relevantRoute filters route events cheaply so that the dataplane's own
// bulk route changes do not cause re-reads; only unreachable IPv6 routes in
// the searched table can change the answer.
func (s *NetlinkPrefix) relevantRoute(u netlink.RouteUpdate) bool {
	r := u.Route
	if r.Type != unix.RTN_UNREACHABLE || r.Family != unix.AF_INET6 {
		return false
	}
	return r.Table == 0 || r.Table == s.opt.RouteTable
}

// loop debounces pokes, re-reads and reports.
func (s *NetlinkPrefix) loop(ctx context.Context, h *netlink.Handle, pokes <-chan struct{}, out chan<- PrefixChange) error {
	var (
		track      PrefixTracker
		lastErr    string // last re-read error, to log repeats quietly
		retry      = minRetry
		burstStart = time.Now()
		armed      = true
		timer      = time.NewTimer(0) // the first read happens at once
	)
	defer timer.Stop()
	maxWait := maxDebounceFactor * s.opt.Debounce
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-pokes:
			now := time.Now()
			if !armed {
				armed, burstStart = true, now
			}
			timer.Reset(max(0, min(s.opt.Debounce, burstStart.Add(maxWait).Sub(now))))
		case <-timer.C:
			armed = false
			p, addr, err := s.read(h)
			if err != nil {
				if msg := err.Error(); msg != lastErr {
					s.log.Warn("re-reading the delegated prefix failed; retrying", zap.Error(err), zap.Duration("retry_in", retry))
					lastErr = msg
				} else {
					s.log.Debug("re-reading the delegated prefix failed again", zap.Error(err))
				}
				armed, burstStart = true, time.Now()
				timer.Reset(retry)
				retry = min(2*retry, maxRetry)
				continue
			}
			lastErr, retry = "", minRetry
			s.log.Debug("re-read", zap.Stringer("prefix", p), zap.Stringer("addr", addr))
			if !p.IsValid() {
				if track.Lost() {
					if last := track.Last().New; last.IsValid() {
						s.log.Warn("delegated prefix gone; keeping the last one until a new one arrives", zap.Stringer("prefix", last))
					} else {
						s.log.Info("no delegated prefix yet")
					}
				}
				continue
			}
			next, report, returned := track.Found(p, addr)
			if returned {
				s.log.Info("delegated prefix present", zap.Stringer("prefix", p))
			}
			if !report {
				continue
			}
			s.log.Info("delegated prefix changed", zap.Stringer("old", next.Old), zap.Stringer("new", next.New), zap.Stringer("addr", next.Addr))
			select {
			case out <- next:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// read is the full re-read. It returns an invalid prefix when none is
// found (not an error: the WAN may simply be down).
func (s *NetlinkPrefix) read(h *netlink.Handle) (netip.Prefix, netip.Addr, error) {
	addrs, err := s.wanAddrs(h)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	if s.opt.Mode == PrefixFromAddress {
		a, ok := pickAddress(addrs, false)
		if !ok {
			return netip.Prefix{}, netip.Addr{}, nil
		}
		return a.Masked(), a.Addr(), nil
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: s.opt.RouteTable, Type: unix.RTN_UNREACHABLE},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("listing routes of table %d: %w", s.opt.RouteTable, err)
	}
	cands := make([]routeCandidate, 0, len(routes))
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		dst, ok := netipPrefix(r.Dst.IP, r.Dst.Mask)
		if !ok {
			continue
		}
		cands = append(cands, routeCandidate{Dst: dst, Type: r.Type, Protocol: int(r.Protocol)})
	}
	p, ok := pickRoute(cands, routeFilter{Protocol: s.opt.RouteProtocol, Ignore: s.opt.IgnoreRouteProtocols})
	if !ok {
		return netip.Prefix{}, netip.Addr{}, nil
	}
	var addr netip.Addr
	if a, ok := pickAddress(addrs, true); ok {
		addr = a.Addr()
	}
	return p, addr, nil
}

// wanAddrs lists the WAN interface's IPv6 addresses. A missing interface
// (PPP down, USB modem unplugged) has none.
func (s *NetlinkPrefix) wanAddrs(h *netlink.Handle) ([]addrCandidate, error) {
	link, err := h.LinkByName(s.opt.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("looking up interface %s: %w", s.opt.Interface, err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		// Includes ErrDumpInterrupted: the list changed while it was read;
		// the retry reads it again.
		return nil, fmt.Errorf("listing addresses of %s: %w", s.opt.Interface, err)
	}
	cands := make([]addrCandidate, 0, len(addrs))
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		p, ok := netipPrefix(a.IP, a.Mask)
		if !ok {
			continue
		}
		// Lifetimes are u32 on the wire; netlink stores them in an int,
		// which wraps "forever" to -1 on 32-bit boards.
		cands = append(cands, addrCandidate{Prefix: p, Flags: uint32(a.Flags), PreferredLft: uint32(a.PreferedLft)})
	}
	return cands, nil
}

func netipPrefix(ip []byte, mask []byte) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || !a.Is6() {
		return netip.Prefix{}, false
	}
	ones, bits := net.IPMask(mask).Size()
	if bits != 128 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// subscribeLoop keeps one rtnetlink event subscription alive until ctx
// ends, poking a re-read after every (re)subscription and relevant event.
// The library closes ch when the socket fails (ENOBUFS after an overflow,
// any receive error); then it resubscribes, at once after a long healthy
// run, with a growing back-off when subscriptions keep failing.
func subscribeLoop[T any](ctx context.Context, log *zap.Logger, what string, pokes chan struct{},
	subscribe func(ch chan T, done chan struct{}, onErr func(error)) error, relevant func(T) bool) {
	backoff := time.Duration(0)
	for {
		ch := make(chan T, 64)
		done := make(chan struct{})
		err := subscribe(ch, done, func(err error) {
			if ctx.Err() == nil { // a closed socket at shutdown is no news
				log.Warn("netlink event subscription error", zap.String("subscription", what), zap.Error(err))
			}
		})
		if err != nil {
			close(done)
			backoff = min(max(2*backoff, minRetry), maxRetry)
			log.Warn("netlink subscribe failed; retrying", zap.String("subscription", what), zap.Error(err), zap.Duration("retry_in", backoff))
			if !sleepCtx(ctx, backoff) {
				return
			}
			continue
		}
		started := time.Now()
		stop := context.AfterFunc(ctx, func() { close(done) })
		// Events from now on are seen; a re-read covers what came before.
		poke(pokes)
		// Drain until the library closes ch: it blocks on sends, so stopping
		// early would leak its goroutine.
		for u := range ch {
			if relevant(u) {
				poke(pokes)
			}
		}
		if !stop() {
			return // ctx ended and closed done
		}
		close(done) // closes the dead socket
		if time.Since(started) >= healthySubscription {
			backoff = 0
		} else {
			backoff = min(max(2*backoff, minRetry), maxRetry)
		}
		log.Warn("netlink event subscription lost; resubscribing and re-reading", zap.String("subscription", what), zap.Duration("retry_in", backoff))
		if !sleepCtx(ctx, backoff) {
			return
		}
	}
}

// sleepCtx waits d or until ctx ends; false means ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
