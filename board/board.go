package board

import (
	"context"
	"net/netip"
)

// Identity is what the device says it is (TR-181 Device.DeviceInfo).
type Identity struct {
	Manufacturer    string
	OUI             string
	ProductClass    string
	SerialNumber    string
	HardwareVersion string
	SoftwareVersion string
}

// PrefixChange reports a new delegated prefix. Old is invalid on the first
// event. Old == New when only Addr changed, or when the prefix came back
// after it was gone (the routes on the WAN went with it: re-apply).
type PrefixChange struct {
	Old, New netip.Prefix
	// Addr is the CPE's own WAN IPv6 address when one is known (BGP next
	// hop, probe source). With the prefix taken from the WAN address it lies
	// inside New; with a delegated-prefix route it is the WAN interface's
	// global address, usually outside New. Invalid when unknown.
	Addr netip.Addr
}

// PrefixSource watches the delegated IPv6 prefix. Watch sends the current
// prefix as soon as it is known, then every change, until ctx ends, and
// then returns nil. A prefix that disappears is not reported: the last one
// stays in force until a new one arrives.
type PrefixSource interface {
	Watch(ctx context.Context, out chan<- PrefixChange) error
}

var (
	_ PrefixSource = (*StaticPrefix)(nil)
	_ PrefixSource = (*NetlinkPrefix)(nil)
)
