package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/board"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

// OverlayFile holds the SRv6 configuration the controller set over CWMP.
// Once it exists it replaces the config file's srv6, services,
// paths.list and policies sections (at start, and at every reload of the
// file); the file's other sections still apply. A factory reset (empty state dir)
// returns to the file's sections.
const OverlayFile = "srv6-controller.json"

// Service types of Q.Suppl.79.
const (
	ServiceL3VPN = "L3VPN"
	ServiceVPWS  = "VPWS"
)

// firstAutoTable is where tables picked for a VPNInstance without one start.
const firstAutoTable = 1000

// modelState is the SRv6 part of the configuration as the controller sees
// it: instances keep their CWMP instance numbers, and instances not
// complete yet (after AddObject, before ServiceType is set) are kept here
// but not configured.
type modelState struct {
	Disabled bool           `json:"disabled,omitempty"`
	SRv6     SRv6Config     `json:"srv6"`
	Services []modelService `json:"services"`
	Paths    []modelPath    `json:"paths"`
	// Policies are Policy.{i} (cwmp_policy.go).
	Policies []modelPolicy `json:"policies,omitempty"`
}

type modelService struct {
	Inst uint32 `json:"inst"`
	// Type is L3VPN, or the behaviour of a service the file configured
	// that is no VPN (End).
	Type   string        `json:"type,omitempty"`
	Config ServiceConfig `json:"config"`
	// AutoBehavior: the CPE picks the behaviour (from the LAN families)
	// until the controller sets one.
	AutoBehavior bool `json:"auto_behavior,omitempty"`
	// The tunnel as the controller describes it: recorded and reported.
	EndSID      string `json:"end_sid,omitempty"`
	TunnelID    string `json:"tunnel_id,omitempty"`
	TunnelEncap string `json:"tunnel_encap,omitempty"`
}

type modelPath struct {
	Inst   uint32     `json:"inst"`
	Config PathConfig `json:"config"`
	// set: SegmentList and TargetBSID were given (a path is complete).
	HaveSegments bool `json:"have_segments,omitempty"`
	HaveBSID     bool `json:"have_bsid,omitempty"`
}

func (s modelService) complete() bool { return s.Config.Name != "" && s.Type != "" }
func (p modelPath) complete() bool    { return p.HaveSegments && p.HaveBSID && p.Config.ID != "" }

func (st modelState) clone() modelState {
	b, _ := json.Marshal(st)
	var c modelState
	_ = json.Unmarshal(b, &c)
	return c
}

// serviceType is the ServiceType of a behaviour the file configured.
func serviceType(behavior string) string {
	b, err := srv6.ParseBehavior(behavior)
	if err != nil {
		return behavior
	}
	if v4, v6 := vpnFamilies(b); v4 || v6 {
		return ServiceL3VPN
	}
	return b.String()
}

// stateFromConfig mirrors the file's sections, keeping the instance
// numbers of prev by position. A file entry beyond prev's gets its
// instance when the CWMP client next registers the model.
func stateFromConfig(c Config, prev modelState) modelState {
	st := modelState{SRv6: c.SRv6}
	for i, s := range c.Services {
		ms := modelService{Type: serviceType(s.Behavior), Config: s, TunnelEncap: tunnelSRH}
		if i < len(prev.Services) {
			ms.Inst = prev.Services[i].Inst
		}
		st.Services = append(st.Services, ms)
	}
	for i, p := range c.Paths.List {
		mp := modelPath{Config: p, HaveSegments: true, HaveBSID: true}
		if i < len(prev.Paths) {
			mp.Inst = prev.Paths[i].Inst
		}
		st.Paths = append(st.Paths, mp)
	}
	st.Policies = policiesFromConfig(c.Policies, prev.Policies)
	// Instances the file no longer fills stay, empty, so that the numbers
	// the ACS knows keep meaning the same entries.
	for _, s := range prev.Services[min(len(c.Services), len(prev.Services)):] {
		if s.Inst != 0 {
			st.Services = append(st.Services, modelService{Inst: s.Inst, TunnelEncap: tunnelSRH})
		}
	}
	for _, p := range prev.Paths[min(len(c.Paths.List), len(prev.Paths)):] {
		if p.Inst != 0 {
			st.Paths = append(st.Paths, modelPath{Inst: p.Inst})
		}
	}
	return st
}

