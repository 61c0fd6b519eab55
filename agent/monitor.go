package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// MonitorOverlayFile holds the monitoring tasks the controller set (the
// Stats_* RPCs, or SPV/AddObject on Monitor.Task). Once it exists it
// replaces the config file's monitor.tasks; a factory reset (empty state
// dir) returns to the file's.
const MonitorOverlayFile = "monitor-controller.json"

// Roles and protocols of a monitoring task (Q.Suppl.79 §7.4).
const (
	RoleSender       = "Sender"
	RoleReflector    = "Reflector"
	ProtocolSTAMP    = "STAMP"
	ProtocolTWAMPLit = "TWAMP-Light"
)

// Defaults of a monitoring task.
const (
	DefaultMonitorCycle   = 60  // seconds between reports
	DefaultPacketInterval = 100 // milliseconds between probes
	maxMonitorCycle       = 86400
	minPacketInterval     = 10
	maxPacketInterval     = 60000
	maxPacketSize         = 9000
)

// MonitorConfig is the config file's `monitor:` section.
type MonitorConfig struct {
	Tasks []MonitorTask `yaml:"tasks"`
}

// MonitorTask is one monitoring task. The CWMP names (Monitor.Task.{i}.X
// and the Stats_Monitor_Config_Req elements) are in monitorFields.
type MonitorTask struct {
	ID   string `yaml:"id" json:"id"`
	Role string `yaml:"role" json:"role"`
	// LocalIP: the probe source (Sender) / the address served (Reflector).
	// Unset follows the CPE's WAN address, and an address change re-targets
	// the session and is reported.
	LocalIP  netip.Addr `yaml:"local_ip" json:"local_ip,omitzero"`
	PeerIP   netip.Addr `yaml:"peer_ip" json:"peer_ip,omitzero"`
	Protocol string     `yaml:"protocol" json:"protocol"`
	Port     uint16     `yaml:"port" json:"port"`
	// Cycle is MonitorCycle (seconds between reports), PacketInterval in
	// milliseconds, PacketSize in octets (0: the base packet).
	Cycle          uint32 `yaml:"cycle" json:"cycle"`
	PacketInterval uint32 `yaml:"packet_interval" json:"packet_interval"`
	PacketSize     uint32 `yaml:"packet_size" json:"packet_size,omitempty"`
	DSCP           uint8  `yaml:"dscp" json:"dscp,omitempty"`
	// SegmentList makes the probes follow these SIDs (Q.Suppl.79 notation
	// accepted).
	SegmentList string `yaml:"segment_list" json:"segment_list,omitempty"`
	// Enable defaults to true.
	Enable *bool `yaml:"enable" json:"enable,omitempty"`
}

func (t *MonitorTask) setDefaults() {
	if t.Protocol == "" {
		t.Protocol = ProtocolSTAMP
	}
	if t.Port == 0 {
		t.Port = twamp.DefaultPort
	}
	if t.Cycle == 0 {
		t.Cycle = DefaultMonitorCycle
	}
	if t.PacketInterval == 0 {
		t.PacketInterval = DefaultPacketInterval
	}
}

func (t MonitorTask) enabled() bool { return t.Enable == nil || *t.Enable }

// complete: an instance added by AddObject runs once it has an ID and a role.
func (t MonitorTask) complete() bool { return t.ID != "" && t.Role != "" }

// ssid is the STAMP session id the task's probes carry: derived from the
// task id, so it survives restarts and re-targeting; never 0.
func (t MonitorTask) ssid() uint16 {
	h := fnv.New32a()
	h.Write([]byte(t.ID))
	v := h.Sum32()
	s := uint16(v>>16) ^ uint16(v)
	if s == 0 {
		s = 1
	}
	return s
}

func (t MonitorTask) segments() []netip.Addr {
	if t.SegmentList == "" {
		return nil
	}
	l, err := srv6.ParseSegmentList(t.SegmentList)
	if err != nil {
		return nil // validated before it is stored
	}
	return srv6.Addrs(l)
}

