package bgp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// receivedPath builds a path as GoBGP hands it to the watcher.
func receivedPath(t testing.TB, prefix string, label uint32, attrs ...gobgp.PathAttributeInterface) *apiutil.Path {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	rd, _ := parseRD("65000:9")
	nlri, err := gobgp.NewLabeledVPNIPAddrPrefix(p, *gobgp.NewMPLSLabelStack(label), rd)
	if err != nil {
		t.Fatal(err)
	}
	fam := gobgp.RF_IPv6_VPN
	if p.Addr().Is4() {
		fam = gobgp.RF_IPv4_VPN
	}
	mp, _ := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, netip.MustParseAddr("2001:db8:99::9"))
	return &apiutil.Path{
		Family: fam, Nlri: nlri, PeerAddress: netip.MustParseAddr("2001:db8::100"), PeerASN: 65000,
		Attrs: append([]gobgp.PathAttributeInterface{mp}, attrs...),
	}
}

func prefixSID(sid string, behavior uint16, st *gobgp.SRv6SIDStructureSubSubTLV) *gobgp.PathAttributePrefixSID {
	var subsub []gobgp.PrefixSIDTLVInterface
	if st != nil {
		subsub = append(subsub, st)
	}
	return gobgp.NewPathAttributePrefixSID(gobgp.NewSRv6ServiceTLV(gobgp.TLVTypeSRv6L3Service,
		gobgp.NewSRv6InformationSubTLV(netip.MustParseAddr(sid), gobgp.SRBehavior(behavior), subsub...)))
}

func rts(ss ...string) *gobgp.PathAttributeExtendedCommunities {
	var cs []gobgp.ExtendedCommunityInterface
	for _, s := range ss {
		c, err := parseRT(s)
		if err != nil {
			panic(err)
		}
		cs = append(cs, c)
	}
	// A non-RT community (encapsulation, RFC 9012) must be ignored.
	cs = append(cs, gobgp.NewEncapExtended(gobgp.TUNNEL_TYPE_VXLAN))
	return gobgp.NewPathAttributeExtendedCommunities(cs)
}

func TestDecodePath(t *testing.T) {
	st := func(tl, to uint8) *gobgp.SRv6SIDStructureSubSubTLV {
		return gobgp.NewSRv6SIDStructureSubSubTLV(40, 8, 16, 0, tl, to)
	}
	tests := []struct {
		name     string
		path     func(t *testing.T) *apiutil.Path
		sid      string
		behavior srv6.Behavior
		err      string
	}{
		{"VPNv4 End.DT4", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 3, rts("65000:100"), prefixSID("fd00:a::100", 19, st(0, 0)))
		}, "fd00:a::100", srv6.EndDT4, ""},
		{"VPNv4 0xFFFF is End.DT4", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 3, prefixSID("fd00:a::100", 0xffff, nil))
		}, "fd00:a::100", srv6.EndDT4, ""},
		{"VPNv6 0xFFFF is End.DT6", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "2001:db8:1::/64", 3, prefixSID("fd00:a::100", 0xffff, nil))
		}, "fd00:a::100", srv6.EndDT6, ""},
		{"VPNv6 End.DT46", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "2001:db8:1::/64", 3, prefixSID("fd00:a::100", 20, nil))
		}, "fd00:a::100", srv6.EndDT46, ""},
		{"VPNv6 End.DX6", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "2001:db8:1::/64", 3, prefixSID("fd00:a::100", 16, nil))
		}, "fd00:a::100", srv6.EndDX6, ""},
		{"End.DX4 on VPNv6", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "2001:db8:1::/64", 3, prefixSID("fd00:a::100", 17, nil))
		}, "", 0, "cannot carry a VPNv6 route"},
		{"no Prefix-SID", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 3, rts("65000:100"))
		}, "", 0, "no SRv6 L3 Service TLV"},
		{"transposed byte at 64", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 0xab000, prefixSID("2001:db8::", 19, st(8, 64)))
		}, "2001:db8:0:0:ab00::", srv6.EndDT4, ""},
		{"transposed 5 bits across a byte boundary", func(t *testing.T) *apiutil.Path {
			// label 20 bits 10110 000...: SID bits 61..65 = 1,0,1,1,0.
			return receivedPath(t, "192.168.1.0/24", 0xb0000, prefixSID("2001:db8::", 19, st(5, 61)))
		}, "2001:db8:0:5:8000::", srv6.EndDT4, ""},
		{"transposition overwrites stale SID bits", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 0x00000, prefixSID("2001:db8:0:0:ff00::", 19, st(8, 64)))
		}, "2001:db8::", srv6.EndDT4, ""},
		{"full 20-bit transposition", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 0xfffff, prefixSID("2001:db8::", 19, st(20, 108)))
		}, "2001:db8::f:ffff", srv6.EndDT4, ""},
		{"21-bit transposition", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 0xfffff, prefixSID("2001:db8::", 19, st(21, 100)))
		}, "", 0, "transposition length 21"},
		{"transposition past bit 128", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 0xfffff, prefixSID("2001:db8::", 19, st(16, 120)))
		}, "", 0, "beyond 128 bits"},
		{"multicast SID", func(t *testing.T) *apiutil.Path {
			return receivedPath(t, "192.168.1.0/24", 3, prefixSID("ff02::1", 19, nil))
		}, "", 0, "not a unicast IPv6 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path(t)
			key, r, err := decodePath(p)
			if key.prefix != p.Nlri.(*gobgp.LabeledVPNIPAddrPrefix).Prefix {
				t.Errorf("key %v", key)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("decodePath error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.sid != netip.MustParseAddr(tt.sid) || r.behavior != tt.behavior {
				t.Errorf("got SID %s %s, want %s %s", r.sid, r.behavior, tt.sid, tt.behavior)
			}
			if r.rd != "65000:9" || r.nextHop != netip.MustParseAddr("2001:db8:99::9") {
				t.Errorf("rd %s next hop %s", r.rd, r.nextHop)
			}
		})
	}
}

