package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// Files the agent keeps in its state dir.
const (
	StatusFile = "status.json"
	PrefixFile = "prefix.json"
)

// ErrStopped is returned by Reload once Run has returned.
var ErrStopped = errors.New("agent: stopped")

// ErrKernel marks a config the kernel cannot carry out (e.g. two VPNs without
// VRF support): a configuration problem, found only once the dataplane is probed.
var ErrKernel = errors.New("config not supported by this kernel")

// Defaults of the apply retry schedule and of one Apply's time limit.
const (
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = time.Minute
	DefaultApplyTimeout = 30 * time.Second
	DefaultResync       = 30 * time.Second
)

// Option configures New.
type Option func(*options)

type options struct {
	log          *zap.Logger
	src          board.PrefixSource
	dp           dataplane.Dataplane
	state        *board.StateDir
	retryMin     time.Duration
	retryMax     time.Duration
	applyTimeout time.Duration
	resync       time.Duration
	now          func() time.Time
	bgp          bgpOptions
	cwmp         cwmpOptions
	pathProbes   func(twamp.SenderConfig) (twamp.Session, error)
}

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithPrefixSource replaces the prefix source the config describes.
func WithPrefixSource(s board.PrefixSource) Option { return func(o *options) { o.src = s } }

// WithDataplane replaces the netlink dataplane on the WAN interface.
func WithDataplane(d dataplane.Dataplane) Option { return func(o *options) { o.dp = d } }

// WithStateDir replaces the state dir the config names.
func WithStateDir(s *board.StateDir) Option { return func(o *options) { o.state = s } }

// WithRetryBackoff sets the first and the longest wait between Apply retries.
func WithRetryBackoff(first, longest time.Duration) Option {
	return func(o *options) { o.retryMin, o.retryMax = first, longest }
}

// WithApplyTimeout bounds one Apply call.
func WithApplyTimeout(d time.Duration) Option { return func(o *options) { o.applyTimeout = d } }

// WithResync sets how often the whole state is re-applied without an event,
// restoring routes the kernel or an operator removed.
func WithResync(d time.Duration) Option { return func(o *options) { o.resync = d } }

// WithClock sets the clock used for status times.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Agent derives the SRv6 SIDs from the delegated prefix and keeps the
// dataplane equal to what the config and the prefix call for.
type Agent struct {
	log          *zap.Logger
	mem          memoryRelease
	src          board.PrefixSource
	dp           dataplane.Dataplane
	owned        io.Closer // the dataplane New opened, closed when Run returns
	state        *board.StateDir
	caps         dataplane.Capabilities
	retryMin     time.Duration
	retryMax     time.Duration
	applyTimeout time.Duration
	resync       time.Duration
	now          func() time.Time

	reloads chan reloadRequest
	stopped chan struct{}
	started atomic.Bool

	mu     sync.Mutex
	status Status

	// static is the static prefix source New built, which a reload can change.
	static *board.StaticPrefix

	// Owned by Run's goroutine.
	cfg        Config
	cur        board.PrefixChange
	havePrefix bool
	failures   int
	persisted  PersistedPrefix
	published  []byte      // status.json as last written, without its times
	appliedLog string      // what the last "SIDs programmed" line said
	bgp        bgpSide     // the BGP speaker and what it was handed
	cwmp       *cwmpSide   // the CWMP client; its own goroutine
	model      *srv6Model  // the SRv6 configuration the controller sets (cwmpsrv6.go)
	monitor    *monitor    // the monitoring tasks (monitor*.go); its own goroutines
	probes     *pathProbes // latency of the dynamic paths (path_probe.go); its own goroutines
	policies   *policySide // the SRv6 policies' selectors and probes (policy_run.go); its own lock
	tsf        *endTSF     // End.TSF stamping of probes to our End.TSF SID (endtsf.go)
}

type reloadRequest struct {
	cfg  Config
	resp chan error
}