// fieldError is a problem with one task field, named as CWMP names it.
type fieldError struct {
	Field string
	Err   error
}

func (e fieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// validate checks a complete task; every problem names its field.
func (t MonitorTask) validate() []fieldError {
	var errs []fieldError
	bad := func(field, format string, a ...any) {
		errs = append(errs, fieldError{field, fmt.Errorf(format, a...)})
	}
	if !namePattern.MatchString(t.ID) {
		bad("MonitorTaskID", "%q is not a task id (1-64 letters, digits, _ . : @ -, starting with a letter or digit)", t.ID)
	}
	switch t.Role {
	case RoleSender, RoleReflector:
	default:
		bad("Role", "%q is not one of %s, %s", t.Role, RoleSender, RoleReflector)
	}
	if t.LocalIP.IsValid() {
		if err := checkProbeAddr(t.LocalIP); err != nil {
			bad("LocalIP", "%w", err)
		}
	}
	switch {
	case t.PeerIP.IsValid():
		if err := checkProbeAddr(t.PeerIP); err != nil {
			bad("PeerIP", "%w", err)
		}
	case t.Role == RoleSender:
		bad("PeerIP", "a Sender task needs the reflector's IPv6 address")
	}
	switch t.Protocol {
	case ProtocolSTAMP, ProtocolTWAMPLit:
	default:
		bad("Protocol", "%q is not one of %s, %s", t.Protocol, ProtocolSTAMP, ProtocolTWAMPLit)
	}
	if t.Port == 0 {
		bad("Port", "0 is not a UDP port")
	}
	if t.Cycle < 1 || t.Cycle > maxMonitorCycle {
		bad("MonitorCycle", "%d s is outside 1..%d", t.Cycle, maxMonitorCycle)
	}
	if t.PacketInterval < minPacketInterval || t.PacketInterval > maxPacketInterval {
		bad("PacketInterval", "%d ms is outside %d..%d", t.PacketInterval, minPacketInterval, maxPacketInterval)
	}
	if t.PacketSize > maxPacketSize {
		bad("PacketSize", "%d octets is more than %d", t.PacketSize, maxPacketSize)
	}
	if t.DSCP > 63 {
		bad("DSCP", "%d is outside 0..63", t.DSCP)
	}
	if t.SegmentList != "" {
		l, err := srv6.ParseSegmentList(t.SegmentList)
		switch {
		case err != nil:
			bad("SegmentList", "%w", err)
		case len(l) > srv6.MaxSegments:
			bad("SegmentList", "%d SIDs, more than %d", len(l), srv6.MaxSegments)
		case t.Role == RoleReflector:
			bad("SegmentList", "a Reflector task sends no probes to route")
		}
	}
	return errs
}

// checkProbeAddr accepts a global IPv6 unicast address (a link-local one
// would need an interface the task does not name).
func checkProbeAddr(a netip.Addr) error {
	if err := checkUnicastSID(a); err != nil {
		return err
	}
	if a.IsLinkLocalUnicast() {
		return fmt.Errorf("%s is link-local", a)
	}
	return nil
}

// monitorField is one task field as CWMP and the Stats_* RPCs name it.
type monitorField struct {
	name string
	// key is the config file's key (monitor.tasks[i].key).
	key string
	// alias is the Stats_Monitor_Update_Req name, if it has one.
	alias string
	get   func(MonitorTask) string
	set   func(*MonitorTask, string) error
}

func parseOptionalAddr(v string) (netip.Addr, error) {
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return a, fmt.Errorf("%q is not an IPv6 address", v)
	}
	if !a.Is6() || a.Is4In6() {
		return a, fmt.Errorf("%s is not an IPv6 address", a)
	}
	return a.WithZone(""), nil
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func parseUint(v string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of 0..%d", v, uint64(1)<<bits-1)
	}
	return n, nil
}

