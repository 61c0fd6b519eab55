package dataplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Options configure the netlink dataplane.
type Options struct {
	// WANInterface is the ingress/egress device: seg6_enabled is set on it
	// and routes that name no device use it.
	WANInterface string
	// Logger receives what the dataplane changed; nil means no logging.
	Logger *zap.Logger
	// NetNS, when open, is the network namespace to program (tests, labs).
	// The zero value and netns.None() mean the caller's namespace.
	NetNS netns.NsHandle
	// SkipSysctls leaves the sysctls alone (the caller manages them).
	SkipSysctls bool
}

// Status is what the dataplane reports about itself.
type Status struct {
	Capabilities Capabilities
	// VRFLessFallback is true when the kernel cannot create VRF devices:
	// VPNs then live in the main table and are decapsulated with End.DX4
	// nh4 0.0.0.0 / End.DX6 nh6 :: (DESIGN.md, "Kernel facts").
	VRFLessFallback bool
	Sysctls         []Sysctl
	// ProbeNotes say why a capability probe failed.
	ProbeNotes []string
	// Applies counts Apply calls; LastError is the last one's error ("" = ok).
	Applies   int
	LastApply time.Time
	LastError string
	// Routes and Nexthops (seg6 objects and multipath groups) count what
	// the agent holds in the kernel after the last Apply.
	Routes, Nexthops int
	// Rules counts our rules (SID filter and flow rules) after the last Apply;
	// TunnelSource is the seg6 tunnel source it left (zero = unset).
	Rules        int
	TunnelSource netip.Addr
}

// Sysctl is one kernel setting the dataplane needs.
type Sysctl struct {
	Name  string // e.g. net.ipv6.conf.all.forwarding
	Value string // the value it now has
	Was   string // the value before, when the dataplane changed it
	Err   string // why it could not be set
}

// Kernel is the netlink dataplane. Its methods are safe for concurrent use.
type Kernel struct {
	mu     sync.Mutex
	opt    Options
	log    *zap.Logger
	ns     netns.NsHandle
	c      *conn
	h      *netlink.Handle
	status Status
	nhNext uint32
	// si interns segment lists across applies (a handful for thousands of
	// routes), so that reading back and planning them allocates nothing.
	si segInterner
}

// vrfAlias marks the VRF devices the agent created (IFLA_IFALIAS).
const vrfAlias = "srv6cpe"

// Open connects to the kernel, sets the sysctls and probes capabilities.
func Open(ctx context.Context, opt Options) (*Kernel, error) {
	k := &Kernel{opt: opt, log: opt.Logger, ns: opt.NetNS, nhNext: defaultNHIDFirst}
	if k.log == nil {
		k.log = zap.NewNop()
	}
	if k.ns == 0 {
		k.ns = netns.None()
	}
	var err error
	if k.c, err = openConn(k.ns); err != nil {
		return nil, err
	}
	if k.ns.IsOpen() {
		k.h, err = netlink.NewHandleAt(k.ns)
	} else {
		k.h, err = netlink.NewHandle()
	}
	if err != nil {
		k.c.close()
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	if err := ctx.Err(); err != nil {
		k.Close()
		return nil, err
	}
	k.status.Capabilities, k.status.ProbeNotes = k.probe()
	k.status.VRFLessFallback = !k.status.Capabilities.VRF
	if !opt.SkipSysctls {
		k.status.Sysctls = k.setSysctls()
	}
	k.log.Info("dataplane open",
		zap.Any("capabilities", k.status.Capabilities),
		zap.Bool("vrf_less_fallback", k.status.VRFLessFallback),
		zap.Strings("probe_notes", k.status.ProbeNotes))
	return k, nil
}

// Close releases the netlink sockets. Routes stay in place.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.h != nil {
		k.h.Close()
		k.h = nil
	}
	if k.c != nil {
		err := k.c.close()
		k.c = nil
		return err
	}
	return nil
}

// Capabilities reports what the probe found.
func (k *Kernel) Capabilities() Capabilities {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status.Capabilities
}

