package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srv6cpe/srv6cpe/agent"
)

const testUCI = `config srv6cpe 'main'
	option enabled '1'
	option state_dir '/etc/srv6cpe'

config wan 'wan'
	option device 'eth1'
	option prefix_source 'static'
	option static_prefix '2001:db8:1200::/40'

config srv6 'srv6'
	option locator_len '48'
	option extension '0x5'

config service
	option name 'vpn6'
	option behavior 'End.DT6'
	option function '0x6'
`

// TestOpenWrtConfig runs what the init script runs: the YAML it writes is
// one the daemon loads, and a bad edit leaves the last good YAML in place.
func TestOpenWrtConfig(t *testing.T) {
	dir := t.TempDir()
	uci := filepath.Join(dir, "srv6cpe")
	out := filepath.Join(dir, "etc", "srv6cpe.yaml")
	if err := os.WriteFile(uci, []byte(testUCI), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"openwrt-config", "--uci", uci, "--out", out}, &stdout, &stderr); code != exitOK || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v (%v), want 0600: it may hold ACS credentials", fi.Mode(), err)
	}
	cfg, err := agent.LoadConfig(out)
	if err != nil {
		t.Fatalf("the daemon refuses the converted config: %v", err)
	}
	if cfg.WAN.Interface != "eth1" || cfg.SRv6.LocatorLen != 48 || len(cfg.Services) != 1 || cfg.Services[0].Function != 6 {
		t.Errorf("converted config: %+v", cfg)
	}
	good, _ := os.ReadFile(out)

	if err := os.WriteFile(uci, []byte(testUCI+"\toption bogus '1'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	code := run([]string{"openwrt-config", "--uci", uci, "--out", out}, &stdout, &stderr)
	if e := stderr.String(); code != exitBadValue || strings.Count(e, "\n") != 1 || !strings.Contains(e, uci+":18: service option bogus") {
		t.Errorf("bad UCI: exit %d, stderr %q", code, e)
	}
	if now, _ := os.ReadFile(out); !bytes.Equal(now, good) {
		t.Errorf("a failed conversion changed %s", out)
	}

	for _, args := range [][]string{{"openwrt-config", "--uci", uci}, {"openwrt-config", "--out", out}, {"openwrt-config", "--uci", "", "--out", out}} {
		stderr.Reset()
		if code := run(args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "missing --") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