var monitorFields = []monitorField{
	{name: "MonitorTaskID", key: "id", get: func(t MonitorTask) string { return t.ID },
		set: func(t *MonitorTask, v string) error { t.ID = v; return nil }},
	{name: "Role", key: "role", get: func(t MonitorTask) string { return t.Role },
		set: func(t *MonitorTask, v string) error {
			for _, r := range []string{RoleSender, RoleReflector} {
				if strings.EqualFold(v, r) {
					v = r
				}
			}
			t.Role = v
			return nil
		}},
	{name: "LocalIP", key: "local_ip", alias: "UpdatedLocalIP", get: func(t MonitorTask) string { return addrText(t.LocalIP) },
		set: func(t *MonitorTask, v string) (err error) { t.LocalIP, err = parseOptionalAddr(v); return err }},
	{name: "PeerIP", key: "peer_ip", alias: "UpdatedPeerIP", get: func(t MonitorTask) string { return addrText(t.PeerIP) },
		set: func(t *MonitorTask, v string) (err error) { t.PeerIP, err = parseOptionalAddr(v); return err }},
	{name: "Protocol", key: "protocol", get: func(t MonitorTask) string { return t.Protocol },
		set: func(t *MonitorTask, v string) error {
			switch strings.ToUpper(v) {
			case "", "STAMP":
				v = ProtocolSTAMP
			case "TWAMP-LIGHT", "TWAMP_LIGHT", "TWAMPLIGHT":
				v = ProtocolTWAMPLit
			}
			t.Protocol = v
			return nil
		}},
	{name: "Port", key: "port", get: func(t MonitorTask) string { return strconv.Itoa(int(t.Port)) },
		set: func(t *MonitorTask, v string) error {
			n, err := parseUint(v, 16)
			t.Port = uint16(n)
			return err
		}},
	{name: "MonitorCycle", key: "cycle", get: func(t MonitorTask) string { return strconv.FormatUint(uint64(t.Cycle), 10) },
		set: func(t *MonitorTask, v string) error {
			n, err := parseUint(v, 32)
			t.Cycle = uint32(n)
			return err
		}},
	{name: "PacketInterval", key: "packet_interval", get: func(t MonitorTask) string { return strconv.FormatUint(uint64(t.PacketInterval), 10) },
		set: func(t *MonitorTask, v string) error {
			n, err := parseUint(v, 32)
			t.PacketInterval = uint32(n)
			return err
		}},
	{name: "PacketSize", key: "packet_size", get: func(t MonitorTask) string { return strconv.FormatUint(uint64(t.PacketSize), 10) },
		set: func(t *MonitorTask, v string) error {
			n, err := parseUint(v, 32)
			t.PacketSize = uint32(n)
			return err
		}},
	{name: "DSCP", key: "dscp", get: func(t MonitorTask) string { return strconv.Itoa(int(t.DSCP)) },
		set: func(t *MonitorTask, v string) error {
			n, err := parseUint(v, 8)
			t.DSCP = uint8(n)
			return err
		}},
	{name: "SegmentList", key: "segment_list", get: func(t MonitorTask) string { return t.SegmentList },
		set: func(t *MonitorTask, v string) error { t.SegmentList = strings.TrimSpace(v); return nil }},
	{name: "Enable", key: "enable", get: func(t MonitorTask) string { return strconv.FormatBool(t.enabled()) },
		set: func(t *MonitorTask, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a boolean", v)
			}
			t.Enable = &b
			return nil
		}},
}

func monitorFieldNamed(name string) (monitorField, bool) {
	for _, f := range monitorFields {
		if f.name == name || (f.alias != "" && f.alias == name) {
			return f, true
		}
	}
	return monitorField{}, false
}

