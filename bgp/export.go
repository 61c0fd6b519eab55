package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// implicitNull is the MPLS label of an SRv6 VPN route sent without
// transposition (RFC 9252 §6: the whole SID is in the Prefix-SID attribute).
const implicitNull = 3

// Export is one VPN instance's routes to advertise.
type Export struct {
	Instance  string
	RD        string   // "ASN:N" or "IPv4:N"
	ExportRTs []string // "ASN:N" or "IPv4:N"
	Prefixes  []netip.Prefix
	SID       netip.Addr // the instance's service SID
	Behavior  srv6.Behavior
	Structure srv6.SIDStructure
	NextHop   netip.Addr // the CPE's WAN IPv6 address
}

// exportBehaviors are the behaviours an L3VPN service SID may carry, with the
// prefix families each can decapsulate.
var exportBehaviors = map[srv6.Behavior]struct{ v4, v6 bool }{
	srv6.EndDT4:  {v4: true},
	srv6.EndDX4:  {v4: true},
	srv6.EndDT6:  {v6: true},
	srv6.EndDX6:  {v6: true},
	srv6.EndDT46: {v4: true, v6: true},
}

// pathKey identifies a VPN destination: family, RD and prefix.
type pathKey struct {
	rd     uint64 // the 8 RD bytes, big endian
	prefix netip.Prefix
}

// exportPath is one route we advertise, with a signature of everything
// that goes on the wire so that a change (a renumbered SID, new RTs) is
// detected and the route replaced.
type exportPath struct {
	path *apiutil.Path
	sig  string
}

// buildExports turns exports into the paths to advertise, keyed by
// destination. It checks every value and names the bad one.
func buildExports(exports []Export) (map[pathKey]exportPath, error) {
	out := make(map[pathKey]exportPath)
	owner := make(map[pathKey]string)
	for _, e := range exports {
		if err := e.build(out, owner); err != nil {
			return nil, fmt.Errorf("export %q: %w", e.Instance, err)
		}
	}
	return out, nil
}

func (e Export) build(out map[pathKey]exportPath, owner map[pathKey]string) error {
	if e.Instance == "" {
		return errors.New("instance name is empty")
	}
	rd, err := parseRD(e.RD)
	if err != nil {
		return err
	}
	rdKey, err := rdUint64(rd)
	if err != nil {
		return err
	}
	rts := make([]gobgp.ExtendedCommunityInterface, 0, len(e.ExportRTs))
	for _, s := range e.ExportRTs {
		rt, err := parseRT(s)
		if err != nil {
			return err
		}
		rts = append(rts, rt)
	}
	if len(rts) == 0 {
		return errors.New("no export route target")
	}
	if !e.SID.Is6() || e.SID.Is4In6() || e.SID.Zone() != "" {
		return fmt.Errorf("SID %s: not an IPv6 address", e.SID)
	}
	fams, ok := exportBehaviors[e.Behavior]
	if !ok {
		return fmt.Errorf("behaviour %s: not an L3VPN behaviour (want End.DT4, End.DT6, End.DT46, End.DX4 or End.DX6)", e.Behavior)
	}
	st := e.Structure
	if st.LocatorBlockLen+st.LocatorNodeLen == 0 || st.FunctionLen == 0 ||
		int(st.LocatorBlockLen)+int(st.LocatorNodeLen)+int(st.FunctionLen)+int(st.ArgumentLen) > 128 {
		return fmt.Errorf("SID structure %d/%d/%d/%d (block/node/function/argument): need a locator and a function within 128 bits",
			st.LocatorBlockLen, st.LocatorNodeLen, st.FunctionLen, st.ArgumentLen)
	}
	if !e.NextHop.Is6() || e.NextHop.Is4In6() || e.NextHop.IsUnspecified() || e.NextHop.Zone() != "" {
		return fmt.Errorf("next hop %s: not a global IPv6 address", e.NextHop)
	}

	// The attributes are the same for every prefix of the instance: build
	// them once and share them (GoBGP never mutates them in place).
	origin := gobgp.NewPathAttributeOrigin(0)
	asPath := gobgp.NewPathAttributeAsPath(nil)
	ext := gobgp.NewPathAttributeExtendedCommunities(rts)
	psid := gobgp.NewPathAttributePrefixSID(gobgp.NewSRv6ServiceTLV(gobgp.TLVTypeSRv6L3Service,
		gobgp.NewSRv6InformationSubTLV(e.SID, gobgp.SRBehavior(e.Behavior),
			gobgp.NewSRv6SIDStructureSubSubTLV(st.LocatorBlockLen, st.LocatorNodeLen, st.FunctionLen, st.ArgumentLen, 0, 0))))
	sig := fmt.Sprintf("%s|%s|%d|%v|%v", e.SID, e.NextHop, e.Behavior, st, e.ExportRTs)

	for _, p := range e.Prefixes {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return fmt.Errorf("prefix %s: not a valid prefix", p)
		}
		p = p.Masked()
		v4 := p.Addr().Is4()
		if v4 && !fams.v4 || !v4 && !fams.v6 {
			return fmt.Errorf("prefix %s: behaviour %s cannot carry it", p, e.Behavior)
		}
		key := pathKey{rd: rdKey, prefix: p}
		if o, dup := owner[key]; dup {
			return fmt.Errorf("prefix %s with RD %s: already exported by %q", p, e.RD, o)
		}
		owner[key] = e.Instance
		nlri, err := gobgp.NewLabeledVPNIPAddrPrefix(p, *gobgp.NewMPLSLabelStack(implicitNull), rd)
		if err != nil {
			return fmt.Errorf("prefix %s: %w", p, err)
		}
		fam := gobgp.RF_IPv6_VPN
		if v4 {
			fam = gobgp.RF_IPv4_VPN
		}
		// RFC 8950: a VPNv4 route may carry an IPv6 next hop; GoBGP encodes
		// it as RD(0) + IPv6 and advertises the extended next hop capability.
		mp, err := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, e.NextHop)
		if err != nil {
			return fmt.Errorf("prefix %s: %w", p, err)
		}
		out[key] = exportPath{
			path: &apiutil.Path{
				Family: fam,
				Nlri:   nlri,
				Attrs:  []gobgp.PathAttributeInterface{origin, asPath, mp, ext, psid},
			},
			sig: sig,
		}
	}
	return nil
}