// New validates cfg and sets the agent up: the state dir, the prefix
// source and the dataplane (probing its capabilities) unless options supply
// them. A config the kernel cannot carry out is an error wrapping ErrKernel.
// Nothing is applied until Run has a prefix.
func New(cfg Config, opts ...Option) (*Agent, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{
		log:          zap.NewNop(),
		retryMin:     DefaultRetryMin,
		retryMax:     DefaultRetryMax,
		applyTimeout: DefaultApplyTimeout,
		resync:       DefaultResync,
		now:          time.Now,
		bgp:          defaultBGPOptions(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.retryMin <= 0 || o.retryMax < o.retryMin {
		return nil, fmt.Errorf("agent: retry backoff %s..%s is not a valid range", o.retryMin, o.retryMax)
	}
	if o.resync <= 0 || o.applyTimeout <= 0 {
		return nil, fmt.Errorf("agent: resync %s and apply timeout %s must be positive", o.resync, o.applyTimeout)
	}
	if err := o.bgp.check(); err != nil {
		return nil, err
	}
	a := &Agent{
		log:          o.log,
		src:          o.src,
		dp:           o.dp,
		state:        o.state,
		retryMin:     o.retryMin,
		retryMax:     o.retryMax,
		applyTimeout: o.applyTimeout,
		resync:       o.resync,
		now:          o.now,
		reloads:      make(chan reloadRequest),
		stopped:      make(chan struct{}),
		cfg:          cfg,
		bgp:          bgpSide{opts: o.bgp, log: o.log.Named("bgp")},
	}
	var err error
	if a.state == nil {
		if a.state, err = board.OpenStateDir(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	if a.src == nil {
		a.src = prefixSource(cfg.WAN, a.log)
		a.static, _ = a.src.(*board.StaticPrefix)
	}
	if a.dp == nil {
		k, err := openDataplane(cfg.WAN.Interface, a.log)
		if err != nil {
			return nil, err
		}
		a.dp, a.owned = k, k
	}
	a.caps = a.dp.Capabilities()
	a.model = newSRv6Model(a, a.state, a.caps, a.log.Named("srv6model"))
	cfg = a.model.start(cfg) // the controller's configuration over the file's
	a.cfg = cfg
	if err := checkKernel(cfg, a.caps); err != nil {
		// The probe's notes say why a capability is missing (e.g. "network
		// is down" when loopback is not up yet).
		if r, ok := a.dp.(interface{ Status() dataplane.Status }); ok {
			if notes := r.Status().ProbeNotes; len(notes) > 0 {
				err = fmt.Errorf("%w (capability probe: %s)", err, strings.Join(notes, "; "))
			}
		}
		a.closeOwned()
		return nil, fmt.Errorf("%w: %w", ErrKernel, err)
	}
	a.status = Status{State: StateWaitingForPrefix, LocatorName: cfg.SRv6.LocatorName, Capabilities: a.caps}
	a.cwmp = newCWMPSide(a, o.cwmp, cfg.WAN.Interface)
	if p, ok := a.loadPersisted(); ok {
		a.persisted = p
		a.status.Previous = &p
	}
	a.monitor = newMonitor(a, a.state, a.log.Named("monitor"))
	a.probes = newPathProbes(a.log.Named("paths"), o.pathProbes)
	a.policies = newPolicySide(a.log.Named("policy"), a.now, o.pathProbes)
	a.policies.configure(&a.cfg)
	a.tsf = newEndTSF(a.log.Named("endtsf"))
	a.monitor.load(cfg, a.persisted.Address)
	return a, nil
}

// Status returns a copy of the current status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status.clone()
}

// Reload replaces the config. An invalid config, one the kernel cannot
// carry out, one that changes what only a restart can (wan, state_dir), or
// one the current prefix cannot be derived for is rejected and changes
// nothing. An accepted config is applied at once, and Reload returns when
// that Apply is done; a failed Apply is retried like any other (see Status).
// Reload waits for Run to pick the request up.
func (a *Agent) Reload(cfg Config) error {
	cfg.SetDefaults()
	cfg = a.model.effective(cfg) // the controller's configuration over the file's
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload rejected: %w", err)
	}
	req := reloadRequest{cfg: cfg, resp: make(chan error, 1)}
	select {
	case a.reloads <- req:
		return <-req.resp
	case <-a.stopped:
		return ErrStopped
	}
}

// Run watches the prefix and keeps the dataplane in step until ctx ends.
// It returns nil on cancellation, leaving every route in the kernel: the
// next run reconciles them without a flush. It returns an error if the
// prefix source fails. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer close(a.stopped)
	defer a.closeOwned()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	monDone := a.monitor.start(wctx)
	defer func() { cancel(); <-monDone }()
	probesDone := a.probes.start(wctx)
	defer func() { cancel(); <-probesDone }()
	policiesDone := a.policies.start(wctx)
	defer func() { cancel(); <-policiesDone }()
	tsfDone := a.tsf.start(wctx)
	defer func() { cancel(); <-tsfDone }()
	cwmpDone := a.cwmp.start(wctx, a.cfg)
	defer func() { cancel(); <-cwmpDone }()
	ctlDone := a.startControl(wctx, a.cfg.ControlSocket)
	defer func() { cancel(); <-ctlDone }()
	prefixes := make(chan board.PrefixChange)
	watchDone := make(chan error, 1)
	go func() { watchDone <- a.src.Watch(wctx, prefixes) }()

	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var retryC <-chan time.Time
	var answer chan<- error
	// Periodic resync: the kernel drops our routes behind our back, e.g.
	// when the WAN link goes down, and the prefix may come back unchanged.
	resync := time.NewTicker(a.resync)
	defer resync.Stop()

	a.log.Info("agent started, waiting for the delegated prefix",
		zap.String("wan", a.cfg.WAN.Interface), zap.String("prefix_source", a.cfg.WAN.PrefixSource),
		zap.Any("capabilities", a.caps))
	if err := a.syncBGP(wctx); err != nil {
		return err
	}
	defer a.stopBGP()
	a.publish()
	for {
		select {
		case <-ctx.Done():
			cancel()
			a.waitWatcher(prefixes, watchDone)
			a.log.Info("agent stopped; routes left in place")
			return nil
		case err := <-watchDone:
			watchDone = nil
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("prefix source: %w", err)
			}
			continue
		case pc := <-prefixes:
			if !a.onPrefix(pc) {
				continue
			}
		case req := <-a.reloads:
			if err := a.onReload(req.cfg); err != nil {
				req.resp <- err
				continue
			}
			if err := a.syncBGP(wctx); err != nil {
				a.log.Error("bgp not running with the reloaded config", zap.Error(err))
			}
			// Answered once the new config has been applied (or the
			// attempt failed and a retry is scheduled).
			answer = req.resp
		case routes, ok := <-a.bgp.routes:
			if !a.onRoutes(routes, ok) {
				continue
			}
		case <-a.bgp.pollC():
			if !a.pollPeers() {
				a.publish()
				continue
			}
		case <-a.policies.changed:
			// A policy's choice changed: the routes follow at once, and
			// the ACS hears of it (Service.{j}.ActiveColors and the like).
			a.cwmp.statusChanged()
		case <-retryC:
		case <-resync.C:
			if retryC != nil {
				continue // a retry is due anyway
			}
		}
		retryC = nil
		if delay, again := a.reconcile(ctx); again {
			retry.Reset(delay)
			retryC = retry.C
		} else {
			retry.Stop()
		}
		if answer != nil {
			answer <- nil // buffered: never blocks
			answer = nil
		}
	}
}

