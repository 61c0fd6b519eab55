package srv6

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Parent SRv6 policies and their per-service selectors
// (draft-yang-srv6ops-policy-selector): a parent policy (color, endpoint)
// groups constituent policies to the same endpoint, each its own color with
// one or more weighted segment lists; a routing policy selector maps
// priorities to constituent colors and holds quality thresholds, a default
// constituent and a wait-to-restore time; a service of the parent policy is
// steered by one selector. The types carry yaml tags so the agent embeds
// them as its `policies:` section; Selector (selector.go) runs them.
//
// CWMP: one Policy is Device.X_ITU-INT_SRv6.Policy.{i}. with
//   Name, Color, Endpoint
//   Constituent.{j}.Color, .Name
//   Constituent.{j}.SegmentList.{k}.Segments (ParseSegmentList notation), .Weight
//   Selector.{j}.Name, .DefaultColor, .WaitToRestore (s), .Revertive,
//     .DelayThreshold (µs), .JitterThreshold (µs), .LossThreshold (%),
//     .BandwidthThreshold (kbit/s)
//   Selector.{j}.Priority.{k}.Priority, .Color, .Weight
//   Service.{j}.Name, .Selector, and read-only status from Selector.Choice:
//     .ActivePriority, .ActiveColors, .Fallback, .FallbackReason, .LastSwitch

// MaxPriority is the largest (least preferred) selector priority; 1 is the
// most preferred.
const MaxPriority = 255

// ErrInvalidPolicy is wrapped by every validation error of this file.
var ErrInvalidPolicy = errors.New("invalid SRv6 policy")

// Policy is a parent SRv6 policy.
type Policy struct {
	// Name identifies the policy in events, status and the CWMP model.
	Name string `yaml:"name"`
	// Color and Endpoint identify the parent policy (RFC 9256 §2.1). Colors
	// here and in constituents are 1..4294967295: 0 is "not set".
	Color    uint32     `yaml:"color"`
	Endpoint netip.Addr `yaml:"endpoint"`
	// Constituents are the policies the selectors choose from, all to
	// Endpoint; each has its own color.
	Constituents []Constituent     `yaml:"constituents"`
	Selectors    []RoutingSelector `yaml:"selectors"`
	Services     []PolicyService   `yaml:"services"`
}

// Constituent is one constituent SRv6 policy of a parent.
type Constituent struct {
	Color uint32 `yaml:"color"`
	// Name is an optional label for logs ("path1").
	Name         string        `yaml:"name"`
	SegmentLists []SegmentList `yaml:"segment_lists"`
}

// SegmentList is one weighted segment list of a constituent (RFC 9256
// §2.2): traffic on the constituent is shared among its lists by weight.
type SegmentList struct {
	Segments Segments `yaml:"segments"`
	// Weight must be at least 1.
	Weight uint32 `yaml:"weight"`
}

// Segments is a segment list in travel order (first segment first). As YAML
// it is either a sequence of plain IPv6 addresses or one string in
// ParseSegmentList's notation, which also takes Q.Suppl.79 behaviour words.
type Segments []netip.Addr

// UnmarshalText reads a list in ParseSegmentList's notation.
func (s *Segments) UnmarshalText(b []byte) error {
	l, err := ParseSegmentList(string(b))
	if err != nil {
		return err
	}
	*s = Addrs(l)
	return nil
}

// MarshalText writes the list so that UnmarshalText reads it back.
func (s Segments) MarshalText() ([]byte, error) {
	sids := make([]SID, len(s))
	for i, a := range s {
		sids[i] = SID{Addr: a}
	}
	return []byte(FormatSegmentList(sids)), nil
}

// RoutingSelector is a routing policy selector: which constituent carries a
// service, by priority, as long as it meets the thresholds.
type RoutingSelector struct {
	Name string `yaml:"name"`
	// Priorities map priorities to constituents. Several constituents on one
	// priority share the traffic by their Weight.
	Priorities []PriorityEntry `yaml:"priorities"`
	Thresholds Thresholds      `yaml:"thresholds"`
	// Default is the color of the constituent that carries the service when
	// no prioritised constituent meets the thresholds.
	Default uint32 `yaml:"default"`
	// WaitToRestore is how long a better-priority constituent must meet the
	// thresholds without interruption before traffic moves back to it.
	WaitToRestore time.Duration `yaml:"wait_to_restore"`
	// NonRevertive keeps traffic where it is once it has moved down: only
	// Selector.Restore moves it back.
	NonRevertive bool `yaml:"non_revertive"`
}

