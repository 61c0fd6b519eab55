package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Raw rtnetlink encoding. vishvananda/netlink lacks nexthop objects, seg6
// encap.red, End.DT46 and a batched request path, and builds each request
// out of many small allocations; this writes requests straight into one
// buffer that goes to the kernel in a few sendmsg calls.

// Attribute numbers not in x/sys/unix or easy to confuse.
const (
	rtaNHID             = 30 // RTA_NH_ID
	nhaFDB              = 11 // NHA_FDB
	seg6IptunnelSRH     = 1  // SEG6_IPTUNNEL_SRH
	seg6LocalAction     = 1  // SEG6_LOCAL_ACTION
	seg6LocalSRH        = 2
	seg6LocalTable      = 3
	seg6LocalNH4        = 4
	seg6LocalNH6        = 5
	seg6LocalBPF        = 8
	seg6LocalVRFTbl     = 9
	lwtBPFProgFD        = 1 // LWT_BPF_PROG_FD
	lwtBPFProgName      = 2
	ipv6SRCRTType4      = 4 // routing type of the SRH
	sizeofRtmsg         = unix.SizeofRtMsg
	sizeofNlmsghdr      = unix.SizeofNlMsghdr
	sizeofNhmsg         = unix.SizeofNhmsg
	nlaHdrLen           = 4
	nlaTypeMask         = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	nlmFAckTLVs         = 0x200 // NLM_F_ACK_TLVS, on error messages
	nlmsgerrAttrMsg     = unix.NLMSGERR_ATTR_MSG
	tableCompat         = 252 // RT_TABLE_COMPAT: rtm_table when the id needs RTA_TABLE
	rtScopeNowhere      = unix.RT_SCOPE_NOWHERE
	defaultNHIDFirst    = 0xc6000000 // first nexthop id we hand out
	nexthopGrpTypeMpath = 0          // NEXTHOP_GRP_TYPE_MPATH (hash-threshold)
	sizeofNexthopGrp    = 8
)

var ne = binary.NativeEndian

func align4(n int) int { return (n + 3) &^ 3 }

// wbuf accumulates netlink messages.
type wbuf struct{ b []byte }

// begin starts a message; end(off) closes it.
func (w *wbuf) begin(typ, flags uint16, seq uint32) int {
	off := len(w.b)
	w.b = append(w.b, make([]byte, sizeofNlmsghdr)...)
	ne.PutUint16(w.b[off+4:], typ)
	ne.PutUint16(w.b[off+6:], flags)
	ne.PutUint32(w.b[off+8:], seq)
	return off
}

func (w *wbuf) end(off int) { ne.PutUint32(w.b[off:], uint32(len(w.b)-off)) }

func (w *wbuf) bytes(p []byte) {
	w.b = append(w.b, p...)
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *wbuf) attr(typ uint16, p []byte) {
	var h [nlaHdrLen]byte
	ne.PutUint16(h[0:], uint16(nlaHdrLen+len(p)))
	ne.PutUint16(h[2:], typ)
	w.b = append(w.b, h[:]...)
	w.bytes(p)
}

func (w *wbuf) u32(typ uint16, v uint32) {
	var p [4]byte
	ne.PutUint32(p[:], v)
	w.attr(typ, p[:])
}

func (w *wbuf) u16(typ uint16, v uint16) {
	var p [2]byte
	ne.PutUint16(p[:], v)
	w.attr(typ, p[:])
}

func (w *wbuf) nest(typ uint16) int {
	off := len(w.b)
	w.attr(typ|unix.NLA_F_NESTED, nil)
	return off
}

func (w *wbuf) endNest(off int) { ne.PutUint16(w.b[off:], uint16(len(w.b)-off)) }

// open starts an attribute whose body follows (closed by endNest) without
// the nested flag: RTA_MULTIPATH is an array of rtnexthop, not attributes.
func (w *wbuf) open(typ uint16) int {
	off := len(w.b)
	w.attr(typ, nil)
	return off
}