// waitWatcher lets the prefix source see the cancellation and return,
// draining its sends meanwhile; a source that ignores ctx is given up on.
func (a *Agent) waitWatcher(prefixes <-chan board.PrefixChange, done <-chan error) {
	if done == nil {
		return
	}
	limit := time.NewTimer(5 * time.Second)
	defer limit.Stop()
	for {
		select {
		case <-prefixes:
		case <-done:
			return
		case <-limit.C:
			a.log.Warn("prefix source did not stop within 5s")
			return
		}
	}
}

// onPrefix records a prefix event; it reports whether anything changed.
func (a *Agent) onPrefix(pc board.PrefixChange) bool {
	if !pc.New.IsValid() {
		a.log.Warn("prefix source sent an invalid prefix; ignored", zap.Stringer("old", pc.Old))
		return false
	}
	pc.New = pc.New.Masked()
	if a.havePrefix && pc.New == a.cur.New && pc.Addr == a.cur.Addr {
		// Level-triggered: a repeated prefix still re-applies (the source
		// may report the prefix's return after a WAN flap flushed routes).
		a.log.Debug("delegated prefix reported again", zap.Stringer("prefix", pc.New))
		return true
	}
	old := a.cur.New
	if !a.havePrefix {
		old = a.persisted.Prefix
	}
	fields := []zap.Field{zap.Stringer("prefix", pc.New)}
	if pc.Addr.IsValid() {
		fields = append(fields, zap.Stringer("address", pc.Addr))
	}
	if old.IsValid() {
		fields = append(fields, zap.Stringer("old", old))
	}
	a.log.Info("delegated prefix", fields...)
	a.cur, a.havePrefix = pc, true
	a.failures = 0
	return true
}

