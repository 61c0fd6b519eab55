package openwrt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"

	"github.com/srv6cpe/srv6cpe/board"
)

// Files LoadFacts reads, relative to the root filesystem it is given.
const (
	boardJSON      = "etc/board.json"
	openwrtRelease = "etc/openwrt_release"
	osRelease      = "etc/os-release"
	osReleaseAlt   = "usr/lib/os-release"
)

// Facts is what an OpenWrt system says about itself: /etc/board.json
// (written at first boot by board_detect from the device tree and the
// target's board.d scripts) and the firmware release files.
type Facts struct {
	ModelID   string // board.json model.id, e.g. "glinet,gl-mt6000"
	ModelName string // board.json model.name, e.g. "GL.iNet GL-MT6000"
	// WANDevice is the Linux device of the WAN (board.json network.wan.device).
	WANDevice string
	// WANMAC is board.json network.wan.macaddr, else the address of
	// WANDevice in /sys/class/net; nil when neither is known.
	WANMAC net.HardwareAddr

	// From /etc/openwrt_release (DISTRIB_*).
	Distribution string // DISTRIB_ID, "OpenWrt"
	Release      string // DISTRIB_RELEASE, "23.05.3" or "SNAPSHOT"
	Revision     string // DISTRIB_REVISION, "r23809-234f1a2efa"
	Target       string // DISTRIB_TARGET, "mediatek/filogic"
	Arch         string // DISTRIB_ARCH, "aarch64_cortex-a53"

	// From /etc/os-release: what a firmware builder set with
	// CONFIG_VERSION_MANUFACTURER / _PRODUCT / _HWREV. Stock images carry
	// the placeholders "OpenWrt", "Generic" and "v0", which are dropped.
	VendorManufacturer string
	VendorProduct      string
	VendorRevision     string
}

