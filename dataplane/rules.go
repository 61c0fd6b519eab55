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
const (
	frActToTbl     = 1
	frActBlackhole = 6
	fraDst         = 1
	fraSrc         = 2
	fraIifname     = 3
	fraPriority    = 6
	fraTable       = 15
	fraProtocol    = 21
	sizeofFibRule  = 12
)

// krule is one IPv6 rule of ours. It is comparable: equal rules are ==.
type krule struct {
	Prio   uint32
	Src    netip.Prefix // zero = from all
	Dst    netip.Prefix
	Iif    string
	Action uint8
	Table  uint32
	Other  bool // has something we never set: always stale
}

func (r krule) String() string {
	from := "all"
	if r.Src.IsValid() {
		from = r.Src.String()
	}
	act := fmt.Sprintf("action %d", r.Action)
	switch r.Action {
	case frActToTbl:
		act = fmt.Sprintf("lookup %d", r.Table)
	case frActBlackhole:
		act = "blackhole"
	}
	return fmt.Sprintf("rule %d from %s to %s iif %s %s", r.Prio, from, r.Dst, r.Iif, act)
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
			out = append(out, krule{Prio: RulePrioAllow, Src: a, Dst: l, Iif: f.Interface, Action: frActToTbl, Table: tableMain})
		}
	}
	for _, l := range f.Locators {
		out = append(out, krule{Prio: RulePrioDrop, Dst: l, Iif: f.Interface, Action: frActBlackhole})
	}
	return out
}

// diffRules lists the rules to add (want's order: allows before drops, so
// a still-valid peer is never dropped) and to delete (drops before allows,
// so the old locator is never open while its allows go).
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
		}
	}
	slices.SortStableFunc(del, func(a, b krule) int { return cmp.Compare(b.Prio, a.Prio) })
	return add, del
}

// filterOf reads a filter back from rules of ours (nil when none).
func filterOf(rules []krule) *SIDFilter {
	var f SIDFilter
	for _, r := range rules {
		switch {
		case r.Other:
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

// putRule appends an RTM_NEWRULE for r.
func (w *wbuf) putRule(seq uint32, r krule) {
	off := w.begin(unix.RTM_NEWRULE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq)
	srcLen := 0
	if r.Src.IsValid() {
		srcLen = r.Src.Bits()
	}
	t := uint8(0)
	if r.Table < 256 {
		t = uint8(r.Table)
	}
	// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
	w.b = append(w.b, unix.AF_INET6, uint8(r.Dst.Bits()), uint8(srcLen), 0, t, 0, 0, r.Action, 0, 0, 0, 0)
	w.u32(fraPriority, r.Prio)
	w.addr(fraDst, r.Dst.Addr())
	if r.Src.IsValid() {
		w.addr(fraSrc, r.Src.Addr())
	}
	if r.Iif != "" {
		w.attr(fraIifname, append([]byte(r.Iif), 0))
	}
	if r.Action == frActToTbl {
		w.u32(fraTable, r.Table)
	}
	w.attr(fraProtocol, []byte{RouteProtocol})
	w.end(off)
}

func (w *wbuf) dumpRules(seq uint32) {
	off := w.begin(unix.RTM_GETRULE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	w.b = append(w.b, unix.AF_INET6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	w.end(off)
}

// decodeRule parses an RTM_NEWRULE body; proto is its FRA_PROTOCOL.
func decodeRule(b []byte) (r krule, proto uint8, err error) {
	if len(b) < sizeofFibRule {
		return krule{}, 0, fmt.Errorf("fib_rule_hdr of %d bytes: %w", len(b), errShort)
	}
	fam, dstLen, srcLen, tos, table, action, flags := b[0], int(b[1]), int(b[2]), b[3], uint32(b[4]), b[7], ne.Uint32(b[8:])
	if fam != unix.AF_INET6 {
		return krule{}, 0, fmt.Errorf("rule family %d: not IPv6", fam)
	}
	if dstLen > 128 || srcLen > 128 {
		return krule{}, 0, fmt.Errorf("rule prefix lengths %d/%d exceed 128", dstLen, srcLen)
	}
	r.Action, r.Table = action, table
	r.Other = tos != 0 || flags != 0
	var dst, src []byte
	err = attrs(b[sizeofFibRule:], func(t uint16, v []byte) error {
		switch t {
		case fraDst:
			dst = v
		case fraSrc:
			src = v
		case fraIifname:
			r.Iif = strings.TrimRight(string(v), "\x00")
		case fraPriority:
			if len(v) < 4 {
				return fmt.Errorf("FRA_PRIORITY of %d bytes: %w", len(v), errShort)
			}
			r.Prio = ne.Uint32(v)
		case fraTable:
			if len(v) < 4 {
				return fmt.Errorf("FRA_TABLE of %d bytes: %w", len(v), errShort)
			}
			r.Table = ne.Uint32(v)
		case fraProtocol:
			if len(v) < 1 {
				return fmt.Errorf("FRA_PROTOCOL of %d bytes: %w", len(v), errShort)
			}
			proto = v[0]
		case unix.FRA_OIFNAME, unix.FRA_FWMARK, unix.FRA_FWMASK, unix.FRA_GOTO, unix.FRA_SUPPRESS_PREFIXLEN,
			unix.FRA_SUPPRESS_IFGROUP, unix.FRA_UID_RANGE, unix.FRA_IP_PROTO, unix.FRA_SPORT_RANGE,
			unix.FRA_DPORT_RANGE, unix.FRA_L3MDEV, unix.FRA_TUN_ID, unix.FRA_FLOW:
			// Kernels echo some of these with neutral values; anything
			// we did not set makes the rule "other", replaced by ours.
			if !neutralRuleAttr(t, v) {
				r.Other = true
			}
		}
		return nil
	})
	if err != nil {
		return krule{}, 0, err
	}
	pfx := func(v []byte, bits int) (netip.Prefix, error) {
		if len(v) != 16 {
			return netip.Prefix{}, fmt.Errorf("rule address of %d bytes", len(v))
		}
		return netip.PrefixFrom(netip.AddrFrom16([16]byte(v)), bits), nil
	}
	if dst != nil {
		if r.Dst, err = pfx(dst, dstLen); err != nil {
			return krule{}, 0, err
		}
	} else {
		r.Other = true // ours always name a destination
	}
	if src != nil {
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
