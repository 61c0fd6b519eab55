package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
	"github.com/srv6cpe/srv6cpe/twamp/endtsf"
)

// End.TSF on the far node (draft-gandhi-spring-enhanced-srpm): a sender's
// loopback probe whose segment list ends at our End.TSF SID gets the
// receive timestamp T2 written here, so the sender measures one-way
// forward and backward delays. The SID is locator ‖ function like a
// service's (clause 6.2), installed as End.DX6 nh6 :: (decapsulate and
// route: the probe's inner header returns it to its sender); a tc program
// at ingress of the WAN links (twamp/endtsf) does the stamping. Where the
// program cannot run (no eBPF, no tcx, no bpf_ktime_get_tai_ns), the SID
// is still installed and answers as a plain loopback: senders get round
// trips only, and the status says why.

// EndTSFConfig is srv6.end_tsf.
type EndTSFConfig struct {
	// Function is the SID's function value (srv6.function_len bits): the
	// SID is the locator followed by it, like a service SID, so it follows
	// the delegated prefix when the CPE is renumbered.
	Function Function `yaml:"function"`
	// Interfaces are further links the probes may arrive on (a second
	// uplink); wan.interface is always one.
	Interfaces []string `yaml:"interfaces"`
}

// EndTSFStatus is what the status reports about srv6.end_tsf.
type EndTSFStatus struct {
	SID netip.Addr `json:"sid"`
	// Installed is the SID's seg6local route.
	Installed string `json:"installed"`
	// Stamping says probes to SID get T2 written; false: plain loopback.
	Stamping   bool     `json:"stamping"`
	Interfaces []string `json:"interfaces"`
	// Error says why End.TSF is unavailable, or what failed while setting
	// the stamper up (an interface that does not exist yet).
	Error string `json:"error,omitempty"`
}

// endTSFName names the End.TSF SID where SIDs are derived by name.
const endTSFName = "end_tsf"

func (c *Config) validateEndTSF() []error {
	t := c.SRv6.EndTSF
	if t == nil {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("srv6.end_tsf.%w", fmt.Errorf(format, a...)))
	}
	f, fl := uint64(t.Function), c.SRv6.FunctionLen
	switch {
	case f == 0:
		bad("function: must be set and non-zero")
	case fl >= 1 && fl < 64 && f >= 1<<fl:
		bad("function: %#x does not fit srv6.function_len %d bits", f, fl)
	case c.SRv6.LocatorLen+fl == 128 && fl < 64 && f == 1<<fl-1:
		bad("function: %#x makes the SID the tunnel source (the locator's last address)", f)
	}
	for _, s := range c.Services {
		if s.Function == t.Function && f != 0 {
			bad("function: %#x is also the function of service %q", f, s.Name)
		}
	}
	seen := map[string]bool{c.WAN.Interface: true}
	for i, n := range t.Interfaces {
		if err := checkIfName(n); err != nil {
			bad("interfaces[%d]: %w", i, err)
		} else if seen[n] {
			bad("interfaces[%d]: %q is listed twice (wan.interface is always one)", i, n)
		}
		seen[n] = true
	}
	return errs
}

// endTSFSID is the End.TSF SID on prefix, derived like a service SID.
func endTSFSID(cfg Config, prefix netip.Prefix) (netip.Addr, error) {
	one := cfg
	one.Services = []ServiceConfig{{Name: endTSFName, Behavior: srv6.EndDX6.String(), Function: cfg.SRv6.EndTSF.Function}}
	d, err := derive(one, prefix)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("srv6.end_tsf: %w", err)
	}
	return d.SIDs[0].SID, nil
}

// withEndTSF adds the End.TSF SID's route to want: End.DX6 nh6 ::, whether
// or not this node can stamp (without the stamper it is a plain loopback).
// A SID want already has (a controller's path BSID on that address) keeps
// its route: the End.TSF SID is then not installed (endTSFTaken).
func withEndTSF(cfg Config, prefix netip.Prefix, want dataplane.Desired) (dataplane.Desired, error) {
	if cfg.SRv6.EndTSF == nil {
		return want, nil
	}
	sid, err := endTSFSID(cfg, prefix)
	if err != nil {
		return dataplane.Desired{}, err
	}
	if endTSFTaken(want, sid) == nil {
		want.LocalSIDs = append(slices.Clip(want.LocalSIDs), endTSFRoute(cfg, sid))
	}
	return want, nil
}

// endTSFTaken says which other route of want holds sid, if any.
func endTSFTaken(want dataplane.Desired, sid netip.Addr) error {
	for _, l := range slices.Concat(want.LocalSIDs, want.BSIDs) {
		if l.SID == sid && !(l.Behavior == srv6.EndDX6 && l.NH6 == netip.IPv6Unspecified() && len(l.Segments) == 0) {
			return fmt.Errorf("End.TSF SID %s not installed: it is the %s of another route", sid, describeLocalSID(l))
		}
	}
	return nil
}

