package agent

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// Device.X_ITU-INT_SRv6.Policy.{i}: the parent SRv6 policies of
// draft-yang-srv6ops-policy-selector (srv6/policy.go's names). A policy is
// configured while its Enable is true; AddObject makes it disabled, so a
// controller builds it with AddObject and SetParameterValues and switches
// it on, in one SPV or later. Under a policy, an instance still exactly
// as AddObject left it (blank) is not part of the configuration; once a
// value is set it is, and the whole configuration is validated as the
// daemon validates its file. The model lives in the SRv6 overlay
// (modelState.Policies), so it is persisted and applied like the other
// SRv6 objects. Measurements and the selectors' choices are read from the
// policy runtime; RemainingBandwidth and Restore are handed to it.

// policyTable is Policy.{i}.
const policyTable = SRv6Object + "Policy."

// maxPolicyChildren caps every table under a policy (constituents, lists,
// selectors, priorities, services, flows), and maxPolicyObjects all of
// their instances together: a controller cannot exhaust a CPE's memory or
// flash through AddObject.
const (
	maxPolicyChildren = 32
	maxPolicyObjects  = 1024
)

// policyRuntime is the policy runtime as the CWMP model sees it (the
// Agent; a fake in tests).
type policyRuntime interface {
	PolicyStatus() []PolicyStatus
	ObservePolicyBandwidth(policy string, color uint32, bw srv6.Bandwidth) error
	RestorePolicyService(policy, service string) error
}

// ---- the model ----

type modelPolicy struct {
	Inst          uint32               `json:"inst"`
	Enable        bool                 `json:"enable"`
	Name          string               `json:"name,omitempty"`
	Color         uint32               `json:"color,omitempty"`
	Endpoint      netip.Addr           `json:"endpoint"`
	VPN           string               `json:"vpn,omitempty"`
	ProbeInterval time.Duration        `json:"probe_interval,omitempty"`
	EndTSF        bool                 `json:"end_tsf,omitempty"`
	Constituents  []modelConstituent   `json:"constituents,omitempty"`
	Selectors     []modelSelector      `json:"selectors,omitempty"`
	Services      []modelPolicyService `json:"services,omitempty"`
	Flows         []modelFlow          `json:"flows,omitempty"`
}

type modelConstituent struct {
	Inst  uint32             `json:"inst"`
	Color uint32             `json:"color,omitempty"`
	Name  string             `json:"name,omitempty"`
	Lists []modelSegmentList `json:"lists,omitempty"`
}

// modelSegmentList keeps plain addresses: an empty srv6.Segments does not
// survive a JSON round trip (its text form is not a list).
type modelSegmentList struct {
	Inst     uint32       `json:"inst"`
	Segments []netip.Addr `json:"segments,omitempty"`
	Weight   uint32       `json:"weight"`
}

type modelSelector struct {
	Inst          uint32          `json:"inst"`
	Name          string          `json:"name,omitempty"`
	Priorities    []modelPriority `json:"priorities,omitempty"`
	Thresholds    srv6.Thresholds `json:"thresholds"`
	Default       uint32          `json:"default,omitempty"`
	WaitToRestore time.Duration   `json:"wait_to_restore,omitempty"`
	NonRevertive  bool            `json:"non_revertive,omitempty"`
}

type modelPriority struct {
	Inst               uint32 `json:"inst"`
	srv6.PriorityEntry `json:"entry"`
}

type modelPolicyService struct {
	Inst               uint32 `json:"inst"`
	srv6.PolicyService `json:"service"`
}

type modelFlow struct {
	Inst       uint32 `json:"inst"`
	FlowConfig `json:"flow"`
}

// instanced is a model entry with its CWMP instance number.
type instanced interface{ instNum() uint32 }

func (p modelPolicy) instNum() uint32        { return p.Inst }
func (c modelConstituent) instNum() uint32   { return c.Inst }
func (l modelSegmentList) instNum() uint32   { return l.Inst }
func (s modelSelector) instNum() uint32      { return s.Inst }
func (e modelPriority) instNum() uint32      { return e.Inst }
func (s modelPolicyService) instNum() uint32 { return s.Inst }
func (f modelFlow) instNum() uint32          { return f.Inst }

// ref is the entry's instance number, for syncLevel to assign.
func (p *modelPolicy) ref() *uint32        { return &p.Inst }
func (c *modelConstituent) ref() *uint32   { return &c.Inst }
func (l *modelSegmentList) ref() *uint32   { return &l.Inst }
func (s *modelSelector) ref() *uint32      { return &s.Inst }
func (e *modelPriority) ref() *uint32      { return &e.Inst }
func (s *modelPolicyService) ref() *uint32 { return &s.Inst }
func (f *modelFlow) ref() *uint32          { return &f.Inst }

func byInst[T instanced](l []T, inst uint32) int {
	return slices.IndexFunc(l, func(e T) bool { return e.instNum() == inst })
}

// Blank entries are as AddObject made them: not configured.
func (c modelConstituent) blank() bool {
	return c.Color == 0 && c.Name == "" && !slices.ContainsFunc(c.Lists, func(l modelSegmentList) bool { return !l.blank() })
}
func (l modelSegmentList) blank() bool { return len(l.Segments) == 0 && l.Weight <= 1 }
func (s modelSelector) blank() bool {
	return s.Name == "" && s.Thresholds == (srv6.Thresholds{}) && s.Default == 0 && s.WaitToRestore == 0 && !s.NonRevertive &&
		!slices.ContainsFunc(s.Priorities, func(e modelPriority) bool { return !e.blank() })
}
func (e modelPriority) blank() bool      { return e.PriorityEntry == srv6.PriorityEntry{} }
func (s modelPolicyService) blank() bool { return s.PolicyService == srv6.PolicyService{} }
func (f modelFlow) blank() bool          { return reflect.ValueOf(f.FlowConfig).IsZero() }

// policyLayout maps the positions of a policy's configuration back to
// instance numbers, to name the parameter a validation error is about.
type policyLayout struct {
	inst  uint32
	cons  []uint32
	lists [][]uint32
	sels  []uint32
	prios [][]uint32
	svcs  []uint32
	flows []uint32
}