// apply is base with its SRv6 sections replaced by st's complete instances.
func (st modelState) apply(base Config) Config {
	c := base
	c.SRv6 = st.SRv6
	c.Services, c.Paths.List = nil, nil
	c.Policies, _ = st.policyConfigs()
	if st.Disabled {
		return c
	}
	for _, s := range st.Services {
		if s.complete() {
			c.Services = append(c.Services, s.Config)
		}
	}
	for _, p := range st.Paths {
		if p.complete() {
			c.Paths.List = append(c.Paths.List, p.Config)
		}
	}
	return c
}

// fillDefaults completes the services the controller left to the CPE:
// the behaviour from the type and the LAN families, a table for a new
// VPNInstance, a free function value.
func (st *modelState) fillDefaults(caps dataplane.Capabilities) {
	tables := map[string]int{}
	used := map[int]bool{}
	funcs := map[Function]bool{}
	for _, s := range st.Services {
		if s.Config.VRF != "" && s.Config.Table != 0 {
			tables[s.Config.VRF] = s.Config.Table
		}
		used[s.Config.Table] = true
		funcs[s.Config.Function] = true
	}
	for i := range st.Services {
		s := &st.Services[i]
		if !s.complete() {
			continue
		}
		if s.Type == ServiceL3VPN && (s.Config.Behavior == "" || s.AutoBehavior) {
			s.Config.Behavior, s.AutoBehavior = defaultVPNBehavior(s.Config, caps).String(), true
		}
		if s.Config.VRF != "" && s.Config.Table == 0 {
			t, ok := tables[s.Config.VRF]
			for t = max(t, firstAutoTable); !ok && used[t]; t++ {
			}
			s.Config.Table, tables[s.Config.VRF], used[t] = t, t, true
		}
		if s.Config.Function == 0 {
			f := Function(1)
			for funcs[f] {
				f++
			}
			s.Config.Function, funcs[f] = f, true
		}
	}
}

// defaultVPNBehavior decapsulates the families the LAN prefixes have:
// End.DT4, End.DT6, or End.DT46 where the kernel has it (else End.DT6; the
// controller then adds an IPv4 service).
func defaultVPNBehavior(s ServiceConfig, caps dataplane.Capabilities) srv6.Behavior {
	v4, v6 := false, false
	for _, p := range s.LANPrefixes {
		if p.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	switch {
	case v4 && !v6:
		return srv6.EndDT4
	case v4 && v6 && useVRF(caps) && caps.EndDT46:
		return srv6.EndDT46
	}
	return srv6.EndDT6
}

// srv6Model is the agent's SRv6 configuration as CWMP presents it: the
// file's sections until the controller configures, then the overlay.
type srv6Model struct {
	a     *Agent
	state *board.StateDir
	caps  dataplane.Capabilities
	log   *zap.Logger

	mu    sync.Mutex
	base  Config     // the file's config (defaults filled) last started or reloaded with
	st    modelState // the model (tentatively the candidate while a commit runs)
	owned bool       // the controller configured: st is the overlay
	// syncing: the instance sync adds tree instances itself.
	syncing bool
	// connStatus is the registration state (§8.1).
	connStatus string
	// policies is the policy runtime Policy.{i} reads and feeds (nil: none).
	policies policyRuntime
}

type overlayDoc struct {
	Version int        `json:"version"`
	State   modelState `json:"state"`
}

func newSRv6Model(a *Agent, state *board.StateDir, caps dataplane.Capabilities, log *zap.Logger) *srv6Model {
	return &srv6Model{a: a, state: state, caps: caps, log: log, connStatus: "NotRegistered", policies: a}
}

// start loads the overlay and returns the config to start with. An
// overlay that does not fit the file or the kernel is set aside (the file
// applies), so that a bad file edit cannot keep the CPE down.
func (m *srv6Model) start(file Config) Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.base = file
	m.st = stateFromConfig(file, modelState{})
	b, err := m.state.ReadFile(OverlayFile)
	if errors.Is(err, fs.ErrNotExist) {
		return file
	}
	var doc overlayDoc
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	if err == nil && doc.Version != 1 {
		err = fmt.Errorf("version %d, want 1", doc.Version)
	}
	if err != nil {
		m.log.Error("controller configuration unreadable; using the config file's srv6 sections", zap.String("file", OverlayFile), zap.Error(err))
		return file
	}
	eff := doc.State.apply(file)
	if err := errors.Join(eff.Validate(), checkKernel(eff, m.caps)); err != nil {
		m.log.Error("controller configuration does not fit this config file or kernel; using the file's srv6 sections until the controller configures again",
			zap.String("file", OverlayFile), zap.Error(err))
		return file
	}
	m.st, m.owned = doc.State, true
	m.log.Info("controller configuration applied over the config file", zap.Int("services", len(eff.Services)), zap.Int("paths", len(eff.Paths.List)))
	return eff
}

