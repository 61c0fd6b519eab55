package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

// CWMP names the controller uses.
const (
	srv6Obj       = "Device.X_ITU-INT_SRv6."
	serviceTable  = srv6Obj + "Service."
	crURLParam    = "Device.ManagementServer.ConnectionRequestURL"
	methodConfig  = "Stats_Monitor_Config_Req"
	methodUpdate  = "Stats_Monitor_Update_Req"
	methodData    = "Stats_Monitor_Data_Resp"
	methodIPChg   = "Stats_IP_Change_Report"
	roleSender    = "Sender"
	roleReflector = "Reflector"
)

// Connection requests: how often and how long to retry one the CPE
// refuses (503 while it is in a session) or does not answer.
const (
	crAttempts = 20
	crBackoff  = 250 * time.Millisecond
	// sessionStale: a session silent this long is taken as dead (the CPE
	// crashed or lost its link), so that requests for it are not stuck.
	sessionStale = 30 * time.Second
)

// ConnRequester sends a TR-069 connection request (cwmptest.ConnectionRequest).
type ConnRequester func(ctx context.Context, url, user, pass string) (int, error)

// Controller is the SD-WAN controller of Q.Suppl.79 clause 8 on top of
// the cwmptest ACS: it registers CPEs, configures SRv6 and L3VPN on them,
// creates monitoring tasks and reacts to IP change reports. Its Hook is the
// ACS's hook; requests for a device wait in that device's queue until the
// device opens a session, which a connection request asks for.
type Controller struct {
	cfg       Config
	log       *zap.Logger
	statePath string
	cr        ConnRequester
	now       func() time.Time

	mu       sync.Mutex
	st       State
	devs     map[string]*device // by name
	sessions map[int]*device    // ACS session index -> device
	kick     chan string        // device names that need a connection request
}

// device is the controller's working state of one CPE.
type device struct {
	cfg        CPEConfig
	known      bool // in the config file
	queue      []step
	pending    *step
	inSession  bool
	lastSeen   time.Time // last message of the device's session
	configured bool      // configuration started or done in this run
}

// step is one request to a device and what to do with its answer. build
// is called when the request is sent (it may use earlier answers); ok
// false skips the step.
type step struct {
	build  func() (cwmptest.Request, bool)
	onResp func(m cwmptest.Message)
	sent   time.Time
}

// NewController returns a controller; statePath "" keeps the state in
// memory only.
func NewController(cfg Config, statePath, listen string, cr ConnRequester, log *zap.Logger) *Controller {
	c := &Controller{cfg: cfg, log: log, statePath: statePath, cr: cr, now: time.Now,
		devs: map[string]*device{}, sessions: map[int]*device{}, kick: make(chan string, 64)}
	c.st = State{Listen: listen, Devices: map[string]*Device{}, Tasks: map[string]*Task{}, IPChanges: []IPChange{}}
	for _, d := range cfg.CPEs {
		c.devs[d.Name] = &device{cfg: d, known: true}
	}
	return c
}

