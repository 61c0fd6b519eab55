package board

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
)

// StaticPrefix is a PrefixSource whose prefix comes from configuration. Set
// changes it (a config reload); every Watch then reports the change.
type StaticPrefix struct {
	mu     sync.Mutex
	prefix netip.Prefix
	addr   netip.Addr
	// changed is closed and replaced on every Set, waking all watchers.
	changed chan struct{}
}

// NewStaticPrefix returns a source that reports p (masked to its length)
// and addr once, then only what Set changes. An invalid p or addr makes
// Watch fail, naming the value.
func NewStaticPrefix(p netip.Prefix, addr netip.Addr) *StaticPrefix {
	return &StaticPrefix{prefix: p.Masked(), addr: addr, changed: make(chan struct{})}
}

// Set replaces the prefix and address. Watchers report the change if the
// pair differs from what they last reported. An invalid value is refused
// and the old one stays.
func (s *StaticPrefix) Set(p netip.Prefix, addr netip.Addr) error {
	if err := validateStatic(p, addr); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefix, s.addr = p.Masked(), addr
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (s *StaticPrefix) current() (netip.Prefix, netip.Addr, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prefix, s.addr, s.changed
}

// Watch sends the configured prefix, then every change made by Set, until
// ctx ends; it then returns nil.
func (s *StaticPrefix) Watch(ctx context.Context, out chan<- PrefixChange) error {
	p, addr, changed := s.current()
	if err := validateStatic(p, addr); err != nil {
		return err
	}
	var last PrefixChange
	for {
		if p != last.New || addr != last.Addr {
			next := PrefixChange{Old: last.New, New: p, Addr: addr}
			select {
			case out <- next:
			case <-ctx.Done():
				return nil
			}
			last = next
		}
		select {
		case <-changed:
			p, addr, changed = s.current()
		case <-ctx.Done():
			return nil
		}
	}
}

func validateStatic(p netip.Prefix, addr netip.Addr) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() == 0 {
		return fmt.Errorf("static prefix %v: want an IPv6 prefix such as 2001:db8:1200::/40", p)
	}
	if addr.IsValid() && (!addr.Is6() || addr.Is4In6()) {
		return fmt.Errorf("static prefix address %v: want an IPv6 address", addr)
	}
	return nil
}