func TestDecodePathRTsAndFamilies(t *testing.T) {
	p := receivedPath(t, "192.168.1.0/24", 3, rts("65000:100", "192.0.2.1:7"), prefixSID("fd00:a::100", 19, nil))
	_, r, err := decodePath(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"65000:100", "192.0.2.1:7"}
	if len(r.rts) != len(want) {
		t.Fatalf("RTs %x, want %v", r.rts, want)
	}
	for i, w := range want {
		c, _ := parseRT(w)
		if v, _ := extUint64(c); v != r.rts[i] {
			t.Errorf("RT %d = %x, want %s", i, r.rts[i], w)
		}
	}
	uc := &apiutil.Path{Family: gobgp.RF_IPv4_UC, Nlri: mustNLRI(t, "192.168.1.0/24")}
	if _, _, err := decodePath(uc); !errors.Is(err, errNotVPN) {
		t.Errorf("IPv4 unicast: %v, want errNotVPN", err)
	}
}

func mustNLRI(t *testing.T, s string) gobgp.NLRI {
	n, err := gobgp.NewIPAddrPrefix(netip.MustParsePrefix(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// routesOf runs speaker-level filtering over decoded paths.
func TestRoutesFiltering(t *testing.T) {
	s, err := New(Config{LocalAS: 65000, RouterID: "10.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.onBestPath(0, []*apiutil.Path{
		receivedPath(t, "192.168.1.0/24", 3, rts("65000:100", "65000:200"), prefixSID("fd00:a::100", 19, nil)),
		receivedPath(t, "192.168.2.0/24", 3, rts("65000:300"), prefixSID("fd00:a::300", 19, nil)),
		receivedPath(t, "192.168.3.0/24", 3, rts("65000:100"), prefixSID("fd00:0e::1", 19, nil)),
		receivedPath(t, "192.168.4.0/24", 3, rts("65000:100")), // unusable: ignored
	})
	if got := s.Routes(); len(got) != 0 {
		t.Errorf("without import policies: %d routes, want 0", len(got))
	}
	if err := s.SetImports([]ImportPolicy{
		{Instance: "red", ImportRTs: []string{"65000:100", "65000:200"}},
		{Instance: "blue", ImportRTs: []string{"65000:200"}},
	}); err != nil {
		t.Fatal(err)
	}
	// Our own SID never comes back as a route.
	e := validExport()
	e.SID = netip.MustParseAddr("fd00:0e::1")
	if err := s.SetExports([]Export{e}); err != nil {
		t.Fatal(err)
	}
	got := s.Routes()
	if len(got) != 2 || got[0].Instance != "blue" || got[1].Instance != "red" ||
		got[0].Prefix != netip.MustParsePrefix("192.168.1.0/24") || got[1].Prefix != got[0].Prefix {
		t.Errorf("routes:\n%s\nwant 192.168.1.0/24 once for blue and once for red", fmtRoutes(got))
	}
	// A withdrawal removes the route.
	w := receivedPath(t, "192.168.1.0/24", 3)
	w.Withdrawal = true
	s.onBestPath(0, []*apiutil.Path{w})
	if got := s.Routes(); len(got) != 0 {
		t.Errorf("after withdrawal:\n%s", fmtRoutes(got))
	}
}

// FuzzPrefixSID feeds arbitrary Prefix-SID attribute bodies and labels
// through GoBGP's decoder and our extraction: no panic, no hang, and any
// route we accept has a unicast IPv6 SID and an L3VPN behaviour.
func FuzzPrefixSID(f *testing.F) {
	f.Add(uint32(3), goodSID("fd00:c::1"))
	f.Add(uint32(0x12345), l3Service(infoSubTLV("fd00:c::", 19, structureSubSub(40, 8, 16, 0, 16, 48))))
	f.Add(uint32(3), l3Service(tlv(1, 10, make([]byte, 10))))
	f.Add(uint32(3), l3Service(tlv(9, 0, nil), infoSubTLV("fd00:c::22", 0xffff)))
	f.Add(uint32(3), tlv(5, 500, []byte{0}))
	f.Add(uint32(3), l3Service(infoSubTLV("fd00:c::6", 19, tlv(9, 300, []byte{1, 2}))))
	f.Fuzz(func(t *testing.T, label uint32, body []byte) {
		if len(body) > 4000 {
			return
		}
		raw := make([]byte, 4, 4+len(body))
		raw[0], raw[1] = 0xd0, byte(gobgp.BGP_ATTR_TYPE_PREFIX_SID) // optional, transitive, extended length
		binary.BigEndian.PutUint16(raw[2:], uint16(len(body)))
		raw = append(raw, body...)
		a := &gobgp.PathAttributePrefixSID{}
		if err := a.DecodeFromBytes(raw); err != nil {
			return
		}
		p := receivedPath(t, "192.168.1.0/24", label&0xfffff, a)
		_, r, err := decodePath(p)
		if err != nil {
			return
		}
		if !r.sid.Is6() || r.sid.IsUnspecified() || r.sid.IsMulticast() {
			t.Errorf("accepted SID %s", r.sid)
		}
		if _, ok := exportBehaviors[r.behavior]; !ok {
			t.Errorf("accepted behaviour %s", r.behavior)
		}
	})
}
