package agent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// bgpConfig is one VPN (vrf vpn) with an IPv4 and an IPv6 service, both
// exporting their LAN prefix and importing RT 65000:100.
const bgpConfig = `
wan: {interface: wan0}
srv6: {locator_len: 48, extension: 0x5}
bgp:
  local_as: 65000
  router_id: 10.0.0.1
  listen_port: -1
  neighbors: [{address: "2001:db8:ff::1", remote_as: 65000}]
services:
  - {name: end, behavior: End, function: 0x1}
  - {name: vpn4, behavior: End.DT4, function: 0x4, vrf: vpn, table: 100, route_distinguisher: "65000:1",
     import_rts: ["65000:100"], export_rts: ["65000:100"], lan_prefixes: [192.168.1.0/24]}
  - {name: vpn6, behavior: End.DT6, function: 0x6, vrf: vpn, table: 100, route_distinguisher: "65000:1",
     import_rts: ["65000:100"], export_rts: ["65000:100"], lan_prefixes: ["2001:db8:1201::/64"]}
`

func route(inst, prefix, sid, rd string) bgp.Route {
	b := srv6.EndDT6
	if p(prefix).Addr().Is4() {
		b = srv6.EndDT4
	}
	return bgp.Route{Instance: inst, Prefix: p(prefix), SID: a(sid), Behavior: b, NextHop: a("2001:db8:2200::1"), RD: rd}
}

func TestImportedEncaps(t *testing.T) {
	cfg := mustConfig(t, bgpConfig+`
remote:
  - {prefix: 10.9.0.0/16, vrf: vpn, segments: ["2001:db8:9905:4::"]}
`)
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	imported := []bgp.Route{
		route("vpn4", "192.168.2.0/24", "2001:db8:2205:4::", "65000:2"),
		// The same prefix from a second site: the lower SID wins, whatever the order.
		route("vpn4", "192.168.3.0/24", "2001:db8:3305:4::", "65000:3"),
		route("vpn4", "192.168.3.0/24", "2001:db8:2205:4::", "65000:2"),
		// Imported by both services: one route in the fallback's main table.
		route("vpn6", "192.168.2.0/24", "2001:db8:2205:4::", "65000:2"),
		route("vpn6", "2001:db8:2201::/64", "2001:db8:2205:6::", "65000:2"),
		// Skipped: covered by the static route, inside our LAN, holding our
		// locator, holding a remote SID, unknown service.
		route("vpn4", "10.9.0.0/16", "2001:db8:2205:4::", "65000:2"),
		route("vpn4", "192.168.1.128/25", "2001:db8:2205:4::", "65000:2"),
		route("vpn6", "2001:db8:1200::/40", "2001:db8:2205:6::", "65000:2"),
		route("vpn6", "2001:db8:2200::/40", "2001:db8:2205:6::", "65000:2"),
		route("gone", "192.168.9.0/24", "2001:db8:2205:4::", "65000:2"),
	}
	type enc struct {
		prefix, sid string
		table       int
		vrf         string
	}
	for _, tc := range []struct {
		name string
		caps dataplane.Capabilities
		want []enc
		skip int
	}{
		{"no VRF: main table", noVRF, []enc{
			{"192.168.2.0/24", "2001:db8:2205:4::", 0, ""},
			{"192.168.3.0/24", "2001:db8:2205:4::", 0, ""},
			{"2001:db8:2201::/64", "2001:db8:2205:6::", 0, ""},
		}, 5},
		{"VRF: the VPN's table", withVRF, []enc{
			{"192.168.2.0/24", "2001:db8:2205:4::", 100, "vpn"},
			{"192.168.3.0/24", "2001:db8:2205:4::", 100, "vpn"},
			{"2001:db8:2201::/64", "2001:db8:2205:6::", 100, "vpn"},
			// In a VRF table the overlay cannot capture the underlay.
			{"2001:db8:1200::/40", "2001:db8:2205:6::", 100, "vpn"},
			{"2001:db8:2200::/40", "2001:db8:2205:6::", 100, "vpn"},
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][]bgp.Route{imported, reversed(imported)} {
				got, skipped := importedEncaps(cfg, d, useVRF(tc.caps), order)
				var g []enc
				for _, e := range got {
					if len(e.Segments) != 1 || e.Dev != "wan0" || e.Mode != dataplane.Encap {
						t.Errorf("encap %+v: want one segment, dev wan0, mode encap", e)
					}
					g = append(g, enc{e.Prefix.String(), e.Segments[0].String(), e.Table, e.VRF})
				}
				slices.SortFunc(g, func(x, y enc) int { return strings.Compare(x.prefix, y.prefix) })
				want := slices.Clone(tc.want)
				slices.SortFunc(want, func(x, y enc) int { return strings.Compare(x.prefix, y.prefix) })
				if !slices.Equal(g, want) {
					t.Errorf("encaps = %+v\nwant %+v", g, want)
				}
				if len(skipped) != tc.skip {
					t.Errorf("skipped %d routes, want %d: %q", len(skipped), tc.skip, skipped)
				}
			}
			// And the whole desired state takes them, validated.
			want, err := desiredState(cfg, d, tc.caps, imported...)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(want.Encaps); n != len(tc.want)+1 {
				t.Errorf("desired has %d encap routes, want %d learned + 1 static", n, len(tc.want))
			}
		})
	}
}

