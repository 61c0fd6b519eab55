package board

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrFirmwareUnsupported is returned by LinuxHooks.ApplyFirmware when no
// firmware command is configured: a plain Linux system has no standard way
// to install an image.
var ErrFirmwareUnsupported = errors.New("firmware upgrade is not supported on this system (no firmware command configured)")

// Bounds of what the hooks read: a config file and an exported log.
const (
	MaxConfigFile = 1 << 20
	MaxExportLog  = 4 << 20
)

// LinuxHooks performs the device actions an ACS asks for on a plain Linux
// system (its methods match cwmpclient.BoardHooks): reboot, factory reset
// (empty the state dir, then reboot), a firmware image through a
// configured command, and the daemon's own YAML as the vendor
// configuration file. OpenWrt boards have their own (board/openwrt).
type LinuxHooks struct {
	// State is the agent's state dir: FactoryReset empties it, so the next
	// boot starts from the config file alone (0 BOOTSTRAP included).
	State *StateDir
	// ConfigPath is the daemon's config file: ExportConfig returns it,
	// ApplyConfig replaces it.
	ConfigPath string
	// CheckConfig validates a candidate config file before it replaces
	// ConfigPath; nil accepts any.
	CheckConfig func(data []byte) error
	// Reload makes the daemon apply ConfigPath (what SIGHUP does). When it
	// fails, ApplyConfig puts the previous file back and reloads that.
	Reload func(ctx context.Context) error
	// FirmwareCommand installs a firmware image: the command and its
	// arguments, the image path appended. Empty: ApplyFirmware returns
	// ErrFirmwareUnsupported.
	FirmwareCommand []string
	// RebootCommand asks the init system for an orderly reboot; empty means
	// "reboot". When the command does not exist, reboot(2) is used.
	RebootCommand []string
	// LogCommand prints the log ExportLog returns; empty means the
	// journal of this boot, or the kernel log where there is no journalctl.
	LogCommand []string

	// run and sysReboot replace the real thing in tests.
	run       func(ctx context.Context, argv []string) ([]byte, error)
	sysReboot func() error
}

// Reboot runs the reboot command; it returns once the init system has the
// request (the daemon is then stopped by it).
func (h *LinuxHooks) Reboot(ctx context.Context) error {
	argv := h.RebootCommand
	if len(argv) == 0 {
		argv = []string{"reboot"}
	}
	_, err := h.runCmd(ctx, argv)
	if notFound(err) {
		// A minimal system (a container image, an initramfs) may lack the
		// tool; the syscall reboots without an orderly shutdown.
		unix.Sync()
		reboot := h.sysReboot
		if reboot == nil {
			reboot = func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) }
		}
		if err := reboot(); err != nil {
			return fmt.Errorf("reboot: %s not found, reboot(2): %w", argv[0], err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// FactoryReset empties the state dir (the CWMP parameter values, events,
// instance numbers and the ACS bootstrap record go with it) and reboots.
// The config file stays: on a plain Linux system it is the factory
// configuration.
func (h *LinuxHooks) FactoryReset(ctx context.Context) error {
	if h.State == nil {
		return errors.New("factory reset: no state dir")
	}
	if err := h.State.wipe(); err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	return h.Reboot(ctx)
}

// wipe removes everything in the state dir, durably.
func (d *StateDir) wipe() error {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", d.path, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(d.path, e.Name())); err != nil {
			return fmt.Errorf("state dir %s: %w", d.path, err)
		}
	}
	return syncDir(d.path)
}

// ApplyFirmware runs FirmwareCommand with the image path; the caller
// reboots afterwards.
func (h *LinuxHooks) ApplyFirmware(ctx context.Context, image string) error {
	if len(h.FirmwareCommand) == 0 {
		return ErrFirmwareUnsupported
	}
	if !filepath.IsAbs(image) {
		return fmt.Errorf("firmware image %q: want an absolute path", image)
	}
	argv := append(append([]string(nil), h.FirmwareCommand...), image)
	if _, err := h.runCmd(ctx, argv); err != nil {
		return fmt.Errorf("install firmware image %s: %w", image, err)
	}
	return nil
}

// ApplyConfig replaces the config file with the one at path, atomically,
// after CheckConfig accepted it, and has the daemon reload it. A refused
// reload restores the previous file (and reloads it), so a bad download
// never stays in force.
func (h *LinuxHooks) ApplyConfig(ctx context.Context, path string) error {
	if h.ConfigPath == "" {
		return errors.New("apply config: the daemon has no config file")
	}
	data, err := readCapped(path, MaxConfigFile)
	if err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	if h.CheckConfig != nil {
		if err := h.CheckConfig(data); err != nil {
			return fmt.Errorf("apply config %s: %w", path, err)
		}
	}
	old, err := os.ReadFile(h.ConfigPath)
	if err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	cfgFile := &StateDir{path: filepath.Dir(h.ConfigPath)}
	name := filepath.Base(h.ConfigPath)
	if err := cfgFile.WriteFile(name, data); err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	if h.Reload == nil {
		return nil
	}
	rerr := h.Reload(ctx)
	if rerr == nil {
		return nil
	}
	if err := cfgFile.WriteFile(name, old); err != nil {
		return fmt.Errorf("apply config: reload refused it (%w), and restoring the previous file failed: %w", rerr, err)
	}
	if err := h.Reload(ctx); err != nil {
		return fmt.Errorf("apply config: reload refused it (%w), and reloading the previous file failed: %w", rerr, err)
	}
	return fmt.Errorf("apply config: reload refused it; previous file restored: %w", rerr)
}

// ExportConfig returns the config file.
func (h *LinuxHooks) ExportConfig(context.Context) ([]byte, error) {
	if h.ConfigPath == "" {
		return nil, errors.New("export config: the daemon has no config file")
	}
	b, err := readCapped(h.ConfigPath, MaxConfigFile)
	if err != nil {
		return nil, fmt.Errorf("export config: %w", err)
	}
	return b, nil
}

// ExportLog returns the output of LogCommand, at most MaxExportLog bytes
// (the newest part).
func (h *LinuxHooks) ExportLog(ctx context.Context) ([]byte, error) {
	argv := h.LogCommand
	if len(argv) == 0 {
		argv = []string{"journalctl", "-b", "--no-pager", "-o", "short-iso", "-n", "20000"}
	}
	out, err := h.runCmd(ctx, argv)
	if notFound(err) && len(h.LogCommand) == 0 {
		out, err = h.runCmd(ctx, []string{"dmesg"}) // no systemd journal
	}
	if err != nil {
		return nil, fmt.Errorf("export log: %w", err)
	}
	if len(out) > MaxExportLog {
		out = out[len(out)-MaxExportLog:]
	}
	return out, nil
}

func (h *LinuxHooks) runCmd(ctx context.Context, argv []string) ([]byte, error) {
	if h.run != nil {
		return h.run(ctx, argv)
	}
	return runCommand(ctx, argv)
}

// notFound: the command does not exist (looked up on PATH, or a path).
func notFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// maxStderr bounds how much of a tool's standard error goes into an error.
const maxStderr = 1024

// runCommand runs argv until it exits or ctx ends. Its error names the
// command line and carries the tool's trimmed standard error.
func runCommand(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	line := strings.Join(argv, " ")
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > maxStderr {
		msg = msg[:maxStderr] + "..."
	}
	if msg == "" {
		return nil, fmt.Errorf("%s: %w", line, err)
	}
	return nil, fmt.Errorf("%s: %w: %s", line, err, msg)
}

// readCapped reads a regular file of at most limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
