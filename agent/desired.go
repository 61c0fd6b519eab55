package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// derive runs clause 6.2 for the configured services on prefix.
func derive(cfg Config, prefix netip.Prefix) (srv6.Derivation, error) {
	svcs := make([]srv6.Service, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		b, err := parseServiceBehavior(s.Behavior)
		if err != nil {
			return srv6.Derivation{}, fmt.Errorf("service %q: behavior: %w", s.Name, err)
		}
		svcs = append(svcs, srv6.Service{Name: s.Name, Behavior: b, Function: uint64(s.Function)})
	}
	var ext *uint64
	if cfg.SRv6.Extension != nil {
		e := uint64(*cfg.SRv6.Extension)
		ext = &e
	}
	return srv6.Derive(prefix, cfg.SRv6.LocatorLen, cfg.SRv6.FunctionLen, ext, svcs)
}

// useVRF says whether VPN services get VRFs (End.DT4/DT46 with vrftable) or
// the VRF-less fallback: one VPN decapsulated into the main table.
func useVRF(caps dataplane.Capabilities) bool { return caps.VRF && caps.EndDT4 }

// checkKernel reports what cfg asks of the kernel that caps cannot give. It
// needs no prefix, so New and Reload run it before anything is applied.
func checkKernel(cfg Config, caps dataplane.Capabilities) error {
	var errs []error
	vrf := useVRF(caps)
	firstOfVRF := map[string]string{}
	var vpns []string // first service of each VRF, in config order
	for _, s := range cfg.Services {
		b, err := parseServiceBehavior(s.Behavior)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: behavior: %w", s.Name, err))
			continue
		}
		switch {
		case b == srv6.EndDT46 && !(vrf && caps.EndDT46):
			errs = append(errs, fmt.Errorf("service %q: End.DT46 needs VRF support (End.DT46 with vrftable), which this kernel lacks; configure an End.DT4 and an End.DT6 service instead", s.Name))
		case b == srv6.EndDT6 && s.VRF == "" && !caps.EndDT6Table:
			errs = append(errs, fmt.Errorf("service %q: this kernel cannot install End.DT6 with a table", s.Name))
		}
		if s.VRF != "" {
			if _, ok := firstOfVRF[s.VRF]; !ok {
				firstOfVRF[s.VRF] = s.Name
				vpns = append(vpns, s.Name)
			}
		}
	}
	if !vrf && len(vpns) > 1 {
		a, b := cfg.service(vpns[0]), cfg.service(vpns[1])
		errs = append(errs, fmt.Errorf("services %q (vrf %q) and %q (vrf %q) are two VPNs, but this kernel has no VRF support: only one VPN can use the main-table fallback", a.Name, a.VRF, b.Name, b.VRF))
	}
	if !caps.EncapRed {
		if cfg.SRv6.EncapMode == EncapModeRed {
			errs = append(errs, errors.New("srv6.encap_mode: encap.red is not supported by this kernel"))
		}
		for i, r := range cfg.Remote {
			if r.EncapMode == EncapModeRed {
				errs = append(errs, fmt.Errorf("remote[%d].encap_mode: encap.red is not supported by this kernel", i))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Config) service(name string) ServiceConfig {
	for _, s := range c.Services {
		if s.Name == name {
			return s
		}
	}
	return ServiceConfig{}
}

// vrfTables maps each VRF name to its table (Validate guarantees one table per VRF).
func (c *Config) vrfTables() map[string]int {
	m := map[string]int{}
	for _, s := range c.Services {
		if s.VRF != "" && s.Table != 0 {
			m[s.VRF] = s.Table
		}
	}
	return m
}

// desiredState is the whole dataplane the agent wants for cfg, the SIDs
// derived from the current prefix, what the kernel can do and the routes
// BGP imported (see importedEncaps), with the policies on the choices
// their selectors start with. It is pure: the same inputs always give the
// same state (DESIGN.md "Kernel facts").
func desiredState(cfg Config, d srv6.Derivation, caps dataplane.Capabilities, imported ...bgp.Route) (dataplane.Desired, error) {
	out, _, err := desiredWith(cfg, d, caps, startChoices(&cfg), imported)
	return out, err
}

// desiredNotes says what of the inputs the desired state leaves out: parts
// of the policies, by policy name, and learned routes (importedEncaps).
type desiredNotes struct {
	policies map[string][]string
	skipped  []string
}

// desiredWith is desiredState with the policies' services on choices; it
// also returns what it left out and why.
func desiredWith(cfg Config, d srv6.Derivation, caps dataplane.Capabilities, choices policyChoices, imported []bgp.Route) (dataplane.Desired, desiredNotes, error) {
	if err := checkKernel(cfg, caps); err != nil {
		return dataplane.Desired{}, desiredNotes{}, err
	}
	vrf := useVRF(caps)
	tables := cfg.vrfTables()
	dev := cfg.WAN.Interface
	out := dataplane.Desired{Locators: []netip.Prefix{d.Locator}}

	if vrf {
		seen := map[string]bool{}
		for _, s := range cfg.Services {
			if s.VRF != "" && !seen[s.VRF] {
				seen[s.VRF] = true
				out.VRFs = append(out.VRFs, dataplane.VRF{Name: s.VRF, Table: tables[s.VRF]})
			}
		}
	}

	for _, sid := range d.SIDs {
		s := cfg.service(sid.Name)
		if s.Name == "" {
			return dataplane.Desired{}, desiredNotes{}, fmt.Errorf("derived SID %s for unknown service %q", sid.SID, sid.Name)
		}
		l := dataplane.LocalSID{SID: sid.SID, Behavior: sid.Behavior, Dev: dev}
		switch sid.Behavior {
		case srv6.End:
		case srv6.EndDT4, srv6.EndDT46:
			if vrf {
				l.VRF, l.Table = s.VRF, tables[s.VRF]
			} else {
				// Decapsulate and look the inner destination up in the main table.
				l.Behavior, l.NH4 = srv6.EndDX4, netip.IPv4Unspecified()
			}
		case srv6.EndDT6:
			switch {
			case s.VRF == "":
				l.Table = s.Table
			case vrf:
				l.VRF, l.Table = s.VRF, tables[s.VRF]
			default:
				// The VPN lives in the main table: same fallback as End.DT4.
				l.Behavior, l.NH6 = srv6.EndDX6, netip.IPv6Unspecified()
			}
		case srv6.EndDX4:
			l.NH4 = s.NextHop
			if !l.NH4.IsValid() {
				l.NH4 = netip.IPv4Unspecified()
			}
		case srv6.EndDX6:
			l.NH6 = s.NextHop
			if !l.NH6.IsValid() {
				l.NH6 = netip.IPv6Unspecified()
			}
		default:
			return dataplane.Desired{}, desiredNotes{}, fmt.Errorf("service %q: behaviour %s cannot be a service SID", s.Name, sid.Behavior)
		}
		out.LocalSIDs = append(out.LocalSIDs, l)
	}

	for _, r := range cfg.Remote {
		e := dataplane.EncapRoute{
			Prefix:   r.Prefix,
			Table:    r.Table,
			Segments: append([]netip.Addr(nil), r.Segments...),
			Mode:     dataplane.Encap,
			Dev:      dev,
		}
		if r.VRF != "" && vrf {
			e.VRF, e.Table = r.VRF, tables[r.VRF]
		}
		mode := r.EncapMode
		if mode == "" {
			mode = cfg.SRv6.EncapMode
		}
		if mode == EncapModeRed {
			e.Mode = dataplane.EncapRed
		}
		out.Encaps = append(out.Encaps, e)
	}
	out.BSIDs = pathBSIDs(&cfg, d, caps)
	learned, skipped := importedEncaps(cfg, d, vrf, imported)
	steered, notes := policyEncaps(&cfg, caps, choices, learned, imported)
	learned = steerPaths(&cfg, d, caps, learned, imported)
	if len(out.Encaps) == 0 {
		out.Encaps = learned // no static routes: no copy of a large table
	} else {
		out.Encaps = append(slices.Grow(out.Encaps, len(learned)+len(steered)), learned...)
	}
	out.Encaps = append(out.Encaps, steered...)
	var flowNotes map[string][]string
	out.FlowRules, flowNotes = policyFlowRules(&cfg, caps)
	for name, n := range flowNotes {
		notes[name] = append(notes[name], n...)
	}
	out.SIDFilter, out.TunnelSource = sidFilter(cfg, d, imported)
	out = withHMAC(cfg, out)
	// The dataplane's own check, so a reload is refused before any Apply.
	if err := out.Validate(caps, dev); err != nil {
		return dataplane.Desired{}, desiredNotes{}, err
	}
	return out, desiredNotes{policies: notes, skipped: skipped}, nil
}
