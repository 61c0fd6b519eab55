package bgp

import (
	"net/netip"
	"strings"
	"testing"

	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestParseRDAndRT(t *testing.T) {
	tests := []struct {
		in      string
		rdType  uint16 // 0, 1, 2; ignored when wantErr
		wantStr string
		wantErr string
	}{
		{"65000:100", gobgp.BGP_RD_TWO_OCTET_AS, "65000:100", ""},
		{"65535:4294967295", gobgp.BGP_RD_TWO_OCTET_AS, "65535:4294967295", ""},
		{"192.0.2.1:7", gobgp.BGP_RD_IPV4_ADDRESS, "192.0.2.1:7", ""},
		{"4200000000:7", gobgp.BGP_RD_FOUR_OCTET_AS, "", ""},
		{"4200000000:70000", 0, "", "4-byte ASN"},
		{"192.0.2.1:70000", 0, "", "does not fit 16 bits"},
		{"65000", 0, "", `want "ASN:N"`},
		{"65000:", 0, "", `want "ASN:N"`},
		{":1", 0, "", `want "ASN:N"`},
		{"65000:x", 0, "", `assigned number "x"`},
		{"as65000:1", 0, "", `administrator "as65000"`},
		{"2001:db8::1:1", 0, "", `administrator "2001:db8::1"`},
		{"1.2.3:4", 0, "", `administrator "1.2.3"`},
		{"4294967296:1", 0, "", `administrator "4294967296"`},
	}
	for _, tt := range tests {
		rd, err := parseRD(tt.in)
		rt, rterr := parseRT(tt.in)
		if (CheckRD(tt.in) == nil) != (err == nil) || (CheckRT(tt.in) == nil) != (rterr == nil) {
			t.Errorf("CheckRD/CheckRT(%q) disagree with parsing", tt.in)
		}
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("parseRD(%q) error = %v, want one naming the value and containing %q", tt.in, err, tt.wantErr)
			}
			if rterr == nil || !strings.Contains(rterr.Error(), `"`+tt.in+`"`) {
				t.Errorf("parseRT(%q) error = %v, want one naming the value", tt.in, rterr)
			}
			continue
		}
		if err != nil || rterr != nil {
			t.Errorf("parseRD/RT(%q) = %v / %v", tt.in, err, rterr)
			continue
		}
		b, _ := rd.Serialize()
		if typ := uint16(b[0])<<8 | uint16(b[1]); typ != tt.rdType {
			t.Errorf("parseRD(%q) type %d, want %d", tt.in, typ, tt.rdType)
		}
		if tt.wantStr != "" && (rd.String() != tt.wantStr || rt.String() != tt.wantStr) {
			t.Errorf("parseRD/RT(%q) = %s / %s, want %s", tt.in, rd, rt, tt.wantStr)
		}
		if _, sub := rt.GetTypes(); sub != gobgp.EC_SUBTYPE_ROUTE_TARGET {
			t.Errorf("parseRT(%q) subtype %d, want route target", tt.in, sub)
		}
	}
}

func validExport() Export {
	return Export{
		Instance: "red", RD: "65000:1", ExportRTs: []string{"65000:100", "192.0.2.1:5"},
		Prefixes: prefixes("192.168.1.0/24", "2001:db8:1::/64"),
		SID:      netip.MustParseAddr("2001:db8:a:ff00:100::"), Behavior: srv6.EndDT46,
		Structure: srv6.SIDStructure{LocatorBlockLen: 48, LocatorNodeLen: 8, FunctionLen: 16},
		NextHop:   netip.MustParseAddr("2001:db8:a::1"),
	}
}

func TestBuildExportsErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Export) []Export
		want   string
	}{
		{"no instance", func(e *Export) []Export { e.Instance = ""; return nil }, "instance name is empty"},
		{"bad RD", func(e *Export) []Export { e.RD = "1:2:3"; return nil }, `"1:2:3"`},
		{"bad RT", func(e *Export) []Export { e.ExportRTs = []string{"65000:100", "rt"}; return nil }, `"rt"`},
		{"no RT", func(e *Export) []Export { e.ExportRTs = nil; return nil }, "no export route target"},
		{"IPv4 SID", func(e *Export) []Export { e.SID = netip.MustParseAddr("192.0.2.1"); return nil }, "SID 192.0.2.1"},
		{"End.X", func(e *Export) []Export { e.Behavior = srv6.EndX; return nil }, "behaviour End.X"},
		{"DT4 with an IPv6 prefix", func(e *Export) []Export { e.Behavior = srv6.EndDT4; return nil }, "prefix 2001:db8:1::/64: behaviour End.DT4"},
		{"DX6 with an IPv4 prefix", func(e *Export) []Export { e.Behavior = srv6.EndDX6; return nil }, "prefix 192.168.1.0/24: behaviour End.DX6"},
		{"structure over 128 bits", func(e *Export) []Export { e.Structure.ArgumentLen = 60; e.Structure.FunctionLen = 60; return nil }, "SID structure 48/8/60/60"},
		{"no function", func(e *Export) []Export { e.Structure.FunctionLen = 0; return nil }, "SID structure"},
		{"IPv4 next hop", func(e *Export) []Export { e.NextHop = netip.MustParseAddr("192.0.2.1"); return nil }, "next hop 192.0.2.1"},
		{"invalid prefix", func(e *Export) []Export { e.Prefixes = []netip.Prefix{{}}; return nil }, "not a valid prefix"},
		{"same RD and prefix twice", func(e *Export) []Export {
			o := *e
			o.Instance = "blue"
			return []Export{o}
		}, `already exported by "red"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validExport()
			more := tt.mutate(&e)
			_, err := buildExports(append([]Export{e}, more...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("buildExports = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestBuildExportsWire checks what goes on the wire for one route: RFC 9252
// without transposition (label 3, full SID, structure with TL = TO = 0), the
// RTs, and the next hop, by serialising and decoding it again.
func TestBuildExportsWire(t *testing.T) {
	e := validExport()
	e.Prefixes = prefixes("192.168.1.77/24") // host bits are masked off
	paths, err := buildExports([]Export{e})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 {
		t.Fatalf("%d paths, want 1", len(paths))
	}
	for k, ep := range paths {
		if k.prefix != netip.MustParsePrefix("192.168.1.0/24") {
			t.Errorf("key prefix %s", k.prefix)
		}
		p := ep.path
		if p.Family != gobgp.RF_IPv4_VPN {
			t.Errorf("family %s", p.Family)
		}
		nlri := p.Nlri.(*gobgp.LabeledVPNIPAddrPrefix)
		if len(nlri.Labels.Labels) != 1 || nlri.Labels.Labels[0] != 3 || nlri.RD.String() != "65000:1" {
			t.Errorf("NLRI %s labels %v, want RD 65000:1 and label 3", nlri, nlri.Labels.Labels)
		}
		// Round trip through the wire format.
		for _, a := range p.Attrs {
			b, err := a.Serialize()
			if err != nil {
				t.Fatalf("serialising %s: %v", a.GetType(), err)
			}
			d, err := gobgp.GetPathAttribute(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.DecodeFromBytes(b); err != nil {
				t.Fatalf("decoding %s: %v", a.GetType(), err)
			}
			switch d := d.(type) {
			case *gobgp.PathAttributeMpReachNLRI:
				if d.Nexthop != e.NextHop {
					t.Errorf("next hop %s, want %s", d.Nexthop, e.NextHop)
				}
			case *gobgp.PathAttributeExtendedCommunities:
				if len(d.Value) != 2 || d.Value[0].String() != "65000:100" || d.Value[1].String() != "192.0.2.1:5" {
					t.Errorf("RTs %v", d.Value)
				}
			case *gobgp.PathAttributePrefixSID:
				info := srv6Info(d)
				if info == nil {
					t.Fatal("no SRv6 information sub-TLV")
				}
				if netip.AddrFrom16([16]byte(info.SID)) != e.SID || info.EndpointBehavior != uint16(srv6.EndDT46) {
					t.Errorf("SID %x behaviour %d", info.SID, info.EndpointBehavior)
				}
				st := info.SubSubTLVs[0].(*gobgp.SRv6SIDStructureSubSubTLV)
				if st.LocatorBlockLength != 48 || st.LocatorNodeLength != 8 || st.FunctionLength != 16 ||
					st.ArgumentLength != 0 || st.TranspositionLength != 0 || st.TranspositionOffset != 0 {
					t.Errorf("structure %s", st)
				}
			}
		}
	}
}

func TestExportSignatureTracksWireChanges(t *testing.T) {
	a, _ := buildExports([]Export{validExport()})
	e := validExport()
	e.SID = netip.MustParseAddr("2001:db8:b:ff00:100::")
	b, _ := buildExports([]Export{e})
	e = validExport()
	e.Instance = "renamed"
	c, _ := buildExports([]Export{e})
	for k := range a {
		if a[k].sig == b[k].sig {
			t.Errorf("%s: a new SID keeps the signature", k.prefix)
		}
		if a[k].sig != c[k].sig {
			t.Errorf("%s: renaming the instance changes the signature (nothing changes on the wire)", k.prefix)
		}
	}
}