// LoadFacts reads the OpenWrt description files from sys (os.DirFS("/")
// in production). Missing files are not an error (the fields stay empty:
// not every build has every file); malformed ones are, yet every file
// that could be read still fills its fields.
func LoadFacts(sys fs.FS) (Facts, error) {
	var f Facts
	var errs []error
	if b, err := fs.ReadFile(sys, boardJSON); err == nil {
		if err := f.parseBoardJSON(b); err != nil {
			errs = append(errs, fmt.Errorf("/%s: %w", boardJSON, err))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if f.WANMAC == nil && validIfName(f.WANDevice) {
		if b, err := fs.ReadFile(sys, "sys/class/net/"+f.WANDevice+"/address"); err == nil {
			if mac, err := net.ParseMAC(strings.TrimSpace(string(b))); err == nil {
				f.WANMAC = mac
			}
		}
	}
	if b, err := fs.ReadFile(sys, openwrtRelease); err == nil {
		v := parseShellVars(b)
		f.Distribution, f.Release, f.Revision = v["DISTRIB_ID"], v["DISTRIB_RELEASE"], v["DISTRIB_REVISION"]
		f.Target, f.Arch = v["DISTRIB_TARGET"], v["DISTRIB_ARCH"]
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	b, err := fs.ReadFile(sys, osRelease)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = fs.ReadFile(sys, osReleaseAlt)
	}
	if err == nil {
		v := parseShellVars(b)
		f.VendorManufacturer = notPlaceholder(v["OPENWRT_DEVICE_MANUFACTURER"], "OpenWrt")
		f.VendorProduct = notPlaceholder(v["OPENWRT_DEVICE_PRODUCT"], "Generic")
		f.VendorRevision = notPlaceholder(v["OPENWRT_DEVICE_REVISION"], "v0")
		// An image without /etc/openwrt_release still says what it is here.
		f.Distribution = first(f.Distribution, v["NAME"])
		f.Release = first(f.Release, v["VERSION_ID"])
		f.Revision = first(f.Revision, v["BUILD_ID"])
		f.Target = first(f.Target, v["OPENWRT_BOARD"])
		f.Arch = first(f.Arch, v["OPENWRT_ARCH"])
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return f, errors.Join(errs...)
}

func (f *Facts) parseBoardJSON(b []byte) error {
	var doc struct {
		Model struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"model"`
		Network map[string]struct {
			Device  string   `json:"device"`
			Ifname  string   `json:"ifname"` // before OpenWrt 21.02
			Ports   []string `json:"ports"`
			MACAddr string   `json:"macaddr"`
		} `json:"network"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	f.ModelID, f.ModelName = strings.TrimSpace(doc.Model.ID), strings.TrimSpace(doc.Model.Name)
	wan := doc.Network["wan"]
	f.WANDevice = first(wan.Device, wan.Ifname)
	if f.WANDevice == "" && len(wan.Ports) == 1 {
		f.WANDevice = wan.Ports[0] // DSA boards: "ports": ["wan"]
	}
	if wan.MACAddr != "" {
		mac, err := net.ParseMAC(wan.MACAddr)
		if err != nil {
			return fmt.Errorf("network.wan.macaddr %q: %w", wan.MACAddr, err)
		}
		f.WANMAC = mac
	}
	return nil
}

// IdentityConfig turns the facts into identity values, for the fields the
// operator left empty in cfg:
//   - Manufacturer: the firmware builder's manufacturer, else the vendor
//     part of the model id ("glinet" of "glinet,gl-mt6000");
//   - ProductClass: the builder's product, else the model name, else the
//     model id;
//   - HardwareVersion: the builder's hardware revision, else the target
//     ("mediatek/filogic");
//   - SoftwareVersion: the firmware release and revision
//     ("23.05.3-r23809-234f1a2efa").
//
// OUI and SerialNumber are left to board.LoadIdentity, which derives them
// from the WAN MAC (see Identity).
func (f Facts) IdentityConfig(cfg board.IdentityConfig) board.IdentityConfig {
	vendor, _, ok := strings.Cut(f.ModelID, ",")
	if !ok {
		vendor = ""
	}
	version := f.Release
	if f.Revision != "" {
		version = strings.TrimPrefix(version+"-"+f.Revision, "-")
	}
	cfg.Manufacturer = first(cfg.Manufacturer, f.VendorManufacturer, vendor)
	cfg.ProductClass = first(cfg.ProductClass, f.VendorProduct, f.ModelName, f.ModelID)
	cfg.HardwareVersion = first(cfg.HardwareVersion, f.VendorRevision, f.Target)
	cfg.SoftwareVersion = first(cfg.SoftwareVersion, version)
	return cfg
}

// Identity is board.LoadIdentity with the OpenWrt facts as the first
// fallback after the operator's cfg, and the WAN MAC from board.json (or
// sysfs) for the OUI and serial number.
func Identity(cfg board.IdentityConfig, facts Facts, sys fs.FS) board.Identity {
	return board.LoadIdentity(facts.IdentityConfig(cfg), sys, facts.WANMAC)
}

func first(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func notPlaceholder(v, placeholder string) string {
	if strings.EqualFold(strings.TrimSpace(v), placeholder) {
		return ""
	}
	return v
}

// validIfName keeps a device name from board.json from walking out of
// /sys/class/net.
func validIfName(n string) bool {
	return n != "" && len(n) <= 15 && !strings.ContainsAny(n, "/\x00") && n != "." && n != ".."
}

// parseShellVars reads the KEY=value lines of /etc/openwrt_release and
// /etc/os-release: values bare, 'single-quoted' (literal) or
// "double-quoted" (backslash escapes \" \\ \$ \`). Comments, blank lines and
// anything else are skipped; these files are generated, never hand-edited.
func parseShellVars(b []byte) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.HasPrefix(key, "#") || strings.ContainsAny(key, " \t") {
			continue
		}
		vars[key] = shellValue(val)
	}
	return vars
}

func shellValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				b.WriteString(s[i+1:])
				return b.String()
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case ' ', '\t':
			return b.String() // an unquoted blank ends the value
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
