package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// The daemon's answers, as far as the tables show them (the JSON of
// agent.Status and agent.Control*View; --json passes all of it through).

type statusAnswer struct {
	State        string          `json:"state"`
	Prefix       string          `json:"prefix"`
	Address      string          `json:"address"`
	Locator      string          `json:"locator"`
	LocatorName  string          `json:"locator_name"`
	SIDs         []sidAnswer     `json:"sids"`
	RemoteRoutes int             `json:"remote_routes"`
	Capabilities map[string]bool `json:"capabilities"`
	Fallback     []string        `json:"fallback"`
	LastApply    time.Time       `json:"last_apply"`
	LastError    string          `json:"last_error"`
	Failures     int             `json:"consecutive_failures"`
	NextRetry    time.Time       `json:"next_retry"`
	Previous     *struct {
		Prefix  string    `json:"prefix"`
		Locator string    `json:"locator"`
		Applied time.Time `json:"applied"`
	} `json:"previous"`
	Dataplane *struct {
		VRFLessFallback bool     `json:"VRFLessFallback"`
		ProbeNotes      []string `json:"ProbeNotes"`
		Routes          int      `json:"Routes"`
	} `json:"dataplane"`
	BGP     *bgpStatus    `json:"bgp"`
	EndTSF  *endTSFStatus `json:"end_tsf"`
	Updated time.Time     `json:"updated"`
}

// endTSFStatus is agent.EndTSFStatus.
type endTSFStatus struct {
	SID        string   `json:"sid"`
	Installed  string   `json:"installed"`
	Stamping   bool     `json:"stamping"`
	Interfaces []string `json:"interfaces"`
	Error      string   `json:"error"`
}

type sidAnswer struct {
	Name      string `json:"name"`
	Behavior  string `json:"behavior"`
	Installed string `json:"installed"`
	Function  uint64 `json:"function"`
	SID       string `json:"sid"`
}

type bgpStatus struct {
	LocalAS  uint32 `json:"local_as"`
	RouterID string `json:"router_id"`
	Peers    []struct {
		Address          string    `json:"address"`
		State            string    `json:"state"`
		EstablishedAt    time.Time `json:"established_at"`
		PrefixesReceived uint64    `json:"prefixes_received"`
		PrefixesSent     uint64    `json:"prefixes_sent"`
	} `json:"peers"`
	Exported  int      `json:"exported"`
	Imported  int      `json:"imported"`
	Installed int      `json:"installed"`
	Skipped   []string `json:"skipped"`
	LastError string   `json:"last_error"`
}

type routesAnswer struct {
	Locators []string `json:"locators"`
	VRFs     []struct {
		Name  string `json:"name"`
		Table int    `json:"table"`
	} `json:"vrfs"`
	LocalSIDs []localSIDAnswer `json:"local_sids"`
	BSIDs     []localSIDAnswer `json:"bsids"`
	Encaps    []struct {
		Prefix   string   `json:"prefix"`
		Table    int      `json:"table"`
		VRF      string   `json:"vrf"`
		Mode     string   `json:"mode"`
		Segments []string `json:"segments"`
		Dev      string   `json:"dev"`
	} `json:"encaps"`
}

type localSIDAnswer struct {
	SID      string   `json:"sid"`
	Behavior string   `json:"behavior"`
	Table    int      `json:"table"`
	VRF      string   `json:"vrf"`
	NH4      string   `json:"nh4"`
	NH6      string   `json:"nh6"`
	Dev      string   `json:"dev"`
	Segments []string `json:"segments"`
}

type cwmpAnswer struct {
	ACSURL        string `json:"acs_url"`
	PendingEvents []struct {
		Code       string `json:"code"`
		CommandKey string `json:"command_key"`
	} `json:"pending_events"`
	Transfers []struct {
		ID           uint64    `json:"id"`
		Direction    string    `json:"direction"`
		FileType     string    `json:"file_type"`
		CommandKey   string    `json:"command_key"`
		State        string    `json:"state"`
		NotBefore    time.Time `json:"not_before"`
		CompleteTime time.Time `json:"complete_time"`
		FaultCode    int       `json:"fault_code"`
		FaultString  string    `json:"fault_string"`
	} `json:"transfers"`
}

// pathsAnswer is agent.ControlPathsView.
type pathsAnswer struct {
	Paths []struct {
		ID             string   `json:"id"`
		Destination    string   `json:"destination"`
		Segments       []string `json:"segments"`
		BSID           string   `json:"bsid"`
		Priority       uint32   `json:"priority"`
		Status         string   `json:"status"`
		Details        string   `json:"details"`
		ActivePathInfo string   `json:"active_path_info"`
	} `json:"paths"`
}

