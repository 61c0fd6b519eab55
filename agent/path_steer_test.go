package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestSteerPaths(t *testing.T) {
	d := srv6.Derivation{Locator: p("2001:db8:1205::/48"),
		SIDs: []srv6.ServiceSID{{Name: "vpn", SID: a("2001:db8:1205:6::")}}}
	path := func(id, dest, bsid string, prio uint32, segs ...string) PathConfig {
		pc := PathConfig{ID: id, Destination: dest, BSID: a(bsid), Priority: prio}
		for _, s := range segs {
			pc.Segments = append(pc.Segments, a(s))
		}
		return pc
	}
	// Two remote CPEs: B (next hop 2001:db8:2200::1, locator
	// 2001:db8:2205::/48) and C (2001:db8:3300::1, 2001:db8:3305::/48).
	imported := []bgp.Route{
		{Instance: "vpn", Prefix: p("2001:db8:2201::/64"), SID: a("2001:db8:2205:6::"), NextHop: a("2001:db8:2200::1")},
		{Instance: "vpn", Prefix: p("2001:db8:3301::/64"), SID: a("2001:db8:3305:6::"), NextHop: a("2001:db8:3300::1")},
	}
	learned := []dataplane.EncapRoute{
		{Prefix: p("2001:db8:2201::/64"), Segments: []netip.Addr{a("2001:db8:2205:6::")}, Dev: "wan0"},
		{Prefix: p("2001:db8:3301::/64"), Segments: []netip.Addr{a("2001:db8:3305:6::")}, Dev: "wan0"},
	}
	long := make([]string, srv6.MaxSegments)
	for i := range long {
		long[i] = "2001:db8:99::" + string(rune('a'+i%6))
	}
	for _, tc := range []struct {
		name   string
		paths  []PathConfig
		caps   dataplane.Capabilities
		want   [2]string // segments of each learned route
		status map[string]string
	}{
		{name: "no paths", want: [2]string{"2001:db8:2205:6::", "2001:db8:3305:6::"}},
		{name: "by next hop", caps: pathCaps,
			paths:  []PathConfig{path("viaT", "2001:db8:2200::1", "2001:db8:1205:b5::", 1, "2001:db8:99::1")},
			want:   [2]string{"2001:db8:99::1 2001:db8:2205:6::", "2001:db8:3305:6::"},
			status: map[string]string{"viaT": "Active: "}},
		{name: "by locator", caps: pathCaps,
			paths: []PathConfig{path("viaT", "2001:db8:3305::/48", "2001:db8:1205:b5::", 1, "2001:db8:99::1", "2001:db8:98::1")},
			want:  [2]string{"2001:db8:2205:6::", "2001:db8:99::1 2001:db8:98::1 2001:db8:3305:6::"}},
		{name: "a list ending in a learned service SID ends in each route's own", caps: pathCaps,
			paths: []PathConfig{path("full", "2001:db8:3305::/48", "2001:db8:1205:b5::", 1, "2001:db8:99::1", "2001:db8:2205:6::")},
			want:  [2]string{"2001:db8:2205:6::", "2001:db8:99::1 2001:db8:3305:6::"}},
		{name: "lowest priority wins, the other stands by", caps: pathCaps,
			paths: []PathConfig{
				path("slow", "2001:db8:2200::1", "2001:db8:1205:b5::", 20, "2001:db8:98::1"),
				path("fast", "2001:db8:2200::1", "2001:db8:1205:b6::", 10, "2001:db8:99::1")},
			want:   [2]string{"2001:db8:99::1 2001:db8:2205:6::", "2001:db8:3305:6::"},
			status: map[string]string{"fast": "Active: ", "slow": `Standby: destination 2001:db8:2200::1/128 is steered onto path "fast" with a better priority`}},
		{name: "address and locator of one CPE: best priority of both", caps: pathCaps,
			paths: []PathConfig{
				path("byaddr", "2001:db8:2200::1", "2001:db8:1205:b5::", 5, "2001:db8:98::1"),
				path("byloc", "2001:db8:2205::/48", "2001:db8:1205:b6::", 3, "2001:db8:99::1")},
			want: [2]string{"2001:db8:99::1 2001:db8:2205:6::", "2001:db8:3305:6::"}},
		{name: "device name matches nothing", caps: pathCaps,
			paths:  []PathConfig{path("named", "cpe-b", "2001:db8:1205:b5::", 1, "2001:db8:99::1")},
			want:   [2]string{"2001:db8:2205:6::", "2001:db8:3305:6::"},
			status: map[string]string{"named": `Active: DestinationDevice "cpe-b" is not an IPv6 address or prefix: no service traffic is steered onto this path`}},
		{name: "IPv4 destination matches nothing", caps: pathCaps,
			paths: []PathConfig{path("v4", "10.0.0.1", "2001:db8:1205:b5::", 1, "2001:db8:99::1")},
			want:  [2]string{"2001:db8:2205:6::", "2001:db8:3305:6::"}},
		{name: "BSID not installable: no steering", caps: noVRF,
			paths: []PathConfig{path("viaT", "2001:db8:2200::1", "2001:db8:1205:b5::", 1, "2001:db8:99::1")},
			want:  [2]string{"2001:db8:2205:6::", "2001:db8:3305:6::"}},
		{name: "too many segments with the remote SID", caps: pathCaps,
			paths:  []PathConfig{path("long", "2001:db8:2200::1", "2001:db8:1205:b5::", 1, long...)},
			want:   [2]string{"2001:db8:2205:6::", "2001:db8:3305:6::"},
			status: map[string]string{"long": "Active: segments: 16 SIDs plus the remote service SID are more than 16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{WAN: WANConfig{Interface: "wan0"}, Paths: PathsConfig{List: tc.paths}}
			before := slices.Clone(learned[0].Segments)
			got := steerPaths(&c, d, tc.caps, learned, imported)
			if !slices.Equal(learned[0].Segments, before) {
				t.Fatalf("steerPaths changed its input: %v", learned[0].Segments)
			}
			for i, r := range got {
				var s []string
				for _, x := range r.Segments {
					s = append(s, x.String())
				}
				if strings.Join(s, " ") != tc.want[i] || r.Prefix != learned[i].Prefix || r.Dev != "wan0" {
					t.Errorf("route %s: segments %v, want %s", r.Prefix, s, tc.want[i])
				}
			}
			for id, want := range tc.status {
				i := slices.IndexFunc(c.Paths.List, func(q PathConfig) bool { return q.ID == id })
				st, why := steerStatus(&c, d, tc.caps, i)
				if st+": "+why != want {
					t.Errorf("path %s: %s: %s, want %s", id, st, why, want)
				}
			}
		})
	}
}

