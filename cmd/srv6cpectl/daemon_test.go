package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/agent"
	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// The CLI repeats the agent's constants so as not to link the agent (and
// GoBGP) into itself; they must agree.
func TestConstantsMatchAgent(t *testing.T) {
	pairs := [][2]string{
		{defaultSocket, agent.DefaultControlSocket},
		{pathStatus, agent.ControlStatus}, {pathRoutes, agent.ControlRoutes}, {pathBGP, agent.ControlBGP},
		{pathCWMP, agent.ControlCWMP}, {pathSTAMP, agent.ControlSTAMP}, {pathPaths, agent.ControlPaths},
		{pathPolicy, agent.ControlPolicy}, {pathPolicyRestore, agent.ControlPolicyRestore}, {pathRefresh, agent.ControlRefresh},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("srv6cpectl uses %q where the agent has %q", p[0], p[1])
		}
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name   string
		render func([]byte) ([]byte, error)
		in     string
		want   string
	}{
		{
			name:   "status applied, fallback, previous, bgp",
			render: human(renderStatus),
			in: `{"state":"applied","prefix":"2001:db8:1200::/40","address":"2001:db8:1200::1","locator":"2001:db8:1205::/48","locator_name":"loc1",
				"sids":[{"name":"vpn1"}],"remote_routes":2,"capabilities":{"VRF":false,"EncapRed":true,"EndDT6Table":true},
				"fallback":["vpn1: End.DT4 installed as End.DX4 nh4 0.0.0.0 in the main table (kernel has no VRF)"],
				"last_apply":"2026-11-22T01:02:03Z","consecutive_failures":0,
				"previous":{"prefix":"2001:db8:1100::/40","locator":"2001:db8:1105::/48","applied":"2026-11-21T00:00:00Z"},
				"dataplane":{"VRFLessFallback":true,"ProbeNotes":["VRF device: operation not supported"],"Routes":5},
				"bgp":{"local_as":65001,"router_id":"192.0.2.1","peers":[{"address":"2001:db8::1","state":"established"},{"address":"2001:db8::2","state":"active"}],"exported":1,"imported":3},
				"updated":"2026-11-22T01:02:04Z"}`,
			want: `state          applied
prefix         2001:db8:1200::/40
address        2001:db8:1200::1
locator        2001:db8:1205::/48 (loc1)
sids           1 (srv6cpectl sid)
remote routes  2
capabilities   EncapRed EndDT6Table
fallback       vpn1: End.DT4 installed as End.DX4 nh4 0.0.0.0 in the main table (kernel has no VRF)
last apply     2026-11-22T01:02:03Z
previous run   prefix 2001:db8:1100::/40, locator 2001:db8:1105::/48, applied 2026-11-21T00:00:00Z
dataplane      5 routes, no VRF: VPNs in the main table
probe          VRF device: operation not supported
bgp            AS 65001, 1/2 peers established, 1 exported, 3 imported (srv6cpectl bgp)
updated        2026-11-22T01:02:04Z
`,
		},
		{
			name:   "status retrying, waiting fields empty, error on one line",
			render: human(renderStatus),
			in:     `{"state":"retrying","locator_name":"loc1","sids":null,"capabilities":{},"fallback":null,"last_error":"netlink:\nbusy","consecutive_failures":3,"next_retry":"2026-11-22T01:00:00+01:00","updated":"2026-11-22T00:00:00Z"}`,
			want: `state          retrying
prefix         -
address        -
locator        -
sids           0 (srv6cpectl sid)
remote routes  0
capabilities   -
last apply     -
last error     netlink:\nbusy
failures       3
next retry     2026-11-22T00:00:00Z
bgp            not configured
updated        2026-11-22T00:00:00Z
`,
		},
		{
			name:   "sid",
			render: human(renderSIDs),
			in:     `{"state":"applied","prefix":"2001:db8:1200::/40","locator":"2001:db8:1205::/48","locator_name":"loc1","sids":[{"name":"end","behavior":"End","installed":"End","function":1,"sid":"2001:db8:1205:1::"},{"name":"vpn4","behavior":"End.DT4","installed":"End.DX4 nh4 0.0.0.0","function":4,"sid":"2001:db8:1205:4::"}]}`,
			want: `locator 2001:db8:1205::/48 (loc1), from prefix 2001:db8:1200::/40

NAME  BEHAVIOR  FUNCTION  SID                INSTALLED
end   End       0x1       2001:db8:1205:1::  End
vpn4  End.DT4   0x4       2001:db8:1205:4::  End.DX4 nh4 0.0.0.0
`,
		},
		{
			name:   "sid before a prefix",
			render: human(renderSIDs),
			in:     `{"state":"waiting_for_prefix","locator_name":"loc1","sids":null}`,
			want:   "no locator yet (state waiting_for_prefix)\n",
		},
		{
			name:   "sid --json",
			render: sidJSON,
			in:     `{"state":"applied","prefix":"2001:db8:1200::/40","locator":"2001:db8:1205::/48","locator_name":"loc1","sids":[{"name":"a&b","behavior":"End","installed":"End","function":1,"sid":"2001:db8:1205:1::"}],"remote_routes":0}`,
			want:   `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:1205::/48","locator_name":"loc1","sids":[{"name":"a&b","behavior":"End","function":1,"sid":"2001:db8:1205:1::","installed":"End"}]}` + "\n",
		},
		{
			name:   "sid --json before a prefix",
			render: sidJSON,
			in:     `{"state":"waiting_for_prefix","locator_name":"loc1","sids":null}`,
			want:   `{"prefix":"","locator":"","locator_name":"loc1","sids":[]}` + "\n",
		},
		{
			name:   "routes",
			render: human(renderRoutes),
			in: `{"locators":["2001:db8:1205::/48"],"vrfs":[{"name":"vpn1","table":100}],
				"local_sids":[{"sid":"2001:db8:1205:4::","behavior":"End.DT4","table":100,"vrf":"vpn1","dev":"vpn1"},{"sid":"2001:db8:1205:6::","behavior":"End.DX6","nh6":"::","dev":"wan0"},{"sid":"2001:db8:1205:7::","behavior":"End.DT6","table":7,"dev":"wan0"},{"sid":"2001:db8:1205:8::","behavior":"End.DT6","dev":"wan0"}],
				"bsids":[{"sid":"2001:db8:1205:b::","behavior":"End.B6.Encaps","segments":["2001:db8:2::1","2001:db8:3::1"],"dev":"wan0"}],
				"encaps":[{"prefix":"10.2.0.0/16","vrf":"vpn1","mode":"encap","segments":["2001:db8:7705:4::"],"dev":"wan0"},{"prefix":"2001:db8:99::/48","mode":"encap.red","segments":["2001:db8:2::1","2001:db8:7705:6::"],"dev":"wan0"},{"prefix":"2001:db8:98::/48","table":7,"mode":"encap","segments":["2001:db8:7705:6::"]}]}`,
			want: `locators (unreachable):
  2001:db8:1205::/48

VRF   TABLE
vpn1  100

SID                BEHAVIOR  PARAMETERS             DEV
2001:db8:1205:4::  End.DT4   vrftable 100 vrf vpn1  vpn1
2001:db8:1205:6::  End.DX6   nh6 ::                 wan0
2001:db8:1205:7::  End.DT6   table 7                wan0
2001:db8:1205:8::  End.DT6   table main             wan0

BSID               BEHAVIOR       PARAMETERS                        DEV
2001:db8:1205:b::  End.B6.Encaps  segs 2001:db8:2::1,2001:db8:3::1  wan0

PREFIX            TABLE     MODE       SEGMENTS                         DEV
10.2.0.0/16       vrf vpn1  encap      2001:db8:7705:4::                wan0
2001:db8:99::/48  main      encap.red  2001:db8:2::1,2001:db8:7705:6::  wan0
2001:db8:98::/48  7         encap      2001:db8:7705:6::                -
`,
		},
		{
			name:   "no routes",
			render: human(renderRoutes),
			in:     `{"locators":[],"vrfs":[],"local_sids":[],"bsids":[],"encaps":[]}`,
			want:   "no routes installed\n",
		},
		{
			name:   "bgp not configured",
			render: human(renderBGP),
			in:     `{"configured":false}`,
			want:   "bgp: not configured (no bgp section)\n",
		},
		{
			name:   "bgp",
			render: human(renderBGP),
			in: `{"configured":true,"status":{"local_as":65001,"router_id":"192.0.2.1","peers":[{"address":"2001:db8::1","state":"established","established_at":"2026-11-22T01:00:00Z","prefixes_received":4,"prefixes_sent":2},{"address":"2001:db8::2","state":"active","prefixes_received":0,"prefixes_sent":0}],
				"exported":2,"imported":4,"installed":3,"skipped":["10.9.0.0/16 from 2001:db8::1: behaviour End"],"last_error":"peer down"}}`,
			want: `local AS 65001, router id 192.0.2.1
VPN routes: 2 exported, 4 imported, 3 installed
last error: peer down

PEER         STATE        UP SINCE              RECEIVED  SENT
2001:db8::1  established  2026-11-22T01:00:00Z  4         2
2001:db8::2  active       -                     0         0

not installed:
  10.9.0.0/16 from 2001:db8::1: behaviour End
`,
		},
		{
			name:   "cwmp idle",
			render: human(renderCWMP),
			in:     `{"acs_url":"","pending_events":[],"transfers":[]}`,
			want:   "ACS: none (the CWMP client has not run with an acs.url)\n\nno pending events\n\nno transfers\n",
		},
		{
			name:   "cwmp with events and transfers",
			render: human(renderCWMP),
			in: `{"acs_url":"https://acs.example/cwmp","pending_events":[{"code":"1 BOOT"},{"code":"M Reboot","command_key":"k1"}],
				"transfers":[{"id":3,"direction":"download","file_type":"1 Firmware Upgrade Image","command_key":"fw","state":"completed","not_before":"2026-11-22T01:00:00Z","complete_time":"2026-11-22T01:05:00Z","fault_code":9010,"fault_string":"download failed"}]}`,
			want: `ACS: https://acs.example/cwmp

PENDING EVENT  COMMAND KEY
1 BOOT         -
M Reboot       k1

TRANSFER  DIRECTION  FILE TYPE                 STATE      COMMAND KEY  NOT BEFORE            COMPLETED             FAULT
3         download   1 Firmware Upgrade Image  completed  fw           2026-11-22T01:00:00Z  2026-11-22T01:05:00Z  9010 download failed
`,
		},
		{
			name:   "no paths",
			render: human(renderPaths),
			in:     `{"paths":[]}`,
			want:   "paths: no dynamic paths configured\n",
		},
		{
			name:   "paths",
			render: human(renderPaths),
			in: `{"paths":[{"instance":1,"id":"fast","destination":"2001:db8:2200::1","segments":["2001:db8:e100::1","2001:db8:2205:6::"],"bsid":"2001:db8:1205:b5::","priority":1,"status":"Active",
				"active_path_info":"SegmentList=[\"2001:db8:e100::1\", \"2001:db8:2205:6::\"]; latency 0.032 ms"},
				{"id":"slow","destination":"2001:db8:2200::1","segments":["2001:db8:e200::1"],"bsid":"2001:db8:1205:b5::","priority":2,"status":"Standby","details":"BSID 2001:db8:1205:b5:: is held by path \"fast\" with a better priority"},
				{"id":"","segments":[],"priority":0,"status":"Incomplete","details":"PathID, SegmentList and TargetBSID must be set"}]}`,
			want: `PATH  DESTINATION       BSID                PRIORITY  SEGMENTS                            STATUS      LATENCY / DETAILS
fast  2001:db8:2200::1  2001:db8:1205:b5::  1         2001:db8:e100::1,2001:db8:2205:6::  Active      latency 0.032 ms
slow  2001:db8:2200::1  2001:db8:1205:b5::  2         2001:db8:e200::1                    Standby     BSID 2001:db8:1205:b5:: is held by path "fast" with a better priority
-     -                 -                   0         -                                   Incomplete  PathID, SegmentList and TargetBSID must be set
`,
		},
		{
			name:   "stamp tasks",
			render: human(renderSTAMP),
			in: `{"tasks":[{"id":"t1","role":"Sender","local_ip":"2001:db8:1200::1","peer_ip":"2001:db8:2200::1","port":862,"enabled":true,"running":true,"reports":"rpc",
				"last_report":{"latency_ms":"0.044","jitter_ms":"0.024","packet_loss_percent":"0.00","time":"2026-11-22T01:10:55Z"}},
				{"id":"t2","role":"Reflector","local_ip":"2001:db8:2200::1","peer_ip":"2001:db8:1200::1","port":862,"enabled":false}]}`,
			want: `TASK  ROLE       LOCAL             PEER              PORT  STATE     LATENCY ms  JITTER ms  LOSS %  REPORTED
t1    Sender     2001:db8:1200::1  2001:db8:2200::1  862   running   0.044       0.024      0.00    2026-11-22T01:10:55Z
t2    Reflector  2001:db8:2200::1  2001:db8:1200::1  862   disabled  -           -          -       -
`,
		},
		{
			name:   "stamp without tasks",
			render: human(renderSTAMP),
			in:     `{"tasks":[]}`,
			want:   "stamp: no monitoring tasks\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.render([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestRenderStatusEndTSF: the status table says where the End.TSF SID is,
// whether its probes get T2, and why not; nothing when it is not
// configured. The input is the agent's own Status, so a renamed JSON field
// fails here.
func TestRenderStatusEndTSF(t *testing.T) {
	sid := netip.MustParseAddr("2001:db8:1205:7::")
	const head = `state          applied
prefix         2001:db8:1200::/40
address        -
locator        2001:db8:1205::/48 (loc1)
sids           0 (srv6cpectl sid)
remote routes  0
capabilities   -
last apply     -
bgp            not configured
`
	const updated = "updated        2026-11-22T03:00:00Z\n"
	tests := []struct {
		name string
		tsf  *agent.EndTSFStatus
		want string
	}{
		{
			name: "not configured",
			want: head + updated,
		},
		{
			name: "stamping on two links",
			tsf:  &agent.EndTSFStatus{SID: sid, Installed: "End.DX6 nh6 ::", Stamping: true, Interfaces: []string{"wan0", "wan1"}},
			want: head + "end.tsf        SID 2001:db8:1205:7:: installed as End.DX6 nh6 ::, stamps T2 at ingress of wan0, wan1\n" + updated,
		},
		{
			name: "stamping, one link missing",
			tsf: &agent.EndTSFStatus{SID: sid, Installed: "End.DX6 nh6 ::", Stamping: true, Interfaces: []string{"wan0", "wan1"},
				Error: "tcx attach wan1: link not found"},
			want: head + "end.tsf        SID 2001:db8:1205:7:: installed as End.DX6 nh6 ::, stamps T2 at ingress of wan0, wan1\n" +
				"end.tsf error  tcx attach wan1: link not found\n" + updated,
		},
		{
			name: "no eBPF: plain loopback",
			tsf: &agent.EndTSFStatus{SID: sid, Installed: "End.DX6 nh6 ::", Interfaces: []string{"wan0"},
				Error: "End.TSF unavailable, plain loopback: bpf_ktime_get_tai_ns:\nnot supported"},
			want: head + "end.tsf        SID 2001:db8:1205:7:: installed as End.DX6 nh6 ::, plain loopback: no T2 stamped\n" +
				`end.tsf error  End.TSF unavailable, plain loopback: bpf_ktime_get_tai_ns:\nnot supported` + "\n" + updated,
		},
		{
			name: "SID taken by another route",
			tsf: &agent.EndTSFStatus{SID: sid, Interfaces: []string{"wan0"},
				Error: "End.TSF SID 2001:db8:1205:7:: not installed: it is the End.B6.Encaps of another route"},
			want: head + "end.tsf        SID 2001:db8:1205:7:: not installed, plain loopback: no T2 stamped\n" +
				"end.tsf error  End.TSF SID 2001:db8:1205:7:: not installed: it is the End.B6.Encaps of another route\n" + updated,
		},
		{
			name: "SID not derived",
			tsf:  &agent.EndTSFStatus{Error: "srv6.end_tsf: function 0x10000 does not fit"},
			want: head + "end.tsf        no SID (see the error)\nend.tsf error  srv6.end_tsf: function 0x10000 does not fit\n" + updated,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(agent.Status{State: agent.StateApplied, Prefix: netip.MustParsePrefix("2001:db8:1200::/40"),
				Locator: netip.MustParsePrefix("2001:db8:1205::/48"), LocatorName: "loc1", EndTSF: tt.tsf,
				Updated: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := human(renderStatus)(body)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestStatusJSONEndTSF: status --json passes the daemon's End.TSF state
// through whole.
func TestStatusJSONEndTSF(t *testing.T) {
	want := agent.EndTSFStatus{SID: netip.MustParseAddr("2001:db8:1205:7::"), Installed: "End.DX6 nh6 ::", Interfaces: []string{"wan0"},
		Error: "End.TSF unavailable, plain loopback: no tcx"}
	body, err := json.Marshal(agent.Status{State: agent.StateApplied, EndTSF: &want})
	if err != nil {
		t.Fatal(err)
	}
	sock := fakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--json", "--socket", sock}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	var got agent.Status
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got.EndTSF == nil || !reflect.DeepEqual(*got.EndTSF, want) {
		t.Errorf("status --json: %v, end_tsf %+v, want %+v", err, got.EndTSF, want)
	}
}

// fakeDaemon serves h on a control socket for the test's lifetime and
// returns the socket's path.
func fakeDaemon(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestRenderBadAnswer(t *testing.T) {
	for name, r := range map[string]func(*bytes.Buffer, []byte) error{
		"status": func(w *bytes.Buffer, b []byte) error { return renderStatus(w, b) },
		"routes": func(w *bytes.Buffer, b []byte) error { return renderRoutes(w, b) },
		"cwmp":   func(w *bytes.Buffer, b []byte) error { return renderCWMP(w, b) },
	} {
		var w bytes.Buffer
		err := r(&w, []byte(`{"state":`))
		if err == nil || !strings.Contains(err.Error(), "the daemon's "+name+" answer does not decode") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func human(f func(w io.Writer, b []byte) error) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		var buf bytes.Buffer
		err := f(&buf, b)
		return buf.Bytes(), err
	}
}

func TestDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	missing := filepath.Join(dir, "control.sock")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"status", "--socket", missing}, "srv6cpectl: the srv6cpe daemon is not running (no control socket at " + missing + ")\n"},
		{[]string{"sid", "--json", "--socket", missing}, "srv6cpectl: the srv6cpe daemon is not running (no control socket at " + missing + ")\n"},
		{[]string{"routes", "--socket", stale}, "srv6cpectl: the srv6cpe daemon is not running (nobody answers on the control socket " + stale + ")\n"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, &stdout, &stderr); code != exitBadValue {
			t.Errorf("%q: exit %d, want %d", tt.args, code, exitBadValue)
		}
		if stdout.Len() != 0 || stderr.String() != tt.want {
			t.Errorf("%q: stdout %q, stderr %q, want %q", tt.args, stdout.String(), stderr.String(), tt.want)
		}
	}
}

// TestAgainstAgent runs an agent with a static prefix and the fake
// dataplane (no root) serving its control socket, and the CLI against it.
func TestAgainstAgent(t *testing.T) {
	cfg, err := agent.ParseConfig([]byte(`
wan: {interface: wan0, prefix_source: static, static_prefix: "2001:db8:1200::/40", static_address: "2001:db8:1200::1"}
srv6: {locator_len: 48, function_len: 16, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
  - {name: vpn4, behavior: End.DT4, function: 0x4, vrf: vpn1, table: 100}
  - {name: vpn6, behavior: End.DT6, function: 0x6}
remote:
  - {prefix: "2001:db8:99::/48", segments: ["2001:db8:7705:6::"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	sock := filepath.Join(dir, "control.sock")
	cfg.ControlSocket = sock
	st, err := board.OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.WithLogger(zaptest.NewLogger(t)), agent.WithStateDir(st),
		agent.WithDataplane(dataplane.NewFake(dataplane.Capabilities{EndDT6Table: true, EncapRed: true})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s")
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(5 * time.Second)
	for a.Status().State != agent.StateApplied {
		if time.Now().After(deadline) {
			t.Fatalf("never applied: %+v", a.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v (%v), want a socket with mode 0600", fi.Mode(), err)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("control socket directory mode %v (%v), want 0700", di.Mode(), err)
	}

	ctl := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append(args, "--socket", sock), &stdout, &stderr); code != exitOK || stderr.Len() != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
		return stdout.String()
	}
	checks := []struct {
		args []string
		want []string
	}{
		{[]string{"status"}, []string{"state          applied\n", "locator        2001:db8:1205::/48 (loc1)\n", "sids           3 ", "remote routes  1\n",
			"fallback       vpn4: End.DT4 installed as End.DX4 nh4 0.0.0.0 in the main table (kernel has no VRF)\n", "bgp            not configured\n"}},
		{[]string{"sid"}, []string{"locator 2001:db8:1205::/48 (loc1), from prefix 2001:db8:1200::/40\n", "vpn4  End.DT4   0x4       2001:db8:1205:4::  End.DX4 nh4 0.0.0.0\n"}},
		{[]string{"routes"}, []string{"  2001:db8:1205::/48\n", "2001:db8:1205:6::  End.DT6", "2001:db8:99::/48  main   encap  2001:db8:7705:6::"}},
		{[]string{"bgp"}, []string{"bgp: not configured (no bgp section)\n"}},
		{[]string{"cwmp"}, []string{"ACS: none", "no pending events"}},
		{[]string{"stamp"}, []string{"stamp: no monitoring tasks\n"}},
		{[]string{"paths"}, []string{"paths: no dynamic paths configured\n"}},
		{[]string{"policy"}, []string{"policy: no SRv6 policies configured\n"}},
	}
	for _, c := range checks {
		out := ctl(c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output does not hold %q:\n%s", c.args, w, out)
			}
		}
	}

	// --json: one line, the daemon's own JSON.
	var status agent.Status
	out := ctl("status", "--json")
	if strings.Count(out, "\n") != 1 {
		t.Errorf("status --json is not one line: %q", out)
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || status.Locator != netip.MustParsePrefix("2001:db8:1205::/48") || len(status.SIDs) != 3 {
		t.Errorf("status --json: %v %+v", err, status)
	}
	var routes agent.ControlRoutesView
	if err := json.Unmarshal([]byte(ctl("routes", "--json")), &routes); err != nil || len(routes.LocalSIDs) != 3 || len(routes.Encaps) != 1 {
		t.Errorf("routes --json: %v %+v", err, routes)
	}
	var sid struct {
		Locator string `json:"locator"`
		SIDs    []struct {
			SID string `json:"sid"`
		} `json:"sids"`
	}
	if err := json.Unmarshal([]byte(ctl("sid", "--json")), &sid); err != nil || sid.Locator != "2001:db8:1205::/48" || len(sid.SIDs) != 3 || sid.SIDs[2].SID != "2001:db8:1205:6::" {
		t.Errorf("sid --json: %v %+v", err, sid)
	}

	// An error the daemon answers with is the command's one line.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"refresh", "--socket", sock}, &stdout, &stderr); code != exitBadValue || stdout.Len() != 0 ||
		stderr.String() != "srv6cpectl refresh: the daemon answered 409 Conflict: the prefix source cannot be refreshed (it is static)\n" {
		t.Errorf("refresh of a static source: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}

	stop()
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"status", "--socket", sock}, &stdout, &stderr); code != exitBadValue ||
		stderr.String() != "srv6cpectl: the srv6cpe daemon is not running (no control socket at "+sock+")\n" {
		t.Errorf("after the agent stopped: exit %d, stderr %q", code, stderr.String())
	}
}
