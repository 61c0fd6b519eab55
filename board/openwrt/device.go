package openwrt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Device performs the OpenWrt device actions an ACS asks for, through the
// stock tools: sysupgrade, firstboot, reboot, logread. Its methods match
// cwmpclient.BoardHooks.
//
// sysupgrade and reboot end the running system: the caller must have
// persisted everything it needs after the restart (the pending
// TransferComplete, the boot event) before calling them. With KeepConfig,
// sysupgrade keeps /etc/config and the files listed in
// /lib/upgrade/keep.d/ (the feed package lists the agent's state
// directory there), so the agent finds its state again after the flash.
type Device struct {
	Runner Runner
	// KeepConfig keeps the configuration across a firmware upgrade
	// (sysupgrade without -n). An upgrade that does not keep it loses the
	// agent's state too, and with it the TransferComplete to report.
	KeepConfig bool
	// TempDir receives the configuration backup ExportConfig builds
	// (default os.TempDir(), /tmp: RAM on OpenWrt).
	TempDir string
}

// ApplyFirmware checks the image with "sysupgrade -T" and, if it passes,
// flashes it with "sysupgrade [-n] image". The check failing returns the
// tool's explanation and leaves the system untouched. On success the
// device reboots and the call normally does not return.
func (d Device) ApplyFirmware(ctx context.Context, image string) error {
	if err := checkPath("firmware image", image); err != nil {
		return err
	}
	if _, err := d.Runner.Run(ctx, "sysupgrade", "-T", image); err != nil {
		return fmt.Errorf("firmware image %s failed the sysupgrade check: %w", image, err)
	}
	args := []string{image}
	if !d.KeepConfig {
		args = []string{"-n", image}
	}
	if _, err := d.Runner.Run(ctx, "sysupgrade", args...); err != nil {
		return fmt.Errorf("flash firmware image %s: %w", image, err)
	}
	return nil
}

// FactoryReset erases the overlay with "firstboot -y" and reboots. When
// firstboot fails the device is not rebooted.
func (d Device) FactoryReset(ctx context.Context) error {
	if _, err := d.Runner.Run(ctx, "firstboot", "-y"); err != nil {
		return fmt.Errorf("factory reset: %w", err)
	}
	return d.Reboot(ctx)
}

// Reboot runs "reboot", which asks procd for an orderly restart.
func (d Device) Reboot(ctx context.Context) error {
	if _, err := d.Runner.Run(ctx, "reboot"); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// ApplyConfig restores a configuration backup (the archive ExportConfig
// or "sysupgrade -b" makes) with "sysupgrade -r" and reboots so that every
// service starts from it.
func (d Device) ApplyConfig(ctx context.Context, archive string) error {
	if err := checkPath("configuration archive", archive); err != nil {
		return err
	}
	if _, err := d.Runner.Run(ctx, "sysupgrade", "-r", archive); err != nil {
		return fmt.Errorf("restore configuration %s: %w", archive, err)
	}
	return d.Reboot(ctx)
}

// ExportConfig returns a configuration backup made by "sysupgrade -b" (a
// gzip tar of /etc/config and the kept files).
func (d Device) ExportConfig(ctx context.Context) ([]byte, error) {
	dir := d.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	tmp, err := os.MkdirTemp(dir, "srv6cpe-backup-")
	if err != nil {
		return nil, fmt.Errorf("export configuration: %w", err)
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "backup.tar.gz")
	if _, err := d.Runner.Run(ctx, "sysupgrade", "-b", archive); err != nil {
		return nil, fmt.Errorf("export configuration: %w", err)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		return nil, fmt.Errorf("export configuration: %w", err)
	}
	return b, nil
}

// ExportLog returns the system log ring buffer ("logread").
func (d Device) ExportLog(ctx context.Context) ([]byte, error) {
	b, err := d.Runner.Run(ctx, "logread")
	if err != nil {
		return nil, fmt.Errorf("export log: %w", err)
	}
	return b, nil
}