// PriorityEntry puts one constituent on one priority of a selector.
type PriorityEntry struct {
	// Priority 1 is the most preferred, MaxPriority the least.
	Priority int    `yaml:"priority"`
	Color    uint32 `yaml:"color"`
	// Weight is the constituent's share among the constituents of the same
	// priority; 0 counts as 1.
	Weight uint32 `yaml:"weight"`
}

func (e PriorityEntry) weight() uint64 { return uint64(max(e.Weight, 1)) }

// Thresholds are the quality a constituent must meet; a zero value is not
// checked.
type Thresholds struct {
	// Delay and Jitter: the measured value must not exceed them.
	Delay  time.Duration `yaml:"delay"`
	Jitter time.Duration `yaml:"jitter"`
	// LossPercent: the measured loss must not exceed it (0 < x <= 100).
	LossPercent float64 `yaml:"loss_percent"`
	// MinBandwidth: the remaining bandwidth must not fall under it.
	MinBandwidth Bandwidth `yaml:"min_bandwidth"`
}

// Bandwidth is a rate in bit/s. As text it takes an optional SI suffix
// (k, M, G, T, powers of 1000) and an optional unit "bps" or "bit/s":
// "50M", "1.5G", "50Mbps", "2500000".
type Bandwidth uint64

var bandwidthUnits = []struct {
	suffix string
	mult   uint64
}{{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}, {"K", 1e3}}

