package board

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeRun records the command lines and answers from a table keyed by the
// command name; a missing name is "not found".
type fakeRun struct {
	calls [][]string
	out   map[string]string
	fail  map[string]error
}

func (f *fakeRun) run(_ context.Context, argv []string) ([]byte, error) {
	f.calls = append(f.calls, argv)
	if err := f.fail[argv[0]]; err != nil {
		return nil, err
	}
	out, ok := f.out[argv[0]]
	if !ok {
		return nil, fmt.Errorf("%s: %w", argv[0], exec.ErrNotFound)
	}
	return []byte(out), nil
}

func newHooks(t *testing.T, f *fakeRun) (*LinuxHooks, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := OpenStateDir(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "srv6cpe.yaml")
	if err := os.WriteFile(cfg, []byte("old: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &LinuxHooks{State: st, ConfigPath: cfg, run: f.run}
	return h, dir
}

func TestLinuxHooksReboot(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cmd       []string
		out       map[string]string
		fail      map[string]error
		sysErr    error
		wantCalls string
		wantSys   bool
		wantErr   string
	}{
		{name: "reboot tool", out: map[string]string{"reboot": ""}, wantCalls: "reboot"},
		{name: "configured command", cmd: []string{"systemctl", "reboot"}, out: map[string]string{"systemctl": ""}, wantCalls: "systemctl reboot"},
		{name: "no tool: syscall", wantCalls: "reboot", wantSys: true},
		{name: "no tool, syscall refused", sysErr: errors.New("operation not permitted"), wantCalls: "reboot", wantSys: true, wantErr: "reboot(2): operation not permitted"},
		{name: "tool fails", fail: map[string]error{"reboot": errors.New("exit status 1: denied")}, wantCalls: "reboot", wantErr: "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRun{out: tc.out, fail: tc.fail}
			h, _ := newHooks(t, f)
			h.RebootCommand = tc.cmd
			sys := false
			h.sysReboot = func() error { sys = true; return tc.sysErr }
			err := h.Reboot(context.Background())
			if got := joinCalls(f.calls); got != tc.wantCalls {
				t.Errorf("commands %q, want %q", got, tc.wantCalls)
			}
			if sys != tc.wantSys {
				t.Errorf("reboot(2) called: %v, want %v", sys, tc.wantSys)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func joinCalls(calls [][]string) string {
	var s []string
	for _, c := range calls {
		s = append(s, strings.Join(c, " "))
	}
	return strings.Join(s, "; ")
}

func TestLinuxHooksFactoryResetEmptiesStateDirThenReboots(t *testing.T) {
	f := &fakeRun{out: map[string]string{"reboot": ""}}
	h, dir := newHooks(t, f)
	for _, n := range []string{"cwmp-tree.json", "cwmp-events.json", "status.json"} {
		if err := h.State.WriteFile(n, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(h.State.Path(), "transfers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := h.FactoryReset(context.Background()); err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadDir(h.State.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("state dir still holds %d entries, e.g. %s", len(left), left[0].Name())
	}
	if got := joinCalls(f.calls); got != "reboot" {
		t.Errorf("commands %q, want reboot", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "srv6cpe.yaml")); err != nil || string(b) != "old: 1\n" {
		t.Errorf("config file after a factory reset: %q, %v; want it kept", b, err)
	}
}

func TestLinuxHooksFirmware(t *testing.T) {
	f := &fakeRun{out: map[string]string{"/usr/sbin/flash": ""}}
	h, _ := newHooks(t, f)
	if err := h.ApplyFirmware(context.Background(), "/tmp/image.bin"); !errors.Is(err, ErrFirmwareUnsupported) {
		t.Fatalf("without a firmware command: %v, want ErrFirmwareUnsupported", err)
	}
	h.FirmwareCommand = []string{"/usr/sbin/flash", "--verify"}
	if err := h.ApplyFirmware(context.Background(), "image.bin"); err == nil || !strings.Contains(err.Error(), `"image.bin"`) {
		t.Errorf("relative image path: %v, want an error naming it", err)
	}
	if err := h.ApplyFirmware(context.Background(), "/tmp/image.bin"); err != nil {
		t.Fatal(err)
	}
	if got := joinCalls(f.calls); got != "/usr/sbin/flash --verify /tmp/image.bin" {
		t.Errorf("commands %q", got)
	}
	f.fail = map[string]error{"/usr/sbin/flash": errors.New("exit status 2: bad signature")}
	if err := h.ApplyFirmware(context.Background(), "/tmp/image.bin"); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("failing command: %v, want its message", err)
	}
	if h.FirmwareCommand[1] != "--verify" || len(h.FirmwareCommand) != 2 {
		t.Errorf("FirmwareCommand changed by a call: %q", h.FirmwareCommand)
	}
}

func TestLinuxHooksApplyConfig(t *testing.T) {
	check := func(b []byte) error {
		if strings.Contains(string(b), "bad") {
			return errors.New("bad key")
		}
		return nil
	}
	for _, tc := range []struct {
		name      string
		content   string
		reloadErr []error // per reload call
		want      string  // config file afterwards
		reloads   int
		wantErr   string
	}{
		{name: "applied", content: "new: 2\n", want: "new: 2\n", reloads: 1},
		{name: "refused by the check", content: "bad: 2\n", want: "old: 1\n", wantErr: "bad key"},
		{name: "refused by the reload", content: "new: 2\n", reloadErr: []error{errors.New("wan: changed")}, want: "old: 1\n", reloads: 2, wantErr: "previous file restored: wan: changed"},
		{name: "old one refused too", content: "new: 2\n", reloadErr: []error{errors.New("wan: changed"), errors.New("still")}, want: "old: 1\n", reloads: 2, wantErr: "reloading the previous file failed: still"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, dir := newHooks(t, &fakeRun{})
			h.CheckConfig = check
			reloads := 0
			h.Reload = func(context.Context) error {
				reloads++
				if reloads <= len(tc.reloadErr) {
					return tc.reloadErr[reloads-1]
				}
				return nil
			}
			src := filepath.Join(dir, "download")
			if err := os.WriteFile(src, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			err := h.ApplyConfig(context.Background(), src)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if b, _ := os.ReadFile(h.ConfigPath); string(b) != tc.want {
				t.Errorf("config file %q, want %q", b, tc.want)
			}
			if reloads != tc.reloads {
				t.Errorf("%d reloads, want %d", reloads, tc.reloads)
			}
			if fi, err := os.Stat(h.ConfigPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("config file mode %v (%v), want 0600 (it holds credentials)", fi.Mode(), err)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), tempPrefix) {
					t.Errorf("temp file %s left behind", e.Name())
				}
			}
		})
	}
}

func TestLinuxHooksApplyConfigBounds(t *testing.T) {
	h, dir := newHooks(t, &fakeRun{})
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxConfigFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.ApplyConfig(context.Background(), big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	if err := h.ApplyConfig(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if b, _ := os.ReadFile(h.ConfigPath); string(b) != "old: 1\n" {
		t.Errorf("config file changed to %q", b)
	}
}

func TestLinuxHooksExport(t *testing.T) {
	f := &fakeRun{out: map[string]string{"dmesg": "kernel says hi\n"}}
	h, _ := newHooks(t, f)
	b, err := h.ExportConfig(context.Background())
	if err != nil || string(b) != "old: 1\n" {
		t.Errorf("ExportConfig = %q, %v", b, err)
	}
	b, err = h.ExportLog(context.Background())
	if err != nil || string(b) != "kernel says hi\n" {
		t.Errorf("ExportLog without journalctl = %q, %v; want dmesg's output", b, err)
	}
	if len(f.calls) != 2 || f.calls[0][0] != "journalctl" || f.calls[1][0] != "dmesg" {
		t.Errorf("commands %q, want journalctl then dmesg", joinCalls(f.calls))
	}

	f.calls = nil
	f.out["logtool"] = strings.Repeat("x", MaxExportLog) + "newest"
	h.LogCommand = []string{"logtool", "--all"}
	b, err = h.ExportLog(context.Background())
	if err != nil || len(b) != MaxExportLog || !strings.HasSuffix(string(b), "newest") {
		t.Errorf("capped log: %d bytes, %v; want the newest %d", len(b), err, MaxExportLog)
	}
	f.fail = map[string]error{"logtool": errors.New("exit status 1")}
	if _, err := h.ExportLog(context.Background()); err == nil || !slices.Equal(f.calls[len(f.calls)-1], []string{"logtool", "--all"}) {
		t.Errorf("failing configured log command: %v (calls %q); want an error and no fallback", err, joinCalls(f.calls))
	}
}

// The real command runner: a tool's standard error ends up in the error.
func TestRunCommand(t *testing.T) {
	out, err := runCommand(context.Background(), []string{"sh", "-c", "echo out; echo oops >&2"})
	if err != nil || string(out) != "out\n" {
		t.Errorf("runCommand = %q, %v", out, err)
	}
	_, err = runCommand(context.Background(), []string{"sh", "-c", "echo broken >&2; exit 3"})
	if err == nil || !strings.Contains(err.Error(), "exit status 3: broken") {
		t.Errorf("failing command: %v", err)
	}
	_, err = runCommand(context.Background(), []string{"/nonexistent/srv6cpe-tool"})
	if !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing command: %v, want not found", err)
	}
}
