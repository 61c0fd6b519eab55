package cwmpclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// clientActions is the Client seen by the Dispatcher.
type clientActions struct{ c *Client }

func (a clientActions) Reboot(commandKey string) error {
	c := a.c
	// The event is stored first so the Inform after the reboot carries it.
	if err := c.events.Add(EventStruct{Code: EventMReboot, CommandKey: commandKey}); err != nil {
		return NewFault(FaultInternal, "reboot: %v", err)
	}
	c.mu.Lock()
	c.after = append(c.after, func(ctx context.Context) error { return c.deps.Hooks.Reboot(ctx) })
	c.mu.Unlock()
	return nil
}

func (a clientActions) FactoryReset() error {
	c := a.c
	c.mu.Lock()
	c.after = append(c.after, func(ctx context.Context) error { return c.deps.Hooks.FactoryReset(ctx) })
	c.mu.Unlock()
	return nil
}

func (a clientActions) ScheduleInform(delay time.Duration, commandKey string) error {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.state.Scheduled) >= maxScheduled {
		return NewFault(FaultResourcesExceeded, "%d scheduled informs pending", maxScheduled)
	}
	prev := c.state.Scheduled
	c.state.Scheduled = append(slices.Clone(prev), scheduledInform{At: c.clock.Now().Add(delay), CommandKey: commandKey})
	if err := c.saveState(); err != nil {
		c.state.Scheduled = prev
		return NewFault(FaultInternal, "schedule inform: %v", err)
	}
	return nil
}

func (a clientActions) QueueDownload(d Download) error {
	if a.c.xfer == nil {
		return NewFault(FaultRequestDenied, "file transfers are not configured on this CPE")
	}
	_, err := a.c.events.AddTransfer(DownloadRecord(d, a.c.clock.Now()))
	return err
}

func (a clientActions) QueueUpload(u Upload) error {
	if a.c.xfer == nil {
		return NewFault(FaultRequestDenied, "file transfers are not configured on this CPE")
	}
	_, err := a.c.events.AddTransfer(UploadRecord(u, a.c.clock.Now()))
	return err
}

func (a clientActions) Transfers() []AllQueuedTransfer {
	var out []AllQueuedTransfer
	for _, r := range a.c.events.Transfers() {
		if r.State != TransferCompleted {
			out = append(out, r.Queued())
		}
	}
	return out
}

func (a clientActions) CancelTransfer(commandKey string) error {
	return a.c.events.CancelTransfer(commandKey)
}

// fireScheduled turns due ScheduleInform requests into events.
func (c *Client) fireScheduled(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var due, keep []scheduledInform
	for _, s := range c.state.Scheduled {
		if now.Before(s.At) {
			keep = append(keep, s)
		} else {
			due = append(due, s)
		}
	}
	if len(due) == 0 {
		return false
	}
	evs := []EventStruct{{Code: EventScheduled}}
	for _, s := range due {
		evs = append(evs, EventStruct{Code: EventMScheduleInform, CommandKey: s.CommandKey})
	}
	if err := c.events.Add(evs...); err != nil {
		c.log.Warn("scheduled inform events not stored", zap.Error(err))
		return false
	}
	c.state.Scheduled = keep
	if err := c.saveState(); err != nil {
		c.log.Warn("client state not stored", zap.Error(err))
	}
	return true
}

func (c *Client) nextScheduled() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Time
	for _, s := range c.state.Scheduled {
		if t.IsZero() || s.At.Before(t) {
			t = s.At
		}
	}
	return t
}

func (c *Client) nextTransfer() time.Time {
	var t time.Time
	for _, r := range c.events.Transfers() {
		if r.State == TransferQueued && (t.IsZero() || r.NotBefore.Before(t)) {
			t = r.NotBefore
		}
	}
	return t
}

// recoverTransfers closes transfers a restart interrupted: they failed.
func (c *Client) recoverTransfers() {
	for _, r := range c.events.Transfers() {
		if r.State != TransferInProgress {
			continue
		}
		c.finishTransfer(r, NewFault(FaultDownloadFailure, "transfer interrupted by a restart"))
	}
}

