package agent

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// maxSkipNotes bounds the skipped-route notes kept for the status.
const maxSkipNotes = 20

// encapKey is where an encap route lives in the kernel: its table (0 = main;
// a VRF's table otherwise) and its prefix.
type encapKey struct {
	table  int
	prefix netip.Prefix
}

// importedEncaps turns the routes BGP learned for our services into encap
// routes towards the remote service SIDs: in the service's VRF where the
// kernel has VRFs, else in the service's End.DT6 table or the main table
// (the VRF-less fallback). It is pure.
//
// One destination learned several times (the same prefix under two RDs,
// e.g. a site behind two CPEs, or two services importing one route into the
// fallback's main table) is installed once: the route with the lowest SID
// wins, then the lowest RD, then the lowest next hop, so every CPE picks the
// same one whatever order the UPDATEs came in.
//
// Routes that would break the CPE are skipped, each with a note: one that
// a static remote route already covers (the config wins); one for a prefix
// inside our own LAN prefixes (it would take our LAN's traffic); and in the
// main table one for a prefix that holds our locator, a remote SID, a BGP
// next hop or one of our neighbours (the encapsulated packets or the BGP
// sessions would be routed into the tunnel itself).
func importedEncaps(cfg Config, d srv6.Derivation, vrf bool, imported []bgp.Route) ([]dataplane.EncapRoute, []string) {
	if len(imported) == 0 {
		return nil, nil
	}
	tables := cfg.vrfTables()
	mode := dataplane.Encap
	if cfg.SRv6.EncapMode == EncapModeRed {
		mode = dataplane.EncapRed
	}

	static := staticEncapKeys(cfg, vrf)
	var lans []netip.Prefix
	for _, s := range cfg.Services {
		lans = append(lans, s.LANPrefixes...)
	}

	// Addresses the main table must keep reaching directly. Thousands of
	// routes share a few SIDs and next hops: each is noted once, and named
	// only when a learned prefix holds it.
	type protectedAddr struct {
		what string
		addr string
	}
	protected := map[netip.Addr]protectedAddr{}
	protect := func(a netip.Addr, what, name string) {
		if _, ok := protected[a]; !ok {
			protected[a] = protectedAddr{what, name}
		}
	}
	for _, r := range imported {
		protect(r.SID, "remote SID", "")
		if r.NextHop.IsValid() {
			protect(r.NextHop.Unmap(), "BGP next hop", "")
		}
	}
	if cfg.BGP != nil {
		for _, n := range cfg.BGP.Neighbors {
			if a, err := netip.ParseAddr(n.Address); err == nil {
				protect(a.Unmap(), "BGP neighbour", n.Address)
			}
		}
	}
	// Every prefix that holds a protected address (each address at every
	// prefix length: few addresses, many routes), then the learned
	// main-table routes that are one of them.
	covering := map[netip.Prefix]netip.Addr{}
	for a := range protected {
		for bits := 0; bits <= a.BitLen(); bits++ {
			p := netip.PrefixFrom(a, bits).Masked()
			if _, ok := covering[p]; !ok {
				covering[p] = a
			}
		}
	}
	holds := map[netip.Prefix]string{}
	for _, r := range imported {
		p := r.Prefix.Masked()
		a, ok := covering[p]
		if !ok {
			continue
		}
		if t, _, found := placementOf(cfg, tables, vrf, r.Instance); !found || t != 0 {
			continue
		}
		if _, done := holds[p]; !done {
			pa := protected[a]
			holds[p] = pa.what + " " + cmp.Or(pa.addr, a.String())
		}
	}

	var skipped []string
	skip := func(r bgp.Route, why string) {
		if len(skipped) < maxSkipNotes {
			skipped = append(skipped, fmt.Sprintf("%s %s (RD %s, SID %s): %s", r.Instance, r.Prefix, r.RD, r.SID, why))
		} else if len(skipped) == maxSkipNotes {
			skipped = append(skipped, "further skipped routes not listed")
		}
	}

	out := make([]dataplane.EncapRoute, 0, len(imported))
	chosen := make(map[encapKey]int, len(imported)) // index into out
	winner := make([]int, 0, len(imported))         // index into imported
	for ri, r := range imported {
		table, vrfName, ok := placementOf(cfg, tables, vrf, r.Instance)
		if !ok {
			skip(r, "no such service")
			continue
		}
		p := r.Prefix.Masked()
		key := encapKey{table, p}
		switch {
		case static[key]:
			skip(r, "a static remote route has this prefix")
			continue
		case table == 0 && p.Overlaps(d.Locator):
			skip(r, fmt.Sprintf("overlaps our locator %s", d.Locator))
			continue
		case table == 0 && holds[p] != "":
			skip(r, "holds the "+holds[p])
			continue
		}
		if lan, mine := insideAny(p, lans); mine {
			skip(r, fmt.Sprintf("inside our LAN prefix %s", lan))
			continue
		}
		if i, dup := chosen[key]; dup {
			if !better(r, imported[winner[i]]) {
				continue
			}
			out[i].Segments[0] = r.SID
			winner[i] = ri
			continue
		}
		chosen[key] = len(out)
		winner = append(winner, ri)
		out = append(out, dataplane.EncapRoute{
			Prefix:   p,
			Table:    table,
			VRF:      vrfName,
			Segments: []netip.Addr{r.SID},
			Mode:     mode,
			Dev:      cfg.WAN.Interface,
		})
	}
	return out, skipped
}