// onReload accepts cfg when nothing in it stands in the way of applying it.
func (a *Agent) onReload(cfg Config) error {
	var errs []error
	oldWAN, newWAN := a.cfg.WAN, cfg.WAN
	staticChanged := newWAN.StaticPrefix != oldWAN.StaticPrefix || newWAN.StaticAddress != oldWAN.StaticAddress
	oldWAN.StaticPrefix, oldWAN.StaticAddress = newWAN.StaticPrefix, newWAN.StaticAddress
	switch {
	case newWAN != oldWAN:
		errs = append(errs, errors.New("wan: changed; the WAN interface, the prefix source and its debounce change only with a restart"))
	case staticChanged && a.static == nil:
		errs = append(errs, errors.New("wan.static_prefix/static_address: changed, but the prefix source is not the agent's static one"))
	}
	if cfg.StateDir != a.cfg.StateDir {
		errs = append(errs, fmt.Errorf("state_dir: changed from %q to %q; it changes only with a restart", a.cfg.StateDir, cfg.StateDir))
	}
	if err := checkKernel(cfg, a.caps); err != nil {
		errs = append(errs, err)
	}
	prefix := a.cur.New
	if staticChanged {
		prefix = cfg.WAN.StaticPrefix
	}
	if len(errs) == 0 && prefix.IsValid() {
		d, err := derive(cfg, prefix)
		if err == nil {
			_, err = desiredState(cfg, d, a.caps)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("prefix %s: %w", prefix, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Error("config reload rejected; the running config stays", zap.Error(err))
		return fmt.Errorf("reload rejected: %w", err)
	}
	if staticChanged {
		// Validated above; the new prefix arrives through Watch like any other.
		if err := a.static.Set(cfg.WAN.StaticPrefix, cfg.WAN.StaticAddress); err != nil {
			return fmt.Errorf("reload rejected: %w", err)
		}
	}
	a.cfg = cfg
	a.cwmp.reconfigure(cfg)
	a.monitor.reload(cfg)
	a.policies.configure(&cfg)
	a.failures = 0
	if r, ok := a.src.(interface{ Refresh() }); ok {
		r.Refresh() // a reload also re-reads the WAN state
	}
	a.log.Info("config reloaded", zap.Int("services", len(cfg.Services)), zap.Int("remote", len(cfg.Remote)))
	return nil
}

// reconcile recomputes the desired dataplane and applies it. It returns the
// delay before a retry when Apply failed.
func (a *Agent) reconcile(ctx context.Context) (time.Duration, bool) {
	defer a.publish()
	if !a.havePrefix {
		return 0, false
	}
	pc := a.cur
	d, err := derive(a.cfg, pc.New)
	var want dataplane.Desired
	var notes desiredNotes
	choices, gen := a.policies.choices()
	if err == nil {
		want, notes, err = desiredWith(a.cfg, d, a.caps, choices, a.bgp.learned)
		want.Encaps = a.withStale(want.Encaps)
	}
	if err == nil {
		want, err = withEndTSF(a.cfg, pc.New, want)
	}
	if err != nil {
		// Nothing to retry until the prefix or the config changes; the
		// kernel keeps what the last good state put there.
		a.log.Error("cannot derive the SIDs for this prefix; dataplane left as it is", zap.Stringer("prefix", pc.New), zap.Error(err))
		a.setStatus(func(s *Status) {
			s.State, s.Prefix, s.Address = StateInvalid, pc.New, pc.Addr
			s.Locator, s.SIDs, s.Fallback, s.RemoteRoutes = d.Locator, nil, nil, 0
			s.LastError, s.Failures, s.NextRetry = err.Error(), 0, time.Time{}
		})
		a.exportBGP(nil, dataplane.Desired{}, netip.Addr{}) // these SIDs are not ours to advertise
		return 0, false
	}
	sids := sidStatuses(d, want)
	a.importStatus(a.cfg, want, notes.skipped)

	actx, cancel := context.WithTimeout(ctx, a.applyTimeout)
	start := time.Now()
	err = a.dp.Apply(actx, want)
	took := time.Since(start)
	cancel()
	now := a.now()
	a.setStatus(func(s *Status) {
		s.Prefix, s.Address, s.Locator, s.LocatorName = pc.New, pc.Addr, d.Locator, a.cfg.SRv6.LocatorName
		s.SIDs, s.Fallback, s.RemoteRoutes = sids, fallbackNotes(sids, want), len(want.Encaps)
	})
	// Before the status is published: the IP change reports are queued
	// with the VALUE CHANGE of the new prefix (one session carries both).
	a.monitor.wanChanged(pc.Addr)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false // shutting down: the next run reconciles
		}
		a.failures++
		delay := backoff(a.failures, a.retryMin, a.retryMax)
		a.log.Error("dataplane apply failed; will retry", zap.Error(err), zap.Int("failures", a.failures), zap.Duration("retry_in", delay))
		a.setStatus(func(s *Status) {
			s.State, s.LastError, s.Failures, s.NextRetry = StateRetrying, err.Error(), a.failures, now.Add(delay)
		})
		return delay, true
	}
	a.failures = 0
	a.setStatus(func(s *Status) {
		s.State, s.LastApply, s.LastError, s.Failures, s.NextRetry = StateApplied, now, "", 0, time.Time{}
		s.Previous = nil
	})
	a.mem.applied(len(want.Encaps))
	// Advertised only once the kernel holds the SIDs.
	a.exportBGP(&d, want, pc.Addr)
	a.probes.follow(want.BSIDs, pc.Addr, want.TunnelSource)
	a.policies.installed(gen, notes.policies)
	a.policies.follow(pc.Addr, want.TunnelSource)
	tsf := a.tsf.follow(a.cfg, pc.New, want)
	a.setStatus(func(s *Status) { s.EndTSF = tsf })
	fields := []zap.Field{zap.Stringer("prefix", pc.New), zap.Stringer("locator", d.Locator), zap.Duration("took", took)}
	for _, s := range sids {
		fields = append(fields, zap.String(s.Name, s.SID.String()+" "+s.Installed))
	}
	// Resyncs re-apply the same state every few seconds: log only news.
	// The key is what the line says, not the whole state (which holds every
	// learned route and is not worth keeping for a log level).
	if key := fmt.Sprint(pc.New, d.Locator, sids); key == a.appliedLog {
		a.log.Debug("SIDs re-applied", fields...)
	} else {
		a.log.Info("SIDs programmed", fields...)
		a.appliedLog = key
	}
	if a.persisted.Prefix != pc.New || a.persisted.Address != pc.Addr || a.persisted.Locator != d.Locator {
		a.persist(PersistedPrefix{Prefix: pc.New, Address: pc.Addr, Locator: d.Locator, Applied: now})
	}
	return 0, false
}