// runDueTransfers runs the queued transfers whose delay has passed, one
// after the other, and reports whether any completed, and whether the
// device is going down to boot a new firmware image.
func (c *Client) runDueTransfers(ctx context.Context, now time.Time) (done, down bool) {
	for _, r := range c.events.Transfers() {
		if r.State != TransferQueued || now.Before(r.NotBefore) || ctx.Err() != nil {
			continue
		}
		r.State, r.StartTime = TransferInProgress, c.clock.Now()
		if err := c.events.UpdateTransfer(r); err != nil {
			c.log.Warn("transfer state not stored", zap.Error(err))
			continue
		}
		done = true
		if c.transfer(ctx, r) {
			// The rest waits for the next boot (the records persist).
			return done, true
		}
	}
	return done, false
}

// transfer moves the file, applies it and records the outcome. A
// downloaded file is recorded as transferred before it is applied, since
// applying may restart the device (sysupgrade, a configuration restore):
// its TransferComplete then goes out after the boot, with "1 BOOT", as
// TR-069 expects; a failure to apply overwrites the record. It reports
// whether the device is rebooting into a new firmware image.
func (c *Client) transfer(ctx context.Context, r TransferRecord) (rebooting bool) {
	if !r.IsDownload {
		var data []byte
		var err error
		if r.FileType == FileUploadLog || strings.HasPrefix(r.FileType, "4 ") {
			data, err = c.deps.Hooks.ExportLog(ctx)
		} else {
			data, err = c.deps.Hooks.ExportConfig(ctx)
		}
		if err != nil {
			err = NewFault(FaultUploadFailure, "export: %v", err)
		} else {
			err = c.xfer.Upload(ctx, r, data)
		}
		c.finishTransfer(r, err)
		return false
	}
	if r.FileType != FileFirmware && r.FileType != FileVendorConfig {
		c.finishTransfer(r, NewFault(FaultDownloadFailure, "file type %q cannot be applied", r.FileType))
		return false
	}
	path, err := c.xfer.Download(ctx, r)
	if err != nil {
		c.finishTransfer(r, err)
		return false
	}
	defer os.Remove(path)
	c.finishTransfer(r, nil)
	if r.FileType == FileVendorConfig {
		if err := c.deps.Hooks.ApplyConfig(ctx, path); err != nil {
			c.finishTransfer(r, NewFault(FaultFileCorrupted, "configuration: %v", err))
		}
		return false
	}
	if err := c.deps.Hooks.ApplyFirmware(ctx, path); err != nil {
		c.finishTransfer(r, NewFault(FaultFileCorrupted, "firmware: %v", err))
		return false
	}
	if err := c.deps.Hooks.Reboot(ctx); err != nil {
		c.log.Error("reboot into the new firmware failed", zap.Error(err))
		return false
	}
	return true
}

// finishTransfer records the outcome (err nil is success).
func (c *Client) finishTransfer(r TransferRecord, err error) {
	r.State, r.CompleteTime = TransferCompleted, c.clock.Now()
	r.FaultCode, r.FaultString = 0, ""
	if err != nil {
		f := AsFault(err)
		code := f.Code
		if !transferFaultOK(code) || (code == FaultInternal && !errors.As(err, new(*Fault))) {
			// TransferComplete allows only some codes; a plain error is a
			// transfer failure, not an internal one.
			code = FaultDownloadFailure
			if !r.IsDownload {
				code = FaultUploadFailure
			}
		}
		r.FaultCode, r.FaultString = code, f.String
		c.log.Warn("transfer failed", zap.String("command_key", r.CommandKey), zap.Int("code", f.Code), zap.String("reason", f.String))
	}
	if uerr := c.events.UpdateTransfer(r); uerr != nil {
		c.log.Warn("transfer result not stored", zap.Error(fmt.Errorf("%s: %w", r.CommandKey, uerr)))
	}
}
