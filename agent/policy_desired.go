package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// Steering by SRv6 policy (draft-yang-srv6ops-policy-selector). A policy
// steers the routes its VPN learned over BGP that go to its endpoint:
// those whose BGP next hop is the endpoint, and those whose remote service
// SID is the endpoint or lies in the endpoint's locator (the endpoint
// masked to srv6.peer_locator_len). Each such route is copied into the
// table of every service of the policy, with the service's active choice
// as its encap: one weighted multipath route whose paths are the chosen
// segment lists, each ending in the route's own service SID (a list's
// trailing learned service SID is replaced by it, as dynamic paths do;
// otherwise the SID is appended). A choice of one list is a plain encap
// route; so is an IPv6 route where the kernel lacks nexthop objects
// (Linux takes IPv6 multipath encap routes only as nexthop groups): the
// heaviest path alone carries it, and the policy's notes say so. The flows
// then send matching traffic to a service's table with a
// policy routing rule; traffic whose destination the table does not hold
// falls through to the VPN's own table. A new choice is one route replace
// per destination: no window without a route.

// policyChoices are the active choices of each policy's services, by
// policy name (policySide.choices).
type policyChoices map[string][]srv6.ServiceChoice

// startChoices are the choices of selectors that have measured nothing
// yet: what a config is validated with, and the first state after boot.
func startChoices(cfg *Config) policyChoices {
	out := make(policyChoices, len(cfg.Policies))
	for _, p := range cfg.Policies {
		if s, err := srv6.NewSelector(p.Policy, time.Time{}); err == nil {
			out[p.Name] = s.Choices()
		}
	}
	return out
}

// policyEncaps is the policies' routes for learned (importedEncaps' routes
// of imported, before any dynamic path steered them). Routes that cannot
// be steered are left out with a note, by policy name (never nil). It is
// pure.
func policyEncaps(cfg *Config, caps dataplane.Capabilities, choices policyChoices, learned []dataplane.EncapRoute, imported []bgp.Route) ([]dataplane.EncapRoute, map[string][]string) {
	notes := map[string][]string{}
	note := func(policy, text string) {
		if !slices.Contains(notes[policy], text) {
			notes[policy] = append(notes[policy], text)
		}
	}
	vrf := useVRF(caps)
	if len(cfg.Policies) == 0 || len(learned) == 0 {
		return nil, notes
	}
	vrfTables := cfg.vrfTables()
	rs := learnedSIDs(imported)
	tables := cfg.policyTables()
	var out []dataplane.EncapRoute
	for i, p := range cfg.Policies {
		vtable, vname, ok := placementOf(*cfg, vrfTables, vrf, cfg.policyVPN(i))
		if !ok {
			continue
		}
		byService := map[string]srv6.Choice{}
		for _, sc := range choices[p.Name] {
			byService[sc.Service] = sc.Choice
		}
		nextHop := netip.PrefixFrom(p.Endpoint, 128)
		locator := netip.PrefixFrom(p.Endpoint, cfg.peerLocatorLen()).Masked()
		for _, r := range learned {
			if r.Table != vtable || r.VRF != vname || len(r.Segments) != 1 {
				continue
			}
			sid := r.Segments[0]
			if !rs.hit(nextHop, sid) && !locator.Contains(sid) {
				continue
			}
			for j, svc := range p.Services {
				c, ok := byService[svc.Name]
				if !ok || len(c.Paths) == 0 {
					continue
				}
				e := dataplane.EncapRoute{Prefix: r.Prefix, Table: tables[i][j], Mode: r.Mode, Dev: r.Dev}
				paths, err := steerChoice(rs, c, sid, p.EndTSF)
				if err != nil {
					note(p.Name, fmt.Sprintf("service %s: %s not steered: %v", strconv.Quote(svc.Name), r.Prefix, err))
					continue
				}
				if len(paths) > 1 && r.Prefix.Addr().Is6() && !caps.NexthopObjects {
					best := heaviest(paths)
					note(p.Name, fmt.Sprintf("service %s: IPv6 routes use color %d list %d alone: sharing their load needs nexthop objects, which this kernel lacks",
						strconv.Quote(svc.Name), best.color, best.list+1))
					paths = []steeredPath{best}
				}
				if len(paths) == 1 {
					e.Segments = paths[0].Segments
				} else {
					e.Paths = make([]dataplane.EncapPath, len(paths))
					for k, sp := range paths {
						e.Paths[k] = sp.EncapPath
					}
				}
				out = append(out, e)
			}
		}
	}
	return out, notes
}

