package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Fake is a Dataplane that holds in memory the route set the kernel would
// hold, for tests of the agent. It validates and diffs exactly like the
// Kernel, counts Applies and operations, and fails operations on demand.
// Device names are not checked: every name is a device. It is safe for
// concurrent use.
type Fake struct {
	mu      sync.Mutex
	caps    Capabilities
	wan     string
	nm      *fakeNames
	routes  routeSet
	foreign map[rkey]bool
	vrfs    []VRF
	rules   []krule    // the SID filter's rules, in kernel (add) order
	tunsrc  netip.Addr // the seg6 tunnel source
	hmac    *HMACState // the HMAC key table (all ids) and require_hmac
	status  Status
	ops     int
	failN   int
	failErr error
}

// NewFake returns an empty Fake with these capabilities and "wan0" as the
// WAN interface.
func NewFake(caps Capabilities) *Fake {
	return &Fake{
		caps:    caps,
		wan:     "wan0",
		nm:      &fakeNames{},
		routes:  routeSet{},
		foreign: map[rkey]bool{},
		status:  Status{Capabilities: caps, VRFLessFallback: !caps.VRF},
	}
}

// SetWANInterface changes the device used where a route names none.
func (f *Fake) SetWANInterface(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wan = name
}

// Capabilities returns the capabilities the Fake was made with.
func (f *Fake) Capabilities() Capabilities {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.caps
}

// Status reports like Kernel.Status (no sysctls, no probe).
func (f *Fake) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Applies counts the Apply calls, including failed ones.
func (f *Fake) Applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status.Applies
}

// Ops counts the operations (route and VRF changes) that took effect.
func (f *Fake) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// FailNext makes the next n operations fail with err (e.g. unix.EEXIST,
// unix.ENOMEM, unix.EBUSY), as the kernel would fail them one by one: the
// Apply goes on with the others and returns an *ApplyError.
func (f *Fake) FailNext(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failN, f.failErr = n, err
}

// AddForeignRoute puts a route of another protocol on (prefix, table 0 =
// main). Like the kernel, the Fake then refuses to add one of ours on the
// same key (EEXIST), and never removes it.
func (f *Fake) AddForeignRoute(p netip.Prefix, table int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.foreign[fakeKey(p, table)] = true
}

func fakeKey(p netip.Prefix, table int) rkey {
	fam := uint8(unix.AF_INET6)
	if p.Addr().Is4() {
		fam = unix.AF_INET
	}
	if table == 0 {
		table = tableMain
	}
	return rkey{Family: fam, Table: uint32(table), Dst: p}
}

// Installed returns what the Fake holds, in Normalize form.
func (f *Fake) Installed(ctx context.Context) (Desired, error) {
	if err := ctx.Err(); err != nil {
		return Desired{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := toDesired(f.routes, f.vrfs, f.nm)
	d.SIDFilter, d.TunnelSource, d.HMAC = filterOf(f.rules), f.tunsrc, f.ownedHMAC()
	d.FlowRules = flowRulesOf(f.rules)
	return d, nil
}

// Routes lists the held routes one per line, iproute2 style, sorted.
func (f *Fake) Routes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]rkey, 0, len(f.routes))
	for k := range f.routes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpKey)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, formatRoute(k, f.routes[k], f.nm))
	}
	return out
}

func formatRoute(k rkey, v rval, nm names) string {
	var b strings.Builder
	switch v.Kind {
	case kindUnreachable:
		fmt.Fprintf(&b, "unreachable %s", k.Dst)
	case kindLocal:
		fmt.Fprintf(&b, "%s encap seg6local action %s", k.Dst, actionBehavior(v.Action))
		switch v.Action {
		case actEndX, actEndDX6:
			fmt.Fprintf(&b, " nh6 %s", v.NH)
		case actEndDX4:
			fmt.Fprintf(&b, " nh4 %s", v.NH)
		case actEndT, actEndDT6:
			fmt.Fprintf(&b, " table %d", v.Table)
		case actEndDT4, actEndDT46:
			fmt.Fprintf(&b, " vrftable %d", v.VRFTable)
		case actEndB6Enc:
			fmt.Fprintf(&b, " segs [ %s ]", strings.ReplaceAll(v.Segs.String(), ",", " "))
		}
		fmt.Fprintf(&b, " dev %s", nm.ifname(v.Dev))
	case kindEncap:
		mode := "encap"
		if v.Mode == seg6ModeRed {
			mode = "encap.red"
		}
		if v.Paths != "" {
			fmt.Fprintf(&b, "%s encap seg6 mode %s multipath %s dev %s", k.Dst, mode, v.Paths, nm.ifname(v.Dev))
		} else {
			fmt.Fprintf(&b, "%s encap seg6 mode %s segs [ %s ] dev %s", k.Dst, mode,
				strings.ReplaceAll(v.Segs.String(), ",", " "), nm.ifname(v.Dev))
		}
	}
	if k.Table != tableMain {
		fmt.Fprintf(&b, " table %d", k.Table)
	}
	return b.String()
}

