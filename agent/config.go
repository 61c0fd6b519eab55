package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// Config is the daemon's configuration file. New sections (acs, bgp, stamp)
// are added as further fields; KnownFields decoding rejects anything else, so
// a misspelt key is an error that names it and its line.
type Config struct {
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"log_level"`
	// StateDir holds status.json and the last derived prefix.
	StateDir string               `yaml:"state_dir"`
	Identity board.IdentityConfig `yaml:"identity"`
	WAN      WANConfig            `yaml:"wan"`
	SRv6     SRv6Config           `yaml:"srv6"`
	Services []ServiceConfig      `yaml:"services"`
	// Remote holds static encap routes; BGP adds learned ones later.
	Remote []RemoteRoute `yaml:"remote"`
	// BGP runs the embedded speaker for the SRv6 L3VPN services (see
	// bgp.Config); nil (no bgp section) runs none.
	BGP *bgp.Config `yaml:"bgp"`
	// ACS configures the CWMP (TR-069) client; no acs.url runs none.
	ACS ACSConfig `yaml:"acs"`
	// MemoryLimit is the Go runtime's soft memory target, set by the daemon
	// at start unless the GOMEMLIMIT environment variable is set (which
	// also removes it: GOMEMLIMIT=off); unset: DefaultMemoryLimit.
	MemoryLimit ByteSize `yaml:"memory_limit"`
	// ControlSocket is the unix socket of the control API srv6cpectl
	// talks to (see DefaultControlSocket); empty serves none. Read at
	// start: a change takes a restart.
	ControlSocket string `yaml:"control_socket"`
	// Paths are the dynamic paths (binding SIDs) of Q.Suppl.79 §8.4.
	Paths PathsConfig `yaml:"paths"`
	// Monitor holds the monitoring tasks of Q.Suppl.79 §8.3 until the
	// controller configures its own (see MonitorOverlayFile).
	Monitor MonitorConfig `yaml:"monitor"`
	// Policies are the parent SRv6 policies whose selectors steer flows
	// onto the best constituent path (policy*.go).
	Policies []PolicyConfig `yaml:"policies"`
}

// Prefix source kinds of WANConfig.PrefixSource.
const (
	PrefixFromAddress = "address" // the global address on the WAN interface
	PrefixFromRoute   = "route"   // a delegated-prefix route via the WAN interface
	PrefixStatic      = "static"  // StaticPrefix from this file
)

// WANConfig says where the delegated prefix comes from.
type WANConfig struct {
	Interface     string        `yaml:"interface"`
	PrefixSource  string        `yaml:"prefix_source"`
	StaticPrefix  netip.Prefix  `yaml:"static_prefix"`
	StaticAddress netip.Addr    `yaml:"static_address"`
	Debounce      time.Duration `yaml:"debounce"`
}

// Encap modes of SRv6Config.EncapMode and RemoteRoute.EncapMode.
const (
	EncapModeEncap = "encap"
	EncapModeRed   = "encap.red"
)

// SRv6Config holds the clause 6.2 derivation parameters.
type SRv6Config struct {
	LocatorLen  int `yaml:"locator_len"`
	FunctionLen int `yaml:"function_len"`
	// Extension fills the L−Y locator bits after the delegated prefix; nil
	// selects srv6.Derive's default (all ones).
	Extension   *Function `yaml:"extension"`
	EncapMode   string    `yaml:"encap_mode"`
	LocatorName string    `yaml:"locator_name"`
	// SID anti-spoofing (sidfilter.go): SIDFilter switches it (nil = on
	// with bgp or sid_allow), SIDAllow are extra admitted source prefixes,
	// PeerLocatorLen the length a remote SID's locator is taken at (0 =
	// LocatorLen).
	SIDFilter      *bool          `yaml:"sid_filter"`
	SIDAllow       []netip.Prefix `yaml:"sid_allow"`
	PeerLocatorLen int            `yaml:"peer_locator_len"`
	// HMAC is the SRH HMAC section (hmac.go); nil leaves the kernel's
	// HMAC keys and seg6_require_hmac alone.
	HMAC *HMACConfig `yaml:"hmac"`
	// EndTSF makes this node the far end of End.TSF loopback probes
	// (endtsf.go); nil: none.
	EndTSF *EndTSFConfig `yaml:"end_tsf"`
	// PolicyTableBase is the first routing table of the policies'
	// services (policy_validate.go; 0 = DefaultPolicyTableBase).
	PolicyTableBase int `yaml:"policy_table_base"`
}

// ServiceConfig is one local service SID.
type ServiceConfig struct {
	Name     string   `yaml:"name"`
	Behavior string   `yaml:"behavior"`
	Function Function `yaml:"function"`
	// Table is the lookup table of End.DT4/DT6/DT46 (0 = main).
	Table int `yaml:"table"`
	// VRF names the VPN: its VRF device where the kernel has VRFs.
	VRF string `yaml:"vrf"`
	// NextHop of End.DX4/End.DX6; unset means "look the inner destination up".
	NextHop     netip.Addr     `yaml:"nexthop"`
	LANPrefixes []netip.Prefix `yaml:"lan_prefixes"`
	// The L3VPN over BGP (RFC 4364/9252), used when a bgp section exists:
	// the LAN prefixes are advertised with RouteDistinguisher and ExportRTs
	// and this service's SID; routes carrying any of ImportRTs become encap
	// routes in this service's VRF (or table). "ASN:N" or "IPv4:N".
	RouteDistinguisher string   `yaml:"route_distinguisher"`
	ImportRTs          []string `yaml:"import_rts"`
	ExportRTs          []string `yaml:"export_rts"`
}

// RemoteRoute steers a destination prefix into an SRv6 segment list.
type RemoteRoute struct {
	Prefix netip.Prefix `yaml:"prefix"`
	// VRF puts the route in that VPN (the VRF of a service); Table in a
	// plain table. Neither: the main table.
	VRF       string   `yaml:"vrf"`
	Table     int      `yaml:"table"`
	Segments  Segments `yaml:"segments"`
	EncapMode string   `yaml:"encap_mode"` // default: srv6.encap_mode
}

// Function is an SRv6 function or extension value; YAML accepts a number or
// a string, decimal or 0x hex.
type Function uint64

// UnmarshalYAML parses the scalar with srv6.ParseFunction.
func (f *Function) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: function value must be a number, got a %s", n.Line, kindName(n.Kind))
	}
	v, err := srv6.ParseFunction(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*f = Function(v)
	return nil
}

// Segments is a segment list in travel order (the first segment the packet
// visits first, as iproute2 writes it). YAML
// accepts a sequence of SIDs or one string ("a, b" or `["a", "b"]`); SIDs may
// carry Q.Suppl.79's trailing behaviour word ("2001:db8::1:End").
type Segments []netip.Addr

// UnmarshalYAML parses a sequence with srv6.ParseSID, a scalar with srv6.ParseSegmentList.
func (s *Segments) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		l, err := srv6.ParseSegmentList(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*s = srv6.Addrs(l)
	case yaml.SequenceNode:
		l := make(Segments, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: segment must be a SID, got a %s", c.Line, kindName(c.Kind))
			}
			sid, err := srv6.ParseSID(c.Value)
			if err != nil {
				return fmt.Errorf("line %d: %w", c.Line, err)
			}
			l = append(l, sid.Addr)
		}
		*s = l
	default:
		return fmt.Errorf("line %d: segments must be a list of SIDs, got a %s", n.Line, kindName(n.Kind))
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	default:
		return "scalar"
	}
}

// Defaults applied by LoadConfig and ParseConfig to keys the file leaves out.
const (
	DefaultStateDir    = "/var/lib/srv6cpe"
	DefaultFunctionLen = 16
	DefaultDebounce    = board.DefaultDebounce
	DefaultLocatorName = "loc1"
)

// LoadConfig reads, decodes and validates the YAML file at path.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(b)
	if err == nil {
		err = c.loadHMACSecrets()
	}
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a YAML document strictly (unknown keys are errors),
// fills defaults and validates the result.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, flattenYAMLError(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// flattenYAMLError turns yaml.v3's multi-line "unmarshal errors" into one
// line per problem joined by "; ", so the daemon can print it on one line.
func flattenYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fmt.Errorf("config: %s", strings.Join(te.Errors, "; "))
	}
	return fmt.Errorf("config: %w", err)
}

// SetDefaults fills the keys that have a default and are unset.
func (c *Config) SetDefaults() {
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.WAN.PrefixSource == "" {
		c.WAN.PrefixSource = PrefixFromAddress
	}
	if c.WAN.Debounce == 0 {
		c.WAN.Debounce = DefaultDebounce
	}
	if c.SRv6.FunctionLen == 0 {
		c.SRv6.FunctionLen = DefaultFunctionLen
	}
	if c.SRv6.EncapMode == "" {
		c.SRv6.EncapMode = EncapModeEncap
	}
	if c.SRv6.LocatorName == "" {
		c.SRv6.LocatorName = DefaultLocatorName
	}
}

// Behaviours a service may have; the others need parameters (End.X's
// neighbour, End.B6.Encaps' policy) that come from paths, not services.
var serviceBehaviors = []srv6.Behavior{srv6.End, srv6.EndDT4, srv6.EndDT6, srv6.EndDT46, srv6.EndDX4, srv6.EndDX6}

const (
	maxIfName = 15 // IFNAMSIZ - 1
	// A Linux table id is 32 bits; typed int64 so that the comparisons
	// below compile where int is 32 bits (arm, mipsle).
	maxTable int64 = 1<<32 - 1
)

// Validate checks every value and returns all problems at once (errors.Join),
// each naming its key and the bad value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.StateDir == "" {
		bad("state_dir: must be set")
	}

	if err := c.Identity.Validate(); err != nil {
		bad("%w", err)
	}

	w := c.WAN
	if err := checkIfName(w.Interface); err != nil {
		bad("wan.interface: %w", err)
	}
	switch w.PrefixSource {
	case PrefixFromAddress, PrefixFromRoute:
		if w.StaticPrefix.IsValid() || w.StaticAddress.IsValid() {
			bad("wan.static_prefix/static_address: set, but wan.prefix_source is %q (use \"static\")", w.PrefixSource)
		}
	case PrefixStatic:
		switch {
		case !w.StaticPrefix.IsValid():
			bad("wan.static_prefix: must be set when wan.prefix_source is static")
		case !w.StaticPrefix.Addr().Is6() || w.StaticPrefix.Addr().Is4In6():
			bad("wan.static_prefix: %s is not an IPv6 prefix", w.StaticPrefix)
		case w.StaticAddress.IsValid() && !w.StaticPrefix.Contains(w.StaticAddress):
			bad("wan.static_address: %s is not inside wan.static_prefix %s", w.StaticAddress, w.StaticPrefix)
		}
	default:
		bad("wan.prefix_source: %q is not one of address, route, static", w.PrefixSource)
	}
	if w.Debounce < 0 || w.Debounce > 10*time.Second {
		bad("wan.debounce: %s is outside 0..10s", w.Debounce)
	}

	s := c.SRv6
	if s.LocatorLen < 1 || s.LocatorLen > 128 {
		bad("srv6.locator_len: %d is outside 1..128", s.LocatorLen)
	}
	if s.FunctionLen < 1 || s.FunctionLen > 64 {
		bad("srv6.function_len: %d is outside 1..64", s.FunctionLen)
	} else if s.LocatorLen >= 1 && s.LocatorLen+s.FunctionLen > 128 {
		bad("srv6.locator_len + function_len: %d + %d exceeds 128", s.LocatorLen, s.FunctionLen)
	}
	if !validEncapMode(s.EncapMode) {
		bad("srv6.encap_mode: %q is not one of encap, encap.red", s.EncapMode)
	}
	if w.PrefixSource == PrefixStatic && w.StaticPrefix.IsValid() && s.LocatorLen >= 1 && w.StaticPrefix.Bits() > s.LocatorLen {
		bad("srv6.locator_len: %d is shorter than wan.static_prefix %s", s.LocatorLen, w.StaticPrefix)
	}

	errs = append(errs, c.validateServices()...)
	errs = append(errs, c.validateRemote()...)
	errs = append(errs, c.validateSIDFilter()...)
	errs = append(errs, c.validateHMAC()...)
	errs = append(errs, c.validateEndTSF()...)
	errs = append(errs, c.ACS.validate()...)
	errs = append(errs, c.validateBGP()...)
	errs = append(errs, c.validatePaths()...)
	errs = append(errs, c.validateMonitor()...)
	errs = append(errs, c.validateControl()...)
	errs = append(errs, c.validatePolicies()...)
	return errors.Join(errs...)
}

// serviceError names services[i] (and its name when it has one) in front
// of a validation error, as every check of a service reports it.
func serviceError(i int, name, format string, a ...any) error {
	key := fmt.Sprintf("services[%d]", i)
	if name != "" {
		key = fmt.Sprintf("services[%d] (%s)", i, name)
	}
	return fmt.Errorf("%s.%w", key, fmt.Errorf(format, a...))
}

func (c *Config) validateServices() []error {
	var errs []error
	names := map[string]int{}
	funcs := map[Function]string{}
	vrfTable := map[string]string{} // vrf -> service that fixed its table
	for i, sv := range c.Services {
		bad := func(format string, a ...any) {
			errs = append(errs, serviceError(i, sv.Name, format, a...))
		}
		if sv.Name == "" {
			bad("name: must be set")
		} else if j, dup := names[sv.Name]; dup {
			bad("name: %q is also the name of services[%d]", sv.Name, j)
		} else {
			names[sv.Name] = i
		}

		b, err := parseServiceBehavior(sv.Behavior)
		if err != nil {
			bad("behavior: %w", err)
		}
		switch {
		case sv.Function == 0:
			bad("function: must be set and non-zero")
		case c.SRv6.FunctionLen >= 1 && c.SRv6.FunctionLen < 64 && uint64(sv.Function) >= 1<<c.SRv6.FunctionLen:
			bad("function: %#x does not fit srv6.function_len %d bits", uint64(sv.Function), c.SRv6.FunctionLen)
		default:
			if other, dup := funcs[sv.Function]; dup {
				bad("function: %#x is also the function of service %q", uint64(sv.Function), other)
			} else {
				funcs[sv.Function] = sv.Name
			}
		}
		if sv.Table < 0 || int64(sv.Table) > maxTable {
			bad("table: %d is outside 0..%d", sv.Table, maxTable)
		}
		if sv.VRF != "" {
			if err := checkIfName(sv.VRF); err != nil {
				bad("vrf: %w", err)
			}
		}

		switch b {
		case srv6.End:
			if sv.Table != 0 || sv.VRF != "" || sv.NextHop.IsValid() {
				bad("behavior: End takes no table, vrf or nexthop")
			}
		case srv6.EndDT4, srv6.EndDT46:
			if sv.VRF == "" {
				bad("vrf: %s needs a vrf name (and its table)", b)
			}
		case srv6.EndDX4:
			if sv.NextHop.IsValid() && !sv.NextHop.Is4() {
				bad("nexthop: %s is not an IPv4 address (End.DX4)", sv.NextHop)
			}
		case srv6.EndDX6:
			if sv.NextHop.IsValid() && (!sv.NextHop.Is6() || sv.NextHop.Is4In6()) {
				bad("nexthop: %s is not an IPv6 address (End.DX6)", sv.NextHop)
			}
		}
		if sv.VRF != "" && b != srv6.EndDT4 && b != srv6.EndDT6 && b != srv6.EndDT46 {
			bad("vrf: only End.DT4, End.DT6 and End.DT46 belong to a VRF")
		}
		if sv.VRF != "" && sv.Table == 0 {
			bad("table: vrf %q needs its table number", sv.VRF)
		}
		if sv.NextHop.IsValid() && b != srv6.EndDX4 && b != srv6.EndDX6 {
			bad("nexthop: only End.DX4 and End.DX6 take a nexthop")
		}
		if sv.VRF != "" && sv.Table != 0 {
			if first, ok := vrfTable[sv.VRF]; ok {
				if t := c.Services[names[first]].Table; t != sv.Table {
					bad("table: %d, but service %q puts vrf %q on table %d", sv.Table, first, sv.VRF, t)
				}
			} else {
				vrfTable[sv.VRF] = sv.Name
			}
		}
		for j, p := range sv.LANPrefixes {
			if p != p.Masked() {
				bad("lan_prefixes[%d]: %s has host bits set (did you mean %s?)", j, p, p.Masked())
			}
		}
	}
	return errs
}

func (c *Config) validateRemote() []error {
	var errs []error
	vrfs := map[string]bool{}
	for _, sv := range c.Services {
		if sv.VRF != "" {
			vrfs[sv.VRF] = true
		}
	}
	seen := map[string]int{}
	for i, r := range c.Remote {
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("remote[%d].%w", i, fmt.Errorf(format, a...)))
		}
		switch {
		case !r.Prefix.IsValid():
			bad("prefix: must be set")
		case r.Prefix != r.Prefix.Masked():
			bad("prefix: %s has host bits set (did you mean %s?)", r.Prefix, r.Prefix.Masked())
		}
		if r.VRF != "" && r.Table != 0 {
			bad("vrf/table: give one of them, not both (vrf %q, table %d)", r.VRF, r.Table)
		}
		if r.VRF != "" && !vrfs[r.VRF] {
			bad("vrf: %q is not the vrf of any service", r.VRF)
		}
		if r.Table < 0 || int64(r.Table) > maxTable {
			bad("table: %d is outside 0..%d", r.Table, maxTable)
		}
		if len(r.Segments) == 0 {
			bad("segments: must list at least one SID")
		} else if len(r.Segments) > srv6.MaxSegments {
			bad("segments: %d SIDs, more than %d", len(r.Segments), srv6.MaxSegments)
		}
		for j, s := range r.Segments {
			if !s.Is6() || s.Is4In6() {
				bad("segments[%d]: %s is not an IPv6 SID", j, s)
			}
		}
		if r.EncapMode != "" && !validEncapMode(r.EncapMode) {
			bad("encap_mode: %q is not one of encap, encap.red", r.EncapMode)
		}
		if r.Prefix.IsValid() {
			k := fmt.Sprintf("%s|%s|%d", r.Prefix.Masked(), r.VRF, r.Table)
			if j, dup := seen[k]; dup {
				bad("prefix: %s is also routed by remote[%d] in the same table", r.Prefix, j)
			} else {
				seen[k] = i
			}
		}
	}
	return errs
}

func parseServiceBehavior(s string) (srv6.Behavior, error) {
	if s == "" {
		return 0, errors.New("must be set")
	}
	b, err := srv6.ParseBehavior(s)
	if err != nil {
		return 0, err
	}
	for _, ok := range serviceBehaviors {
		if b == ok {
			return b, nil
		}
	}
	names := make([]string, len(serviceBehaviors))
	for i, sb := range serviceBehaviors {
		names[i] = sb.String()
	}
	return 0, fmt.Errorf("%s is not a service behaviour (one of %s)", b, strings.Join(names, ", "))
}

func validEncapMode(m string) bool { return m == EncapModeEncap || m == EncapModeRed }

func checkIfName(n string) error {
	switch {
	case n == "":
		return errors.New("must be set")
	case len(n) > maxIfName:
		return fmt.Errorf("%q is longer than %d characters", n, maxIfName)
	case strings.ContainsAny(n, "/ \t\n:") || n == "." || n == "..":
		return fmt.Errorf("%q is not a valid interface name", n)
	}
	return nil
}