// srh appends an IPv6 segment routing header holding segs (travel order),
// reversed as the SRH wants them.
func (w *wbuf) srh(segs segList) { w.srhKeyed(segs, 0) }

// srhKeyed is srh with an HMAC TLV for key hmac (0 = none, hmac.go).
func (w *wbuf) srhKeyed(segs segList, hmac uint32) {
	n := len(segs) / 16
	hdrLen, flags := byte(2*n), byte(0)
	if hmac != 0 {
		hdrLen, flags = byte(2*n+hmacTLVLen/8), sr6FlagHMAC
	}
	w.b = append(w.b, 0, hdrLen, ipv6SRCRTType4, byte(n-1), byte(n-1), flags, 0, 0)
	for i := n - 1; i >= 0; i-- {
		w.b = append(w.b, segs[16*i:16*i+16]...)
	}
	if hmac != 0 {
		w.b = putHMACTLV(w.b, hmac)
	}
}

func (w *wbuf) seg6Encap(mode uint32, segs segList, hmac uint32) {
	w.u16(unix.RTA_ENCAP_TYPE, unix.LWTUNNEL_ENCAP_SEG6)
	n := w.nest(unix.RTA_ENCAP)
	a := len(w.b)
	w.attr(seg6IptunnelSRH, nil)
	var m [4]byte
	ne.PutUint32(m[:], mode)
	w.b = append(w.b, m[:]...)
	w.srhKeyed(segs, hmac)
	ne.PutUint16(w.b[a:], uint16(len(w.b)-a))
	w.endNest(n)
}

func (w *wbuf) rtmsg(family, dstLen uint8, table uint32, scope, typ uint8) {
	t := uint8(tableCompat)
	if table < 256 {
		t = uint8(table)
	}
	w.b = append(w.b, family, dstLen, 0, 0, t, RouteProtocol, scope, typ, 0, 0, 0, 0)
}

// addr appends an address attribute: 4 bytes for IPv4, 16 for IPv6.
func (w *wbuf) addr(typ uint16, a netip.Addr) {
	if a.Is4() {
		x := a.As4()
		w.attr(typ, x[:])
		return
	}
	x := a.As16()
	w.attr(typ, x[:])
}

func prioOf(family uint8) uint32 {
	if family == unix.AF_INET6 {
		return prio6
	}
	return prio4
}

// putRoute appends an RTM_NEWROUTE for k -> v. nhid != 0 makes an encap
// route reference that nexthop object instead of carrying its own encap.
func (w *wbuf) putRoute(seq uint32, k rkey, v rval, nhid uint32, replace bool) {
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE)
	if replace {
		flags |= unix.NLM_F_REPLACE
	} else {
		// EXCL: a foreign route on the same key is reported, never overwritten.
		flags |= unix.NLM_F_EXCL
	}
	off := w.begin(unix.RTM_NEWROUTE, flags, seq)
	typ, scope := uint8(unix.RTN_UNICAST), uint8(unix.RT_SCOPE_UNIVERSE)
	if v.Kind == kindUnreachable {
		typ = unix.RTN_UNREACHABLE
	} else if v.Kind == kindEncap && nhid == 0 && k.Family == unix.AF_INET {
		scope = unix.RT_SCOPE_LINK // a device-only IPv4 route, as iproute2 makes it
	}
	w.rtmsg(k.Family, uint8(k.Dst.Bits()), k.Table, scope, typ)
	w.addr(unix.RTA_DST, k.Dst.Addr())
	// Attributes the kernel would default to the same values are left
	// out: every byte is parsed 10,000 times on a big apply.
	if k.Table >= 256 {
		w.u32(unix.RTA_TABLE, k.Table)
	}
	if p := prioOf(k.Family); p != 0 {
		w.u32(unix.RTA_PRIORITY, p)
	}
	switch v.Kind {
	case kindLocal:
		w.u32(unix.RTA_OIF, uint32(v.Dev))
		w.u16(unix.RTA_ENCAP_TYPE, unix.LWTUNNEL_ENCAP_SEG6_LOCAL)
		n := w.nest(unix.RTA_ENCAP)
		w.u32(seg6LocalAction, v.Action)
		switch v.Action {
		case actEndX, actEndDX6:
			w.addr(seg6LocalNH6, v.NH)
		case actEndDX4:
			w.addr(seg6LocalNH4, v.NH)
		case actEndT, actEndDT6:
			w.u32(seg6LocalTable, v.Table)
		case actEndDT4, actEndDT46:
			w.u32(seg6LocalVRFTbl, v.VRFTable)
		case actEndB6Enc:
			a := len(w.b)
			w.attr(seg6LocalSRH, nil)
			w.srh(v.Segs)
			ne.PutUint16(w.b[a:], uint16(len(w.b)-a))
		}
		w.endNest(n)
	case kindEncap:
		switch {
		case nhid != 0:
			w.u32(rtaNHID, nhid)
		case v.Paths != "":
			w.multipath(v)
		default:
			w.u32(unix.RTA_OIF, uint32(v.Dev))
			w.seg6Encap(v.Mode, v.Segs, v.HMAC)
		}
	}
	w.end(off)
}

