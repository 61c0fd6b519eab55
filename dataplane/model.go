package dataplane

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// This file is the pure half of the dataplane: validation, the mapping of a
// Desired state onto kernel routes (plan), the diff, and the way back
// (routes -> Desired). Both the netlink Kernel and the Fake run it, so the
// Fake holds exactly the route set the kernel would.

const (
	tableMain = unix.RT_TABLE_MAIN
	// maxSegments bounds a segment list: the SRH length field is 8 bits of
	// 8-octet units, so 127 segments is the hard limit.
	maxSegments = 127
	// Route priorities we install with: the kernel defaults (IPv4 0, IPv6
	// 1024), set explicitly so a read-back key equals the desired key.
	prio4 = 0
	prio6 = 1024
)

// seg6local action numbers (include/uapi/linux/seg6_local.h). End.DT46 is
// newer than vishvananda/netlink's list.
const (
	actEnd      = 1
	actEndX     = 2
	actEndT     = 3
	actEndDX6   = 5
	actEndDX4   = 6
	actEndDT6   = 7
	actEndDT4   = 8
	actEndB6Enc = 10
	actEndBPF   = 15
	actEndDT46  = 16
	seg6ModeEnc = 1 // SEG6_IPTUN_MODE_ENCAP
	seg6ModeRed = 3 // SEG6_IPTUN_MODE_ENCAP_RED
)

var behaviorAction = map[srv6.Behavior]uint32{
	srv6.End:         actEnd,
	srv6.EndX:        actEndX,
	srv6.EndT:        actEndT,
	srv6.EndDX6:      actEndDX6,
	srv6.EndDX4:      actEndDX4,
	srv6.EndDT6:      actEndDT6,
	srv6.EndDT4:      actEndDT4,
	srv6.EndB6Encaps: actEndB6Enc,
	srv6.EndDT46:     actEndDT46,
}

func actionBehavior(a uint32) srv6.Behavior {
	for b, x := range behaviorAction {
		if x == a {
			return b
		}
	}
	return srv6.Opaque
}

type routeKind uint8

const (
	kindUnreachable routeKind = iota + 1
	kindLocal                 // seg6local
	kindEncap                 // seg6 encap (inline or through a nexthop object)
	kindOther                 // one of ours the agent does not know how to read: always stale
)

// rkey identifies a kernel route the way the kernel does for our routes
// (family, table, destination; the priority is fixed per family).
type rkey struct {
	Family uint8
	Table  uint32
	Dst    netip.Prefix
}

func (k rkey) String() string {
	if k.Table == tableMain {
		return k.Dst.String()
	}
	return fmt.Sprintf("%s table %d", k.Dst, k.Table)
}

func cmpKey(a, b rkey) int {
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Dst.Bits(), b.Dst.Bits())
}

// rval is what a route does. It is comparable, so "unchanged" is ==.
type rval struct {
	Kind     routeKind
	Dev      int // ifindex; 0 for unreachable routes
	Action   uint32
	Table    uint32 // seg6local table (End.T, End.DT6)
	VRFTable uint32 // seg6local vrftable (End.DT4, End.DT46)
	NH       netip.Addr
	Mode     uint32 // seg6 encap mode
	Segs     segList
	HMAC     uint32 // HMAC key id of a seg6 encap's SRH (0 = none)
	// Paths makes an encap route multipath (Segs is then empty): one
	// seg6 encap per path, all with Mode, Dev and HMAC.
	Paths pathList
}

// encapSpec is what a seg6 nexthop object carries; routes with equal specs
// share one object.
type encapSpec struct {
	Mode uint32
	Dev  int
	Segs segList
	HMAC uint32
}

func (v rval) spec() encapSpec {
	return encapSpec{Mode: v.Mode, Dev: v.Dev, Segs: v.Segs, HMAC: v.HMAC}
}

// groupSpec is what a multipath nexthop group carries: routes with equal
// weighted path sets share one group, whose members are the seg6 objects
// of the single paths (shared with single-path routes of the same spec).
type groupSpec struct {
	Mode  uint32
	Dev   int
	HMAC  uint32
	Paths pathList
}

