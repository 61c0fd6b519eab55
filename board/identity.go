package board

import (
	"fmt"
	"io/fs"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Version is the software version of this build, set by the linker:
//
//	go build -ldflags "-X github.com/srv6cpe/srv6cpe/board.Version=1.2.3"
//
// It is the SoftwareVersion fallback when the config does not set one.
var Version = "dev"

// maxIdentityLen is the TR-181 size of every DeviceInfo identity string
// (string(64)), in characters.
const maxIdentityLen = 64

// Fallbacks when neither config nor the system says anything useful.
const (
	defaultManufacturer = "srv6cpe"
	defaultOUI          = "000000"
	defaultProductClass = "srv6cpe"
	// defaultSerial is the last resort, only reached on a system with no
	// DMI serial, no usable WAN MAC and no machine-id.
	defaultSerial = "UNKNOWN"
)

// Files LoadIdentity reads, relative to the root filesystem it is given.
const (
	dmiProductName   = "sys/class/dmi/id/product_name"
	dmiProductSerial = "sys/class/dmi/id/product_serial"
	dmiBoardVersion  = "sys/class/dmi/id/board_version"
	dtModel          = "proc/device-tree/model"
	dtSerial         = "proc/device-tree/serial-number"
	dtCompatible     = "proc/device-tree/compatible"
	machineID        = "etc/machine-id"
)

// IdentityConfig is the identity as the operator configures it. Every field
// is optional; an empty one falls back to what LoadIdentity finds on the
// system.
type IdentityConfig struct {
	Manufacturer    string `yaml:"manufacturer"`
	OUI             string `yaml:"oui"`
	ProductClass    string `yaml:"product_class"`
	SerialNumber    string `yaml:"serial_number"`
	HardwareVersion string `yaml:"hardware_version"`
	SoftwareVersion string `yaml:"software_version"`
}

// Validate reports the first configured value that LoadIdentity would have
// to discard, so a config loader can refuse it instead of silently falling
// back: an OUI that is not six hex digits, or a string that is longer than
// 64 characters or holds control characters or invalid UTF-8.
func (c IdentityConfig) Validate() error {
	if c.OUI != "" {
		if _, ok := normalizeOUI(c.OUI); !ok {
			return fmt.Errorf("identity oui %q: want six hexadecimal digits (e.g. 00A0C9)", c.OUI)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"manufacturer", c.Manufacturer},
		{"product_class", c.ProductClass},
		{"serial_number", c.SerialNumber},
		{"hardware_version", c.HardwareVersion},
		{"software_version", c.SoftwareVersion},
	} {
		if !utf8.ValidString(f.value) {
			return fmt.Errorf("identity %s %q: invalid UTF-8", f.name, f.value)
		}
		if strings.IndexFunc(f.value, unicode.IsControl) >= 0 {
			return fmt.Errorf("identity %s %q: control characters are not allowed", f.name, f.value)
		}
		if n := utf8.RuneCountInString(strings.TrimSpace(f.value)); n > maxIdentityLen {
			return fmt.Errorf("identity %s %q: %d characters, at most %d allowed", f.name, f.value, n, maxIdentityLen)
		}
	}
	return nil
}

// LoadIdentity builds the device identity from cfg, falling back field by
// field to what the system says: sys is the root filesystem (os.DirFS("/")
// in production) and wanMAC the WAN interface's hardware address (may be nil).
// Every field of the result is non-empty, at most 64 characters, printable.
//
// Fallbacks, first usable value wins (DMI placeholders such as "To Be Filled
// By O.E.M." are not usable):
//   - Manufacturer: "srv6cpe".
//   - OUI: the first three bytes of a globally administered unicast wanMAC
//     (a locally administered MAC carries no OUI), else "000000".
//   - ProductClass: DMI product_name, device-tree model, "srv6cpe".
//   - SerialNumber: DMI product_serial, device-tree serial-number, wanMAC
//     as 12 upper-case hex digits, /etc/machine-id, "UNKNOWN".
//   - HardwareVersion: DMI board_version, the first device-tree compatible
//     string, runtime.GOARCH.
//   - SoftwareVersion: Version (linker-set), the module version stamped by
//     the Go toolchain, "dev".
func LoadIdentity(cfg IdentityConfig, sys fs.FS, wanMAC net.HardwareAddr) Identity {
	read := func(name string) string {
		if v := readIdentityFile(sys, name); !isPlaceholder(cleanIdentity(v)) {
			return v
		}
		return ""
	}
	oui, ok := normalizeOUI(cfg.OUI)
	if !ok {
		oui = ouiFromMAC(wanMAC)
	}
	return Identity{
		Manufacturer:    first(cfg.Manufacturer, defaultManufacturer),
		OUI:             oui,
		ProductClass:    first(cfg.ProductClass, read(dmiProductName), read(dtModel), defaultProductClass),
		SerialNumber:    first(cfg.SerialNumber, read(dmiProductSerial), read(dtSerial), serialFromMAC(wanMAC), read(machineID), defaultSerial),
		HardwareVersion: first(cfg.HardwareVersion, read(dmiBoardVersion), read(dtCompatible), runtime.GOARCH),
		SoftwareVersion: first(cfg.SoftwareVersion, softwareVersion()),
	}
}

// DeviceID is the identity in the form TR-069 (section 3.4.4) prescribes for
// the CPE's HTTP username: "OUI-ProductClass-SerialNumber", or
// "OUI-SerialNumber" when ProductClass is empty. Every byte of the UTF-8
// form of ProductClass and SerialNumber other than 0-9, A-Z, a-z and "_" is
// percent-encoded, so the three parts can always be split back apart on "-".
func (id Identity) DeviceID() string {
	if id.ProductClass == "" {
		return id.OUI + "-" + escapeDeviceIDPart(id.SerialNumber)
	}
	return id.OUI + "-" + escapeDeviceIDPart(id.ProductClass) + "-" + escapeDeviceIDPart(id.SerialNumber)
}

func escapeDeviceIDPart(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// first returns the first candidate that survives cleanIdentity.
func first(candidates ...string) string {
	for _, c := range candidates {
		if v := cleanIdentity(c); v != "" {
			return v
		}
	}
	return ""
}

// cleanIdentity makes s fit a TR-181 string(64): valid UTF-8, printable only,
// trimmed, at most 64 characters.
func cleanIdentity(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		if unicode.IsSpace(r) {
			return ' '
		}
		return -1
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxIdentityLen {
		s = strings.TrimSpace(string([]rune(s)[:maxIdentityLen]))
	}
	return s
}

// placeholders are values vendors leave in DMI fields they did not fill in;
// taking one as a serial number would give thousands of devices one identity.
var placeholders = map[string]bool{
	"to be filled by o.e.m.":   true,
	"to be filled by oem":      true,
	"default string":           true,
	"not specified":            true,
	"not applicable":           true,
	"not available":            true,
	"system serial number":     true,
	"system product name":      true,
	"system version":           true,
	"chassis serial number":    true,
	"base board serial number": true,
	"0123456789":               true,
	"123456789":                true,
	"none":                     true,
	"n/a":                      true,
	"na":                       true,
	"unknown":                  true,
	"invalid":                  true,
	"oem":                      true,
	"o.e.m.":                   true,
	"x.x":                      true,
}

func isPlaceholder(s string) bool {
	if s == "" {
		return true
	}
	if placeholders[strings.ToLower(s)] {
		return true
	}
	// All zeros ("0", "00000000", "0000-0000") identifies nothing.
	return strings.Trim(s, "0-:. ") == "" && strings.Contains(s, "0")
}

// readIdentityFile reads one short system file. Device-tree strings end in
// NUL; only the part before the first NUL counts (for "compatible", a NUL
// separated list, that is the most specific entry, the closest a device
// tree has to a board revision, e.g. "raspberrypi,4-model-b").
func readIdentityFile(sys fs.FS, name string) string {
	if sys == nil {
		return ""
	}
	b, err := fs.ReadFile(sys, name)
	if err != nil {
		return ""
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// normalizeOUI accepts "00a0c9", "00:A0:C9" or "00-a0-c9" and returns the
// TR-069 form: six upper-case hex digits.
func normalizeOUI(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.NewReplacer(":", "", "-", "", ".", "").Replace(s)
	if len(s) != 6 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToUpper(s), true
}

// ouiFromMAC returns the OUI of a globally administered unicast MAC (EUI-48
// or EUI-64), else "000000": a multicast or locally administered address
// (veth, random or derived MACs) carries no IEEE-assigned OUI.
func ouiFromMAC(mac net.HardwareAddr) string {
	if len(mac) != 6 && len(mac) != 8 {
		return defaultOUI
	}
	if mac[0]&0x03 != 0 || allZero(mac) {
		return defaultOUI
	}
	return fmt.Sprintf("%02X%02X%02X", mac[0], mac[1], mac[2])
}

// serialFromMAC is the MAC as upper-case hex without separators. Locally
// administered MACs are accepted: boards that derive the WAN MAC from a
// base address set that bit yet keep the value stable.
func serialFromMAC(mac net.HardwareAddr) string {
	if len(mac) != 6 && len(mac) != 8 {
		return ""
	}
	if mac[0]&0x01 != 0 || allZero(mac) {
		return ""
	}
	return strings.ToUpper(strings.ReplaceAll(mac.String(), ":", ""))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// softwareVersion is Version, or when the build did not set it, the module
// version the Go toolchain stamped from the VCS tag (e.g. "v1.2.3").
func softwareVersion() string {
	if Version != "" && Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return "dev"
}
