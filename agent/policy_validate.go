package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// Defaults and limits of the policies: section.
const (
	// DefaultPolicyTableBase is the first table of the policies' services
	// (srv6.policy_table_base).
	DefaultPolicyTableBase = 3000
	// DefaultPolicyProbeInterval and MinPolicyProbeInterval bound a
	// policy's probe_interval.
	DefaultPolicyProbeInterval = 100 * time.Millisecond
	MinPolicyProbeInterval     = 10 * time.Millisecond
)

// Policy service tables: every service of every policy gets its own
// routing table, numbered from srv6.policy_table_base (default 3000) in
// config order: the first policy's services first, each policy's in its
// services: order. With the default base, policies [a: conference, crm]
// and [b: voice] use tables 3000, 3001 and 3002. Validate refuses a base
// whose range meets a table a service or remote route uses, or a table
// Linux reserves (253-255), so a VPN's routes never share a table with a
// policy's; a reload that reorders services renumbers their tables, which
// is harmless: the agent owns them whole.

// policyTableBase is the first policy service table.
func (c *Config) policyTableBase() int {
	if c.SRv6.PolicyTableBase != 0 {
		return c.SRv6.PolicyTableBase
	}
	return DefaultPolicyTableBase
}

// policyTables is the table of each service of each policy.
func (c *Config) policyTables() [][]int {
	out := make([][]int, len(c.Policies))
	next := c.policyTableBase()
	for i, p := range c.Policies {
		out[i] = make([]int, len(p.Services))
		for j := range p.Services {
			out[i][j] = next
			next++
		}
	}
	return out
}

// policyVPN is the services: entry whose learned routes policy i steers:
// its vpn, or the only service that imports routes when it names none.
func (c *Config) policyVPN(i int) string {
	if v := c.Policies[i].VPN; v != "" {
		return v
	}
	if vpns := c.vpnServices(); len(vpns) == 1 {
		return vpns[0]
	}
	return ""
}

// vpnServices is the first service of each VPN that imports routes (the
// services of one VRF are one VPN).
func (c *Config) vpnServices() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range c.Services {
		if len(s.ImportRTs) == 0 {
			continue
		}
		key := "service " + s.Name
		if s.VRF != "" {
			key = "vrf " + s.VRF
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, s.Name)
		}
	}
	return out
}

// probeInterval is a policy's probe interval, defaulted.
func (p *PolicyConfig) probeInterval() time.Duration {
	if p.ProbeInterval != 0 {
		return p.ProbeInterval
	}
	return DefaultPolicyProbeInterval
}

// policyKey names policies[i] (and its name when it has one) in front of
// a validation error.
func policyKey(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("policies[%d]", i)
	}
	return fmt.Sprintf("policies[%d] (%s)", i, name)
}

// validatePolicies checks the policies: section: the policies themselves
// (srv6.ValidatePolicies), the VPN each steers, the probe interval, the
// flows, and the policy service tables.
func (c *Config) validatePolicies() []error {
	if len(c.Policies) == 0 {
		if c.SRv6.PolicyTableBase != 0 {
			return c.validatePolicyTables()
		}
		return nil
	}
	var errs []error
	ps := make([]srv6.Policy, len(c.Policies))
	for i := range c.Policies {
		ps[i] = c.Policies[i].Policy
	}
	if err := srv6.ValidatePolicies(ps); err != nil {
		errs = append(errs, fmt.Errorf("policies: %w", err))
	}
	rules := 0
	for i := range c.Policies {
		p := &c.Policies[i]
		key := policyKey(i, p.Name)
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s.%w", key, fmt.Errorf(format, a...)))
		}
		switch vpn := c.policyVPN(i); {
		case p.VPN == "" && vpn == "":
			bad("vpn: must be set: the services: section has %d VPNs that import routes (%s), not exactly one", len(c.vpnServices()), strings.Join(c.vpnServices(), ", "))
		case c.service(vpn).Name == "":
			bad("vpn: %q is not a services: entry", vpn)
		case len(c.service(vpn).ImportRTs) == 0:
			bad("vpn: service %q imports no routes (no import_rts): the policy would steer nothing", vpn)
		}
		if iv := p.ProbeInterval; iv != 0 && iv < MinPolicyProbeInterval {
			bad("probe_interval: %v is shorter than %v", iv, MinPolicyProbeInterval)
		}
		for _, e := range widePriorities(&p.Policy) {
			bad("%s", e)
		}
		for j, f := range p.Flows {
			spec, err := parseFlow(f)
			if err != nil {
				bad("flows[%d].%w", j, err)
				continue
			}
			if !policyHasService(&p.Policy, f.Service) {
				bad("flows[%d].service: %q is not a service of the policy", j, f.Service)
			}
			rules += len(spec.families)
		}
	}
	if n := dataplane.FlowRulePriorityMax - dataplane.FlowRulePriorityMin + 1; rules > n {
		errs = append(errs, fmt.Errorf("policies: the flows need %d policy routing rules, more than the %d priorities %d..%d hold",
			rules, n, dataplane.FlowRulePriorityMin, dataplane.FlowRulePriorityMax))
	}
	return append(errs, c.validatePolicyTables()...)
}