func (v rval) group() groupSpec {
	return groupSpec{Mode: v.Mode, Dev: v.Dev, HMAC: v.HMAC, Paths: v.Paths}
}

// member is the seg6 object spec of one of the group's paths.
func (g groupSpec) member(segs segList) encapSpec {
	return encapSpec{Mode: g.Mode, Dev: g.Dev, Segs: segs, HMAC: g.HMAC}
}

// Multipath limits. Linux carries a path's weight as weight-1 in one
// octet (rtnh_hops, nexthop_grp.weight); a policy has a handful of
// segment lists, and the bound keeps an inline RTA_MULTIPATH of long
// lists inside one attribute.
const (
	maxWeight = 256
	maxPaths  = MaxEncapPaths
)

// wpath is one weighted path of a multipath route.
type wpath struct {
	Weight uint32
	Segs   segList
}

// pathList is a multipath route's paths packed into a comparable string in
// canonical order (by segments), so that equal sets are ==: per path one
// octet weight-1, one octet segment count, then the segments.
type pathList string

// packPaths sorts ps by segments and packs them; ps must be valid.
func packPaths(ps []wpath, buf []byte) []byte {
	slices.SortFunc(ps, func(a, b wpath) int {
		return cmp.Or(strings.Compare(string(a.Segs), string(b.Segs)), cmp.Compare(a.Weight, b.Weight))
	})
	buf = buf[:0]
	for _, p := range ps {
		buf = append(buf, byte(p.Weight-1), byte(len(p.Segs)/16))
		buf = append(buf, p.Segs...)
	}
	return buf
}

func (p pathList) paths() []wpath {
	var out []wpath
	for i := 0; i+2 <= len(p); {
		w, n := uint32(p[i])+1, 16*int(p[i+1])
		if i+2+n > len(p) {
			break
		}
		out = append(out, wpath{Weight: w, Segs: segList(p[i+2 : i+2+n])})
		i += 2 + n
	}
	return out
}

func (p pathList) String() string {
	var b strings.Builder
	for i, x := range p.paths() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "weight %d [ %s ]", x.Weight, strings.ReplaceAll(x.Segs.String(), ",", " "))
	}
	return b.String()
}

// segList is IPv6 segments in travel order packed into a comparable
// string (16 bytes each).
type segList string

func (s segList) addrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(s)/16)
	for i := 0; i+16 <= len(s); i += 16 {
		out = append(out, netip.AddrFrom16([16]byte([]byte(s[i:i+16]))))
	}
	return out
}

