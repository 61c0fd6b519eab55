package dataplane

import (
	"context"
	"net/netip"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// RouteProtocol is the rtnetlink protocol number carried by every route the
// agent owns ("srv6cpe" in /etc/iproute2/rt_protos.d if an operator names it).
// Routes with any other protocol are never touched.
const RouteProtocol = 0xc6

// EncapMode is the seg6 encapsulation mode of an encap route.
type EncapMode uint8

const (
	Encap    EncapMode = iota // H.Encaps
	EncapRed                  // H.Encaps.Red
)

// LocalSID is a seg6local route for one of our SIDs.
type LocalSID struct {
	SID      netip.Addr
	Behavior srv6.Behavior
	// Table is the lookup table of End.DT4/DT6/DT46 (vrftable/table), 0 = main.
	Table int
	// VRF names the VRF device of End.DT4/DT46 when VRFs are in use.
	VRF string
	// NH4 / NH6 are the End.DX4 / End.DX6 next hops; the unspecified address
	// means "look the inner destination up" (the VRF-less fallback).
	NH4 netip.Addr
	NH6 netip.Addr
	// Dev is the device the route is attached to (the WAN interface by default).
	Dev string
	// Segments of End.B6.Encaps in travel order: the first segment the
	// packet visits first, as iproute2 writes them. The kernel's SRH holds
	// them reversed (Segment List[0] is the last segment); Apply and
	// Installed do that reversal, callers never do.
	Segments []netip.Addr
}

// EncapRoute steers a prefix into a segment list (seg6 encap).
type EncapRoute struct {
	Prefix netip.Prefix
	Table  int    // 0 = main
	VRF    string // the route goes in this VRF's table when set
	// Segments in travel order (first segment first), like LocalSID.Segments.
	Segments []netip.Addr
	Mode     EncapMode
	Dev      string
	// HMACKeyID, when set, adds an SRH HMAC TLV with this key of
	// Desired.HMAC.Keys to every packet (hmac.go).
	HMACKeyID uint32
	// Paths, when set instead of Segments, make the route a weighted
	// multipath route with one seg6 encap per path (an SRv6 policy's load
	// share; flows are spread by the kernel's multipath hash). Mode, Dev
	// and HMACKeyID apply to every path: each encapsulated packet leaves
	// where its first segment routes, so paths through different next
	// hops share one Dev. At most 32 paths, each with distinct segments.
	// The order of paths does not matter: Installed and Normalize list
	// them sorted by segments. One path is a plain route (Installed
	// reports it under Segments; its weight is meaningless).
	//
	// With nexthop objects (Capabilities.NexthopObjects) the route uses a
	// nexthop group over the per-path seg6 objects; routes with equal
	// weighted sets share the group. Without, an IPv4 route carries an
	// RTA_MULTIPATH with one encap per nexthop; IPv6 multipath needs
	// nexthop objects (the kernel refuses device-only IPv6 multipath) and
	// is rejected by validation. Either way a change of paths or weights
	// is one atomic route replace: the prefix always has a route.
	Paths []EncapPath
}

// MaxEncapPaths is how many paths one multipath encap route may have.
const MaxEncapPaths = 32

// EncapPath is one weighted segment list of a multipath encap route.
type EncapPath struct {
	// Segments in travel order, like EncapRoute.Segments.
	Segments []netip.Addr
	// Weight is the path's share, 1..256 (Linux carries weight-1 in one octet).
	Weight uint32
}

// FlowRule is a policy routing rule that classifies flows into a table
// (an SRv6 policy service's table). Zero-valued selectors match anything.
// An SRv6 policy service is one table: its EncapRoutes carry that Table,
// and its FlowRules look it up.
//
// Rules are ip rules with FRA_PROTOCOL = RouteProtocol: only ours are read,
// changed or deleted. Each rule has its own priority (validation refuses
// two on one): the kernel treats the selectors a delete request leaves
// out as wildcards, so rules sharing a priority could be mistaken for
// each other. A changed rule is added before the old one goes.
type FlowRule struct {
	// Priority orders the rules; FlowRulePriorityMin..FlowRulePriorityMax,
	// unique among the flow rules.
	Priority int
	// Family is unix.AF_INET or unix.AF_INET6.
	Family   int
	Src, Dst netip.Prefix
	// Protocol is the IP protocol number (0: any).
	Protocol uint8
	// Port ranges need Protocol TCP, UDP, SCTP, DCCP or UDP-Lite.
	SrcPorts PortRange
	DstPorts PortRange
	// DSCP, when HasDSCP, matches the packet's DSCP (0..63; ECN bits are
	// ignored). With Capabilities.RuleDSCP it goes in FRA_DSCP; without,
	// IPv6 rules carry it in the rule header's tos (which IPv6 matches
	// against the full DSCP; DSCP 0 cannot be expressed there) and IPv4
	// rules are refused: mark such flows (nftables) and match FwMark.
	DSCP    uint8
	HasDSCP bool
	// FwMark / FwMask match the packet mark (FwMask 0 with FwMark set: all bits).
	FwMark, FwMask uint32
	// IIF, when set, matches packets received on this device (a VRF device
	// for VRF traffic).
	IIF string
	// Table is the table looked up for matching packets.
	Table int
}

// Flow rules use these priorities: before the l3mdev rule (1000) so VRF
// traffic is classified too. A service table holds only routes to remote
// prefixes, so a packet it has no route for falls through to the next rule
// and the SID filter still judges everything addressed to our locators.
const (
	FlowRulePriorityMin = 500
	FlowRulePriorityMax = 999
)

// PortRange is an inclusive range of ports within 1..65534 (the kernel's
// limit); the zero value matches any port, Hi 0 means the single port Lo.
type PortRange struct{ Lo, Hi uint16 }

// VRF is a Linux VRF device bound to a table.
type VRF struct {
	Name  string
	Table int
}

// Desired is the whole dataplane the agent wants. Apply makes the kernel equal to it.
type Desired struct {
	// Locators are installed as unreachable routes so that a packet to an
	// unallocated SID of ours is dropped, not routed back out of the WAN.
	Locators  []netip.Prefix
	VRFs      []VRF
	LocalSIDs []LocalSID
	// BSIDs are End.B6.Encaps binding SIDs. Linux seg6local has no
	// End.B6.Encaps.Red action, so Apply rejects that behaviour.
	BSIDs  []LocalSID
	Encaps []EncapRoute
	// SIDFilter, when set, admits packets from the WAN to our locators only
	// from its allowed sources (rules.go). nil = no filter rules of ours.
	SIDFilter *SIDFilter
	// TunnelSource is the outer source of our encapsulated packets (the
	// namespace's seg6 tunsrc); the zero value leaves the setting alone.
	TunnelSource netip.Addr
	// HMAC is the SRH HMAC key table and the WAN's require-HMAC setting
	// (hmac.go); nil leaves both alone.
	HMAC *HMACState
	// FlowRules classify flows into SRv6 policy service tables.
	FlowRules []FlowRule
}

// Capabilities is what the probe found the kernel can do.
type Capabilities struct {
	VRF            bool // VRF devices can be created
	EndDT4         bool // End.DT4 with vrftable
	EndDT46        bool // End.DT46 with vrftable
	EndDT6Table    bool // End.DT6 with a table other than main
	EncapRed       bool // seg6 encap.red (H.Encaps.Red)
	NexthopObjects bool // nexthop objects carrying a seg6 encap
	EndB6Encaps    bool
	EndBPF         bool // End.BPF with an lwt_seg6local program
	// RuleDSCP: rules match the full DSCP (FRA_DSCP, Linux 6.12+), probed
	// by making such a rule and reading it back (older kernels ignore the
	// attribute). Without it IPv4 rules match only the old TOS bits;
	// classify by fwmark there.
	RuleDSCP bool
}

// Dataplane programs the desired state. Implementations: the netlink one and
// the recording Fake. Both also have Status() Status and
// Installed(ctx) (Desired, error).
type Dataplane interface {
	Apply(ctx context.Context, d Desired) error
	Capabilities() Capabilities
}
