package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pathPolicyRestore is agent.ControlPolicyRestore.
const pathPolicyRestore = "/v1/policy/restore"

// policyAnswer is agent.ControlPolicyView, as far as the tables show it.
type policyAnswer struct {
	Policies []struct {
		Name          string        `json:"name"`
		Color         uint32        `json:"color"`
		Endpoint      string        `json:"endpoint"`
		VPN           string        `json:"vpn"`
		ProbeInterval time.Duration `json:"probe_interval_ns"`
		Constituents  []struct {
			Color uint32             `json:"color"`
			Name  string             `json:"name"`
			Lists []policyListAnswer `json:"segment_lists"`
		} `json:"constituents"`
		Services []struct {
			Name     string    `json:"name"`
			Selector string    `json:"selector"`
			Table    int       `json:"table"`
			Priority int       `json:"priority"`
			Fallback bool      `json:"fallback"`
			Reason   string    `json:"reason"`
			Since    time.Time `json:"since"`
			Paths    []struct {
				Color  uint32 `json:"color"`
				List   int    `json:"list"`
				Weight uint32 `json:"weight"`
			} `json:"paths"`
			Installed bool `json:"installed"`
		} `json:"services"`
		Events []struct {
			At      time.Time `json:"at"`
			Service string    `json:"service"`
			Kind    string    `json:"kind"`
			To      string    `json:"to"`
			Reason  string    `json:"reason"`
		} `json:"events"`
		Notes []string `json:"notes"`
	} `json:"policies"`
}

// policyListAnswer is agent.PolicyListStatus.
type policyListAnswer struct {
	Segments     []string      `json:"segments"`
	Weight       uint32        `json:"weight"`
	State        string        `json:"state"`
	Measured     time.Time     `json:"measured"`
	Delay        time.Duration `json:"delay_ns"`
	Jitter       time.Duration `json:"jitter_ns"`
	LossPercent  float64       `json:"loss_percent"`
	HasMetrics   bool          `json:"has_metrics"`
	Forward      time.Duration `json:"forward_delay_ns"`
	Backward     time.Duration `json:"backward_delay_ns"`
	Bandwidth    string        `json:"remaining_bandwidth"`
	HasBandwidth bool          `json:"has_bandwidth"`
	ProbeError   string        `json:"probe_error"`
}

// policyEventsShown is how many of a policy's latest events the table shows.
const policyEventsShown = 8

func renderPolicy(w io.Writer, body []byte) error {
	var v policyAnswer
	if err := decode(body, "policy", &v); err != nil {
		return err
	}
	if len(v.Policies) == 0 {
		fmt.Fprintln(w, "policy: no SRv6 policies configured")
		return nil
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
	}
	for i, p := range v.Policies {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "policy %s: color %d to %s, steers vpn %s, probes every %v\n\n", p.Name, p.Color, p.Endpoint, p.VPN, p.ProbeInterval)
		// The one-way delays (End.TSF far nodes) get a column only where a
		// list has them, so plain loopback policies keep their width. The
		// JSON omits a zero of the pair: with the other set, it was measured.
		hasOneWay := func(sl policyListAnswer) bool { return sl.HasMetrics && (sl.Forward != 0 || sl.Backward != 0) }
		oneWay := false
		for _, c := range p.Constituents {
			oneWay = oneWay || slices.ContainsFunc(c.Lists, hasOneWay)
		}
		header := []string{"COLOR", "NAME", "LIST", "SEGMENTS", "WEIGHT", "STATE", "DELAY ms", "JITTER ms", "LOSS %", "BANDWIDTH", "MEASURED"}
		if oneWay {
			header = slices.Insert(header, 7, "FWD/BWD ms")
		}
		t := newTable(w, header...)
		for _, c := range p.Constituents {
			for l, sl := range c.Lists {
				delay, jitter, loss, bw := "", "", "", ""
				if sl.HasMetrics {
					delay, jitter, loss = ms(sl.Delay), ms(sl.Jitter), strconv.FormatFloat(sl.LossPercent, 'f', 2, 64)
				}
				if sl.HasBandwidth {
					bw = sl.Bandwidth
				}
				state := sl.State
				if sl.ProbeError != "" {
					state += " (probe: " + sl.ProbeError + ")"
				}
				row := []string{fmt.Sprint(c.Color), c.Name, fmt.Sprint(l + 1), strings.Join(sl.Segments, ","), fmt.Sprint(sl.Weight), state, delay, jitter, loss, bw, stamp(sl.Measured)}
				if oneWay {
					fb := ""
					if hasOneWay(sl) {
						fb = ms(sl.Forward) + "/" + ms(sl.Backward)
					}
					row = slices.Insert(row, 7, fb)
				}
				t.row(row...)
			}
		}
		t.flush()
		fmt.Fprintln(w)
		t = newTable(w, "SERVICE", "SELECTOR", "TABLE", "ACTIVE", "SINCE", "INSTALLED")
		for _, s := range p.Services {
			var paths []string
			for _, x := range s.Paths {
				paths = append(paths, fmt.Sprintf("color %d list %d weight %d", x.Color, x.List, x.Weight))
			}
			active := fmt.Sprintf("priority %d: ", s.Priority)
			if s.Fallback {
				active = "fallback: "
			}
			active += strings.Join(paths, ", ")
			installed := "yes"
			if !s.Installed {
				installed = "pending"
			}
			t.row(s.Name, s.Selector, fmt.Sprint(s.Table), active, stamp(s.Since), installed)
		}
		t.flush()
		for _, s := range p.Services {
			if s.Fallback && s.Reason != "" {
				fmt.Fprintf(w, "  %s in fallback: %s\n", s.Name, oneLine(s.Reason))
			}
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "  note: %s\n", oneLine(n))
		}
		if len(p.Events) > 0 {
			fmt.Fprintln(w)
			t = newTable(w, "AT", "SERVICE", "EVENT", "TO", "REASON")
			for _, e := range p.Events[max(0, len(p.Events)-policyEventsShown):] {
				t.row(stamp(e.At), e.Service, e.Kind, e.To, e.Reason)
			}
			t.flush()
		}
	}
	return nil
}

// policyRestoreCommand is "policy restore POLICY SERVICE".
var policyRestoreCommand = &command{
	name:     "restore",
	summary:  "move a service back to its best priority now, without waiting for wait-to-restore",
	synopsis: "[--json] [--socket PATH] POLICY SERVICE",
	args:     []string{"POLICY", "SERVICE"},
	flags: func(fs *flag.FlagSet) func(io.Writer) error {
		d := addDaemonFlags(fs)
		return func(out io.Writer) error {
			policy, service := fs.Arg(0), fs.Arg(1)
			q := url.Values{"policy": {policy}, "service": {service}}
			body, err := call(d.socket, "POST", pathPolicyRestore+"?"+q.Encode())
			if err != nil {
				return err
			}
			if d.json {
				_, err = out.Write(body)
				return err
			}
			_, err = fmt.Fprintf(out, "policy %s service %s: restored to its best priority that meets the thresholds\n", policy, service)
			return err
		}
	},
}