// table writes aligned columns; cells are made single-line.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		cells[i] = oneLine(strings.ReplaceAll(c, "\t", " "))
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func renderStatus(w io.Writer, body []byte) error {
	var s statusAnswer
	if err := decode(body, "status", &s); err != nil {
		return err
	}
	t := newTable(w)
	t.row("state", s.State)
	t.row("prefix", s.Prefix)
	t.row("address", s.Address)
	loc := s.Locator
	if loc != "" && s.LocatorName != "" {
		loc += " (" + s.LocatorName + ")"
	}
	t.row("locator", loc)
	t.row("sids", fmt.Sprintf("%d (srv6cpectl sid)", len(s.SIDs)))
	t.row("remote routes", fmt.Sprint(s.RemoteRoutes))
	var caps []string
	for c, ok := range s.Capabilities {
		if ok {
			caps = append(caps, c)
		}
	}
	sort.Strings(caps)
	t.row("capabilities", strings.Join(caps, " "))
	for _, f := range s.Fallback {
		t.row("fallback", f)
	}
	t.row("last apply", stamp(s.LastApply))
	if s.LastError != "" {
		t.row("last error", s.LastError)
		t.row("failures", fmt.Sprint(s.Failures))
		t.row("next retry", stamp(s.NextRetry))
	}
	if p := s.Previous; p != nil {
		t.row("previous run", fmt.Sprintf("prefix %s, locator %s, applied %s", p.Prefix, p.Locator, stamp(p.Applied)))
	}
	if d := s.Dataplane; d != nil {
		dp := fmt.Sprintf("%d routes", d.Routes)
		if d.VRFLessFallback {
			dp += ", no VRF: VPNs in the main table"
		}
		t.row("dataplane", dp)
		for _, n := range d.ProbeNotes {
			t.row("probe", n)
		}
	}
	if b := s.BGP; b != nil {
		up := 0
		for _, p := range b.Peers {
			if p.State == "established" {
				up++
			}
		}
		t.row("bgp", fmt.Sprintf("AS %d, %d/%d peers established, %d exported, %d imported (srv6cpectl bgp)", b.LocalAS, up, len(b.Peers), b.Exported, b.Imported))
	} else {
		t.row("bgp", "not configured")
	}
	if e := s.EndTSF; e != nil {
		t.row("end.tsf", endTSFLine(e))
		if e.Error != "" {
			t.row("end.tsf error", e.Error)
		}
	}
	t.row("updated", stamp(s.Updated))
	t.flush()
	return nil
}

// endTSFLine says where the End.TSF SID is, its route, and whether probes
// to it get T2 (otherwise they come back as from a plain loopback).
func endTSFLine(e *endTSFStatus) string {
	if e.SID == "" {
		return "no SID (see the error)"
	}
	route := "not installed"
	if e.Installed != "" {
		route = "installed as " + e.Installed
	}
	if !e.Stamping {
		return fmt.Sprintf("SID %s %s, plain loopback: no T2 stamped", e.SID, route)
	}
	return fmt.Sprintf("SID %s %s, stamps T2 at ingress of %s", e.SID, route, strings.Join(e.Interfaces, ", "))
}

func renderSIDs(w io.Writer, body []byte) error {
	var s statusAnswer
	if err := decode(body, "status", &s); err != nil {
		return err
	}
	if s.Locator == "" {
		fmt.Fprintf(w, "no locator yet (state %s)\n", s.State)
		return nil
	}
	fmt.Fprintf(w, "locator %s (%s), from prefix %s\n\n", s.Locator, s.LocatorName, s.Prefix)
	t := newTable(w, "NAME", "BEHAVIOR", "FUNCTION", "SID", "INSTALLED")
	for _, x := range s.SIDs {
		t.row(x.Name, x.Behavior, fmt.Sprintf("%#x", x.Function), x.SID, x.Installed)
	}
	t.flush()
	return nil
}

