package dataplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// SID anti-spoofing. A CPE's locator lies inside its delegated prefix, so
// anybody on the Internet can send a packet to one of its SIDs and have it
// decapsulated into the LAN. SIDFilter admits packets that arrive on the WAN
// for our locators only from allowed sources (peer locators) and drops the
// rest before the route lookup that would hit the seg6local routes.
//
// It is done with IPv6 policy-routing rules, not nftables: rules are
// kernel-native rtnetlink objects like our routes (same socket, same
// protocol-198 ownership, no extra package or kernel module on the CPE), they
// are evaluated before the FIB lookup that finds the seg6local route, and a
// CPE has a handful of peers, so the per-peer rule count stays small. The
// rules, owned through FRA_PROTOCOL = RouteProtocol, are:
//
//	RulePrioAllow: from <allowed> to <locator> iif <wan> lookup main   (one per pair)
//	RulePrioDrop:  to <locator> iif <wan> blackhole                     (one per locator)
//
// both before the default "lookup main" (32766). blackhole, not prohibit:
// a spoofer must not get ICMP errors reflected to the address it forged.

// Rule priorities of the SID filter. srv6cpe reserves 1000–1999.
const (
	RulePrioAllow = 1000
	RulePrioDrop  = 1001
)

// SIDFilter is the SID anti-spoofing filter.
type SIDFilter struct {
	// Interface is the WAN device the filter applies to ("" = the
	// dataplane's WAN interface).
	Interface string
	// Locators are ours: packets to them from Interface are filtered.
	Locators []netip.Prefix
	// Allow are the source prefixes admitted (peer locators, allow-list).
	// Empty means every packet from the WAN to our locators is dropped.
	Allow []netip.Prefix
}

// fib_rule actions (include/uapi/linux/fib_rules.h) and attributes.
// FRA_DSCP (Linux 6.12) and the masks (6.15) are newer than x/sys.
const (
	frActToTbl     = 1
	frActBlackhole = 6
	fraDst         = 1
	fraSrc         = 2
	fraIifname     = 3
	fraPriority    = 6
	fraFwmark      = 10
	fraTable       = 15
	fraFwmask      = 16
	fraProtocol    = 21
	fraIPProto     = 22
	fraSportRange  = 23
	fraDportRange  = 24
	fraDSCP        = 25
	fraSportMask   = 28
	fraDportMask   = 29
	fraDSCPMask    = 30
	sizeofFibRule  = 12
	// fib_rule_hdr flags the kernel sets by itself.
	fibRuleIifDetached = 0x8
	fibRuleOifDetached = 0x10
)

// krule is one rule of ours (a SID filter rule or a flow rule). It is
// comparable: equal rules are ==.
type krule struct {
	Family uint8
	Prio   uint32
	Src    netip.Prefix // zero = from all
	Dst    netip.Prefix // zero = to all
	Iif    string
	Action uint8
	Table  uint32
	// Flow selectors: IP protocol, port ranges, fwmark/mask, and the DSCP
	// either as FRA_DSCP (DSCP valid when HasDSCP) or, for IPv6 on
	// kernels without it, in fib_rule_hdr.tos (TOS = DSCP<<2).
	Proto        uint8
	SPort, DPort PortRange
	Mark, Mask   uint32
	DSCP         uint8
	HasDSCP      bool
	TOS          uint8
	Other        bool // has something we never set: always stale
}