// multipath appends an RTA_MULTIPATH with one seg6 encap per path: struct
// rtnexthop {len, flags, hops = weight-1, ifindex} and its attributes.
func (w *wbuf) multipath(v rval) {
	mp := w.open(unix.RTA_MULTIPATH)
	for _, p := range v.Paths.paths() {
		nh := len(w.b)
		w.b = append(w.b, 0, 0, 0, byte(p.Weight-1), 0, 0, 0, 0)
		ne.PutUint32(w.b[nh+4:], uint32(v.Dev))
		w.seg6Encap(v.Mode, p.Segs, v.HMAC)
		ne.PutUint16(w.b[nh:], uint16(len(w.b)-nh))
	}
	w.endNest(mp)
}

// putGroup appends an RTM_NEWNEXTHOP for a multipath group over member
// objects (struct nexthop_grp: id, weight-1, reserved).
func (w *wbuf) putGroup(seq, id uint32, members []grpEntry) {
	off := w.begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq)
	w.b = append(w.b, unix.AF_UNSPEC, 0, RouteProtocol, 0, 0, 0, 0, 0)
	w.u32(unix.NHA_ID, id)
	g := w.open(unix.NHA_GROUP)
	for _, m := range members {
		e := len(w.b)
		w.b = append(w.b, 0, 0, 0, 0, byte(m.Weight-1), 0, 0, 0)
		ne.PutUint32(w.b[e:], m.ID)
	}
	w.endNest(g)
	w.u16(unix.NHA_GROUP_TYPE, nexthopGrpTypeMpath)
	w.end(off)
}

// delRoute appends an RTM_DELROUTE for one of our routes. The protocol in
// the request makes the kernel refuse to delete anybody else's route.
func (w *wbuf) delRoute(seq uint32, k rkey, prio uint32) {
	off := w.begin(unix.RTM_DELROUTE, unix.NLM_F_REQUEST, seq)
	w.rtmsg(k.Family, uint8(k.Dst.Bits()), k.Table, rtScopeNowhere, 0)
	w.addr(unix.RTA_DST, k.Dst.Addr())
	w.u32(unix.RTA_TABLE, k.Table)
	w.u32(unix.RTA_PRIORITY, prio)
	w.end(off)
}

// putNexthop appends an RTM_NEWNEXTHOP for a seg6 encap nexthop object.
// The object is AF_INET6 so both IPv4 and IPv6 routes may use it.
func (w *wbuf) putNexthop(seq, id uint32, s encapSpec) {
	off := w.begin(unix.RTM_NEWNEXTHOP, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq)
	w.b = append(w.b, unix.AF_INET6, unix.RT_SCOPE_UNIVERSE, RouteProtocol, 0, 0, 0, 0, 0)
	w.u32(unix.NHA_ID, id)
	w.u32(unix.NHA_OIF, uint32(s.Dev))
	// NHA_ENCAP_TYPE / NHA_ENCAP have the same numbers as their RTA_ twins
	// in their own space, so write them explicitly.
	w.u16(unix.NHA_ENCAP_TYPE, unix.LWTUNNEL_ENCAP_SEG6)
	n := w.nest(unix.NHA_ENCAP)
	a := len(w.b)
	w.attr(seg6IptunnelSRH, nil)
	var m [4]byte
	ne.PutUint32(m[:], s.Mode)
	w.b = append(w.b, m[:]...)
	w.srhKeyed(s.Segs, s.HMAC)
	ne.PutUint16(w.b[a:], uint16(len(w.b)-a))
	w.endNest(n)
	w.end(off)
}

