package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is labctl's YAML file: the credentials, what each CPE gets
// configured with, and the monitoring tasks between them.
type Config struct {
	// ACS: credentials the CPEs must present (HTTP digest); empty = none.
	ACS Credentials `yaml:"acs"`
	// ConnectionRequest: credentials labctl presents to a CPE's
	// connection request server.
	ConnectionRequest Credentials  `yaml:"connection_request"`
	CPEs              []CPEConfig  `yaml:"cpes"`
	Monitor           []TaskConfig `yaml:"monitor"`
}

// Credentials are a user name and password.
type Credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// CPEConfig is what the controller configures on one CPE (Q.Suppl.79
// §8.1): the SRv6 parameters and the L3VPN services.
type CPEConfig struct {
	// Name is the controller's name for the device (cpe1).
	Name string `yaml:"name"`
	// SerialNumber identifies the device in its Inform's DeviceId.
	SerialNumber   string          `yaml:"serial_number"`
	LocatorLength  int             `yaml:"locator_length"`
	FunctionLength int             `yaml:"function_length"`
	Extension      string          `yaml:"extension"`
	LocatorName    string          `yaml:"locator_name"`
	Services       []ServiceConfig `yaml:"services"`
}

// ServiceConfig is one L3VPN service (Service.{i} on the CPE).
type ServiceConfig struct {
	ServiceID          string   `yaml:"service_id"`
	VPNInstance        string   `yaml:"vpn_instance"`
	RouteDistinguisher string   `yaml:"route_distinguisher"`
	ImportRT           []string `yaml:"import_rt"`
	ExportRT           []string `yaml:"export_rt"`
	LANPrefixes        []string `yaml:"lan_prefixes"`
	// Function is the SID's function value (e.g. "0x4"); empty lets the
	// CPE pick a free one.
	Function string `yaml:"function"`
}