// Run sends the connection requests the controller asks for until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := map[string]bool{}
	type result struct {
		name   string
		gaveUp bool
	}
	done := make(chan result)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-done:
			busy[r.name] = false
			// A kick that came while it ran was dropped: look again,
			// unless the device did not answer at all.
			c.mu.Lock()
			again := !r.gaveUp && c.wantsSession(r.name)
			c.mu.Unlock()
			if again {
				c.kickDevice(r.name)
			}
		case name := <-c.kick:
			if busy[name] {
				continue // the running one retries until the queue drains
			}
			busy[name] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				gaveUp := c.connectionRequest(ctx, name)
				select {
				case done <- result{name, gaveUp}:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// connectionRequest asks the device for a session until it opens one or
// has nothing left to get; it reports whether it gave up.
func (c *Controller) connectionRequest(ctx context.Context, name string) bool {
	for i := 0; i < crAttempts; i++ {
		c.mu.Lock()
		wanted := c.wantsSession(name)
		var crURL string
		if dev := c.st.Devices[name]; dev != nil {
			crURL = dev.ConnectionRequestURL
		}
		c.mu.Unlock()
		if !wanted {
			return false
		}
		if crURL == "" {
			c.log.Warn("no connection request URL for the device yet", zap.String("device", name))
			return true
		}
		code, err := c.cr(ctx, crURL, c.cfg.ConnectionRequest.Username, c.cfg.ConnectionRequest.Password)
		if err == nil && code >= 200 && code < 300 {
			c.log.Info("connection request sent", zap.String("device", name), zap.String("url", crURL), zap.Int("status", code))
			// Wait for the session; ask again if none comes.
			if c.waitSession(ctx, name, 3*time.Second) {
				return false
			}
			continue
		}
		c.log.Info("connection request refused; retrying", zap.String("device", name), zap.String("url", crURL), zap.Int("status", code), zap.Error(err))
		select {
		case <-ctx.Done():
			return true
		case <-time.After(crBackoff):
		}
	}
	c.log.Error("device does not open a session after connection requests", zap.String("device", name), zap.Int("attempts", crAttempts))
	return true
}

// waitSession reports whether the device opened a session (or has nothing
// queued any more) within d.
func (c *Controller) waitSession(ctx context.Context, name string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		ok := !c.wantsSession(name)
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// wantsSession reports whether the device has requests waiting and no
// live session to take them; with c.mu held.
func (c *Controller) wantsSession(name string) bool {
	d := c.devs[name]
	if d == nil || (len(d.queue) == 0 && d.pending == nil) {
		return false
	}
	return !d.inSession || c.now().Sub(d.lastSeen) > sessionStale
}

// Snapshot returns a copy of the state.
func (c *Controller) Snapshot() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneState(c.st)
}

func cloneState(s State) State {
	out := s
	out.Devices = map[string]*Device{}
	for k, v := range s.Devices {
		d := *v
		out.Devices[k] = &d
	}
	out.Tasks = map[string]*Task{}
	for k, v := range s.Tasks {
		t := *v
		out.Tasks[k] = &t
	}
	out.IPChanges = slices.Clone(s.IPChanges)
	return out
}

// save writes the state; with c.mu held.
func (c *Controller) save() {
	c.st.Updated = c.now().UTC()
	if c.statePath == "" {
		return
	}
	if err := writeJSON(c.statePath, c.st); err != nil {
		c.log.Error("cannot write the state", zap.Error(err))
	}
}

// enqueue appends steps to a device's queue and, when the device is not
// in a session, asks it for one; with c.mu held.
func (c *Controller) enqueue(d *device, steps ...step) {
	d.queue = append(d.queue, steps...)
	if c.wantsSession(d.cfg.Name) {
		c.kickDevice(d.cfg.Name)
	}
}

// kickDevice asks Run for a connection request to the device.
func (c *Controller) kickDevice(name string) {
	select {
	case c.kick <- name:
	default:
		c.log.Warn("connection request backlog full", zap.String("device", name))
	}
}

// Hook is the ACS hook (cwmptest.WithHook).
func (c *Controller) Hook(s cwmptest.Session, m cwmptest.Message) *cwmptest.Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.save()
	if m.Method == "Inform" {
		c.onInform(s)
		return nil // the default InformResponse
	}
	d := c.sessions[s.Index]
	if d == nil {
		return nil
	}
	d.lastSeen = c.now()
	switch m.Method {
	case methodData:
		c.onDataReport(d, m)
		return vendorResponse(m)
	case methodIPChg:
		c.onIPChange(d, m)
		return vendorResponse(m)
	}
	if m.Method != "" && m.Method != "Fault" && !strings.HasSuffix(m.Method, "Response") {
		return nil // other CPE requests: the double's defaults
	}
	if p := d.pending; p != nil && m.Method != "" {
		d.pending = nil
		if p.onResp != nil {
			p.onResp(m)
		}
	}
	for len(d.queue) > 0 {
		next := d.queue[0]
		d.queue = d.queue[1:]
		req, ok := next.build()
		if !ok {
			continue
		}
		next.sent = c.now()
		d.pending = &next
		return &cwmptest.Reply{Request: &req}
	}
	d.inSession = false
	delete(c.sessions, s.Index)
	return &cwmptest.Reply{End: true}
}

// vendorResponse answers a CPE-originated vendor RPC with <Name>Response.
func vendorResponse(m cwmptest.Message) *cwmptest.Reply {
	ns := m.Namespace
	if ns == "" {
		ns = cwmptest.NS10
	}
	var id strings.Builder
	_ = xml.EscapeText(&id, []byte(m.ID))
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" ` +
		`xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ` +
		`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="` + ns + `">` +
		`<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">` + id.String() + `</cwmp:ID></soap-env:Header>` +
		`<soap-env:Body><cwmp:` + m.Method + `Response/></soap-env:Body></soap-env:Envelope>`
	return &cwmptest.Reply{Body: []byte(body)}
}

