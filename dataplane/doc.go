// Package dataplane turns a desired SRv6 state into Linux routes over
// netlink: seg6local SIDs, seg6 encap routes, binding SIDs and VRFs. Apply is
// declarative: it diffs the desired state against the routes the agent owns
// in the kernel (RouteProtocol) and changes only the difference.
package dataplane
