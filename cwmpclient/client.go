package cwmpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Config is the client's configuration, the agent's `acs:` section. The
// ACS URL and credentials, periodic inform and retry settings are the
// factory values of Device.ManagementServer.: what the ACS sets later is
// stored in the parameter tree and wins.
type Config struct {
	TransportConfig `yaml:",inline"`
	// PeriodicInformEnable/Interval/Time: Device.ManagementServer.Periodic*.
	PeriodicInformEnable   bool          `yaml:"periodic_inform_enable"`
	PeriodicInformInterval time.Duration `yaml:"periodic_inform_interval"`
	PeriodicInformTime     time.Time     `yaml:"periodic_inform_time"`
	// RetryMinimumWait (seconds) and RetryMultiplier (per mille): TR-069
	// §3.2.1.1 CWMPRetryMinimumWaitInterval / CWMPRetryIntervalMultiplier.
	RetryMinimumWait uint32 `yaml:"retry_minimum_wait"`
	RetryMultiplier  uint32 `yaml:"retry_multiplier"`
	// ConnectionRequest configures the connection request server; an
	// empty Addr disables it.
	ConnectionRequest ConnReqConfig `yaml:"connection_request"`
	// ConnectionRequestHost is the address the ACS reaches the CPE at, used
	// in ConnectionRequestURL (Deps.ConnectionRequestHost overrides it).
	ConnectionRequestHost string `yaml:"connection_request_host"`
	// Transfer configures Download/Upload; an empty WorkDir disables them.
	Transfer TransferConfig `yaml:"transfer"`
	// ProvisioningCode is the factory Device.DeviceInfo.ProvisioningCode.
	ProvisioningCode string `yaml:"provisioning_code"`
	// CWMPVersion picks the Inform namespace: "1-0" (cwmp-1-0) or, by
	// default, "1-2" (cwmp-1-2, CWMP 1.2-1.4). The session continues in
	// whatever version the ACS answers with.
	CWMPVersion string `yaml:"cwmp_version"`
	// NotificationInterval is how often notified parameters are compared
	// with their last value; zero means 30s.
	NotificationInterval time.Duration `yaml:"notification_interval"`
	// SessionTimeout bounds one session; zero means 10 minutes.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ExchangeTimeout bounds one POST and the ACS's answer; zero means 2
	// minutes (TR-069 asks the CPE to wait at least 30 seconds).
	ExchangeTimeout time.Duration `yaml:"exchange_timeout"`
}

// BoardHooks are the device actions ACS requests lead to.
type BoardHooks interface {
	Reboot(ctx context.Context) error
	FactoryReset(ctx context.Context) error
	// ApplyFirmware installs the image at path (removed after it returns);
	// the client then calls Reboot to boot it.
	ApplyFirmware(ctx context.Context, path string) error
	ApplyConfig(ctx context.Context, path string) error
	ExportConfig(ctx context.Context) ([]byte, error)
	ExportLog(ctx context.Context) ([]byte, error)
}

// TransferExecutor moves files (transfer.go's Transferrer); its errors
// carry a *Fault whose code goes into TransferComplete.
type TransferExecutor interface {
	Download(ctx context.Context, r TransferRecord) (path string, err error)
	Upload(ctx context.Context, r TransferRecord, data []byte) error
}

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Deps are the client's collaborators.
type Deps struct {
	// Store keeps the tree, the events and the client state (required).
	Store Store
	Info  DeviceInfo
	// Hooks performs reboot, reset and file application (required). Its
	// FactoryReset must erase the Store's files, so that the next boot
	// bootstraps with the factory configuration.
	Hooks BoardHooks
	// Transfers runs file transfers; nil makes one from Config.Transfer
	// (Download/Upload are refused when that has no WorkDir).
	Transfers TransferExecutor
	// Interfaces feeds Device.IP.Interface.; ConnectionRequestHost the
	// host part of ConnectionRequestURL. Both may be nil.
	Interfaces            func() []IPInterface
	ConnectionRequestHost func() string
	// ConnReqListener serves connection requests (nil: listen on
	// Config.ConnectionRequest.Addr when set).
	ConnReqListener net.Listener
	Logger          *zap.Logger
	Clock           Clock
	// Rand returns values in [0,1) for the retry wait; nil is math/rand.
	Rand func() float64
	// Boot is when the device booted (UpTime); zero is now.
	Boot time.Time
	// Restarted says this start is a restart of the CWMP software on a
	// running device, not a boot: TR-069's 1 BOOT is for a power-on or
	// reset. The events a reboot drops stay pending, no 1 BOOT is added,
	// and the first session runs only when an event is pending.
	Restarted bool
	// OnInformResponse, when set, is called after every InformResponse
	// with the elements it carries besides MaxEnvelopes (nil when none),
	// e.g. Q.Suppl.79's ConnectionStatus.
	OnInformResponse func(extra map[string]string)
}