func (s segList) String() string {
	a := s.addrs()
	parts := make([]string, len(a))
	for i, x := range a {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}

type routeSet map[rkey]rval

// names maps device names to ifindexes and back. The Kernel asks the
// kernel; the Fake invents stable numbers.
type names interface {
	ifindex(name string) (int, error)
	ifname(index int) string
}

// change is one route to create (Replace false) or to replace in place.
type change struct {
	Key     rkey
	Val     rval
	Replace bool
}

// desiredSet is a planned route set with the order routes were desired in
// (locators, SIDs, BSIDs, encaps; each in the caller's order), so that the
// changes go out in a stable order without sorting thousands of keys.
type desiredSet struct {
	routes routeSet
	order  []rkey
}

// diff lists what turns cur into want: upserts in want's order and
// deletions in curOrder's (the kernel dump's), or sorted when curOrder is
// nil.
func diff(cur routeSet, curOrder []rkey, want desiredSet) (ups []change, dels []rkey) {
	if len(cur) == 0 {
		ups = make([]change, 0, len(want.order))
	}
	for _, k := range want.order {
		v := want.routes[k]
		old, ok := cur[k]
		if ok && old == v {
			continue
		}
		ups = append(ups, change{Key: k, Val: v, Replace: ok})
	}
	if curOrder != nil {
		for _, k := range curOrder {
			if _, ok := want.routes[k]; !ok {
				dels = append(dels, k)
			}
		}
		return ups, dels
	}
	for k := range cur {
		if _, ok := want.routes[k]; !ok {
			dels = append(dels, k)
		}
	}
	slices.SortFunc(dels, cmpKey)
	return ups, dels
}

// vrfTables maps VRF names to tables.
func vrfTables(vrfs []VRF) map[string]int {
	m := make(map[string]int, len(vrfs))
	for _, v := range vrfs {
		m[v.Name] = v.Table
	}
	return m
}

// subject names what an error is about; it is formatted only on error,
// so that planning 10,000 routes does not build 10,000 strings.
type subject struct {
	kind uint8
	p    netip.Prefix
	a    netip.Addr
	b    srv6.Behavior
	path int // 1-based path of a multipath encap route (0 = none)
}

const (
	subjLocator = iota + 1
	subjSID
	subjEncap
)

func (s subject) String() string {
	switch s.kind {
	case subjLocator:
		return "locator " + s.p.String()
	case subjSID:
		return fmt.Sprintf("SID %s (%s)", s.a, s.b)
	default:
		if s.path > 0 {
			return fmt.Sprintf("encap route %s path %d", s.p, s.path)
		}
		return "encap route " + s.p.String()
	}
}

// Validate checks d against what the kernel can do, without touching it.
// wan is the device used where a route names none ("" = none configured).
// The error names the first bad value.
func (d Desired) Validate(caps Capabilities, wan string) error {
	if _, err := plan(d, caps, wan, anyNames{}); err != nil {
		return err
	}
	return validExtras(d, caps, wan)
}

// validExtras checks what Desired holds besides routes (the SID filter,
// flow rules, HMAC and the tunnel source).
func validExtras(d Desired, caps Capabilities, wan string) error {
	if _, err := normFilter(d.SIDFilter, wan); err != nil {
		return err
	}
	if _, err := flowKRules(d.FlowRules, caps); err != nil {
		return err
	}
	if err := validHMAC(d.HMAC, d.Encaps, wan); err != nil {
		return err
	}
	return validTunnelSource(d.TunnelSource)
}

// anyNames accepts every device name (validation without a kernel).
type anyNames struct{}

func (anyNames) ifindex(string) (int, error) { return 1, nil }
func (anyNames) ifname(int) string           { return "" }

// plan validates d and maps it onto the route set the kernel must hold.
func plan(d Desired, caps Capabilities, wan string, nm names) (desiredSet, error) {
	return planWith(&segInterner{}, d, caps, wan, nm)
}

// planWith is plan with segment lists interned in si.
func planWith(si *segInterner, d Desired, caps Capabilities, wan string, nm names) (desiredSet, error) {
	n := len(d.Locators) + len(d.LocalSIDs) + len(d.BSIDs) + len(d.Encaps)
	ds := desiredSet{routes: make(routeSet, n), order: make([]rkey, 0, n)}
	rs := ds.routes
	vt := make(map[string]int, len(d.VRFs))
	tables := make(map[int]string, len(d.VRFs))
	if len(d.VRFs) > 0 && !caps.VRF {
		return desiredSet{}, fmt.Errorf("VRF %q: this kernel cannot create VRF devices (use the VRF-less fallback)", d.VRFs[0].Name)
	}
	for _, v := range d.VRFs {
		if err := validVRF(v); err != nil {
			return desiredSet{}, err
		}
		if _, dup := vt[v.Name]; dup {
			return desiredSet{}, fmt.Errorf("VRF %q listed twice", v.Name)
		}
		if other, dup := tables[v.Table]; dup {
			return desiredSet{}, fmt.Errorf("VRF %q: table %d already belongs to VRF %q", v.Name, v.Table, other)
		}
		vt[v.Name] = v.Table
		tables[v.Table] = v.Name
	}
	lastName, lastIdx := "", 0 // most routes name the same device
	dev := func(what subject, name string) (int, error) {
		if name == "" {
			name = wan
		}
		if name == "" {
			return 0, fmt.Errorf("%s: no device given and no WAN interface configured", what)
		}
		if name == lastName {
			return lastIdx, nil
		}
		idx, err := nm.ifindex(name)
		if err != nil {
			return 0, fmt.Errorf("%s: device %q: %w", what, name, err)
		}
		lastName, lastIdx = name, idx
		return idx, nil
	}
	add := func(k rkey, v rval, what subject) error {
		n := len(rs)
		rs[k] = v // one hash instead of a lookup and an insert
		if len(rs) == n {
			return fmt.Errorf("%s: route %s is desired twice", what, k)
		}
		ds.order = append(ds.order, k)
		return nil
	}
	for _, p := range d.Locators {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
			return desiredSet{}, fmt.Errorf("locator %s: not an IPv6 prefix", p)
		}
		if p != p.Masked() {
			return desiredSet{}, fmt.Errorf("locator %s: host bits set (want %s)", p, p.Masked())
		}
		if err := add(rkey{unix.AF_INET6, tableMain, p}, rval{Kind: kindUnreachable}, subject{kind: subjLocator, p: p}); err != nil {
			return desiredSet{}, err
		}
	}
	sids := func(list []LocalSID, bsid bool) error {
		for _, s := range list {
			v, err := localVal(s, caps, vt, bsid, si)
			if err != nil {
				return err
			}
			what := subject{kind: subjSID, a: s.SID, b: s.Behavior}
			if v.Dev, err = dev(what, s.Dev); err != nil {
				return err
			}
			if err := add(rkey{unix.AF_INET6, tableMain, netip.PrefixFrom(s.SID, 128)}, v, what); err != nil {
				return err
			}
		}
		return nil
	}
	if err := sids(d.LocalSIDs, false); err != nil {
		return desiredSet{}, err
	}
	if err := sids(d.BSIDs, true); err != nil {
		return desiredSet{}, err
	}
	for _, e := range d.Encaps {
		what := subject{kind: subjEncap, p: e.Prefix}
		if !e.Prefix.IsValid() || e.Prefix.Addr().Is4In6() || e.Prefix.Addr().Zone() != "" {
			return desiredSet{}, fmt.Errorf("%s: not a valid prefix", what)
		}
		if e.Prefix != e.Prefix.Masked() {
			return desiredSet{}, fmt.Errorf("%s: host bits set (want %s)", what, e.Prefix.Masked())
		}
		table, err := routeTable(what, e.Table, e.VRF, vt)
		if err != nil {
			return desiredSet{}, err
		}
		v := rval{Kind: kindEncap}
		switch e.Mode {
		case Encap:
			v.Mode = seg6ModeEnc
		case EncapRed:
			if !caps.EncapRed {
				return desiredSet{}, fmt.Errorf("%s: this kernel has no seg6 encap.red", what)
			}
			v.Mode = seg6ModeRed
		default:
			return desiredSet{}, fmt.Errorf("%s: unknown encap mode %d", what, e.Mode)
		}
		fam := uint8(unix.AF_INET6)
		if e.Prefix.Addr().Is4() {
			fam = unix.AF_INET
		}
		if len(e.Paths) == 0 {
			if v.Segs, err = segments(what, e.Segments, si); err != nil {
				return desiredSet{}, err
			}
		} else if v.Segs, v.Paths, err = multipath(what, e, fam, caps, si); err != nil {
			return desiredSet{}, err
		}
		if v.Dev, err = dev(what, e.Dev); err != nil {
			return desiredSet{}, err
		}
		v.HMAC = e.HMACKeyID
		if err := add(rkey{fam, uint32(table), e.Prefix}, v, what); err != nil {
			return desiredSet{}, err
		}
	}
	return ds, nil
}