func deviceIDText(id cwmptest.DeviceID) string {
	return id.OUI + "-" + id.ProductClass + "-" + id.SerialNumber
}

// onInform registers the device (§8.1) or refreshes what it reported;
// with c.mu held.
func (c *Controller) onInform(s cwmptest.Session) {
	in := s.Inform
	now := c.now().UTC()
	var d *device
	for _, x := range c.devs {
		if x.cfg.SerialNumber == in.DeviceID.SerialNumber {
			d = x
		}
	}
	if d == nil {
		// Not in the config: registered and shown, not configured.
		name := deviceIDText(in.DeviceID)
		d = c.devs[name]
		if d == nil {
			d = &device{cfg: CPEConfig{Name: name, SerialNumber: in.DeviceID.SerialNumber}}
			c.devs[name] = d
		}
	}
	name := d.cfg.Name
	dev := c.st.Devices[name]
	if dev == nil {
		dev = &Device{Name: name, RegisteredAt: now}
		c.st.Devices[name] = dev
		c.log.Info("CPE registered", zap.String("device", name), zap.String("device_id", deviceIDText(in.DeviceID)))
	}
	dev.DeviceID = deviceIDText(in.DeviceID)
	dev.Manufacturer, dev.SerialNumber = in.DeviceID.Manufacturer, in.DeviceID.SerialNumber
	dev.LastInform = now
	dev.Informs++
	dev.LastEvents = dev.LastEvents[:0]
	for _, e := range in.Events {
		dev.LastEvents = append(dev.LastEvents, e.Code)
	}
	for _, p := range in.Params {
		switch p.Name {
		case crURLParam:
			dev.ConnectionRequestURL = p.Value
			if u, err := url.Parse(p.Value); err == nil {
				if a, err := netip.ParseAddr(u.Hostname()); err == nil {
					dev.Address = a.String()
				}
			}
		case srv6Obj + "SupportedServices":
			dev.SupportedServices = p.Value
		case srv6Obj + "Enable":
			dev.IPv6Enable = p.Value
		case srv6Obj + "IPv6Prefix":
			dev.IPv6Prefix = p.Value
		case srv6Obj + "Locator.SRv6Locator":
			dev.Locator = p.Value
		}
	}
	c.sessions[s.Index] = d
	d.inSession, d.lastSeen = true, c.now()
	if d.pending != nil {
		// The last session ended before the CPE answered: send it again.
		d.queue = append([]step{*d.pending}, d.queue...)
		d.pending = nil
	}
	switch {
	case d.known && (!d.configured || in.HasEvent("0 BOOTSTRAP")):
		d.configured = true
		dev.Configured = false
		c.configure(d)
	case d.configured && in.HasEvent("4 VALUE CHANGE"):
		d.queue = append(d.queue, c.readBack(d))
	}
}

// configure queues the §8.1 configuration: read the device's services,
// create the instances missing, one atomic SetParameterValues, read back
// the derived locator and SIDs; with c.mu held.
func (c *Controller) configure(d *device) {
	inst := make([]uint32, len(d.cfg.Services)) // service -> instance
	failed := ""
	fail := func(format string, a ...any) {
		if failed == "" {
			failed = fmt.Sprintf(format, a...)
		}
	}
	var adds []step
	plan := step{
		build: func() (cwmptest.Request, bool) { return cwmptest.GetParameterValues(serviceTable), true },
		onResp: func(m cwmptest.Message) {
			if m.Method != "GetParameterValuesResponse" {
				fail("GetParameterValues %s: %s", serviceTable, faultText(m))
				return
			}
			ids := serviceIDs(m.Values())
			taken := map[uint32]bool{}
			for i, s := range d.cfg.Services {
				for n, id := range ids {
					if id == s.ServiceID {
						inst[i], taken[n] = n, true
					}
				}
			}
			for i := range d.cfg.Services {
				if inst[i] != 0 {
					continue
				}
				for _, n := range sortedKeys(ids) {
					if ids[n] == "" && !taken[n] {
						inst[i], taken[n] = n, true
						break
					}
				}
				if inst[i] == 0 {
					adds = append(adds, c.addService(d, inst, i, fail))
				}
			}
			// The adds go before the SPV, which is next in the queue.
			d.queue = append(adds, d.queue...)
		},
	}
	spv := step{
		build: func() (cwmptest.Request, bool) {
			if failed != "" {
				c.configFailed(d, failed)
				return cwmptest.Request{}, false
			}
			return cwmptest.SetParameterValues("labctl-"+d.cfg.Name, c.configValues(d.cfg, inst)...), true
		},
		onResp: func(m cwmptest.Message) {
			if m.Method != "SetParameterValuesResponse" {
				c.configFailed(d, "SetParameterValues: "+faultText(m))
				return
			}
			now := c.now().UTC()
			dev := c.st.Devices[d.cfg.Name]
			dev.Configured, dev.ConfiguredAt, dev.ConfigError = true, &now, ""
			c.log.Info("CPE configured", zap.String("device", d.cfg.Name), zap.Int("services", len(d.cfg.Services)))
			c.startMonitoring()
		},
	}
	d.queue = append(d.queue, plan, spv, c.readBack(d))
}

