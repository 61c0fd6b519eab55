package agent

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// Steering (Q.Suppl.79 §8.4 / §9.5): a dynamic path carries the VPN
// traffic the CPE sends towards its DestinationDevice. The rule:
//
//   - DestinationDevice an IPv6 address (the remote CPE's BGP next hop):
//     the learned routes whose next hop is that address are steered;
//   - DestinationDevice an IPv6 prefix (the remote CPE's locator): the
//     learned routes whose remote service SID lies inside it are steered
//     (a /128 counts as an address);
//   - anything else (a device name) matches nothing, and the path's
//     ErrorDetails says so.
//
// A steered encap route gets the path's segment list before the remote
// service SID: segments = path.Segments ++ [remote SID], one outer IPv6
// header whose SRH the transit nodes process. Steering through our own BSID
// ([BSID, remote SID]) would need the kernel to run End.B6.Encaps on a
// packet it has just encapsulated, adding a second outer header per packet,
// and would not work at all where the kernel lacks End.B6.Encaps.
//
// Only paths whose BSID can be installed take part (a path is in one state).
// Paths whose DestinationDevice denotes the same address or prefix compete:
// the lowest PathPriority wins, config order breaks a tie, the others stand
// by. Static remote routes are never steered: their segment lists are
// explicit configuration. A path whose list ends in a learned service SID
// (the controller's list runs to the far service, as an End.B6.Encaps list
// must) has that SID replaced by each route's own: an IPv4 route must end at
// the End.DX4/DT4 SID, not pass the IPv6 one, which decapsulates.

// pathDestination parses a DestinationDevice as an IPv6 address or prefix.
func pathDestination(dest string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(dest); err == nil {
		if !a.Is6() || a.Is4In6() {
			return netip.Prefix{}, fmt.Errorf("DestinationDevice %q is not an IPv6 address", dest)
		}
		return netip.PrefixFrom(a, 128), nil
	}
	if p, err := netip.ParsePrefix(dest); err == nil {
		if !p.Addr().Is6() || p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("DestinationDevice %q is not an IPv6 prefix", dest)
		}
		return p.Masked(), nil
	}
	return netip.Prefix{}, fmt.Errorf("DestinationDevice %q is not an IPv6 address or prefix: no service traffic is steered onto this path", dest)
}

// steerProblem says why path p steers no traffic (nil: it may steer).
func steerProblem(p PathConfig) error {
	if _, err := pathDestination(p.Destination); err != nil {
		return err
	}
	if n := len(p.Segments) + 1; n > srv6.MaxSegments {
		return fmt.Errorf("segments: %d SIDs plus the remote service SID are more than %d", len(p.Segments), srv6.MaxSegments)
	}
	return nil
}

// steeringPaths picks per destination the path that steers its traffic;
// notes maps each installable path that steers nothing to why (a better
// path to its destination, or an unusable destination).
func steeringPaths(c *Config, d srv6.Derivation, caps dataplane.Capabilities) (winners map[netip.Prefix]int, notes map[int]string) {
	active, problems := activePaths(c, d, caps)
	winners, notes = map[netip.Prefix]int{}, map[int]string{}
	for i, p := range c.Paths.List {
		if problems[i] != nil || active[p.BSID] != i {
			continue
		}
		if err := steerProblem(p); err != nil {
			notes[i] = err.Error()
			continue
		}
		dst, _ := pathDestination(p.Destination)
		if j, ok := winners[dst]; !ok || p.Priority < c.Paths.List[j].Priority {
			winners[dst] = i
		}
	}
	for dst, w := range winners {
		for i, p := range c.Paths.List {
			if i == w || notes[i] != "" || problems[i] != nil || active[p.BSID] != i {
				continue
			}
			if q, _ := pathDestination(p.Destination); q == dst {
				notes[i] = fmt.Sprintf("destination %s is steered onto path %q with a better priority", dst, c.Paths.List[w].ID)
			}
		}
	}
	return winners, notes
}

// steerPaths returns learned (the encap routes importedEncaps made from
// imported) with the segment list of the winning path inserted before the
// remote SID of every route that goes to that path's destination. It is
// pure and leaves learned untouched.
func steerPaths(c *Config, d srv6.Derivation, caps dataplane.Capabilities, learned []dataplane.EncapRoute, imported []bgp.Route) []dataplane.EncapRoute {
	if len(c.Paths.List) == 0 || len(learned) == 0 {
		return learned
	}
	winners, _ := steeringPaths(c, d, caps)
	if len(winners) == 0 {
		return learned
	}
	rs := learnedSIDs(imported)
	out := slices.Clone(learned)
	for k := range out {
		if len(out[k].Segments) != 1 {
			continue
		}
		sid := out[k].Segments[0]
		best := -1
		for dst, i := range winners {
			if rs.hit(dst, sid) && (best < 0 || c.Paths.List[i].Priority < c.Paths.List[best].Priority ||
				c.Paths.List[i].Priority == c.Paths.List[best].Priority && i < best) {
				best = i
			}
		}
		if best >= 0 {
			out[k].Segments = rs.steer(c.Paths.List[best].Segments, sid)
		}
	}
	return out
}

// remoteSIDs is what steering needs to know of the learned routes: each
// remote service SID's BGP next hop.
type remoteSIDs map[netip.Addr]netip.Addr // remote SID -> BGP next hop (invalid: none)

func learnedSIDs(imported []bgp.Route) remoteSIDs {
	rs := make(remoteSIDs, len(imported))
	for _, r := range imported {
		if nh, ok := rs[r.SID]; !ok || !nh.IsValid() {
			rs[r.SID] = r.NextHop.Unmap()
		}
	}
	return rs
}

// hit says whether a route to remote SID sid goes to dst: a /128 is a BGP
// next hop, a shorter prefix a remote locator the SID lies in.
func (rs remoteSIDs) hit(dst netip.Prefix, sid netip.Addr) bool {
	if dst.Bits() == 128 {
		nh := rs[sid]
		return nh.IsValid() && nh == dst.Addr()
	}
	return dst.Contains(sid)
}

// steer is the segment list of a route to remote SID sid steered onto
// path: the path's trailing learned service SID replaced by sid, else sid
// appended.
func (rs remoteSIDs) steer(path []netip.Addr, sid netip.Addr) []netip.Addr {
	if n := len(path); n > 0 {
		if _, learned := rs[path[n-1]]; learned {
			path = path[:n-1]
		}
	}
	return append(slices.Clone(path), sid)
}

// steerStatus is the ConfigStatus and ErrorDetails of path i, whose BSID is
// installed: Standby when a better path steers its destination, Active
// otherwise, with the reason when its destination steers nothing.
func steerStatus(c *Config, d srv6.Derivation, caps dataplane.Capabilities, i int) (string, string) {
	winners, notes := steeringPaths(c, d, caps)
	if slices.Contains(slices.Collect(maps.Values(winners)), i) {
		return "Active", ""
	}
	if _, err := pathDestination(c.Paths.List[i].Destination); err == nil && steerProblem(c.Paths.List[i]) == nil {
		return "Standby", notes[i]
	}
	return "Active", notes[i]
}