func (w *wbuf) delNexthop(seq, id uint32) {
	off := w.begin(unix.RTM_DELNEXTHOP, unix.NLM_F_REQUEST, seq)
	w.b = append(w.b, unix.AF_INET6, 0, 0, 0, 0, 0, 0, 0)
	w.u32(unix.NHA_ID, id)
	w.end(off)
}

// dumpRoutes appends a route dump request for one family; with strict
// checking on, proto != 0 makes the kernel send only that protocol's.
func (w *wbuf) dumpRoutes(seq uint32, family uint8, proto uint8) {
	off := w.begin(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	w.b = append(w.b, family, 0, 0, 0, 0, proto, 0, 0, 0, 0, 0, 0)
	w.end(off)
}

func (w *wbuf) dumpNexthops(seq uint32) {
	off := w.begin(unix.RTM_GETNEXTHOP, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	w.b = append(w.b, unix.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0)
	w.end(off)
}

// --- decoding ---

var errShort = errors.New("truncated netlink data")

// attrs walks netlink attributes; fn gets the type without flag bits.
func attrs(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) >= nlaHdrLen {
		l := int(ne.Uint16(b))
		if l < nlaHdrLen || l > len(b) {
			return fmt.Errorf("netlink attribute length %d: %w", l, errShort)
		}
		if err := fn(ne.Uint16(b[2:])&nlaTypeMask, b[nlaHdrLen:l]); err != nil {
			return err
		}
		if a := align4(l); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	return nil
}

// kroute is a route read from the kernel.
type kroute struct {
	Key   rkey
	Prio  uint32
	Proto uint8
	Val   rval
	NHID  uint32 // the nexthop object it uses (0 = none)
}

// decodeSRH reads an IPv6 SRH and returns its segments in travel order,
// interned in si (nil: a new string).
func decodeSRH(b []byte, si *segInterner) (segList, error) {
	if len(b) < 8 {
		return "", fmt.Errorf("SRH of %d bytes: %w", len(b), errShort)
	}
	// first_segment (not the length, which also covers TLVs such as an
	// HMAC) says how many segments there are.
	n := int(b[4]) + 1
	if int(b[1])*8 != len(b)-8 || 8+16*n > len(b) {
		return "", fmt.Errorf("SRH of %d bytes: length %d, %d segments do not fit", len(b), b[1], n)
	}
	var out []byte
	if si != nil {
		out = si.buf[:0]
	} else {
		out = make([]byte, 0, 16*n)
	}
	for i := n - 1; i >= 0; i-- {
		out = append(out, b[8+16*i:8+16*i+16]...)
	}
	if si == nil {
		return segList(out), nil
	}
	si.buf = out
	return si.internBuf(), nil
}

func addrFrom(b []byte) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

// decodeRoute parses an RTM_NEWROUTE body (after the nlmsghdr), interning
// segment lists in si (nil: new strings). Routes the agent cannot express
// come back as kindOther.
func decodeRoute(b []byte, si *segInterner) (kroute, error) {
	if len(b) < sizeofRtmsg {
		return kroute{}, fmt.Errorf("rtmsg of %d bytes: %w", len(b), errShort)
	}
	fam, dstLen, table, proto, typ := b[0], int(b[1]), uint32(b[4]), b[5], b[7]
	r := kroute{Proto: proto}
	var dst []byte
	var encType uint16
	var enc, mp []byte
	foreign := false // a gateway: not a route the agent makes
	err := attrs(b[sizeofRtmsg:], func(t uint16, v []byte) error {
		switch t {
		case unix.RTA_DST:
			dst = v
		case unix.RTA_TABLE:
			if len(v) >= 4 {
				table = ne.Uint32(v)
			}
		case unix.RTA_PRIORITY:
			if len(v) >= 4 {
				r.Prio = ne.Uint32(v)
			}
		case unix.RTA_OIF:
			if len(v) >= 4 {
				r.Val.Dev = int(ne.Uint32(v))
			}
		case unix.RTA_ENCAP_TYPE:
			if len(v) >= 2 {
				encType = ne.Uint16(v)
			}
		case unix.RTA_ENCAP:
			enc = v
		case rtaNHID:
			if len(v) >= 4 {
				r.NHID = ne.Uint32(v)
			}
		case unix.RTA_MULTIPATH:
			mp = v
		case unix.RTA_GATEWAY, unix.RTA_VIA:
			foreign = true
		}
		return nil
	})
	if err != nil {
		return kroute{}, err
	}
	var addrLen int
	switch fam {
	case unix.AF_INET:
		addrLen = 4
	case unix.AF_INET6:
		addrLen = 16
	default:
		return kroute{}, fmt.Errorf("route family %d: not IPv4 or IPv6", fam)
	}
	if dstLen > 8*addrLen {
		return kroute{}, fmt.Errorf("route prefix length %d too long for family %d", dstLen, fam)
	}
	var a [16]byte
	if dst != nil {
		if len(dst) != addrLen {
			return kroute{}, fmt.Errorf("RTA_DST of %d bytes in family %d", len(dst), fam)
		}
		copy(a[:], dst)
	}
	addr, _ := addrFrom(a[:addrLen])
	r.Key = rkey{Family: fam, Table: table, Dst: netip.PrefixFrom(addr, dstLen)}
	r.Val.Kind = kindOther
	switch {
	case foreign:
	case typ == unix.RTN_UNREACHABLE && encType == 0 && r.NHID == 0 && mp == nil:
		r.Val = rval{Kind: kindUnreachable}
	case typ != unix.RTN_UNICAST:
	case r.NHID != 0:
		// The executor resolves the object; the dump also carries a copy
		// of its encap (or of its group's, in RTA_MULTIPATH), ignored.
		r.Val = rval{Kind: kindEncap}
	case mp != nil:
		// An RTA_MULTIPATH this code cannot read stays kindOther.
		if v, err := decodeMultipath(mp, si); err == nil {
			r.Val = v
		}
	case encType == unix.LWTUNNEL_ENCAP_SEG6:
		// An encap this code cannot read stays kindOther: a route of
		// ours in that state is replaced, never a reason to stop.
		if mode, segs, hmac, err := decodeSeg6(enc, si); err == nil {
			r.Val.Kind, r.Val.Mode, r.Val.Segs, r.Val.HMAC = kindEncap, mode, segs, hmac
		}
	case encType == unix.LWTUNNEL_ENCAP_SEG6_LOCAL:
		if v, err := decodeSeg6Local(enc, si); err == nil {
			v.Dev = r.Val.Dev
			r.Val = v
		}
	}
	return r, nil
}

// decodeMultipath reads an inline RTA_MULTIPATH of seg6 encaps that share
// device, mode and HMAC key: the form the agent writes without nexthop
// objects.
func decodeMultipath(b []byte, si *segInterner) (rval, error) {
	v := rval{Kind: kindEncap}
	var ps []wpath
	for i := 0; len(b) >= unix.SizeofRtNexthop; i++ {
		l := int(ne.Uint16(b))
		if l < unix.SizeofRtNexthop || l > len(b) {
			return rval{}, fmt.Errorf("rtnexthop length %d: %w", l, errShort)
		}
		dev := int(ne.Uint32(b[4:]))
		var encType uint16
		var enc []byte
		var bad error
		err := attrs(b[unix.SizeofRtNexthop:l], func(t uint16, p []byte) error {
			switch t {
			case unix.RTA_ENCAP_TYPE:
				if len(p) >= 2 {
					encType = ne.Uint16(p)
				}
			case unix.RTA_ENCAP:
				enc = p
			default:
				bad = fmt.Errorf("multipath nexthop %d: attribute %d", i+1, t)
			}
			return nil
		})
		if err != nil {
			return rval{}, err
		}
		if bad != nil {
			return rval{}, bad
		}
		if encType != unix.LWTUNNEL_ENCAP_SEG6 {
			return rval{}, fmt.Errorf("multipath nexthop %d: encap type %d, not seg6", i+1, encType)
		}
		mode, segs, hmac, err := decodeSeg6(enc, si)
		if err != nil {
			return rval{}, err
		}
		if i == 0 {
			v.Dev, v.Mode, v.HMAC = dev, mode, hmac
		} else if dev != v.Dev || mode != v.Mode || hmac != v.HMAC {
			return rval{}, fmt.Errorf("multipath nexthop %d: device, mode or HMAC key differs from the first", i+1)
		}
		ps = append(ps, wpath{Weight: uint32(b[3]) + 1, Segs: segs})
		b = b[min(align4(l), len(b)):]
	}
	switch len(ps) {
	case 0:
		return rval{}, errors.New("empty RTA_MULTIPATH")
	case 1:
		v.Segs = ps[0].Segs
		return v, nil
	}
	if si == nil {
		v.Paths = pathList(packPaths(ps, nil))
		return v, nil
	}
	si.buf = packPaths(ps, si.buf)
	v.Paths = pathList(si.internBuf())
	return v, nil
}

// decodeSeg6 reads the body of a seg6 RTA_ENCAP / NHA_ENCAP.
func decodeSeg6(b []byte, si *segInterner) (mode uint32, segs segList, hmac uint32, err error) {
	found := false
	err = attrs(b, func(t uint16, v []byte) error {
		if t != seg6IptunnelSRH {
			return nil
		}
		if len(v) < 4 {
			return fmt.Errorf("seg6 encap of %d bytes: %w", len(v), errShort)
		}
		mode = ne.Uint32(v)
		s, err := decodeSRH(v[4:], si)
		if err == nil {
			hmac = srhHMACKeyID(v[4:])
		}
		segs, found = s, true
		return err
	})
	if err == nil && !found {
		err = errors.New("seg6 encap without SRH")
	}
	return mode, segs, hmac, err
}

func decodeSeg6Local(b []byte, si *segInterner) (rval, error) {
	v := rval{Kind: kindLocal}
	unknown := false
	err := attrs(b, func(t uint16, p []byte) error {
		switch t {
		case seg6LocalAction:
			if len(p) < 4 {
				return errShort
			}
			v.Action = ne.Uint32(p)
		case seg6LocalTable:
			if len(p) < 4 {
				return errShort
			}
			v.Table = ne.Uint32(p)
		case seg6LocalVRFTbl:
			if len(p) < 4 {
				return errShort
			}
			v.VRFTable = ne.Uint32(p)
		case seg6LocalNH4, seg6LocalNH6:
			a, ok := addrFrom(p)
			if !ok {
				return fmt.Errorf("seg6local next hop of %d bytes", len(p))
			}
			v.NH = a
		case seg6LocalSRH:
			s, err := decodeSRH(p, si)
			if err != nil {
				return err
			}
			v.Segs = s
		default:
			unknown = true
		}
		return nil
	})
	if err != nil {
		return rval{}, err
	}
	if unknown || actionBehavior(v.Action) == 0xFFFF {
		v.Kind = kindOther
	}
	return v, nil
}

// knh is a nexthop object read from the kernel.
type knh struct {
	ID     uint32
	Proto  uint8
	Simple bool // a single seg6 encap nexthop the agent could have made
	Spec   encapSpec
	// Group lists the members of a multipath group (hash-threshold);
	// Spec and Simple do not apply to a group.
	Group []grpEntry
	// OddGroup: a group the agent would not make (resilient, or weights
	// beyond one octet); nothing of ours is reused from it.
	OddGroup bool
}

// grpEntry is one member of a nexthop group.
type grpEntry struct {
	ID     uint32
	Weight uint32
}

// decodeNexthop parses an RTM_NEWNEXTHOP body, interning its segment list
// in si (nil: a new string).
func decodeNexthop(b []byte, si *segInterner) (knh, error) {
	if len(b) < sizeofNhmsg {
		return knh{}, fmt.Errorf("nhmsg of %d bytes: %w", len(b), errShort)
	}
	n := knh{Proto: b[2], Simple: true}
	var encType uint16
	var enc []byte
	err := attrs(b[sizeofNhmsg:], func(t uint16, v []byte) error {
		switch t {
		case unix.NHA_ID:
			if len(v) >= 4 {
				n.ID = ne.Uint32(v)
			}
		case unix.NHA_OIF:
			if len(v) >= 4 {
				n.Spec.Dev = int(ne.Uint32(v))
			}
		case unix.NHA_ENCAP_TYPE:
			if len(v) >= 2 {
				encType = ne.Uint16(v)
			}
		case unix.NHA_ENCAP:
			enc = v
		case unix.NHA_GROUP:
			n.Simple = false
			if len(v) == 0 || len(v)%sizeofNexthopGrp != 0 {
				return fmt.Errorf("NHA_GROUP of %d bytes", len(v))
			}
			for i := 0; i < len(v); i += sizeofNexthopGrp {
				// Octet 5 is the weight's high byte on kernels with
				// 16-bit weights; ours always fit the low one.
				n.Group = append(n.Group, grpEntry{ID: ne.Uint32(v[i:]), Weight: uint32(v[i+4]) + 1})
				if v[i+5] != 0 {
					n.OddGroup = true
				}
			}
		case unix.NHA_GROUP_TYPE:
			if len(v) < 2 || ne.Uint16(v) != nexthopGrpTypeMpath {
				n.OddGroup = true
			}
		case unix.NHA_BLACKHOLE, unix.NHA_GATEWAY, nhaFDB:
			n.Simple = false
		}
		return nil
	})
	if err != nil {
		return knh{}, err
	}
	if n.ID == 0 {
		return knh{}, errors.New("nexthop without id")
	}
	if n.Group != nil {
		return n, nil
	}
	if !n.Simple || encType != unix.LWTUNNEL_ENCAP_SEG6 {
		n.Simple = false
		return n, nil
	}
	if n.Spec.Mode, n.Spec.Segs, n.Spec.HMAC, err = decodeSeg6(enc, si); err != nil {
		n.Simple = false // an object we would not make: never reused
	}
	return n, nil
}

// nlError is the kernel's answer to one failed request.
type nlError struct {
	Errno unix.Errno
	Msg   string // extended ack text, when the kernel gave one
}

func (e *nlError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%v (%s)", e.Errno, e.Msg)
	}
	return e.Errno.Error()
}

func (e *nlError) Unwrap() error { return e.Errno }

// decodeError parses an NLMSG_ERROR body; flags are the message's own
// header flags. Errno 0 is an ACK.
func decodeError(b []byte, flags uint16) (seq uint32, err *nlError, perr error) {
	if len(b) < 4+sizeofNlmsghdr {
		return 0, nil, fmt.Errorf("nlmsgerr of %d bytes: %w", len(b), errShort)
	}
	code := int32(ne.Uint32(b))
	seq = ne.Uint32(b[4+8:])
	if code == 0 {
		return seq, nil, nil
	}
	e := &nlError{Errno: unix.Errno(-code)}
	if flags&nlmFAckTLVs != 0 {
		// With NETLINK_CAP_ACK the original request is not echoed: the
		// TLVs follow its header directly.
		_ = attrs(b[4+sizeofNlmsghdr:], func(t uint16, v []byte) error {
			if t == nlmsgerrAttrMsg {
				for len(v) > 0 && v[len(v)-1] == 0 {
					v = v[:len(v)-1]
				}
				e.Msg = string(v)
			}
			return nil
		})
	}
	return seq, e, nil
}
