package agent

import (
	"fmt"
	"net/netip"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// validateBGP checks the bgp section and the services' VPN keys, naming
// every bad value. The VPN keys are accepted without a bgp section (a
// controller may send them first); they take effect once it exists.
func (c *Config) validateBGP() []error {
	var errs []error
	if c.BGP != nil {
		if err := c.BGP.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("bgp.%w", err))
		}
	}
	type rdPrefix struct {
		rd string
		p  netip.Prefix
	}
	exported := map[rdPrefix]string{}
	for i, sv := range c.Services {
		bad := func(format string, a ...any) {
			errs = append(errs, serviceError(i, sv.Name, format, a...))
		}
		if sv.RouteDistinguisher == "" && len(sv.ImportRTs) == 0 && len(sv.ExportRTs) == 0 {
			continue
		}
		b, err := parseServiceBehavior(sv.Behavior)
		if err != nil {
			continue // validateServices names it
		}
		v4, v6 := vpnFamilies(b)
		if !v4 && !v6 {
			bad("behavior: %s is not an L3VPN behaviour; route_distinguisher, import_rts and export_rts need End.DT4, End.DT6, End.DT46, End.DX4 or End.DX6", b)
			continue
		}
		if sv.RouteDistinguisher != "" {
			if err := bgp.CheckRD(sv.RouteDistinguisher); err != nil {
				bad("route_distinguisher: %w", err)
			}
		}
		for j, rt := range sv.ImportRTs {
			if err := bgp.CheckRT(rt); err != nil {
				bad("import_rts[%d]: %w", j, err)
			}
		}
		for j, rt := range sv.ExportRTs {
			if err := bgp.CheckRT(rt); err != nil {
				bad("export_rts[%d]: %w", j, err)
			}
		}
		switch {
		case len(sv.ExportRTs) > 0 && sv.RouteDistinguisher == "":
			bad("route_distinguisher: must be set to export (export_rts %v)", sv.ExportRTs)
		case sv.RouteDistinguisher != "" && len(sv.ExportRTs) == 0:
			bad("export_rts: route_distinguisher %s is set, but no route target to export with", sv.RouteDistinguisher)
		}
		if sv.RouteDistinguisher == "" {
			continue
		}
		for j, p := range sv.LANPrefixes {
			if p.Addr().Is4() && !v4 || !p.Addr().Is4() && !v6 {
				bad("lan_prefixes[%d]: %s cannot be exported with %s (wrong address family)", j, p, b)
				continue
			}
			k := rdPrefix{sv.RouteDistinguisher, p.Masked()}
			if other, dup := exported[k]; dup {
				bad("lan_prefixes[%d]: %s with route_distinguisher %s is also exported by service %q", j, p, sv.RouteDistinguisher, other)
				continue
			}
			exported[k] = sv.Name
		}
	}
	return errs
}

// vpnFamilies says which address families a service behaviour decapsulates.
func vpnFamilies(b srv6.Behavior) (v4, v6 bool) {
	switch b {
	case srv6.EndDT4, srv6.EndDX4:
		return true, false
	case srv6.EndDT6, srv6.EndDX6:
		return false, true
	case srv6.EndDT46:
		return true, true
	}
	return false, false
}