const (
	treeFile        = "cwmp-tree.json"
	clientStateFile = "cwmp-client.json"
	maxVendorQueue  = 64
	maxScheduled    = 64
)

// clientState is what the client itself persists.
type clientState struct {
	// BootstrappedURL is the ACS URL a 0 BOOTSTRAP was delivered to.
	BootstrappedURL string            `json:"bootstrapped_url"`
	Scheduled       []scheduledInform `json:"scheduled,omitempty"`
}

type scheduledInform struct {
	At         time.Time `json:"at"`
	CommandKey string    `json:"command_key"`
}

type vendorRequest struct {
	id   uint64
	msg  VendorMessage
	done func(Message)
}

// Client is the TR-069 CPE: it owns the parameter tree, runs sessions with
// the ACS and serves connection requests.
type Client struct {
	cfg    Config
	deps   Deps
	log    *zap.Logger
	clock  Clock
	rnd    func() float64
	tree   *Tree
	disp   *Dispatcher
	events *EventStore
	xfer   TransferExecutor
	crs    *ConnReqServer
	// crsPort is the connection request listener's port, known once Run
	// listens (read under the tree lock, hence atomic).
	crsPort atomic.Value
	dial    func(ctx context.Context, cfg TransportConfig) (conn, error)

	wake chan struct{} // something for the loop to look at
	// snap makes a session's reading of the notified changes and of the
	// vendor queue one step against SendVendorWithChanges.
	snap sync.Mutex
	mu   sync.Mutex
	// want: a session is wanted; urgent: it skips the retry wait
	// (connection request); activeWant: an active notification wants one.
	want, urgent, activeWant bool
	// lastValueChange is when an Inform last carried notified changes.
	lastValueChange time.Time
	state           clientState
	vendorQ         []vendorRequest
	vendorSeq       uint64
	after           []func(ctx context.Context) error // reboot / factory reset, after the session
	retries         int
	acsMethod       []string
}

