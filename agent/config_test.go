package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/dataplane"
)

func TestLoadExampleConfig(t *testing.T) {
	c, err := LoadConfig("../examples/srv6cpe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.WAN.Interface != "wan0" || c.WAN.PrefixSource != PrefixFromAddress || c.WAN.Debounce != 100*time.Millisecond {
		t.Errorf("wan = %+v", c.WAN)
	}
	if c.SRv6.LocatorLen != 48 || c.SRv6.FunctionLen != 16 || c.SRv6.Extension == nil || *c.SRv6.Extension != 5 {
		t.Errorf("srv6 = %+v", c.SRv6)
	}
	want := []struct {
		name, behavior string
		fn             Function
	}{{"end", "End", 1}, {"vpn1", "End.DT4", 4}, {"vpn6", "End.DT6", 6}}
	if len(c.Services) != len(want) {
		t.Fatalf("services = %+v", c.Services)
	}
	for i, w := range want {
		s := c.Services[i]
		if s.Name != w.name || s.Behavior != w.behavior || s.Function != w.fn {
			t.Errorf("services[%d] = %+v, want %+v", i, s, w)
		}
	}
	if got := c.Services[1].LANPrefixes; len(got) != 1 || got[0] != netip.MustParsePrefix("192.168.1.0/24") {
		t.Errorf("vpn1 lan_prefixes = %v", got)
	}
}