// config is p's configuration without its blank entries.
func (p *modelPolicy) config() (PolicyConfig, policyLayout) {
	c := PolicyConfig{
		Policy:        srv6.Policy{Name: p.Name, Color: p.Color, Endpoint: p.Endpoint},
		VPN:           p.VPN,
		ProbeInterval: p.ProbeInterval,
		EndTSF:        p.EndTSF,
	}
	l := policyLayout{inst: p.Inst}
	for _, mc := range p.Constituents {
		if mc.blank() {
			continue
		}
		k := srv6.Constituent{Color: mc.Color, Name: mc.Name}
		var lists []uint32
		for _, ml := range mc.Lists {
			if ml.blank() {
				continue
			}
			k.SegmentLists = append(k.SegmentLists, srv6.SegmentList{Segments: slices.Clone(srv6.Segments(ml.Segments)), Weight: ml.Weight})
			lists = append(lists, ml.Inst)
		}
		c.Constituents = append(c.Constituents, k)
		l.cons, l.lists = append(l.cons, mc.Inst), append(l.lists, lists)
	}
	for _, ms := range p.Selectors {
		if ms.blank() {
			continue
		}
		s := srv6.RoutingSelector{Name: ms.Name, Thresholds: ms.Thresholds, Default: ms.Default,
			WaitToRestore: ms.WaitToRestore, NonRevertive: ms.NonRevertive}
		var prios []uint32
		for _, e := range ms.Priorities {
			if !e.blank() {
				s.Priorities = append(s.Priorities, e.PriorityEntry)
				prios = append(prios, e.Inst)
			}
		}
		c.Selectors = append(c.Selectors, s)
		l.sels, l.prios = append(l.sels, ms.Inst), append(l.prios, prios)
	}
	for _, s := range p.Services {
		if !s.blank() {
			c.Services = append(c.Services, s.PolicyService)
			l.svcs = append(l.svcs, s.Inst)
		}
	}
	for _, f := range p.Flows {
		if !f.blank() {
			c.Flows = append(c.Flows, f.FlowConfig)
			l.flows = append(l.flows, f.Inst)
		}
	}
	return c, l
}

// policyConfigs are the enabled policies' configurations (none when SRv6
// is disabled), with their layouts.
func (st *modelState) policyConfigs() ([]PolicyConfig, []policyLayout) {
	if st.Disabled {
		return nil, nil
	}
	var out []PolicyConfig
	var layouts []policyLayout
	for i := range st.Policies {
		if p := &st.Policies[i]; p.Enable {
			c, l := p.config()
			out, layouts = append(out, c), append(layouts, l)
		}
	}
	return out, layouts
}

// at is l[i], or the zero entry past l's end.
func at[T any](l []T, i int) T {
	if i < len(l) {
		return l[i]
	}
	var zero T
	return zero
}

// policiesFromConfig mirrors the file's policies (all enabled), keeping
// prev's instance numbers by position at every level; instances the file
// no longer fills stay, blank, so that the numbers the ACS knows keep
// meaning the same entries.
func policiesFromConfig(cfgs []PolicyConfig, prev []modelPolicy) []modelPolicy {
	var out []modelPolicy
	for i, c := range cfgs {
		pp := at(prev, i)
		p := modelPolicy{Inst: pp.Inst, Enable: true, Name: c.Name, Color: c.Color, Endpoint: c.Endpoint, VPN: c.VPN,
			ProbeInterval: c.ProbeInterval, EndTSF: c.EndTSF}
		for j, k := range c.Constituents {
			pc := at(pp.Constituents, j)
			mc := modelConstituent{Inst: pc.Inst, Color: k.Color, Name: k.Name}
			for n, sl := range k.SegmentLists {
				mc.Lists = append(mc.Lists, modelSegmentList{Inst: at(pc.Lists, n).Inst, Segments: slices.Clone([]netip.Addr(sl.Segments)), Weight: sl.Weight})
			}
			mc.Lists = appendBlanks(mc.Lists, pc.Lists, segmentListLevel.blank)
			p.Constituents = append(p.Constituents, mc)
		}
		for j, s := range c.Selectors {
			ps := at(pp.Selectors, j)
			ms := modelSelector{Inst: ps.Inst, Name: s.Name, Thresholds: s.Thresholds, Default: s.Default,
				WaitToRestore: s.WaitToRestore, NonRevertive: s.NonRevertive}
			for n, e := range s.Priorities {
				ms.Priorities = append(ms.Priorities, modelPriority{Inst: at(ps.Priorities, n).Inst, PriorityEntry: e})
			}
			ms.Priorities = appendBlanks(ms.Priorities, ps.Priorities, priorityLevel.blank)
			p.Selectors = append(p.Selectors, ms)
		}
		for j, s := range c.Services {
			p.Services = append(p.Services, modelPolicyService{Inst: at(pp.Services, j).Inst, PolicyService: s})
		}
		for j, f := range c.Flows {
			p.Flows = append(p.Flows, modelFlow{Inst: at(pp.Flows, j).Inst, FlowConfig: f})
		}
		p.Constituents = appendBlanks(p.Constituents, pp.Constituents, constituentLevel.blank)
		p.Selectors = appendBlanks(p.Selectors, pp.Selectors, selectorLevel.blank)
		p.Services = appendBlanks(p.Services, pp.Services, policyServiceLevel.blank)
		p.Flows = appendBlanks(p.Flows, pp.Flows, flowLevel.blank)
		out = append(out, p)
	}
	return appendBlanks(out, prev, policyLevelP.blank)
}

// appendBlanks adds a blank entry for each numbered instance of prev
// beyond cur's length.
func appendBlanks[T instanced](cur, prev []T, blank func(uint32) T) []T {
	for _, e := range prev[min(len(cur), len(prev)):] {
		if n := e.instNum(); n != 0 {
			cur = append(cur, blank(n))
		}
	}
	return cur
}

// ---- parameters ----

// policyField is one writable parameter of an entry of type T.
type policyField[T any] struct {
	name string
	typ  cwmpclient.Type
	get  func(*T) string
	set  func(*T, string) error
}

// policyLevel is one multi-instance table of the policy model.
type policyLevel[T instanced] struct {
	path string // under SRv6Object, e.g. "Policy.{i}.Constituent.{i}."
	// list is the table idx (the parent's instance numbers) points into;
	// nil when the parent is gone.
	list   func(st *modelState, idx []uint32) *[]T
	blank  func(inst uint32) T
	fields []policyField[T]
}

// entry finds the entry idx names (nil when it is gone).
func (l policyLevel[T]) entry(st *modelState, idx []uint32) *T {
	list := l.list(st, idx[:len(idx)-1])
	if list == nil {
		return nil
	}
	if i := byInst(*list, idx[len(idx)-1]); i >= 0 {
		return &(*list)[i]
	}
	return nil
}

func uintText[N ~uint32 | ~uint64 | ~int | ~int64](n N) string {
	return strconv.FormatUint(uint64(n), 10)
}

func setUint32(dst *uint32, v string) error {
	n, err := parseUint(v, 32)
	*dst = uint32(n)
	return err
}

// setScaled stores an unsigned count of unit into a duration.
func setScaled(dst *time.Duration, unit time.Duration, v string) error {
	n, err := parseUint(v, 64)
	if err != nil {
		return err
	}
	if n > uint64(math.MaxInt64/unit) {
		return fmt.Errorf("%s is too large", v)
	}
	*dst = time.Duration(n) * unit
	return nil
}

