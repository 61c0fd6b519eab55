package board

import (
	"net"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
	"unicode/utf8"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestLoadIdentity(t *testing.T) {
	globalMAC := net.HardwareAddr{0x00, 0xa0, 0xc9, 0x12, 0x34, 0x56}
	localMAC := net.HardwareAddr{0x02, 0xa0, 0xc9, 0x12, 0x34, 0x56}
	x86 := fstest.MapFS{
		dmiProductName:   file("Standard PC (Q35 + ICH9, 2009)\n"),
		dmiProductSerial: file("  SN-4711/B \n"),
		dmiBoardVersion:  file("rev 1.2\n"),
		machineID:        file("0123456789abcdef0123456789abcdef\n"),
	}
	arm := fstest.MapFS{
		dtModel:      file("Raspberry Pi 4 Model B Rev 1.4\x00"),
		dtSerial:     file("10000000abcdef01\x00"),
		dtCompatible: file("raspberrypi,4-model-b\x00brcm,bcm2711\x00"),
		machineID:    file("0123456789abcdef0123456789abcdef\n"),
	}
	placeholderDMI := fstest.MapFS{
		dmiProductName:   file("To Be Filled By O.E.M.\n"),
		dmiProductSerial: file("System Serial Number\n"),
		dmiBoardVersion:  file("Default string\n"),
		machineID:        file("0123456789abcdef0123456789abcdef\n"),
	}
	zeroSerial := fstest.MapFS{dmiProductSerial: file("00000000\n")}
	onlyMachineID := fstest.MapFS{machineID: file("fedcba9876543210fedcba9876543210\n")}

	tests := []struct {
		name string
		cfg  IdentityConfig
		sys  fstest.MapFS
		mac  net.HardwareAddr
		want Identity
	}{
		{
			name: "config wins over everything",
			cfg: IdentityConfig{Manufacturer: " ACME ", OUI: "00:11:22", ProductClass: "CPE-X", SerialNumber: "S1",
				HardwareVersion: "hw2", SoftwareVersion: "1.0.0"},
			sys: x86, mac: globalMAC,
			want: Identity{"ACME", "001122", "CPE-X", "S1", "hw2", "1.0.0"},
		},
		{
			name: "x86 DMI",
			sys:  x86, mac: globalMAC,
			want: Identity{"srv6cpe", "00A0C9", "Standard PC (Q35 + ICH9, 2009)", "SN-4711/B", "rev 1.2", "dev"},
		},
		{
			name: "ARM device tree",
			sys:  arm, mac: globalMAC,
			want: Identity{"srv6cpe", "00A0C9", "Raspberry Pi 4 Model B Rev 1.4", "10000000abcdef01", "raspberrypi,4-model-b", "dev"},
		},
		{
			name: "DMI placeholders fall through to MAC",
			sys:  placeholderDMI, mac: globalMAC,
			want: Identity{"srv6cpe", "00A0C9", "srv6cpe", "00A0C9123456", runtime.GOARCH, "dev"},
		},
		{
			name: "all-zero serial is a placeholder",
			sys:  zeroSerial, mac: globalMAC,
			want: Identity{"srv6cpe", "00A0C9", "srv6cpe", "00A0C9123456", runtime.GOARCH, "dev"},
		},
		{
			name: "locally administered MAC: no OUI, still a serial",
			sys:  fstest.MapFS{}, mac: localMAC,
			want: Identity{"srv6cpe", "000000", "srv6cpe", "02A0C9123456", runtime.GOARCH, "dev"},
		},
		{
			name: "no MAC: machine-id",
			sys:  onlyMachineID,
			want: Identity{"srv6cpe", "000000", "srv6cpe", "fedcba9876543210fedcba9876543210", runtime.GOARCH, "dev"},
		},
		{
			name: "multicast and zero MACs are ignored",
			sys:  onlyMachineID, mac: net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1},
			want: Identity{"srv6cpe", "000000", "srv6cpe", "fedcba9876543210fedcba9876543210", runtime.GOARCH, "dev"},
		},
		{
			name: "nothing at all",
			sys:  fstest.MapFS{}, mac: net.HardwareAddr{0, 0, 0, 0, 0, 0},
			want: Identity{"srv6cpe", "000000", "srv6cpe", "UNKNOWN", runtime.GOARCH, "dev"},
		},
		{
			name: "invalid configured OUI falls back to the MAC",
			cfg:  IdentityConfig{OUI: "xyz"},
			sys:  fstest.MapFS{}, mac: globalMAC,
			want: Identity{"srv6cpe", "00A0C9", "srv6cpe", "00A0C9123456", runtime.GOARCH, "dev"},
		},
		{
			name: "control characters stripped, long values cut to 64",
			cfg:  IdentityConfig{ProductClass: "a\tb\x00c", SerialNumber: strings.Repeat("x", 70)},
			sys:  fstest.MapFS{},
			want: Identity{"srv6cpe", "000000", "a bc", strings.Repeat("x", 64), runtime.GOARCH, "dev"},
		},
		{
			name: "blank config values fall back",
			cfg:  IdentityConfig{Manufacturer: "  ", SerialNumber: "\n"},
			sys:  fstest.MapFS{}, mac: globalMAC,
			want: Identity{"srv6cpe", "00A0C9", "srv6cpe", "00A0C9123456", runtime.GOARCH, "dev"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := LoadIdentity(tc.cfg, tc.sys, tc.mac)
			if got != tc.want {
				t.Errorf("LoadIdentity:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoadIdentitySoftwareVersionFromLinker(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "2.3.4"
	if got := LoadIdentity(IdentityConfig{}, fstest.MapFS{}, nil).SoftwareVersion; got != "2.3.4" {
		t.Errorf("SoftwareVersion = %q, want the linker-set 2.3.4", got)
	}
}

func TestIdentityConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     IdentityConfig
		wantErr string // substring; "" = valid
	}{
		{"empty is valid", IdentityConfig{}, ""},
		{"plain OUI", IdentityConfig{OUI: "00a0c9"}, ""},
		{"colon OUI", IdentityConfig{OUI: "00:A0:C9"}, ""},
		{"short OUI", IdentityConfig{OUI: "00A0C"}, `oui "00A0C"`},
		{"non-hex OUI", IdentityConfig{OUI: "00A0CG"}, `oui "00A0CG"`},
		{"newline in serial", IdentityConfig{SerialNumber: "a\nb"}, "serial_number"},
		{"too long product class", IdentityConfig{ProductClass: strings.Repeat("p", 65)}, "product_class"},
		{"64 is fine", IdentityConfig{ProductClass: strings.Repeat("p", 64)}, ""},
		{"bad UTF-8", IdentityConfig{Manufacturer: "\xff"}, "manufacturer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDeviceID(t *testing.T) {
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{OUI: "00A0C9", ProductClass: "CPE_1", SerialNumber: "ABC123"}, "00A0C9-CPE_1-ABC123"},
		{Identity{OUI: "00A0C9", ProductClass: "CPE-X", SerialNumber: "SN-4711/B"}, "00A0C9-CPE%2DX-SN%2D4711%2FB"},
		{Identity{OUI: "00A0C9", ProductClass: "Pi 4", SerialNumber: "é%"}, "00A0C9-Pi%204-%C3%A9%25"},
		{Identity{OUI: "00A0C9", SerialNumber: "S.1"}, "00A0C9-S%2E1"},
	}
	for _, tc := range tests {
		if got := tc.id.DeviceID(); got != tc.want {
			t.Errorf("%+v.DeviceID() = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// DeviceID must always split back into its three parts, each unescaping to
// the original value: that is what the TR-069 escaping is for.
func FuzzDeviceID(f *testing.F) {
	f.Add("CPE-X", "SN-4711/B")
	f.Add("Pi 4", "é%")
	f.Add("", "a-b")
	f.Fuzz(func(t *testing.T, productClass, serial string) {
		if productClass == "" {
			return // the two-part form is covered by TestDeviceID
		}
		id := Identity{OUI: "00A0C9", ProductClass: productClass, SerialNumber: serial}.DeviceID()
		parts := strings.Split(id, "-")
		if len(parts) != 3 {
			t.Fatalf("DeviceID %q has %d parts, want 3", id, len(parts))
		}
		for i, want := range []string{"00A0C9", productClass, serial} {
			got, err := url.PathUnescape(parts[i])
			if err != nil || got != want {
				t.Fatalf("part %d of %q unescapes to %q (%v), want %q", i, id, got, err, want)
			}
			if strings.Trim(parts[i], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_%") != "" {
				t.Fatalf("part %d of %q holds characters TR-069 wants escaped", i, id)
			}
		}
	})
}

// Whatever a DMI file or a config holds, a cleaned identity string is valid
// UTF-8, printable, trimmed, at most 64 characters, and stable.
func FuzzCleanIdentity(f *testing.F) {
	f.Add("To Be Filled By O.E.M.\n")
	f.Add("Raspberry Pi 4\x00")
	f.Add("\xff\xfe  x\t\ty ")
	f.Fuzz(func(t *testing.T, s string) {
		c := cleanIdentity(s)
		if !utf8.ValidString(c) || utf8.RuneCountInString(c) > maxIdentityLen || c != strings.TrimSpace(c) {
			t.Fatalf("cleanIdentity(%q) = %q", s, c)
		}
		for _, r := range c {
			if !unicode.IsPrint(r) {
				t.Fatalf("cleanIdentity(%q) = %q holds unprintable %U", s, c, r)
			}
		}
		if again := cleanIdentity(c); again != c {
			t.Fatalf("cleanIdentity not idempotent: %q -> %q -> %q", s, c, again)
		}
	})
}
