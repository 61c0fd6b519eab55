package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/cwmpclient"
)

// CWMPStateFile is what the agent keeps about its CWMP client in the state
// dir (the client keeps its own cwmp-*.json files there too).
const CWMPStateFile = "cwmp-agent.json"

// bootIDFile changes on every boot of a Linux kernel.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// cwmpRestartWait is how long the agent waits before starting a client
// again whose Run failed (e.g. the connection request port was taken).
const cwmpRestartWait = 30 * time.Second

// cwmpOptions are the agent's options about CWMP.
type cwmpOptions struct {
	configPath string
	loadConfig func() (Config, error)
	hooks      cwmpclient.BoardHooks
	bootID     func() (string, error)
	restart    time.Duration
}

// WithConfigFile names the daemon's config file and how to load it with the
// command line's overrides. The ACS's configuration downloads replace that
// file and reload it; its configuration uploads export it.
func WithConfigFile(path string, load func() (Config, error)) Option {
	return func(o *options) { o.cwmp.configPath, o.cwmp.loadConfig = path, load }
}

// WithBoardHooks replaces the device actions an ACS may ask for (default:
// board.LinuxHooks built from the acs section).
func WithBoardHooks(h cwmpclient.BoardHooks) Option {
	return func(o *options) { o.cwmp.hooks = h }
}

// cwmpState is CWMPStateFile.
type cwmpState struct {
	// BootID is the kernel's boot id when the agent last started: a
	// different one means the device rebooted in between.
	BootID string `json:"boot_id"`
	// ConfigURL is the acs.url of the config the client last ran with.
	ConfigURL string `json:"config_url"`
}

// cwmpSide runs the agent's CWMP client: it builds one from the acs
// section, starts it again when a reload changes that section, and has it
// look at the notified parameters when the agent's status changes.
type cwmpSide struct {
	a       *Agent
	opts    cwmpOptions
	wan     string
	log     *zap.Logger
	configs chan cwmpConfig // the newest config; Run's reloads send it
	changed chan struct{}   // the status changed
	// bootChecked: the boot id was compared, once per process (a client
	// restarted by a reload is no boot); bootID is the one read then.
	bootChecked bool
	bootID      string
}

// cwmpConfig is the part of the config the client is built from.
type cwmpConfig struct {
	ACS      ACSConfig
	Identity board.IdentityConfig
}

func cwmpConfigOf(c Config) cwmpConfig { return cwmpConfig{ACS: c.ACS, Identity: c.Identity} }

func newCWMPSide(a *Agent, o cwmpOptions, wan string) *cwmpSide {
	if o.bootID == nil {
		o.bootID = readBootID
	}
	if o.restart <= 0 {
		o.restart = cwmpRestartWait
	}
	return &cwmpSide{a: a, opts: o, wan: wan, log: a.log.Named("cwmp"),
		configs: make(chan cwmpConfig, 1), changed: make(chan struct{}, 1)}
}

// reconfigure hands the client side a reloaded config; it never blocks
// (Run's goroutine calls it), an older unread one is replaced.
func (s *cwmpSide) reconfigure(cfg Config) {
	c := cwmpConfigOf(cfg)
	for {
		select {
		case s.configs <- c:
			return
		default:
		}
		select {
		case <-s.configs:
		default:
		}
	}
}

// statusChanged asks the client to compare the notified parameters (the
// prefix, the SIDs); it never blocks.
func (s *cwmpSide) statusChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// start runs the client side until ctx ends; the channel closes when it
// has stopped.
func (s *cwmpSide) start(ctx context.Context, cfg Config) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx, cwmpConfigOf(cfg))
	}()
	return done
}

