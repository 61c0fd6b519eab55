package agent

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

var (
	noVRF   = dataplane.Capabilities{EndDT6Table: true, EncapRed: true}
	withVRF = dataplane.Capabilities{VRF: true, EndDT4: true, EndDT46: true, EndDT6Table: true, EncapRed: true}
)

func mustConfig(t testing.TB, doc string) Config {
	t.Helper()
	c, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func a(s string) netip.Addr   { return netip.MustParseAddr(s) }
func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

const vpnConfig = `
wan: {interface: wan0}
srv6: {locator_len: 48, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
  - {name: vpn1, behavior: End.DT4, function: 0x4, vrf: blue, table: 100}
  - {name: vpn6, behavior: End.DT6, function: 0x6}
  - {name: blue6, behavior: End.DT6, function: 0x7, vrf: blue, table: 100}
  - {name: dx, behavior: End.DX4, function: 0x8, nexthop: 192.0.2.1}
remote:
  - {prefix: 192.168.2.0/24, vrf: blue, segments: [2001:db8:2205:4::]}
  - {prefix: 198.51.100.0/24, table: 7, encap_mode: encap.red, segments: [2001:db8:2205:1::, 2001:db8:2205:4::]}
`

func TestDesiredState(t *testing.T) {
	cfg := mustConfig(t, vpnConfig)
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	remote := func(vrf string, table int) []dataplane.EncapRoute {
		return []dataplane.EncapRoute{
			{Prefix: p("192.168.2.0/24"), VRF: vrf, Table: table, Segments: []netip.Addr{a("2001:db8:2205:4::")}, Dev: "wan0"},
			{Prefix: p("198.51.100.0/24"), Table: 7, Mode: dataplane.EncapRed, Segments: []netip.Addr{a("2001:db8:2205:1::"), a("2001:db8:2205:4::")}, Dev: "wan0"},
		}
	}
	for _, tc := range []struct {
		name string
		caps dataplane.Capabilities
		want dataplane.Desired
	}{
		{"vrf", withVRF, dataplane.Desired{
			Locators: []netip.Prefix{p("2001:db8:1205::/48")},
			VRFs:     []dataplane.VRF{{Name: "blue", Table: 100}},
			LocalSIDs: []dataplane.LocalSID{
				{SID: a("2001:db8:1205:1::"), Behavior: srv6.End, Dev: "wan0"},
				{SID: a("2001:db8:1205:4::"), Behavior: srv6.EndDT4, VRF: "blue", Table: 100, Dev: "wan0"},
				{SID: a("2001:db8:1205:6::"), Behavior: srv6.EndDT6, Dev: "wan0"},
				{SID: a("2001:db8:1205:7::"), Behavior: srv6.EndDT6, VRF: "blue", Table: 100, Dev: "wan0"},
				{SID: a("2001:db8:1205:8::"), Behavior: srv6.EndDX4, NH4: a("192.0.2.1"), Dev: "wan0"},
			},
			Encaps: remote("blue", 100),
		}},
		{"no vrf: main-table fallback", noVRF, dataplane.Desired{
			Locators: []netip.Prefix{p("2001:db8:1205::/48")},
			LocalSIDs: []dataplane.LocalSID{
				{SID: a("2001:db8:1205:1::"), Behavior: srv6.End, Dev: "wan0"},
				{SID: a("2001:db8:1205:4::"), Behavior: srv6.EndDX4, NH4: a("0.0.0.0"), Dev: "wan0"},
				{SID: a("2001:db8:1205:6::"), Behavior: srv6.EndDT6, Dev: "wan0"},
				{SID: a("2001:db8:1205:7::"), Behavior: srv6.EndDX6, NH6: a("::"), Dev: "wan0"},
				{SID: a("2001:db8:1205:8::"), Behavior: srv6.EndDX4, NH4: a("192.0.2.1"), Dev: "wan0"},
			},
			Encaps: remote("", 0),
		}},
		{"vrf devices but no End.DT4: fallback", dataplane.Capabilities{VRF: true, EndDT6Table: true, EncapRed: true}, dataplane.Desired{
			Locators: []netip.Prefix{p("2001:db8:1205::/48")},
			LocalSIDs: []dataplane.LocalSID{
				{SID: a("2001:db8:1205:1::"), Behavior: srv6.End, Dev: "wan0"},
				{SID: a("2001:db8:1205:4::"), Behavior: srv6.EndDX4, NH4: a("0.0.0.0"), Dev: "wan0"},
				{SID: a("2001:db8:1205:6::"), Behavior: srv6.EndDT6, Dev: "wan0"},
				{SID: a("2001:db8:1205:7::"), Behavior: srv6.EndDX6, NH6: a("::"), Dev: "wan0"},
				{SID: a("2001:db8:1205:8::"), Behavior: srv6.EndDX4, NH4: a("192.0.2.1"), Dev: "wan0"},
			},
			Encaps: remote("", 0),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := desiredState(cfg, d, tc.caps)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("desiredState =\n%+v\nwant\n%+v", got, tc.want)
			}
			again, _ := desiredState(cfg, d, tc.caps)
			if !reflect.DeepEqual(got, again) {
				t.Error("desiredState is not deterministic")
			}
		})
	}
}

func TestDesiredStateErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		caps dataplane.Capabilities
		want []string
	}{
		{"two VPNs without VRF", `
wan: {interface: wan0}
srv6: {locator_len: 48}
services:
  - {name: vpn1, behavior: End.DT4, function: 4, vrf: blue, table: 100}
  - {name: vpn1b, behavior: End.DT6, function: 5, vrf: blue, table: 100}
  - {name: vpn2, behavior: End.DT4, function: 6, vrf: red, table: 200}
`, noVRF, []string{`services "vpn1" (vrf "blue") and "vpn2" (vrf "red") are two VPNs, but this kernel has no VRF support`}},
		{"End.DT46 without VRF", `
wan: {interface: wan0}
srv6: {locator_len: 48}
services: [{name: v, behavior: End.DT46, function: 4, vrf: blue, table: 100}]
`, noVRF, []string{`service "v": End.DT46 needs VRF support`}},
		{"End.DT46 with VRF but without DT46", `
wan: {interface: wan0}
srv6: {locator_len: 48}
services: [{name: v, behavior: End.DT46, function: 4, vrf: blue, table: 100}]
`, dataplane.Capabilities{VRF: true, EndDT4: true}, []string{`service "v": End.DT46 needs VRF support`}},
		{"End.DT6 table unsupported", `
wan: {interface: wan0}
srv6: {locator_len: 48}
services: [{name: v6, behavior: End.DT6, function: 6}]
`, dataplane.Capabilities{}, []string{`service "v6": this kernel cannot install End.DT6 with a table`}},
		{"encap.red unsupported", `
wan: {interface: wan0}
srv6: {locator_len: 48, encap_mode: encap.red}
remote: [{prefix: 10.0.0.0/8, encap_mode: encap.red, segments: [2001:db8::1]}]
`, dataplane.Capabilities{EndDT6Table: true}, []string{"srv6.encap_mode: encap.red is not supported", "remote[0].encap_mode: encap.red is not supported"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustConfig(t, tc.doc)
			d, err := derive(cfg, p("2001:db8:1200::/40"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = desiredState(cfg, d, tc.caps)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if err2 := checkKernel(cfg, tc.caps); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("checkKernel = %v, want the same error as desiredState", err2)
			}
		})
	}
}

func TestDeriveErrorNamesPrefix(t *testing.T) {
	cfg := mustConfig(t, vpnConfig)
	if _, err := derive(cfg, p("2001:db8:1200::/56")); err == nil || !strings.Contains(err.Error(), "56") {
		t.Fatalf("prefix longer than the locator: err = %v", err)
	}
}

func TestStatusOfFallback(t *testing.T) {
	cfg := mustConfig(t, vpnConfig)
	d, err := derive(cfg, p("2001:db8:1200::/40"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := desiredState(cfg, d, noVRF)
	if err != nil {
		t.Fatal(err)
	}
	sids := sidStatuses(d, want)
	got := map[string]string{}
	for _, s := range sids {
		got[s.Name] = s.Behavior + " -> " + s.Installed
	}
	exp := map[string]string{
		"end":   "End -> End",
		"vpn1":  "End.DT4 -> End.DX4 nh4 0.0.0.0",
		"vpn6":  "End.DT6 -> End.DT6 table main",
		"blue6": "End.DT6 -> End.DX6 nh6 ::",
		"dx":    "End.DX4 -> End.DX4 nh4 192.0.2.1",
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("sid statuses = %v, want %v", got, exp)
	}
	notes := fallbackNotes(sids, want)
	if len(notes) != 2 || !strings.Contains(notes[0], "vpn1: End.DT4 installed as End.DX4 nh4 0.0.0.0") || !strings.Contains(notes[1], "blue6") {
		t.Errorf("fallback notes = %q", notes)
	}
	vrfWant, _ := desiredState(cfg, d, withVRF)
	if n := fallbackNotes(sidStatuses(d, vrfWant), vrfWant); len(n) != 0 {
		t.Errorf("fallback notes with VRF = %q, want none", n)
	}
}