// effective records file as the file's config and returns it with the
// controller's configuration over it (Reload's hook).
func (m *srv6Model) effective(file Config) Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.base = file
	if !m.owned {
		m.st = stateFromConfig(file, m.st)
		return file
	}
	return m.st.apply(file)
}

// save writes st as the overlay, atomically.
func (m *srv6Model) save(st modelState) error {
	b, err := json.MarshalIndent(overlayDoc{Version: 1, State: st}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", OverlayFile, err)
	}
	return m.state.WriteFile(OverlayFile, append(b, '\n'))
}

// snapshot returns the model and the file config. The model is replaced,
// never changed in place: callers share it read-only and clone it to edit.
func (m *srv6Model) snapshot() (modelState, Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st, m.base
}

// check validates cand as the whole configuration: the agent's own rules,
// the kernel, and (with a delegated prefix) clause 6.2 and the dataplane.
// It returns the derivation for the current prefix (zero without one).
func (m *srv6Model) check(cand modelState) (Config, srv6.Derivation, error) {
	_, base := m.snapshot()
	eff := cand.apply(base)
	eff.SetDefaults()
	if err := eff.Validate(); err != nil {
		return eff, srv6.Derivation{}, err
	}
	if err := checkKernel(eff, m.caps); err != nil {
		return eff, srv6.Derivation{}, err
	}
	prefix := m.a.Status().Prefix
	if !prefix.IsValid() {
		return eff, srv6.Derivation{}, nil
	}
	d, err := derive(eff, prefix)
	if err == nil {
		_, err = desiredState(eff, d, m.caps)
	}
	if err == nil {
		_, problems := activePaths(&eff, d, m.caps)
		var errs []error
		for i, p := range eff.Paths.List {
			if e := problems[i]; e != nil {
				errs = append(errs, fmt.Errorf("paths.list[%d] (%s).bsid: %w", i, p.ID, e))
			}
		}
		err = errors.Join(errs...)
	}
	if err != nil {
		return eff, d, fmt.Errorf("delegated prefix %s: %w", prefix, err)
	}
	return eff, d, nil
}

// replace makes cand the model and applies it through Reload; on failure
// the previous model and overlay come back. Reload's hook reads the model,
// so the lock is not held across it.
func (m *srv6Model) replace(cand modelState) error {
	m.mu.Lock()
	prev, prevOwned, base := m.st, m.owned, m.base
	m.mu.Unlock()
	if err := m.save(cand); err != nil {
		return err
	}
	m.mu.Lock()
	m.st, m.owned = cand, true
	m.mu.Unlock()
	if err := m.a.Reload(base); err != nil {
		m.restore(prev, prevOwned)
		return err
	}
	return nil
}

// restore puts prev back as the model and the overlay (no overlay when the
// file owned it), without a reload.
func (m *srv6Model) restore(prev modelState, owned bool) {
	m.mu.Lock()
	m.st, m.owned = prev, owned
	m.mu.Unlock()
	var err error
	if owned {
		err = m.save(prev)
	} else {
		err = m.state.Remove(OverlayFile)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Error("cannot restore the controller configuration file", zap.Error(err))
	}
}

// serviceIndex / pathIndex find an instance in st (-1: none).
func (st *modelState) serviceIndex(inst uint32) int {
	return slices.IndexFunc(st.Services, func(s modelService) bool { return s.Inst == inst })
}

func (st *modelState) pathIndex(inst uint32) int {
	return slices.IndexFunc(st.Paths, func(p modelPath) bool { return p.Inst == inst })
}

// splitList reads a comma-separated CWMP list value, ignoring blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parsePrefixList(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(v) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a prefix", s)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
