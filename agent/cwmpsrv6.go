package agent

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// SRv6Object is the vendor object of ITU-T Q.Suppl.79's SRv6 elements.
const SRv6Object = "Device.X_ITU-INT_SRv6."

// Tables under SRv6Object.
const (
	serviceTable = SRv6Object + "Service."
	pathTable    = SRv6Object + "Path."
)

// Tunnel encapsulations of Service.{i}.TunnelEncapsulation.
const (
	tunnelSRH  = "SRH"
	tunnelIPv6 = "IPv6"
)

// Registration states of ConnectionStatus (§8.1).
const (
	connRegistered    = "Registered"
	connNotRegistered = "NotRegistered"
)

// maxInstances caps Service.{i} and Path.{i}: a controller cannot exhaust
// a CPE's memory or flash through AddObject.
const maxInstances = 64

// appendixAliases are the bare names of Q.Suppl.79 Appendix I: the
// device-wide ones, then those of the (single) service and path the
// appendix messages configure, which stand for instance 1.
var appendixAliases = [][2]string{
	{"IPv6Enable", SRv6Object + "Enable"},
	{"IPv6Prefix", SRv6Object + "IPv6Prefix"},
	{"SRv6Locator", SRv6Object + "Locator.SRv6Locator"},
	{"SRv6Locator.", SRv6Object + "Locator."},
	{"LocatorLength", SRv6Object + "LocatorLength"},
	{"FunctionLength", SRv6Object + "FunctionLength"},
	{"SupportedServices", SRv6Object + "SupportedServices"},
	{"ConnectionStatus", SRv6Object + "ConnectionStatus"},
	{"ServiceID", serviceTable + "1.ServiceID"},
	{"ServiceType", serviceTable + "1.ServiceType"},
	{"VPNInstance", serviceTable + "1.VPNInstance"},
	{"RouteDistinguisher", serviceTable + "1.RouteDistinguisher"},
	{"ImportRT", serviceTable + "1.ImportRT"},
	{"ExportRT", serviceTable + "1.ExportRT"},
	{"LocatorName", serviceTable + "1.LocatorName"},
	{"ServiceSID", serviceTable + "1.ServiceSID"},
	{"EndSID", serviceTable + "1.EndSID"},
	{"TunnelID", serviceTable + "1.TunnelID"},
	{"TunnelEncapsulation", serviceTable + "1.TunnelEncapsulation"},
	{"TunnelStatus", serviceTable + "1.TunnelStatus"},
	{"LANPrefixes", serviceTable + "1.LANPrefixes"},
	{"PathID", pathTable + "1.PathID"},
	{"SourceDevice", pathTable + "1.SourceDevice"},
	{"DestinationDevice", pathTable + "1.DestinationDevice"},
	{"SegmentList", pathTable + "1.SegmentList"},
	{"TargetBSID", pathTable + "1.TargetBSID"},
	{"PathPriority", pathTable + "1.PathPriority"},
	{"ConfigStatus", pathTable + "1.ConfigStatus"},
	{"ActivePathInfo", pathTable + "1.ActivePathInfo"},
	{"ErrorDetails", pathTable + "1.ErrorDetails"},
}