func (r krule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rule %d", r.Prio)
	if r.Family == unix.AF_INET {
		b.WriteString(" ipv4")
	}
	from, to := "all", "all"
	if r.Src.IsValid() {
		from = r.Src.String()
	}
	if r.Dst.IsValid() {
		to = r.Dst.String()
	}
	fmt.Fprintf(&b, " from %s to %s", from, to)
	if r.Iif != "" {
		fmt.Fprintf(&b, " iif %s", r.Iif)
	}
	if r.Proto != 0 {
		fmt.Fprintf(&b, " ipproto %d", r.Proto)
	}
	if r.SPort != (PortRange{}) {
		fmt.Fprintf(&b, " sport %d-%d", r.SPort.Lo, r.SPort.Hi)
	}
	if r.DPort != (PortRange{}) {
		fmt.Fprintf(&b, " dport %d-%d", r.DPort.Lo, r.DPort.Hi)
	}
	if r.HasDSCP {
		fmt.Fprintf(&b, " dscp %d", r.DSCP)
	}
	if r.TOS != 0 {
		fmt.Fprintf(&b, " tos 0x%02x", r.TOS)
	}
	if r.Mark != 0 || r.Mask != 0 {
		fmt.Fprintf(&b, " fwmark 0x%x/0x%x", r.Mark, r.Mask)
	}
	switch r.Action {
	case frActToTbl:
		fmt.Fprintf(&b, " lookup %d", r.Table)
	case frActBlackhole:
		b.WriteString(" blackhole")
	default:
		fmt.Fprintf(&b, " action %d", r.Action)
	}
	return b.String()
}

func validV6Prefix(what string, p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return fmt.Errorf("%s %s: not an IPv6 prefix", what, p)
	}
	if p != p.Masked() {
		return fmt.Errorf("%s %s: host bits set (want %s)", what, p, p.Masked())
	}
	return nil
}

func cmpPrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// normFilter validates f and returns it with the interface filled in and
// its lists sorted and deduplicated; nil when it would install no rule.
func normFilter(f *SIDFilter, wan string) (*SIDFilter, error) {
	if f == nil {
		return nil, nil
	}
	n := SIDFilter{Interface: f.Interface}
	if n.Interface == "" {
		n.Interface = wan
	}
	if n.Interface == "" || len(n.Interface) > unix.IFNAMSIZ-1 || strings.ContainsAny(n.Interface, "/ \t\n") {
		return nil, fmt.Errorf("SID filter: interface %q: not a valid device name (and no WAN interface configured)", n.Interface)
	}
	for _, p := range f.Locators {
		if err := validV6Prefix("SID filter: locator", p); err != nil {
			return nil, err
		}
	}
	for _, p := range f.Allow {
		if err := validV6Prefix("SID filter: allowed source", p); err != nil {
			return nil, err
		}
	}
	n.Locators = slices.Compact(slices.SortedFunc(slices.Values(f.Locators), cmpPrefix))
	n.Allow = slices.Compact(slices.SortedFunc(slices.Values(f.Allow), cmpPrefix))
	if len(n.Locators) == 0 {
		return nil, nil
	}
	if len(n.Allow) == 0 {
		n.Allow = nil
	}
	return &n, nil
}

// planRules maps a normalized filter onto its rules: every allow rule
// before every drop rule, the order they are added in.
func planRules(f *SIDFilter) []krule {
	if f == nil {
		return nil
	}
	out := make([]krule, 0, len(f.Locators)*(len(f.Allow)+1))
	for _, l := range f.Locators {
		for _, a := range f.Allow {
			out = append(out, krule{Family: unix.AF_INET6, Prio: RulePrioAllow, Src: a, Dst: l, Iif: f.Interface, Action: frActToTbl, Table: tableMain})
		}
	}
	for _, l := range f.Locators {
		out = append(out, krule{Family: unix.AF_INET6, Prio: RulePrioDrop, Dst: l, Iif: f.Interface, Action: frActBlackhole})
	}
	return out
}

// diffRules lists the rules to add (want's order: allows before drops, so
// a still-valid peer is never dropped) and to delete (drops before allows,
// so the old locator is never open while its allows go).
// A rule held twice (rules are added without NLM_F_EXCL, see putRule)
// loses its surplus copy.
func diffRules(cur, want []krule) (add, del []krule) {
	have := make(map[krule]bool, len(cur))
	for _, r := range cur {
		have[r] = true
	}
	keep := make(map[krule]bool, len(want))
	for _, r := range want {
		keep[r] = true
		if !have[r] {
			add = append(add, r)
		}
	}
	for _, r := range cur {
		if !keep[r] {
			del = append(del, r)
			continue
		}
		keep[r] = false // the next copy is surplus
	}
	slices.SortStableFunc(del, func(a, b krule) int { return cmp.Compare(b.Prio, a.Prio) })
	return add, del
}