func (c *Controller) configFailed(d *device, why string) {
	c.st.Devices[d.cfg.Name].ConfigError = why
	c.log.Error("CPE configuration failed", zap.String("device", d.cfg.Name), zap.String("error", why))
}

// addService is an AddObject for service i whose answer gives its
// instance number.
func (c *Controller) addService(d *device, inst []uint32, i int, fail func(string, ...any)) step {
	return step{
		build: func() (cwmptest.Request, bool) { return cwmptest.AddObject(serviceTable, "labctl-add"), true },
		onResp: func(m cwmptest.Message) {
			n, err := strconv.ParseUint(m.Text("InstanceNumber"), 10, 32)
			if m.Method != "AddObjectResponse" || err != nil || n == 0 {
				fail("AddObject %s for %s: %s", serviceTable, d.cfg.Services[i].ServiceID, faultText(m))
				return
			}
			inst[i] = uint32(n)
		},
	}
}

var serviceIDParam = regexp.MustCompile(`^Device\.X_ITU-INT_SRv6\.Service\.([0-9]+)\.ServiceID$`)

// serviceIDs maps instance numbers to ServiceIDs in a GPV answer.
func serviceIDs(values map[string]string) map[uint32]string {
	out := map[uint32]string{}
	for name, v := range values {
		if m := serviceIDParam.FindStringSubmatch(name); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 32)
			out[uint32(n)] = v
		}
	}
	return out
}

func sortedKeys(m map[uint32]string) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// configValues is the SRv6 + L3VPN configuration as one SPV: the
// device-wide Appendix I names, and the services' instances.
func (c *Controller) configValues(cfg CPEConfig, inst []uint32) []cwmptest.ParameterValue {
	uint := func(name string, v int) cwmptest.ParameterValue {
		return cwmptest.ParameterValue{Name: name, Value: strconv.Itoa(v), Type: "unsignedInt"}
	}
	str := func(name, v string) cwmptest.ParameterValue {
		return cwmptest.ParameterValue{Name: name, Value: v, Type: "string"}
	}
	vals := []cwmptest.ParameterValue{{Name: "IPv6Enable", Value: "true", Type: "boolean"}}
	if cfg.LocatorLength != 0 {
		vals = append(vals, uint("LocatorLength", cfg.LocatorLength))
	}
	if cfg.FunctionLength != 0 {
		vals = append(vals, uint("FunctionLength", cfg.FunctionLength))
	}
	if cfg.Extension != "" {
		vals = append(vals, str(srv6Obj+"Extension", cfg.Extension))
	}
	if cfg.LocatorName != "" {
		vals = append(vals, str(srv6Obj+"Locator.Name", cfg.LocatorName))
	}
	for i, s := range cfg.Services {
		p := serviceTable + strconv.FormatUint(uint64(inst[i]), 10) + "."
		vals = append(vals,
			str(p+"ServiceID", s.ServiceID), str(p+"ServiceType", "L3VPN"),
			str(p+"VPNInstance", s.VPNInstance), str(p+"RouteDistinguisher", s.RouteDistinguisher),
			str(p+"ImportRT", strings.Join(s.ImportRT, ",")), str(p+"ExportRT", strings.Join(s.ExportRT, ",")),
			str(p+"LANPrefixes", strings.Join(s.LANPrefixes, ",")))
		if s.Function != "" {
			vals = append(vals, str(p+"Function", s.Function))
		}
	}
	return vals
}

