// Package dataplane turns a desired SRv6 state into Linux routes over
// netlink: seg6local SIDs, seg6 encap routes, binding SIDs and VRFs. Apply is
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