// widePriorities says which priorities of p's selectors (and which
// defaults) share a service over more segment lists than one route can
// carry.
func widePriorities(p *srv6.Policy) []string {
	lists := map[uint32]int{}
	for _, c := range p.Constituents {
		lists[c.Color] = len(c.SegmentLists)
	}
	var out []string
	for _, s := range p.Selectors {
		sum := map[int]int{}
		for _, e := range s.Priorities {
			sum[e.Priority] += lists[e.Color]
		}
		for _, e := range s.Priorities {
			if n := sum[e.Priority]; n > dataplane.MaxEncapPaths {
				out = append(out, fmt.Sprintf("selectors: %q priority %d shares over %d segment lists, more than the %d paths of a route", s.Name, e.Priority, n, dataplane.MaxEncapPaths))
				sum[e.Priority] = 0 // said once
			}
		}
		if n := lists[s.Default]; n > dataplane.MaxEncapPaths {
			out = append(out, fmt.Sprintf("selectors: %q default color %d has %d segment lists, more than the %d paths of a route", s.Name, s.Default, n, dataplane.MaxEncapPaths))
		}
	}
	return out
}

func policyHasService(p *srv6.Policy, name string) bool {
	for _, s := range p.Services {
		if s.Name == name {
			return true
		}
	}
	return false
}

// validatePolicyTables checks srv6.policy_table_base and that the policy
// service tables meet no other table.
func (c *Config) validatePolicyTables() []error {
	base := c.policyTableBase()
	n := 0
	for _, p := range c.Policies {
		n += len(p.Services)
	}
	if base < 1 || int64(base)+int64(max(n, 1))-1 > maxTable {
		return []error{fmt.Errorf("srv6.policy_table_base: %d leaves no room for %d tables in 1..%d", base, n, maxTable)}
	}
	last := base + n - 1
	in := func(t int) bool { return n > 0 && t >= base && t <= last }
	var errs []error
	for _, t := range []int{unix.RT_TABLE_DEFAULT, unix.RT_TABLE_MAIN, unix.RT_TABLE_LOCAL} {
		if in(t) {
			errs = append(errs, fmt.Errorf("srv6.policy_table_base: %d puts the %d policy service tables on %d..%d, which holds the reserved table %d", base, n, base, last, t))
		}
	}
	for i, s := range c.Services {
		if in(s.Table) {
			errs = append(errs, serviceError(i, s.Name, "table: %d is a policy service table (srv6.policy_table_base %d, %d tables); move one of them", s.Table, base, n))
		}
	}
	for i, r := range c.Remote {
		if in(r.Table) {
			errs = append(errs, fmt.Errorf("remote[%d].table: %d is a policy service table (srv6.policy_table_base %d, %d tables); move one of them", i, r.Table, base, n))
		}
	}
	return errs
}

// flowSpec is a parsed FlowConfig: the selectors of its rules and the
// address families it can match.
type flowSpec struct {
	families           []int // unix.AF_INET, unix.AF_INET6
	src, dst           netip.Prefix
	proto              uint8
	srcPorts, dstPorts dataplane.PortRange
	dscp               uint8
	hasDSCP            bool
	mark, mask         uint32
}

// Protocols a flow may name; any other is a number 1..255.
var flowProtocols = map[string]uint8{"icmp": unix.IPPROTO_ICMP, "tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP,
	"ipv6-icmp": unix.IPPROTO_ICMPV6, "sctp": unix.IPPROTO_SCTP}