// Status reports capabilities, sysctls and the last Apply.
func (k *Kernel) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.status
	s.Sysctls = append([]Sysctl(nil), s.Sysctls...)
	s.ProbeNotes = append([]string(nil), s.ProbeNotes...)
	return s
}

var errClosed = errors.New("dataplane closed")

// linkNames resolves device names through the kernel, cached per call.
type linkNames struct {
	h      *netlink.Handle
	byName map[string]int
	byIdx  map[int]string
}

func newLinkNames(h *netlink.Handle) *linkNames {
	return &linkNames{h: h, byName: map[string]int{}, byIdx: map[int]string{}}
}

func (l *linkNames) ifindex(name string) (int, error) {
	if i, ok := l.byName[name]; ok {
		return i, nil
	}
	ln, err := l.h.LinkByName(name)
	if err != nil {
		return 0, err
	}
	i := ln.Attrs().Index
	l.byName[name], l.byIdx[i] = i, name
	return i, nil
}

func (l *linkNames) ifname(i int) string {
	if n, ok := l.byIdx[i]; ok {
		return n
	}
	ln, err := l.h.LinkByIndex(i)
	if err != nil {
		return fmt.Sprintf("if%d", i)
	}
	n := ln.Attrs().Name
	l.byName[n], l.byIdx[i] = i, n
	return n
}

// state is what the kernel holds of ours.
type state struct {
	routes   routeSet        // each at the priority of its family (prioOf)
	order    []rkey          // routes in the order the kernel listed them
	nhOf     map[rkey]uint32 // nexthop object per route
	extra    []kroute        // ours that must go whatever is desired (duplicates, odd priority)
	nhs      map[uint32]knh  // our nexthop objects
	nhBySpec map[encapSpec]uint32
	// Our multipath groups whose members are our seg6 objects, by what
	// they carry, and the other way.
	nhByGroup map[groupSpec]uint32
	groupOf   map[uint32]groupSpec
	// inGroups lists, per nexthop id, the groups (ours or not) holding it.
	inGroups map[uint32][]uint32
	usedIDs  map[uint32]bool // every nexthop id in use, ours or not
	vrfs     []VRF
}

// resolveGroups maps our groups onto what they carry. A group with a
// member that is not one of our seg6 objects, or members that differ in
// device, mode or HMAC key, is not one the agent would make: routes on it
// read as kindOther and are replaced. Path lists are interned in si.
func (st *state) resolveGroups(si *segInterner) {
	for id, n := range st.nhs {
		if n.Group == nil || n.OddGroup || len(n.Group) < 2 {
			continue
		}
		ps := make([]wpath, 0, len(n.Group))
		var g groupSpec
		ok := true
		for i, m := range n.Group {
			mn, mine := st.nhs[m.ID]
			if !mine || !mn.Simple || (i > 0 && (mn.Spec.Mode != g.Mode || mn.Spec.Dev != g.Dev || mn.Spec.HMAC != g.HMAC)) {
				ok = false
				break
			}
			g.Mode, g.Dev, g.HMAC = mn.Spec.Mode, mn.Spec.Dev, mn.Spec.HMAC
			ps = append(ps, wpath{Weight: m.Weight, Segs: mn.Spec.Segs})
		}
		if !ok {
			continue
		}
		si.buf = packPaths(ps, si.buf)
		g.Paths = pathList(si.internBuf())
		st.groupOf[id] = g
		if _, dup := st.nhByGroup[g]; !dup {
			st.nhByGroup[g] = id
		}
	}
}

// resetNexthops empties the nexthop part of st (before each try of the
// nexthop dump).
func (st *state) resetNexthops() {
	st.nhs, st.nhBySpec, st.usedIDs = map[uint32]knh{}, map[encapSpec]uint32{}, map[uint32]bool{}
	st.nhByGroup, st.groupOf, st.inGroups = map[groupSpec]uint32{}, map[uint32]groupSpec{}, map[uint32][]uint32{}
}

