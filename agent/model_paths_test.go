package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestActivePaths(t *testing.T) {
	a := netip.MustParseAddr
	d := srv6.Derivation{Locator: netip.MustParsePrefix("2001:db8:1205::/48"),
		SIDs: []srv6.ServiceSID{{Name: "vpn", SID: a("2001:db8:1205:6::")}}}
	segs := Segments{a("2001:db8:99::1")}
	path := func(id, bsid string, prio uint32) PathConfig {
		return PathConfig{ID: id, BSID: a(bsid), Priority: prio, Segments: segs}
	}
	for _, tc := range []struct {
		name     string
		paths    []PathConfig
		allowed  []netip.Prefix
		caps     dataplane.Capabilities
		active   []string          // ids installed, in config order
		problems map[string]string // id -> text of its problem
	}{
		{name: "inside the locator", paths: []PathConfig{path("p1", "2001:db8:1205:b5::", 1)}, caps: pathCaps, active: []string{"p1"}},
		{name: "lowest priority value wins", caps: pathCaps,
			paths:  []PathConfig{path("slow", "2001:db8:1205:b5::", 20), path("fast", "2001:db8:1205:b5::", 10), path("other", "2001:db8:1205:b6::", 5)},
			active: []string{"fast", "other"}},
		{name: "outside the locator", paths: []PathConfig{path("p1", "2001:db8:77::1", 1)}, caps: pathCaps,
			problems: map[string]string{"p1": "outside the locator 2001:db8:1205::/48"}},
		{name: "allowed BSID prefix", paths: []PathConfig{path("p1", "2001:db8:77::1", 1)}, caps: pathCaps,
			allowed: []netip.Prefix{netip.MustParsePrefix("2001:db8:77::/64")}, active: []string{"p1"}},
		{name: "a service SID", paths: []PathConfig{path("p1", "2001:db8:1205:6::", 1)}, caps: pathCaps,
			problems: map[string]string{"p1": `service "vpn"`}},
		{name: "the locator address", paths: []PathConfig{path("p1", "2001:db8:1205::", 1)}, caps: pathCaps,
			problems: map[string]string{"p1": "locator's own address"}},
		{name: "no End.B6.Encaps", paths: []PathConfig{path("p1", "2001:db8:1205:b5::", 1)}, caps: noVRF,
			problems: map[string]string{"p1": "no End.B6.Encaps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{WAN: WANConfig{Interface: "wan0"}, Paths: PathsConfig{BSIDPrefixes: tc.allowed, List: tc.paths}}
			ap, problems := activePaths(&c, d, tc.caps)
			var active []string
			for _, l := range pathBSIDs(&c, d, tc.caps) {
				if l.Behavior != srv6.EndB6Encaps || l.Dev != "wan0" || len(l.Segments) != 1 || l.Segments[0] != segs[0] {
					t.Errorf("BSID route %+v, want End.B6.Encaps on wan0 with %v", l, segs)
				}
				active = append(active, c.Paths.List[ap[l.SID]].ID)
			}
			if strings.Join(active, ",") != strings.Join(tc.active, ",") {
				t.Errorf("installed %v, want %v", active, tc.active)
			}
			if len(problems) != len(tc.problems) {
				t.Errorf("problems %v, want %v", problems, tc.problems)
			}
			for i, err := range problems {
				if want := tc.problems[tc.paths[i].ID]; want == "" || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: problem %v, want one saying %q", tc.paths[i].ID, err, want)
				}
			}
		})
	}
}

func TestValidatePaths(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string // "" = valid
	}{
		{`{list: [{id: p1, segments: ["2001:db8::1:End"], bsid: "2001:db8:1205::b5", priority: 1}]}`, ""},
		{`{list: [{id: p1, segments: "2001:db8::1, 2001:db8::2", bsid: "2001:db8:1205::b5"}, {id: p2, segments: ["2001:db8::3"], bsid: "2001:db8:1205::b5", priority: 1}]}`, ""},
		{`{list: [{segments: ["2001:db8::1"], bsid: "2001:db8:1205::b5"}]}`, "paths.list[0].id: must be set"},
		{`{list: [{id: p1, segments: ["2001:db8::1"], bsid: "2001:db8:1205::b5"}, {id: p1, segments: ["2001:db8::1"], bsid: "2001:db8:1205::b6"}]}`, `"p1" is also the id`},
		{`{list: [{id: p1, bsid: "2001:db8:1205::b5"}]}`, "segments: must list at least one SID"},
		{`{list: [{id: p1, segments: ["2001:db8::1"]}]}`, "bsid: must be set"},
		{`{list: [{id: p1, segments: ["2001:db8::1"], bsid: "ff02::1"}]}`, "ff02::1 is not a unicast address"},
		{`{list: [{id: p1, segments: ["2001:db8::1"], bsid: "2001:db8:1205::b5"}, {id: p2, segments: ["2001:db8::3"], bsid: "2001:db8:1205::b5"}]}`, "same priority"},
		{`{bsid_prefixes: ["2001:db8::1/64"]}`, "not a masked IPv6 prefix"},
	} {
		_, err := ParseConfig([]byte("wan: {interface: wan0}\nsrv6: {locator_len: 48}\npaths: " + tc.doc + "\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.doc, err, tc.want)
		}
	}
}

// What a controller writes is checked before it is set: a value the check
// lets through must set without error, and what a parameter reads back
// must pass its own check (a GPV answer written back is accepted).
func FuzzFieldValues(f *testing.F) {
	for _, s := range []string{"", "vpn1", "L3VPN", "End.DT4", "0x10", "65000:1", "65000:1,192.0.2.1:7", "2001:db8::/64,192.0.2.0/24",
		"2001:db8::1:End", `["2001:db8::1", "2001:db8::2:End"]`, "2001:db8::b5:BSID", "SRH", "4294967295", "blue"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, fd := range serviceFields {
			if fd.typ != 0 { // numbers: the tree's type check comes first
				continue
			}
			var s modelService
			if back := fd.get(s); fd.check(back) != nil {
				t.Errorf("%s of a new service reads %q, which fails its check: %v", fd.name, back, fd.check(back))
			}
			if fd.check(v) == nil {
				if err := fd.set(&s, v); err != nil {
					t.Errorf("%s: %q passed the check but set failed: %v", fd.name, v, err)
				}
				if back := fd.get(s); fd.check(back) != nil {
					t.Errorf("%s: set %q reads back %q, which fails its check: %v", fd.name, v, back, fd.check(back))
				}
			}
		}
		for _, fd := range pathFields {
			if fd.typ != 0 {
				continue
			}
			var p modelPath
			if back := fd.get(p); fd.check(back) != nil {
				t.Errorf("%s of a new path reads %q, which fails its check: %v", fd.name, back, fd.check(back))
			}
			if fd.check(v) == nil {
				if err := fd.set(&p, v); err != nil {
					t.Errorf("%s: %q passed the check but set failed: %v", fd.name, v, err)
				}
				if back := fd.get(p); fd.check(back) != nil {
					t.Errorf("%s: set %q reads back %q, which fails its check: %v", fd.name, v, back, fd.check(back))
				}
			}
		}
	})
}
