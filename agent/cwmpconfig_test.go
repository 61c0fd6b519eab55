package agent

import (
	"strings"
	"testing"
	"time"
)

const acsDoc = minimal + `
acs:
  url: https://acs.example.net:7548/cwmp
  username: cpe
  password: secret
  ca_bundle: /etc/srv6cpe/acs-ca.pem
  insecure_skip_tls_verify: false
  max_body: 1048576
  periodic_inform_enable: true
  periodic_inform_interval: 5m
  periodic_inform_time: 2026-01-01T00:00:30Z
  retry_minimum_wait: 10
  retry_multiplier: 3000
  connection_request:
    addr: ":7547"
    path: /cr
    username: acs
    password: acs-secret
  connection_request_host: 2001:db8::1
  transfer: {work_dir: /tmp/srv6cpe, max_size: 33554432}
  provisioning_code: LAB
  cwmp_version: 1-0
  session_timeout: 5m
  firmware_command: [/usr/sbin/flash-image, --reboot=no]
`

func TestParseACSSection(t *testing.T) {
	c, err := ParseConfig([]byte(acsDoc))
	if err != nil {
		t.Fatal(err)
	}
	a := c.ACS
	if !a.Enabled() || a.URL != "https://acs.example.net:7548/cwmp" || a.Username != "cpe" || a.Password != "secret" ||
		a.CABundle != "/etc/srv6cpe/acs-ca.pem" || a.MaxBody != 1<<20 {
		t.Errorf("transport settings = %+v", a.TransportConfig)
	}
	if !a.PeriodicInformEnable || a.PeriodicInformInterval != 5*time.Minute ||
		!a.PeriodicInformTime.Equal(time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)) ||
		a.RetryMinimumWait != 10 || a.RetryMultiplier != 3000 {
		t.Errorf("inform settings = %+v", a.Config)
	}
	cr := a.ConnectionRequest
	if cr.Addr != ":7547" || cr.Path != "/cr" || cr.Username != "acs" || cr.Password != "acs-secret" || a.ConnectionRequestHost != "2001:db8::1" {
		t.Errorf("connection request = %+v host %q", cr, a.ConnectionRequestHost)
	}
	if a.Transfer.WorkDir != "/tmp/srv6cpe" || a.Transfer.MaxSize != 32<<20 || a.ProvisioningCode != "LAB" ||
		a.CWMPVersion != "1-0" || a.SessionTimeout != 5*time.Minute {
		t.Errorf("other settings = %+v", a)
	}
	if len(a.FirmwareCommand) != 2 || a.FirmwareCommand[1] != "--reboot=no" {
		t.Errorf("firmware_command = %q", a.FirmwareCommand)
	}

	none, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if none.ACS.Enabled() {
		t.Error("no acs section, yet CWMP enabled")
	}
}

func TestValidateACSSection(t *testing.T) {
	for _, tc := range []struct {
		name string
		acs  string
		want []string
	}{
		{"unknown key", "{url: http://a/, periodic_interval: 5}", []string{"periodic_interval not found"}},
		{"scheme", "{url: ftp://acs/}", []string{`acs.url: "ftp://acs/": want http:// or https://`}},
		{"no host", "{url: 'http:///x'}", []string{"acs.url:"}},
		{"userinfo", "{url: 'http://u:p@acs/'}", []string{"acs.url: credentials go in acs.username/password"}},
		{"half a client cert", "{url: https://a/, client_cert: /c.pem}", []string{"acs.client_cert/client_key: give both"}},
		{"relative paths", "{url: https://a/, ca_bundle: ca.pem, transfer: {work_dir: dl}}", []string{`acs.ca_bundle: "ca.pem"`, `acs.transfer.work_dir: "dl"`}},
		{"interval", "{url: http://a/, periodic_inform_interval: 500ms}", []string{"acs.periodic_inform_interval: 500ms"}},
		{"retry", "{url: http://a/, retry_minimum_wait: 70000, retry_multiplier: 999}", []string{"acs.retry_minimum_wait: 70000", "acs.retry_multiplier: 999"}},
		{"version", "{url: http://a/, cwmp_version: '1-4'}", []string{`acs.cwmp_version: "1-4"`}},
		{"negative", "{url: http://a/, max_body: -1, session_timeout: -1s}", []string{"acs.max_body: -1", "acs.session_timeout: -1s"}},
		{"conn req addr", "{url: http://a/, connection_request: {addr: '7547'}}", []string{`acs.connection_request.addr: "7547" is not host:port`}},
		{"conn req port", "{url: http://a/, connection_request: {addr: ':http'}}", []string{`port "http"`}},
		{"conn req path", "{url: http://a/, connection_request: {addr: ':7547', path: cr}}", []string{`acs.connection_request.path: "cr"`}},
		{"conn req host", "{url: http://a/, connection_request_host: 'http://x/'}", []string{`acs.connection_request_host: "http://x/"`}},
		{"empty command", "{url: http://a/, firmware_command: ['', x]}", []string{"acs.firmware_command: the command name is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(minimal + "acs: " + tc.acs + "\n"))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