// multipath validates an encap route's Paths. One path is a plain encap
// route (its weight has nothing to share against); more are a pathList.
func multipath(what subject, e EncapRoute, fam uint8, caps Capabilities, si *segInterner) (segList, pathList, error) {
	if len(e.Segments) > 0 {
		return "", "", fmt.Errorf("%s: both Segments and Paths are set; give one", what)
	}
	if len(e.Paths) > maxPaths {
		return "", "", fmt.Errorf("%s: %d paths, at most %d", what, len(e.Paths), maxPaths)
	}
	ps := make([]wpath, len(e.Paths))
	seen := make(map[segList]int, len(e.Paths))
	for i, p := range e.Paths {
		if p.Weight < 1 || p.Weight > maxWeight {
			return "", "", fmt.Errorf("%s path %d: weight %d outside 1..%d", what, i+1, p.Weight, maxWeight)
		}
		pw := what
		pw.path = i + 1
		segs, err := segments(pw, p.Segments, si)
		if err != nil {
			return "", "", err
		}
		if j, dup := seen[segs]; dup {
			return "", "", fmt.Errorf("%s: paths %d and %d have the same segments [%s]", what, j+1, i+1, segs)
		}
		seen[segs] = i
		ps[i] = wpath{Weight: p.Weight, Segs: segs}
	}
	if len(ps) == 1 {
		return ps[0].Segs, "", nil
	}
	if fam == unix.AF_INET6 && !caps.NexthopObjects {
		// The kernel refuses device-only IPv6 routes through RTA_MULTIPATH.
		return "", "", fmt.Errorf("%s: an IPv6 multipath encap route needs nexthop objects, which this kernel lacks", what)
	}
	si.buf = packPaths(ps, si.buf)
	return "", pathList(si.internBuf()), nil
}