// New builds a client: the standard objects are registered and the
// persisted state loaded. Register other subtrees on Tree() before Run.
func New(cfg Config, deps Deps) (*Client, error) {
	if deps.Store == nil || deps.Hooks == nil {
		return nil, errors.New("cwmpclient: Deps.Store and Deps.Hooks are required")
	}
	if !ValidOUI(deps.Info.ManufacturerOUI) {
		return nil, fmt.Errorf("cwmpclient: ManufacturerOUI %q is not 6 upper-case hex digits", deps.Info.ManufacturerOUI)
	}
	c := &Client{cfg: cfg, deps: deps, log: deps.Logger, clock: deps.Clock, rnd: deps.Rand,
		wake: make(chan struct{}, 1), xfer: deps.Transfers}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.rnd == nil {
		c.rnd = rand.Float64
	}
	if c.xfer == nil && cfg.Transfer.WorkDir != "" {
		x, err := NewTransferrer(cfg.Transfer)
		if err != nil {
			return nil, fmt.Errorf("cwmpclient: %w", err)
		}
		c.xfer = x
	}
	c.dial = func(ctx context.Context, tc TransportConfig) (conn, error) { return dialSession(ctx, tc) }
	if cfg.ConnectionRequest.Addr != "" || deps.ConnReqListener != nil {
		crc := cfg.ConnectionRequest
		if crc.Logger == nil {
			crc.Logger = c.log
		}
		c.crs = NewConnReqServer(crc, func() {
			if err := c.events.Add(EventStruct{Code: EventConnectionRequest}); err != nil {
				c.log.Warn("connection request event not stored", zap.Error(err))
			}
			c.trigger(true)
		})
	}
	// A state file that does not parse (flash corruption, a hand edit) must
	// not keep the CPE from its ACS for good: that piece starts afresh, and
	// its next write replaces the file.
	if err := c.loadState(); err != nil {
		if !errors.Is(err, errCorruptState) {
			return nil, err
		}
		c.log.Error("CWMP client state unreadable; starting it afresh (the ACS gets 0 BOOTSTRAP)", zap.Error(err))
		c.state = clientState{}
	}
	ev, err := NewEventStore(deps.Store, "")
	if errors.Is(err, errCorruptState) {
		c.log.Error("pending CWMP events unreadable; starting with none", zap.Error(err))
		ev, err = emptyEventStore(deps.Store, defaultEventsFile), nil
	}
	if err != nil {
		return nil, fmt.Errorf("cwmpclient: %w", err)
	}
	c.events = ev
	c.tree = NewTree(deps.Store, treeFile)
	c.tree.OnActiveNotification(c.triggerActive)
	c.disp = NewDispatcher(c.tree, clientActions{c})
	err = RegisterStandard(c.tree, StdObjects{
		Info: deps.Info,
		ACS: ManagementDefaults{
			URL: cfg.URL, Username: cfg.Username, Password: cfg.Password,
			PeriodicInformEnable: cfg.PeriodicInformEnable, PeriodicInformInterval: uint32(cfg.PeriodicInformInterval / time.Second),
			PeriodicInformTime:        cfg.PeriodicInformTime,
			ConnectionRequestUsername: cfg.ConnectionRequest.Username, ConnectionRequestPassword: cfg.ConnectionRequest.Password,
			CWMPRetryMinimumWaitInterval: cfg.RetryMinimumWait, CWMPRetryIntervalMultiplier: cfg.RetryMultiplier,
			ProvisioningCode: cfg.ProvisioningCode,
		},
		ConnectionRequestURL: c.connReqURL,
		Interfaces:           deps.Interfaces,
		Boot:                 deps.Boot,
		Now:                  c.clock.Now,
	}, nil) // the loop rereads ManagementServer after every session
	if err != nil {
		return nil, fmt.Errorf("cwmpclient: standard objects: %w", err)
	}
	if err := c.tree.Load(); err != nil {
		if !errors.Is(err, errCorruptState) {
			return nil, fmt.Errorf("cwmpclient: %w", err)
		}
		c.log.Error("CWMP parameter tree state unreadable; starting from defaults", zap.Error(err))
	}
	return c, nil
}

// Tree is the parameter tree, for other packages to register subtrees.
func (c *Client) Tree() *Tree { return c.tree }

// Dispatcher answers ACS requests; register vendor RPC handlers on it.
func (c *Client) Dispatcher() *Dispatcher { return c.disp }

// AddEvent queues an Inform event (e.g. a vendor "X OUI Name" event or
// "8 DIAGNOSTICS COMPLETE") and asks for a session.
func (c *Client) AddEvent(ev EventStruct) error {
	if err := c.events.Add(ev); err != nil {
		return err
	}
	c.trigger(false)
	return nil
}

// SendVendor queues a CPE-originated vendor RPC for the next session and
// asks for one; done (may be nil) gets the ACS's answer. Unsent requests
// do not survive a restart.
func (c *Client) SendVendor(m VendorMessage, done func(Message)) error {
	if !validName(m.Name) {
		return fmt.Errorf("vendor rpc name %q is not an XML name", m.Name)
	}
	c.mu.Lock()
	if len(c.vendorQ) >= maxVendorQueue {
		c.mu.Unlock()
		return fmt.Errorf("vendor rpc %s: %d requests already queued", m.Name, maxVendorQueue)
	}
	c.vendorSeq++
	c.vendorQ = append(c.vendorQ, vendorRequest{id: c.vendorSeq, msg: m, done: done})
	c.mu.Unlock()
	c.trigger(false)
	return nil
}