var policyFields = []policyField[modelPolicy]{
	{name: "Enable", typ: cwmpclient.TypeBoolean, get: func(p *modelPolicy) string { return strconv.FormatBool(p.Enable) },
		set: func(p *modelPolicy, v string) error { p.Enable = v == "true"; return nil }},
	{name: "Name", get: func(p *modelPolicy) string { return p.Name },
		set: func(p *modelPolicy, v string) error { p.Name = v; return checkOptionalName(v) }},
	{name: "Color", typ: cwmpclient.TypeUnsignedInt, get: func(p *modelPolicy) string { return uintText(p.Color) },
		set: func(p *modelPolicy, v string) error { return setUint32(&p.Color, v) }},
	{name: "Endpoint", get: func(p *modelPolicy) string { return addrText(p.Endpoint) },
		set: func(p *modelPolicy, v string) (err error) { p.Endpoint, err = parseOptionalAddr(v); return err }},
	{name: "VPN", get: func(p *modelPolicy) string { return p.VPN },
		set: func(p *modelPolicy, v string) error { p.VPN = v; return checkOptionalName(v) }},
	// Milliseconds: loopback probes run every few ms.
	{name: "ProbeInterval", typ: cwmpclient.TypeUnsignedInt, get: func(p *modelPolicy) string { return uintText(p.ProbeInterval / time.Millisecond) },
		set: func(p *modelPolicy, v string) error { return setScaled(&p.ProbeInterval, time.Millisecond, v) }},
	// The last SID of every segment list is the far node's End.TSF SID.
	{name: "EndTSF", typ: cwmpclient.TypeBoolean, get: func(p *modelPolicy) string { return strconv.FormatBool(p.EndTSF) },
		set: func(p *modelPolicy, v string) error { p.EndTSF = v == "true"; return nil }},
}

var constituentFields = []policyField[modelConstituent]{
	{name: "Color", typ: cwmpclient.TypeUnsignedInt, get: func(c *modelConstituent) string { return uintText(c.Color) },
		set: func(c *modelConstituent, v string) error { return setUint32(&c.Color, v) }},
	{name: "Name", get: func(c *modelConstituent) string { return c.Name },
		set: func(c *modelConstituent, v string) error { c.Name = v; return checkOptionalName(v) }},
}

var segmentListFields = []policyField[modelSegmentList]{
	{name: "Segments", get: func(l *modelSegmentList) string {
		if len(l.Segments) == 0 {
			return ""
		}
		return formatSegments(l.Segments)
	}, set: func(l *modelSegmentList, v string) error {
		l.Segments = nil
		if v == "" {
			return nil
		}
		s, err := srv6.ParseSegmentList(v)
		l.Segments = srv6.Addrs(s)
		return err
	}},
	{name: "Weight", typ: cwmpclient.TypeUnsignedInt, get: func(l *modelSegmentList) string { return uintText(l.Weight) },
		set: func(l *modelSegmentList, v string) error { return setUint32(&l.Weight, v) }},
}

var selectorFields = []policyField[modelSelector]{
	{name: "Name", get: func(s *modelSelector) string { return s.Name },
		set: func(s *modelSelector, v string) error { s.Name = v; return checkOptionalName(v) }},
	{name: "DefaultColor", typ: cwmpclient.TypeUnsignedInt, get: func(s *modelSelector) string { return uintText(s.Default) },
		set: func(s *modelSelector, v string) error { return setUint32(&s.Default, v) }},
	{name: "WaitToRestore", typ: cwmpclient.TypeUnsignedInt, get: func(s *modelSelector) string { return uintText(s.WaitToRestore / time.Second) },
		set: func(s *modelSelector, v string) error { return setScaled(&s.WaitToRestore, time.Second, v) }},
	{name: "Revertive", typ: cwmpclient.TypeBoolean, get: func(s *modelSelector) string { return strconv.FormatBool(!s.NonRevertive) },
		set: func(s *modelSelector, v string) error { s.NonRevertive = v != "true"; return nil }},
	{name: "DelayThreshold", typ: cwmpclient.TypeUnsignedInt, get: func(s *modelSelector) string { return uintText(s.Thresholds.Delay / time.Microsecond) },
		set: func(s *modelSelector, v string) error { return setScaled(&s.Thresholds.Delay, time.Microsecond, v) }},
	{name: "JitterThreshold", typ: cwmpclient.TypeUnsignedInt, get: func(s *modelSelector) string { return uintText(s.Thresholds.Jitter / time.Microsecond) },
		set: func(s *modelSelector, v string) error { return setScaled(&s.Thresholds.Jitter, time.Microsecond, v) }},
	// A decimal percentage ("0.5"); 0 is not checked.
	{name: "LossThreshold", get: func(s *modelSelector) string { return strconv.FormatFloat(s.Thresholds.LossPercent, 'f', -1, 64) },
		set: func(s *modelSelector, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || f < 0 || f > 100 || strings.ContainsAny(v, "xXpP_") {
				return fmt.Errorf("%q is not a percentage of 0..100", v)
			}
			s.Thresholds.LossPercent = f
			return nil
		}},
	{name: "BandwidthThreshold", typ: cwmpclient.TypeUnsignedLong, get: func(s *modelSelector) string { return uintText(s.Thresholds.MinBandwidth / 1000) },
		set: func(s *modelSelector, v string) error {
			n, err := parseKbits(v)
			s.Thresholds.MinBandwidth = n
			return err
		}},
}

// parseKbits reads a rate in kbit/s.
func parseKbits(v string) (srv6.Bandwidth, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > math.MaxUint64/1000 {
		return 0, fmt.Errorf("%q is not a rate in kbit/s", v)
	}
	return srv6.Bandwidth(n * 1000), nil
}

var priorityFields = []policyField[modelPriority]{
	{name: "Priority", typ: cwmpclient.TypeUnsignedInt, get: func(e *modelPriority) string { return uintText(e.Priority) },
		set: func(e *modelPriority, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			if err == nil && n > srv6.MaxPriority {
				err = fmt.Errorf("priority %d is outside 1..%d", n, srv6.MaxPriority)
			}
			e.Priority = int(n)
			return err
		}},
	{name: "Color", typ: cwmpclient.TypeUnsignedInt, get: func(e *modelPriority) string { return uintText(e.Color) },
		set: func(e *modelPriority, v string) error { return setUint32(&e.Color, v) }},
	// 0 counts as 1.
	{name: "Weight", typ: cwmpclient.TypeUnsignedInt, get: func(e *modelPriority) string { return uintText(e.Weight) },
		set: func(e *modelPriority, v string) error { return setUint32(&e.Weight, v) }},
}

var policyServiceFields = []policyField[modelPolicyService]{
	{name: "Name", get: func(s *modelPolicyService) string { return s.Name },
		set: func(s *modelPolicyService, v string) error { s.Name = v; return checkOptionalName(v) }},
	{name: "Selector", get: func(s *modelPolicyService) string { return s.Selector },
		set: func(s *modelPolicyService, v string) error { s.Selector = v; return checkOptionalName(v) }},
}

// textField is a FlowConfig string field, checked on its own with the
// daemon's parser (its combination with the others when the whole
// configuration is validated).
func textField(name string, f func(*FlowConfig) *string, check func(string) error) policyField[modelFlow] {
	return policyField[modelFlow]{name: name,
		get: func(m *modelFlow) string { return *f(&m.FlowConfig) },
		set: func(m *modelFlow, v string) error { *f(&m.FlowConfig) = v; return check(v) }}
}

func checkFlowPrefix(v string) error { _, err := flowPrefix(v); return err }
func checkPortRange(v string) error  { _, err := parsePortRange(v); return err }

