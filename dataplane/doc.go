// Package dataplane turns a desired SRv6 state into Linux routes over
// netlink: seg6local SIDs, seg6 encap routes (weighted multipath for an
// SRv6 policy's load share), binding SIDs, VRFs, and ip rules (the SID
// filter, and flow rules that classify flows into policy tables). Apply is
// declarative: it diffs the desired state against the routes the agent owns
// in the kernel (RouteProtocol) and changes only the difference.
//
// Kernel is the netlink implementation; Fake holds in memory the route set
// the kernel would hold, for tests of the agent. Both validate and diff with
// the same code (plan, diff), so what the Fake holds is what the kernel
// would.
//
// How Apply works:
//   - The desired state is validated first (errors name the bad value);
//     nothing is applied when it is invalid.
//   - The kernel's routes of protocol RouteProtocol (all tables) and the
//     nexthop objects of that protocol are read, then changes go out in this
//     order: VRF devices, nexthop objects, new and changed routes (a changed
//     route is replaced in place), stale routes, unused nexthop objects,
//     stale VRF devices. New forwarding is in before old forwarding goes.
//   - Encap routes with the same (segments, mode, device) share one seg6
//     nexthop object; routes reference it by id. Where an object cannot be
//     made (no nexthop support, a device without carrier) the route carries
//     its encap inline. Both forms read back as the same route, so neither
//     is rewritten into the other.
//   - A multipath encap route references a nexthop group over the objects
//     of its paths (weights in the group); routes with the same weighted
//     set share it. Inline, it is an RTA_MULTIPATH with one encap per
//     nexthop (IPv4 only). A new choice is a new (or reused) group and one
//     atomic route replace; the old group goes after, then objects no
//     group or route uses. Groups are deleted before their members.
//   - Rules (SID filter, flow rules) are owned through FRA_PROTOCOL and
//     diffed like routes: new ones are added before the routes change,
//     stale ones deleted after.
//   - Requests go to the kernel many per sendmsg, without per-request ACKs:
//     rtnetlink processes a sendmsg synchronously, so when it returns the
//     errors of that batch are queued and the rest succeeded.
//   - Routes of other protocols are never changed or deleted; one occupying
//     a key the agent wants is reported (EEXIST) and left alone.
//   - A failure mid-apply returns an *ApplyError listing what failed and how
//     much was applied; the next Apply converges from there.
//
// Segment lists are in travel order (the first segment the packet visits
// first), as iproute2 writes them; the SRH holds them reversed and the
// package does that reversal.
//
// Without VRF support (probed by trying, at Open) VPNs use End.DX4 nh4
// 0.0.0.0 / End.DX6 nh6 :: in the main table; Status says so.
package dataplane