// readBack reads the delegated prefix, the locator and the SIDs the CPE
// derived.
func (c *Controller) readBack(d *device) step {
	return step{
		build: func() (cwmptest.Request, bool) {
			return cwmptest.GetParameterValues(srv6Obj+"IPv6Prefix", srv6Obj+"Locator.SRv6Locator", serviceTable), true
		},
		onResp: func(m cwmptest.Message) {
			if m.Method != "GetParameterValuesResponse" {
				c.log.Warn("reading the derived SIDs failed", zap.String("device", d.cfg.Name), zap.String("answer", faultText(m)))
				return
			}
			dev := c.st.Devices[d.cfg.Name]
			v := m.Values()
			dev.IPv6Prefix, dev.Locator = v[srv6Obj+"IPv6Prefix"], v[srv6Obj+"Locator.SRv6Locator"]
			dev.SIDs, dev.TunnelStatus = map[string]string{}, map[string]string{}
			for n, id := range serviceIDs(v) {
				if id == "" {
					continue
				}
				p := serviceTable + strconv.FormatUint(uint64(n), 10) + "."
				dev.SIDs[id] = v[p+"ServiceSID"]
				dev.TunnelStatus[id] = v[p+"TunnelStatus"]
			}
		},
	}
}

// startMonitoring creates every task whose two devices are configured and
// have addresses (§8.3 steps 1-2); with c.mu held.
func (c *Controller) startMonitoring() {
	for _, t := range c.cfg.Monitor {
		if c.st.Tasks[t.TaskID] != nil {
			continue
		}
		snd, rfl := c.st.Devices[t.Sender], c.st.Devices[t.Reflector]
		if snd == nil || rfl == nil || !snd.Configured || !rfl.Configured || snd.Address == "" || rfl.Address == "" {
			continue
		}
		task := &Task{ID: t.TaskID, CreatedAt: c.now().UTC(), Cycle: t.MonitorCycle,
			Sender:    TaskEnd{Device: t.Sender, Role: roleSender, LocalIP: snd.Address, PeerIP: rfl.Address},
			Reflector: TaskEnd{Device: t.Reflector, Role: roleReflector, LocalIP: rfl.Address, PeerIP: snd.Address}}
		c.st.Tasks[t.TaskID] = task
		c.log.Info("monitoring task created", zap.String("task", t.TaskID), zap.String("sender", t.Sender), zap.String("reflector", t.Reflector))
		// The reflector first, so that the sender's first probes are answered.
		c.enqueue(c.devs[t.Reflector], c.taskConfig(t, task, roleReflector))
		c.enqueue(c.devs[t.Sender], c.taskConfig(t, task, roleSender))
	}
}

func (c *Controller) taskConfig(t TaskConfig, task *Task, role string) step {
	end, answer := &task.Sender, &task.Config.Sender
	if role == roleReflector {
		end, answer = &task.Reflector, &task.Config.Reflector
	}
	return step{
		build: func() (cwmptest.Request, bool) {
			return cwmptest.Vendor(methodConfig,
				[2]string{"MonitorTaskID", t.TaskID}, [2]string{"Role", role},
				[2]string{"LocalIP", ""}, [2]string{"PeerIP", end.PeerIP},
				[2]string{"Protocol", t.Protocol}, [2]string{"Port", strconv.Itoa(t.Port)},
				[2]string{"MonitorCycle", strconv.Itoa(t.MonitorCycle)},
				[2]string{"PacketInterval", strconv.Itoa(t.PacketInterval)},
				[2]string{"Enable", "true"}), true
		},
		onResp: func(m cwmptest.Message) {
			*answer = vendorAnswer(m)
			c.log.Info("monitoring task configured", zap.String("task", t.TaskID), zap.String("role", role), zap.String("answer", *answer))
		},
	}
}

// vendorAnswer summarises the answer to a Stats_* request.
func vendorAnswer(m cwmptest.Message) string {
	if m.Method == "Fault" {
		return faultText(m)
	}
	return m.Method + " Status " + m.Text("Status")
}

func faultText(m cwmptest.Message) string {
	if code, msg := m.Fault(); code != 0 {
		return fmt.Sprintf("fault %d %s", code, msg)
	}
	return "answered " + m.Method
}

// vendorFields are the children of a vendor RPC, by name.
func vendorFields(m cwmptest.Message) map[string]string {
	out := map[string]string{}
	if m.Body == nil {
		return out
	}
	for _, e := range m.Body.ChildElements() {
		out[e.Tag] = strings.TrimSpace(e.Text())
	}
	return out
}