// SendVendorWithChanges checks the notified parameters and queues msgs as
// one step against sessions starting: the session that carries msgs also
// carries the notified changes this check finds (Q.Suppl.79 wants its IP
// change reports in the session of the new prefix's 4 VALUE CHANGE).
// done (may be nil) gets each message's index and the ACS's answer.
func (c *Client) SendVendorWithChanges(msgs []VendorMessage, done func(int, Message)) error {
	for _, m := range msgs {
		if !validName(m.Name) {
			return fmt.Errorf("vendor rpc name %q is not an XML name", m.Name)
		}
	}
	c.snap.Lock()
	checkErr := c.tree.CheckNotifications()
	c.mu.Lock()
	if len(c.vendorQ)+len(msgs) > maxVendorQueue {
		c.mu.Unlock()
		c.snap.Unlock()
		return fmt.Errorf("%d vendor rpcs: %d requests already queued, at most %d", len(msgs), len(c.vendorQ), maxVendorQueue)
	}
	for i, m := range msgs {
		c.vendorSeq++
		r := vendorRequest{id: c.vendorSeq, msg: m}
		if done != nil {
			r.done = func(resp Message) { done(i, resp) }
		}
		c.vendorQ = append(c.vendorQ, r)
	}
	c.mu.Unlock()
	c.snap.Unlock()
	c.trigger(false)
	return checkErr
}

// CheckNotifications compares notified parameters now (call after the
// device changed something the tree reports).
func (c *Client) CheckNotifications() error { return c.tree.CheckNotifications() }

// ACSMethods is what the ACS answered to the last GetRPCMethods.
func (c *Client) ACSMethods() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.acsMethod)
}

func (c *Client) trigger(urgent bool) {
	c.mu.Lock()
	c.want = true
	c.urgent = c.urgent || urgent
	c.mu.Unlock()
	c.wakeLoop()
}

// triggerActive asks for a session for an active notification; the loop
// applies DefaultActiveNotificationThrottle.
func (c *Client) triggerActive() {
	c.mu.Lock()
	c.activeWant = true
	c.mu.Unlock()
	c.wakeLoop()
}

func (c *Client) wakeLoop() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Client) connReqURL() string {
	if c.crs == nil {
		return ""
	}
	host := c.cfg.ConnectionRequestHost
	if c.deps.ConnectionRequestHost != nil {
		host = c.deps.ConnectionRequestHost()
	}
	port, _ := c.crsPort.Load().(string)
	if host == "" || port == "" {
		return ""
	}
	path := c.cfg.ConnectionRequest.Path
	if path == "" {
		path = "/"
	}
	return "http://" + net.JoinHostPort(host, port) + path
}

func (c *Client) loadState() error {
	b, err := c.deps.Store.ReadFile(clientStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cwmpclient: %w", err)
	}
	if err := json.Unmarshal(b, &c.state); err != nil {
		return fmt.Errorf("cwmpclient: parse %s: %w: %w", clientStateFile, errCorruptState, err)
	}
	return nil
}

// saveState persists c.state; called with c.mu held.
func (c *Client) saveState() error {
	b, err := json.Marshal(c.state)
	if err != nil {
		return fmt.Errorf("encode client state: %w", err)
	}
	return c.deps.Store.WriteFile(clientStateFile, b)
}

// Run boots the client (1 BOOT, and 0 BOOTSTRAP for a new ACS), then runs
// sessions when events call for them until ctx ends. It returns nil on
// cancellation.
func (c *Client) Run(ctx context.Context) error {
	if !c.deps.Restarted {
		if err := c.events.OnBoot(); err != nil {
			return fmt.Errorf("cwmpclient: %w", err)
		}
		if err := c.events.Add(EventStruct{Code: EventBoot}); err != nil {
			return fmt.Errorf("cwmpclient: %w", err)
		}
	}
	c.recoverTransfers()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.crs != nil {
		ln := c.deps.ConnReqListener
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", c.cfg.ConnectionRequest.Addr); err != nil {
				return fmt.Errorf("cwmpclient: connection request listener: %w", err)
			}
		}
		if _, port, err := net.SplitHostPort(ln.Addr().String()); err == nil {
			c.crsPort.Store(port)
		}
		ms := readManagementServer(c.tree)
		c.crs.SetCredentials(ms.ConnReqUsername, ms.ConnReqPwd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.crs.Serve(ctx, ln); err != nil {
				c.log.Error("connection request server stopped", zap.Error(err))
			}
		}()
	}
	return c.loop(ctx)
}

func (c *Client) notifyInterval() time.Duration {
	if c.cfg.NotificationInterval > 0 {
		return c.cfg.NotificationInterval
	}
	return 30 * time.Second
}