// TaskConfig is one monitoring task (Stats_Monitor_Config_Req to both).
type TaskConfig struct {
	TaskID    string `yaml:"task_id"`
	Sender    string `yaml:"sender"`
	Reflector string `yaml:"reflector"`
	// MonitorCycle: seconds between the sender's reports.
	MonitorCycle int `yaml:"monitor_cycle"`
	// PacketInterval: milliseconds between probes.
	PacketInterval int    `yaml:"packet_interval"`
	Protocol       string `yaml:"protocol"`
	Port           int    `yaml:"port"`
}

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$`)
	// rdPattern / rtPattern: ASN:N or IPv4:N, as the CPE accepts them.
	rdPattern = regexp.MustCompile(`^([0-9]+|[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+):[0-9]+$`)
)

// LoadConfig reads and validates the file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses a YAML document (unknown keys are errors), fills the
// defaults and validates it; errors name the key and the bad value.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	for i := range c.Monitor {
		t := &c.Monitor[i]
		if t.MonitorCycle == 0 {
			t.MonitorCycle = 60
		}
		if t.PacketInterval == 0 {
			t.PacketInterval = 100
		}
		if t.Protocol == "" {
			t.Protocol = "STAMP"
		}
		if t.Port == 0 {
			t.Port = 862
		}
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	names := map[string]bool{}
	serials := map[string]bool{}
	for i, d := range c.CPEs {
		key := fmt.Sprintf("cpes[%d]", i)
		if !namePattern.MatchString(d.Name) {
			bad("%s.name: %q is not a name", key, d.Name)
		}
		if names[d.Name] {
			bad("%s.name: %q given twice", key, d.Name)
		}
		names[d.Name] = true
		if d.SerialNumber == "" {
			bad("%s.serial_number: empty", key)
		}
		if serials[d.SerialNumber] {
			bad("%s.serial_number: %q given twice", key, d.SerialNumber)
		}
		serials[d.SerialNumber] = true
		if d.LocatorLength < 0 || d.LocatorLength > 127 {
			bad("%s.locator_length: %d is outside 1..127", key, d.LocatorLength)
		}
		if d.FunctionLength < 0 || d.FunctionLength > 64 {
			bad("%s.function_length: %d is outside 1..64", key, d.FunctionLength)
		}
		if d.Extension != "" {
			if _, err := parseNumber(d.Extension); err != nil {
				bad("%s.extension: %w", key, err)
			}
		}
		if d.LocatorName != "" && !namePattern.MatchString(d.LocatorName) {
			bad("%s.locator_name: %q is not a name", key, d.LocatorName)
		}
		ids := map[string]bool{}
		for j, s := range d.Services {
			sk := fmt.Sprintf("%s.services[%d]", key, j)
			if !namePattern.MatchString(s.ServiceID) {
				bad("%s.service_id: %q is not a name", sk, s.ServiceID)
			}
			if ids[s.ServiceID] {
				bad("%s.service_id: %q given twice", sk, s.ServiceID)
			}
			ids[s.ServiceID] = true
			if s.VPNInstance != "" && !namePattern.MatchString(s.VPNInstance) {
				bad("%s.vpn_instance: %q is not a name", sk, s.VPNInstance)
			}
			if s.RouteDistinguisher != "" && !rdPattern.MatchString(s.RouteDistinguisher) {
				bad("%s.route_distinguisher: %q is not ASN:N or IPv4:N", sk, s.RouteDistinguisher)
			}
			for _, rt := range append(append([]string{}, s.ImportRT...), s.ExportRT...) {
				if !rdPattern.MatchString(rt) {
					bad("%s: route target %q is not ASN:N or IPv4:N", sk, rt)
				}
			}
			if len(s.LANPrefixes) == 0 {
				bad("%s.lan_prefixes: none", sk)
			}
			for _, p := range s.LANPrefixes {
				if _, err := netip.ParsePrefix(p); err != nil {
					bad("%s.lan_prefixes: %q is not a prefix", sk, p)
				}
			}
			if s.Function != "" {
				if _, err := parseNumber(s.Function); err != nil {
					bad("%s.function: %w", sk, err)
				}
			}
		}
	}
	tasks := map[string]bool{}
	for i, t := range c.Monitor {
		key := fmt.Sprintf("monitor[%d]", i)
		if !namePattern.MatchString(t.TaskID) {
			bad("%s.task_id: %q is not a name", key, t.TaskID)
		}
		if tasks[t.TaskID] {
			bad("%s.task_id: %q given twice", key, t.TaskID)
		}
		tasks[t.TaskID] = true
		if !names[t.Sender] {
			bad("%s.sender: %q is no CPE of cpes", key, t.Sender)
		}
		if !names[t.Reflector] {
			bad("%s.reflector: %q is no CPE of cpes", key, t.Reflector)
		}
		if t.Sender == t.Reflector {
			bad("%s: sender and reflector are both %q", key, t.Sender)
		}
		if t.MonitorCycle < 1 {
			bad("%s.monitor_cycle: %d is not a positive number of seconds", key, t.MonitorCycle)
		}
		if t.PacketInterval < 1 {
			bad("%s.packet_interval: %d is not a positive number of milliseconds", key, t.PacketInterval)
		}
		if t.Protocol != "STAMP" && t.Protocol != "TWAMP-Light" {
			bad("%s.protocol: %q is not STAMP or TWAMP-Light", key, t.Protocol)
		}
		if t.Port < 1 || t.Port > 65535 {
			bad("%s.port: %d is outside 1..65535", key, t.Port)
		}
	}
	return errors.Join(errs...)
}

// parseNumber reads a decimal or 0x-prefixed hexadecimal value.
func parseNumber(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal or 0x hexadecimal number", s)
	}
	return n, nil
}

// cpe returns the configuration of the named CPE.
func (c Config) cpe(name string) (CPEConfig, bool) {
	for _, d := range c.CPEs {
		if d.Name == name {
			return d, true
		}
	}
	return CPEConfig{}, false
}