// Seed sets the held state directly (a starting state for tests): no
// validation against capabilities beyond plan's, no counting.
func (f *Fake) Seed(d Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ds, err := plan(d, f.caps, f.wan, f.nm)
	if err != nil {
		return err
	}
	filter, err := normFilter(d.SIDFilter, f.wan)
	if err != nil {
		return err
	}
	flows, err := flowKRules(d.FlowRules, f.caps)
	if err != nil {
		return err
	}
	f.routes = ds.routes
	f.vrfs = slices.Clone(d.VRFs)
	f.rules = append(planRules(filter), flows...)
	return nil
}

// op consumes one operation, failing it when an injection is pending.
func (f *Fake) op(ae *ApplyError, what string) bool {
	if f.failN > 0 {
		f.failN--
		ae.Failed = append(ae.Failed, OpError{Op: what, Err: f.failErr})
		return false
	}
	f.ops++
	ae.Applied++
	return true
}

// Apply makes the held state equal to d, one operation at a time, in the
// order the Kernel uses.
func (f *Fake) Apply(ctx context.Context, d Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.Applies++
	f.status.LastApply = time.Now()
	err := f.apply(ctx, d)
	f.status.LastError = ""
	if err != nil {
		f.status.LastError = err.Error()
	}
	f.status.Routes, f.status.Rules, f.status.TunnelSource = len(f.routes), len(f.rules), f.tunsrc
	return err
}

func (f *Fake) apply(ctx context.Context, d Desired) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	want, err := plan(d, f.caps, f.wan, f.nm)
	if err != nil {
		return fmt.Errorf("invalid desired state, nothing applied: %w", err)
	}
	if err := validExtras(d, f.caps, f.wan); err != nil {
		return fmt.Errorf("invalid desired state, nothing applied: %w", err)
	}
	filter, _ := normFilter(d.SIDFilter, f.wan)
	flows, _ := flowKRules(d.FlowRules, f.caps)
	ae := &ApplyError{}
	if d.TunnelSource.IsValid() && d.TunnelSource != f.tunsrc && f.op(ae, "set seg6 tunnel source "+d.TunnelSource.String()) {
		f.tunsrc = d.TunnelSource
	}
	f.applyHMAC(d.HMAC, ae)
	addRules, delRules := diffRules(f.rules, append(planRules(filter), flows...))
	for _, r := range addRules {
		if f.op(ae, "add "+r.String()) {
			f.rules = append(f.rules, r)
		}
	}
	have := vrfTables(f.vrfs)
	for _, v := range d.VRFs {
		if t, ok := have[v.Name]; ok && t == v.Table {
			continue
		}
		if f.op(ae, fmt.Sprintf("create VRF %s table %d", v.Name, v.Table)) {
			f.vrfs = slices.DeleteFunc(f.vrfs, func(x VRF) bool { return x.Name == v.Name })
			f.vrfs = append(f.vrfs, v)
		}
	}
	ups, dels := diff(f.routes, nil, want)
	for _, u := range ups {
		verb := "add"
		if u.Replace {
			verb = "replace"
		}
		what := fmt.Sprintf("%s route %s", verb, u.Key)
		if !u.Replace && f.foreign[u.Key] {
			ae.Failed = append(ae.Failed, OpError{Op: what,
				Err: fmt.Errorf("%w: the key is held by a route of another protocol, left alone", unix.EEXIST)})
			continue
		}
		if f.op(ae, what) {
			f.routes[u.Key] = u.Val
		}
	}
	for _, k := range dels {
		if f.op(ae, "delete route "+k.String()) {
			delete(f.routes, k)
		}
	}
	for _, r := range delRules {
		if f.op(ae, "delete "+r.String()) {
			f.rules = slices.DeleteFunc(f.rules, func(x krule) bool { return x == r })
		}
	}
	keep := vrfTables(d.VRFs)
	for _, v := range slices.Clone(f.vrfs) {
		if _, ok := keep[v.Name]; ok {
			continue
		}
		if f.op(ae, "delete VRF "+v.Name) {
			f.vrfs = slices.DeleteFunc(f.vrfs, func(x VRF) bool { return x.Name == v.Name })
		}
	}
	slices.SortFunc(f.vrfs, func(a, b VRF) int { return strings.Compare(a.Name, b.Name) })
	if len(ae.Failed) > 0 {
		return ae
	}
	return nil
}

var _ Dataplane = (*Fake)(nil)
var _ Dataplane = (*Kernel)(nil)
