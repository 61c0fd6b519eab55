package openwrt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/srv6cpe/srv6cpe/board"
)

// The daemon's YAML configuration (agent.Config) as the converter writes
// it. The keys mirror agent/config.go; agent.ParseConfig validates the
// result (board/openwrt cannot import agent: the agent imports board).
type daemonConfig struct {
	LogLevel string         `yaml:"log_level,omitempty"`
	StateDir string         `yaml:"state_dir,omitempty"`
	Identity map[string]any `yaml:"identity,omitempty"`
	WAN      wanYAML        `yaml:"wan"`
	SRv6     map[string]any `yaml:"srv6,omitempty"`
	Services []serviceYAML  `yaml:"services,omitempty"`
	Remote   []remoteYAML   `yaml:"remote,omitempty"`
}

type wanYAML struct {
	Interface     string `yaml:"interface"`
	PrefixSource  string `yaml:"prefix_source,omitempty"`
	StaticPrefix  string `yaml:"static_prefix,omitempty"`
	StaticAddress string `yaml:"static_address,omitempty"`
	Debounce      string `yaml:"debounce,omitempty"`
	// NetifdInterface is only written for prefix_source netifd.
	NetifdInterface string `yaml:"netifd_interface,omitempty"`
}

type serviceYAML struct {
	Name        string   `yaml:"name"`
	Behavior    string   `yaml:"behavior"`
	Function    string   `yaml:"function"`
	Table       *int     `yaml:"table,omitempty"`
	VRF         string   `yaml:"vrf,omitempty"`
	NextHop     string   `yaml:"nexthop,omitempty"`
	LANPrefixes []string `yaml:"lan_prefixes,omitempty"`
}

type remoteYAML struct {
	Prefix    string   `yaml:"prefix"`
	VRF       string   `yaml:"vrf,omitempty"`
	Table     *int     `yaml:"table,omitempty"`
	Segments  []string `yaml:"segments"`
	EncapMode string   `yaml:"encap_mode,omitempty"`
}

// ConvertOptions configures DaemonConfig.
type ConvertOptions struct {
	// ResolveDevice returns the Linux device of a netifd logical interface;
	// it is called when the wan section sets no device. Nil: the device
	// must be set.
	ResolveDevice func(netifdInterface string) (string, error)
}

// UCI section types and their options, as /etc/config/srv6cpe uses them.
// Anything else is an error naming its line: the daemon rejects unknown
// YAML keys, and the UCI side must not silently drop a misspelt option.
var uciSchema = map[string][]string{
	"srv6cpe":  {"enabled", "log_level", "state_dir"},
	"identity": {"manufacturer", "oui", "product_class", "serial_number", "hardware_version", "software_version"},
	"wan":      {"netifd_interface", "device", "prefix_source", "static_prefix", "static_address", "debounce"},
	"srv6":     {"locator_len", "function_len", "extension", "encap_mode", "locator_name"},
	"service":  {"name", "behavior", "function", "table", "vrf", "nexthop", "lan_prefix"},
	"remote":   {"prefix", "vrf", "table", "segment", "encap_mode"},
}

// listOptions may be given as "list" (or as a single "option").
var listOptions = map[string]bool{"service.lan_prefix": true, "remote.segment": true}

// netifdInterfaceOf is the wan section's netifd_interface, default "wan6":
// the interface the init script's trigger and the hotplug script watch.
func netifdInterfaceOf(f *File) string {
	if s := single(f, "wan"); s != nil {
		if v, ok := s.Get("netifd_interface"); ok && v != "" {
			return v
		}
	}
	return DefaultNetifdInterface
}

func single(f *File, typ string) *Section {
	if ss := f.SectionsOfType(typ); len(ss) > 0 {
		return ss[0]
	}
	return nil
}

