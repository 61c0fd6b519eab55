package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// PathsConfig holds the dynamic paths of Q.Suppl.79 §8.4 (clause 7.5): each
// binds a binding SID (End.B6.Encaps) to a segment list.
type PathsConfig struct {
	// BSIDPrefixes lets a path's binding SID lie outside our locator (the
	// controller's own BSID block); without them a BSID must be inside it.
	BSIDPrefixes []netip.Prefix `yaml:"bsid_prefixes"`
	List         []PathConfig   `yaml:"list"`
}

// PathConfig is one dynamic path. Several paths may share a BSID: the one
// with the lowest Priority value is installed, the others stand by.
type PathConfig struct {
	ID          string     `yaml:"id"`
	Source      string     `yaml:"source"`
	Destination string     `yaml:"destination"`
	Segments    Segments   `yaml:"segments"`
	BSID        netip.Addr `yaml:"bsid"`
	Priority    uint32     `yaml:"priority"`
}

// validatePaths checks what needs no prefix: every SID is a unicast IPv6
// address, IDs are unique, and one BSID never has two paths of one priority.
func (c *Config) validatePaths() []error {
	var errs []error
	for i, p := range c.Paths.BSIDPrefixes {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p != p.Masked() {
			errs = append(errs, fmt.Errorf("paths.bsid_prefixes[%d]: %s is not a masked IPv6 prefix", i, p))
		}
	}
	ids := map[string]int{}
	type slot struct {
		bsid netip.Addr
		prio uint32
	}
	slots := map[slot]int{}
	for i, p := range c.Paths.List {
		key := fmt.Sprintf("paths.list[%d]", i)
		if p.ID != "" {
			key = fmt.Sprintf("paths.list[%d] (%s)", i, p.ID)
		}
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s.%w", key, fmt.Errorf(format, a...)))
		}
		if p.ID == "" {
			bad("id: must be set")
		} else if j, dup := ids[p.ID]; dup {
			bad("id: %q is also the id of paths.list[%d]", p.ID, j)
		} else {
			ids[p.ID] = i
		}
		if err := checkUnicastSID(p.BSID); err != nil {
			bad("bsid: %w", err)
		}
		switch {
		case len(p.Segments) == 0:
			bad("segments: must list at least one SID")
		case len(p.Segments) > srv6.MaxSegments:
			bad("segments: %d SIDs, more than %d", len(p.Segments), srv6.MaxSegments)
		}
		for j, s := range p.Segments {
			if err := checkUnicastSID(s); err != nil {
				bad("segments[%d]: %w", j, err)
			}
		}
		if p.BSID.IsValid() {
			k := slot{p.BSID, p.Priority}
			if j, dup := slots[k]; dup {
				bad("priority: %d, and paths.list[%d] has BSID %s with the same priority", p.Priority, j, p.BSID)
			} else {
				slots[k] = i
			}
		}
	}
	return errs
}

func checkUnicastSID(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("must be set")
	case !a.Is6() || a.Is4In6():
		return fmt.Errorf("%s is not an IPv6 SID", a)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return fmt.Errorf("%s is not a unicast address", a)
	}
	return nil
}

// pathProblem says why path p cannot be installed with derivation d (nil:
// it can): its BSID must lie inside our locator or an allowed BSID prefix,
// and must not be one of our service SIDs.
func pathProblem(c *Config, p PathConfig, d srv6.Derivation, caps dataplane.Capabilities) error {
	if !caps.EndB6Encaps {
		return errors.New("this kernel has no End.B6.Encaps")
	}
	inside := d.Locator.IsValid() && d.Locator.Contains(p.BSID)
	if !inside && !slices.ContainsFunc(c.Paths.BSIDPrefixes, func(q netip.Prefix) bool { return q.Contains(p.BSID) }) {
		return fmt.Errorf("BSID %s is outside the locator %s and outside paths.bsid_prefixes", p.BSID, d.Locator)
	}
	for _, s := range d.SIDs {
		if s.SID == p.BSID {
			return fmt.Errorf("BSID %s is the SID of service %q", p.BSID, s.Name)
		}
	}
	if d.Locator.IsValid() && p.BSID == d.Locator.Addr() {
		return fmt.Errorf("BSID %s is the locator's own address", p.BSID)
	}
	return nil
}

// activePaths picks, per BSID, the installable path with the lowest
// priority value; problems maps every path index that cannot be installed
// to why.
func activePaths(c *Config, d srv6.Derivation, caps dataplane.Capabilities) (active map[netip.Addr]int, problems map[int]error) {
	active, problems = map[netip.Addr]int{}, map[int]error{}
	for i, p := range c.Paths.List {
		if err := pathProblem(c, p, d, caps); err != nil {
			problems[i] = err
			continue
		}
		if j, ok := active[p.BSID]; !ok || p.Priority < c.Paths.List[j].Priority {
			active[p.BSID] = i
		}
	}
	return active, problems
}

// pathBSIDs is the End.B6.Encaps route of each active path, in config
// order. Paths that cannot be installed are left out (their status says
// why) rather than failing the whole dataplane.
func pathBSIDs(c *Config, d srv6.Derivation, caps dataplane.Capabilities) []dataplane.LocalSID {
	active, _ := activePaths(c, d, caps)
	var out []dataplane.LocalSID
	for i, p := range c.Paths.List {
		if j, ok := active[p.BSID]; ok && j == i {
			out = append(out, dataplane.LocalSID{SID: p.BSID, Behavior: srv6.EndB6Encaps,
				Segments: slices.Clone([]netip.Addr(p.Segments)), Dev: c.WAN.Interface})
		}
	}
	return out
}
