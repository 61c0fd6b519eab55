package board

import (
	"cmp"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// addrCandidate is one IPv6 address of the WAN interface as the kernel
// reports it, reduced to what the choice needs.
type addrCandidate struct {
	Prefix       netip.Prefix // the address with its prefix length, not masked
	Flags        uint32       // IFA_F_*
	PreferredLft uint32       // seconds; 0xffffffff = forever
}

// routeCandidate is one IPv6 route, reduced to what the choice needs.
type routeCandidate struct {
	Dst      netip.Prefix
	Type     int // RTN_*
	Protocol int // RTPROT_* or a daemon's own number
}

// ula is fc00::/7 (RFC 4193): preferred less than global unicast space,
// since the SIDs derived from the prefix must be routable from the SD-WAN.
var ula = netip.MustParsePrefix("fc00::/7")

// usableUnicast is a global-scope IPv6 unicast address: not link-local,
// loopback, multicast, unspecified or IPv4-mapped.
func usableUnicast(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && a.IsGlobalUnicast()
}

// pickAddress chooses the CPE's WAN address deterministically: ignore
// link-local, temporary (privacy) and DAD-failed addresses, and host routes
// when hostOK is false; then prefer global unicast over ULA, an address
// that is neither deprecated nor tentative, the longer preferred lifetime,
// and finally the lowest address.
func pickAddress(cands []addrCandidate, hostOK bool) (netip.Prefix, bool) {
	const notReady = unix.IFA_F_DEPRECATED | unix.IFA_F_TENTATIVE | unix.IFA_F_OPTIMISTIC
	var best addrCandidate
	found := false
	better := func(a, b addrCandidate) bool { // a before b
		if c := cmpBool(!ula.Contains(a.Prefix.Addr()), !ula.Contains(b.Prefix.Addr())); c != 0 {
			return c > 0
		}
		if c := cmpBool(a.Flags&notReady == 0, b.Flags&notReady == 0); c != 0 {
			return c > 0
		}
		if a.PreferredLft != b.PreferredLft {
			return a.PreferredLft > b.PreferredLft
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c < 0
		}
		return a.Prefix.Bits() < b.Prefix.Bits()
	}
	for _, c := range cands {
		if !c.Prefix.IsValid() || !usableUnicast(c.Prefix.Addr()) {
			continue
		}
		if c.Flags&(unix.IFA_F_TEMPORARY|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		if !hostOK && c.Prefix.Bits() == 128 {
			continue
		}
		if !found || better(c, best) {
			best, found = c, true
		}
	}
	return best.Prefix, found
}

// routeFilter selects delegated-prefix routes.
type routeFilter struct {
	Protocol int   // 0 = any
	Ignore   []int // protocols never taken (e.g. the agent's own locator routes)
}

// matches is true for an unreachable route to a global IPv6 prefix shorter
// than /128, of the wanted protocol: what a DHCPv6-PD client (OpenWrt
// netifd/odhcp6c, dhcpcd) installs for the delegated prefix so that traffic
// to unassigned parts of it is not looped back to the ISP.
func (f routeFilter) matches(r routeCandidate) bool {
	switch {
	case r.Type != unix.RTN_UNREACHABLE:
		return false
	case !r.Dst.IsValid() || r.Dst.Bits() == 0 || r.Dst.Bits() == 128 || !usableUnicast(r.Dst.Addr()):
		return false
	case f.Protocol != 0 && r.Protocol != f.Protocol:
		return false
	case slices.Contains(f.Ignore, r.Protocol):
		return false
	}
	return true
}

// pickRoute chooses the delegated prefix among the matching routes: global
// unicast before ULA, then the shortest prefix (the delegation itself, not
// a part of it routed elsewhere), then the lowest address.
func pickRoute(routes []routeCandidate, f routeFilter) (netip.Prefix, bool) {
	var best netip.Prefix
	found := false
	better := func(a, b netip.Prefix) bool {
		if c := cmpBool(!ula.Contains(a.Addr()), !ula.Contains(b.Addr())); c != 0 {
			return c > 0
		}
		if a.Bits() != b.Bits() {
			return a.Bits() < b.Bits()
		}
		return a.Addr().Compare(b.Addr()) < 0
	}
	for _, r := range routes {
		if !f.matches(r) {
			continue
		}
		p := r.Dst.Masked()
		if !found || better(p, best) {
			best, found = p, true
		}
	}
	return best, found
}

func cmpBool(a, b bool) int {
	toInt := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	return cmp.Compare(toInt(a), toInt(b))
}