// register adds Device.X_ITU-INT_SRv6. to the client's tree t: the model's
// configuration (writable, applied atomically through the agent), what
// the agent derived and installed (read-only), the Appendix I aliases, and
// the registration state fed by the InformResponse.
func (m *srv6Model) register(t *cwmpclient.Tree) error {
	var errs []error
	reg := func(name string, p cwmpclient.Param) { errs = append(errs, t.Register(SRv6Object+name, p)) }
	regObj := func(name string, o cwmpclient.Object) { errs = append(errs, t.RegisterObject(SRv6Object+name, o)) }

	st := func() modelState { s, _ := m.snapshot(); return s }
	status := m.a.Status
	ro := func(typ cwmpclient.Type, f func() string) cwmpclient.Param {
		return cwmpclient.Param{Type: typ, Get: func([]uint32) (string, error) { return f(), nil }}
	}
	rw := func(typ cwmpclient.Type, get func() string, check func(string) error) cwmpclient.Param {
		return cwmpclient.Param{Type: typ, Writable: true, MaxLen: 256, Get: func([]uint32) (string, error) { return get(), nil },
			Validate: func(_ []uint32, v string) error { return check(v) }}
	}
	reg("Enable", cwmpclient.Param{Type: cwmpclient.TypeBoolean, Writable: true, ForcedInform: true,
		Get: func([]uint32) (string, error) { return strconv.FormatBool(!st().Disabled), nil }})
	// Active notification by default: a renumbering reaches the controller
	// at once (with the Stats_IP_Change_Reports, §8.3).
	active := func(p cwmpclient.Param) cwmpclient.Param { p.ForceActive = true; return p }
	reg("IPv6Prefix", active(ro(cwmpclient.TypeString, func() string { return prefixText(status().Prefix) })))
	reg("LocatorLength", rw(cwmpclient.TypeUnsignedInt, func() string { return strconv.Itoa(st().SRv6.LocatorLen) }, m.checkLocatorLen))
	reg("FunctionLength", rw(cwmpclient.TypeUnsignedInt, func() string { return strconv.Itoa(st().SRv6.FunctionLen) }, checkFunctionLen))
	reg("Extension", rw(cwmpclient.TypeString, func() string {
		if e := st().SRv6.Extension; e != nil {
			return fmt.Sprintf("%#x", uint64(*e))
		}
		return ""
	}, func(v string) error {
		if v == "" {
			return nil
		}
		_, err := srv6.ParseFunction(v)
		return err
	}))
	reg("SupportedServices", cwmpclient.Param{Type: cwmpclient.TypeString, ForcedInform: true,
		Get: func([]uint32) (string, error) { return ServiceL3VPN, nil }})
	reg("ConnectionStatus", ro(cwmpclient.TypeString, m.connectionStatus))

	reg("Locator.Name", rw(cwmpclient.TypeString, func() string { return st().SRv6.LocatorName }, checkName))
	reg("Locator.Prefix", active(ro(cwmpclient.TypeString, func() string { return prefixText(status().Locator) })))
	reg("Locator.Length", ro(cwmpclient.TypeUnsignedInt, func() string {
		if l := status().Locator; l.IsValid() {
			return strconv.Itoa(l.Bits())
		}
		return strconv.Itoa(st().SRv6.LocatorLen)
	}))
	reg("Locator.SRv6Locator", ro(cwmpclient.TypeString, func() string {
		s := status()
		if !s.Locator.IsValid() {
			return ""
		}
		return s.LocatorName + ": " + s.Locator.String()
	}))

	m.registerBGP(reg, regObj)
	m.registerServices(reg, regObj)
	m.registerPaths(reg, regObj)
	errs = append(errs, m.registerPolicies(t))
	t.AddCommitter(SRv6Object, &srv6Committer{m: m})
	for _, al := range appendixAliases {
		errs = append(errs, t.Alias(al[0], al[1]))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.syncInstances(t)
}

func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// checkLocatorLen refuses a length outside 1..127 or shorter than the
// delegated prefix the CPE has now.
func (m *srv6Model) checkLocatorLen(v string) error {
	n, _ := strconv.Atoi(v)
	if n < 1 || n > 127 {
		return fmt.Errorf("locator length %d is outside 1..127", n)
	}
	if p := m.a.Status().Prefix; p.IsValid() && n < p.Bits() {
		return fmt.Errorf("locator length %d does not fit the delegated prefix %s (at least %d)", n, p, p.Bits())
	}
	return nil
}

func checkFunctionLen(v string) error {
	if n, _ := strconv.Atoi(v); n < 1 || n > srv6.MaxFunctionLen {
		return fmt.Errorf("function length %d is outside 1..%d", n, srv6.MaxFunctionLen)
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$`)

func checkName(v string) error {
	if !namePattern.MatchString(v) {
		return fmt.Errorf("%q is not a name (1-64 letters, digits, _ . : @ -, starting with a letter or digit)", v)
	}
	return nil
}

func checkOptionalName(v string) error {
	if v == "" {
		return nil
	}
	return checkName(v)
}

func (m *srv6Model) connectionStatus() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connStatus
}

// onInformResponse records the registration state (§8.1): the
// ConnectionStatus the controller put in its InformResponse, or
// Registered for a plain successful one.
func (m *srv6Model) onInformResponse(extra map[string]string) {
	s := connRegistered
	if v := strings.TrimSpace(extra["ConnectionStatus"]); v != "" {
		s = v
	}
	m.mu.Lock()
	changed := m.connStatus != s
	m.connStatus = s
	m.mu.Unlock()
	if changed {
		m.log.Info("controller registration", zap.String("connection_status", s))
	}
}

// ---- BGP (read-only: the file's bgp section and the speaker's state) ----

func (m *srv6Model) registerBGP(reg func(string, cwmpclient.Param), regObj func(string, cwmpclient.Object)) {
	cfg := func() *bgp.Config { _, b := m.snapshot(); return b.BGP }
	get := func(f func(*bgp.Config, *BGPStatus) string) cwmpclient.Param {
		return cwmpclient.Param{Type: cwmpclient.TypeString, Get: func([]uint32) (string, error) { return f(cfg(), m.a.Status().BGP), nil }}
	}
	localAS := get(func(c *bgp.Config, _ *BGPStatus) string {
		if c == nil {
			return "0"
		}
		return strconv.FormatUint(uint64(c.LocalAS), 10)
	})
	localAS.Type = cwmpclient.TypeUnsignedInt
	reg("BGP.LocalAS", localAS)
	reg("BGP.RouterID", get(func(c *bgp.Config, _ *BGPStatus) string {
		if c == nil {
			return ""
		}
		return c.RouterID
	}))
	reg("BGP.PeerStatus", get(func(c *bgp.Config, s *BGPStatus) string { return peerStatus(c, s) }))
	n := get(func(c *bgp.Config, _ *BGPStatus) string {
		if c == nil {
			return "0"
		}
		return strconv.Itoa(len(c.Neighbors))
	})
	n.Type = cwmpclient.TypeUnsignedInt
	reg("BGP.NeighborNumberOfEntries", n)
	regObj("BGP.Neighbor.{i}.", cwmpclient.Object{Instances: func([]uint32) []uint32 {
		c := cfg()
		if c == nil {
			return nil
		}
		out := make([]uint32, len(c.Neighbors))
		for i := range out {
			out[i] = uint32(i + 1)
		}
		return out
	}})
	nb := func(typ cwmpclient.Type, f func(bgp.Neighbor, BGPPeerStatus) string) cwmpclient.Param {
		return cwmpclient.Param{Type: typ, Get: func(idx []uint32) (string, error) {
			c := cfg()
			i := int(idx[0]) - 1
			if c == nil || i < 0 || i >= len(c.Neighbors) {
				return "", fmt.Errorf("neighbor %d is gone", idx[0])
			}
			return f(c.Neighbors[i], peerOf(m.a.Status().BGP, c.Neighbors[i].Address)), nil
		}}
	}
	reg("BGP.Neighbor.{i}.Address", nb(cwmpclient.TypeString, func(n bgp.Neighbor, _ BGPPeerStatus) string { return n.Address }))
	reg("BGP.Neighbor.{i}.RemoteAS", nb(cwmpclient.TypeUnsignedInt, func(n bgp.Neighbor, _ BGPPeerStatus) string {
		return strconv.FormatUint(uint64(n.RemoteAS), 10)
	}))
	reg("BGP.Neighbor.{i}.State", nb(cwmpclient.TypeString, func(_ bgp.Neighbor, p BGPPeerStatus) string {
		if p.State == "" {
			return "idle"
		}
		return p.State
	}))
	reg("BGP.Neighbor.{i}.PrefixesReceived", nb(cwmpclient.TypeUnsignedLong, func(_ bgp.Neighbor, p BGPPeerStatus) string {
		return strconv.FormatUint(p.PrefixesReceived, 10)
	}))
	reg("BGP.Neighbor.{i}.PrefixesSent", nb(cwmpclient.TypeUnsignedLong, func(_ bgp.Neighbor, p BGPPeerStatus) string {
		return strconv.FormatUint(p.PrefixesSent, 10)
	}))
}

func peerOf(s *BGPStatus, addr string) BGPPeerStatus {
	if s == nil {
		return BGPPeerStatus{}
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return BGPPeerStatus{}
	}
	for _, p := range s.Peers {
		if p.Address == a {
			return p
		}
	}
	return BGPPeerStatus{}
}

// peerStatus sums the sessions up: Disabled without a bgp section,
// Established when every neighbour is, Partial when some are, else Down.
func peerStatus(c *bgp.Config, s *BGPStatus) string {
	if c == nil || len(c.Neighbors) == 0 {
		return "Disabled"
	}
	up := 0
	for _, n := range c.Neighbors {
		if peerOf(s, n.Address).State == "established" {
			up++
		}
	}
	switch up {
	case len(c.Neighbors):
		return "Established"
	case 0:
		return "Down"
	}
	return "Partial"
}

// ---- Service.{i} ----

// serviceField is one writable Service.{i} parameter: how to read it, how
// to check a value on its own, and how to set it on the model.
type serviceField struct {
	name  string
	typ   cwmpclient.Type
	get   func(modelService) string
	check func(string) error
	set   func(*modelService, string) error
}

var serviceFields = []serviceField{
	// An empty ServiceID, ServiceType, PathID, SegmentList or TargetBSID
	// unsets it: the instance is then not configured (its SID or BSID is
	// withdrawn) until it is set again.
	{name: "ServiceID", get: func(s modelService) string { return s.Config.Name }, check: checkOptionalName,
		set: func(s *modelService, v string) error { s.Config.Name = v; return nil }},
	{name: "ServiceType", get: func(s modelService) string { return s.Type }, check: checkServiceType,
		set: func(s *modelService, v string) error {
			if b, err := parseServiceBehavior(v); err == nil {
				s.Type, s.Config.Behavior, s.AutoBehavior = b.String(), b.String(), false
				return nil
			}
			if s.Type != v && v == ServiceL3VPN {
				if b, err := srv6.ParseBehavior(s.Config.Behavior); err != nil || !isVPN(b) {
					s.Config.Behavior = "" // picked again for the new type
				}
			}
			s.Type = v
			return nil
		}},
	{name: "Behavior", get: func(s modelService) string { return s.Config.Behavior },
		check: func(v string) error {
			if v == "" {
				return nil
			}
			_, err := parseServiceBehavior(v)
			return err
		},
		set: func(s *modelService, v string) error {
			if v != "" {
				b, _ := parseServiceBehavior(v)
				v = b.String()
			}
			s.Config.Behavior, s.AutoBehavior = v, v == ""
			return nil
		}},
	{name: "VPNInstance", get: func(s modelService) string { return s.Config.VRF }, check: func(v string) error {
		if v == "" {
			return nil
		}
		return checkIfName(v)
	}, set: func(s *modelService, v string) error {
		if s.Config.VRF != v {
			s.Config.Table = 0 // picked again for the new VPN
		}
		s.Config.VRF = v
		return nil
	}},
	{name: "Table", typ: cwmpclient.TypeUnsignedInt, get: func(s modelService) string { return strconv.Itoa(s.Config.Table) },
		check: func(string) error { return nil },
		set: func(s *modelService, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			s.Config.Table = int(n)
			return err
		}},
	{name: "Function", get: func(s modelService) string { return fmt.Sprintf("%#x", uint64(s.Config.Function)) },
		check: func(v string) error {
			if v == "" {
				return nil
			}
			_, err := srv6.ParseFunction(v)
			return err
		},
		set: func(s *modelService, v string) error {
			f, err := uint64(0), error(nil)
			if v != "" {
				f, err = srv6.ParseFunction(v)
			}
			s.Config.Function = Function(f)
			return err
		}},
	{name: "RouteDistinguisher", get: func(s modelService) string { return s.Config.RouteDistinguisher },
		check: func(v string) error {
			if v == "" {
				return nil
			}
			return bgp.CheckRD(v)
		},
		set: func(s *modelService, v string) error { s.Config.RouteDistinguisher = v; return nil }},
	{name: "ImportRT", get: func(s modelService) string { return strings.Join(s.Config.ImportRTs, ",") }, check: checkRTs,
		set: func(s *modelService, v string) error { s.Config.ImportRTs = splitList(v); return nil }},
	{name: "ExportRT", get: func(s modelService) string { return strings.Join(s.Config.ExportRTs, ",") }, check: checkRTs,
		set: func(s *modelService, v string) error { s.Config.ExportRTs = splitList(v); return nil }},
	{name: "LANPrefixes", get: func(s modelService) string { return joinPrefixes(s.Config.LANPrefixes) },
		check: func(v string) error { _, err := parsePrefixList(v); return err },
		set: func(s *modelService, v string) error {
			l, err := parsePrefixList(v)
			s.Config.LANPrefixes = l
			return err
		}},
	{name: "EndSID", get: func(s modelService) string { return s.EndSID },
		check: func(v string) error {
			if v == "" {
				return nil
			}
			_, err := srv6.ParseSID(v)
			return err
		},
		set: func(s *modelService, v string) error { s.EndSID = v; return nil }},
	{name: "TunnelID", get: func(s modelService) string { return s.TunnelID }, check: checkOptionalName,
		set: func(s *modelService, v string) error { s.TunnelID = v; return nil }},
	{name: "TunnelEncapsulation", get: func(s modelService) string { return cmp.Or(s.TunnelEncap, tunnelSRH) },
		check: func(v string) error {
			if v != tunnelSRH && v != tunnelIPv6 {
				return fmt.Errorf("%q is not one of %s, %s", v, tunnelSRH, tunnelIPv6)
			}
			return nil
		},
		set: func(s *modelService, v string) error { s.TunnelEncap = v; return nil }},
}

func isVPN(b srv6.Behavior) bool { v4, v6 := vpnFamilies(b); return v4 || v6 }

// checkServiceType accepts L3VPN, and the plain behaviour a file may give
// a service that is no VPN (End), as ServiceType reads it back.
func checkServiceType(v string) error {
	switch v {
	case "", ServiceL3VPN:
		return nil
	case ServiceVPWS:
		return errors.New("VPWS needs End.DX2, which this CPE's dataplane does not provide; SupportedServices lists L3VPN")
	}
	if b, err := parseServiceBehavior(v); err == nil && !isVPN(b) {
		return nil
	}
	return fmt.Errorf("%q is not a service type (SupportedServices: %s)", v, ServiceL3VPN)
}

func checkRTs(v string) error {
	for _, rt := range splitList(v) {
		if err := bgp.CheckRT(rt); err != nil {
			return err
		}
	}
	return nil
}

func (m *srv6Model) registerServices(reg func(string, cwmpclient.Param), regObj func(string, cwmpclient.Object)) {
	svc := func(idx []uint32) (modelService, bool) {
		st, _ := m.snapshot()
		i := st.serviceIndex(idx[0])
		if i < 0 {
			return modelService{}, false
		}
		return st.Services[i], true
	}
	reg("ServiceNumberOfEntries", cwmpclient.Param{Type: cwmpclient.TypeUnsignedInt, Get: func([]uint32) (string, error) {
		st, _ := m.snapshot()
		return strconv.Itoa(len(st.Services)), nil
	}})
	regObj("Service.{i}.", cwmpclient.Object{Writable: true, MaxInstances: maxInstances,
		OnAdd: func(idx []uint32) error {
			return m.edit(func(st *modelState) error {
				st.Services = append(st.Services, modelService{Inst: idx[0], TunnelEncap: tunnelSRH})
				return nil
			})
		},
		OnDelete: func(idx []uint32) error {
			return m.edit(func(st *modelState) error {
				if i := st.serviceIndex(idx[0]); i >= 0 {
					st.Services = append(st.Services[:i], st.Services[i+1:]...)
				}
				return nil
			})
		}})
	for _, f := range serviceFields {
		reg("Service.{i}."+f.name, cwmpclient.Param{Type: f.typ, Writable: true, MaxLen: 1024,
			Get: func(idx []uint32) (string, error) {
				s, _ := svc(idx)
				return f.get(s), nil
			},
			Validate: func(_ []uint32, v string) error { return f.check(v) }})
	}
	// Checked against the model at commit, never stored: the CPE derives.
	reg("Service.{i}.LocatorName", cwmpclient.Param{Type: cwmpclient.TypeString, Writable: true, MaxLen: 64,
		Get: func([]uint32) (string, error) { st, _ := m.snapshot(); return st.SRv6.LocatorName, nil }, Validate: func(_ []uint32, v string) error { return checkName(v) }})
	reg("Service.{i}.ServiceSID", cwmpclient.Param{Type: cwmpclient.TypeString, Writable: true, MaxLen: 256,
		Get: func(idx []uint32) (string, error) {
			s, ok := svc(idx)
			if !ok {
				return "", nil
			}
			if sid, ok := m.installedSID(s.Config.Name); ok {
				return sid.SID.String(), nil
			}
			return "", nil
		},
		Validate: func(_ []uint32, v string) error { _, err := srv6.ParseSID(v); return err }})
	reg("Service.{i}.TunnelStatus", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		s, _ := svc(idx)
		return m.tunnelStatus(s), nil
	}})
}

// installedSID is the agent's report of the named service's SID.
func (m *srv6Model) installedSID(name string) (SIDStatus, bool) {
	for _, s := range m.a.Status().SIDs {
		if s.Name == name {
			return s, true
		}
	}
	return SIDStatus{}, false
}

// tunnelStatus is Up when the service's SID is in the kernel, Down when it
// is configured but not (yet) installed, Disabled with Enable false, and
// NotConfigured until ServiceID and ServiceType are set.
func (m *srv6Model) tunnelStatus(s modelService) string {
	st, _ := m.snapshot()
	switch {
	case !s.complete():
		return "NotConfigured"
	case st.Disabled:
		return "Disabled"
	}
	status := m.a.Status()
	if sid, ok := m.installedSID(s.Config.Name); ok && sid.Installed != "" && status.State == StateApplied {
		return "Up"
	}
	return "Down"
}

// ---- Path.{i} ----

type pathField struct {
	name  string
	typ   cwmpclient.Type
	get   func(modelPath) string
	check func(string) error
	set   func(*modelPath, string) error
}

var pathFields = []pathField{
	{name: "PathID", get: func(p modelPath) string { return p.Config.ID }, check: checkOptionalName,
		set: func(p *modelPath, v string) error { p.Config.ID = v; return nil }},
	{name: "SourceDevice", get: func(p modelPath) string { return p.Config.Source }, check: checkOptionalName,
		set: func(p *modelPath, v string) error { p.Config.Source = v; return nil }},
	{name: "DestinationDevice", get: func(p modelPath) string { return p.Config.Destination }, check: checkOptionalName,
		set: func(p *modelPath, v string) error { p.Config.Destination = v; return nil }},
	{name: "SegmentList", get: func(p modelPath) string {
		if !p.HaveSegments {
			return ""
		}
		return formatSegments(p.Config.Segments)
	}, check: func(v string) error {
		if v == "" {
			return nil
		}
		_, err := srv6.ParseSegmentList(v)
		return err
	},
		set: func(p *modelPath, v string) error {
			if v == "" {
				p.Config.Segments, p.HaveSegments = nil, false
				return nil
			}
			l, err := srv6.ParseSegmentList(v)
			p.Config.Segments, p.HaveSegments = Segments(srv6.Addrs(l)), err == nil
			return err
		}},
	{name: "TargetBSID", get: func(p modelPath) string {
		if !p.HaveBSID {
			return ""
		}
		return p.Config.BSID.String()
	}, check: func(v string) error {
		if v == "" {
			return nil
		}
		s, err := srv6.ParseSID(v)
		if err == nil && s.Behavior != 0 && s.Behavior != srv6.EndB6Encaps {
			err = fmt.Errorf("a binding SID performs End.B6.Encaps, not %s", s.Behavior)
		}
		return err
	},
		set: func(p *modelPath, v string) error {
			if v == "" {
				p.Config.BSID, p.HaveBSID = netip.Addr{}, false
				return nil
			}
			s, err := srv6.ParseSID(v)
			p.Config.BSID, p.HaveBSID = s.Addr, err == nil
			return err
		}},
	{name: "PathPriority", typ: cwmpclient.TypeUnsignedInt, get: func(p modelPath) string { return strconv.FormatUint(uint64(p.Config.Priority), 10) },
		check: func(string) error { return nil },
		set: func(p *modelPath, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			p.Config.Priority = uint32(n)
			return err
		}},
}

func formatSegments(segs []netip.Addr) string {
	l := make([]srv6.SID, len(segs))
	for i, a := range segs {
		l[i] = srv6.SID{Addr: a}
	}
	return srv6.FormatSegmentList(l)
}

func (m *srv6Model) registerPaths(reg func(string, cwmpclient.Param), regObj func(string, cwmpclient.Object)) {
	path := func(idx []uint32) modelPath {
		st, _ := m.snapshot()
		if i := st.pathIndex(idx[0]); i >= 0 {
			return st.Paths[i]
		}
		return modelPath{}
	}
	reg("PathNumberOfEntries", cwmpclient.Param{Type: cwmpclient.TypeUnsignedInt, Get: func([]uint32) (string, error) {
		st, _ := m.snapshot()
		return strconv.Itoa(len(st.Paths)), nil
	}})
	regObj("Path.{i}.", cwmpclient.Object{Writable: true, MaxInstances: maxInstances,
		OnAdd: func(idx []uint32) error {
			return m.edit(func(st *modelState) error {
				st.Paths = append(st.Paths, modelPath{Inst: idx[0]})
				return nil
			})
		},
		OnDelete: func(idx []uint32) error {
			return m.edit(func(st *modelState) error {
				if i := st.pathIndex(idx[0]); i >= 0 {
					st.Paths = append(st.Paths[:i], st.Paths[i+1:]...)
				}
				return nil
			})
		}})
	for _, f := range pathFields {
		reg("Path.{i}."+f.name, cwmpclient.Param{Type: f.typ, Writable: true, MaxLen: 4096,
			Get:      func(idx []uint32) (string, error) { return f.get(path(idx)), nil },
			Validate: func(_ []uint32, v string) error { return f.check(v) }})
	}
	reg("Path.{i}.ConfigStatus", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		s, _ := m.pathStatus(path(idx))
		return s, nil
	}})
	reg("Path.{i}.ErrorDetails", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		_, d := m.pathStatus(path(idx))
		return d, nil
	}})
	reg("Path.{i}.ActivePathInfo", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		p := path(idx)
		s, _ := m.pathStatus(p)
		return m.activePathInfo(p, s), nil
	}})
}

// activePathInfo is ActivePathInfo of path p in state status: its list and
// measured latency while Active, empty otherwise.
func (m *srv6Model) activePathInfo(p modelPath, status string) string {
	if status != "Active" {
		return ""
	}
	return "SegmentList=" + formatSegments(p.Config.Segments) + "; " + m.a.probes.latency(p.Config.Segments)
}

// pathViews is every dynamic path as Path.{i} reports it, for the control
// socket.
func (m *srv6Model) pathViews() []ControlPathView {
	st, _ := m.snapshot()
	out := make([]ControlPathView, 0, len(st.Paths))
	for _, p := range st.Paths {
		status, details := m.pathStatus(p)
		c := p.Config
		out = append(out, ControlPathView{Instance: p.Inst, ID: c.ID, Source: c.Source, Destination: c.Destination,
			Segments: c.Segments, BSID: c.BSID, Priority: c.Priority,
			Status: status, Details: details, ActivePathInfo: m.activePathInfo(p, status)})
	}
	return out
}

// pathStatus is Active (its BSID is installed), Standby (another path
// holds its BSID with a better priority), Incomplete, Disabled, Pending
// (no delegated prefix applied yet) or Error with the reason.
func (m *srv6Model) pathStatus(p modelPath) (string, string) {
	st, base := m.snapshot()
	switch {
	case !p.complete():
		return "Incomplete", "PathID, SegmentList and TargetBSID must be set"
	case st.Disabled:
		return "Disabled", ""
	}
	status := m.a.Status()
	if status.State != StateApplied || !status.Locator.IsValid() {
		return "Pending", "no delegated prefix applied yet"
	}
	eff := st.apply(base)
	d := srv6.Derivation{Locator: status.Locator}
	for _, s := range status.SIDs {
		d.SIDs = append(d.SIDs, srv6.ServiceSID{Name: s.Name, SID: s.SID})
	}
	active, problems := activePaths(&eff, d, m.caps)
	for i, q := range eff.Paths.List {
		if q.ID != p.Config.ID {
			continue
		}
		if err := problems[i]; err != nil {
			return "Error", err.Error()
		}
		if active[q.BSID] == i {
			return steerStatus(&eff, d, m.caps, i)
		}
		return "Standby", fmt.Sprintf("BSID %s is held by path %q with a better priority", q.BSID, eff.Paths.List[active[q.BSID]].ID)
	}
	return "Error", "not configured"
}

// ---- commits ----

// edit applies f to a copy of the model and makes it the configuration
// (AddObject / DeleteObject); a configuration that fails the checks is
// refused with the reasons and changes nothing.
func (m *srv6Model) edit(f func(*modelState) error) error {
	if m.isSyncing() {
		return nil
	}
	st, _ := m.snapshot()
	cand := st.clone()
	if err := f(&cand); err != nil {
		return err
	}
	cand.fillDefaults(m.caps)
	if _, _, err := m.check(cand); err != nil {
		return cwmpclient.NewFault(cwmpclient.FaultRequestDenied, "%v", err)
	}
	if err := m.replace(cand); err != nil {
		return cwmpclient.NewFault(cwmpclient.FaultInternal, "%v", err)
	}
	return nil
}

func (m *srv6Model) isSyncing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncing
}

// srv6Committer applies a SetParameterValues on the SRv6 object as one new
// configuration: it is built from the model and every change, checked as a
// whole, and handed to the agent's Reload; any problem refuses all of it.
type srv6Committer struct {
	m    *srv6Model
	prev *modelState // the model before the last successful Commit
}

// changeRef is what a change touches: the field name and, for an
// instance, its position among the configured services or paths.
type changeRef struct {
	ch    cwmpclient.Change
	field string
	table string // "", "Service" or "Path"
	inst  uint32
}

func refOf(ch cwmpclient.Change) changeRef {
	r := changeRef{ch: ch}
	rest := strings.TrimPrefix(ch.Template, SRv6Object)
	switch {
	case strings.HasPrefix(rest, "Service.{i}."):
		r.table, r.field, r.inst = "Service", strings.TrimPrefix(rest, "Service.{i}."), ch.Idx[0]
	case strings.HasPrefix(rest, "Path.{i}."):
		r.table, r.field, r.inst = "Path", strings.TrimPrefix(rest, "Path.{i}."), ch.Idx[0]
	default:
		r.field = rest
	}
	return r
}

func (c *srv6Committer) Commit(_ cwmpclient.Values, changes []cwmpclient.Change) error {
	m := c.m
	st, _ := m.snapshot()
	cand := st.clone()
	var faults []cwmpclient.SPVFault
	fault := func(r changeRef, format string, a ...any) {
		faults = append(faults, cwmpclient.SPVFault{Name: r.ch.Name, Code: cwmpclient.FaultInvalidValue, String: fmt.Sprintf(format, a...)})
	}
	refs := make([]changeRef, len(changes))
	for i, ch := range changes {
		r := refOf(ch)
		refs[i] = r
		if err := cand.set(r); err != nil {
			fault(r, "%v", err)
		}
	}
	if len(faults) > 0 {
		return spvFault(faults)
	}
	cand.fillDefaults(m.caps)
	eff, d, err := m.check(cand)
	if err != nil {
		return spvFault(attribute(err, refs, cand))
	}
	// The controller's view of what the CPE derives must be the CPE's.
	for _, r := range refs {
		switch r.field {
		case "ServiceSID":
			i := cand.serviceIndex(r.inst)
			s := cand.Services[i]
			claimed, _ := srv6.ParseSID(r.ch.New)
			switch {
			case !s.complete():
				fault(r, "service instance %d has no ServiceID and ServiceType yet: no SID to compare %s with", r.inst, claimed.Addr)
			case cand.Disabled:
				fault(r, "SRv6 is disabled (Enable false): service %q has no SID to compare %s with", s.Config.Name, claimed.Addr)
			case !d.Locator.IsValid():
				fault(r, "no delegated prefix yet: the CPE cannot derive the SID of service %q to compare %s with", s.Config.Name, claimed.Addr)
			default:
				sid, ok := d.SID(s.Config.Name)
				switch {
				case !ok:
					fault(r, "service %q has no derived SID to compare %s with", s.Config.Name, claimed.Addr)
				case sid.SID != claimed.Addr:
					fault(r, "ServiceSID %s differs from the SID the CPE derives for service %q: %s (locator %s, function %#x)",
						claimed.Addr, s.Config.Name, sid.SID, d.Locator, sid.Function)
				}
			}
		case "LocatorName":
			if r.ch.New != eff.SRv6.LocatorName {
				fault(r, "LocatorName %q is not this CPE's locator %q", r.ch.New, eff.SRv6.LocatorName)
			}
		}
	}
	if len(faults) > 0 {
		return spvFault(faults)
	}
	if reflect.DeepEqual(cand, st) {
		c.prev = nil
		return nil // only checks (ServiceSID, LocatorName): nothing to change
	}
	if err := m.replace(cand); err != nil {
		return cwmpclient.NewFault(cwmpclient.FaultInternal, "apply: %v", err)
	}
	c.prev = &st
	m.log.Info("controller configured SRv6", zap.Int("changes", len(changes)), zap.Int("services", len(eff.Services)), zap.Int("paths", len(eff.Paths.List)))
	return nil
}

// Rollback restores the model before the last Commit when a later
// committer of the same SetParameterValues failed.
func (c *srv6Committer) Rollback(cwmpclient.Values, []cwmpclient.Change) {
	if c.prev == nil {
		return
	}
	if err := c.m.replace(*c.prev); err != nil {
		c.m.log.Error("cannot roll the SRv6 configuration back", zap.Error(err))
	}
	c.prev = nil
}

// spvFault is a 9003 with one entry per parameter; its string repeats
// them, for an ACS that shows only the FaultString.
func spvFault(f []cwmpclient.SPVFault) error {
	parts := make([]string, len(f))
	for i, e := range f {
		parts[i] = e.Name + ": " + e.String
	}
	return &cwmpclient.Fault{Code: cwmpclient.FaultInvalidArguments, String: "Invalid arguments: " + strings.Join(parts, "; "), SPV: f}
}

// set applies one change to the model.
func (st *modelState) set(r changeRef) error {
	v := r.ch.New
	switch r.table {
	case "Service":
		i := st.serviceIndex(r.inst)
		if i < 0 {
			return fmt.Errorf("service instance %d is gone", r.inst)
		}
		for _, f := range serviceFields {
			if f.name == r.field {
				return f.set(&st.Services[i], v)
			}
		}
		return nil // LocatorName, ServiceSID: checked, not stored
	case "Path":
		i := st.pathIndex(r.inst)
		if i < 0 {
			return fmt.Errorf("path instance %d is gone", r.inst)
		}
		for _, f := range pathFields {
			if f.name == r.field {
				return f.set(&st.Paths[i], v)
			}
		}
		return nil
	}
	switch r.field {
	case "Enable":
		st.Disabled = v != "true"
	case "LocatorLength":
		st.SRv6.LocatorLen, _ = strconv.Atoi(v)
	case "FunctionLength":
		st.SRv6.FunctionLen, _ = strconv.Atoi(v)
	case "Extension":
		if v == "" {
			st.SRv6.Extension = nil
			return nil
		}
		e, err := srv6.ParseFunction(v)
		f := Function(e)
		st.SRv6.Extension = &f
		return err
	case "Locator.Name":
		st.SRv6.LocatorName = v
	default:
		return fmt.Errorf("%s is not writable", r.ch.Name)
	}
	return nil
}

// fieldKeys maps the agent config's keys (as its errors name them) onto
// the CWMP parameters.
var fieldKeys = map[string]string{
	"name": "ServiceID", "behavior": "Behavior", "function": "Function", "table": "Table", "vrf": "VPNInstance",
	"route_distinguisher": "RouteDistinguisher", "import_rts": "ImportRT", "export_rts": "ExportRT",
	"lan_prefixes": "LANPrefixes", "nexthop": "Behavior",
	"id": "PathID", "bsid": "TargetBSID", "segments": "SegmentList", "priority": "PathPriority",
}

var srv6Keys = map[string][]string{
	"locator_len": {"LocatorLength"}, "function_len": {"FunctionLength"}, "locator length": {"LocatorLength", "FunctionLength"},
	"function length": {"FunctionLength"}, "extension": {"Extension"}, "locator_name": {"Locator.Name"},
}

var indexed = regexp.MustCompile(`(services|paths\.list)\[(\d+)\]`)

// attribute turns the errors of a rejected configuration into per-parameter
// faults: each problem goes to the changed parameters it names, or to every
// changed parameter when it names none of them.
func attribute(err error, refs []changeRef, cand modelState) []cwmpclient.SPVFault {
	// Configured position -> instance.
	var svcInst, pathInst []uint32
	if !cand.Disabled {
		for _, s := range cand.Services {
			if s.complete() {
				svcInst = append(svcInst, s.Inst)
			}
		}
		for _, p := range cand.Paths {
			if p.complete() {
				pathInst = append(pathInst, p.Inst)
			}
		}
	}
	msgs := map[int][]string{}
	for _, line := range strings.Split(err.Error(), "\n") {
		var hit []int
		match := func(i int) {
			if !slices.Contains(hit, i) {
				hit = append(hit, i)
			}
		}
		if sm := indexed.FindStringSubmatch(line); sm != nil {
			k, _ := strconv.Atoi(sm[2])
			insts, table := svcInst, "Service"
			if sm[1] != "services" {
				insts, table = pathInst, "Path"
			}
			field := ""
			if j := strings.Index(line, "]"); j >= 0 {
				after := line[j+1:]
				if p := strings.Index(after, ")."); p >= 0 {
					after = after[p+2:]
				} else {
					after = strings.TrimPrefix(after, ".")
				}
				if c := strings.IndexAny(after, ":. ["); c >= 0 {
					field = fieldKeys[after[:c]]
				}
			}
			var sameInst []int
			for i, r := range refs {
				if r.table == table && k < len(insts) && insts[k] == r.inst {
					sameInst = append(sameInst, i)
					if r.field == field || (field == "Behavior" && r.field == "ServiceType") {
						match(i)
					}
				}
			}
			if len(hit) == 0 {
				hit = sameInst
			}
		} else {
			for key, fields := range srv6Keys {
				if strings.Contains(line, key) {
					for i, r := range refs {
						for _, f := range fields {
							if r.table == "" && r.field == f {
								match(i)
							}
						}
					}
				}
			}
			for i, r := range refs {
				if r.table == "Service" {
					if s := cand.serviceIndex(r.inst); s >= 0 && cand.Services[s].Config.Name != "" &&
						strings.Contains(line, strconv.Quote(cand.Services[s].Config.Name)) {
						match(i)
					}
				}
			}
		}
		if len(hit) == 0 {
			for i := range refs {
				hit = append(hit, i)
			}
		}
		for _, i := range hit {
			msgs[i] = append(msgs[i], line)
		}
	}
	var out []cwmpclient.SPVFault
	for i, r := range refs {
		if l := msgs[i]; len(l) > 0 {
			out = append(out, cwmpclient.SPVFault{Name: r.ch.Name, Code: cwmpclient.FaultInvalidValue, String: strings.Join(l, "; ")})
		}
	}
	return out
}

// ---- instance numbers ----

// numberInstances gives each entry of insts an instance of table in the
// tree: a number the tree has keeps it (once), unnumbered entries take the
// unclaimed instances in order, then new ones (AddObject). It returns the
// instances no entry claimed.
func numberInstances(t *cwmpclient.Tree, table string, insts []*uint32) ([]uint32, error) {
	have := t.Instances(table)
	claimed := map[uint32]bool{}
	for _, p := range insts {
		if *p != 0 && slices.Contains(have, *p) && !claimed[*p] {
			claimed[*p] = true
		} else {
			*p = 0
		}
	}
	var free []uint32
	for _, n := range have {
		if !claimed[n] {
			free = append(free, n)
		}
	}
	var errs []error
	for _, p := range insts {
		if *p != 0 {
			continue
		}
		if len(free) > 0 {
			*p, free = free[0], free[1:]
			continue
		}
		n, err := t.AddObject(table, t.ParameterKey())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", table, err))
			continue
		}
		*p = n
	}
	return free, errors.Join(errs...)
}

// syncInstances makes the tree's Service and Path instances those of the
// model: model entries keep their numbers, unnumbered ones (from the
// config file) take the tree's unclaimed instances in order or new ones,
// and tree instances the model lacks become empty entries. A table never
// used gets instance 1, which the Appendix I bare names stand for.
func (m *srv6Model) syncInstances(t *cwmpclient.Tree) error {
	m.mu.Lock()
	m.syncing = true
	m.mu.Unlock()
	defer func() { m.mu.Lock(); m.syncing = false; m.mu.Unlock() }()

	st, _ := m.snapshot()
	st = st.clone()
	var errs []error
	sync := func(table string, insts []*uint32, adopt func(uint32)) {
		free, err := numberInstances(t, table, insts)
		if err != nil {
			errs = append(errs, err)
		}
		for _, n := range free {
			adopt(n)
		}
		if len(insts) == 0 && len(free) == 0 { // a table never used
			if n, err := t.AddObject(table, t.ParameterKey()); err == nil {
				adopt(n)
			} else {
				errs = append(errs, fmt.Errorf("%s: %w", table, err))
			}
		}
	}
	var sp []*uint32
	for i := range st.Services {
		sp = append(sp, &st.Services[i].Inst)
	}
	sync(serviceTable, sp, func(n uint32) { st.Services = append(st.Services, modelService{Inst: n, TunnelEncap: tunnelSRH}) })
	var pp []*uint32
	for i := range st.Paths {
		pp = append(pp, &st.Paths[i].Inst)
	}
	sync(pathTable, pp, func(n uint32) { st.Paths = append(st.Paths, modelPath{Inst: n}) })
	errs = append(errs, syncPolicyInstances(t, &st))

	m.mu.Lock()
	m.st = st
	owned := m.owned
	m.mu.Unlock()
	if owned {
		if err := m.save(st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