// loop is the client's one goroutine: it decides when sessions,
// transfers and checks run.
func (c *Client) loop(ctx context.Context) error {
	now := c.clock.Now()
	// The boot session; after a restart, only what is owed: pending events
	// or the 0 BOOTSTRAP of a new ACS URL.
	due := !c.deps.Restarted || len(c.events.Pending()) > 0 || c.bootstrapDue()
	var retryAt time.Time
	nextNotify := now.Add(c.notifyInterval())
	ms := readManagementServer(c.tree)
	nextPeriodic := periodicNext(ms, now)
	var nextActive time.Time
	spins := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		now = c.clock.Now()
		c.mu.Lock()
		due = due || c.want
		c.want = false
		if c.activeWant {
			// TR-181 DefaultActiveNotificationThrottle: at most one session
			// for active notifications per throttle interval.
			nextActive = c.lastValueChange.Add(ms.ActiveThrottle)
			if ms.ActiveThrottle == 0 || !now.Before(nextActive) {
				due, c.activeWant, nextActive = true, false, time.Time{}
			}
		}
		c.mu.Unlock()
		if !nextPeriodic.IsZero() && !now.Before(nextPeriodic) {
			if err := c.events.Add(EventStruct{Code: EventPeriodic}); err != nil {
				c.log.Warn("periodic event not stored", zap.Error(err))
			}
			due = true
			nextPeriodic = periodicNext(ms, now)
		}
		if c.fireScheduled(now) {
			due = true
		}
		if !now.Before(nextNotify) {
			if err := c.tree.CheckNotifications(); err != nil {
				c.log.Warn("notification check", zap.Error(err))
			}
			nextNotify = now.Add(c.notifyInterval())
		}
		done, down := c.runDueTransfers(ctx, now)
		if down {
			return c.park(ctx)
		}
		due = due || done
		c.mu.Lock()
		urgent := c.urgent
		c.mu.Unlock()
		if due && (urgent || !now.Before(retryAt)) {
			c.mu.Lock()
			c.urgent = false
			c.mu.Unlock()
			err := c.session(ctx)
			if c.runAfter(ctx) {
				return c.park(ctx)
			}
			now = c.clock.Now()
			switch {
			case errors.Is(err, errNoACS):
				due = false
				c.log.Debug("no ACS URL or CWMP disabled; waiting")
			case err != nil && ctx.Err() == nil:
				c.retries++
				cur := readManagementServer(c.tree)
				wait := RetryWait(c.retries, cur.RetryMin, cur.RetryMult, c.rnd)
				retryAt = now.Add(wait)
				c.log.Warn("session failed", zap.Error(err), zap.Int("retry", c.retries), zap.Duration("wait", wait))
			default:
				c.retries = 0
				retryAt = time.Time{}
				due = c.moreWork()
			}
			// The ACS may have changed the schedule or the credentials; the
			// periodic phase is kept unless the schedule changed.
			if fresh := readManagementServer(c.tree); fresh.periodicChanged(ms) {
				ms = fresh
				nextPeriodic = periodicNext(ms, now)
			} else {
				ms = fresh
			}
			if c.crs != nil {
				c.crs.SetCredentials(ms.ConnReqUsername, ms.ConnReqPwd)
			}
			if due && !now.Before(retryAt) {
				continue
			}
		}
		wake := earliest(now, nextNotify, nextPeriodic, nextActive, c.nextScheduled(), c.nextTransfer())
		if due && retryAt.After(now) && retryAt.Before(wake) {
			wake = retryAt
		}
		if !wake.After(now) {
			// Something is due already; a store that keeps failing could
			// make that true forever, so only a few rounds skip the wait.
			if spins++; spins < 10 {
				continue
			}
			wake = now.Add(time.Second)
		}
		spins = 0
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-c.clock.After(wake.Sub(now)):
		}
	}
}

// park waits out a reboot or factory reset under way: no more sessions;
// the board takes the process down.
func (c *Client) park(ctx context.Context) error {
	c.log.Info("waiting for the device to reboot")
	<-ctx.Done()
	return nil
}

