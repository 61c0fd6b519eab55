package agent

import (
	"net/netip"
	"slices"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// PolicyStatus is one SRv6 policy as the agent runs it: its constituent
// segment lists with their probes' last measurement, each service's table
// and active choice, and the latest choice changes. Durations are
// nanoseconds in JSON.
type PolicyStatus struct {
	Name     string     `json:"name"`
	Color    uint32     `json:"color"`
	Endpoint netip.Addr `json:"endpoint"`
	// VPN is the services: entry whose learned routes the policy steers.
	VPN           string                    `json:"vpn"`
	ProbeInterval time.Duration             `json:"probe_interval_ns"`
	Constituents  []PolicyConstituentStatus `json:"constituents"`
	Services      []PolicyServiceStatus     `json:"services"`
	// Events are the latest choice changes (at most 32), oldest first.
	Events []PolicyEvent `json:"events"`
	// Notes say what of the policy the dataplane does not carry (a flow
	// the kernel cannot match, a route whose segment list is too long).
	Notes []string `json:"notes,omitempty"`
}

// PolicyConstituentStatus is one constituent policy.
type PolicyConstituentStatus struct {
	Color uint32             `json:"color"`
	Name  string             `json:"name,omitempty"`
	Lists []PolicyListStatus `json:"segment_lists"`
}

// PolicyListStatus is one segment list and what its loopback probe last
// measured. Only the quantities measured so far are set.
type PolicyListStatus struct {
	Segments []netip.Addr `json:"segments"`
	Weight   uint32       `json:"weight"`
	// State is "up", "down" or "unknown" (no answer and not yet given up).
	State string `json:"state"`
	// Measured is when the last measurement came; zero: never.
	Measured time.Time     `json:"measured,omitzero"`
	Delay    time.Duration `json:"delay_ns,omitempty"`
	Jitter   time.Duration `json:"jitter_ns,omitempty"`
	// LossPercent of the last metrics window.
	LossPercent float64 `json:"loss_percent"`
	HasMetrics  bool    `json:"has_metrics"`
	// ForwardDelay and BackwardDelay are the one-way delays an End.TSF
	// far node gives (policies with end_tsf).
	ForwardDelay  time.Duration `json:"forward_delay_ns,omitempty"`
	BackwardDelay time.Duration `json:"backward_delay_ns,omitempty"`
	// Bandwidth is the remaining bandwidth the controller last reported.
	Bandwidth    srv6.Bandwidth `json:"remaining_bandwidth,omitempty"`
	HasBandwidth bool           `json:"has_bandwidth"`
	// ProbeError says why the probe session is not running.
	ProbeError string `json:"probe_error,omitempty"`
}

// PolicyServiceStatus is a service of the policy and its active choice.
type PolicyServiceStatus struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	// Table is the routing table its flows are classified into.
	Table int `json:"table"`
	// Priority is the active priority (0 in fallback); Colors the
	// constituents carrying the service.
	Priority int      `json:"priority"`
	Colors   []uint32 `json:"colors"`
	Fallback bool     `json:"fallback"`
	// Reason says why the service is in fallback.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Paths are the segment lists of the choice and their weights.
	Paths []PolicyPathStatus `json:"paths"`
	// Installed says the kernel holds this choice (false between a switch
	// and the end of the Apply it triggers, or while Apply fails).
	Installed bool `json:"installed"`
}

// PolicyPathStatus is one weighted segment list of a choice.
type PolicyPathStatus struct {
	Color  uint32 `json:"color"`
	List   int    `json:"list"` // from 1
	Weight uint32 `json:"weight"`
}

// PolicyEvent is one change of a service's choice.
type PolicyEvent struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	// Kind is select, degrade, restore, manual-restore, fallback or share.
	Kind   string `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// PolicyStatus reports every configured SRv6 policy, in config order. It
// is safe to call from any goroutine, before and during Run.
func (a *Agent) PolicyStatus() []PolicyStatus {
	ps := a.policies
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]PolicyStatus, 0, len(ps.pols))
	for _, pr := range ps.pols {
		p := &pr.cfg
		st := PolicyStatus{Name: p.Name, Color: p.Color, Endpoint: p.Endpoint, VPN: pr.vpn, ProbeInterval: p.probeInterval(),
			Events: slices.Clone(pr.events), Notes: slices.Clone(pr.notes)}
		if st.Events == nil {
			st.Events = []PolicyEvent{}
		}
		for c, k := range p.Constituents {
			cs := PolicyConstituentStatus{Color: k.Color, Name: k.Name}
			for l, sl := range k.SegmentLists {
				cs.Lists = append(cs.Lists, ps.listStatusLocked(pr.lists[c][l], sl))
			}
			st.Constituents = append(st.Constituents, cs)
		}
		for j, s := range p.Services {
			c, _ := pr.sel.Choice(s.Name)
			ss := PolicyServiceStatus{Name: s.Name, Selector: s.Selector, Table: pr.tables[j], Priority: c.Priority,
				Colors: c.Colors(), Fallback: c.Fallback, Reason: c.Reason, Since: c.Since, Installed: ps.applied >= pr.changed[s.Name]}
			for _, wp := range c.Paths {
				ss.Paths = append(ss.Paths, PolicyPathStatus{Color: wp.Color, List: wp.List + 1, Weight: wp.Weight})
			}
			st.Services = append(st.Services, ss)
		}
		out = append(out, st)
	}
	return out
}

func (ps *policySide) listStatusLocked(ls *listState, sl srv6.SegmentList) PolicyListStatus {
	s := PolicyListStatus{Segments: slices.Clone(sl.Segments), Weight: sl.Weight, State: "unknown", Measured: ls.measured,
		HasMetrics: ls.has&srv6.MetricDelay != 0, HasBandwidth: ls.has&srv6.MetricBandwidth != 0}
	switch ls.live {
	case srv6.PathUp:
		s.State = "up"
	case srv6.PathDown:
		s.State = "down"
	}
	if ls.has&srv6.MetricLoss != 0 {
		s.LossPercent = ls.loss * 100
	}
	if s.HasMetrics {
		s.Delay, s.Jitter, s.ForwardDelay, s.BackwardDelay = ls.delay, ls.jitter, ls.fwd, ls.bwd
	}
	if s.HasBandwidth {
		s.Bandwidth = ls.bw
	}
	if ls.key != "" {
		if running, installed, err := ps.probes.state(ls.key); running && installed && err != nil {
			s.ProbeError = err.Error()
		}
	}
	return s
}

// RestorePolicyService moves service of policy back to the best priority
// that meets its thresholds now, without waiting for wait-to-restore: the
// operator's restore, the only way back for a non-revertive selector. The
// new routes are installed at once. An unknown policy or service is an
// error wrapping ErrNoPolicy.
func (a *Agent) RestorePolicyService(policy, service string) error {
	return a.policies.restore(policy, service)
}

// ObservePolicyBandwidth records the remaining bandwidth of constituent
// color of policy, as the controller reports it (the agent does not
// measure bandwidth). A selector with a bandwidth threshold moves its
// services at once if the value crosses it. An unknown policy or color is
// an error wrapping ErrNoPolicy.
func (a *Agent) ObservePolicyBandwidth(policy string, color uint32, bw srv6.Bandwidth) error {
	return a.policies.bandwidth(policy, color, bw)
}