var flowFields = []policyField[modelFlow]{
	{name: "Service", get: func(f *modelFlow) string { return f.Service },
		set: func(f *modelFlow, v string) error { f.Service = v; return checkOptionalName(v) }},
	// -1: any DSCP (as TR-181's QoS classification writes it).
	{name: "DSCP", typ: cwmpclient.TypeInt, get: func(f *modelFlow) string {
		if f.DSCP == nil {
			return "-1"
		}
		return strconv.Itoa(int(*f.DSCP))
	}, set: func(f *modelFlow, v string) error {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < -1 || n > 63:
			return fmt.Errorf("DSCP %q is outside 0..63 (-1: any)", v)
		case n == -1:
			f.DSCP = nil
		default:
			d := uint8(n)
			f.DSCP = &d
		}
		return nil
	}},
	textField("Protocol", func(f *FlowConfig) *string { return &f.Protocol }, func(v string) error {
		_, err := parseFlow(FlowConfig{Protocol: v})
		return err
	}),
	textField("Src", func(f *FlowConfig) *string { return &f.Src }, checkFlowPrefix),
	textField("Dst", func(f *FlowConfig) *string { return &f.Dst }, checkFlowPrefix),
	textField("SrcPorts", func(f *FlowConfig) *string { return &f.SrcPorts }, checkPortRange),
	textField("DstPorts", func(f *FlowConfig) *string { return &f.DstPorts }, checkPortRange),
	textField("FwMark", func(f *FlowConfig) *string { return &f.FwMark }, func(v string) error {
		_, _, err := parseFwMark(v)
		return err
	}),
}

// The tables, outermost first (syncPolicyInstances relies on the order).
var (
	policyLevelP = policyLevel[modelPolicy]{path: "Policy.{i}.",
		list:  func(st *modelState, _ []uint32) *[]modelPolicy { return &st.Policies },
		blank: func(n uint32) modelPolicy { return modelPolicy{Inst: n} }, fields: policyFields}
	constituentLevel = policyLevel[modelConstituent]{path: "Policy.{i}.Constituent.{i}.",
		list: func(st *modelState, idx []uint32) *[]modelConstituent {
			if p := policyLevelP.entry(st, idx); p != nil {
				return &p.Constituents
			}
			return nil
		},
		blank: func(n uint32) modelConstituent { return modelConstituent{Inst: n} }, fields: constituentFields}
	segmentListLevel = policyLevel[modelSegmentList]{path: "Policy.{i}.Constituent.{i}.SegmentList.{i}.",
		list: func(st *modelState, idx []uint32) *[]modelSegmentList {
			if c := constituentLevel.entry(st, idx); c != nil {
				return &c.Lists
			}
			return nil
		},
		blank: func(n uint32) modelSegmentList { return modelSegmentList{Inst: n, Weight: 1} }, fields: segmentListFields}
	selectorLevel = policyLevel[modelSelector]{path: "Policy.{i}.Selector.{i}.",
		list: func(st *modelState, idx []uint32) *[]modelSelector {
			if p := policyLevelP.entry(st, idx); p != nil {
				return &p.Selectors
			}
			return nil
		},
		blank: func(n uint32) modelSelector { return modelSelector{Inst: n} }, fields: selectorFields}
	priorityLevel = policyLevel[modelPriority]{path: "Policy.{i}.Selector.{i}.Priority.{i}.",
		list: func(st *modelState, idx []uint32) *[]modelPriority {
			if s := selectorLevel.entry(st, idx); s != nil {
				return &s.Priorities
			}
			return nil
		},
		blank: func(n uint32) modelPriority { return modelPriority{Inst: n} }, fields: priorityFields}
	policyServiceLevel = policyLevel[modelPolicyService]{path: "Policy.{i}.Service.{i}.",
		list: func(st *modelState, idx []uint32) *[]modelPolicyService {
			if p := policyLevelP.entry(st, idx); p != nil {
				return &p.Services
			}
			return nil
		},
		blank: func(n uint32) modelPolicyService { return modelPolicyService{Inst: n} }, fields: policyServiceFields}
	flowLevel = policyLevel[modelFlow]{path: "Policy.{i}.Flow.{i}.",
		list: func(st *modelState, idx []uint32) *[]modelFlow {
			if p := policyLevelP.entry(st, idx); p != nil {
				return &p.Flows
			}
			return nil
		},
		blank: func(n uint32) modelFlow { return modelFlow{Inst: n} }, fields: flowFields}
)

// policyModel registers Policy.{i} and reads its status.
type policyModel struct{ m *srv6Model }

// policySetter applies a change to a candidate model.
type policySetter func(st *modelState, idx []uint32, v string) error

// policySetters are the writable parameters' setters, by template.
var policySetters = func() map[string]policySetter {
	out := map[string]policySetter{}
	addSetters(out, policyLevelP)
	addSetters(out, constituentLevel)
	addSetters(out, segmentListLevel)
	addSetters(out, selectorLevel)
	addSetters(out, priorityLevel)
	addSetters(out, policyServiceLevel)
	addSetters(out, flowLevel)
	return out
}()

func addSetters[T instanced](out map[string]policySetter, l policyLevel[T]) {
	for _, f := range l.fields {
		out[SRv6Object+l.path+f.name] = func(st *modelState, idx []uint32, v string) error {
			e := l.entry(st, idx)
			if e == nil {
				return fmt.Errorf("instance %v is gone", idx)
			}
			return f.set(e, v)
		}
	}
}

// registerLevel registers l's table, its NumberOfEntries counter (next
// to the table, as TR-181 names them) and its fields.
func registerLevel[T instanced](pm *policyModel, t *cwmpclient.Tree, l policyLevel[T], maxInst int) error {
	m := pm.m
	counter := strings.TrimSuffix(l.path, ".{i}.") + "NumberOfEntries"
	errs := []error{
		t.Register(SRv6Object+counter, cwmpclient.Param{Type: cwmpclient.TypeUnsignedInt,
			Get: func(idx []uint32) (string, error) {
				st, _ := m.snapshot()
				if list := l.list(&st, idx); list != nil {
					return strconv.Itoa(len(*list)), nil
				}
				return "0", nil
			}}),
		t.RegisterObject(SRv6Object+l.path, cwmpclient.Object{Writable: true, MaxInstances: maxInst,
			OnAdd: func(idx []uint32) error {
				return pm.edit(func(st *modelState) error {
					list := l.list(st, idx[:len(idx)-1])
					if list == nil {
						return fmt.Errorf("the parent of instance %d is gone", idx[len(idx)-1])
					}
					if n := policyObjects(st); n >= maxPolicyObjects {
						return cwmpclient.NewFault(cwmpclient.FaultResourcesExceeded, "the policies already have %d objects", n)
					}
					*list = append(*list, l.blank(idx[len(idx)-1]))
					return nil
				})
			},
			OnDelete: func(idx []uint32) error {
				return pm.edit(func(st *modelState) error {
					if list := l.list(st, idx[:len(idx)-1]); list != nil {
						*list = slices.DeleteFunc(*list, func(e T) bool { return e.instNum() == idx[len(idx)-1] })
					}
					return nil
				})
			}}),
	}
	for _, f := range l.fields {
		errs = append(errs, t.Register(SRv6Object+l.path+f.name, cwmpclient.Param{Type: f.typ, Writable: true, MaxLen: 4096,
			Get: func(idx []uint32) (string, error) {
				st, _ := m.snapshot()
				if e := l.entry(&st, idx); e != nil {
					return f.get(e), nil
				}
				var zero T
				return f.get(&zero), nil
			},
			Validate: func(_ []uint32, v string) error {
				var scratch T
				return f.set(&scratch, v)
			}}))
	}
	return errors.Join(errs...)
}

