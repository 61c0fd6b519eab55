package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// BenchmarkDesired10k is the agent's share of a resync with 10,000 learned
// VPNv4 routes: the desired state (the import status reuses its notes).
// Its bytes/op are what every resync leaves for the GC, next to the
// anchor: the bytes of the encap routes it returns.
//
//	go test -run '^$' -bench Desired10k -benchmem ./agent/
func BenchmarkDesired10k(b *testing.B) {
	cfg := mustConfig(b, bgpConfig)
	d, err := derive(cfg, netip.MustParsePrefix("2001:db8:1200::/40"))
	if err != nil {
		b.Fatal(err)
	}
	routes := make([]bgp.Route, 10000)
	for i := range routes {
		routes[i] = route("vpn4", fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), "2001:db8:2205:4::", "65000:2")
	}
	caps := dataplane.Capabilities{NexthopObjects: true, EndDT6Table: true}
	b.ReportAllocs()
	var kept int
	for b.Loop() {
		want, _, err := desiredWith(cfg, d, caps, nil, routes)
		if err != nil || len(want.Encaps) != len(routes) {
			b.Fatalf("%d encaps, %v", len(want.Encaps), err)
		}
		kept = cap(want.Encaps)*int(unsafe.Sizeof(want.Encaps[0])) + len(want.Encaps)*16
	}
	b.ReportMetric(float64(kept), "result-B")
}
