package openwrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// feedDir is the OpenWrt feed package in this repository.
const feedDir = "../../scripts/openwrt/srv6cpe"

// TestShellcheck runs shellcheck as OpenWrt's ash is closest to: POSIX sh.
// Without shellcheck the test skips, except under CI=true where it fails.
func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("shellcheck not installed (Debian package shellcheck); CI=true requires it")
		}
		t.Skip("shellcheck not installed (Debian package shellcheck); skipping the feed's shell checks")
	}
	scripts := []string{"files/srv6cpe.init", "files/srv6cpe.hotplug"}
	for _, s := range scripts {
		cmd := exec.Command(sc, "-s", "sh", "-S", "style", filepath.Join(feedDir, s))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck -s sh %s: %v\n%s", s, err, out)
		}
	}
}

// TestFeedInstallsEveryFile keeps the Makefile and files/ in step: every
// file shipped in files/ is installed, and every installed file exists.
func TestFeedInstallsEveryFile(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(feedDir, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var installed []string
	for _, m := range regexp.MustCompile(`\./files/([A-Za-z0-9_.-]+)`).FindAllSubmatch(mk, -1) {
		installed = append(installed, string(m[1]))
	}
	entries, err := os.ReadDir(filepath.Join(feedDir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	var present []string
	for _, e := range entries {
		present = append(present, e.Name())
	}
	slices.Sort(installed)
	slices.Sort(present)
	if !slices.Equal(slices.Compact(installed), present) {
		t.Errorf("Makefile installs %q, files/ holds %q", installed, present)
	}
	for _, exe := range []string{"files/srv6cpe.init"} {
		fi, err := os.Stat(filepath.Join(feedDir, exe))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s must be executable (mode %v, %v)", exe, fi.Mode(), err)
		}
	}
}

// TestHotplugPokes runs the hotplug script with /bin/sh against a stub of
// OpenWrt's UCI helpers (through IPKG_INSTROOT, as OpenWrt's own scripts
// allow) and a ubus on PATH that records its arguments.
func TestHotplugPokes(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	script, err := filepath.Abs(filepath.Join(feedDir, "files/srv6cpe.hotplug"))
	if err != nil {
		t.Fatal(err)
	}
	poke := `call service signal {"name":"srv6cpe","signal":1}`
	tests := []struct {
		name string
		env  []string // ACTION, INTERFACE, IFUPDATE_PREFIXES, WAN6 (the UCI value; empty: unset)
		want string   // recorded ubus arguments
	}{
		{"ifup of wan6", []string{"ifup", "wan6", "", ""}, poke},
		{"prefix update", []string{"ifupdate", "wan6", "1", ""}, poke},
		{"address-only update", []string{"ifupdate", "wan6", "", ""}, ""},
		{"ifdown keeps the last prefix", []string{"ifdown", "wan6", "", ""}, ""},
		{"other interface", []string{"ifup", "lan", "", ""}, ""},
		{"configured interface", []string{"ifupdate", "wanb", "1", "wanb"}, poke},
		{"default no longer matches", []string{"ifup", "wan6", "", "wanb"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "lib"), 0o755); err != nil {
				t.Fatal(err)
			}
			stub := "config_load() { [ \"$1\" = srv6cpe ] || exit 9; }\n" +
				"config_get() { if [ -n \"$STUB_WAN6\" ]; then eval \"$1=\\$STUB_WAN6\"; else eval \"$1=\\$4\"; fi; }\n"
			if err := os.WriteFile(filepath.Join(root, "lib/functions.sh"), []byte(stub), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(root, "bin")
			record := filepath.Join(root, "ubus.args")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bin, "ubus"), []byte("#!/bin/sh\necho \"$*\" >> "+record+"\nexit 4\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", script)
			cmd.Env = []string{
				"PATH=" + bin + ":/usr/bin:/bin",
				"IPKG_INSTROOT=" + root,
				"ACTION=" + tt.env[0], "INTERFACE=" + tt.env[1], "IFUPDATE_PREFIXES=" + tt.env[2], "STUB_WAN6=" + tt.env[3],
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("hotplug script failed (a failing ubus must not fail it): %v\n%s", err, out)
			}
			got, _ := os.ReadFile(record)
			want := ""
			if tt.want != "" {
				want = tt.want + "\n"
			}
			if string(got) != want {
				t.Errorf("ubus called with %q, want %q", got, want)
			}
		})
	}
}
