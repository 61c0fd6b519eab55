package srv6

import (
	"errors"
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
	Locator     netip.Prefix // L bits
	FunctionLen int
	SIDs        []ServiceSID
}

// Derive applies Q.Suppl.79 clause 6.2. ext == nil selects the default
// extension (all ones over the L−Y bits).
func Derive(prefix netip.Prefix, locatorLen, functionLen int, ext *uint64, services []Service) (Derivation, error) {
	return Derivation{}, errors.New("srv6.Derive: being implemented")
}