// policyObjects counts the instances of every table of the policies.
func policyObjects(st *modelState) int {
	n := len(st.Policies)
	for _, p := range st.Policies {
		n += len(p.Constituents) + len(p.Selectors) + len(p.Services) + len(p.Flows)
		for _, c := range p.Constituents {
			n += len(c.Lists)
		}
		for _, s := range p.Selectors {
			n += len(s.Priorities)
		}
	}
	return n
}

// registerPolicies adds Policy.{i} to t.
func (m *srv6Model) registerPolicies(t *cwmpclient.Tree) error {
	pm := &policyModel{m: m}
	errs := []error{
		registerLevel(pm, t, policyLevelP, maxInstances),
		registerLevel(pm, t, constituentLevel, maxPolicyChildren),
		registerLevel(pm, t, segmentListLevel, maxPolicyChildren),
		registerLevel(pm, t, selectorLevel, maxPolicyChildren),
		registerLevel(pm, t, priorityLevel, maxPolicyChildren),
		registerLevel(pm, t, policyServiceLevel, maxPolicyChildren),
		registerLevel(pm, t, flowLevel, maxPolicyChildren),
	}
	reg := func(name string, p cwmpclient.Param) { errs = append(errs, t.Register(policyTable+name, p)) }
	reg("{i}.Status", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		return pm.policyState(idx), nil
	}})
	// What of the policy the dataplane does not carry ("; " between notes).
	reg("{i}.Notes", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		_, ps, _ := pm.running(idx)
		return strings.Join(ps.Notes, "; "), nil
	}})
	// Measurements change with every probe: no active notification.
	list := func(typ cwmpclient.Type, f func(PolicyListStatus, bool) string) cwmpclient.Param {
		return cwmpclient.Param{Type: typ, DenyActive: true, Get: func(idx []uint32) (string, error) {
			ls, ok := pm.listStatus(idx)
			return f(ls, ok), nil
		}}
	}
	const segList = "{i}.Constituent.{i}.SegmentList.{i}."
	reg(segList+"Status", list(cwmpclient.TypeString, func(ls PolicyListStatus, ok bool) string {
		switch {
		case !ok:
			return "Unknown"
		case ls.State == "up":
			return "Up"
		case ls.State == "down":
			return "Down"
		}
		return "Unknown"
	}))
	// Microseconds; -1 until measured, and the one-way delays until an
	// End.TSF far node stamps the probes.
	micros := func(oneWay bool, d func(PolicyListStatus) time.Duration) cwmpclient.Param {
		return list(cwmpclient.TypeInt, func(ls PolicyListStatus, ok bool) string {
			v := d(ls)
			if !ok || !ls.HasMetrics || (oneWay && v == 0) {
				return "-1"
			}
			return strconv.FormatInt(min(int64(v/time.Microsecond), math.MaxInt32), 10)
		})
	}
	reg(segList+"Delay", micros(false, func(ls PolicyListStatus) time.Duration { return ls.Delay }))
	reg(segList+"Jitter", micros(false, func(ls PolicyListStatus) time.Duration { return ls.Jitter }))
	reg(segList+"ForwardDelay", micros(true, func(ls PolicyListStatus) time.Duration { return ls.ForwardDelay }))
	reg(segList+"BackwardDelay", micros(true, func(ls PolicyListStatus) time.Duration { return ls.BackwardDelay }))
	// Percent of the last metrics window; empty until measured.
	reg(segList+"Loss", list(cwmpclient.TypeString, func(ls PolicyListStatus, ok bool) string {
		if !ok || !ls.HasMetrics {
			return ""
		}
		return strconv.FormatFloat(ls.LossPercent, 'f', -1, 64)
	}))
	reg(segList+"ProbeError", list(cwmpclient.TypeString, func(ls PolicyListStatus, _ bool) string { return ls.ProbeError }))
	// kbit/s, written by the controller, fed to the selectors; -1 until known.
	reg("{i}.Constituent.{i}.RemainingBandwidth", cwmpclient.Param{Type: cwmpclient.TypeLong, Writable: true,
		Get: func(idx []uint32) (string, error) { return pm.remainingBandwidth(idx), nil },
		Validate: func(_ []uint32, v string) error {
			if strings.HasPrefix(v, "-") {
				return fmt.Errorf("remaining bandwidth %s kbit/s is negative", v)
			}
			_, err := parseKbits(v)
			return err
		}})
	choice := func(typ cwmpclient.Type, f func(PolicyServiceStatus, bool) string) cwmpclient.Param {
		return cwmpclient.Param{Type: typ, Get: func(idx []uint32) (string, error) {
			c, ok := pm.serviceStatus(idx)
			return f(c, ok), nil
		}}
	}
	reg("{i}.Service.{i}.ActivePriority", choice(cwmpclient.TypeUnsignedInt, func(c PolicyServiceStatus, _ bool) string { return strconv.Itoa(c.Priority) }))
	reg("{i}.Service.{i}.ActiveColors", choice(cwmpclient.TypeString, func(c PolicyServiceStatus, _ bool) string {
		s := make([]string, len(c.Colors))
		for i, col := range c.Colors {
			s[i] = uintText(col)
		}
		return strings.Join(s, ",")
	}))
	reg("{i}.Service.{i}.Fallback", choice(cwmpclient.TypeBoolean, func(c PolicyServiceStatus, _ bool) string { return strconv.FormatBool(c.Fallback) }))
	reg("{i}.Service.{i}.FallbackReason", choice(cwmpclient.TypeString, func(c PolicyServiceStatus, _ bool) string { return c.Reason }))
	reg("{i}.Service.{i}.LastSwitch", choice(cwmpclient.TypeDateTime, func(c PolicyServiceStatus, _ bool) string {
		if c.Since.IsZero() {
			return "0001-01-01T00:00:00Z" // TR-069's unknown time
		}
		return rfc3339(c.Since)
	}))
	// The last switch as "kind: reason" (degrade, restore, fallback...).
	reg("{i}.Service.{i}.LastSwitchReason", cwmpclient.Param{Type: cwmpclient.TypeString, Get: func(idx []uint32) (string, error) {
		p, ps, ok := pm.running(idx)
		if i := byInst(p.Services, idx[1]); ok && i >= 0 {
			for _, e := range slices.Backward(ps.Events) {
				if e.Service == p.Services[i].Name {
					return e.Kind + ": " + e.Reason, nil
				}
			}
		}
		return "", nil
	}})
	// The kernel holds the active choice.
	reg("{i}.Service.{i}.Installed", choice(cwmpclient.TypeBoolean, func(c PolicyServiceStatus, _ bool) string { return strconv.FormatBool(c.Installed) }))
	// Writing true restores the service now (non-revertive selectors).
	reg("{i}.Service.{i}.Restore", cwmpclient.Param{Type: cwmpclient.TypeBoolean, Writable: true,
		Get: func([]uint32) (string, error) { return "false", nil }})
	t.AddCommitter(policyTable, &policyCommitter{pm: pm})
	return errors.Join(errs...)
}