// moreWork: something arrived during the session that needs another one
// (new events, a new ACS URL, vendor requests, finished transfers).
// Notified changes do not count: active ones ask through triggerActive
// (throttled), passive ones wait for the next Inform.
func (c *Client) moreWork() bool {
	c.mu.Lock()
	vendor := len(c.vendorQ) > 0
	boot := c.state.BootstrappedURL
	c.mu.Unlock()
	if vendor || len(c.events.Pending()) > 0 {
		return true
	}
	return readManagementServer(c.tree).URL != boot
}

func earliest(now time.Time, ts ...time.Time) time.Time {
	best := now.Add(24 * time.Hour)
	for _, t := range ts {
		if !t.IsZero() && t.Before(best) {
			best = t
		}
	}
	if best.Before(now) {
		return now
	}
	return best
}

// periodicNext is the next periodic inform after now: aligned on
// PeriodicInformTime when it is known (TR-069 A.3.2.? semantics of
// PeriodicInformTime), else one interval from now.
func periodicNext(ms managementServer, now time.Time) time.Time {
	if !ms.PeriodicEnable || ms.PeriodicInterval <= 0 {
		return time.Time{}
	}
	if ms.PeriodicTime.IsZero() {
		return now.Add(ms.PeriodicInterval)
	}
	d := now.Sub(ms.PeriodicTime)
	k := d / ms.PeriodicInterval
	next := ms.PeriodicTime.Add(k * ms.PeriodicInterval)
	for !next.After(now) {
		next = next.Add(ms.PeriodicInterval)
	}
	return next
}

func (m managementServer) periodicChanged(old managementServer) bool {
	return m.PeriodicEnable != old.PeriodicEnable || m.PeriodicInterval != old.PeriodicInterval || !m.PeriodicTime.Equal(old.PeriodicTime)
}

// bootstrapDue: the ACS URL has not been bootstrapped yet.
func (c *Client) bootstrapDue() bool {
	url := readManagementServer(c.tree).URL
	c.mu.Lock()
	defer c.mu.Unlock()
	return url != "" && c.state.BootstrappedURL != url
}

// errCorruptState marks a persisted file that exists but does not parse.
var errCorruptState = errors.New("corrupt state file")

// errNoACS: no ACS URL, or EnableCWMP is false; sessions wait for a
// trigger (events stay pending).
var errNoACS = errors.New("no ACS URL configured, or CWMP disabled")

// session runs one session with the ACS from the current state.
func (c *Client) session(ctx context.Context) error {
	ms := readManagementServer(c.tree)
	if ms.URL == "" || !ms.EnableCWMP {
		return errNoACS
	}
	bootstrap := c.bootstrapDue()
	if bootstrap {
		if err := c.events.Add(EventStruct{Code: EventBootstrap}); err != nil {
			return fmt.Errorf("bootstrap event: %w", err)
		}
	}
	c.snap.Lock() // until the vendor requests are taken
	snapped := false
	unsnap := func() {
		if !snapped {
			snapped = true
			c.snap.Unlock()
		}
	}
	defer unsnap()
	informEvents := c.events.Pending()
	notified := c.tree.PendingNotifications()
	if len(notified) > 0 && !slices.ContainsFunc(informEvents, func(e EventStruct) bool { return e.Code == EventValueChange }) {
		informEvents = append(informEvents, EventStruct{Code: EventValueChange})
	}
	if len(informEvents) > maxEvents {
		// The schema allows 64; the rest stay pending for the next Inform.
		informEvents = informEvents[:maxEvents]
	}
	params := c.tree.ForcedInform()
	for _, p := range notified {
		if !slices.ContainsFunc(params, func(q ParameterValue) bool { return q.Name == p.Name }) {
			params = append(params, p)
		}
	}
	ns := NS12
	if c.cfg.CWMPVersion == "1-0" {
		ns = NS10
	}
	plan := sessionPlan{
		ns: ns,
		inform: Inform{
			DeviceID: DeviceID{Manufacturer: c.deps.Info.Manufacturer, OUI: c.deps.Info.ManufacturerOUI,
				ProductClass: c.deps.Info.ProductClass, SerialNumber: c.deps.Info.SerialNumber},
			Events: informEvents, MaxEnvelopes: 1, CurrentTime: c.clock.Now(),
			RetryCount: uint32(c.retries), Params: params,
		},
		informed: func() {
			if err := c.events.Delivered(informEvents); err != nil {
				c.log.Warn("delivered events not stored", zap.Error(err))
			}
			names := make([]string, len(notified))
			for i, p := range notified {
				names[i] = p.Name
			}
			if err := c.tree.AckNotifications(names); err != nil {
				c.log.Warn("notification ack not stored", zap.Error(err))
			}
			if len(notified) > 0 {
				c.mu.Lock()
				c.lastValueChange = c.clock.Now()
				c.activeWant = false // this Inform carried them
				c.mu.Unlock()
			}
			if bootstrap {
				c.mu.Lock()
				c.state.BootstrappedURL = ms.URL
				err := c.saveState()
				c.mu.Unlock()
				if err != nil {
					c.log.Warn("bootstrap state not stored", zap.Error(err))
				}
			}
		},
		requests:        c.cpeRequests(bootstrap),
		exchangeTimeout: c.cfg.ExchangeTimeout,
	}
	unsnap()
	if f := c.deps.OnInformResponse; f != nil {
		plan.informResponse = func(r InformResponse) { f(r.Extra) }
	}
	if plan.exchangeTimeout <= 0 {
		plan.exchangeTimeout = 2 * time.Minute
	}
	tc := c.cfg.TransportConfig
	tc.URL, tc.Username, tc.Password = ms.URL, ms.Username, ms.Password
	timeout := c.cfg.SessionTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cn, err := c.dial(sctx, tc)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", ms.URL, err)
	}
	defer cn.Close()
	if c.crs != nil {
		c.crs.SessionActive(true)
		defer c.crs.SessionActive(false)
	}
	c.log.Info("session start", zap.String("acs", ms.URL), zap.Any("events", informEvents), zap.Int("retry", c.retries))
	start := c.clock.Now()
	err = runSession(sctx, cn, c.disp, plan, c.log)
	if err == nil {
		c.log.Info("session done", zap.Duration("took", c.clock.Now().Sub(start)))
	}
	return err
}

