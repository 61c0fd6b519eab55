package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "wan:\n  interface: wan0\n  prefix_sauce: address\nsrv6: {locator_len: 48}\n")
	twoBad := write("bad.yaml", "wan: {interface: wan0}\nsrv6: {locator_len: 48, function_len: 99}\nlog_level: loud\n")
	good := "../../examples/srv6cpe.yaml"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // on stderr
	}{
		{"no config", nil, exitUsage, "srv6cpe: --config FILE is required"},
		{"unknown flag", []string{"--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{"extra argument", []string{"--config", good, "extra"}, exitUsage, `srv6cpe: unexpected argument "extra"`},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, exitUsage, "nope.yaml"},
		{"typo", []string{"--config", typo}, exitUsage, "line 3: field prefix_sauce not found"},
		{"two bad values on one line", []string{"--config", twoBad}, exitUsage, `log_level: "loud" is not one of debug, info, warn, error; srv6.function_len: 99 is outside 1..64`},
		{"bad log level flag", []string{"--config", good, "--log-level", "chatty"}, exitUsage, `log_level: "chatty"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
			if tc.name != "unknown flag" && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("stderr is more than one line: %q", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(stdout.String(), "srv6cpe ") {
		t.Errorf("stdout %q", stdout.String())
	}
}
