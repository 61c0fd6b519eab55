package openwrt_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/agent"
	"github.com/srv6cpe/srv6cpe/board/openwrt"
)

// shippedConfig is the UCI file the feed package installs.
const shippedConfig = "../../scripts/openwrt/srv6cpe/files/srv6cpe.config"

func parse(t *testing.T, name, text string) *openwrt.File {
	t.Helper()
	f, err := openwrt.ParseUCI(name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func resolveTo(dev string) openwrt.ConvertOptions {
	return openwrt.ConvertOptions{ResolveDevice: func(iface string) (string, error) {
		if iface != "wan6" {
			return "", errors.New("unexpected interface " + iface)
		}
		return dev, nil
	}}
}

// TestShippedConfigLoads converts the feed's default /etc/config/srv6cpe
// and loads the result with the daemon's own config loader.
func TestShippedConfigLoads(t *testing.T) {
	b, err := os.ReadFile(shippedConfig)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openwrt.ParseUCI("srv6cpe", b)
	if err != nil {
		t.Fatal(err)
	}
	y, err := openwrt.DaemonConfig(f, resolveTo("pppoe-wan"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.ParseConfig(y)
	if err != nil {
		t.Fatalf("agent refuses the converted default config: %v\n%s", err, y)
	}
	if c.WAN.Interface != "pppoe-wan" || c.WAN.PrefixSource != agent.PrefixFromRoute || c.WAN.Debounce != 200*time.Millisecond ||
		c.SRv6.LocatorLen != 64 || c.SRv6.FunctionLen != 16 || c.StateDir != "/etc/srv6cpe" ||
		len(c.Services) != 1 || c.Services[0].Name != "end" || c.Services[0].Function != 1 {
		t.Errorf("converted config %+v\n%s", c, y)
	}
}

// TestEveryOptionReachesTheDaemon sets every option the schema knows and
// checks each arrives in agent.Config with its value.
func TestEveryOptionReachesTheDaemon(t *testing.T) {
	f := parse(t, "srv6cpe", `
config srv6cpe 'main'
	option enabled '0'
	option log_level 'debug'
	option state_dir '/etc/srv6cpe'

config identity 'identity'
	option manufacturer 'Acme "Networks"'
	option oui '00A0C9'
	option product_class 'SR-100'
	option serial_number 'CPE0001'
	option hardware_version 'rev2'
	option software_version '1.2.3'

config wan 'wan'
	option netifd_interface 'wanb'
	option device 'eth1'
	option prefix_source 'static'
	option static_prefix '2001:db8:1200::/40'
	option static_address '2001:db8:1200::1'
	option debounce '1s'

config srv6 'srv6'
	option locator_len '48'
	option function_len '16'
	option extension '0x5'
	option encap_mode 'encap.red'
	option locator_name 'cpe-loc'

config service
	option name 'vpn1'
	option behavior 'End.DT4'
	option function '0x4'
	option vrf 'vpn1'
	option table '100'
	list lan_prefix '192.168.1.0/24'
	list lan_prefix '192.168.2.0/24'

config service
	option name 'dx6'
	option behavior 'End.DX6'
	option function '17'
	option nexthop '2001:db8::99'
	option lan_prefix '2001:db8:99::/48'

config remote
	option prefix '10.0.0.0/8'
	option vrf 'vpn1'
	list segment '2001:db8:2205:4::'
	list segment '2001:db8:2206::1:End'
	option encap_mode 'encap'

config remote
	option prefix '10.1.0.0/16'
	option table '7'
	option segment '2001:db8::1'
`)
	y, err := openwrt.DaemonConfig(f, openwrt.ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.ParseConfig(y)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	id := c.Identity
	checks := []struct {
		what string
		ok   bool
	}{
		{"log_level", c.LogLevel == "debug"},
		{"state_dir", c.StateDir == "/etc/srv6cpe"},
		{"identity", id.Manufacturer == `Acme "Networks"` && id.OUI == "00A0C9" && id.ProductClass == "SR-100" &&
			id.SerialNumber == "CPE0001" && id.HardwareVersion == "rev2" && id.SoftwareVersion == "1.2.3"},
		{"wan", c.WAN.Interface == "eth1" && c.WAN.PrefixSource == agent.PrefixStatic &&
			c.WAN.StaticPrefix == netip.MustParsePrefix("2001:db8:1200::/40") &&
			c.WAN.StaticAddress == netip.MustParseAddr("2001:db8:1200::1") && c.WAN.Debounce == time.Second},
		{"srv6", c.SRv6.LocatorLen == 48 && c.SRv6.FunctionLen == 16 && c.SRv6.Extension != nil && *c.SRv6.Extension == 5 &&
			c.SRv6.EncapMode == agent.EncapModeRed && c.SRv6.LocatorName == "cpe-loc"},
		{"services", len(c.Services) == 2},
		{"service vpn1", len(c.Services) == 2 && c.Services[0].Name == "vpn1" && c.Services[0].Behavior == "End.DT4" &&
			c.Services[0].Function == 4 && c.Services[0].VRF == "vpn1" && c.Services[0].Table == 100 &&
			len(c.Services[0].LANPrefixes) == 2 && c.Services[0].LANPrefixes[1] == netip.MustParsePrefix("192.168.2.0/24")},
		{"service dx6", len(c.Services) == 2 && c.Services[1].Function == 17 && c.Services[1].NextHop == netip.MustParseAddr("2001:db8::99") &&
			len(c.Services[1].LANPrefixes) == 1},
		{"remote", len(c.Remote) == 2 && c.Remote[0].VRF == "vpn1" && len(c.Remote[0].Segments) == 2 &&
			c.Remote[0].Segments[1] == netip.MustParseAddr("2001:db8:2206::1") && c.Remote[0].EncapMode == "encap" &&
			c.Remote[1].Table == 7 && len(c.Remote[1].Segments) == 1},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s did not arrive: %+v", ch.what, c)
		}
	}
}

func TestDaemonConfigErrors(t *testing.T) {
	base := "config wan 'wan'\n\toption device 'eth1'\nconfig srv6 'srv6'\n\toption locator_len '64'\n"
	tests := []struct {
		name, uci string
		opt       openwrt.ConvertOptions
		want      []string
	}{
		{"unknown option", base + "config service\n\toption name 'a'\n\toption behaviour 'End'\n", openwrt.ConvertOptions{},
			[]string{`cfg:7: service option behaviour "End": unknown option (known: name, behavior,`}},
		{"unknown section", base + "config bgp 'bgp'\n", openwrt.ConvertOptions{},
			[]string{`cfg:5: unknown section type "bgp"`}},
		{"list where one value goes", base + "config srv6cpe 'main'\n\tlist log_level 'info'\n", openwrt.ConvertOptions{},
			[]string{`cfg:6: srv6cpe 'main' option log_level "info": takes one value`}},
		{"bad number", "config wan\n\toption device 'x'\nconfig srv6\n\toption locator_len 'sixty'\nconfig service\n\toption table '1e3'\n", openwrt.ConvertOptions{},
			[]string{`cfg:4: srv6 option locator_len "sixty": not a decimal number`, `cfg:6: service option table "1e3": not a decimal number`}},
		{"second wan", base + "config wan\n", openwrt.ConvertOptions{},
			[]string{`cfg:5: a second "wan" section (the first is on line 1)`}},
		{"no device, no resolver", "config srv6 'srv6'\n\toption locator_len '64'\n", openwrt.ConvertOptions{},
			[]string{`cfg: wan: set option device`}},
		{"no device, netifd down", "config wan 'wan'\n\toption netifd_interface 'wanx'\n", openwrt.ConvertOptions{
			ResolveDevice: func(string) (string, error) { return "", errors.New("Command failed: Not found") }},
			[]string{`cfg: wan: no option device, and the device of netifd interface "wanx" is unknown (set option device): Command failed: Not found`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openwrt.DaemonConfig(parse(t, "cfg", tt.uci), tt.opt)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
		})
	}
}

// TestDaemonConfigNetifdSource: prefix_source netifd names the interface
// for the daemon (the key the agent needs to add for this source).
func TestDaemonConfigNetifdSource(t *testing.T) {
	y, err := openwrt.DaemonConfig(parse(t, "cfg", "config wan\n\toption device 'wan'\n\toption prefix_source 'netifd'\n"), openwrt.ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "prefix_source: netifd\n    netifd_interface: wan6\n") {
		t.Errorf("YAML:\n%s", y)
	}
}

type ubusRunner struct{ out string }

func (u ubusRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	if name != "ubus" || strings.Join(args, " ") != "call network.interface.wan6 status" {
		return nil, errors.New("unexpected command " + name + " " + strings.Join(args, " "))
	}
	return []byte(u.out), nil
}

func TestWriteDaemonConfig(t *testing.T) {
	dir := t.TempDir()
	uci := filepath.Join(dir, "srv6cpe")
	b, err := os.ReadFile(shippedConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(uci, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run", "srv6cpe.yaml")
	ctx := context.Background()
	if err := openwrt.WriteDaemonConfig(ctx, uci, out, ubusRunner{`{"up": true, "l3_device": "pppoe-wan", "device": "wan"}`}); err != nil {
		t.Fatal(err)
	}
	c, err := agent.LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.WAN.Interface != "pppoe-wan" {
		t.Errorf("wan.interface %q", c.WAN.Interface)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, %v", fi.Mode(), err)
	}
	good, _ := os.ReadFile(out)

	// Interface down: netifd still names the configured device.
	if err := openwrt.WriteDaemonConfig(ctx, uci, out, ubusRunner{`{"up": false, "device": "wan"}`}); err != nil {
		t.Fatal(err)
	}
	if c, err := agent.LoadConfig(out); err != nil || c.WAN.Interface != "wan" {
		t.Errorf("down: %v, %+v", err, c.WAN)
	}
	if err := os.WriteFile(out, good, 0o600); err != nil {
		t.Fatal(err)
	}

	// A bad edit leaves the previous YAML in place.
	if err := os.WriteFile(uci, []byte("config srv6 'srv6'\n\toption locator_len 'x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = openwrt.WriteDaemonConfig(ctx, uci, out, ubusRunner{`{"up": true, "l3_device": "wan"}`})
	if err == nil || !strings.Contains(err.Error(), uci+":2: EOF with unterminated '") {
		t.Errorf("error %v", err)
	}
	if now, _ := os.ReadFile(out); string(now) != string(good) {
		t.Error("a failed conversion changed the daemon config")
	}
	// No device anywhere.
	if err := os.WriteFile(uci, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = openwrt.WriteDaemonConfig(ctx, uci, out, ubusRunner{`{"up": false}`})
	if err == nil || !strings.Contains(err.Error(), `netifd interface "wan6" reports no device`) {
		t.Errorf("error %v", err)
	}
}
