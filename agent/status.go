package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// States of Status.State.
const (
	StateWaitingForPrefix = "waiting_for_prefix" // nothing applied yet by this run
	StateApplied          = "applied"            // the kernel holds the desired state
	StateRetrying         = "retrying"           // the last Apply failed; a retry is scheduled
	StateInvalid          = "invalid"            // the prefix does not fit the config; nothing applied for it
)

// Status is what the agent reports about itself. status.json holds the
// same, rewritten when anything but the times and the dataplane's counters
// changes (periodic resyncs must not wear a CPE's flash).
type Status struct {
	State       string       `json:"state"`
	Prefix      netip.Prefix `json:"prefix,omitzero"`
	Address     netip.Addr   `json:"address,omitzero"`
	Locator     netip.Prefix `json:"locator,omitzero"`
	LocatorName string       `json:"locator_name"`
	SIDs        []SIDStatus  `json:"sids"`
	// RemoteRoutes counts the encap routes in the desired state.
	RemoteRoutes int                    `json:"remote_routes"`
	Capabilities dataplane.Capabilities `json:"capabilities"`
	// Fallback lists the SIDs installed with another behaviour than their
	// service asked for (the VRF-less main-table fallback).
	Fallback []string `json:"fallback"`
	// LastApply is when Apply last succeeded; LastError is the last error
	// (apply or derivation), cleared by a success.
	LastApply time.Time `json:"last_apply,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Failures  int       `json:"consecutive_failures"`
	NextRetry time.Time `json:"next_retry,omitzero"`
	// Previous is the prefix an earlier run last applied (from the state
	// dir), shown until this run applies its own.
	Previous *PersistedPrefix `json:"previous,omitempty"`
	// Dataplane is the dataplane's own report (sysctls, probe notes, route
	// counts) when it gives one.
	Dataplane *dataplane.Status `json:"dataplane,omitempty"`
	// BGP is the speaker's state when the config has a bgp section.
	BGP *BGPStatus `json:"bgp,omitempty"`
	// EndTSF is srv6.end_tsf's SID and whether probes to it are stamped.
	EndTSF  *EndTSFStatus `json:"end_tsf,omitempty"`
	Updated time.Time     `json:"updated"`
}

// BGPStatus is the embedded speaker: sessions, and the VPN routes it
// advertises and learned.
type BGPStatus struct {
	LocalAS  uint32          `json:"local_as"`
	RouterID string          `json:"router_id"`
	Peers    []BGPPeerStatus `json:"peers"`
	// Exported counts the prefixes advertised; Imported the routes learned
	// for our services; Installed the encap routes made of them (one per
	// destination); Skipped says why some were not installed.
	Exported  int      `json:"exported"`
	Imported  int      `json:"imported"`
	Installed int      `json:"installed"`
	Skipped   []string `json:"skipped,omitempty"`
	// LastError is why the last export did not go out; SpeakerError why
	// the speaker last failed to start (cleared once it runs).
	LastError    string `json:"last_error,omitempty"`
	SpeakerError string `json:"speaker_error,omitempty"`
}

// BGPPeerStatus is one neighbour's session.
type BGPPeerStatus struct {
	Address          netip.Addr `json:"address"`
	State            string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	EstablishedAt    time.Time  `json:"established_at,omitzero"`
	PrefixesReceived uint64     `json:"prefixes_received"`
	PrefixesSent     uint64     `json:"prefixes_sent"`
}

// SIDStatus is one service SID: what its service asked for and what is installed.
type SIDStatus struct {
	Name      string     `json:"name"`
	Behavior  string     `json:"behavior"`
	Installed string     `json:"installed"`
	Function  uint64     `json:"function"`
	SID       netip.Addr `json:"sid"`
	Table     int        `json:"table,omitempty"`
	VRF       string     `json:"vrf,omitempty"`
}

// PersistedPrefix is the last prefix applied, kept in the state dir.
type PersistedPrefix struct {
	Prefix  netip.Prefix `json:"prefix"`
	Address netip.Addr   `json:"address"`
	Locator netip.Prefix `json:"locator"`
	Applied time.Time    `json:"applied"`
}

func (s Status) clone() Status {
	s.SIDs = append([]SIDStatus(nil), s.SIDs...)
	s.Fallback = append([]string(nil), s.Fallback...)
	if s.Previous != nil {
		p := *s.Previous
		s.Previous = &p
	}
	if s.Dataplane != nil {
		d := *s.Dataplane
		d.Sysctls = append([]dataplane.Sysctl(nil), d.Sysctls...)
		d.ProbeNotes = append([]string(nil), d.ProbeNotes...)
		s.Dataplane = &d
	}
	if s.EndTSF != nil {
		t := *s.EndTSF
		t.Interfaces = append([]string(nil), t.Interfaces...)
		s.EndTSF = &t
	}
	if s.BGP != nil {
		b := *s.BGP
		b.Peers = append([]BGPPeerStatus(nil), b.Peers...)
		b.Skipped = append([]string(nil), b.Skipped...)
		s.BGP = &b
	}
	return s
}

// sidStatuses pairs each derived SID with the route desiredState made for
// it (desiredState keeps d.SIDs' order in LocalSIDs).
func sidStatuses(d srv6.Derivation, want dataplane.Desired) []SIDStatus {
	out := make([]SIDStatus, 0, len(d.SIDs))
	for i, s := range d.SIDs {
		st := SIDStatus{Name: s.Name, Behavior: s.Behavior.String(), Function: s.Function, SID: s.SID}
		if i < len(want.LocalSIDs) && want.LocalSIDs[i].SID == s.SID {
			l := want.LocalSIDs[i]
			st.Installed, st.Table, st.VRF = describeLocalSID(l), l.Table, l.VRF
		}
		out = append(out, st)
	}
	return out
}

// describeLocalSID writes the installed behaviour with its parameters, as
// iproute2 would show them.
func describeLocalSID(l dataplane.LocalSID) string {
	switch l.Behavior {
	case srv6.EndDX4:
		return fmt.Sprintf("End.DX4 nh4 %s", l.NH4)
	case srv6.EndDX6:
		return fmt.Sprintf("End.DX6 nh6 %s", l.NH6)
	case srv6.EndDT4, srv6.EndDT46:
		return fmt.Sprintf("%s vrftable %d", l.Behavior, l.Table)
	case srv6.EndDT6:
		if l.VRF != "" {
			return fmt.Sprintf("End.DT6 vrftable %d", l.Table)
		}
		if l.Table == 0 {
			return "End.DT6 table main"
		}
		return fmt.Sprintf("End.DT6 table %d", l.Table)
	}
	return l.Behavior.String()
}

// fallbackNotes says which SIDs the VRF-less fallback changed.
func fallbackNotes(sids []SIDStatus, want dataplane.Desired) []string {
	var notes []string
	for i, s := range sids {
		if i < len(want.LocalSIDs) && want.LocalSIDs[i].Behavior.String() != s.Behavior {
			notes = append(notes, fmt.Sprintf("%s: %s installed as %s in the main table (kernel has no VRF)", s.Name, s.Behavior, s.Installed))
		}
	}
	return notes
}