// A path to the remote CPE's next hop steers its learned routes; a better
// path takes over, its removal hands back, and without paths the routes go
// straight to the remote SIDs again.
func TestAgentPathSteering(t *testing.T) {
	fb := bgp.NewFake()
	factory := func(bgp.Config, *zap.Logger) (bgp.Service, error) { return fb, nil }
	dp := dataplane.NewFake(pathCaps)
	cfg := mustConfig(t, bgpConfig)
	h := start(t, cfg, pathCaps, t.TempDir(), WithDataplane(dp), WithBGP(factory), WithPeerPoll(10*time.Millisecond), WithBGPSettle(20*time.Millisecond, time.Second))
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	if err := fb.SetRemoteRoutes([]bgp.RemoteRoute{
		{RD: "65000:2", RTs: []string{"65000:100"}, Prefix: p("2001:db8:2201::/64"), SID: a("2001:db8:2205:6::"), Behavior: srv6.EndDX6, NextHop: a("2001:db8:2200::1")},
	}); err != nil {
		t.Fatal(err)
	}
	encap := func() string {
		for _, r := range dp.Routes() {
			if strings.HasPrefix(r, "2001:db8:2201::/64 encap seg6 ") {
				return r
			}
		}
		return ""
	}
	waitSegs := func(what, segs string) {
		t.Helper()
		want := "2001:db8:2201::/64 encap seg6 mode encap segs [ " + segs + " ] dev wan0"
		deadline := time.Now().Add(5 * time.Second)
		for encap() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: encap route %q, want %q", what, encap(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitSegs("no path", "2001:db8:2205:6::")

	path := func(id string, prio uint32, seg string) PathConfig {
		return PathConfig{ID: id, Destination: "2001:db8:2200::1", BSID: a("2001:db8:1205:b" + id[len(id)-1:] + "::"), Priority: prio, Segments: Segments{a(seg)}}
	}
	reload := func(paths ...PathConfig) {
		t.Helper()
		c := mustConfig(t, bgpConfig)
		c.Paths.List = paths
		if err := h.agent.Reload(c); err != nil {
			t.Fatal(err)
		}
	}
	reload(path("p1", 20, "2001:db8:99::1"))
	waitSegs("path added", "2001:db8:99::1 2001:db8:2205:6::")
	reload(path("p1", 20, "2001:db8:99::1"), path("p2", 10, "2001:db8:98::1"))
	waitSegs("a better path added", "2001:db8:98::1 2001:db8:2205:6::")
	reload(path("p1", 5, "2001:db8:99::1"), path("p2", 10, "2001:db8:98::1"))
	waitSegs("reprioritised", "2001:db8:99::1 2001:db8:2205:6::")
	reload(path("p2", 10, "2001:db8:98::1"))
	waitSegs("the best path removed", "2001:db8:98::1 2001:db8:2205:6::")
	reload()
	waitSegs("every path removed", "2001:db8:2205:6::")
}
