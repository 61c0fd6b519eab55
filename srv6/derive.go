package srv6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Service is one service that needs a SID: a name, the behaviour its SID
// performs, and its function value (F bits after the locator).
type Service struct {
	Name     string
	Behavior Behavior
	Function uint64
}

// ServiceSID is a derived service SID.
type ServiceSID struct {
	Name     string
	Behavior Behavior
	Function uint64
	SID      netip.Addr
}

// Derivation is the result of clause 6.2: the locator and one SID per service.
type Derivation struct {
	Prefix      netip.Prefix // the delegated prefix X/Y, masked to Y bits
	Locator     netip.Prefix // L bits, masked
	FunctionLen int
	SIDs        []ServiceSID // in the order the services were given
}

// SIDStructure is the layout of our SIDs as the BGP SRv6 SID Structure
// Sub-Sub-TLV describes it (RFC 9252 §3.2.1). The delegated prefix is the
// locator block and the extension is the locator node; clause 6.2 SIDs carry
// no argument. Transposition is the BGP encoder's choice, so it is not here.
type SIDStructure struct {
	LocatorBlockLen uint8
	LocatorNodeLen  uint8
	FunctionLen     uint8
	ArgumentLen     uint8
}

// Structure returns the SID structure of d's service SIDs.
func (d Derivation) Structure() SIDStructure {
	return SIDStructure{
		LocatorBlockLen: uint8(d.Prefix.Bits()),
		LocatorNodeLen:  uint8(d.Locator.Bits() - d.Prefix.Bits()),
		FunctionLen:     uint8(d.FunctionLen),
	}
}

// SID returns the service SID derived for the named service.
func (d Derivation) SID(name string) (ServiceSID, bool) {
	for _, s := range d.SIDs {
		if s.Name == name {
			return s, true
		}
	}
	return ServiceSID{}, false
}

// reservedSpace is where no delegated prefix can lie: ::/8 holds the
// unspecified, loopback and IPv4-mapped addresses, ff00::/8 is multicast.
var reservedSpace = [...]netip.Prefix{
	netip.MustParsePrefix("::/8"),
	netip.MustParsePrefix("ff00::/8"),
}

// MaxFunctionLen is the longest function field Derive accepts: function
// values are uint64.
const MaxFunctionLen = 64

// Derive applies Q.Suppl.79 clause 6.2.
//
// The locator is the delegated prefix X/Y (bits of X beyond Y ignored)
// followed by the extension E over the L−Y bits after it. ext == nil selects
// the default extension, all ones over the L−Y bits: the last L-sized block of
// the delegated prefix, which cannot collide with the LAN /64s a CPE hands out
// from the start of it. Each service SID is locator ‖ function (F bits) ‖ zero
// padding to 128 bits; with L+F = 128 there is no padding.
//
// Errors name the bad value: an invalid or IPv4 prefix, or one overlapping
// ::/8 (IPv4-mapped, loopback, unspecified) or multicast ff00::/8; Y > L;
// F = 0 or F > 64; L+F > 128; E not fitting L−Y bits; a service with no
// name, no behaviour, a function value of 0 or not fitting F bits; two
// services with one name or one function value.
func Derive(prefix netip.Prefix, locatorLen, functionLen int, ext *uint64, services []Service) (Derivation, error) {
	if !prefix.IsValid() {
		return Derivation{}, errors.New("delegated prefix is missing or invalid")
	}
	if prefix.Addr().Is4() {
		return Derivation{}, fmt.Errorf("delegated prefix %s is not an IPv6 prefix", prefix)
	}
	prefix = prefix.Masked()
	for _, r := range reservedSpace {
		if prefix.Overlaps(r) {
			return Derivation{}, fmt.Errorf("delegated prefix %s overlaps %s, which no SID can use", prefix, r)
		}
	}
	y := prefix.Bits()
	if locatorLen < y {
		return Derivation{}, fmt.Errorf("locator length %d is shorter than the delegated prefix %s", locatorLen, prefix)
	}
	if functionLen < 1 || functionLen > MaxFunctionLen {
		return Derivation{}, fmt.Errorf("function length %d is outside 1..%d", functionLen, MaxFunctionLen)
	}
	if locatorLen+functionLen > 128 {
		return Derivation{}, fmt.Errorf("locator length %d + function length %d = %d exceeds 128 bits", locatorLen, functionLen, locatorLen+functionLen)
	}

	nodeLen := locatorLen - y
	var e u128
	if ext == nil {
		e = onesLow(nodeLen)
	} else {
		if !fits(*ext, nodeLen) {
			return Derivation{}, fmt.Errorf("locator extension %#x does not fit the %d bits between /%d and /%d", *ext, nodeLen, y, locatorLen)
		}
		e = u128{lo: *ext}
	}
	loc := fromAddr(prefix.Addr()).or(e.shl(128 - locatorLen))

	d := Derivation{
		Prefix:      prefix,
		Locator:     netip.PrefixFrom(loc.addr(), locatorLen),
		FunctionLen: functionLen,
		SIDs:        make([]ServiceSID, 0, len(services)),
	}
	byName := make(map[string]bool, len(services))
	byFunc := make(map[uint64]string, len(services))
	for _, s := range services {
		switch {
		case s.Name == "":
			return Derivation{}, fmt.Errorf("service with function %#x has no name", s.Function)
		case byName[s.Name]:
			return Derivation{}, fmt.Errorf("service name %q is used twice", s.Name)
		case s.Behavior == 0:
			return Derivation{}, fmt.Errorf("service %q has no behaviour", s.Name)
		case s.Function == 0:
			return Derivation{}, fmt.Errorf("service %q: function value 0 is reserved (it would make the SID equal the locator address)", s.Name)
		case !fits(s.Function, functionLen):
			return Derivation{}, fmt.Errorf("service %q: function value %#x does not fit %d bits", s.Name, s.Function, functionLen)
		}
		if other, dup := byFunc[s.Function]; dup {
			return Derivation{}, fmt.Errorf("service %q: function value %#x is already used by service %q", s.Name, s.Function, other)
		}
		byName[s.Name] = true
		byFunc[s.Function] = s.Name
		sid := loc.or(u128{lo: s.Function}.shl(128 - locatorLen - functionLen))
		d.SIDs = append(d.SIDs, ServiceSID{Name: s.Name, Behavior: s.Behavior, Function: s.Function, SID: sid.addr()})
	}
	return d, nil
}

// fits reports whether v is representable in n bits.
func fits(v uint64, n int) bool {
	return n >= 64 || v>>uint(n) == 0
}

// u128 is an IPv6 address as a number, for shifts and masks at any bit
// boundary (netip.Addr has none).
type u128 struct{ hi, lo uint64 }

func fromAddr(a netip.Addr) u128 {
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) or(v u128) u128 { return u128{u.hi | v.hi, u.lo | v.lo} }

// shl shifts left by n bits, n >= 0 (Go's shifts past the width give 0).
func (u u128) shl(n int) u128 {
	if n >= 64 {
		return u128{hi: u.lo << uint(n-64)}
	}
	return u128{hi: u.hi<<uint(n) | u.lo>>uint(64-n), lo: u.lo << uint(n)}
}

// onesLow is n one bits in the low end, 0 <= n <= 128.
func onesLow(n int) u128 {
	if n >= 64 {
		return u128{hi: ^uint64(0) >> uint(128-n), lo: ^uint64(0)}
	}
	return u128{lo: 1<<uint(n) - 1}
}