// monitorEntry is a task with its Monitor.Task instance number (0 until
// the CWMP client registered it).
type monitorEntry struct {
	Inst uint32      `json:"inst"`
	Task MonitorTask `json:"task"`
}

// monitorState is the task list; it is replaced, never changed in place.
type monitorState struct {
	Tasks []monitorEntry `json:"tasks"`
}

func (st monitorState) clone() monitorState {
	return monitorState{Tasks: slices.Clone(st.Tasks)}
}

func (st monitorState) index(inst uint32) int {
	return slices.IndexFunc(st.Tasks, func(e monitorEntry) bool { return e.Inst == inst })
}

func (st monitorState) byID(id string) int {
	return slices.IndexFunc(st.Tasks, func(e monitorEntry) bool { return e.Task.ID == id })
}

// portClash: reflector task i shares its port with an earlier reflector
// task of the other protocol (one socket serves a port).
func (st monitorState) portClash(i int) error {
	t := st.Tasks[i].Task
	if t.Role != RoleReflector {
		return nil
	}
	for _, e := range st.Tasks[:i] {
		if o := e.Task; o.complete() && o.Role == RoleReflector && o.Port == t.Port && o.Protocol != t.Protocol {
			return fmt.Errorf("%s on port %d, where reflector task %q serves %s", t.Protocol, t.Port, o.ID, o.Protocol)
		}
	}
	return nil
}

// check validates every complete task and the uniqueness of the ids;
// problems name the instance (when it has one) and the field.
func (st monitorState) check() []fieldError {
	var errs []fieldError
	seen := map[string]int{}
	for i, e := range st.Tasks {
		if !e.Task.complete() {
			continue
		}
		where := ""
		if e.Inst != 0 {
			where = fmt.Sprintf("Task.%d.", e.Inst)
		}
		for _, fe := range e.Task.validate() {
			errs = append(errs, fieldError{where + fe.Field, fe.Err})
		}
		if j, dup := seen[e.Task.ID]; dup {
			errs = append(errs, fieldError{where + "MonitorTaskID", fmt.Errorf("%q is also the id of task %d", e.Task.ID, st.Tasks[j].Inst)})
		} else {
			seen[e.Task.ID] = i
		}
		if err := st.portClash(i); err != nil {
			errs = append(errs, fieldError{where + "Protocol", err})
		}
	}
	return errs
}

// validateMonitor checks the config file's monitor section.
func (c *Config) validateMonitor() []error {
	var errs []error
	seen := map[string]int{}
	for i, t := range c.Monitor.Tasks {
		t.setDefaults()
		key := fmt.Sprintf("monitor.tasks[%d]", i)
		for _, fe := range t.validate() {
			f, _ := monitorFieldNamed(fe.Field)
			errs = append(errs, fmt.Errorf("%s.%s: %w", key, f.key, fe.Err))
		}
		if j, dup := seen[t.ID]; dup {
			errs = append(errs, fmt.Errorf("%s.id: %q is also the id of monitor.tasks[%d]", key, t.ID, j))
		}
		seen[t.ID] = i
	}
	var st monitorState
	for _, t := range c.Monitor.Tasks {
		t.setDefaults()
		st.Tasks = append(st.Tasks, monitorEntry{Task: t})
	}
	for i := range st.Tasks {
		if err := st.portClash(i); err != nil {
			errs = append(errs, fmt.Errorf("monitor.tasks[%d].protocol: %w", i, err))
		}
	}
	return errs
}

type monitorDoc struct {
	Version int          `json:"version"`
	State   monitorState `json:"state"`
	// FallbackURL is the ACS that answered Stats_Monitor_Data_Resp with
	// fault 8000: reports go to the parameters while it stays the ACS.
	FallbackURL string `json:"fallback_url,omitempty"`
}