// newRoutes makes the route part of st with room for n routes.
func (st *state) newRoutes(n int) {
	st.routes, st.nhOf, st.order = make(routeSet, n), make(map[rkey]uint32, n), make([]rkey, 0, n)
}

// dropRoutes forgets the routes read after the first n (in order) and nx
// (in extra): those of a dump that is being retried.
func (st *state) dropRoutes(n, nx int) {
	for _, key := range st.order[n:] {
		delete(st.routes, key)
		delete(st.nhOf, key)
	}
	clear(st.order[n:])
	st.order = st.order[:n]
	clear(st.extra[nx:])
	st.extra = st.extra[:nx]
}

// addRoute records one route of ours from the dump; the nexthop objects
// must have been read.
func (st *state) addRoute(r kroute) {
	if r.NHID != 0 {
		if n, ok := st.nhs[r.NHID]; ok && n.Simple {
			r.Val = rval{Kind: kindEncap, Mode: n.Spec.Mode, Dev: n.Spec.Dev, Segs: n.Spec.Segs, HMAC: n.Spec.HMAC}
		} else if g, ok := st.groupOf[r.NHID]; ok {
			r.Val = rval{Kind: kindEncap, Mode: g.Mode, Dev: g.Dev, HMAC: g.HMAC, Paths: g.Paths}
		} else {
			r.Val = rval{Kind: kindOther}
		}
	}
	if _, dup := st.routes[r.Key]; dup || r.Prio != prioOf(r.Key.Family) {
		st.extra = append(st.extra, r)
		return
	}
	st.routes[r.Key] = r.Val
	st.order = append(st.order, r.Key)
	if r.NHID != 0 {
		st.nhOf[r.Key] = r.NHID
	}
}

// read dumps our routes, nexthop objects and VRF devices; segment lists
// are interned in k.si.
func (k *Kernel) read() (*state, error) {
	st := &state{}
	st.resetNexthops()
	if k.status.Capabilities.NexthopObjects {
		err := k.c.dump(func(w *wbuf, seq uint32) { w.dumpNexthops(seq) }, st.resetNexthops, func(typ uint16, body []byte) error {
			if typ != unix.RTM_NEWNEXTHOP {
				return nil
			}
			n, err := decodeNexthop(body, &k.si)
			if err != nil {
				k.log.Warn("unreadable nexthop object skipped", zap.Error(err))
				return nil
			}
			st.usedIDs[n.ID] = true
			for _, m := range n.Group {
				st.inGroups[m.ID] = append(st.inGroups[m.ID], n.ID)
			}
			if n.Proto == RouteProtocol {
				st.nhs[n.ID] = n
				if n.Simple {
					st.nhBySpec[n.Spec] = n.ID
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read nexthop objects: %w", err)
		}
		st.resolveGroups(&k.si)
	}
	// Sized for what the last Apply left instead of grown. The maps are
	// not kept between applies: live, they would raise the collector's
	// goal (and the RSS) by their size for good.
	st.newRoutes(k.status.Routes)
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		n, nx := len(st.order), len(st.extra)
		err := k.c.dump(func(w *wbuf, seq uint32) { w.dumpRoutes(seq, fam, RouteProtocol) },
			func() { st.dropRoutes(n, nx) },
			func(typ uint16, body []byte) error {
				if typ != unix.RTM_NEWROUTE {
					return nil
				}
				r, err := decodeRoute(body, &k.si)
				if err != nil {
					// Without a key it cannot be deleted either; say so
					// and go on with the rest.
					k.log.Warn("unreadable route skipped", zap.Error(err))
					return nil
				}
				if r.Proto == RouteProtocol { // the filter is a kernel courtesy; check again
					st.addRoute(r)
				}
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("read routes (family %d): %w", fam, err)
		}
	}
	vrfs, err := k.ourVRFs()
	if err != nil {
		return nil, err
	}
	st.vrfs = vrfs
	return st, nil
}

// ourVRFs lists the VRF devices the agent made.
func (k *Kernel) ourVRFs() ([]VRF, error) {
	if !k.status.Capabilities.VRF {
		return nil, nil
	}
	links, err := k.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []VRF
	for _, l := range links {
		if v, ok := l.(*netlink.Vrf); ok && v.Alias == vrfAlias {
			out = append(out, VRF{Name: v.Name, Table: int(v.Table)})
		}
	}
	return out, nil
}

// Installed reads back what the kernel holds with our protocol, in the
// form Normalize gives a Desired state.
func (k *Kernel) Installed(ctx context.Context) (Desired, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		return Desired{}, errClosed
	}
	if err := ctx.Err(); err != nil {
		return Desired{}, err
	}
	k.si.rotate()
	st, err := k.read()
	if err != nil {
		return Desired{}, err
	}
	rules, _, err := k.readRules()
	if err != nil {
		return Desired{}, err
	}
	src, err := k.tunnelSource()
	if err != nil {
		return Desired{}, err
	}
	h, err := k.readHMAC()
	if err != nil {
		return Desired{}, err
	}
	// toDesired skips kindOther routes: the agent cannot express them.
	d := toDesired(st.routes, st.vrfs, newLinkNames(k.h))
	d.SIDFilter, d.TunnelSource, d.HMAC = filterOf(rules), src, h
	d.FlowRules = flowRulesOf(rules)
	return d, nil
}

// OpError is one change that failed.
type OpError struct {
	Op  string // e.g. "add route 10.1.0.0/24 table 10"
	Err error
}

func (e OpError) Error() string { return e.Op + ": " + e.Err.Error() }

// ApplyError says what an Apply did and did not do. The kernel keeps what
// was applied; the next Apply converges from there.
type ApplyError struct {
	Applied int       // changes that took effect
	Failed  []OpError // changes that did not
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dataplane apply: %d change(s) failed, %d applied", len(e.Failed), e.Applied)
	for i, f := range e.Failed {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-5)
			break
		}
		b.WriteString("; ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap exposes the causes, so errors.Is(err, unix.EEXIST) works.
func (e *ApplyError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f.Err
	}
	return out
}

// retryable errors are transient kernel allocation failures (per-CPU
// caches of seg6 encap states run out under bursts): worth a short retry
// inside the same Apply.
func retryable(err error) bool {
	return errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS)
}

var retryDelays = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond}

