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

// PrefixChange reports a new delegated prefix. Old is invalid on the first event.
type PrefixChange struct {
	Old, New netip.Prefix
	// Addr is the WAN IPv6 address inside New when one is known (the CPE's
	// own address, used as BGP next hop and probe source).
	Addr netip.Addr
}

// PrefixSource watches the delegated IPv6 prefix. Watch sends the current
// prefix as soon as it is known, then every change, until ctx ends.
type PrefixSource interface {
	Watch(ctx context.Context, out chan<- PrefixChange) error
}
