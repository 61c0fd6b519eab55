package agent

import (
	"fmt"
	"net/netip"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// SID anti-spoofing (dataplane/rules.go has the kernel side). Packets from
// the WAN to our locator are admitted only from:
//   - the locator of every remote SID BGP delivered: the SID masked to
//     srv6.peer_locator_len bits (default srv6.locator_len: the CPEs of one
//     deployment share the addressing plan; bgp.Route carries the SID but not
//     the peer's SID structure);
//   - the locator, so computed, of the last segment of each static remote
//     route (the far end, which sends the return traffic);
//   - srv6.sid_allow, the configured allow-list.
//
// srv6.sid_filter switches it; unset means on when a bgp section or
// srv6.sid_allow is configured (there is then something to admit) and off
// otherwise, so a static-only CPE keeps working without new keys. With the
// filter on, the outer source of our own encapsulated packets is set inside
// our locator (sidTunnelSource), so the peers' filters admit us.

// sidFilterOn says whether the SID filter is active for cfg.
func (c *Config) sidFilterOn() bool {
	if c.SRv6.SIDFilter != nil {
		return *c.SRv6.SIDFilter
	}
	return c.BGP != nil || len(c.SRv6.SIDAllow) > 0
}

// peerLocatorLen is the prefix length a remote SID's locator is taken at.
func (c *Config) peerLocatorLen() int {
	if c.SRv6.PeerLocatorLen != 0 {
		return c.SRv6.PeerLocatorLen
	}
	return c.SRv6.LocatorLen
}

// validateSIDFilter checks the srv6 anti-spoofing keys.
func (c *Config) validateSIDFilter() []error {
	var errs []error
	if n := c.SRv6.PeerLocatorLen; n < 0 || n > 128 {
		errs = append(errs, fmt.Errorf("srv6.peer_locator_len: %d is outside 1..128 (0 = srv6.locator_len)", n))
	}
	for i, p := range c.SRv6.SIDAllow {
		switch {
		case !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("srv6.sid_allow[%d]: %s is not an IPv6 prefix", i, p))
		case p != p.Masked():
			errs = append(errs, fmt.Errorf("srv6.sid_allow[%d]: %s has host bits set (want %s)", i, p, p.Masked()))
		}
	}
	return errs
}

// sidFilter is the filter and tunnel source for cfg, the derivation and
// the imported routes (nil, zero when the filter is off). It is pure.
func sidFilter(cfg Config, d srv6.Derivation, imported []bgp.Route) (*dataplane.SIDFilter, netip.Addr) {
	if !cfg.sidFilterOn() || !d.Locator.IsValid() {
		return nil, netip.Addr{}
	}
	bits := cfg.peerLocatorLen()
	allow := append([]netip.Prefix(nil), cfg.SRv6.SIDAllow...)
	// Thousands of routes come from a handful of peers: list each peer
	// locator once, the dataplane sorts and merges the rest.
	seen := map[netip.Prefix]bool{}
	peer := func(sid netip.Addr) {
		if sid.Is6() && !sid.Is4In6() {
			if p := netip.PrefixFrom(sid, bits).Masked(); !seen[p] {
				seen[p] = true
				allow = append(allow, p)
			}
		}
	}
	for _, r := range imported {
		peer(r.SID)
	}
	for _, r := range cfg.Remote {
		if n := len(r.Segments); n > 0 {
			peer(r.Segments[n-1])
		}
	}
	f := &dataplane.SIDFilter{Interface: cfg.WAN.Interface, Locators: []netip.Prefix{d.Locator}, Allow: allow}
	return f, sidTunnelSource(d)
}

// sidTunnelSource is the outer source of our encapsulated packets: the last
// address of our locator (host bits all ones), or the highest one below it
// that is not one of our SIDs. It needs no interface address: the peer only
// decapsulates, nothing is ever sent back to it, and a packet that is (an
// ICMP error) meets our locator's unreachable route.
func sidTunnelSource(d srv6.Derivation) netip.Addr {
	l := d.Locator
	b := l.Addr().As16()
	for i := l.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	sids := make(map[netip.Addr]bool, len(d.SIDs))
	for _, s := range d.SIDs {
		sids[s.SID] = true
	}
	for range len(d.SIDs) + 1 {
		if !sids[a] || !l.Contains(a.Prev()) {
			break
		}
		a = a.Prev()
	}
	return a
}