func validVRF(v VRF) error {
	if v.Name == "" || len(v.Name) > unix.IFNAMSIZ-1 || strings.ContainsAny(v.Name, "/ \t\n") {
		return fmt.Errorf("VRF %q: not a valid device name", v.Name)
	}
	if v.Table <= 0 || v.Table == unix.RT_TABLE_MAIN || v.Table == unix.RT_TABLE_LOCAL ||
		v.Table == unix.RT_TABLE_DEFAULT || int64(v.Table) > 0xffffffff {
		return fmt.Errorf("VRF %q: table %d is reserved or out of range", v.Name, v.Table)
	}
	return nil
}

// routeTable resolves (Table, VRF) to a table number.
func routeTable(what subject, table int, vrf string, vt map[string]int) (int, error) {
	if vrf != "" {
		t, ok := vt[vrf]
		if !ok {
			return 0, fmt.Errorf("%s: VRF %q is not in the desired VRFs", what, vrf)
		}
		if table != 0 && table != t {
			return 0, fmt.Errorf("%s: table %d contradicts VRF %q (table %d)", what, table, vrf, t)
		}
		return t, nil
	}
	if table == 0 {
		return tableMain, nil
	}
	if table < 0 || int64(table) > 0xffffffff || table == unix.RT_TABLE_LOCAL {
		return 0, fmt.Errorf("%s: table %d is reserved or out of range", what, table)
	}
	return table, nil
}

// segInterner gives equal segment lists one string: thousands of VPN
// routes use a handful of lists. The Kernel keeps one across applies, so
// that reading back and planning the same lists allocates nothing; rotate
// bounds it to the lists seen since the previous rotate.
type segInterner struct {
	m, old map[string]segList
	buf    []byte
}

func (si *segInterner) intern(segs []netip.Addr) segList {
	si.buf = si.buf[:0]
	for _, a := range segs {
		x := a.As16()
		si.buf = append(si.buf, x[:]...)
	}
	return si.internBuf()
}

// internBuf interns the bytes in si.buf (packed segments or a pathList).
func (si *segInterner) internBuf() segList {
	if s, ok := si.m[string(si.buf)]; ok {
		return s
	}
	s, ok := si.old[string(si.buf)]
	if !ok {
		s = segList(si.buf)
	}
	if si.m == nil {
		si.m = make(map[string]segList)
	}
	si.m[string(s)] = s
	return s
}

// rotate forgets the lists not interned since the previous rotate.
func (si *segInterner) rotate() {
	clear(si.old)
	si.m, si.old = si.old, si.m
}

func segments(what subject, segs []netip.Addr, si *segInterner) (segList, error) {
	if len(segs) == 0 {
		return "", fmt.Errorf("%s: empty segment list", what)
	}
	if len(segs) > maxSegments {
		return "", fmt.Errorf("%s: %d segments, at most %d fit an SRH", what, len(segs), maxSegments)
	}
	for _, s := range segs {
		if !s.Is6() || s.Is4In6() || s.IsUnspecified() || s.IsMulticast() || s.Zone() != "" {
			return "", fmt.Errorf("%s: segment %s is not a unicast IPv6 address", what, s)
		}
	}
	return si.intern(segs), nil
}