// ---- status ----

// running is the enabled policy at idx[0] and the runtime's status of it.
func (pm *policyModel) running(idx []uint32) (modelPolicy, PolicyStatus, bool) {
	st, _ := pm.m.snapshot()
	p := policyLevelP.entry(&st, idx[:1])
	if p == nil || !p.Enable || st.Disabled || pm.m.policies == nil {
		return modelPolicy{}, PolicyStatus{}, false
	}
	for _, ps := range pm.m.policies.PolicyStatus() {
		if ps.Name == p.Name {
			return *p, ps, true
		}
	}
	return *p, PolicyStatus{}, false
}

// policyState is Disabled, Enabled (configured, not running yet) or
// Running.
func (pm *policyModel) policyState(idx []uint32) string {
	st, _ := pm.m.snapshot()
	if p := policyLevelP.entry(&st, idx); p == nil || !p.Enable || st.Disabled {
		return "Disabled"
	}
	if _, _, ok := pm.running(idx); ok {
		return "Running"
	}
	return "Enabled"
}

// constituentStatus is the runtime's status of the constituent at idx
// (policy, constituent, ...).
func (pm *policyModel) constituentStatus(idx []uint32) (modelConstituent, PolicyConstituentStatus, bool) {
	p, ps, ok := pm.running(idx)
	if !ok {
		return modelConstituent{}, PolicyConstituentStatus{}, false
	}
	i := byInst(p.Constituents, idx[1])
	if i < 0 || p.Constituents[i].Color == 0 {
		return modelConstituent{}, PolicyConstituentStatus{}, false
	}
	c := p.Constituents[i]
	for _, cs := range ps.Constituents {
		if cs.Color == c.Color {
			return c, cs, true
		}
	}
	return c, PolicyConstituentStatus{}, false
}

// listStatus is the runtime's status of the segment list at idx (policy,
// constituent, list): lists are counted in configuration order, where
// blank ones take no place.
func (pm *policyModel) listStatus(idx []uint32) (PolicyListStatus, bool) {
	c, cs, ok := pm.constituentStatus(idx)
	if !ok {
		return PolicyListStatus{}, false
	}
	n := 0
	for _, l := range c.Lists {
		if l.blank() {
			continue
		}
		if l.Inst == idx[2] {
			if n < len(cs.Lists) {
				return cs.Lists[n], true
			}
			break
		}
		n++
	}
	return PolicyListStatus{}, false
}

func (pm *policyModel) remainingBandwidth(idx []uint32) string {
	_, cs, ok := pm.constituentStatus(idx)
	if !ok {
		return "-1"
	}
	for _, ls := range cs.Lists {
		if ls.HasBandwidth {
			return uintText(ls.Bandwidth / 1000)
		}
	}
	return "-1"
}

func (pm *policyModel) serviceStatus(idx []uint32) (PolicyServiceStatus, bool) {
	p, ps, ok := pm.running(idx)
	if !ok {
		return PolicyServiceStatus{}, false
	}
	i := byInst(p.Services, idx[1])
	if i < 0 {
		return PolicyServiceStatus{}, false
	}
	for _, ss := range ps.Services {
		if ss.Name == p.Services[i].Name {
			return ss, true
		}
	}
	return PolicyServiceStatus{}, false
}

// ---- commits ----

// edit applies an AddObject / DeleteObject: the policies are checked,
// then the whole configuration as any edit of the SRv6 model.
func (pm *policyModel) edit(f func(*modelState) error) error {
	return pm.m.edit(func(st *modelState) error {
		if err := f(st); err != nil {
			return err
		}
		if err := checkPolicies(st); err != nil {
			return cwmpclient.NewFault(cwmpclient.FaultRequestDenied, "%v", err)
		}
		return nil
	})
}

// policyProblem is one validation problem of the policies: the message,
// the parameters it is about (most specific first) and the object that
// holds them.
type policyProblem struct {
	msg    string
	params []string
	object string
}

func (p policyProblem) Error() string { return p.msg }