func endTSFRoute(cfg Config, sid netip.Addr) dataplane.LocalSID {
	return dataplane.LocalSID{SID: sid, Behavior: srv6.EndDX6, NH6: netip.IPv6Unspecified(), Dev: cfg.WAN.Interface}
}

// tsfStamper is the stamping program's side (endtsf.Stamper); tests fake it.
type tsfStamper interface {
	SetSIDs([]endtsf.SID) error
	SetInterfaces([]string) error
	Run(context.Context)
	Close() error
}

// endTSF runs the stamper while srv6.end_tsf is configured and keeps it
// told the current SID and interfaces (level-triggered: follow after every
// apply, so a renumbering or a recreated link is picked up).
type endTSF struct {
	log   *zap.Logger
	probe func() error
	open  func(*zap.Logger) (tsfStamper, error)

	mu      sync.Mutex
	ctx     context.Context // start's; nil before and after
	st      tsfStamper
	stop    context.CancelFunc // ends st's clock refresh
	ran     chan struct{}      // closed when st's clock refresh has ended
	probed  bool
	unavail error // why this node cannot stamp (Probe's answer)
}

func newEndTSF(log *zap.Logger) *endTSF {
	return &endTSF{log: log, probe: endtsf.Probe,
		open: func(l *zap.Logger) (tsfStamper, error) { return endtsf.New(l) }}
}

// start lets follow run the stamper until ctx ends; done closes once it
// is detached and freed.
func (e *endTSF) start(ctx context.Context) <-chan struct{} {
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		e.mu.Lock()
		e.ctx = nil
		e.closeLocked()
		e.mu.Unlock()
		close(done)
	}()
	return done
}

// follow makes the stamper stamp cfg's End.TSF SID on prefix at ingress of
// the WAN and the configured interfaces, or frees it when cfg has no
// srv6.end_tsf; applied is the state the kernel now holds (a SID another
// route took is not stamped). It returns the status to report (nil: not
// configured).
func (e *endTSF) follow(cfg Config, prefix netip.Prefix, applied dataplane.Desired) *EndTSFStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := cfg.SRv6.EndTSF
	if t == nil || e.ctx == nil {
		e.closeLocked()
		return nil
	}
	sid, err := endTSFSID(cfg, prefix)
	if err != nil {
		return &EndTSFStatus{Error: err.Error()}
	}
	st := &EndTSFStatus{SID: sid, Installed: describeLocalSID(endTSFRoute(cfg, sid)),
		Interfaces: append([]string{cfg.WAN.Interface}, t.Interfaces...)}
	sids := []endtsf.SID{{Addr: sid, Mode: twamp.Unauthenticated}}
	taken := endTSFTaken(applied, sid)
	if taken != nil {
		st.Installed, sids = "", nil
	}
	if err := e.openLocked(); err != nil {
		st.Error = errors.Join(taken, err).Error()
		return st
	}
	errSIDs := e.st.SetSIDs(sids)
	errIfs := e.st.SetInterfaces(st.Interfaces)
	st.Stamping = errSIDs == nil && taken == nil
	if err := errors.Join(taken, errSIDs, errIfs); err != nil {
		st.Error = err.Error()
		e.log.Warn("end.tsf stamping not fully set up", zap.Stringer("sid", sid), zap.Error(err))
	}
	return st
}

// openLocked probes once per run and loads the stamper when it is not
// loaded; the error says why there is none.
func (e *endTSF) openLocked() error {
	if e.st != nil {
		return nil
	}
	if !e.probed {
		e.probed = true
		if e.unavail = e.probe(); e.unavail != nil {
			e.log.Warn("End.TSF unavailable: probes to the End.TSF SID are answered as plain loopback (no T2)", zap.Error(e.unavail))
		}
	}
	if e.unavail != nil {
		return fmt.Errorf("End.TSF unavailable, plain loopback: %w", e.unavail)
	}
	st, err := e.open(e.log)
	if err != nil {
		return fmt.Errorf("End.TSF stamper not loaded, plain loopback: %w", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	e.st, e.stop, e.ran = st, cancel, make(chan struct{})
	go func(ran chan<- struct{}) {
		defer close(ran)
		st.Run(ctx)
	}(e.ran)
	return nil
}

func (e *endTSF) closeLocked() {
	if e.st == nil {
		return
	}
	e.stop()
	<-e.ran
	if err := e.st.Close(); err != nil {
		e.log.Warn("end.tsf stamper not closed cleanly", zap.Error(err))
	}
	e.st, e.stop, e.ran = nil, nil, nil
}