// Apply makes the kernel hold exactly d (of the routes the agent owns).
func (k *Kernel) Apply(ctx context.Context, d Desired) (err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		return errClosed
	}
	k.status.Applies++
	k.status.LastApply = time.Now()
	defer func() {
		k.status.LastError = ""
		if err != nil {
			k.status.LastError = err.Error()
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	nm := newLinkNames(k.h)
	k.si.rotate()
	want, err := planWith(&k.si, d, k.status.Capabilities, k.opt.WANInterface, nm)
	if err != nil {
		return fmt.Errorf("invalid desired state, nothing applied: %w", err)
	}
	if err := validExtras(d, k.status.Capabilities, k.opt.WANInterface); err != nil {
		return fmt.Errorf("invalid desired state, nothing applied: %w", err)
	}
	filter, _ := normFilter(d.SIDFilter, k.opt.WANInterface)
	flows, _ := flowKRules(d.FlowRules, k.status.Capabilities)
	if !k.opt.SkipSysctls {
		k.retrySysctls()
	}
	ae := &ApplyError{}
	if err := k.ensureVRFs(d.VRFs, ae); err != nil {
		return err
	}
	st, err := k.read()
	if err != nil {
		return fmt.Errorf("nothing applied: %w", err)
	}
	ups, dels := diff(st.routes, st.order, want)
	curRules, rawRules, err := k.readRules()
	if err != nil {
		return fmt.Errorf("nothing applied: %w", err)
	}
	wantRules := append(planRules(filter), flows...)
	addRules, delRules := diffRules(curRules, wantRules)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nothing applied: %w", err)
	}

	// 0. The tunnel source, before encap routes that use it, and the SID
	// filter's new rules, before the SIDs they guard (allows before drops).
	// A changed flow rule is added here and its old form deleted after the
	// routes (3b): matching flows always meet one of the two.
	k.ensureTunnelSource(d.TunnelSource, ae)
	k.ensureHMAC(d.HMAC, ae)
	k.addRules(addRules, ae)

	// 1. Nexthop objects the new routes need, before the routes.
	ids := k.ensureNexthops(st, ups, ae)
	// 2. New and changed routes: new forwarding is in before old goes.
	upOK := k.upsert(ups, ids, ae)
	// 3. Stale routes.
	gone := k.remove(st, dels, ae)
	// 3b. Stale rules, after the stale SIDs they guarded are gone.
	k.delRules(delRules, rawRules, ae)
	k.status.Rules = len(curRules) + len(addRules) - len(delRules)
	// 4. Nexthop objects nothing uses any more, then stale VRFs.
	used := make(map[uint32]bool)
	replaced := make(map[rkey]bool)
	added, lastID := 0, uint32(0)
	for i, u := range ups {
		if !upOK[i] {
			continue
		}
		if id := ids[i]; id != 0 && id != lastID { // runs of routes share an object
			used[id], lastID = true, id
		}
		if u.Replace {
			replaced[u.Key] = true
		} else {
			added++
		}
	}
	for key, id := range st.nhOf {
		if !gone[key] && !replaced[key] {
			used[id] = true
		}
	}
	for id := range used {
		for _, m := range st.nhs[id].Group {
			used[m.ID] = true
		}
	}
	k.pruneNexthops(st, used, ae)
	k.pruneVRFs(st.vrfs, d.VRFs, ae)

	k.status.Routes, k.status.Nexthops = len(st.routes)+added-len(gone), len(st.nhs)
	if len(ae.Failed) > 0 {
		k.log.Warn("dataplane apply incomplete", zap.Error(ae))
		return ae
	}
	if ae.Applied > 0 {
		k.log.Info("dataplane applied", zap.Int("changes", ae.Applied), zap.Int("routes", k.status.Routes))
	}
	return nil
}

