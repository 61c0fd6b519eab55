package srv6_test

import (
	"fmt"
	"net/netip"

	"github.com/srv6cpe/srv6cpe/srv6"
)

func ExampleDerive() {
	ext := uint64(0x5)
	d, err := srv6.Derive(netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, &ext, []srv6.Service{
		{Name: "vpn1", Behavior: srv6.EndDT4, Function: 0x4},
		{Name: "vpn6", Behavior: srv6.EndDT6, Function: 0x6},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("locator", d.Locator, d.Structure())
	for _, s := range d.SIDs {
		fmt.Println(s.Name, s.Behavior, s.SID)
	}
	// Output:
	// locator 2001:db8:1205::/48 {40 8 16 0}
	// vpn1 End.DT4 2001:db8:1205:4::
	// vpn6 End.DT6 2001:db8:1205:6::
}

func ExampleParseSegmentList() {
	segs, err := srv6.ParseSegmentList(`["2001:0C68:3000::1:End", "2001:0C68:5000::1:BSID", "2001:db8::1"]`)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range segs {
		fmt.Println(s.Addr, s.Behavior)
	}
	fmt.Println(srv6.FormatSegmentList(segs))
	_, err = srv6.ParseSegmentList("2001:db8::1, 192.0.2.1")
	fmt.Println(err)
	// Output:
	// 2001:c68:3000::1 End
	// 2001:c68:5000::1 End.B6.Encaps
	// 2001:db8::1 Behavior(0)
	// ["2001:c68:3000::1:End", "2001:c68:5000::1:End.B6.Encaps", "2001:db8::1"]
	// segment 2: SID "192.0.2.1" is an IPv4 address
}