// sidJSON is "sid --json": the shape of "sid derive", from the daemon.
func sidJSON(body []byte) ([]byte, error) {
	var s statusAnswer
	if err := decode(body, "status", &s); err != nil {
		return nil, err
	}
	type sid struct {
		Name      string `json:"name"`
		Behavior  string `json:"behavior"`
		Function  uint64 `json:"function"`
		SID       string `json:"sid"`
		Installed string `json:"installed"`
	}
	out := struct {
		Prefix      string `json:"prefix"`
		Locator     string `json:"locator"`
		LocatorName string `json:"locator_name"`
		SIDs        []sid  `json:"sids"`
	}{Prefix: s.Prefix, Locator: s.Locator, LocatorName: s.LocatorName, SIDs: make([]sid, 0, len(s.SIDs))}
	for _, x := range s.SIDs {
		out.SIDs = append(out.SIDs, sid{x.Name, x.Behavior, x.Function, x.SID, x.Installed})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func renderRoutes(w io.Writer, body []byte) error {
	var r routesAnswer
	if err := decode(body, "routes", &r); err != nil {
		return err
	}
	if len(r.Locators)+len(r.VRFs)+len(r.LocalSIDs)+len(r.BSIDs)+len(r.Encaps) == 0 {
		fmt.Fprintln(w, "no routes installed")
		return nil
	}
	section := func(title string) {
		fmt.Fprintf(w, "%s:\n", title)
	}
	first := true
	gap := func() {
		if !first {
			fmt.Fprintln(w)
		}
		first = false
	}
	if len(r.Locators) > 0 {
		gap()
		section("locators (unreachable)")
		for _, l := range r.Locators {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if len(r.VRFs) > 0 {
		gap()
		t := newTable(w, "VRF", "TABLE")
		for _, v := range r.VRFs {
			t.row(v.Name, fmt.Sprint(v.Table))
		}
		t.flush()
	}
	for _, ls := range []struct {
		title string
		l     []localSIDAnswer
	}{{"SID", r.LocalSIDs}, {"BSID", r.BSIDs}} {
		if len(ls.l) == 0 {
			continue
		}
		gap()
		t := newTable(w, ls.title, "BEHAVIOR", "PARAMETERS", "DEV")
		for _, l := range ls.l {
			t.row(l.SID, l.Behavior, sidParams(l), l.Dev)
		}
		t.flush()
	}
	if len(r.Encaps) > 0 {
		gap()
		t := newTable(w, "PREFIX", "TABLE", "MODE", "SEGMENTS", "DEV")
		for _, e := range r.Encaps {
			tbl := "main"
			switch {
			case e.VRF != "":
				tbl = "vrf " + e.VRF
			case e.Table != 0:
				tbl = fmt.Sprint(e.Table)
			}
			t.row(e.Prefix, tbl, e.Mode, strings.Join(e.Segments, ","), e.Dev)
		}
		t.flush()
	}
	return nil
}

// mainTable is RT_TABLE_MAIN.
const mainTable = 254

// sidParams writes a seg6local route's parameters as iproute2 does.
func sidParams(l localSIDAnswer) string {
	var p []string
	switch {
	case l.VRF != "":
		p = append(p, "vrftable "+fmt.Sprint(l.Table), "vrf "+l.VRF)
	case l.Table != 0 && l.Table != mainTable:
		p = append(p, "table "+fmt.Sprint(l.Table))
	case strings.HasPrefix(l.Behavior, "End.DT"): // the table lookups: say which
		p = append(p, "table main")
	}
	if l.NH4 != "" {
		p = append(p, "nh4 "+l.NH4)
	}
	if l.NH6 != "" {
		p = append(p, "nh6 "+l.NH6)
	}
	if len(l.Segments) > 0 {
		p = append(p, "segs "+strings.Join(l.Segments, ","))
	}
	return strings.Join(p, " ")
}

func renderBGP(w io.Writer, body []byte) error {
	var v struct {
		Configured bool       `json:"configured"`
		Status     *bgpStatus `json:"status"`
	}
	if err := decode(body, "bgp", &v); err != nil {
		return err
	}
	b := v.Status
	if !v.Configured || b == nil {
		fmt.Fprintln(w, "bgp: not configured (no bgp section)")
		return nil
	}
	fmt.Fprintf(w, "local AS %d, router id %s\n", b.LocalAS, b.RouterID)
	fmt.Fprintf(w, "VPN routes: %d exported, %d imported, %d installed\n", b.Exported, b.Imported, b.Installed)
	if b.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", oneLine(b.LastError))
	}
	fmt.Fprintln(w)
	t := newTable(w, "PEER", "STATE", "UP SINCE", "RECEIVED", "SENT")
	for _, p := range b.Peers {
		t.row(p.Address, p.State, stamp(p.EstablishedAt), fmt.Sprint(p.PrefixesReceived), fmt.Sprint(p.PrefixesSent))
	}
	t.flush()
	if len(b.Skipped) > 0 {
		fmt.Fprintln(w, "\nnot installed:")
		for _, s := range b.Skipped {
			fmt.Fprintf(w, "  %s\n", oneLine(s))
		}
	}
	return nil
}

func renderCWMP(w io.Writer, body []byte) error {
	var c cwmpAnswer
	if err := decode(body, "cwmp", &c); err != nil {
		return err
	}
	if c.ACSURL == "" {
		fmt.Fprintln(w, "ACS: none (the CWMP client has not run with an acs.url)")
	} else {
		fmt.Fprintf(w, "ACS: %s\n", c.ACSURL)
	}
	fmt.Fprintln(w)
	if len(c.PendingEvents) == 0 {
		fmt.Fprintln(w, "no pending events")
	} else {
		t := newTable(w, "PENDING EVENT", "COMMAND KEY")
		for _, e := range c.PendingEvents {
			t.row(e.Code, e.CommandKey)
		}
		t.flush()
	}
	fmt.Fprintln(w)
	if len(c.Transfers) == 0 {
		fmt.Fprintln(w, "no transfers")
		return nil
	}
	t := newTable(w, "TRANSFER", "DIRECTION", "FILE TYPE", "STATE", "COMMAND KEY", "NOT BEFORE", "COMPLETED", "FAULT")
	for _, x := range c.Transfers {
		fault := ""
		if x.FaultCode != 0 {
			fault = fmt.Sprintf("%d %s", x.FaultCode, x.FaultString)
		}
		t.row(fmt.Sprint(x.ID), x.Direction, x.FileType, x.State, x.CommandKey, stamp(x.NotBefore), stamp(x.CompleteTime), fault)
	}
	t.flush()
	return nil
}

// stampView mirrors agent.ControlSTAMPView (the CLI does not link the agent).
type stampView struct {
	Tasks []struct {
		ID         string `json:"id"`
		Role       string `json:"role"`
		LocalIP    string `json:"local_ip"`
		PeerIP     string `json:"peer_ip"`
		Port       uint16 `json:"port"`
		Enabled    bool   `json:"enabled"`
		Running    bool   `json:"running"`
		Reports    string `json:"reports"`
		LastReport *struct {
			Latency        string    `json:"latency_ms"`
			Jitter         string    `json:"jitter_ms"`
			PacketLossRate string    `json:"packet_loss_percent"`
			Time           time.Time `json:"time"`
		} `json:"last_report"`
	} `json:"tasks"`
}

func renderSTAMP(w io.Writer, body []byte) error {
	var v stampView
	if err := decode(body, "stamp", &v); err != nil {
		return err
	}
	if len(v.Tasks) == 0 {
		fmt.Fprintln(w, "stamp: no monitoring tasks")
		return nil
	}
	t := newTable(w, "TASK", "ROLE", "LOCAL", "PEER", "PORT", "STATE", "LATENCY ms", "JITTER ms", "LOSS %", "REPORTED")
	for _, x := range v.Tasks {
		state := "stopped"
		switch {
		case !x.Enabled:
			state = "disabled"
		case x.Running:
			state = "running"
		}
		lat, jit, loss, at := "", "", "", ""
		if r := x.LastReport; r != nil {
			lat, jit, loss, at = r.Latency, r.Jitter, r.PacketLossRate, stamp(r.Time)
			if x.Reports == "parameters" {
				at += " (to parameters)"
			}
		}
		t.row(x.ID, x.Role, x.LocalIP, x.PeerIP, fmt.Sprint(x.Port), state, lat, jit, loss, at)
	}
	t.flush()
	return nil
}

// renderPaths prints the dynamic paths: configuration, state and, for an
// active path, its measured latency (ActivePathInfo without the list the
// table already shows).
func renderPaths(w io.Writer, body []byte) error {
	var v pathsAnswer
	if err := decode(body, "paths", &v); err != nil {
		return err
	}
	if len(v.Paths) == 0 {
		fmt.Fprintln(w, "paths: no dynamic paths configured")
		return nil
	}
	t := newTable(w, "PATH", "DESTINATION", "BSID", "PRIORITY", "SEGMENTS", "STATUS", "LATENCY / DETAILS")
	for _, p := range v.Paths {
		info := p.Details
		if _, latency, ok := strings.Cut(p.ActivePathInfo, "; "); ok {
			info = latency
			if p.Details != "" {
				info += "; " + p.Details
			}
		}
		t.row(p.ID, p.Destination, p.BSID, fmt.Sprint(p.Priority), strings.Join(p.Segments, ","), p.Status, info)
	}
	t.flush()
	return nil
}

func renderRefresh(w io.Writer, _ []byte) error {
	fmt.Fprintln(w, "the agent re-reads the delegated prefix")
	return nil
}