// backoff is the wait before retry number n (from 1): first, doubled each
// time, capped at longest.
func backoff(n int, first, longest time.Duration) time.Duration {
	d := first
	for i := 1; i < n && d < longest; i++ {
		d *= 2
	}
	return min(d, longest)
}

func (a *Agent) setStatus(f func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.status)
}

// publish writes the status to the state dir, atomically.
func (a *Agent) publish() {
	var dps *dataplane.Status
	if r, ok := a.dp.(interface{ Status() dataplane.Status }); ok {
		st := r.Status()
		dps = &st
	}
	a.mu.Lock()
	a.status.Updated = a.now()
	a.status.Dataplane = dps
	s := a.status.clone()
	a.mu.Unlock()
	// Only a change is written: periodic resyncs must not wear the flash.
	key := s
	key.Updated, key.LastApply, key.Dataplane = time.Time{}, time.Time{}, nil
	kb, err := json.Marshal(key)
	if err == nil && bytes.Equal(kb, a.published) {
		return
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		err = a.state.WriteFile(StatusFile, append(b, '\n'))
	}
	if err != nil {
		a.log.Warn("cannot write status", zap.Error(err))
		return
	}
	a.published = kb
	a.cwmp.statusChanged()
}

func (a *Agent) persist(p PersistedPrefix) {
	b, err := json.Marshal(p)
	if err == nil {
		err = a.state.WriteFile(PrefixFile, append(b, '\n'))
	}
	if err != nil {
		a.log.Warn("cannot persist the prefix", zap.Error(err))
		return
	}
	a.persisted = p
}

func (a *Agent) loadPersisted() (PersistedPrefix, bool) {
	b, err := a.state.ReadFile(PrefixFile)
	if err != nil {
		return PersistedPrefix{}, false
	}
	var p PersistedPrefix
	if err := json.Unmarshal(b, &p); err != nil || !p.Prefix.IsValid() {
		a.log.Warn("ignoring an unreadable persisted prefix", zap.String("file", PrefixFile), zap.Error(err))
		return PersistedPrefix{}, false
	}
	return p, true
}

func (a *Agent) closeOwned() {
	if a.owned == nil {
		return
	}
	if err := a.owned.Close(); err != nil {
		a.log.Warn("closing the dataplane", zap.Error(err))
	}
	a.owned = nil
}
