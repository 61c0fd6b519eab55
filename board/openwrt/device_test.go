package openwrt

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDeviceActions(t *testing.T) {
	toolErr := errors.New("exit status 1: Image check failed: unsupported image")
	tests := []struct {
		name    string
		keep    bool
		do      func(context.Context, Device) error
		fail    string // command line that fails with toolErr
		want    []string
		wantErr string
	}{
		{"firmware keeping config", true,
			func(ctx context.Context, d Device) error { return d.ApplyFirmware(ctx, "/tmp/fw.bin") }, "",
			[]string{"sysupgrade -T /tmp/fw.bin", "sysupgrade /tmp/fw.bin"}, ""},
		{"firmware without config", false,
			func(ctx context.Context, d Device) error { return d.ApplyFirmware(ctx, "/tmp/fw.bin") }, "",
			[]string{"sysupgrade -T /tmp/fw.bin", "sysupgrade -n /tmp/fw.bin"}, ""},
		{"firmware failing the check is not flashed", true,
			func(ctx context.Context, d Device) error { return d.ApplyFirmware(ctx, "/tmp/fw.bin") }, "sysupgrade -T /tmp/fw.bin",
			[]string{"sysupgrade -T /tmp/fw.bin"}, "firmware image /tmp/fw.bin failed the sysupgrade check: exit status 1: Image check failed: unsupported image"},
		{"flash failure", true,
			func(ctx context.Context, d Device) error { return d.ApplyFirmware(ctx, "/tmp/fw.bin") }, "sysupgrade /tmp/fw.bin",
			[]string{"sysupgrade -T /tmp/fw.bin", "sysupgrade /tmp/fw.bin"}, "flash firmware image /tmp/fw.bin: exit status 1"},
		{"relative image refused", true,
			func(ctx context.Context, d Device) error { return d.ApplyFirmware(ctx, "-n") }, "",
			nil, `firmware image "-n": want an absolute file path`},
		{"factory reset", false,
			func(ctx context.Context, d Device) error { return d.FactoryReset(ctx) }, "",
			[]string{"firstboot -y", "reboot"}, ""},
		{"failed firstboot does not reboot", false,
			func(ctx context.Context, d Device) error { return d.FactoryReset(ctx) }, "firstboot -y",
			[]string{"firstboot -y"}, "factory reset: exit status 1"},
		{"reboot", false,
			func(ctx context.Context, d Device) error { return d.Reboot(ctx) }, "",
			[]string{"reboot"}, ""},
		{"reboot failure", false,
			func(ctx context.Context, d Device) error { return d.Reboot(ctx) }, "reboot",
			[]string{"reboot"}, "reboot: exit status 1"},
		{"config restore then reboot", false,
			func(ctx context.Context, d Device) error { return d.ApplyConfig(ctx, "/tmp/cfg.tar.gz") }, "",
			[]string{"sysupgrade -r /tmp/cfg.tar.gz", "reboot"}, ""},
		{"failed restore does not reboot", false,
			func(ctx context.Context, d Device) error { return d.ApplyConfig(ctx, "/tmp/cfg.tar.gz") }, "sysupgrade -r /tmp/cfg.tar.gz",
			[]string{"sysupgrade -r /tmp/cfg.tar.gz"}, "restore configuration /tmp/cfg.tar.gz: exit status 1"},
		{"relative archive refused", false,
			func(ctx context.Context, d Device) error { return d.ApplyConfig(ctx, "cfg.tar.gz") }, "",
			nil, `configuration archive "cfg.tar.gz": want an absolute file path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRunner{reply: func(argv []string) ([]byte, error) {
				if strings.Join(argv, " ") == tt.fail {
					return nil, toolErr
				}
				return nil, nil
			}}
			err := tt.do(context.Background(), Device{Runner: r, KeepConfig: tt.keep})
			if got := r.Calls(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("commands %q, want %q", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			case tt.fail != "" && !errors.Is(err, toolErr):
				t.Errorf("error %v does not wrap the tool's error", err)
			}
		})
	}
}

func TestDeviceExports(t *testing.T) {
	tmp := t.TempDir()
	r := &fakeRunner{reply: func(argv []string) ([]byte, error) {
		switch {
		case len(argv) == 3 && argv[0] == "sysupgrade" && argv[1] == "-b":
			if !strings.HasPrefix(argv[2], tmp+"/") {
				t.Errorf("backup written to %s, outside TempDir %s", argv[2], tmp)
			}
			return nil, os.WriteFile(argv[2], []byte("tarball"), 0o600)
		case len(argv) == 1 && argv[0] == "logread":
			return []byte("Sun Nov 22 00:00:00 2026 daemon.info srv6cpe: started\n"), nil
		}
		return nil, errors.New("unexpected command")
	}}
	d := Device{Runner: r, TempDir: tmp}
	b, err := d.ExportConfig(context.Background())
	if err != nil || string(b) != "tarball" {
		t.Fatalf("ExportConfig = %q, %v", b, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("ExportConfig left %d entries in TempDir", len(left))
	}
	log, err := d.ExportLog(context.Background())
	if err != nil || !strings.Contains(string(log), "srv6cpe: started") {
		t.Fatalf("ExportLog = %q, %v", log, err)
	}
	want := []string{"sysupgrade -b " + r.Calls()[0][len("sysupgrade -b "):], "logread"}
	if got := r.Calls(); !reflect.DeepEqual(got, want) || filepath.Base(want[0]) != "backup.tar.gz" {
		t.Errorf("commands %q", got)
	}

	failing := Device{Runner: &fakeRunner{reply: func([]string) ([]byte, error) { return nil, errors.New("exit status 1: no space left") }}, TempDir: tmp}
	if _, err := failing.ExportConfig(context.Background()); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("ExportConfig error %v", err)
	}
	if _, err := failing.ExportLog(context.Background()); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("ExportLog error %v", err)
	}
}

// TestExecRunnerThroughTools runs Device against stand-in sysupgrade and
// reboot scripts on PATH: the real exec path, and the tool's stderr in the
// error.
func TestExecRunnerThroughTools(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs /bin/sh")
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "argv.log")
	script := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho \""+name+" $*\" >> "+logFile+"\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script("sysupgrade", `case "$1" in -T) case "$2" in *bad*) echo "Image metadata not found" >&2; echo "Image check failed." >&2; exit 1;; esac;; esac`)
	script("reboot", "exit 0")
	t.Setenv("PATH", dir)

	d := Device{Runner: ExecRunner{}, KeepConfig: true}
	ctx := context.Background()
	if err := d.ApplyFirmware(ctx, "/tmp/good.bin"); err != nil {
		t.Fatalf("good image: %v", err)
	}
	err := d.ApplyFirmware(ctx, "/tmp/bad.bin")
	want := "firmware image /tmp/bad.bin failed the sysupgrade check: sysupgrade -T /tmp/bad.bin: exit status 1: Image metadata not found\nImage check failed."
	if err == nil || err.Error() != want {
		t.Errorf("bad image error:\n%v\nwant\n%s", err, want)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("error %v does not carry the exit status", err)
	}
	if err := d.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(logFile)
	if got, want := string(log), "sysupgrade -T /tmp/good.bin\nsysupgrade /tmp/good.bin\nsysupgrade -T /tmp/bad.bin\nreboot \n"; got != want {
		t.Errorf("tools ran as\n%s\nwant\n%s", got, want)
	}
	if _, err := (ExecRunner{}).Run(ctx, "no-such-tool-srv6cpe"); err == nil || !strings.Contains(err.Error(), "no-such-tool-srv6cpe") {
		t.Errorf("missing tool error %v", err)
	}
}