// cpeRequests lists what the CPE sends after the InformResponse: the
// TransferCompletes, GetRPCMethods after a bootstrap, the vendor RPCs.
func (c *Client) cpeRequests(bootstrap bool) []cpeRequest {
	var out []cpeRequest
	for _, r := range c.events.Transfers() {
		if r.State != TransferCompleted {
			continue
		}
		id := r.ID
		out = append(out, cpeRequest{msg: r.TransferComplete(), done: func(resp Message) {
			if f, ok := resp.(*Fault); ok {
				c.log.Warn("acs refused TransferComplete", zap.Int("code", f.Code), zap.String("reason", f.String))
				return
			}
			if err := c.events.RemoveTransfer(id); err != nil {
				c.log.Warn("transfer record not removed", zap.Error(err))
			}
		}})
	}
	if bootstrap {
		out = append(out, cpeRequest{msg: GetRPCMethods{}, done: func(resp Message) {
			if m, ok := resp.(GetRPCMethodsResponse); ok {
				c.mu.Lock()
				c.acsMethod = m.Methods
				c.mu.Unlock()
			}
		}})
	}
	c.mu.Lock()
	queued := slices.Clone(c.vendorQ)
	c.mu.Unlock()
	for _, v := range queued {
		name := v.msg.Name
		answers := func(resp Message) bool {
			switch r := resp.(type) {
			case *Fault:
				return true
			case VendorMessage:
				// Q.Suppl.79 names its answers freely (…_Resp): any vendor
				// message the CPE does not serve itself answers ours.
				return r.Name == name+"Response" || !c.disp.handles(r.Name)
			}
			return false
		}
		out = append(out, cpeRequest{msg: v.msg, answers: answers, done: func(resp Message) {
			c.mu.Lock()
			c.vendorQ = slices.DeleteFunc(c.vendorQ, func(q vendorRequest) bool { return q.id == v.id })
			c.mu.Unlock()
			if v.done != nil {
				v.done(resp)
			}
		}})
	}
	return out
}

// runAfter performs what the session asked for once it is over, and
// reports whether the device is now going down (reboot, factory reset).
func (c *Client) runAfter(ctx context.Context) bool {
	c.mu.Lock()
	todo := c.after
	c.after = nil
	c.mu.Unlock()
	down := false
	for _, a := range todo {
		if err := a(ctx); err != nil {
			c.log.Error("post-session action failed", zap.Error(err))
			continue
		}
		down = true
	}
	return down
}
