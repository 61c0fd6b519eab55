package openwrt

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/board"
)

// Forever is the lifetime netifd means by leaving "preferred" or "valid"
// out of its status.
const Forever = ^uint32(0)

// Lease is one IPv6 prefix or address in a netifd interface status.
type Lease struct {
	Prefix netip.Prefix // address with its length, as netifd reports it
	// Preferred and Valid are the remaining lifetimes in seconds (Forever
	// when netifd gives none); Preferred 0 means deprecated.
	Preferred, Valid uint32
}

// InterfaceStatus is the part of "ubus call network.interface.<name>
// status" the agent uses.
type InterfaceStatus struct {
	Up        bool
	L3Device  string // the Linux device carrying the traffic, when up
	Device    string // the configured main device
	Prefixes  []Lease
	Addresses []Lease
}

// ParseInterfaceStatus decodes netifd's interface status JSON. Entries that
// are not IPv6 prefixes are an error naming them.
func ParseInterfaceStatus(b []byte) (InterfaceStatus, error) {
	type lease struct {
		Address   string `json:"address"`
		Mask      *int   `json:"mask"`
		Preferred *int64 `json:"preferred"`
		Valid     *int64 `json:"valid"`
	}
	var doc struct {
		Up        bool    `json:"up"`
		L3Device  string  `json:"l3_device"`
		Device    string  `json:"device"`
		Prefixes  []lease `json:"ipv6-prefix"`
		Addresses []lease `json:"ipv6-address"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return InterfaceStatus{}, fmt.Errorf("netifd status: %w", err)
	}
	conv := func(what string, ls []lease) ([]Lease, error) {
		out := make([]Lease, 0, len(ls))
		for i, l := range ls {
			a, err := netip.ParseAddr(l.Address)
			if err != nil || !a.Is6() || a.Zone() != "" {
				return nil, fmt.Errorf("netifd status: %s[%d].address %q: not an IPv6 address", what, i, l.Address)
			}
			if l.Mask == nil {
				return nil, fmt.Errorf("netifd status: %s[%d] (%s): no mask", what, i, l.Address)
			}
			p, err := a.Prefix(*l.Mask)
			if err != nil || *l.Mask < 0 {
				return nil, fmt.Errorf("netifd status: %s[%d] (%s): mask %d out of range", what, i, l.Address, *l.Mask)
			}
			out = append(out, Lease{Prefix: netip.PrefixFrom(a, p.Bits()), Preferred: lifetime(l.Preferred), Valid: lifetime(l.Valid)})
		}
		return out, nil
	}
	st := InterfaceStatus{Up: doc.Up, L3Device: doc.L3Device, Device: doc.Device}
	var err error
	if st.Prefixes, err = conv("ipv6-prefix", doc.Prefixes); err != nil {
		return InterfaceStatus{}, err
	}
	if st.Addresses, err = conv("ipv6-address", doc.Addresses); err != nil {
		return InterfaceStatus{}, err
	}
	return st, nil
}

// lifetime maps netifd's optional seconds to Lease's: absent is Forever; a
// negative value (libubox prints u32 as int32, so a lapsed deadline shows
// up negative) is 0.
func lifetime(v *int64) uint32 {
	switch {
	case v == nil:
		return Forever
	case *v <= 0:
		return 0
	case *v >= int64(Forever):
		return Forever - 1
	}
	return uint32(*v)
}

var ula = netip.MustParsePrefix("fc00::/7")

func globalUnicast(a netip.Addr) bool { return a.Is6() && !a.Is4In6() && a.IsGlobalUnicast() }

// DelegatedPrefix chooses the delegated prefix deterministically among the
// interface's ipv6-prefix entries: expired ones (valid 0) and non-global
// ones are ignored; then global unicast before ULA, not deprecated before
// deprecated, the shortest prefix (the delegation, not a part of it), the
// lowest address. The result is masked; ok is false when none qualifies.
func (st InterfaceStatus) DelegatedPrefix() (netip.Prefix, bool) {
	var best Lease
	found := false
	for _, l := range st.Prefixes {
		p := l.Prefix.Masked()
		if l.Valid == 0 || !globalUnicast(p.Addr()) || p.Bits() == 0 || p.Bits() == 128 {
			continue
		}
		l.Prefix = p
		if !found || prefixBefore(l, best) {
			best, found = l, true
		}
	}
	return best.Prefix, found
}

func prefixBefore(a, b Lease) bool {
	if c := cmp.Compare(rank(!ula.Contains(a.Prefix.Addr())), rank(!ula.Contains(b.Prefix.Addr()))); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(rank(a.Preferred > 0), rank(b.Preferred > 0)); c != 0 {
		return c > 0
	}
	if a.Prefix.Bits() != b.Prefix.Bits() {
		return a.Prefix.Bits() < b.Prefix.Bits()
	}
	return a.Prefix.Addr().Less(b.Prefix.Addr())
}

// WANAddress chooses the CPE's own WAN address among the ipv6-address
// entries: global unicast before ULA, not deprecated, the longer preferred
// lifetime, the lowest address. ok is false when none qualifies.
func (st InterfaceStatus) WANAddress() (netip.Addr, bool) {
	var best Lease
	found := false
	for _, l := range st.Addresses {
		if l.Valid == 0 || !globalUnicast(l.Prefix.Addr()) {
			continue
		}
		if !found || addressBefore(l, best) {
			best, found = l, true
		}
	}
	return best.Prefix.Addr(), found
}

func addressBefore(a, b Lease) bool {
	if c := cmp.Compare(rank(!ula.Contains(a.Prefix.Addr())), rank(!ula.Contains(b.Prefix.Addr()))); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(rank(a.Preferred > 0), rank(b.Preferred > 0)); c != 0 {
		return c > 0
	}
	if a.Preferred != b.Preferred {
		return a.Preferred > b.Preferred
	}
	return a.Prefix.Addr().Less(b.Prefix.Addr())
}

func rank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Defaults of NetifdPrefixOptions.
const (
	DefaultNetifdInterface = "wan6"
	DefaultPoll            = time.Minute
	DefaultCallTimeout     = 10 * time.Second
	minNetifdRetry         = time.Second
)

// NetifdPrefixOptions configures NewNetifdPrefix.
type NetifdPrefixOptions struct {
	// Interface is the netifd logical interface that receives the
	// delegation (default "wan6").
	Interface string
	// Runner runs ubus (default ExecRunner).
	Runner Runner
	// Poll is the interval of re-reads without a Refresh, the safety net
	// for a lost hotplug call (default 1 minute; negative: never).
	Poll time.Duration
	// CallTimeout bounds one ubus call (default 10 s).
	CallTimeout time.Duration
	// Logger receives the source's logs (nil = none).
	Logger *zap.Logger
}

// NetifdPrefix is a board.PrefixSource that asks netifd for the delegated
// prefix: "ubus call network.interface.<Interface> status". It re-reads at
// start, on Refresh (the hotplug script's poke) and every Poll, and
// reports only changes. A prefix that disappears (interface down, lease
// expired) is not reported: the last one stays in force and the loss is
// logged. A change of the WAN address alone is reported with Old == New;
// a missing address keeps the last one.
type NetifdPrefix struct {
	opt NetifdPrefixOptions
	log *zap.Logger

	mu    sync.Mutex
	pokes map[chan struct{}]struct{}
}

var _ board.PrefixSource = (*NetifdPrefix)(nil)

// NewNetifdPrefix returns a netifd prefix source with defaults filled in.
func NewNetifdPrefix(opt NetifdPrefixOptions) *NetifdPrefix {
	if opt.Interface == "" {
		opt.Interface = DefaultNetifdInterface
	}
	if opt.Runner == nil {
		opt.Runner = ExecRunner{}
	}
	if opt.Poll == 0 {
		opt.Poll = DefaultPoll
	}
	if opt.CallTimeout <= 0 {
		opt.CallTimeout = DefaultCallTimeout
	}
	log := opt.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &NetifdPrefix{
		opt:   opt,
		log:   log.With(zap.String("netifd_interface", opt.Interface)),
		pokes: map[chan struct{}]struct{}{},
	}
}

// Refresh makes every running Watch re-read netifd's status now. It never
// blocks; pokes that arrive while a re-read is pending are merged.
func (s *NetifdPrefix) Refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.pokes {
		select {
		case p <- struct{}{}:
		default:
		}
	}
}

// Status runs one ubus call and decodes it.
func (s *NetifdPrefix) Status(ctx context.Context) (InterfaceStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.CallTimeout)
	defer cancel()
	out, err := s.opt.Runner.Run(ctx, "ubus", "call", "network.interface."+s.opt.Interface, "status")
	if err != nil {
		return InterfaceStatus{}, err
	}
	return ParseInterfaceStatus(out)
}

// Watch reports the current prefix as soon as netifd has one, then every
// change, until ctx ends; it then returns nil.
func (s *NetifdPrefix) Watch(ctx context.Context, out chan<- board.PrefixChange) error {
	if !validIfName(s.opt.Interface) {
		return fmt.Errorf("netifd interface %q: not a valid interface name", s.opt.Interface)
	}
	poke := make(chan struct{}, 1)
	s.mu.Lock()
	s.pokes[poke] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pokes, poke)
		s.mu.Unlock()
	}()

	var (
		track   board.PrefixTracker
		lastErr string
		retry   = minNetifdRetry
		timer   = time.NewTimer(0) // first read at once
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poke:
		case <-timer.C:
		}
		timer.Stop()
		st, err := s.Status(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				s.log.Warn("reading the delegated prefix from netifd failed; retrying", zap.Error(err), zap.Duration("retry_in", retry))
				lastErr = msg
			}
			timer.Reset(retry)
			retry = min(2*retry, s.maxRetry())
			continue
		}
		lastErr, retry = "", minNetifdRetry
		if s.opt.Poll > 0 {
			timer.Reset(s.opt.Poll)
		}
		p, ok := st.DelegatedPrefix()
		if !ok {
			if track.Lost() {
				if last := track.Last().New; last.IsValid() {
					s.log.Warn("delegated prefix gone; keeping the last one until a new one arrives", zap.Stringer("prefix", last), zap.Bool("up", st.Up))
				} else {
					s.log.Info("no delegated prefix yet", zap.Bool("up", st.Up))
				}
			}
			continue
		}
		addr, _ := st.WANAddress()
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

// maxRetry bounds the back-off after failed ubus calls: the poll interval,
// or DefaultPoll when polling is off.
func (s *NetifdPrefix) maxRetry() time.Duration {
	if s.opt.Poll > 0 {
		return max(s.opt.Poll, minNetifdRetry)
	}
	return DefaultPoll
}