// monitorStateFromFile mirrors the file's tasks, keeping prev's instance
// numbers by position.
func monitorStateFromFile(c Config, prev monitorState) monitorState {
	var st monitorState
	for i, t := range c.Monitor.Tasks {
		t.setDefaults()
		e := monitorEntry{Task: t}
		if i < len(prev.Tasks) {
			e.Inst = prev.Tasks[i].Inst
		}
		st.Tasks = append(st.Tasks, e)
	}
	return st
}

// report is one cycle's measurement of a sender task, in the units of
// Stats_Monitor_Data_Resp. STAMP probes measure no bandwidth, so the
// report has no Bandwidth element (the contract: only when measured).
type report struct {
	Latency, Jitter, PacketLossRate string
	Timestamp                       time.Time
}

func (r report) fields(taskID, deviceID string, local, peer netip.Addr) []fieldKV {
	return []fieldKV{{"MonitorTaskID", taskID}, {"DeviceID", deviceID}, {"LocalIP", addrText(local)}, {"PeerIP", addrText(peer)},
		{"Latency", r.Latency}, {"Jitter", r.Jitter}, {"PacketLossRate", r.PacketLossRate}, {"ReportTimestamp", rfc3339(r.Timestamp)}}
}

type fieldKV struct{ name, value string }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ms formats a duration in milliseconds with 3 decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// accumulator sums one report cycle of a sender task's samples. It lives
// in the task, not in the twamp session, so re-targeting (a new session)
// keeps the cycle going.
type cycleAcc struct {
	received, lost uint64
	rttSum         time.Duration
	ipdvSum        time.Duration
	ipdvN          uint64
	// last received sample of the current session, for IPDV.
	gen     uint64
	lastSeq uint32
	lastRTT time.Duration
	haveRTT bool
}

func (a *cycleAcc) add(gen uint64, s twamp.Sample) {
	if s.Lost {
		a.lost++
		return
	}
	a.received++
	a.rttSum += s.RTT
	// RFC 5481 IPDV between packets with consecutive sequence numbers of
	// the same session.
	if a.haveRTT && a.gen == gen && s.Seq == a.lastSeq+1 {
		d := s.RTT - a.lastRTT
		a.ipdvSum += max(d, -d)
		a.ipdvN++
	}
	a.gen, a.lastSeq, a.lastRTT, a.haveRTT = gen, s.Seq, s.RTT, true
}

// take returns the cycle's report (ok false: nothing measured) and starts
// the next cycle; the IPDV reference carries over.
func (a *cycleAcc) take(now time.Time) (report, bool) {
	if a.received+a.lost == 0 {
		return report{}, false
	}
	r := report{Timestamp: now,
		PacketLossRate: strconv.FormatFloat(100*float64(a.lost)/float64(a.received+a.lost), 'f', 2, 64)}
	if a.received > 0 {
		r.Latency = ms(a.rttSum / time.Duration(a.received))
	}
	if a.ipdvN > 0 {
		r.Jitter = ms(a.ipdvSum / time.Duration(a.ipdvN))
	} else if a.received > 0 {
		r.Jitter = ms(0)
	}
	a.received, a.lost, a.rttSum, a.ipdvSum, a.ipdvN = 0, 0, 0, 0, 0
	return r, true
}

// loadMonitorDoc reads the overlay; a missing one is (zero, false, nil).
func (m *monitor) loadDoc() (monitorDoc, bool, error) {
	b, err := m.state.ReadFile(MonitorOverlayFile)
	if errors.Is(err, fs.ErrNotExist) {
		return monitorDoc{}, false, nil
	}
	var doc monitorDoc
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	if err == nil && doc.Version != 1 {
		err = fmt.Errorf("version %d, want 1", doc.Version)
	}
	if err == nil {
		if errs := doc.State.check(); len(errs) > 0 {
			err = errs[0]
		}
	}
	if err != nil {
		return monitorDoc{}, false, fmt.Errorf("%s: %w", MonitorOverlayFile, err)
	}
	return doc, true, nil
}