// run sends requests, retrying transient failures a bounded number of
// times. build(i, w, seq) encodes request i. It returns the final error
// of every failed request by index.
func (k *Kernel) run(n int, build func(i int, w *wbuf, seq uint32)) (map[int]error, error) {
	todo := make([]int, n)
	for i := range todo {
		todo[i] = i
	}
	final := make(map[int]error)
	for attempt := 0; ; attempt++ {
		// Sequence numbers are consecutive, so seq-first is the position.
		first := k.c.seq + 1
		k.c.seq += uint32(len(todo))
		sent := todo
		failed, err := k.c.exec(len(sent), first, func(j int, w *wbuf, seq uint32) { build(sent[j], w, seq) })
		if err != nil {
			return final, err
		}
		todo = nil
		for seq, e := range failed {
			pos := int(seq - first)
			if pos < 0 || pos >= len(sent) {
				continue // not from this batch
			}
			i := sent[pos]
			if retryable(e) && attempt < len(retryDelays) {
				todo = append(todo, i)
				continue
			}
			final[i] = e
		}
		if len(todo) == 0 {
			return final, nil
		}
		time.Sleep(retryDelays[attempt])
	}
}

// ensureNexthops makes one seg6 nexthop object per distinct encap among
// the upserts and one group per distinct multipath set (over the objects
// of its paths), reusing ours, and returns the object for each upsert (0 =
// none). A spec whose object or group cannot be made (no nexthop support,
// device without carrier) is encoded inline per route.
func (k *Kernel) ensureNexthops(st *state, ups []change, ae *ApplyError) []uint32 {
	ids := make([]uint32, len(ups))
	if !k.status.Capabilities.NexthopObjects {
		return ids
	}
	// Usually a handful of specs serve thousands of routes: a short list
	// of recent ones scanned linearly beats hashing a spec per route.
	type known struct {
		spec encapSpec
		id   uint32
	}
	const recentMax = 16
	var recent []known
	var specs []encapSpec
	var newIDs []uint32
	object := func(s encapSpec) uint32 {
		id, ok := st.nhBySpec[s]
		if !ok {
			id = k.freeNHID(st)
			st.nhBySpec[s] = id // provisional; dropped below if it cannot be made
			specs = append(specs, s)
			newIDs = append(newIDs, id)
		}
		return id
	}
	var groups []groupSpec
	var groupIDs []uint32
	for i, u := range ups {
		if u.Val.Kind != kindEncap {
			continue
		}
		if u.Val.Paths != "" {
			g := u.Val.group()
			id, ok := st.nhByGroup[g]
			if !ok {
				for _, p := range g.Paths.paths() {
					object(g.member(p.Segs))
				}
				id = k.freeNHID(st)
				st.nhByGroup[g] = id
				groups = append(groups, g)
				groupIDs = append(groupIDs, id)
			}
			ids[i] = id
			continue
		}
		s := u.Val.spec()
		if j := slices.IndexFunc(recent, func(x known) bool { return x.spec == s }); j >= 0 {
			ids[i] = recent[j].id
			continue
		}
		id := object(s)
		if len(recent) == recentMax {
			recent = recent[:recentMax-1]
		}
		recent = slices.Insert(recent, 0, known{s, id})
		ids[i] = id
	}
	if len(specs) == 0 && len(groups) == 0 {
		return ids
	}
	// Objects before the groups over them. What cannot be made is not an
	// apply failure: the routes carry their encap themselves.
	inline := make(map[uint32]bool)
	k.makeObjects(st, specs, newIDs, inline, ae)
	k.makeGroups(st, groups, groupIDs, inline, ae)
	if len(inline) > 0 {
		for i, id := range ids {
			if inline[id] {
				ids[i] = 0
			}
		}
	}
	return ids
}