// localVal maps a LocalSID onto its seg6local route (without the device).
func localVal(s LocalSID, caps Capabilities, vt map[string]int, bsid bool, si *segInterner) (rval, error) {
	what := subject{kind: subjSID, a: s.SID, b: s.Behavior}
	if !s.SID.Is6() || s.SID.Is4In6() || s.SID.IsUnspecified() || s.SID.IsMulticast() || s.SID.Zone() != "" {
		return rval{}, fmt.Errorf("SID %s: not a unicast IPv6 address", s.SID)
	}
	if bsid && s.Behavior != srv6.EndB6Encaps && s.Behavior != srv6.EndB6EncapsRed {
		return rval{}, fmt.Errorf("%s: a binding SID must be End.B6.Encaps", what)
	}
	if s.Behavior == srv6.EndB6EncapsRed {
		return rval{}, fmt.Errorf("%s: Linux seg6local has no End.B6.Encaps.Red action; use End.B6.Encaps", what)
	}
	act, ok := behaviorAction[s.Behavior]
	if !ok {
		return rval{}, fmt.Errorf("%s: behaviour not supported by the Linux dataplane", what)
	}
	v := rval{Kind: kindLocal, Action: act}
	var err error
	switch s.Behavior {
	case srv6.End:
	case srv6.EndX:
		if !s.NH6.IsValid() {
			return rval{}, fmt.Errorf("%s: needs NH6, the IPv6 next hop", what)
		}
		if !s.NH6.Is6() || s.NH6.IsUnspecified() || s.NH6.Is4In6() {
			return rval{}, fmt.Errorf("%s: next hop %s is not an IPv6 address", what, s.NH6)
		}
		v.NH = s.NH6.WithZone("")
	case srv6.EndDX4:
		if !s.NH4.IsValid() {
			return rval{}, fmt.Errorf("%s: needs NH4 (0.0.0.0 = look the inner destination up)", what)
		}
		if !s.NH4.Is4() {
			return rval{}, fmt.Errorf("%s: next hop %s is not an IPv4 address (0.0.0.0 = look up)", what, s.NH4)
		}
		v.NH = s.NH4
	case srv6.EndDX6:
		if !s.NH6.IsValid() {
			return rval{}, fmt.Errorf("%s: needs NH6 (:: = look the inner destination up)", what)
		}
		if !s.NH6.Is6() || s.NH6.Is4In6() {
			return rval{}, fmt.Errorf("%s: next hop %s is not an IPv6 address (:: = look up)", what, s.NH6)
		}
		v.NH = s.NH6.WithZone("")
	case srv6.EndT:
		t, err := routeTable(what, s.Table, s.VRF, vt)
		if err != nil {
			return rval{}, err
		}
		v.Table = uint32(t)
	case srv6.EndDT6:
		t, err := routeTable(what, s.Table, s.VRF, vt)
		if err != nil {
			return rval{}, err
		}
		if t != tableMain && !caps.EndDT6Table {
			return rval{}, fmt.Errorf("%s: this kernel has no End.DT6 with a table", what)
		}
		v.Table = uint32(t)
	case srv6.EndDT4, srv6.EndDT46:
		if (s.Behavior == srv6.EndDT4 && !caps.EndDT4) || (s.Behavior == srv6.EndDT46 && !caps.EndDT46) {
			return rval{}, fmt.Errorf("%s: this kernel cannot do it (no VRF); use End.DX4 nh4 0.0.0.0 / End.DX6 nh6 ::", what)
		}
		if s.VRF == "" {
			return rval{}, fmt.Errorf("%s: needs a VRF", what)
		}
		t, err := routeTable(what, s.Table, s.VRF, vt)
		if err != nil {
			return rval{}, err
		}
		v.VRFTable = uint32(t)
	case srv6.EndB6Encaps:
		if !caps.EndB6Encaps {
			return rval{}, fmt.Errorf("%s: this kernel has no End.B6.Encaps", what)
		}
		if v.Segs, err = segments(what, s.Segments, si); err != nil {
			return rval{}, err
		}
	}
	return v, nil
}