// checkPolicies validates st's enabled policies as the daemon does; each
// problem is a policyProblem.
func checkPolicies(st *modelState) error {
	cfgs, layouts := st.policyConfigs()
	var errs []error
	for i := range cfgs {
		if err := cfgs[i].Policy.Validate(); err != nil {
			errs = append(errs, layouts[i].problems(&cfgs[i], err)...)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	ps := make([]srv6.Policy, len(cfgs))
	for i, c := range cfgs {
		ps[i] = c.Policy
	}
	if err := srv6.ValidatePolicies(ps); err != nil {
		// Only problems between policies are left: two with one name, or
		// one color and endpoint.
		for _, line := range strings.Split(err.Error(), "\n") {
			pr := policyProblem{msg: line}
			for i, c := range cfgs {
				obj := policyTable + uintText(layouts[i].inst) + "."
				switch {
				case strings.Contains(line, "name "+strconv.Quote(c.Name)+" used twice"):
					pr.params = append(pr.params, obj+"Name")
				case strings.Contains(line, " by policy "+strconv.Quote(c.Name)) || strings.Contains(line, "policy "+strconv.Quote(c.Name)+":"):
					pr.params = append(pr.params, obj+"Color", obj+"Endpoint")
				}
			}
			errs = append(errs, pr)
		}
	}
	return errors.Join(errs...)
}

// scopeRE reads what a srv6.Policy.Validate problem is about:
// "constituent 2 (color 20) segment list 1 segment 3: ...",
// `selector 1 ("irp1"): ...`, `service "crm": ...`, "service 2: ...".
var scopeRE = regexp.MustCompile(`^(constituent|selector|service) (\d+|"(?:[^"\\]|\\.)*")(?: \((?:color \d+|"(?:[^"\\]|\\.)*")\))?(?: segment list (\d+))?(?: segment \d+)?: (.*)$`)

var colorRE = regexp.MustCompile(`color (\d+)`)

// problems splits the error of p.Validate into its problems, each with
// the parameters it names.
func (l policyLayout) problems(p *PolicyConfig, err error) []error {
	// Each problem's message names the policy its own way.
	text, _ := strings.CutPrefix(err.Error(), srv6.ErrInvalidPolicy.Error()+" "+strconv.Quote(p.Name)+": ")
	obj := policyTable + uintText(l.inst) + "."
	var out []error
	for _, part := range strings.Split(text, "; ") {
		pr := policyProblem{msg: fmt.Sprintf("policy %q: %s", p.Name, part), object: obj}
		sm := scopeRE.FindStringSubmatch(part)
		if sm == nil {
			switch {
			case part == "no name":
				pr.params = []string{obj + "Name"}
			case strings.HasPrefix(part, "color "):
				pr.params = []string{obj + "Color"}
			case strings.HasPrefix(part, "endpoint"):
				pr.params = []string{obj + "Endpoint"}
			}
			out = append(out, pr)
			continue
		}
		rest := sm[4]
		pos := -1
		if n, err := strconv.Atoi(sm[2]); err == nil {
			pos = n - 1
		}
		switch sm[1] {
		case "constituent":
			if pos < 0 || pos >= len(l.cons) {
				break
			}
			cobj := obj + "Constituent." + uintText(l.cons[pos]) + "."
			pr.object = cobj
			if ln, err := strconv.Atoi(sm[3]); err == nil && ln >= 1 && ln <= len(l.lists[pos]) {
				lobj := cobj + "SegmentList." + uintText(l.lists[pos][ln-1]) + "."
				pr.object = lobj
				if strings.HasPrefix(rest, "weight") {
					pr.params = []string{lobj + "Weight"}
				} else {
					pr.params = []string{lobj + "Segments"}
				}
			} else if strings.Contains(rest, "color") {
				pr.params = []string{cobj + "Color"}
			}
		case "selector":
			if pos < 0 || pos >= len(l.sels) {
				break
			}
			sobj := obj + "Selector." + uintText(l.sels[pos]) + "."
			pr.object = sobj
			pr.params = l.selectorParams(p, pos, sobj, rest)
		case "service":
			i := pos
			if i < 0 {
				name, _ := strconv.Unquote(sm[2])
				i = slices.IndexFunc(p.Services, func(s srv6.PolicyService) bool { return s.Name == name })
			}
			if i < 0 || i >= len(l.svcs) {
				break
			}
			sobj := obj + "Service." + uintText(l.svcs[i]) + "."
			pr.object = sobj
			if strings.HasPrefix(rest, "selector") {
				pr.params = []string{sobj + "Selector"}
			} else {
				pr.params = []string{sobj + "Name"}
			}
		}
		out = append(out, pr)
	}
	return out
}

// selectorParams names the parameters a selector problem is about.
func (l policyLayout) selectorParams(p *PolicyConfig, pos int, sobj, rest string) []string {
	field := map[string]string{"default": "DefaultColor", "no default": "DefaultColor", "wait_to_restore": "WaitToRestore",
		"delay threshold": "DelayThreshold", "jitter threshold": "JitterThreshold", "loss threshold": "LossThreshold",
		"no name": "Name", "name used twice": "Name"}
	for prefix, f := range field {
		if strings.HasPrefix(rest, prefix) {
			return []string{sobj + f}
		}
	}
	// A priority entry's problem names its color: "priority 3 of color 10
	// is outside", "priority 1 names color 30", "color 10 listed twice".
	cm := colorRE.FindStringSubmatch(rest)
	if cm == nil {
		return nil
	}
	color, _ := strconv.ParseUint(cm[1], 10, 32)
	param := "Color"
	if strings.Contains(rest, "is outside") {
		param = "Priority"
	}
	var out []string
	for i, e := range p.Selectors[pos].Priorities {
		if e.Color == uint32(color) && i < len(l.prios[pos]) {
			out = append(out, sobj+"Priority."+uintText(l.prios[pos][i])+"."+param)
		}
	}
	return out
}

// policyCommitter applies a SetParameterValues under Policy. as one new
// configuration, checked as a whole; then it hands RemainingBandwidth and
// Restore to the runtime. Any problem refuses all of it.
type policyCommitter struct {
	pm   *policyModel
	prev *modelState
}

// policyAction is a change for the runtime, not the configuration.
type policyAction struct {
	ch      cwmpclient.Change
	restore bool
	bw      srv6.Bandwidth
}

func (c *policyCommitter) Commit(_ cwmpclient.Values, changes []cwmpclient.Change) error {
	m := c.pm.m
	st, _ := m.snapshot()
	cand := st.clone()
	var faults []cwmpclient.SPVFault
	fault := func(name string, format string, a ...any) {
		faults = append(faults, cwmpclient.SPVFault{Name: name, Code: cwmpclient.FaultInvalidValue, String: fmt.Sprintf(format, a...)})
	}
	var actions []policyAction
	for _, ch := range changes {
		switch {
		case strings.HasSuffix(ch.Template, ".RemainingBandwidth"):
			bw, err := parseKbits(ch.New)
			if err != nil {
				fault(ch.Name, "%v", err)
			}
			actions = append(actions, policyAction{ch: ch, bw: bw})
		case strings.HasSuffix(ch.Template, ".Restore"):
			if ch.New == "true" {
				actions = append(actions, policyAction{ch: ch, restore: true})
			}
		default:
			set := policySetters[ch.Template]
			if set == nil {
				fault(ch.Name, "%s is not writable", ch.Name)
			} else if err := set(&cand, ch.Idx, ch.New); err != nil {
				fault(ch.Name, "%v", err)
			}
		}
	}
	if len(faults) > 0 {
		return spvFault(faults)
	}
	if err := checkPolicies(&cand); err != nil {
		return spvFault(attributePolicy(err, changes, &cand))
	}
	for _, a := range actions {
		if err := actionTarget(&cand, a); err != nil {
			fault(a.ch.Name, "%v", err)
		}
	}
	if len(faults) > 0 {
		return spvFault(faults)
	}
	// Compared in the model's JSON form (clone), where nil and empty agree.
	changed := !reflect.DeepEqual(cand, st.clone())
	if changed {
		cand.fillDefaults(m.caps)
		if _, _, err := m.check(cand); err != nil {
			return spvFault(attributePolicy(err, changes, &cand))
		}
		if err := m.replace(cand); err != nil {
			return cwmpclient.NewFault(cwmpclient.FaultInternal, "apply: %v", err)
		}
		m.log.Info("controller configured SRv6 policies", zap.Int("changes", len(changes)), zap.Int("policies", len(cand.Policies)))
	}
	// Runtime actions after the configuration they may need is applied.
	for _, a := range actions {
		if err := c.pm.act(&cand, a); err != nil {
			if changed {
				m.restoreModel(st)
			}
			return spvFault([]cwmpclient.SPVFault{{Name: a.ch.Name, Code: cwmpclient.FaultInvalidValue, String: err.Error()}})
		}
	}
	c.prev = nil
	if changed {
		c.prev = &st
	}
	return nil
}

// Rollback restores the model before the last Commit when a later
// committer of the same SetParameterValues failed. Bandwidth already fed
// to the runtime stays: it is a measurement, not configuration.
func (c *policyCommitter) Rollback(cwmpclient.Values, []cwmpclient.Change) {
	if c.prev != nil {
		c.pm.m.restoreModel(*c.prev)
		c.prev = nil
	}
}

// restoreModel makes st the model again, through Reload.
func (m *srv6Model) restoreModel(st modelState) {
	if err := m.replace(st); err != nil {
		m.log.Error("cannot roll the SRv6 policies back", zap.Error(err))
	}
}

// actionTarget checks that a runtime action's policy (and constituent)
// is configured in st.
func actionTarget(st *modelState, a policyAction) error {
	p := policyLevelP.entry(st, a.ch.Idx[:1])
	switch {
	case p == nil:
		return fmt.Errorf("policy instance %d is gone", a.ch.Idx[0])
	case !p.Enable || st.Disabled:
		return fmt.Errorf("policy %q is not enabled", p.Name)
	}
	if a.restore {
		if e := policyServiceLevel.entry(st, a.ch.Idx); e == nil || e.blank() {
			return errors.New("the service is not configured")
		}
		return nil
	}
	if e := constituentLevel.entry(st, a.ch.Idx); e == nil || e.Color == 0 {
		return errors.New("the constituent has no color yet")
	}
	return nil
}

// act hands a checked action to the runtime.
func (pm *policyModel) act(st *modelState, a policyAction) error {
	rt := pm.m.policies
	if rt == nil {
		return errors.New("this agent runs no policy selector")
	}
	p := policyLevelP.entry(st, a.ch.Idx[:1])
	if a.restore {
		return rt.RestorePolicyService(p.Name, policyServiceLevel.entry(st, a.ch.Idx).Name)
	}
	return rt.ObservePolicyBandwidth(p.Name, constituentLevel.entry(st, a.ch.Idx).Color, a.bw)
}

// attributePolicy turns the problems of a refused configuration into
// per-parameter faults: each problem goes to the changed parameters it
// names, else to the changed ones in the object it is about, else in its
// policy, else to every changed parameter. A problem the agent's own
// validation found is about the policy whose name it quotes.
func attributePolicy(err error, changes []cwmpclient.Change, st *modelState) []cwmpclient.SPVFault {
	_, layouts := st.policyConfigs()
	var problems []policyProblem
	for _, e := range flattenErrors(err) {
		if pr, ok := e.(policyProblem); ok {
			problems = append(problems, pr)
			continue
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			problems = append(problems, configProblem(line, layouts))
		}
	}
	msgs := map[int][]string{}
	for _, pr := range problems {
		var hit []int
		pick := func(ok func(cwmpclient.Change) bool) {
			for i, ch := range changes {
				if ok(ch) {
					hit = append(hit, i)
				}
			}
		}
		pick(func(ch cwmpclient.Change) bool { return slices.Contains(pr.params, ch.Name) })
		if len(hit) == 0 && pr.object != "" {
			pick(func(ch cwmpclient.Change) bool { return strings.HasPrefix(ch.Name, pr.object) })
		}
		if len(hit) == 0 && pr.object != "" {
			inst, _, _ := strings.Cut(strings.TrimPrefix(pr.object, policyTable), ".")
			pick(func(ch cwmpclient.Change) bool { return strings.HasPrefix(ch.Name, policyTable+inst+".") })
		}
		if len(hit) == 0 {
			pick(func(cwmpclient.Change) bool { return true })
		}
		for _, i := range hit {
			msgs[i] = append(msgs[i], pr.msg)
		}
	}
	var out []cwmpclient.SPVFault
	for i, ch := range changes {
		if l := msgs[i]; len(l) > 0 {
			out = append(out, cwmpclient.SPVFault{Name: ch.Name, Code: cwmpclient.FaultInvalidValue, String: strings.Join(l, "; ")})
		}
	}
	return out
}

// configKeyRE reads the agent's validation of a policy:
// "policies[0] (sr-policy).vpn: ...", "policies[1].flows[2].dst_ports: ...",
// "policies[0] (p).flows[0].src/dst/protocol: ...".
var configKeyRE = regexp.MustCompile(`policies\[(\d+)\](?: \([^)]*\))?\.(?:(vpn|probe_interval)|flows\[(\d+)\]\.([a-z_/]+))`)

var configFields = map[string]string{"vpn": "VPN", "probe_interval": "ProbeInterval", "service": "Service", "dscp": "DSCP",
	"protocol": "Protocol", "src": "Src", "dst": "Dst", "src_ports": "SrcPorts", "dst_ports": "DstPorts", "fwmark": "FwMark"}

// configProblem is a line of the agent's validation with the policy
// parameters it names (layouts: the enabled policies in config order).
func configProblem(line string, layouts []policyLayout) policyProblem {
	pr := policyProblem{msg: line}
	sm := configKeyRE.FindStringSubmatch(line)
	if sm == nil {
		return pr
	}
	i, _ := strconv.Atoi(sm[1])
	if i >= len(layouts) {
		return pr
	}
	l := layouts[i]
	pr.object = policyTable + uintText(l.inst) + "."
	if sm[2] != "" {
		pr.params = []string{pr.object + configFields[sm[2]]}
		return pr
	}
	j, _ := strconv.Atoi(sm[3])
	if j >= len(l.flows) {
		return pr
	}
	pr.object += "Flow." + uintText(l.flows[j]) + "."
	for _, key := range strings.Split(sm[4], "/") {
		if f, ok := configFields[key]; ok {
			pr.params = append(pr.params, pr.object+f)
		}
	}
	return pr
}

// flattenErrors lists the errors errors.Join put together, recursively.
func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// ---- instance numbers ----

// syncPolicyInstances gives every policy entry a tree instance at every
// level, as syncInstances does for services and paths: kept numbers stay,
// unnumbered entries (the file's) take unclaimed instances or new ones,
// and tree instances without an entry become blank entries.
func syncPolicyInstances(t *cwmpclient.Tree, st *modelState) error {
	errs := []error{syncLevel(t, policyTable, &st.Policies, policyLevelP.blank)}
	for i := range st.Policies {
		p := &st.Policies[i]
		base := policyTable + uintText(p.Inst) + "."
		errs = append(errs,
			syncLevel(t, base+"Constituent.", &p.Constituents, constituentLevel.blank),
			syncLevel(t, base+"Selector.", &p.Selectors, selectorLevel.blank),
			syncLevel(t, base+"Service.", &p.Services, policyServiceLevel.blank),
			syncLevel(t, base+"Flow.", &p.Flows, flowLevel.blank))
		for j := range p.Constituents {
			c := &p.Constituents[j]
			errs = append(errs, syncLevel(t, base+"Constituent."+uintText(c.Inst)+".SegmentList.", &c.Lists, segmentListLevel.blank))
		}
		for j := range p.Selectors {
			s := &p.Selectors[j]
			errs = append(errs, syncLevel(t, base+"Selector."+uintText(s.Inst)+".Priority.", &s.Priorities, priorityLevel.blank))
		}
	}
	return errors.Join(errs...)
}

// syncLevel numbers one table's entries.
func syncLevel[T any, P interface {
	*T
	ref() *uint32
}](t *cwmpclient.Tree, table string, list *[]T, blank func(uint32) T) error {
	insts := make([]*uint32, len(*list))
	for i := range *list {
		insts[i] = P(&(*list)[i]).ref()
	}
	free, err := numberInstances(t, table, insts)
	for _, n := range free {
		*list = append(*list, blank(n))
	}
	return err
}