// makeObjects creates seg6 nexthop objects (ids[i] for specs[i]); those
// the kernel refuses are marked inline and forgotten.
func (k *Kernel) makeObjects(st *state, specs []encapSpec, ids []uint32, inline map[uint32]bool, ae *ApplyError) {
	if len(specs) == 0 {
		return
	}
	failed, err := k.run(len(specs), func(i int, w *wbuf, seq uint32) { w.putNexthop(seq, ids[i], specs[i]) })
	for i, s := range specs {
		if e, bad := failed[i]; bad || err != nil {
			delete(st.nhBySpec, s)
			inline[ids[i]] = true
			k.log.Debug("nexthop object not made, encap goes inline", zap.Uint32("id", ids[i]), zap.Error(errors.Join(e, err)))
			continue
		}
		st.nhs[ids[i]] = knh{ID: ids[i], Proto: RouteProtocol, Simple: true, Spec: s}
		ae.Applied++
	}
}

// makeGroups creates multipath groups (ids[i] for groups[i]) over the
// objects of their paths; a group with a member that could not be made,
// or that the kernel refuses, is marked inline and forgotten.
func (k *Kernel) makeGroups(st *state, groups []groupSpec, ids []uint32, inline map[uint32]bool, ae *ApplyError) {
	members := make([][]grpEntry, len(groups))
	var send []int
	for i, g := range groups {
		for _, p := range g.Paths.paths() {
			id, ok := st.nhBySpec[g.member(p.Segs)]
			if !ok {
				members[i] = nil
				break
			}
			members[i] = append(members[i], grpEntry{ID: id, Weight: p.Weight})
		}
		if members[i] == nil {
			delete(st.nhByGroup, g)
			inline[ids[i]] = true
			continue
		}
		send = append(send, i)
	}
	if len(send) == 0 {
		return
	}
	failed, err := k.run(len(send), func(j int, w *wbuf, seq uint32) { w.putGroup(seq, ids[send[j]], members[send[j]]) })
	for j, i := range send {
		if e, bad := failed[j]; bad || err != nil {
			delete(st.nhByGroup, groups[i])
			inline[ids[i]] = true
			k.log.Debug("nexthop group not made, multipath goes inline", zap.Uint32("id", ids[i]), zap.Error(errors.Join(e, err)))
			continue
		}
		st.nhs[ids[i]] = knh{ID: ids[i], Proto: RouteProtocol, Group: members[i]}
		st.groupOf[ids[i]] = groups[i]
		for _, m := range members[i] {
			st.inGroups[m.ID] = append(st.inGroups[m.ID], ids[i])
		}
		ae.Applied++
	}
}