// steeredPath is one path of a steered route and the list it came from.
type steeredPath struct {
	dataplane.EncapPath
	color uint32
	list  int
}

// steerChoice is the weighted paths of a route to remote SID sid on
// choice c. Two lists that become the same once the route's SID ends them
// (they differed in their learned service SID only) are one path with
// both weights (at most srv6.MaxPathWeight). With endTSF each list ends
// at the far node's End.TSF SID, which is for the probes only: End.DX6
// drops a packet with segments left, so data leaves it out.
func steerChoice(rs remoteSIDs, c srv6.Choice, sid netip.Addr, endTSF bool) ([]steeredPath, error) {
	paths := make([]steeredPath, 0, len(c.Paths))
	for _, wp := range c.Paths {
		segs := wp.Segments
		if endTSF && len(segs) > 0 {
			segs = segs[:len(segs)-1]
		}
		segs = rs.steer(segs, sid)
		if len(segs) > srv6.MaxSegments {
			return nil, fmt.Errorf("color %d list %d with the service SID is %d SIDs, more than %d", wp.Color, wp.List+1, len(segs), srv6.MaxSegments)
		}
		if i := slices.IndexFunc(paths, func(p steeredPath) bool { return slices.Equal(p.Segments, segs) }); i >= 0 {
			paths[i].Weight = min(paths[i].Weight+wp.Weight, srv6.MaxPathWeight)
			continue
		}
		paths = append(paths, steeredPath{EncapPath: dataplane.EncapPath{Segments: segs, Weight: wp.Weight}, color: wp.Color, list: wp.List})
	}
	return paths, nil
}

// heaviest is the path with the largest weight (the first of equals).
func heaviest(paths []steeredPath) steeredPath {
	best := paths[0]
	for _, p := range paths[1:] {
		if p.Weight > best.Weight {
			best = p
		}
	}
	return best
}

// policyFlowRules is one rule per flow and address family it can match,
// in config order from dataplane.FlowRulePriorityMin, each sending its
// flows to its service's table (from the VPN's VRF device when VRFs are
// in use). A rule the kernel cannot carry (without caps.RuleDSCP: DSCP in
// an IPv4 rule, DSCP 0 in an IPv6 one) is left out with a note, by policy name; its priority
// stays taken so that the others do not move with the kernel. It is pure.
func policyFlowRules(cfg *Config, caps dataplane.Capabilities) ([]dataplane.FlowRule, map[string][]string) {
	var out []dataplane.FlowRule
	notes := map[string][]string{}
	tables := cfg.policyTables()
	vrf := useVRF(caps)
	prio := dataplane.FlowRulePriorityMin
	for i, p := range cfg.Policies {
		iif := ""
		if vpn := cfg.service(cfg.policyVPN(i)); vrf && vpn.VRF != "" {
			iif = vpn.VRF
		}
		svcTable := map[string]int{}
		for j, s := range p.Services {
			svcTable[s.Name] = tables[i][j]
		}
		for j, f := range p.Flows {
			spec, err := parseFlow(f)
			if err != nil { // Validate refuses it
				continue
			}
			for _, fam := range spec.families {
				r := dataplane.FlowRule{Priority: prio, Family: fam, Src: spec.src, Dst: spec.dst, Protocol: spec.proto,
					SrcPorts: spec.srcPorts, DstPorts: spec.dstPorts, DSCP: spec.dscp, HasDSCP: spec.hasDSCP,
					FwMark: spec.mark, FwMask: spec.mask, IIF: iif, Table: svcTable[f.Service]}
				prio++
				if spec.hasDSCP && !caps.RuleDSCP && (fam == unix.AF_INET || spec.dscp == 0) {
					// Without FRA_DSCP an IPv4 rule matches the old TOS
					// bits only, and an IPv6 rule's tos 0 matches any.
					family := "IPv4"
					if fam == unix.AF_INET6 {
						family = "IPv6"
					}
					notes[p.Name] = append(notes[p.Name], fmt.Sprintf("flows[%d] (service %s): not installed for %s: this kernel's rules cannot match DSCP %d (FRA_DSCP needs Linux 6.12+); mark the flow with nftables and classify it by fwmark",
						j, strconv.Quote(f.Service), family, spec.dscp))
					continue
				}
				out = append(out, r)
			}
		}
	}
	return out, notes
}
