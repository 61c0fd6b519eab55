// Package bgp embeds GoBGP v4 to exchange SRv6 L3VPN routes (RFC 9252) with
// a route reflector, a gateway or other CPEs.
//
// The agent drives a Speaker level-triggered:
//
//	s, err := bgp.New(cfg, log)       // cfg.Validate names every bad value
//	go s.Run(ctx)                     // GoBGP starts, peers are added; stops on ctx
//	s.SetExports(exports)             // the full desired set, after every change
//	s.SetImports(policies)            // instance -> import RTs
//	for routes := range s.Watch(ctx) { ... } // the full imported set, coalesced
//	s.Peers()                         // session state, uptime, prefix counts
//
// Export: each prefix of an Export becomes a VPNv4 or VPNv6 path with the
// instance's RD and RTs, the BGP Prefix-SID attribute carrying an SRv6 L3
// Service TLV (the service SID, its behaviour, the SID Structure
// Sub-Sub-TLV) without transposition (label 3), and the CPE's WAN IPv6
// address as next hop (RFC 8950 for VPNv4; GoBGP announces the extended next
// hop capability, FRR needs "neighbor X capability extended-nexthop").
// SetExports diffs against what is advertised: new paths are added, changed
// ones (a renumbered SID) replaced in place, others withdrawn.
//
// Import: best paths from peers whose RTs match an instance's import RTs,
// never our own. The SID is rebuilt when the sender transposed bits into the
// label; behaviour 0xFFFF (FRR 8.4 rewrites it when reflecting) becomes
// End.DT4 or End.DT6 by family. A route whose SRv6 data is missing or
// unusable is logged and treated as withdrawn. GoBGP itself discards a
// malformed Prefix-SID attribute (so the route has no SID and is dropped
// here) and resets the session on framing errors (RFC 7606).
//
// GoBGP is used only through its BgpServer API (its config helpers call
// log.Fatal); its slog output goes to the caller's zap logger. This package
// imports nothing of this module but srv6 (TestImportsOnlySRv6).
package bgp
