package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
)

// ACSConfig is the `acs:` section: the CWMP client's settings and the
// device actions the ACS may ask for. Without a URL the agent runs no
// CWMP client. The URL, credentials and periodic inform settings are
// factory values: what the ACS sets later (SetParameterValues) is kept in
// the state dir and wins, except that a new acs.url (with its username and
// password) in this file replaces what the ACS set, since the operator
// changed the ACS.
type ACSConfig struct {
	cwmpclient.Config `yaml:",inline"`
	// FirmwareCommand installs a downloaded firmware image: the command and
	// its arguments, the image path appended; the device then reboots.
	// Empty: firmware downloads are refused (plain Linux has no standard
	// installer).
	FirmwareCommand []string `yaml:"firmware_command"`
	// RebootCommand and LogCommand replace "reboot" and the journal of
	// this boot (see board.LinuxHooks).
	RebootCommand []string `yaml:"reboot_command"`
	LogCommand    []string `yaml:"log_command"`
}

// Enabled reports whether the agent runs a CWMP client.
func (c ACSConfig) Enabled() bool { return c.URL != "" }

// validate checks the section; errors name the key and the bad value.
func (c ACSConfig) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("acs."+format, a...)) }
	if c.URL != "" {
		if err := checkHTTPURL(c.URL); err != nil {
			bad("url: %w", err)
		}
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		bad("client_cert/client_key: give both or neither (client_cert %q, client_key %q)", c.ClientCert, c.ClientKey)
	}
	for key, p := range map[string]string{"ca_bundle": c.CABundle, "client_cert": c.ClientCert, "client_key": c.ClientKey,
		"transfer.ca_bundle": c.Transfer.CABundle, "transfer.client_cert": c.Transfer.ClientCert, "transfer.client_key": c.Transfer.ClientKey,
		"transfer.work_dir": c.Transfer.WorkDir} {
		if p != "" && !filepath.IsAbs(p) {
			bad("%s: %q is not an absolute path", key, p)
		}
	}
	if c.MaxBody < 0 {
		bad("max_body: %d is negative", c.MaxBody)
	}
	if c.Transfer.MaxSize < 0 {
		bad("transfer.max_size: %d is negative", c.Transfer.MaxSize)
	}
	if d := c.PeriodicInformInterval; d != 0 && (d < time.Second || d > (1<<32-1)*time.Second) {
		bad("periodic_inform_interval: %s is outside 1s..%ds", d, uint32(1<<32-1))
	}
	if v := c.RetryMinimumWait; v != 0 && v > 65535 {
		bad("retry_minimum_wait: %d is outside 1..65535", v)
	}
	if v := c.RetryMultiplier; v != 0 && (v < 1000 || v > 65535) {
		bad("retry_multiplier: %d is outside 1000..65535", v)
	}
	switch c.CWMPVersion {
	case "", "1-0", "1-2":
	default:
		bad("cwmp_version: %q is not one of 1-0, 1-2", c.CWMPVersion)
	}
	for key, d := range map[string]time.Duration{"notification_interval": c.NotificationInterval,
		"session_timeout": c.SessionTimeout, "exchange_timeout": c.ExchangeTimeout,
		"connection_request.pending_timeout": c.ConnectionRequest.PendingTimeout} {
		if d < 0 {
			bad("%s: %s is negative", key, d)
		}
	}
	cr := c.ConnectionRequest
	if cr.Addr != "" {
		if _, port, err := net.SplitHostPort(cr.Addr); err != nil {
			bad("connection_request.addr: %q is not host:port (%v)", cr.Addr, err)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			// Port 0 is fine: ConnectionRequestURL reports the one chosen.
			bad("connection_request.addr: port %q of %q is not a number in 0..65535", port, cr.Addr)
		}
	}
	if cr.Path != "" && !strings.HasPrefix(cr.Path, "/") {
		bad("connection_request.path: %q does not start with /", cr.Path)
	}
	if cr.MaxConns < 0 {
		bad("connection_request.max_conns: %d is negative", cr.MaxConns)
	}
	if h := c.ConnectionRequestHost; h != "" && strings.ContainsAny(h, "/[]@ ") {
		bad("connection_request_host: %q is not a host name or address", h)
	}
	for key, argv := range map[string][]string{"firmware_command": c.FirmwareCommand, "reboot_command": c.RebootCommand, "log_command": c.LogCommand} {
		if len(argv) > 0 && argv[0] == "" {
			bad("%s: the command name is empty", key)
		}
	}
	return errs
}

// checkHTTPURL accepts http(s)://host[:port]/... URLs.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want http:// or https:// with a host", s)
	}
	if u.User != nil {
		return errors.New("credentials go in acs.username/password, not in the URL")
	}
	return nil
}