// onDataReport records a Stats_Monitor_Data_Resp (§8.3 step 3); with c.mu held.
func (c *Controller) onDataReport(d *device, m cwmptest.Message) {
	f := vendorFields(m)
	task := c.st.Tasks[f["MonitorTaskID"]]
	if task == nil {
		c.log.Warn("report for an unknown monitoring task", zap.String("device", d.cfg.Name), zap.String("task", f["MonitorTaskID"]))
		return
	}
	task.Reports++
	task.LastReport = &Report{ReceivedAt: c.now().UTC(), Device: d.cfg.Name, Fields: f}
}

// onIPChange handles a Stats_IP_Change_Report (§8.3 steps 6-8): the table
// gets the new address, and the other device of the task is told to
// re-target its session; with c.mu held.
func (c *Controller) onIPChange(d *device, m cwmptest.Message) {
	f := vendorFields(m)
	ev := IPChange{TaskID: f["MonitorTaskID"], Device: d.cfg.Name, DeviceID: f["DeviceID"], OldIP: f["OldIP"], NewIP: f["NewIP"],
		ChangeTimestamp: f["ChangeTimestamp"], ReceivedAt: c.now().UTC()}
	defer func() { c.st.IPChanges = append(c.st.IPChanges, ev) }()
	c.log.Info("IP change report", zap.String("device", d.cfg.Name), zap.String("task", ev.TaskID), zap.String("old", ev.OldIP), zap.String("new", ev.NewIP))
	newIP, err := netip.ParseAddr(ev.NewIP)
	if err != nil {
		ev.Problem = fmt.Sprintf("NewIP %q is not an IP address", ev.NewIP)
		return
	}
	if dev := c.st.Devices[d.cfg.Name]; dev != nil {
		dev.Address = newIP.String()
	}
	task := c.st.Tasks[ev.TaskID]
	if task == nil {
		ev.Problem = fmt.Sprintf("no monitoring task %q", ev.TaskID)
		return
	}
	self, other := &task.Sender, &task.Reflector
	if task.Reflector.Device == d.cfg.Name {
		self, other = other, self
	} else if task.Sender.Device != d.cfg.Name {
		ev.Problem = fmt.Sprintf("device %s is not part of task %q", d.cfg.Name, ev.TaskID)
		return
	}
	if self.LocalIP != ev.OldIP {
		ev.Problem = fmt.Sprintf("OldIP %s is not the address %s the table had", ev.OldIP, self.LocalIP)
	}
	self.LocalIP, other.PeerIP = newIP.String(), newIP.String()
	od := c.devs[other.Device]
	if od == nil {
		ev.Problem = fmt.Sprintf("the task's other device %q is unknown", other.Device)
		return
	}
	queued := c.now().UTC()
	ev.UpdateTo, ev.UpdateQueuedAt = other.Device, &queued
	idx := len(c.st.IPChanges) // ev's position once appended
	task.Updates++
	c.enqueue(od, step{
		build: func() (cwmptest.Request, bool) {
			sent := c.now().UTC()
			c.st.IPChanges[idx].UpdateSentAt = &sent
			return cwmptest.Vendor(methodUpdate, [2]string{"MonitorTaskID", task.ID}, [2]string{"UpdatedPeerIP", newIP.String()}), true
		},
		onResp: func(m cwmptest.Message) {
			at := c.now().UTC()
			c.st.IPChanges[idx].UpdateAnswerAt, c.st.IPChanges[idx].UpdateAnswer = &at, vendorAnswer(m)
			c.log.Info("monitoring task re-targeted", zap.String("task", task.ID), zap.String("device", other.Device), zap.String("answer", vendorAnswer(m)))
		},
	})
}

// Serve runs the ACS with the controller's hook on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, c *Controller, log *zap.Logger) error {
	var opts []cwmptest.Option
	if c.cfg.ACS.Username != "" {
		opts = append(opts, cwmptest.WithAuth(cwmptest.AuthDigest, c.cfg.ACS.Username, c.cfg.ACS.Password))
	}
	opts = append(opts, cwmptest.WithHook(c.Hook), cwmptest.WithSessionLimit(16))
	acs := cwmptest.New(opts...)
	srv := &http.Server{Handler: acs, ConnContext: acs.ConnContext, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.Run(runCtx)
	c.mu.Lock()
	c.save()
	c.mu.Unlock()
	log.Info("lab controller listening", zap.String("addr", ln.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}