func (k *Kernel) freeNHID(st *state) uint32 {
	for st.usedIDs[k.nhNext] || k.nhNext == 0 {
		k.nhNext++
	}
	id := k.nhNext
	st.usedIDs[id] = true
	k.nhNext++
	return id
}

// upsert adds and replaces routes; ids[i] is the nexthop object of
// upsert i (0 = encap inline). It reports which took effect.
func (k *Kernel) upsert(ups []change, ids []uint32, ae *ApplyError) []bool {
	ok := make([]bool, len(ups))
	if len(ups) == 0 {
		return ok
	}
	failed, err := k.run(len(ups), func(i int, w *wbuf, seq uint32) {
		w.putRoute(seq, ups[i].Key, ups[i].Val, ids[i], ups[i].Replace)
	})
	for i, u := range ups {
		e, bad := failed[i]
		if !bad && err == nil {
			ok[i] = true
			ae.Applied++
			continue
		}
		op := "add route " + u.Key.String()
		if u.Replace {
			op = "replace route " + u.Key.String()
		}
		if !bad {
			ae.Failed = append(ae.Failed, OpError{Op: op, Err: fmt.Errorf("outcome unknown: %w", err)})
			continue
		}
		if errors.Is(e, unix.EEXIST) && !u.Replace {
			e = fmt.Errorf("%w: the key is held by a route of another protocol, left alone", e)
		}
		ae.Failed = append(ae.Failed, OpError{Op: op, Err: e})
	}
	return ok
}

type delRoute struct {
	key   rkey
	prio  uint32
	extra bool // a duplicate or odd-priority route, not in st.routes
}

// remove deletes stale routes (and the extras, whatever is desired) and
// returns the keys of st.routes it deleted.
func (k *Kernel) remove(st *state, dels []rkey, ae *ApplyError) map[rkey]bool {
	gone := make(map[rkey]bool, len(dels))
	list := make([]delRoute, 0, len(dels)+len(st.extra))
	for _, x := range st.extra {
		list = append(list, delRoute{key: x.Key, prio: x.Prio, extra: true})
	}
	for _, key := range dels {
		list = append(list, delRoute{key: key, prio: prioOf(key.Family)})
	}
	if len(list) == 0 {
		return gone
	}
	failed, err := k.run(len(list), func(i int, w *wbuf, seq uint32) { w.delRoute(seq, list[i].key, list[i].prio) })
	for i, d := range list {
		e, bad := failed[i]
		if bad && (errors.Is(e, unix.ESRCH) || errors.Is(e, unix.ENOENT)) {
			bad = false // already gone: that is the goal
		}
		if bad || err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "delete route " + d.key.String(), Err: errors.Join(e, err)})
			continue
		}
		if !d.extra {
			gone[d.key] = true
		}
		ae.Applied++
	}
	return gone
}

