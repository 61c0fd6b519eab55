package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Family is a VPN address family the speaker negotiates with a neighbour.
type Family string

const (
	VPNv4 Family = "vpnv4" // AFI 1 / SAFI 128, RFC 4364
	VPNv6 Family = "vpnv6" // AFI 2 / SAFI 128, RFC 4659
)

// DefaultConnectRetry is the connect-retry and idle-hold-after-reset time, in
// seconds, when a neighbour does not set one. GoBGP's own default (120 s) is
// long for a CPE that must come back quickly after a reflector restart.
const DefaultConnectRetry = 10

// Config is the speaker's configuration.
type Config struct {
	LocalAS  uint32 `yaml:"local_as"`
	RouterID string `yaml:"router_id"` // IPv4 dotted quad
	// ListenPort is the TCP port for incoming sessions: 0 means 179, -1
	// means do not listen (active sessions only).
	ListenPort      int        `yaml:"listen_port"`
	ListenAddresses []string   `yaml:"listen_addresses"` // empty = all
	Neighbors       []Neighbor `yaml:"neighbors"`
}

// Neighbor is one BGP peer (a route reflector, a gateway or another CPE).
type Neighbor struct {
	Address  string `yaml:"address"`
	RemoteAS uint32 `yaml:"remote_as"`
	Password string `yaml:"password"` // TCP-MD5 (RFC 2385); empty = none
	Passive  bool   `yaml:"passive"`  // wait for the peer to connect
	// HoldTime and KeepaliveInterval are in seconds; 0 = 90 s and HoldTime/3.
	HoldTime          uint16 `yaml:"hold_time"`
	KeepaliveInterval uint16 `yaml:"keepalive_interval"`
	// ConnectRetry (seconds) is both the connect-retry timer and the idle
	// hold time after a session reset; 0 = DefaultConnectRetry.
	ConnectRetry  uint16   `yaml:"connect_retry"`
	SourceAddress string   `yaml:"source_address"` // local address of the session; empty = chosen by the kernel
	Port          uint16   `yaml:"port"`           // remote TCP port; 0 = 179
	Families      []Family `yaml:"families"`       // empty = both VPN families
}

// Validate checks the configuration and reports every bad value, each named.
func (c Config) Validate() error {
	var errs []error
	if c.LocalAS == 0 {
		errs = append(errs, errors.New("local_as: must not be 0"))
	}
	if a, err := netip.ParseAddr(c.RouterID); err != nil || !a.Is4() {
		errs = append(errs, fmt.Errorf("router_id %q: not an IPv4 address", c.RouterID))
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen_port %d: must be -1 (do not listen), 0 (179) or 1..65535", c.ListenPort))
	}
	for _, s := range c.ListenAddresses {
		if _, err := netip.ParseAddr(s); err != nil {
			errs = append(errs, fmt.Errorf("listen_addresses %q: not an IP address", s))
		}
	}
	seen := map[netip.Addr]bool{}
	for i, n := range c.Neighbors {
		if err := n.validate(); err != nil {
			errs = append(errs, fmt.Errorf("neighbors[%d]: %w", i, err))
			continue
		}
		a := netip.MustParseAddr(n.Address)
		if seen[a] {
			errs = append(errs, fmt.Errorf("neighbors[%d]: address %s configured twice", i, n.Address))
		}
		seen[a] = true
	}
	return errors.Join(errs...)
}

func (n Neighbor) validate() error {
	var errs []error
	if a, err := netip.ParseAddr(n.Address); err != nil || a.Zone() != "" {
		errs = append(errs, fmt.Errorf("address %q: not an IP address", n.Address))
	}
	if n.RemoteAS == 0 {
		errs = append(errs, fmt.Errorf("remote_as of %s: must not be 0", n.Address))
	}
	if len(n.Password) > 80 { // TCP_MD5SIG_MAXKEYLEN
		errs = append(errs, fmt.Errorf("password of %s: longer than 80 bytes", n.Address))
	}
	// RFC 4271 §4.2: the hold time is 0 or at least 3 seconds.
	if n.HoldTime == 1 || n.HoldTime == 2 {
		errs = append(errs, fmt.Errorf("hold_time %d of %s: must be 0 or at least 3", n.HoldTime, n.Address))
	}
	if n.KeepaliveInterval != 0 && n.KeepaliveInterval >= n.holdTime() {
		errs = append(errs, fmt.Errorf("keepalive_interval %d of %s: must be less than the hold time %d", n.KeepaliveInterval, n.Address, n.holdTime()))
	}
	if n.SourceAddress != "" {
		if _, err := netip.ParseAddr(n.SourceAddress); err != nil {
			errs = append(errs, fmt.Errorf("source_address %q of %s: not an IP address", n.SourceAddress, n.Address))
		}
	}
	for _, f := range n.Families {
		if lf := Family(strings.ToLower(string(f))); lf != VPNv4 && lf != VPNv6 {
			errs = append(errs, fmt.Errorf("families %q of %s: want %q or %q", f, n.Address, VPNv4, VPNv6))
		}
	}
	return errors.Join(errs...)
}

func (n Neighbor) holdTime() uint16 {
	if n.HoldTime == 0 {
		return 90
	}
	return n.HoldTime
}

func (n Neighbor) connectRetry() uint16 {
	if n.ConnectRetry == 0 {
		return DefaultConnectRetry
	}
	return n.ConnectRetry
}

func (n Neighbor) families() []Family {
	if len(n.Families) == 0 {
		return []Family{VPNv4, VPNv6}
	}
	out := make([]Family, 0, len(n.Families))
	for _, f := range n.Families {
		f = Family(strings.ToLower(string(f)))
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