// toDesired turns a route set back into a Desired state (Normalize form).
func toDesired(rs routeSet, vrfs []VRF, nm names) Desired {
	var d Desired
	if len(vrfs) > 0 {
		d.VRFs = slices.Clone(vrfs)
	}
	byTable := make(map[uint32]string, len(vrfs))
	for _, v := range vrfs {
		byTable[uint32(v.Table)] = v.Name
	}
	tableOf := func(t uint32) (int, string) {
		if n, ok := byTable[t]; ok {
			return 0, n
		}
		if t == tableMain {
			return 0, ""
		}
		return int(t), ""
	}
	for k, v := range rs {
		switch v.Kind {
		case kindUnreachable:
			d.Locators = append(d.Locators, k.Dst)
		case kindLocal:
			s := LocalSID{SID: k.Dst.Addr(), Behavior: actionBehavior(v.Action), Dev: nm.ifname(v.Dev)}
			switch v.Action {
			case actEndX, actEndDX6:
				s.NH6 = v.NH
			case actEndDX4:
				s.NH4 = v.NH
			case actEndT, actEndDT6:
				s.Table, s.VRF = tableOf(v.Table)
			case actEndDT4, actEndDT46:
				s.Table, s.VRF = tableOf(v.VRFTable)
			case actEndB6Enc:
				s.Segments = v.Segs.addrs()
			}
			if s.Behavior == srv6.EndB6Encaps {
				d.BSIDs = append(d.BSIDs, s)
			} else {
				d.LocalSIDs = append(d.LocalSIDs, s)
			}
		case kindEncap:
			e := EncapRoute{Prefix: k.Dst, Dev: nm.ifname(v.Dev), HMACKeyID: v.HMAC}
			if v.Paths != "" {
				for _, p := range v.Paths.paths() {
					e.Paths = append(e.Paths, EncapPath{Segments: p.Segs.addrs(), Weight: p.Weight})
				}
			} else {
				e.Segments = v.Segs.addrs()
			}
			e.Table, e.VRF = tableOf(k.Table)
			if v.Mode == seg6ModeRed {
				e.Mode = EncapRed
			}
			d.Encaps = append(d.Encaps, e)
		}
	}
	sortDesired(&d)
	return d
}

func sortDesired(d *Desired) {
	slices.SortFunc(d.Locators, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	slices.SortFunc(d.VRFs, func(a, b VRF) int { return cmp.Compare(a.Name, b.Name) })
	bySID := func(a, b LocalSID) int { return a.SID.Compare(b.SID) }
	slices.SortFunc(d.LocalSIDs, bySID)
	slices.SortFunc(d.BSIDs, bySID)
	slices.SortFunc(d.Encaps, func(a, b EncapRoute) int {
		if c := cmp.Compare(a.VRF, b.VRF); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
	})
}

// Normalize returns d in the form Installed reports: defaults filled in (wan
// for an empty Dev, VRF names for VRF tables), fields a behaviour does not
// use cleared, binding SIDs under BSIDs, everything sorted. Applying d and
// reading back gives Normalize(d). d must be valid.
func Normalize(d Desired, caps Capabilities, wan string) (Desired, error) {
	nm := &fakeNames{}
	ds, err := plan(d, caps, wan, nm)
	if err != nil {
		return Desired{}, err
	}
	if err := validExtras(d, caps, wan); err != nil {
		return Desired{}, err
	}
	f, _ := normFilter(d.SIDFilter, wan)
	flows, _ := flowKRules(d.FlowRules, caps)
	out := toDesired(ds.routes, d.VRFs, nm)
	out.SIDFilter, out.TunnelSource, out.HMAC = f, d.TunnelSource, normHMAC(d.HMAC)
	out.FlowRules = flowRulesOf(flows)
	return out, nil
}

// fakeNames gives every device name a stable invented ifindex.
type fakeNames struct {
	byName map[string]int
	byIdx  []string
}

func (f *fakeNames) ifindex(name string) (int, error) {
	if f.byName == nil {
		f.byName = make(map[string]int)
	}
	if i, ok := f.byName[name]; ok {
		return i, nil
	}
	f.byIdx = append(f.byIdx, name)
	f.byName[name] = len(f.byIdx)
	return len(f.byIdx), nil
}

func (f *fakeNames) ifname(i int) string {
	if i <= 0 || i > len(f.byIdx) {
		return ""
	}
	return f.byIdx[i-1]
}