// filterOf reads a filter back from rules of ours (nil when none).
func filterOf(rules []krule) *SIDFilter {
	var f SIDFilter
	for _, r := range rules {
		switch {
		case r.Other || !r.plain() || r.Family != unix.AF_INET6 || !r.Dst.IsValid():
		case r.Prio == RulePrioDrop && r.Action == frActBlackhole && !r.Src.IsValid():
			f.Interface = r.Iif
			f.Locators = append(f.Locators, r.Dst)
		case r.Prio == RulePrioAllow && r.Action == frActToTbl && r.Src.IsValid():
			f.Allow = append(f.Allow, r.Src)
		}
	}
	if len(f.Locators) == 0 {
		return nil
	}
	n, err := normFilter(&f, f.Interface)
	if err != nil {
		return nil
	}
	return n
}

// plain says the rule has no flow selectors (a SID filter rule).
func (r krule) plain() bool {
	return r.Proto == 0 && r.SPort == (PortRange{}) && r.DPort == (PortRange{}) &&
		r.Mark == 0 && r.Mask == 0 && !r.HasDSCP && r.TOS == 0
}

// putRule appends an RTM_NEWRULE for r. Not NLM_F_EXCL: the kernel's
// "exists" test treats selectors the request leaves out as wildcards, so
// "udp dport 5000" would be refused while "udp dport 5000 dscp 46" of
// ours is in place, and a changed flow rule would be lost when the old
// one goes. The diff works from a fresh dump, so a copy arises only from
// a concurrent writer, and diffRules removes it.
func (w *wbuf) putRule(seq uint32, r krule) {
	w.rule(unix.RTM_NEWRULE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE, seq, r)
}

// rule appends a rule message (RTM_NEWRULE, or RTM_DELRULE for the probe)
// carrying every attribute of r.
func (w *wbuf) rule(typ, flags uint16, seq uint32, r krule) {
	off := w.begin(typ, flags, seq)
	srcLen, dstLen := 0, 0
	if r.Src.IsValid() {
		srcLen = r.Src.Bits()
	}
	if r.Dst.IsValid() {
		dstLen = r.Dst.Bits()
	}
	t := uint8(0)
	if r.Table < 256 {
		t = uint8(r.Table)
	}
	// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
	w.b = append(w.b, r.Family, uint8(dstLen), uint8(srcLen), r.TOS, t, 0, 0, r.Action, 0, 0, 0, 0)
	w.u32(fraPriority, r.Prio)
	if dstLen > 0 {
		w.addr(fraDst, r.Dst.Addr())
	}
	if srcLen > 0 {
		w.addr(fraSrc, r.Src.Addr())
	}
	if r.Iif != "" {
		w.attr(fraIifname, append([]byte(r.Iif), 0))
	}
	if r.Proto != 0 {
		w.attr(fraIPProto, []byte{r.Proto})
	}
	w.portRange(fraSportRange, r.SPort)
	w.portRange(fraDportRange, r.DPort)
	if r.Mark != 0 || r.Mask != 0 {
		w.u32(fraFwmark, r.Mark)
		w.u32(fraFwmask, r.Mask)
	}
	if r.HasDSCP {
		w.attr(fraDSCP, []byte{r.DSCP})
	}
	if r.Action == frActToTbl {
		w.u32(fraTable, r.Table)
	}
	w.attr(fraProtocol, []byte{RouteProtocol})
	w.end(off)
}