// DaemonConfig turns /etc/config/srv6cpe into the daemon's YAML
// configuration. Every UCI option maps to the YAML key of the same name in
// the section of the same name (srv6cpe's options to the top level);
// "service" and "remote" sections become the services and remote lists in
// file order, their "list lan_prefix" / "list segment" the lan_prefixes
// and segments lists. Two exceptions: "enabled" is the init script's, and
// wan.interface is wan's "device", or when unset the Linux device netifd
// reports for "netifd_interface" (default wan6), which is otherwise only
// written for prefix_source netifd. Numbers are checked here
// so that errors name the UCI line; everything else is checked by the
// daemon when it loads the result.
func DaemonConfig(f *File, opt ConvertOptions) ([]byte, error) {
	if err := checkSchema(f); err != nil {
		return nil, err
	}
	var c daemonConfig
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	str := func(s *Section, name string) string {
		if s == nil {
			return ""
		}
		v, _ := s.Get(name)
		return v
	}
	num := func(s *Section, name string) *int {
		o, ok := s.Option(name)
		if !ok {
			return nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(o.Values[0]))
		if err != nil {
			bad(optErr(f, s, o, "not a decimal number"))
			return nil
		}
		return &n
	}

	if s := single(f, "srv6cpe"); s != nil {
		c.LogLevel, c.StateDir = str(s, "log_level"), str(s, "state_dir")
	}
	if s := single(f, "identity"); s != nil {
		c.Identity = map[string]any{}
		for _, o := range s.Options {
			c.Identity[o.Name] = o.Values[0]
		}
	}

	w := single(f, "wan")
	c.WAN = wanYAML{
		Interface:     str(w, "device"),
		PrefixSource:  str(w, "prefix_source"),
		StaticPrefix:  str(w, "static_prefix"),
		StaticAddress: str(w, "static_address"),
		Debounce:      str(w, "debounce"),
	}
	logical := netifdInterfaceOf(f)
	if c.WAN.PrefixSource == "netifd" {
		c.WAN.NetifdInterface = logical
	}
	if c.WAN.Interface == "" {
		if opt.ResolveDevice == nil {
			bad(fmt.Errorf("%s: wan: set option device (the Linux WAN device)", fileName(f)))
		} else if dev, err := opt.ResolveDevice(logical); err != nil {
			bad(fmt.Errorf("%s: wan: no option device, and the device of netifd interface %q is unknown (set option device): %w", fileName(f), logical, err))
		} else {
			c.WAN.Interface = dev
		}
	}

	if s := single(f, "srv6"); s != nil {
		c.SRv6 = map[string]any{}
		for _, o := range s.Options {
			switch o.Name {
			case "locator_len", "function_len":
				if n := num(s, o.Name); n != nil {
					c.SRv6[o.Name] = *n
				}
			default:
				c.SRv6[o.Name] = o.Values[0]
			}
		}
	}

	for _, s := range f.SectionsOfType("service") {
		c.Services = append(c.Services, serviceYAML{
			Name:        str(s, "name"),
			Behavior:    str(s, "behavior"),
			Function:    str(s, "function"),
			Table:       num(s, "table"),
			VRF:         str(s, "vrf"),
			NextHop:     str(s, "nexthop"),
			LANPrefixes: s.List("lan_prefix"),
		})
	}
	for _, s := range f.SectionsOfType("remote") {
		c.Remote = append(c.Remote, remoteYAML{
			Prefix:    str(s, "prefix"),
			VRF:       str(s, "vrf"),
			Table:     num(s, "table"),
			Segments:  s.List("segment"),
			EncapMode: str(s, "encap_mode"),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("%s: encode YAML: %w", fileName(f), err)
	}
	header := "# Generated from /etc/config/srv6cpe by the srv6cpe init script; edit that file\n# and run \"service srv6cpe reload\" instead of this one.\n"
	return append([]byte(header), out...), nil
}

// checkSchema rejects unknown section types and options, repeated
// single-instance sections, and lists where one value is expected.
func checkSchema(f *File) error {
	var errs []error
	for _, typ := range []string{"srv6cpe", "identity", "wan", "srv6"} {
		if ss := f.SectionsOfType(typ); len(ss) > 1 {
			errs = append(errs, fmt.Errorf("%s:%d: a second %q section (the first is on line %d); only one is read", fileName(f), ss[1].Line, typ, ss[0].Line))
		}
	}
	for _, s := range f.Sections {
		known, ok := uciSchema[s.Type]
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: unknown section type %q (known: srv6cpe, identity, wan, srv6, service, remote)", fileName(f), s.Line, s.Type))
			continue
		}
		for _, o := range s.Options {
			switch {
			case !contains(known, o.Name):
				errs = append(errs, optErr(f, s, o, "unknown option (known: "+strings.Join(known, ", ")+")"))
			case o.List && !listOptions[s.Type+"."+o.Name]:
				errs = append(errs, optErr(f, s, o, "takes one value: use option, not list"))
			}
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func fileName(f *File) string {
	if f.Source != "" {
		return f.Source
	}
	return "srv6cpe"
}

func optErr(f *File, s *Section, o *Option, msg string) error {
	where := s.Type
	if s.Name != "" {
		where += " '" + s.Name + "'"
	}
	return fmt.Errorf("%s:%d: %s option %s %q: %s", fileName(f), o.Line, where, o.Name, strings.Join(o.Values, " "), msg)
}

// NetifdDevice asks netifd for the Linux device of a logical interface:
// its l3_device when up (e.g. pppoe-wan), else its configured device.
func NetifdDevice(ctx context.Context, r Runner, iface string) (string, error) {
	if !validIfName(iface) {
		return "", fmt.Errorf("netifd interface %q: not a valid interface name", iface)
	}
	src := NewNetifdPrefix(NetifdPrefixOptions{Interface: iface, Runner: r})
	st, err := src.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.L3Device != "" {
		return st.L3Device, nil
	}
	if st.Device != "" {
		return st.Device, nil
	}
	return "", fmt.Errorf("netifd interface %q reports no device", iface)
}

// WriteDaemonConfig is what the init script runs (through srv6cpectl): it
// reads the UCI file at uciPath, converts it with DaemonConfig (asking
// netifd through r for the WAN device when needed) and replaces outPath
// atomically (temp file, fsync, rename; directory mode 0700, file 0600,
// since the configuration will hold ACS credentials). On any error outPath
// is left as it was, so a bad edit never breaks the running daemon's next
// restart.
func WriteDaemonConfig(ctx context.Context, uciPath, outPath string, r Runner) error {
	b, err := os.ReadFile(uciPath)
	if err != nil {
		return err
	}
	f, err := ParseUCI(uciPath, b)
	if err != nil {
		return err
	}
	out, err := DaemonConfig(f, ConvertOptions{ResolveDevice: func(iface string) (string, error) {
		return NetifdDevice(ctx, r, iface)
	}})
	if err != nil {
		return err
	}
	dir, err := board.OpenStateDir(filepath.Dir(outPath))
	if err != nil {
		return err
	}
	return dir.WriteFile(filepath.Base(outPath), out)
}