const minimal = `
wan: {interface: wan0}
srv6: {locator_len: 48}
services:
  - {name: vpn1, behavior: End.DT4, function: 4, vrf: vpn1, table: 100}
`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "info" || c.StateDir != DefaultStateDir || c.WAN.PrefixSource != PrefixFromAddress ||
		c.WAN.Debounce != DefaultDebounce || c.SRv6.FunctionLen != DefaultFunctionLen ||
		c.SRv6.EncapMode != EncapModeEncap || c.SRv6.LocatorName != DefaultLocatorName || c.SRv6.Extension != nil {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseConfigValues(t *testing.T) {
	c, err := ParseConfig([]byte(`
wan: {interface: wan0, prefix_source: static, static_prefix: 2001:db8:1200::/40, static_address: 2001:db8:1200::1}
srv6: {locator_len: 48, extension: "0x5"}
services:
  - {name: a, behavior: end.dt6, function: "0x10", table: 7}
  - {name: b, behavior: End.DX4, function: 17, nexthop: 192.0.2.1}
remote:
  - {prefix: 10.0.0.0/8, segments: [2001:db8:2205:4::, "2001:db8:2205::1:End"]}
  - {prefix: 10.1.0.0/16, table: 7, segments: '["2001:db8::1", "2001:db8::2"]', encap_mode: encap.red}
  - prefix: 10.2.0.0/16
    segments: 2001:db8::1, 2001:db8::2
`))
	if err != nil {
		t.Fatal(err)
	}
	if *c.SRv6.Extension != 5 || c.Services[0].Function != 16 || c.Services[1].Function != 17 {
		t.Errorf("function values: ext %d, %d, %d", *c.SRv6.Extension, c.Services[0].Function, c.Services[1].Function)
	}
	if c.WAN.StaticAddress != netip.MustParseAddr("2001:db8:1200::1") {
		t.Errorf("static_address = %s", c.WAN.StaticAddress)
	}
	segs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	for i, want := range [][]netip.Addr{
		segs("2001:db8:2205:4::", "2001:db8:2205::1"),
		segs("2001:db8::1", "2001:db8::2"),
		segs("2001:db8::1", "2001:db8::2"),
	} {
		got := c.Remote[i].Segments
		if len(got) != len(want) {
			t.Fatalf("remote[%d].segments = %v, want %v", i, got, want)
		}
		for j := range got {
			if got[j] != want[j] {
				t.Errorf("remote[%d].segments = %v, want %v", i, got, want)
			}
		}
	}
}

// A typo is an error that names the key and its line.
func TestParseConfigUnknownKey(t *testing.T) {
	_, err := ParseConfig([]byte("wan:\n  interface: wan0\n  prefix_sauce: address\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "prefix_sauce") {
		t.Fatalf("err = %v, want line 3 and prefix_sauce", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
}

func TestParseConfigDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"srv6: {extension: 0x}", "line 1"},
		{"srv6: {extension: -1}", "-1"},
		{"services: [{function: [1]}]", "must be a number"},
		{"remote: [{segments: 'x'}]", "line 1"},
		{"remote: [{segments: [[a]]}]", "segment must be a SID"},
		{"wan: {debounce: soon}", "soon"},
		{"wan: {static_prefix: 2001:db8::/400}", "2001:db8::/400"},
	} {
		_, err := ParseConfig([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.doc, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string // every one must appear in the error
	}{
		{"no wan interface", "srv6: {locator_len: 48}", []string{"wan.interface: must be set"}},
		{"long interface", "wan: {interface: abcdefghijklmnop}\nsrv6: {locator_len: 48}", []string{`wan.interface: "abcdefghijklmnop" is longer than 15`}},
		{"bad source", "wan: {interface: w, prefix_source: dhcp}\nsrv6: {locator_len: 48}", []string{`wan.prefix_source: "dhcp"`}},
		{"static without prefix", "wan: {interface: w, prefix_source: static}\nsrv6: {locator_len: 48}", []string{"wan.static_prefix: must be set"}},
		{"static address outside", "wan: {interface: w, prefix_source: static, static_prefix: 2001:db8::/40, static_address: 2001:db9::1}\nsrv6: {locator_len: 48}", []string{"wan.static_address: 2001:db9::1 is not inside"}},
		{"static prefix longer than locator", "wan: {interface: w, prefix_source: static, static_prefix: 2001:db8::/56}\nsrv6: {locator_len: 48}", []string{"srv6.locator_len: 48 is shorter than wan.static_prefix 2001:db8::/56"}},
		{"static key with address source", "wan: {interface: w, static_prefix: 2001:db8::/40}\nsrv6: {locator_len: 48}", []string{"wan.static_prefix/static_address: set"}},
		{"locator and function", "wan: {interface: w}\nsrv6: {locator_len: 120, function_len: 16}", []string{"srv6.locator_len + function_len: 120 + 16 exceeds 128"}},
		{"zero locator", "wan: {interface: w}\nsrv6: {locator_len: 0, function_len: 65}", []string{"srv6.locator_len: 0", "srv6.function_len: 65"}},
		{"encap mode", "wan: {interface: w}\nsrv6: {locator_len: 48, encap_mode: red}", []string{`srv6.encap_mode: "red"`}},
		{"log level", "log_level: loud\nwan: {interface: w}\nsrv6: {locator_len: 48}", []string{`log_level: "loud"`}},
		{"identity", "identity: {oui: xyz}\nwan: {interface: w}\nsrv6: {locator_len: 48}", []string{`"xyz"`}},
		{"services", `
wan: {interface: w}
srv6: {locator_len: 48, function_len: 8}
services:
  - {name: a, behavior: End.DT4, function: 4}
  - {name: a, behavior: End.X, function: 4}
  - {name: c, behavior: End, function: 0x100, table: 3}
  - {name: d, behavior: End.DX4, function: 5, nexthop: "2001:db8::1"}
  - {name: e, behavior: End.DX6, function: 6, nexthop: 192.0.2.1, vrf: v}
  - {behavior: Bogus, function: 0}
  - {name: g, behavior: End.DT6, function: 7, vrf: blue, table: 10}
  - {name: h, behavior: End.DT4, function: 8, vrf: blue, table: 11, lan_prefixes: [10.0.0.1/8]}
`, []string{
			"services[0] (a).vrf: End.DT4 needs a vrf name",
			`services[1] (a).name: "a" is also the name of services[0]`,
			"services[1] (a).behavior: End.X is not a service behaviour",
			"services[1] (a).function: 0x4 is also the function of service",
			"services[2] (c).function: 0x100 does not fit srv6.function_len 8 bits",
			"services[2] (c).behavior: End takes no table",
			"services[3] (d).nexthop: 2001:db8::1 is not an IPv4 address",
			"services[4] (e).nexthop: 192.0.2.1 is not an IPv6 address",
			"services[4] (e).vrf: only End.DT4, End.DT6 and End.DT46 belong to a VRF",
			`services[4] (e).table: vrf "v" needs its table number`,
			"services[5].name: must be set",
			`services[5].behavior: unknown`,
			"services[5].function: must be set and non-zero",
			`services[7] (h).table: 11, but service "g" puts vrf "blue" on table 10`,
			"services[7] (h).lan_prefixes[0]: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
		}},
		{"remote", `
wan: {interface: w}
srv6: {locator_len: 48}
services: [{name: v, behavior: End.DT4, function: 4, vrf: blue, table: 10}]
remote:
  - {prefix: 10.0.0.1/8, segments: [2001:db8::1]}
  - {prefix: 10.1.0.0/16, vrf: red, table: 3, segments: [2001:db8::1]}
  - {prefix: 10.2.0.0/16, encap_mode: fast}
  - {segments: [2001:db8::1]}
  - {prefix: 10.3.0.0/16, vrf: blue, segments: [2001:db8::1]}
  - {prefix: 10.3.0.0/16, vrf: blue, segments: [2001:db8::2]}
`, []string{
			"remote[0].prefix: 10.0.0.1/8 has host bits set",
			`remote[1].vrf/table: give one of them, not both (vrf "red", table 3)`,
			`remote[1].vrf: "red" is not the vrf of any service`,
			"remote[2].segments: must list at least one SID",
			`remote[2].encap_mode: "fast"`,
			"remote[3].prefix: must be set",
			"remote[5].prefix: 10.3.0.0/16 is also routed by remote[4]",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("wan: {interface: w}\nsrv6: {locator_len: 200}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "srv6.locator_len: 200") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file: no error")
	}
}

// ParseConfig never panics, and a config it accepts derives and maps onto
// a dataplane state (or fails with an error) without panicking either.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../examples/srv6cpe.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(vpnConfig))
	f.Add([]byte("remote: [{segments: '[\"2001:db8::1:End\", 2001:db8::2]'}]\nsrv6: {extension: 0xffffffffffffffff}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config Validate rejects: %v", err)
		}
		for _, caps := range []dataplane.Capabilities{noVRF, withVRF} {
			if d, err := derive(c, netip.MustParsePrefix("2001:db8:1200::/40")); err == nil {
				_, _ = desiredState(c, d, caps)
			}
		}
	})
}
