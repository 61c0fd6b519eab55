package bgp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// Route is a VPN route learned from a peer, for one importing instance.
type Route struct {
	Instance string
	Prefix   netip.Prefix
	SID      netip.Addr    // the remote service SID, transposition undone
	Behavior srv6.Behavior // 0xFFFF resolved to End.DT4 / End.DT6 by family
	NextHop  netip.Addr
	RD       string
}

// ImportPolicy says which routes an instance takes: those carrying any of its RTs.
type ImportPolicy struct {
	Instance  string
	ImportRTs []string
}

// remoteRoute is a decoded best path, kept whatever its RTs so that a change
// of import policy needs no route refresh.
type remoteRoute struct {
	rd       string
	prefix   netip.Prefix
	rts      []uint64
	sid      netip.Addr
	behavior srv6.Behavior
	nextHop  netip.Addr
}

// maxTransposition is the number of SID bits the 20-bit label value can carry.
const maxTransposition = 20

var errNotVPN = errors.New("not a VPN route")

// decodePath extracts the SRv6 L3VPN route from a path GoBGP received.
// Every problem is an error; the caller treats the destination as withdrawn.
func decodePath(p *apiutil.Path) (pathKey, remoteRoute, error) {
	nlri, ok := p.Nlri.(*gobgp.LabeledVPNIPAddrPrefix)
	if !ok || (p.Family != gobgp.RF_IPv4_VPN && p.Family != gobgp.RF_IPv6_VPN) {
		return pathKey{}, remoteRoute{}, errNotVPN
	}
	rdKey, err := rdUint64(nlri.RD)
	if err != nil {
		return pathKey{}, remoteRoute{}, err
	}
	key := pathKey{rd: rdKey, prefix: nlri.Prefix}
	r := remoteRoute{rd: nlri.RD.String(), prefix: nlri.Prefix}
	v4 := p.Family == gobgp.RF_IPv4_VPN
	if v4 != nlri.Prefix.Addr().Is4() {
		return key, r, fmt.Errorf("prefix %s does not belong to family %s", nlri.Prefix, p.Family)
	}

	var info *gobgp.SRv6InformationSubTLV
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *gobgp.PathAttributeMpReachNLRI:
			r.nextHop = a.Nexthop.Unmap()
		case *gobgp.PathAttributeExtendedCommunities:
			for _, c := range a.Value {
				if _, sub := c.GetTypes(); sub != gobgp.EC_SUBTYPE_ROUTE_TARGET {
					continue
				}
				if v, err := extUint64(c); err == nil {
					r.rts = append(r.rts, v)
				}
			}
		case *gobgp.PathAttributePrefixSID:
			info = srv6Info(a)
		}
	}
	if info == nil {
		return key, r, errors.New("no SRv6 L3 Service TLV with an SRv6 SID Information Sub-TLV")
	}
	var label uint32
	hasLabel := len(nlri.Labels.Labels) > 0
	if hasLabel {
		label = nlri.Labels.Labels[0]
	}
	r.sid, err = serviceSID(info, label, hasLabel)
	if err != nil {
		return key, r, err
	}
	r.behavior, err = importBehavior(srv6.Behavior(info.EndpointBehavior), v4)
	if err != nil {
		return key, r, err
	}
	return key, r, nil
}

// srv6Info returns the first SRv6 SID Information Sub-TLV of the first SRv6
// L3 Service TLV (RFC 9252 §2: further ones are ignored).
func srv6Info(a *gobgp.PathAttributePrefixSID) *gobgp.SRv6InformationSubTLV {
	for _, t := range a.TLVs {
		svc, ok := t.(*gobgp.SRv6ServiceTLV)
		if !ok || svc.Type != gobgp.TLVTypeSRv6L3Service {
			continue
		}
		for _, st := range svc.SubTLVs {
			if info, ok := st.(*gobgp.SRv6InformationSubTLV); ok {
				return info
			}
		}
	}
	return nil
}

// serviceSID rebuilds the SID, putting back the bits the sender transposed
// into the label (RFC 9252 §4): SID bit offset+i is bit 19−i of the 20-bit
// label value, as FRR encodes it.
func serviceSID(info *gobgp.SRv6InformationSubTLV, label uint32, hasLabel bool) (netip.Addr, error) {
	if len(info.SID) != 16 {
		return netip.Addr{}, fmt.Errorf("SID of %d bytes", len(info.SID))
	}
	b := [16]byte(info.SID)
	var st *gobgp.SRv6SIDStructureSubSubTLV
	for _, s := range info.SubSubTLVs {
		if v, ok := s.(*gobgp.SRv6SIDStructureSubSubTLV); ok {
			st = v
			break
		}
	}
	if st != nil && st.TranspositionLength > 0 {
		off, n := int(st.TranspositionOffset), int(st.TranspositionLength)
		switch {
		case n > maxTransposition:
			return netip.Addr{}, fmt.Errorf("transposition length %d: more than the %d label bits", n, maxTransposition)
		case off+n > 128:
			return netip.Addr{}, fmt.Errorf("transposition offset %d + length %d: beyond 128 bits", off, n)
		case !hasLabel || label > 0xfffff:
			return netip.Addr{}, fmt.Errorf("transposition of %d bits without a usable label", n)
		}
		for i := 0; i < n; i++ {
			bit := off + i
			mask := byte(0x80) >> (bit % 8)
			if label>>(maxTransposition-1-i)&1 == 1 {
				b[bit/8] |= mask
			} else {
				b[bit/8] &^= mask
			}
		}
	}
	sid := netip.AddrFrom16(b)
	if sid.IsUnspecified() || sid.IsMulticast() || sid.IsLoopback() || sid.Is4In6() {
		return netip.Addr{}, fmt.Errorf("SID %s: not a unicast IPv6 address", sid)
	}
	return sid, nil
}

// importBehavior checks that the remote SID decapsulates the route's family.
// 0xFFFF (Opaque) is what FRR 8.4 writes when it reflects a route; the family
// then says what the SID does.
func importBehavior(b srv6.Behavior, v4 bool) (srv6.Behavior, error) {
	switch {
	case b == srv6.Opaque && v4:
		return srv6.EndDT4, nil
	case b == srv6.Opaque:
		return srv6.EndDT6, nil
	case b == srv6.EndDT46:
		return b, nil
	case v4 && (b == srv6.EndDT4 || b == srv6.EndDX4):
		return b, nil
	case !v4 && (b == srv6.EndDT6 || b == srv6.EndDX6):
		return b, nil
	}
	fam := "VPNv6"
	if v4 {
		fam = "VPNv4"
	}
	return 0, fmt.Errorf("behaviour %s: cannot carry a %s route", b, fam)
}

func extUint64(c gobgp.ExtendedCommunityInterface) (uint64, error) {
	b, err := c.Serialize()
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("extended community %s: cannot encode", c)
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v, nil
}