// pruneNexthops deletes our nexthop objects that no route of ours uses.
// The kernel deletes the routes using an object with it, so an object a
// foreign route still uses stays.
func (k *Kernel) pruneNexthops(st *state, used map[uint32]bool, ae *ApplyError) {
	var stale []uint32
	for id := range st.nhs {
		if !used[id] {
			stale = append(stale, id)
		}
	}
	if len(stale) == 0 {
		return
	}
	inUse, err := k.nexthopsInUse()
	if err != nil {
		ae.Failed = append(ae.Failed, OpError{Op: "check nexthop objects before deleting them", Err: err})
		return
	}
	stale = slices.DeleteFunc(stale, func(id uint32) bool { return inUse[id] })
	// A member of a group that stays (one a route still uses, or one that
	// is not ours) stays too: deleting it would shrink that group.
	going := make(map[uint32]bool, len(stale))
	for _, id := range stale {
		going[id] = true
	}
	stale = slices.DeleteFunc(stale, func(id uint32) bool {
		return slices.ContainsFunc(st.inGroups[id], func(g uint32) bool { return !going[g] })
	})
	if len(stale) == 0 {
		return
	}
	// Groups go before their members, so no group ever shrinks.
	slices.SortStableFunc(stale, func(a, b uint32) int {
		return cmp.Compare(len(st.nhs[b].Group), len(st.nhs[a].Group))
	})
	failed, err := k.run(len(stale), func(i int, w *wbuf, seq uint32) { w.delNexthop(seq, stale[i]) })
	for i, id := range stale {
		e, bad := failed[i]
		if bad && errors.Is(e, unix.ENOENT) {
			bad = false
		}
		if bad || err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: fmt.Sprintf("delete nexthop %d", id), Err: errors.Join(e, err)})
			continue
		}
		if n := st.nhs[id]; n.Simple {
			delete(st.nhBySpec, n.Spec)
		}
		if g, ok := st.groupOf[id]; ok {
			delete(st.nhByGroup, g)
			delete(st.groupOf, id)
		}
		delete(st.nhs, id)
		ae.Applied++
	}
}

// nexthopsInUse lists the nexthop objects any route, of any protocol,
// uses. The kernel's route dump cannot be filtered by nexthop id, so this
// reads the whole table; it runs only when an object of ours went stale.
func (k *Kernel) nexthopsInUse() (map[uint32]bool, error) {
	inUse := make(map[uint32]bool)
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := k.c.dump(func(w *wbuf, seq uint32) { w.dumpRoutes(seq, fam, 0) }, func() {}, func(typ uint16, body []byte) error {
			if typ != unix.RTM_NEWROUTE {
				return nil
			}
			if r, err := decodeRoute(body, nil); err == nil && r.NHID != 0 {
				inUse[r.NHID] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read routes (family %d): %w", fam, err)
		}
	}
	return inUse, nil
}

// ensureVRFs creates the desired VRF devices (table, up, marked ours).
// A VRF whose table changed is recreated.
func (k *Kernel) ensureVRFs(want []VRF, ae *ApplyError) error {
	if len(want) == 0 {
		return nil
	}
	have, err := k.ourVRFs()
	if err != nil {
		return fmt.Errorf("nothing applied: %w", err)
	}
	cur := vrfTables(have)
	for _, v := range want {
		t, ok := cur[v.Name]
		if ok && t == v.Table {
			continue
		}
		op := fmt.Sprintf("create VRF %s table %d", v.Name, v.Table)
		if ok {
			if err := k.h.LinkDel(&netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: v.Name}}); err != nil {
				ae.Failed = append(ae.Failed, OpError{Op: "delete VRF " + v.Name + " to change its table", Err: err})
				continue
			}
		} else if l, err := k.h.LinkByName(v.Name); err == nil {
			ae.Failed = append(ae.Failed, OpError{Op: op, Err: fmt.Errorf("a %s device %q exists and is not ours: %w", l.Type(), v.Name, unix.EEXIST)})
			continue
		}
		vrf := &netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: v.Name}, Table: uint32(v.Table)}
		if err := k.h.LinkAdd(vrf); err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: op, Err: err})
			continue
		}
		if err := k.h.LinkSetAlias(vrf, vrfAlias); err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "mark VRF " + v.Name, Err: err})
		}
		if err := k.h.LinkSetUp(vrf); err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "set VRF " + v.Name + " up", Err: err})
			continue
		}
		ae.Applied++
	}
	return nil
}

// pruneVRFs deletes VRF devices of ours that are no longer desired.
func (k *Kernel) pruneVRFs(have, want []VRF, ae *ApplyError) {
	keep := vrfTables(want)
	for _, v := range have {
		if _, ok := keep[v.Name]; ok {
			continue
		}
		if err := k.h.LinkDel(&netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: v.Name}}); err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "delete VRF " + v.Name, Err: err})
			continue
		}
		ae.Applied++
	}
}