// ParseBandwidth reads a Bandwidth (see its doc).
func ParseBandwidth(s string) (Bandwidth, error) {
	t := strings.TrimSpace(s)
	for _, unit := range []string{"bit/s", "bps"} {
		if strings.HasSuffix(t, unit) {
			t = strings.TrimSpace(strings.TrimSuffix(t, unit))
			break
		}
	}
	mult := uint64(1)
	for _, u := range bandwidthUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	if t == "" || t[0] == '+' || t[0] == '-' {
		return 0, fmt.Errorf("bandwidth %s is not a rate like 50M or 1.5G", clip(s))
	}
	if n, err := strconv.ParseUint(t, 10, 64); err == nil {
		if n > math.MaxUint64/mult {
			return 0, fmt.Errorf("bandwidth %s is too large", clip(s))
		}
		return Bandwidth(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(t, "eEpPxX_") {
		return 0, fmt.Errorf("bandwidth %s is not a rate like 50M or 1.5G", clip(s))
	}
	v := f * float64(mult)
	if v >= math.MaxUint64 {
		return 0, fmt.Errorf("bandwidth %s is too large", clip(s))
	}
	return Bandwidth(math.Round(v)), nil
}

// UnmarshalText reads a Bandwidth with ParseBandwidth.
func (b *Bandwidth) UnmarshalText(t []byte) error {
	v, err := ParseBandwidth(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText writes String.
func (b Bandwidth) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String writes the rate with the largest suffix that keeps it exact.
func (b Bandwidth) String() string {
	for _, u := range bandwidthUnits[:4] {
		if uint64(b) >= u.mult && uint64(b)%u.mult == 0 {
			return strconv.FormatUint(uint64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(b), 10)
}

// PolicyService is a service steered by the parent policy; its flows are
// classified elsewhere (the agent), the selector names how they travel.
type PolicyService struct {
	Name     string `yaml:"name"`
	Selector string `yaml:"selector"`
}

// Validate checks p and returns one error that names every bad value.
func (p *Policy) Validate() error {
	var bad []string
	add := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }

	if p.Name == "" {
		add("no name")
	}
	if p.Color == 0 {
		add("color 0 (colors are 1..4294967295)")
	}
	if err := checkSegment(p.Endpoint); err != nil {
		add("endpoint: %v", err)
	}
	colors := make(map[uint32]bool, len(p.Constituents))
	if len(p.Constituents) == 0 {
		add("no constituents")
	}
	for i, c := range p.Constituents {
		at := fmt.Sprintf("constituent %d (color %d)", i+1, c.Color)
		switch {
		case c.Color == 0:
			add("constituent %d: color 0 (colors are 1..4294967295)", i+1)
		case c.Color == p.Color:
			add("%s: the parent policy's own color", at)
		case colors[c.Color]:
			add("%s: color %d used twice", at, c.Color)
		}
		colors[c.Color] = true
		if len(c.SegmentLists) == 0 {
			add("%s: no segment lists", at)
		}
		for j, sl := range c.SegmentLists {
			sat := fmt.Sprintf("%s segment list %d", at, j+1)
			if sl.Weight == 0 {
				add("%s: weight 0", sat)
			}
			switch {
			case len(sl.Segments) == 0:
				add("%s: no segments", sat)
			case len(sl.Segments) > MaxSegments:
				add("%s: %d segments, more than %d", sat, len(sl.Segments), MaxSegments)
			}
			for k, s := range sl.Segments {
				if err := checkSegment(s); err != nil {
					add("%s segment %d: %v", sat, k+1, err)
				}
			}
		}
	}
	selectors := make(map[string]bool, len(p.Selectors))
	for i, s := range p.Selectors {
		at := fmt.Sprintf("selector %d (%s)", i+1, strconv.Quote(s.Name))
		switch {
		case s.Name == "":
			add("selector %d: no name", i+1)
		case selectors[s.Name]:
			add("%s: name used twice", at)
		}
		selectors[s.Name] = true
		if len(s.Priorities) == 0 {
			add("%s: no priorities", at)
		}
		seen := make(map[uint32]int, len(s.Priorities))
		for _, e := range s.Priorities {
			if e.Priority < 1 || e.Priority > MaxPriority {
				add("%s: priority %d of color %d is outside 1..%d", at, e.Priority, e.Color, MaxPriority)
			}
			if !colors[e.Color] {
				add("%s: priority %d names color %d, not a constituent", at, e.Priority, e.Color)
			}
			if prev, dup := seen[e.Color]; dup {
				add("%s: color %d listed twice (priorities %d and %d)", at, e.Color, prev, e.Priority)
			}
			seen[e.Color] = e.Priority
		}
		switch {
		case s.Default == 0:
			add("%s: no default constituent", at)
		case !colors[s.Default]:
			add("%s: default color %d is not a constituent", at, s.Default)
		}
		if s.WaitToRestore < 0 {
			add("%s: wait_to_restore %v is negative", at, s.WaitToRestore)
		}
		th := s.Thresholds
		if th.Delay < 0 {
			add("%s: delay threshold %v is negative", at, th.Delay)
		}
		if th.Jitter < 0 {
			add("%s: jitter threshold %v is negative", at, th.Jitter)
		}
		if math.IsNaN(th.LossPercent) || th.LossPercent < 0 || th.LossPercent > 100 {
			add("%s: loss threshold %v%% is outside 0..100", at, th.LossPercent)
		}
	}
	services := make(map[string]bool, len(p.Services))
	for i, s := range p.Services {
		switch {
		case s.Name == "":
			add("service %d: no name", i+1)
		case services[s.Name]:
			add("service %s: name used twice", strconv.Quote(s.Name))
		}
		services[s.Name] = true
		if !selectors[s.Selector] {
			add("service %s: selector %s is not defined", strconv.Quote(s.Name), strconv.Quote(s.Selector))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w %s: %s", ErrInvalidPolicy, strconv.Quote(p.Name), strings.Join(bad, "; "))
	}
	return nil
}

// ValidatePolicies validates each policy and that no two share a name or a
// (color, endpoint) pair.
func ValidatePolicies(ps []Policy) error {
	var errs []error
	names := make(map[string]bool, len(ps))
	type key struct {
		color    uint32
		endpoint netip.Addr
	}
	keys := make(map[key]string, len(ps))
	for i := range ps {
		p := &ps[i]
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
		}
		if p.Name != "" && names[p.Name] {
			errs = append(errs, fmt.Errorf("%w: name %s used twice", ErrInvalidPolicy, strconv.Quote(p.Name)))
		}
		names[p.Name] = true
		k := key{p.Color, p.Endpoint}
		if other, dup := keys[k]; dup {
			errs = append(errs, fmt.Errorf("%w %s: color %d to %s already used by policy %s",
				ErrInvalidPolicy, strconv.Quote(p.Name), p.Color, p.Endpoint, strconv.Quote(other)))
		} else {
			keys[k] = p.Name
		}
	}
	return errors.Join(errs...)
}

// checkSegment applies ParseSID's rules to an address given as netip.Addr.
func checkSegment(a netip.Addr) error {
	if !a.IsValid() {
		return errors.New("no address")
	}
	_, err := sidFrom(a.String(), a, 0)
	return err
}

// clone deep-copies p so that a Selector never sees its caller's later edits.
func (p *Policy) clone() Policy {
	c := *p
	c.Constituents = make([]Constituent, len(p.Constituents))
	for i, k := range p.Constituents {
		k.SegmentLists = append([]SegmentList(nil), k.SegmentLists...)
		for j := range k.SegmentLists {
			k.SegmentLists[j].Segments = append(Segments(nil), k.SegmentLists[j].Segments...)
		}
		c.Constituents[i] = k
	}
	c.Selectors = append([]RoutingSelector(nil), p.Selectors...)
	for i := range c.Selectors {
		c.Selectors[i].Priorities = append([]PriorityEntry(nil), c.Selectors[i].Priorities...)
	}
	c.Services = append([]PolicyService(nil), p.Services...)
	return c
}
