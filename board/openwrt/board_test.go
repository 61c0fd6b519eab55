package openwrt

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/srv6cpe/srv6cpe/board"
)

func TestIdentityGLMT6000(t *testing.T) {
	sys := os.DirFS("testdata/gl-mt6000")
	facts, err := LoadFacts(sys)
	if err != nil {
		t.Fatal(err)
	}
	if facts.WANDevice != "eth1" || facts.WANMAC.String() != "94:83:c4:a1:b2:c3" || facts.Arch != "aarch64_cortex-a53" || facts.Distribution != "OpenWrt" {
		t.Errorf("facts %+v", facts)
	}
	if facts.VendorManufacturer != "" || facts.VendorProduct != "" || facts.VendorRevision != "" {
		t.Errorf("stock placeholders kept: %+v", facts)
	}
	got := Identity(board.IdentityConfig{}, facts, sys)
	want := board.Identity{
		Manufacturer:    "glinet",
		OUI:             "9483C4",
		ProductClass:    "GL.iNet GL-MT6000",
		SerialNumber:    "9483C4A1B2C3",
		HardwareVersion: "mediatek/filogic",
		SoftwareVersion: "23.05.3-r23809-234f1a2efa",
	}
	if got != want {
		t.Errorf("identity\n%+v\nwant\n%+v", got, want)
	}
	// The operator's values win field by field.
	got = Identity(board.IdentityConfig{Manufacturer: "Operator Inc", SoftwareVersion: "fw-7"}, facts, sys)
	if got.Manufacturer != "Operator Inc" || got.SoftwareVersion != "fw-7" || got.ProductClass != want.ProductClass {
		t.Errorf("operator override: %+v", got)
	}
}

func TestIdentityVendorBuildX86(t *testing.T) {
	sys := fstest.MapFS{
		"etc/board.json": {Data: []byte(`{
	"model": {"id": "qemu-standard-pc-i440fx-piix-1996", "name": "QEMU Standard PC (i440FX + PIIX, 1996)"},
	"network": {"lan": {"device": "eth0", "protocol": "static"}, "wan": {"device": "eth1", "protocol": "dhcp"}}
}`)},
		"sys/class/net/eth1/address": {Data: []byte("00:16:3e:12:34:56\n")},
		// No /etc/openwrt_release; the vendor build names itself here.
		"usr/lib/os-release": {Data: []byte(`NAME="Acme OS"
VERSION_ID="2.1"
BUILD_ID="r100-cafe"
OPENWRT_BOARD="x86/64"
OPENWRT_DEVICE_MANUFACTURER="Acme \"Networks\""
OPENWRT_DEVICE_PRODUCT='SR-100'
OPENWRT_DEVICE_REVISION=rev2 # board rev
`)},
	}
	facts, err := LoadFacts(sys)
	if err != nil {
		t.Fatal(err)
	}
	got := Identity(board.IdentityConfig{}, facts, sys)
	want := board.Identity{
		Manufacturer:    `Acme "Networks"`,
		OUI:             "00163E",
		ProductClass:    "SR-100",
		SerialNumber:    "00163E123456",
		HardwareVersion: "rev2",
		SoftwareVersion: "2.1-r100-cafe",
	}
	if got != want {
		t.Errorf("identity\n%+v\nwant\n%+v", got, want)
	}
	if facts.Target != "x86/64" || facts.Distribution != "Acme OS" {
		t.Errorf("facts %+v", facts)
	}
}

func TestIdentityFallbacks(t *testing.T) {
	tests := []struct {
		name    string
		sys     fstest.MapFS
		want    func(board.Identity) bool
		wantErr string
	}{
		{"nothing at all", fstest.MapFS{}, func(id board.Identity) bool {
			return id.Manufacturer == "srv6cpe" && id.ProductClass == "srv6cpe" && id.OUI == "000000"
		}, ""},
		{"model id without vendor, DSA wan port, no mac", fstest.MapFS{
			"etc/board.json": {Data: []byte(`{"model": {"id": "generic"}, "network": {"wan": {"ports": ["wan"], "protocol": "dhcp"}}}`)},
		}, func(id board.Identity) bool { return id.Manufacturer == "srv6cpe" && id.ProductClass == "generic" }, ""},
		{"bad JSON keeps the release facts", fstest.MapFS{
			"etc/board.json":      {Data: []byte(`{"model": `)},
			"etc/openwrt_release": {Data: []byte("DISTRIB_RELEASE='24.10.0'\nDISTRIB_REVISION='r28427-6df0e3d02a'\nDISTRIB_TARGET='ramips/mt7621'\n")},
		}, func(id board.Identity) bool {
			return id.SoftwareVersion == "24.10.0-r28427-6df0e3d02a" && id.HardwareVersion == "ramips/mt7621"
		}, "/etc/board.json: unexpected end of JSON input"},
		{"bad MAC", fstest.MapFS{
			"etc/board.json": {Data: []byte(`{"model": {"id": "a,b", "name": "B"}, "network": {"wan": {"device": "eth1", "macaddr": "zz:zz"}}}`)},
		}, func(id board.Identity) bool { return id.Manufacturer == "a" && id.ProductClass == "B" }, `network.wan.macaddr "zz:zz"`},
		{"device name cannot leave sysfs", fstest.MapFS{
			"etc/board.json":     {Data: []byte(`{"network": {"wan": {"device": "../../../etc"}}}`)},
			"etc/address":        {Data: []byte("00:16:3e:00:00:01")},
			"sys/class/net/x/ok": {Data: []byte("")},
		}, func(id board.Identity) bool { return id.OUI == "000000" }, ""},
		{"pre-21.02 board.json names the device ifname", fstest.MapFS{
			"etc/board.json":               {Data: []byte(`{"model": {"id": "tplink,archer-c7-v2", "name": "TP-Link Archer C7 v2"}, "network": {"wan": {"ifname": "eth0.2", "protocol": "dhcp"}}}`)},
			"sys/class/net/eth0.2/address": {Data: []byte("c0:4a:00:01:02:03\n")},
		}, func(id board.Identity) bool {
			return id.Manufacturer == "tplink" && id.OUI == "C04A00" && id.SerialNumber == "C04A00010203"
		}, ""},
		{"release only, no revision", fstest.MapFS{
			"etc/openwrt_release": {Data: []byte("DISTRIB_RELEASE='SNAPSHOT'\n")},
		}, func(id board.Identity) bool { return id.SoftwareVersion == "SNAPSHOT" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts, err := LoadFacts(tt.sys)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if id := Identity(board.IdentityConfig{}, facts, tt.sys); !tt.want(id) {
				t.Errorf("identity %+v (facts %+v)", id, facts)
			}
		})
	}
}

func TestParseShellVars(t *testing.T) {
	got := parseShellVars([]byte(`# comment
A='single $x \n'
B="double \"q\" \\ \$HOME \n"
C=bare\ word tail
export D="exported"
E=
not a var
F='unterminated
G=a#b
`))
	want := map[string]string{
		"A": `single $x \n`,
		"B": `double "q" \ $HOME \n`,
		"C": "bare word",
		"D": "exported",
		"E": "",
		"F": "unterminated",
		"G": "a#b",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d variables, want %d: %q", len(got), len(want), got)
	}
}