func (s *cwmpSide) run(ctx context.Context, cfg cwmpConfig) {
	for {
		var (
			cl     *cwmpclient.Client
			done   chan error
			cancel context.CancelFunc = func() {}
			retry  <-chan time.Time
		)
		if cfg.ACS.Enabled() {
			var err error
			if cl, err = s.newClient(cfg); err != nil {
				s.log.Error("CWMP client not started; retrying later", zap.Error(err), zap.Duration("retry_in", s.opts.restart))
				retry = time.After(s.opts.restart)
			} else {
				var cctx context.Context
				cctx, cancel = context.WithCancel(ctx)
				done = make(chan error, 1)
				go func() { done <- cl.Run(cctx) }()
			}
		} else {
			s.log.Info("no acs.url: CWMP client off")
		}
		stop := func() {
			cancel()
			if done != nil {
				<-done
			}
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				stop()
				return
			case next := <-s.configs:
				if reflect.DeepEqual(next, cfg) {
					continue
				}
				s.log.Info("acs or identity section changed: restarting the CWMP client")
				stop()
				cfg = next
				break wait
			case err := <-done:
				done = nil
				if ctx.Err() != nil {
					return
				}
				s.log.Error("CWMP client stopped; restarting it later", zap.Error(err), zap.Duration("retry_in", s.opts.restart))
				retry = time.After(s.opts.restart)
			case <-retry:
				break wait
			case <-s.changed:
				if cl != nil && done != nil {
					if err := cl.CheckNotifications(); err != nil {
						s.log.Warn("notification check", zap.Error(err))
					}
				}
			}
		}
	}
}

// newClient builds a client for cfg: identity from the board, the state
// dir as its store, the WAN interface and the SRv6 subtree from the
// agent's status, the device actions.
func (s *cwmpSide) newClient(c cwmpConfig) (*cwmpclient.Client, error) {
	cfg := c.ACS
	st, err := s.loadState()
	if err != nil {
		s.log.Warn("CWMP agent state unreadable; starting afresh", zap.Error(err))
	}
	// TR-069's 1 BOOT is for a power-on or reset, not a restart of the
	// CWMP software alone; undelivered events go out again either way. A
	// client restarted by a reload is never a boot.
	restarted := s.bootChecked
	if !s.bootChecked {
		s.bootChecked = true
		id, err := s.opts.bootID()
		if err != nil {
			s.log.Warn("kernel boot id unknown: taking this start for a boot", zap.Error(err))
		}
		if rebooted(st.BootID, id, err) {
			s.log.Info("device booted since the agent last ran", zap.String("boot_id", id))
		} else {
			s.log.Info("agent restarted without a device reboot", zap.String("boot_id", id))
			restarted = true
		}
		s.bootID = id
	}
	st.BootID = s.bootID

	deps := cwmpclient.Deps{
		Store:      s.a.state,
		Info:       s.deviceInfo(c.Identity),
		Hooks:      s.hooks(cfg),
		Interfaces: s.interfaces,
		Logger:     s.log,
		Boot:       systemBoot(),
		Restarted:  restarted,
		// §8.1: the InformResponse registers the CPE with the controller.
		OnInformResponse: s.a.model.onInformResponse,
	}
	if cfg.ConnectionRequestHost == "" {
		deps.ConnectionRequestHost = s.wanAddress
	}
	if cfg.Transfer.WorkDir != "" && s.opts.hooks == nil && len(cfg.FirmwareCommand) == 0 {
		x, err := cwmpclient.NewTransferrer(cfg.Transfer)
		if err != nil {
			return nil, fmt.Errorf("acs.transfer: %w", err)
		}
		deps.Transfers = noFirmware{x}
	}
	cl, err := cwmpclient.New(cfg.Config, deps)
	if err != nil {
		return nil, err
	}
	if err := s.a.model.register(cl.Tree()); err != nil {
		return nil, fmt.Errorf("SRv6 objects: %w", err)
	}
	if err := s.a.monitor.attach(cl, deps.Info); err != nil {
		return nil, fmt.Errorf("monitoring tasks: %w", err)
	}
	if cfg.URL != st.ConfigURL {
		// The operator pointed the CPE at another ACS: that wins over what
		// the old ACS stored (and the new URL brings a 0 BOOTSTRAP).
		for name, v := range map[string]string{"URL": cfg.URL, "Username": cfg.Username, "Password": cfg.Password} {
			if err := cl.Tree().SetLocal("Device.ManagementServer."+name, v); err != nil {
				return nil, fmt.Errorf("acs.url: %w", err)
			}
		}
		if st.ConfigURL != "" {
			s.log.Info("acs.url changed", zap.String("old", st.ConfigURL), zap.String("new", cfg.URL))
		}
		st.ConfigURL = cfg.URL
	}
	if err := s.saveState(st); err != nil {
		return nil, err
	}
	if cfg.InsecureSkipTLSVerify {
		s.log.Warn("acs.insecure_skip_tls_verify is set: the ACS's certificate is not checked; anyone on the path can impersonate it")
	}
	return cl, nil
}