// staticEncapKeys is where the config's remote routes go.
func staticEncapKeys(cfg Config, vrf bool) map[encapKey]bool {
	tables := cfg.vrfTables()
	static := map[encapKey]bool{}
	for _, r := range cfg.Remote {
		t := r.Table
		if r.VRF != "" && vrf {
			t = tables[r.VRF]
		}
		static[encapKey{t, r.Prefix.Masked()}] = true
	}
	return static
}

// placementOf says which table (and VRF) a route imported by the service
// named instance goes into; false when there is no such service.
func placementOf(cfg Config, tables map[string]int, vrf bool, instance string) (table int, vrfName string, ok bool) {
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if s.Name != instance {
			continue
		}
		switch {
		case vrf && s.VRF != "":
			return tables[s.VRF], s.VRF, true
		case s.VRF == "" && isDT6(s.Behavior):
			return s.Table, "", true
		}
		return 0, "", true
	}
	return 0, "", false
}

func isDT6(behavior string) bool {
	b, err := srv6.ParseBehavior(behavior)
	return err == nil && b == srv6.EndDT6
}

// better orders routes to one destination: lowest SID, RD, next hop.
func better(a, b bgp.Route) bool {
	if c := a.SID.Compare(b.SID); c != 0 {
		return c < 0
	}
	if a.RD != b.RD {
		return a.RD < b.RD
	}
	return a.NextHop.Compare(b.NextHop) < 0
}

func insideAny(p netip.Prefix, lans []netip.Prefix) (netip.Prefix, bool) {
	for _, l := range lans {
		if l.Bits() <= p.Bits() && l.Contains(p.Addr()) {
			return l, true
		}
	}
	return netip.Prefix{}, false
}

// exportsFor is one bgp.Export per service with a route distinguisher:
// its LAN prefixes with the service SID and the behaviour as installed (the
// VRF-less fallback turns End.DT4/DT6 into End.DX4/DX6, and the remote end
// must know), the SID structure of the derivation, and nextHop (the CPE's
// WAN address) as next hop. want must come from desiredState for d.
func exportsFor(cfg Config, d srv6.Derivation, want dataplane.Desired, nextHop netip.Addr) []bgp.Export {
	var out []bgp.Export
	for i, s := range d.SIDs {
		sc := cfg.service(s.Name)
		if sc.RouteDistinguisher == "" || len(sc.ExportRTs) == 0 || len(sc.LANPrefixes) == 0 {
			continue
		}
		b := s.Behavior
		if i < len(want.LocalSIDs) && want.LocalSIDs[i].SID == s.SID {
			b = want.LocalSIDs[i].Behavior
		}
		out = append(out, bgp.Export{
			Instance:  s.Name,
			RD:        sc.RouteDistinguisher,
			ExportRTs: sc.ExportRTs,
			Prefixes:  sc.LANPrefixes,
			SID:       s.SID,
			Behavior:  b,
			Structure: d.Structure(),
			NextHop:   nextHop,
		})
	}
	return out
}

// importsFor is one bgp.ImportPolicy per service with import route targets,
// except that services of one VRF with the same import RTs (a VPN's End.DT4
// and End.DT6) share the first one's: their routes land in the same table,
// and the speaker then hands each route over once, not once per service.
func importsFor(cfg Config) []bgp.ImportPolicy {
	var out []bgp.ImportPolicy
	for _, s := range cfg.Services {
		if len(s.ImportRTs) == 0 {
			continue
		}
		if s.VRF != "" && slices.ContainsFunc(cfg.Services, func(o ServiceConfig) bool {
			return o.Name != s.Name && o.VRF == s.VRF && slices.Equal(o.ImportRTs, s.ImportRTs) &&
				slices.ContainsFunc(out, func(p bgp.ImportPolicy) bool { return p.Instance == o.Name })
		}) {
			continue
		}
		out = append(out, bgp.ImportPolicy{Instance: s.Name, ImportRTs: s.ImportRTs})
	}
	return out
}
