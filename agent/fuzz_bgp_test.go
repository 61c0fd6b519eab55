package agent

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// FuzzImportedRoutes feeds arbitrary SRv6 service data, as a BGP peer could
// send it (any prefix, SID, behaviour code, next hop, instance), through the
// agent's desired-state function: it must never panic, and whatever it
// returns must be a dataplane state the dataplane accepts, in the VRF-less
// fallback and with VRFs.
func FuzzImportedRoutes(f *testing.F) {
	cfg, err := ParseConfig([]byte(bgpConfig))
	if err != nil {
		f.Fatal(err)
	}
	d, err := derive(cfg, netip.MustParsePrefix("2001:db8:1200::/40"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0, 24, 192, 168, 2, 0, 0x20, 0x01, 0x0d, 0xb8, 0x22, 0x05, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 19})
	f.Add([]byte{1, 64, 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x05, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	instances := []string{"vpn4", "vpn6", "end", "nope", ""}
	f.Fuzz(func(t *testing.T, data []byte) {
		var routes []bgp.Route
		for len(data) >= 2 && len(routes) < 64 {
			r, rest := fuzzRoute(data, instances)
			data = rest
			routes = append(routes, r)
		}
		for _, caps := range []dataplane.Capabilities{noVRFCaps, vrfCaps} {
			want, err := desiredState(cfg, d, caps, routes...)
			if err != nil {
				continue
			}
			if err := want.Validate(caps, cfg.WAN.Interface); err != nil {
				t.Fatalf("desired state from %d peer routes is refused by the dataplane: %v", len(routes), err)
			}
		}
	})
}

var (
	noVRFCaps = dataplane.Capabilities{EndDT6Table: true, EncapRed: true, NexthopObjects: true, EndB6Encaps: true}
	vrfCaps   = dataplane.Capabilities{VRF: true, EndDT4: true, EndDT46: true, EndDT6Table: true, EncapRed: true, NexthopObjects: true, EndB6Encaps: true}
)

// fuzzRoute decodes one route from data: a header byte (family, instance),
// a prefix length, the prefix bytes, a SID, a behaviour code, a next hop.
func fuzzRoute(data []byte, instances []string) (bgp.Route, []byte) {
	take := func(n int) []byte {
		var b [16]byte
		k := copy(b[:n], data)
		data = data[k:]
		return b[:n]
	}
	h := take(1)[0]
	bits := int(take(1)[0])
	r := bgp.Route{Instance: instances[int(h>>1)%len(instances)], RD: "65000:2"}
	if h&1 == 0 {
		a := netip.AddrFrom4([4]byte(take(4)))
		r.Prefix = netip.PrefixFrom(a, bits%40) // lengths over 32 are invalid prefixes
	} else {
		a := netip.AddrFrom16([16]byte(take(16)))
		r.Prefix = netip.PrefixFrom(a, bits%140)
	}
	r.SID = netip.AddrFrom16([16]byte(take(16)))
	r.Behavior = srv6.Behavior(binary.BigEndian.Uint16(take(2)))
	r.NextHop = netip.AddrFrom16([16]byte(take(16)))
	return r, data
}