// CheckRD reports whether s is a route distinguisher SetExports accepts; the
// error names s. For the agent to check configuration as it arrives.
func CheckRD(s string) error {
	_, err := parseRD(s)
	return err
}

// CheckRT reports whether s is a route target SetExports and SetImports accept.
func CheckRT(s string) error {
	_, err := parseRT(s)
	return err
}

// parseRD parses a route distinguisher (RFC 4364 §4.2): "ASN:N" with a 2-byte
// ASN and 4-byte N (type 0), "a.b.c.d:N" with a 2-byte N (type 1), or
// "ASN:N" with a 4-byte ASN and 2-byte N (type 2).
func parseRD(s string) (gobgp.RouteDistinguisherInterface, error) {
	admin, ip, n, err := splitAdmin(s)
	if err != nil {
		return nil, fmt.Errorf("route distinguisher %q: %w", s, err)
	}
	switch {
	case ip.IsValid():
		if n > 0xffff {
			return nil, fmt.Errorf("route distinguisher %q: assigned number %d does not fit 16 bits", s, n)
		}
		return gobgp.NewRouteDistinguisherIPAddressAS(ip, uint16(n))
	case admin <= 0xffff:
		return gobgp.NewRouteDistinguisherTwoOctetAS(uint16(admin), uint32(n)), nil
	case n <= 0xffff:
		return gobgp.NewRouteDistinguisherFourOctetAS(uint32(admin), uint16(n)), nil
	default:
		return nil, fmt.Errorf("route distinguisher %q: with a 4-byte ASN the assigned number must fit 16 bits", s)
	}
}

// parseRT parses a route target extended community (RFC 4360) in the same
// notations as parseRD.
func parseRT(s string) (gobgp.ExtendedCommunityInterface, error) {
	admin, ip, n, err := splitAdmin(s)
	if err != nil {
		return nil, fmt.Errorf("route target %q: %w", s, err)
	}
	switch {
	case ip.IsValid():
		if n > 0xffff {
			return nil, fmt.Errorf("route target %q: assigned number %d does not fit 16 bits", s, n)
		}
		return gobgp.NewIPv4AddressSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, ip, uint16(n), true)
	case admin <= 0xffff:
		return gobgp.NewTwoOctetAsSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, uint16(admin), uint32(n), true), nil
	case n <= 0xffff:
		return gobgp.NewFourOctetAsSpecificExtended(gobgp.EC_SUBTYPE_ROUTE_TARGET, uint32(admin), uint16(n), true), nil
	default:
		return nil, fmt.Errorf("route target %q: with a 4-byte ASN the assigned number must fit 16 bits", s)
	}
}

// splitAdmin splits "ADMIN:N" where ADMIN is an ASN or an IPv4 address.
func splitAdmin(s string) (asn uint64, ip netip.Addr, n uint64, err error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return 0, ip, 0, errors.New(`want "ASN:N" or "IPv4:N"`)
	}
	n, err = strconv.ParseUint(s[i+1:], 10, 32)
	if err != nil {
		return 0, ip, 0, fmt.Errorf("assigned number %q: not a 32-bit unsigned integer", s[i+1:])
	}
	head := s[:i]
	if strings.Contains(head, ".") {
		ip, err = netip.ParseAddr(head)
		if err != nil || !ip.Is4() {
			return 0, netip.Addr{}, 0, fmt.Errorf("administrator %q: not an IPv4 address", head)
		}
		return 0, ip, n, nil
	}
	asn, err = strconv.ParseUint(head, 10, 32)
	if err != nil {
		return 0, ip, 0, fmt.Errorf("administrator %q: not a 32-bit ASN", head)
	}
	return asn, ip, n, nil
}

func rdUint64(rd gobgp.RouteDistinguisherInterface) (uint64, error) {
	b, err := rd.Serialize()
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("route distinguisher %s: cannot encode", rd)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}