// portRange appends a struct fib_rule_port_range (host byte order).
func (w *wbuf) portRange(typ uint16, p PortRange) {
	if p == (PortRange{}) {
		return
	}
	var b [4]byte
	ne.PutUint16(b[0:], p.Lo)
	ne.PutUint16(b[2:], p.Hi)
	w.attr(typ, b[:])
}

// dumpRules asks for the rules of every family.
func (w *wbuf) dumpRules(seq uint32) {
	off := w.begin(unix.RTM_GETRULE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	w.b = append(w.b, unix.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	w.end(off)
}

// decodeRule parses an RTM_NEWRULE body; proto is its FRA_PROTOCOL.
func decodeRule(b []byte) (r krule, proto uint8, err error) {
	if len(b) < sizeofFibRule {
		return krule{}, 0, fmt.Errorf("fib_rule_hdr of %d bytes: %w", len(b), errShort)
	}
	fam, dstLen, srcLen, tos, table, action, flags := b[0], int(b[1]), int(b[2]), b[3], uint32(b[4]), b[7], ne.Uint32(b[8:])
	alen := 16
	switch fam {
	case unix.AF_INET6:
	case unix.AF_INET:
		alen = 4
	default:
		return krule{}, 0, fmt.Errorf("rule family %d: not IPv4 or IPv6", fam)
	}
	if dstLen > 8*alen || srcLen > 8*alen {
		return krule{}, 0, fmt.Errorf("rule prefix lengths %d/%d exceed %d", dstLen, srcLen, 8*alen)
	}
	r.Family, r.Action, r.Table, r.TOS = fam, action, table, tos
	// IPv4's tos field matches the old TOS bits only: not what we set.
	// The detached flags only say a named device does not exist (yet).
	r.Other = flags&^(fibRuleIifDetached|fibRuleOifDetached) != 0 || (fam == unix.AF_INET && tos != 0)
	var dst, src []byte
	dscpMask := -1
	u32 := func(name string, v []byte) (uint32, error) {
		if len(v) < 4 {
			return 0, fmt.Errorf("%s of %d bytes: %w", name, len(v), errShort)
		}
		return ne.Uint32(v), nil
	}
	ports := func(name string, v []byte) (PortRange, error) {
		if len(v) < 4 {
			return PortRange{}, fmt.Errorf("%s of %d bytes: %w", name, len(v), errShort)
		}
		return PortRange{Lo: ne.Uint16(v), Hi: ne.Uint16(v[2:])}, nil
	}
	err = attrs(b[sizeofFibRule:], func(t uint16, v []byte) error {
		var err error
		switch t {
		case fraDst:
			dst = v
		case fraSrc:
			src = v
		case fraIifname:
			r.Iif = strings.TrimRight(string(v), "\x00")
		case fraPriority:
			r.Prio, err = u32("FRA_PRIORITY", v)
		case fraTable:
			r.Table, err = u32("FRA_TABLE", v)
		case fraFwmark:
			r.Mark, err = u32("FRA_FWMARK", v)
		case fraFwmask:
			r.Mask, err = u32("FRA_FWMASK", v)
		case fraSportRange:
			r.SPort, err = ports("FRA_SPORT_RANGE", v)
		case fraDportRange:
			r.DPort, err = ports("FRA_DPORT_RANGE", v)
		case fraSportMask, fraDportMask:
			// Echoed with all bits for a port range; a partial mask
			// is a selector we never set.
			if len(v) < 2 {
				return fmt.Errorf("rule port mask of %d bytes: %w", len(v), errShort)
			}
			if m := ne.Uint16(v); m != 0xffff && m != 0 {
				r.Other = true
			}
		case fraProtocol, fraIPProto, fraDSCP, fraDSCPMask:
			if len(v) < 1 {
				return fmt.Errorf("rule attribute %d of %d bytes: %w", t, len(v), errShort)
			}
			switch t {
			case fraProtocol:
				proto = v[0]
			case fraIPProto:
				r.Proto = v[0]
			case fraDSCP:
				r.DSCP, r.HasDSCP = v[0], true
			default:
				dscpMask = int(v[0])
			}
		case unix.FRA_OIFNAME, unix.FRA_GOTO, unix.FRA_SUPPRESS_PREFIXLEN, unix.FRA_SUPPRESS_IFGROUP,
			unix.FRA_UID_RANGE, unix.FRA_L3MDEV, unix.FRA_TUN_ID, unix.FRA_FLOW:
			// Kernels echo some of these with neutral values; anything
			// we did not set makes the rule "other", replaced by ours.
			if !neutralRuleAttr(t, v) {
				r.Other = true
			}
		default:
			// Selectors newer than this code (flow label, port masks):
			// set, they make a rule we would not have made.
			if t > fraDportRange && !neutralRuleAttr(t, v) {
				r.Other = true
			}
		}
		return err
	})
	if err != nil {
		return krule{}, 0, err
	}
	// Kernels since 6.15 echo the DSCP mask: all six bits is ours.
	if dscpMask >= 0 && (!r.HasDSCP || dscpMask != 0x3f) {
		r.Other = true
	}
	pfx := func(v []byte, bits int) (netip.Prefix, error) {
		a, ok := netip.AddrFromSlice(v)
		if !ok || len(v) != alen {
			return netip.Prefix{}, fmt.Errorf("rule address of %d bytes in family %d", len(v), fam)
		}
		return netip.PrefixFrom(a, bits), nil
	}
	if dst != nil && dstLen > 0 {
		if r.Dst, err = pfx(dst, dstLen); err != nil {
			return krule{}, 0, err
		}
	}
	if src != nil && srcLen > 0 {
		if r.Src, err = pfx(src, srcLen); err != nil {
			return krule{}, 0, err
		}
	}
	if r.Action != frActToTbl {
		r.Table = 0
	}
	return r, proto, nil
}

// neutralRuleAttr says whether an echoed attribute has its "unset" value.
func neutralRuleAttr(t uint16, v []byte) bool {
	zero := func() bool {
		for _, x := range v {
			if x != 0 {
				return false
			}
		}
		return true
	}
	switch t {
	case unix.FRA_SUPPRESS_PREFIXLEN, unix.FRA_SUPPRESS_IFGROUP:
		return len(v) == 4 && ne.Uint32(v) == 0xffffffff
	case unix.FRA_UID_RANGE:
		return len(v) == 8 && ne.Uint32(v) == 0 && ne.Uint32(v[4:]) == 0xffffffff
	}
	return zero()
}

// Flow rules (Desired.FlowRules) classify flows into SRv6 policy service
// tables. They are the same kernel objects as the SID filter's rules,
// owned through the same FRA_PROTOCOL, read, diffed and deleted by the
// same code; only their selectors differ.

// portProtos are the IP protocols whose ports the kernel's rule lookup
// dissects (TCP, DCCP, UDP, SCTP, UDP-Lite).
var portProtos = map[uint8]bool{unix.IPPROTO_TCP: true, unix.IPPROTO_DCCP: true, unix.IPPROTO_UDP: true, unix.IPPROTO_SCTP: true, unix.IPPROTO_UDPLITE: true}

// flowKRules validates flow rules and maps them onto kernel rules, sorted
// (cmpFlow). DSCP goes in FRA_DSCP where the kernel has it; else IPv6
// rules carry it in the header's tos (IPv6 matches the full DSCP there)
// and IPv4 rules cannot express it.
func flowKRules(rules []FlowRule, caps Capabilities) ([]krule, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(rules)
	for i := range sorted {
		if err := normFlow(&sorted[i]); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(sorted, cmpFlow)
	out := make([]krule, 0, len(sorted))
	for i, f := range sorted {
		// One rule per priority: the kernel finds a rule to delete by
		// the selectors the request names, the others are wildcards, so
		// two rules of ours on one priority could be mistaken for each
		// other; and their order would be the order they were added in.
		if i > 0 && sorted[i-1].Priority == f.Priority {
			return nil, fmt.Errorf("%s and %s share priority %d; give each flow rule its own", sorted[i-1], f, f.Priority)
		}
		r := krule{Family: uint8(f.Family), Prio: uint32(f.Priority), Src: f.Src, Dst: f.Dst, Iif: f.IIF,
			Action: frActToTbl, Table: uint32(f.Table), Proto: f.Protocol, SPort: f.SrcPorts, DPort: f.DstPorts,
			Mark: f.FwMark, Mask: f.FwMask}
		if f.HasDSCP {
			switch {
			case caps.RuleDSCP:
				r.DSCP, r.HasDSCP = f.DSCP, true
			case f.Family == unix.AF_INET6 && f.DSCP != 0:
				r.TOS = f.DSCP << 2
			case f.Family == unix.AF_INET6:
				return nil, fmt.Errorf("%s: this kernel's rules cannot match DSCP 0 (a zero tos matches any; FRA_DSCP is Linux 6.12+)", f)
			default:
				return nil, fmt.Errorf("%s: this kernel's IPv4 rules cannot match DSCP %d (no FRA_DSCP, Linux 6.12+); mark the flows (nftables) and classify by fwmark", f, f.DSCP)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// normFlow validates f and puts it in the form the kernel reports it:
// a /0 prefix is no prefix, a single port is Lo..Lo, a mark without a
// mask has all mask bits.
func normFlow(f *FlowRule) error {
	if f.Priority < FlowRulePriorityMin || f.Priority > FlowRulePriorityMax {
		return fmt.Errorf("%s: priority %d outside %d..%d", f, f.Priority, FlowRulePriorityMin, FlowRulePriorityMax)
	}
	if f.Family != unix.AF_INET && f.Family != unix.AF_INET6 {
		return fmt.Errorf("%s: family %d is not AF_INET (%d) or AF_INET6 (%d)", f, f.Family, unix.AF_INET, unix.AF_INET6)
	}
	for _, p := range []*netip.Prefix{&f.Src, &f.Dst} {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Addr().Is4() != (f.Family == unix.AF_INET) {
			return fmt.Errorf("%s: prefix %s does not match family %d", f, *p, f.Family)
		}
		if *p != p.Masked() {
			return fmt.Errorf("%s: prefix %s has host bits set (want %s)", f, *p, p.Masked())
		}
		if p.Bits() == 0 {
			*p = netip.Prefix{}
		}
	}
	for _, pr := range []*PortRange{&f.SrcPorts, &f.DstPorts} {
		if *pr == (PortRange{}) {
			continue
		}
		if !portProtos[f.Protocol] {
			return fmt.Errorf("%s: ports %d-%d need protocol TCP, UDP, SCTP, DCCP or UDP-Lite, not %d", f, pr.Lo, pr.Hi, f.Protocol)
		}
		if pr.Hi == 0 {
			pr.Hi = pr.Lo
		}
		// The kernel's ranges end below 65535 (fib_rule_port_range_valid).
		if pr.Lo == 0 || pr.Lo > pr.Hi || pr.Hi == 0xffff {
			return fmt.Errorf("%s: port range %d-%d is not within 1..65534, low to high", f, pr.Lo, pr.Hi)
		}
	}
	if f.DSCP > 63 {
		return fmt.Errorf("%s: DSCP %d is more than 63", f, f.DSCP)
	}
	if f.DSCP != 0 && !f.HasDSCP {
		return fmt.Errorf("%s: DSCP %d given without HasDSCP", f, f.DSCP)
	}
	if f.FwMark != 0 && f.FwMask == 0 {
		f.FwMask = 0xffffffff
	}
	if f.FwMark&^f.FwMask != 0 {
		return fmt.Errorf("%s: fwmark 0x%x has bits outside mask 0x%x", f, f.FwMark, f.FwMask)
	}
	if f.IIF != "" && (len(f.IIF) > unix.IFNAMSIZ-1 || strings.ContainsAny(f.IIF, "/ \t\n")) {
		return fmt.Errorf("%s: interface %q: not a valid device name", f, f.IIF)
	}
	if f.Table <= 0 || f.Table == unix.RT_TABLE_LOCAL || int64(f.Table) > 0xffffffff {
		return fmt.Errorf("%s: table %d is reserved or out of range", f, f.Table)
	}
	return nil
}

// String names a flow rule in errors the way ip-rule(8) would write it.
func (f FlowRule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flow rule %d", f.Priority)
	if f.Src.IsValid() {
		fmt.Fprintf(&b, " from %s", f.Src)
	}
	if f.Dst.IsValid() {
		fmt.Fprintf(&b, " to %s", f.Dst)
	}
	if f.Protocol != 0 {
		fmt.Fprintf(&b, " ipproto %d", f.Protocol)
	}
	if f.SrcPorts != (PortRange{}) {
		fmt.Fprintf(&b, " sport %d-%d", f.SrcPorts.Lo, f.SrcPorts.Hi)
	}
	if f.DstPorts != (PortRange{}) {
		fmt.Fprintf(&b, " dport %d-%d", f.DstPorts.Lo, f.DstPorts.Hi)
	}
	if f.HasDSCP {
		fmt.Fprintf(&b, " dscp %d", f.DSCP)
	}
	if f.FwMark != 0 || f.FwMask != 0 {
		fmt.Fprintf(&b, " fwmark 0x%x/0x%x", f.FwMark, f.FwMask)
	}
	if f.IIF != "" {
		fmt.Fprintf(&b, " iif %s", f.IIF)
	}
	fmt.Fprintf(&b, " lookup %d", f.Table)
	return b.String()
}

func cmpPorts(a, b PortRange) int {
	return cmp.Or(cmp.Compare(a.Lo, b.Lo), cmp.Compare(a.Hi, b.Hi))
}

// cmpFlow orders flow rules by priority, then by every other field, so
// that equal rules are adjacent and the order is total.
func cmpFlow(a, b FlowRule) int {
	bool2int := func(x bool) int {
		if x {
			return 1
		}
		return 0
	}
	return cmp.Or(
		cmp.Compare(a.Priority, b.Priority),
		cmp.Compare(a.Family, b.Family),
		cmpPrefix(a.Src, b.Src),
		cmpPrefix(a.Dst, b.Dst),
		cmp.Compare(a.Protocol, b.Protocol),
		cmpPorts(a.SrcPorts, b.SrcPorts),
		cmpPorts(a.DstPorts, b.DstPorts),
		cmp.Compare(bool2int(a.HasDSCP), bool2int(b.HasDSCP)),
		cmp.Compare(a.DSCP, b.DSCP),
		cmp.Compare(a.FwMark, b.FwMark),
		cmp.Compare(a.FwMask, b.FwMask),
		cmp.Compare(a.IIF, b.IIF),
		cmp.Compare(a.Table, b.Table),
	)
}

// flowRulesOf reads flow rules back from rules of ours (sorted; nil when none).
func flowRulesOf(rules []krule) []FlowRule {
	var out []FlowRule
	for _, r := range rules {
		if r.Other || r.Action != frActToTbl || r.Prio < FlowRulePriorityMin || r.Prio > FlowRulePriorityMax {
			continue
		}
		f := FlowRule{Priority: int(r.Prio), Family: int(r.Family), Src: r.Src, Dst: r.Dst, Protocol: r.Proto,
			SrcPorts: r.SPort, DstPorts: r.DPort, DSCP: r.DSCP, HasDSCP: r.HasDSCP, FwMark: r.Mark, FwMask: r.Mask,
			IIF: r.Iif, Table: int(r.Table)}
		if r.TOS != 0 {
			f.DSCP, f.HasDSCP = r.TOS>>2, true
		}
		out = append(out, f)
	}
	slices.SortFunc(out, cmpFlow)
	return out
}