func (s *cwmpSide) loadState() (cwmpState, error) {
	var st cwmpState
	b, err := s.a.state.ReadFile(CWMPStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}

func (s *cwmpSide) saveState(st cwmpState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode %s: %w", CWMPStateFile, err)
	}
	return s.a.state.WriteFile(CWMPStateFile, b)
}

// rebooted tells a device boot from a restart of the daemon alone: the
// kernel's boot id differs from the one saved at the last start. No saved
// id (first start, factory reset) or no readable one counts as a boot.
func rebooted(saved, current string, readErr error) bool {
	return readErr != nil || current == "" || saved != current
}

func readBootID() (string, error) {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// systemBoot is when the kernel booted (Device.DeviceInfo.UpTime counts
// from it, not from the daemon's start); zero when unknown.
func systemBoot() time.Time {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(si.Uptime) * time.Second)
}

// deviceInfo is the board's identity: the config's values, then what the
// system says (DMI, device tree, the WAN MAC).
func (s *cwmpSide) deviceInfo(cfg board.IdentityConfig) cwmpclient.DeviceInfo {
	var mac net.HardwareAddr
	if ifi, err := net.InterfaceByName(s.wan); err == nil {
		mac = ifi.HardwareAddr
	}
	id := board.LoadIdentity(cfg, os.DirFS("/"), mac)
	return cwmpclient.DeviceInfo{
		Manufacturer: id.Manufacturer, ManufacturerOUI: id.OUI, ModelName: id.ProductClass,
		Description: "SD-WAN CPE (SRv6)", ProductClass: id.ProductClass, SerialNumber: id.SerialNumber,
		HardwareVersion: id.HardwareVersion, SoftwareVersion: id.SoftwareVersion,
	}
}

// hooks are the device actions: the caller's, or the plain Linux ones.
func (s *cwmpSide) hooks(cfg ACSConfig) cwmpclient.BoardHooks {
	if s.opts.hooks != nil {
		return s.opts.hooks
	}
	h := &board.LinuxHooks{
		State:           s.a.state,
		ConfigPath:      s.opts.configPath,
		CheckConfig:     func(b []byte) error { _, err := ParseConfig(b); return err },
		FirmwareCommand: cfg.FirmwareCommand,
		RebootCommand:   cfg.RebootCommand,
		LogCommand:      cfg.LogCommand,
	}
	if s.opts.loadConfig != nil {
		h.Reload = func(ctx context.Context) error {
			c, err := s.opts.loadConfig()
			if err != nil {
				return err
			}
			// Run waits for this client to stop before it stops taking
			// reloads: give up when the client is being stopped.
			done := make(chan error, 1)
			go func() { done <- s.a.Reload(c) }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return h
}

// noFirmware refuses firmware downloads up front where nothing could
// install them, instead of fetching an image only to fail afterwards.
type noFirmware struct{ cwmpclient.TransferExecutor }

func (n noFirmware) Download(ctx context.Context, r cwmpclient.TransferRecord) (string, error) {
	if r.FileType == cwmpclient.FileFirmware {
		return "", cwmpclient.NewFault(cwmpclient.FaultRequestDenied, "%v: set acs.firmware_command", board.ErrFirmwareUnsupported)
	}
	return n.TransferExecutor.Download(ctx, r)
}

// wanIndex is the instance number of the WAN interface, the only
// Device.IP.Interface the agent reports.
const wanIndex = 1

// interfaces is Device.IP.Interface.: the WAN interface with the agent's
// current address and delegated prefix.
func (s *cwmpSide) interfaces() []cwmpclient.IPInterface {
	st := s.a.Status()
	i := cwmpclient.IPInterface{Index: wanIndex, Name: s.wan, Enable: true, Status: "Down"}
	if st.Prefix.IsValid() {
		i.Status = "Up"
		i.IPv6Prefixes = []string{st.Prefix.String()}
	}
	if st.Address.IsValid() {
		i.IPv6Addresses = []string{st.Address.String()}
	}
	return []cwmpclient.IPInterface{i}
}

// wanAddress is the host of ConnectionRequestURL when the config names
// none: the CPE's WAN address.
func (s *cwmpSide) wanAddress() string {
	if a := s.a.Status().Address; a.IsValid() {
		return a.String()
	}
	return ""
}