// parseFlow checks f's selectors; its errors start with the field name.
func parseFlow(f FlowConfig) (flowSpec, error) {
	var s flowSpec
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if f.DSCP != nil {
		if *f.DSCP > 63 {
			bad("dscp: %d is outside 0..63", *f.DSCP)
		}
		s.dscp, s.hasDSCP = *f.DSCP, true
	}
	if f.Protocol != "" {
		if n, ok := flowProtocols[strings.ToLower(f.Protocol)]; ok {
			s.proto = n
		} else if n, err := strconv.ParseUint(f.Protocol, 10, 8); err == nil && n > 0 {
			s.proto = uint8(n)
		} else {
			bad("protocol: %q is not udp, tcp, icmp, ipv6-icmp, sctp or a number 1..255", f.Protocol)
		}
	}
	var err error
	if s.src, err = flowPrefix(f.Src); err != nil {
		bad("src: %w", err)
	}
	if s.dst, err = flowPrefix(f.Dst); err != nil {
		bad("dst: %w", err)
	}
	if s.srcPorts, err = parsePortRange(f.SrcPorts); err != nil {
		bad("src_ports: %w", err)
	}
	if s.dstPorts, err = parsePortRange(f.DstPorts); err != nil {
		bad("dst_ports: %w", err)
	}
	if (f.SrcPorts != "" || f.DstPorts != "") && s.proto != unix.IPPROTO_TCP && s.proto != unix.IPPROTO_UDP && s.proto != unix.IPPROTO_SCTP {
		bad("src_ports/dst_ports: ports need protocol tcp, udp or sctp, not %q", f.Protocol)
	}
	if s.mark, s.mask, err = parseFwMark(f.FwMark); err != nil {
		bad("fwmark: %w", err)
	}
	if len(errs) > 0 {
		return flowSpec{}, errors.Join(errs...)
	}
	v4, v6 := true, true
	for _, p := range []netip.Prefix{s.src, s.dst} {
		if p.IsValid() {
			v4, v6 = v4 && p.Addr().Is4(), v6 && p.Addr().Is6()
		}
	}
	switch s.proto {
	case unix.IPPROTO_ICMP:
		v6 = false
	case unix.IPPROTO_ICMPV6:
		v4 = false
	}
	if v4 {
		s.families = append(s.families, unix.AF_INET)
	}
	if v6 {
		s.families = append(s.families, unix.AF_INET6)
	}
	if len(s.families) == 0 {
		return flowSpec{}, fmt.Errorf("src/dst/protocol: %q, %q and %q match no address family together", f.Src, f.Dst, f.Protocol)
	}
	return s, nil
}

// flowPrefix reads a prefix or a single address ("" matches any).
func flowPrefix(v string) (netip.Prefix, error) {
	if v == "" {
		return netip.Prefix{}, nil
	}
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", v)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s: write an IPv4 prefix as such", p)
	}
	return p, nil
}

// parsePortRange reads "5060" or "10000-20000" ("" matches any).
func parsePortRange(v string) (dataplane.PortRange, error) {
	if v == "" {
		return dataplane.PortRange{}, nil
	}
	lo, hi, isRange := strings.Cut(v, "-")
	port := func(s string) (uint16, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q is not a port range like 5060 or 10000-20000 (ports 1..65535)", v)
		}
		return uint16(n), nil
	}
	l, err := port(lo)
	if err != nil {
		return dataplane.PortRange{}, err
	}
	h := l
	if isRange {
		if h, err = port(hi); err != nil {
			return dataplane.PortRange{}, err
		}
	}
	if h < l {
		return dataplane.PortRange{}, fmt.Errorf("%q runs backwards", v)
	}
	return dataplane.PortRange{Lo: l, Hi: h}, nil
}

// parseFwMark reads "0x10" or "0x10/0xff" (decimal works too); no mask
// means all bits. "" matches any mark.
func parseFwMark(v string) (mark, mask uint32, err error) {
	if v == "" {
		return 0, 0, nil
	}
	m, k, hasMask := strings.Cut(v, "/")
	num := func(s string) (uint32, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a mark like 0x10 or 0x10/0xff", v)
		}
		return uint32(n), nil
	}
	if mark, err = num(m); err != nil {
		return 0, 0, err
	}
	mask = 0xffffffff
	if hasMask {
		if mask, err = num(k); err != nil {
			return 0, 0, err
		}
	}
	switch {
	case mask == 0:
		return 0, 0, fmt.Errorf("%q: mask 0 matches every packet; leave fwmark out instead", v)
	case mark&^mask != 0:
		return 0, 0, fmt.Errorf("%q: mark %#x has bits outside mask %#x", v, mark, mask)
	}
	return mark, mask, nil
}