func reversed(rs []bgp.Route) []bgp.Route {
	out := slices.Clone(rs)
	slices.Reverse(out)
	return out
}

func TestExportsFor(t *testing.T) {
	cfg := mustConfig(t, bgpConfig)
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	nh := a("2001:db8:1200::1")
	for _, tc := range []struct {
		caps   dataplane.Capabilities
		b4, b6 srv6.Behavior
	}{
		{noVRF, srv6.EndDX4, srv6.EndDX6},
		{withVRF, srv6.EndDT4, srv6.EndDT6},
	} {
		want, err := desiredState(cfg, d, tc.caps)
		if err != nil {
			t.Fatal(err)
		}
		ex := exportsFor(cfg, d, want, nh)
		if len(ex) != 2 {
			t.Fatalf("exports = %+v, want vpn4 and vpn6", ex)
		}
		st := srv6.SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 8, FunctionLen: 16}
		for i, w := range []struct {
			inst, sid, prefix string
			b                 srv6.Behavior
		}{{"vpn4", "2001:db8:1205:4::", "192.168.1.0/24", tc.b4}, {"vpn6", "2001:db8:1205:6::", "2001:db8:1201::/64", tc.b6}} {
			e := ex[i]
			if e.Instance != w.inst || e.SID != a(w.sid) || e.Behavior != w.b || e.RD != "65000:1" ||
				!slices.Equal(e.ExportRTs, []string{"65000:100"}) || !slices.Equal(e.Prefixes, []netip.Prefix{p(w.prefix)}) ||
				e.NextHop != nh || e.Structure != st {
				t.Errorf("export %d = %+v\nwant %s %s %s %s structure %+v", i, e, w.inst, w.sid, w.b, w.prefix, st)
			}
		}
		// The bgp package accepts them as they are.
		if err := bgp.NewFake().SetExports(ex); err != nil {
			t.Errorf("bgp rejects the exports: %v", err)
		}
	}
}

func TestBGPConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"bad RD", `route_distinguisher: "65000", export_rts: ["65000:1"]`, `route_distinguisher: route distinguisher "65000"`},
		{"bad import RT", `import_rts: ["x:1"]`, `import_rts[0]: route target "x:1"`},
		{"bad export RT", `route_distinguisher: "1:1", export_rts: ["1.2.3:4"]`, `export_rts[0]: route target "1.2.3:4"`},
		{"export without RD", `export_rts: ["65000:1"]`, "route_distinguisher: must be set to export"},
		{"RD without RT", `route_distinguisher: "65000:1"`, "export_rts: route_distinguisher 65000:1 is set"},
		{"wrong family", `route_distinguisher: "65000:1", export_rts: ["65000:1"], lan_prefixes: ["2001:db8:9::/64"]`, "lan_prefixes[0]: 2001:db8:9::/64 cannot be exported with End.DT4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := `
wan: {interface: wan0}
srv6: {locator_len: 48}
services:
  - {name: v, behavior: End.DT4, function: 4, vrf: v, table: 10, ` + tc.doc + `}
`
			_, err := ParseConfig([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"End with RT", `
wan: {interface: wan0}
srv6: {locator_len: 48}
services: [{name: e, behavior: End, function: 1, import_rts: ["1:1"]}]`, "End is not an L3VPN behaviour"},
		{"same RD and prefix twice", `
wan: {interface: wan0}
srv6: {locator_len: 48}
services:
  - {name: a, behavior: End.DX4, function: 1, route_distinguisher: "1:1", export_rts: ["1:1"], lan_prefixes: [10.0.0.0/8]}
  - {name: b, behavior: End.DX4, function: 2, route_distinguisher: "1:1", export_rts: ["1:1"], lan_prefixes: [10.0.0.0/8]}`,
			`10.0.0.0/8 with route_distinguisher 1:1 is also exported by service "a"`},
		{"bad bgp section", `
wan: {interface: wan0}
srv6: {locator_len: 48}
bgp: {local_as: 0, router_id: "2001:db8::1"}`, "bgp.local_as: must not be 0"},
		{"misspelt bgp key", `
wan: {interface: wan0}
srv6: {locator_len: 48}
bgp: {local_as: 1, router_id: 10.0.0.1, neighbours: []}`, "field neighbours not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// The agent with bgp.Fake and dataplane.Fake: exports follow the SIDs,
// imported routes become encap routes (RT-filtered by the fake, which runs
// the speaker's own import code), withdrawals remove them, renumbering
// re-exports, and the peers' state reaches the status.
func TestAgentBGP(t *testing.T) {
	fb := bgp.NewFake()
	var built []bgp.Config
	factory := func(c bgp.Config, _ *zap.Logger) (bgp.Service, error) {
		built = append(built, c)
		return fb, nil
	}
	dp := dataplane.NewFake(noVRF)
	cfg := mustConfig(t, bgpConfig)
	h := start(t, cfg, noVRF, t.TempDir(), WithDataplane(dp), WithBGP(factory), WithPeerPoll(10*time.Millisecond), WithBGPSettle(50*time.Millisecond, time.Second))

	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied && s.BGP != nil && s.BGP.Exported == 2 })
	exportSIDs := func() map[string]string {
		m := map[string]string{}
		for _, e := range fb.Exports() {
			m[e.Instance] = e.SID.String() + " " + e.Behavior.String() + " via " + e.NextHop.String()
		}
		return m
	}
	want := map[string]string{"vpn4": "2001:db8:1205:4:: End.DX4 via 2001:db8:1200::1", "vpn6": "2001:db8:1205:6:: End.DX6 via 2001:db8:1200::1"}
	if got := exportSIDs(); !equalStrings(got, want) {
		t.Errorf("exports = %v, want %v", got, want)
	}

	remote := []bgp.RemoteRoute{
		{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: p("192.168.2.0/24"), SID: a("2001:db8:2205:4::"), Behavior: srv6.Opaque, NextHop: a("2001:db8:2200::1")},
		{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: p("2001:db8:2201::/64"), SID: a("2001:db8:2205:6::"), Behavior: srv6.EndDX6, NextHop: a("2001:db8:2200::1")},
		// Another VPN's route: not imported.
		{RD: "65000:7", RTs: []string{"65000:700"}, Prefix: p("192.168.7.0/24"), SID: a("2001:db8:7705:4::"), Behavior: srv6.EndDT4, NextHop: a("2001:db8:7700::1")},
	}
	if err := fb.SetRemoteRoutes(remote); err != nil {
		t.Fatal(err)
	}
	encaps := func() []string {
		var out []string
		for _, r := range dp.Routes() {
			if strings.Contains(r, "encap seg6 ") {
				out = append(out, r)
			}
		}
		slices.Sort(out)
		return out
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s; encap routes %q, exports %v, status %+v", what, encaps(), exportSIDs(), h.agent.Status().BGP)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wantEncaps := []string{
		"192.168.2.0/24 encap seg6 mode encap segs [ 2001:db8:2205:4:: ] dev wan0",
		"2001:db8:2201::/64 encap seg6 mode encap segs [ 2001:db8:2205:6:: ] dev wan0",
	}
	waitFor("encap routes for the imported routes", func() bool { return slices.Equal(encaps(), wantEncaps) })
	st := h.waitStatus(func(s Status) bool { return s.BGP.Installed == 2 })
	// vpn4 and vpn6 share vrf vpn and their RTs: one import policy (vpn4's),
	// each route handed over once.
	if st.BGP.Imported != 2 || st.RemoteRoutes != 2 || len(st.BGP.Skipped) != 0 {
		t.Errorf("status bgp = %+v, remote_routes %d", st.BGP, st.RemoteRoutes)
	}

	// Withdrawal of the IPv6 route.
	if err := fb.SetRemoteRoutes(remote[:1]); err != nil {
		t.Fatal(err)
	}
	waitFor("the withdrawn route removed", func() bool { return slices.Equal(encaps(), wantEncaps[:1]) })

	// The remote CPE renumbers: the encap route follows its new SID.
	remote[0].SID = a("2001:db8:4405:4::")
	if err := fb.SetRemoteRoutes(remote[:1]); err != nil {
		t.Fatal(err)
	}
	waitFor("the encap route on the remote's new SID", func() bool {
		e := encaps()
		return len(e) == 1 && strings.Contains(e[0], "[ 2001:db8:4405:4:: ]")
	})

	// We renumber: new SIDs exported, the old ones gone from the kernel.
	h.src.send(t, "2001:db8:3300::/40", "2001:db8:3300::1")
	want = map[string]string{"vpn4": "2001:db8:3305:4:: End.DX4 via 2001:db8:3300::1", "vpn6": "2001:db8:3305:6:: End.DX6 via 2001:db8:3300::1"}
	waitFor("re-export with the new SIDs", func() bool { return equalStrings(exportSIDs(), want) })
	for _, r := range dp.Routes() {
		if strings.Contains(r, "2001:db8:1205:") {
			t.Errorf("old SID still in the kernel: %s", r)
		}
	}

	// Peer state into the status.
	fb.SetPeers([]bgp.PeerState{{Address: a("2001:db8:ff::1"), State: bgp.StateEstablished, Uptime: 3 * time.Second, PrefixesReceived: 1, PrefixesSent: 2}})
	st = h.waitStatus(func(s Status) bool { return len(s.BGP.Peers) == 1 && s.BGP.Peers[0].State == "established" })
	if pst := st.BGP.Peers[0]; pst.Address != a("2001:db8:ff::1") || pst.EstablishedAt.IsZero() || pst.PrefixesSent != 2 {
		t.Errorf("peer status = %+v", pst)
	}

	// A reload that drops the import RTs removes the learned routes; one
	// that changes the bgp section restarts the speaker with it.
	cfg2 := mustConfig(t, bgpConfig)
	cfg2.Services[1].ImportRTs, cfg2.Services[2].ImportRTs = nil, nil
	cfg2.BGP.RouterID = "10.0.0.2"
	if err := h.agent.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	waitFor("no encap routes without import RTs", func() bool { return len(encaps()) == 0 })
	if len(built) != 2 || built[1].RouterID != "10.0.0.2" {
		t.Errorf("speakers built with %+v, want a second one with router id 10.0.0.2", built)
	}
	h.waitStatus(func(s Status) bool { return s.BGP != nil && s.BGP.RouterID == "10.0.0.2" && s.BGP.Exported == 2 })

	// Without a bgp section: no speaker, no BGP status.
	cfg3 := mustConfig(t, bgpConfig)
	cfg3.BGP = nil
	if err := h.agent.Reload(cfg3); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(func(s Status) bool { return s.BGP == nil })
}

// Shutting down leaves the learned encap routes in the kernel, like every
// other route: the speaker's empty farewell set must not be applied.
func TestAgentBGPStopKeepsRoutes(t *testing.T) {
	fb := bgp.NewFake()
	dp := dataplane.NewFake(noVRF)
	h := start(t, mustConfig(t, bgpConfig), noVRF, t.TempDir(), WithDataplane(dp),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }))
	if err := fb.SetRemoteRoutes([]bgp.RemoteRoute{{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: p("192.168.2.0/24"),
		SID: a("2001:db8:2205:4::"), Behavior: srv6.EndDT4, NextHop: a("2001:db8:2200::1")}}); err != nil {
		t.Fatal(err)
	}
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied && s.BGP.Installed == 1 })
	applies := dp.Applies()
	h.stop()
	if dp.Applies() != applies {
		t.Errorf("%d Apply calls during shutdown, want none", dp.Applies()-applies)
	}
}

func equalStrings(x, y map[string]string) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if y[k] != v {
			return false
		}
	}
	return true
}

// The lab's configs (scripts/lab.sh) load and derive what the lab expects.
func TestLabExamples(t *testing.T) {
	for i, prefix := range []string{"2001:db8:1200::/40", "2001:db8:2200::/40"} {
		path := "../examples/lab/cpe" + string(rune('1'+i)) + ".yaml"
		cfg, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.BGP == nil || len(cfg.BGP.Neighbors) != 1 || len(importsFor(cfg)) != 1 {
			t.Errorf("%s: bgp %+v, imports %+v", path, cfg.BGP, importsFor(cfg))
		}
		d, err := derive(cfg, p(prefix))
		if err != nil {
			t.Fatal(err)
		}
		want, err := desiredState(cfg, d, noVRF)
		if err != nil {
			t.Fatal(err)
		}
		if ex := exportsFor(cfg, d, want, d.Prefix.Addr().Next()); len(ex) != 2 || bgp.NewFake().SetExports(ex) != nil {
			t.Errorf("%s: exports %+v", path, ex)
		}
	}
}

// After a restart the encap routes learned by the previous run stay in the
// kernel until BGP has settled (every neighbour up for the settle time):
// the table is not flushed while the sessions come back. A route learned
// meanwhile takes over its prefix at once.
func TestAgentBGPKeepsInstalledUntilSettled(t *testing.T) {
	fb := bgp.NewFake()
	fb.SetPeers([]bgp.PeerState{{Address: a("2001:db8:ff::1"), State: bgp.StateActive}})
	dp := dataplane.NewFake(noVRF)
	dp.SetWANInterface("wan0")
	old := func(prefix, sid string) dataplane.EncapRoute {
		return dataplane.EncapRoute{Prefix: p(prefix), Segments: []netip.Addr{a(sid)}, Dev: "wan0"}
	}
	if err := dp.Seed(dataplane.Desired{Encaps: []dataplane.EncapRoute{
		old("192.168.2.0/24", "2001:db8:2205:4::"), old("192.168.3.0/24", "2001:db8:3305:4::"),
	}}); err != nil {
		t.Fatal(err)
	}
	h := start(t, mustConfig(t, bgpConfig), noVRF, t.TempDir(), WithDataplane(dp),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }),
		WithPeerPoll(10*time.Millisecond), WithBGPSettle(300*time.Millisecond, 10*time.Second))
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	has := func(sub string) bool {
		return slices.ContainsFunc(dp.Routes(), func(r string) bool { return strings.Contains(r, sub) })
	}
	if !has("192.168.2.0/24 encap seg6 mode encap segs [ 2001:db8:2205:4:: ]") || !has("192.168.3.0/24") {
		t.Fatalf("the installed encap routes went before BGP settled: %q", dp.Routes())
	}
	// Learned again, with a new SID: it takes over.
	if err := fb.SetRemoteRoutes([]bgp.RemoteRoute{{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: p("192.168.2.0/24"),
		SID: a("2001:db8:4405:4::"), Behavior: srv6.EndDT4, NextHop: a("2001:db8:4400::1")}}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(func(Status) bool { return has("192.168.2.0/24 encap seg6 mode encap segs [ 2001:db8:4405:4:: ]") })
	time.Sleep(400 * time.Millisecond) // longer than the settle time, but the neighbour is not up
	if !has("192.168.3.0/24") {
		t.Fatalf("a kept route went while the neighbour was down: %q", dp.Routes())
	}
	fb.SetPeers([]bgp.PeerState{{Address: a("2001:db8:ff::1"), State: bgp.StateEstablished}})
	h.waitStatus(func(Status) bool { return !has("192.168.3.0/24") })
	if !has("192.168.2.0/24 encap seg6 mode encap segs [ 2001:db8:4405:4:: ]") {
		t.Errorf("the learned route went with the kept ones: %q", dp.Routes())
	}
}

// Without a WAN address (a static prefix without static_address) there is
// no next hop to advertise: nothing is exported and the status says why.
func TestAgentBGPNoNextHop(t *testing.T) {
	fb := bgp.NewFake()
	h := start(t, mustConfig(t, bgpConfig), noVRF, t.TempDir(), WithDataplane(dataplane.NewFake(noVRF)),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }))
	h.src.send(t, "2001:db8:1200::/40", "")
	st := h.waitStatus(func(s Status) bool { return s.State == StateApplied && s.BGP != nil && s.BGP.LastError != "" })
	if !strings.Contains(st.BGP.LastError, "no WAN IPv6 address") || st.BGP.Exported != 0 || len(fb.Exports()) != 0 {
		t.Errorf("status bgp = %+v, exports %+v", st.BGP, fb.Exports())
	}
	// The address arrives: exported, and the problem is gone.
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.BGP.Exported == 2 && s.BGP.LastError == "" })
}

func TestImportsFor(t *testing.T) {
	cfg := mustConfig(t, bgpConfig+`
  - {name: other4, behavior: End.DX4, function: 0x9, import_rts: ["65000:100"]}
  - {name: other6, behavior: End.DX6, function: 0xa, import_rts: ["65000:100"]}
`)
	got := importsFor(cfg)
	var names []string
	for _, p := range got {
		names = append(names, p.Instance)
	}
	// vpn6 shares vpn4's VRF and RTs; services without a VRF keep their own.
	if want := []string{"vpn4", "other4", "other6"}; !slices.Equal(names, want) {
		t.Errorf("import policies for %v, want %v", names, want)
	}
}

// failingSpeaker fails its first starts, as a speaker whose listen address
// is not there yet does.
type failingSpeaker struct {
	*bgp.Fake
	mu    sync.Mutex
	fails int
}

func (f *failingSpeaker) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return errors.New("bgp: start: listen tcp [2001:db8::1]:179: bind: cannot assign requested address")
	}
	f.mu.Unlock()
	return f.Fake.Run(ctx)
}

// A speaker that fails to start is started again; the status says why
// until it runs.
func TestAgentBGPSpeakerRestarts(t *testing.T) {
	fs := &failingSpeaker{Fake: bgp.NewFake(), fails: 2}
	fs.SetPeers([]bgp.PeerState{{Address: a("2001:db8:ff::1"), State: bgp.StateIdle}})
	h := start(t, mustConfig(t, bgpConfig), noVRF, t.TempDir(), WithDataplane(dataplane.NewFake(noVRF)),
		WithBGP(func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fs, nil }), WithPeerPoll(10*time.Millisecond),
		func(o *options) { o.bgp.restartDelay = 20 * time.Millisecond })
	st := h.waitStatus(func(s Status) bool { return s.BGP != nil && s.BGP.SpeakerError != "" })
	if !strings.Contains(st.BGP.SpeakerError, "cannot assign requested address") {
		t.Errorf("speaker error = %q", st.BGP.SpeakerError)
	}
	h.waitStatus(func(Status) bool { fs.mu.Lock(); defer fs.mu.Unlock(); return fs.fails == 0 })
	fs.SetPeers([]bgp.PeerState{{Address: a("2001:db8:ff::1"), State: bgp.StateActive}})
	h.waitStatus(func(s Status) bool { return s.BGP.SpeakerError == "" && s.BGP.Peers[0].State == "active" })
}
