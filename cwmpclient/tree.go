package cwmpclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Store persists small files atomically (board.StateDir satisfies it).
// ReadFile of a file never written returns an error matching
// fs.ErrNotExist.
type Store interface {
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte) error
}

// Param describes one parameter. Registered under a path template where
// "{i}" stands for an instance number, e.g. "Device.IP.Interface.{i}.Name".
// idx passed to the functions holds the instance numbers, outermost first.
type Param struct {
	Type     Type
	Writable bool
	// Default is the value of a stored parameter never set.
	Default string
	// Get returns the live value; nil means the tree stores the value
	// (persisted) and Default applies until it is set. Get runs with the
	// tree locked: it must not call back into the Tree.
	Get func(idx []uint32) (string, error)
	// Validate checks a new value after the type check (fault 9007).
	Validate func(idx []uint32, value string) error
	// MaxLen caps string length in characters (0: no cap).
	MaxLen int
	// Secret parameters read back as the empty string (passwords).
	Secret bool
	// Reboot: a change takes effect after a reboot (SPV Status 1).
	Reboot bool
	// ForcedInform parameters are in every Inform's ParameterList.
	ForcedInform bool
	// ForceActive parameters always have active notification;
	// DenyActive ones refuse it (fast-changing counters, UpTime).
	ForceActive, DenyActive bool
}

// Object configures a multi-instance object, registered as
// "Device.X.Service.{i}.".
type Object struct {
	// Writable: the ACS may AddObject / DeleteObject.
	Writable bool
	// MaxInstances caps AddObject (0: no cap).
	MaxInstances int
	// Instances lists the instances of a table the caller owns (e.g.
	// interfaces); nil means the tree keeps the instances (persisted,
	// numbers never reused).
	Instances func(idx []uint32) []uint32
	// OnAdd / OnDelete are told about (and may veto) instance changes;
	// idx ends with the new or deleted instance number. They run with the
	// tree locked.
	OnAdd, OnDelete func(idx []uint32) error
}

// Change is one parameter change handed to a Committer.
type Change struct {
	Name     string // full name, e.g. "Device.X.Service.2.Name"
	Template string // registered path, e.g. "Device.X.Service.{i}.Name"
	Idx      []uint32
	Old, New string
}

// Values reads the tree while a Committer runs (the tree is locked).
type Values interface {
	// Value reads a parameter (secrets included).
	Value(name string) (string, bool)
	// Instances lists the instance numbers of a multi-instance object
	// ("Device.X.Service."), nil when there is no such object.
	Instances(table string) []uint32
}

// Committer applies validated changes under a path prefix. Commit may
// refuse (the whole SetParameterValues is then rolled back, fault 9002);
// Rollback undoes a Commit that succeeded when a later step failed. Both
// run with the tree locked: use the Values view, not the Tree.
type Committer interface {
	Commit(v Values, changes []Change) error
	Rollback(v Values, changes []Change)
}

type node struct {
	name   string
	parent *node
	kids   []*node
	byName map[string]*node
	param  *Param
	table  *Object // set on a multi-instance object; its one child is "{i}"
}

func (n *node) child(name string) *node { return n.byName[name] }

func (n *node) addChild(name string) *node {
	if c := n.byName[name]; c != nil {
		return c
	}
	c := &node{name: name, parent: n, byName: map[string]*node{}}
	n.kids = append(n.kids, c)
	n.byName[name] = c
	return c
}

type tableState struct {
	Next  uint32   `json:"next"`
	Insts []uint32 `json:"insts"`
}

type attrState struct {
	Notify int      `json:"notify,omitempty"`
	Access []string `json:"access,omitempty"`
}

type committerReg struct {
	prefix string
	c      Committer
}

// Tree is the CPE's parameter tree: schema, stored values, instances,
// attributes and notification state. Safe for concurrent use.
type Tree struct {
	mu         sync.Mutex
	root       *node
	store      Store
	file       string
	values     map[string]string
	tables     map[string]*tableState
	attrs      map[string]attrState
	last       map[string]string // last value seen of notified parameters
	changed    map[string]bool   // names whose change is not yet reported
	paramKey   string
	committers []committerReg
	onActive   func()
	aliases    map[string]string // alias -> canonical name or object path
}

type treeState struct {
	Values       map[string]string      `json:"values"`
	Tables       map[string]*tableState `json:"tables"`
	Attrs        map[string]attrState   `json:"attrs"`
	Last         map[string]string      `json:"last"`
	Changed      []string               `json:"changed,omitempty"`
	ParameterKey string                 `json:"parameterKey"`
}

// NewTree makes an empty tree persisted as file in store (store may be
// nil for a tree that forgets on restart).
func NewTree(store Store, file string) *Tree {
	return &Tree{
		root:   &node{byName: map[string]*node{}},
		store:  store,
		file:   file,
		values: map[string]string{}, tables: map[string]*tableState{},
		attrs: map[string]attrState{}, last: map[string]string{}, changed: map[string]bool{},
		aliases: map[string]string{},
	}
}

// Load reads the persisted state; a missing file is a fresh tree.
func (t *Tree) Load() error {
	if t.store == nil {
		return nil
	}
	b, err := t.store.ReadFile(t.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load parameter tree %s: %w", t.file, err)
	}
	var st treeState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("parse parameter tree %s: %w: %w", t.file, errCorruptState, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.values = orEmpty(st.Values)
	t.tables = orEmpty(st.Tables)
	t.attrs = orEmpty(st.Attrs)
	t.last = orEmpty(st.Last)
	for _, n := range st.Changed {
		t.changed[n] = true
	}
	t.paramKey = st.ParameterKey
	return nil
}

func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

// save persists the state; called with t.mu held.
func (t *Tree) save() error {
	if t.store == nil {
		return nil
	}
	st := treeState{Values: t.values, Tables: t.tables, Attrs: t.attrs, Last: t.last, ParameterKey: t.paramKey}
	for n := range t.changed {
		st.Changed = append(st.Changed, n)
	}
	slices.Sort(st.Changed)
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode parameter tree: %w", err)
	}
	if err := t.store.WriteFile(t.file, b); err != nil {
		return fmt.Errorf("save parameter tree %s: %w", t.file, err)
	}
	return nil
}

// OnActiveNotification sets the function called (outside the tree lock)
// when a parameter with active notification changes.
func (t *Tree) OnActiveNotification(fn func()) {
	t.mu.Lock()
	t.onActive = fn
	t.mu.Unlock()
}

// Register adds a parameter at a path template. Objects on the way are
// created; "{i}" segments need the table registered with RegisterObject
// first.
func (t *Tree) Register(path string, p Param) error {
	if path == "" || strings.HasSuffix(path, ".") {
		return fmt.Errorf("register parameter %q: not a parameter name", path)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	segs := strings.Split(path, ".")
	n, err := t.walkCreate(path, segs[:len(segs)-1])
	if err != nil {
		return err
	}
	leaf := segs[len(segs)-1]
	if c := n.child(leaf); c != nil {
		return fmt.Errorf("register parameter %q: already registered", path)
	}
	if n.table != nil {
		return fmt.Errorf("register parameter %q: parent is a multi-instance object", path)
	}
	pc := p
	n.addChild(leaf).param = &pc
	return nil
}

// RegisterObject declares a multi-instance object ("Device.X.Service.{i}.")
// or a plain object ("Device.X."; o is then ignored).
func (t *Tree) RegisterObject(path string, o Object) error {
	if !strings.HasSuffix(path, ".") {
		return fmt.Errorf("register object %q: object paths end with '.'", path)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	segs := strings.Split(strings.TrimSuffix(path, "."), ".")
	if segs[len(segs)-1] != "{i}" {
		_, err := t.walkCreate(path, segs)
		return err
	}
	n, err := t.walkCreate(path, segs[:len(segs)-1])
	if err != nil {
		return err
	}
	if len(n.kids) > 0 && n.table == nil {
		return fmt.Errorf("register object %q: %s already has parameters", path, n.name)
	}
	oc := o
	n.table = &oc
	n.addChild("{i}")
	return nil
}

func (t *Tree) walkCreate(path string, segs []string) (*node, error) {
	n := t.root
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("register %q: empty path segment", path)
		}
		if s == "{i}" {
			if n.table == nil {
				return nil, fmt.Errorf("register %q: %s is not a registered multi-instance object", path, n.name)
			}
		} else if n.table != nil {
			return nil, fmt.Errorf("register %q: %s is multi-instance, expected {i}", path, n.name)
		}
		c := n.child(s)
		if c == nil {
			c = n.addChild(s)
		} else if c.param != nil {
			return nil, fmt.Errorf("register %q: %s is a parameter", path, s)
		}
		n = c
	}
	return n, nil
}

// AddCommitter routes changes under prefix ("Device.ManagementServer.") to
// c. A change goes to the committer with the longest matching prefix.
func (t *Tree) AddCommitter(prefix string, c Committer) {
	t.mu.Lock()
	t.committers = append(t.committers, committerReg{prefix: prefix, c: c})
	t.mu.Unlock()
}

// Alias lets name stand for target in every RPC: a parameter alias
// ("IPv6Prefix" for "Device.X_ITU-INT_SRv6.IPv6Prefix") or an object alias
// ending with '.' ("SRv6Locator." for "Device.X_ITU-INT_SRv6.Locator."),
// so a controller can use the bare names of Q.Suppl.79 Appendix I. A
// parameter asked for by its alias is answered under the alias.
func (t *Tree) Alias(name, target string) error {
	if name == "" || target == "" || strings.HasSuffix(name, ".") != strings.HasSuffix(target, ".") ||
		strings.Count(strings.TrimSuffix(name, "."), ".") > 0 {
		return fmt.Errorf("alias %q -> %q: want a one-segment name, both parameters or both objects", name, target)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, taken := t.root.byName[strings.TrimSuffix(name, ".")]; taken {
		return fmt.Errorf("alias %q shadows a registered object", name)
	}
	t.aliases[name] = target
	return nil
}

// canonical maps an aliased name to the registered one; with t.mu held.
func (t *Tree) canonical(name string) string {
	if len(t.aliases) == 0 {
		return name
	}
	if a, ok := t.aliases[name]; ok {
		return a
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if a, ok := t.aliases[name[:i+1]]; ok {
			return a + name[i+1:]
		}
	}
	return name
}

// ParameterKey is the key of the last successful SPV/AddObject/DeleteObject.
func (t *Tree) ParameterKey() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paramKey
}

// ---- resolution ----

// loc is a resolved name: the schema node and the instance numbers.
type loc struct {
	n   *node
	idx []uint32
}

// instances lists a table's instances (sorted) at the given indexes.
func (t *Tree) instances(n *node, tablePath string, idx []uint32) []uint32 {
	if n.table.Instances != nil {
		l := n.table.Instances(idx)
		slices.Sort(l)
		return l
	}
	if ts := t.tables[tablePath]; ts != nil {
		return ts.Insts
	}
	return nil
}

// resolve finds name ("A.B.C" parameter, "A.B." object, "" root).
func (t *Tree) resolve(name string) (loc, bool) {
	if name == "" {
		return loc{n: t.root}, true
	}
	partial := strings.HasSuffix(name, ".")
	segs := strings.Split(strings.TrimSuffix(name, "."), ".")
	n := t.root
	var idx []uint32
	pathLen := 0
	for _, s := range segs {
		if n.param != nil {
			return loc{}, false
		}
		if n.table != nil {
			num, err := strconv.ParseUint(s, 10, 32)
			if err != nil || num == 0 || s[0] == '0' {
				return loc{}, false
			}
			if _, found := slices.BinarySearch(t.instances(n, name[:pathLen], idx), uint32(num)); !found {
				return loc{}, false
			}
			idx = append(idx, uint32(num))
			n = n.child("{i}")
		} else {
			c := n.child(s)
			if c == nil || s == "{i}" {
				return loc{}, false
			}
			n = c
		}
		pathLen += len(s) + 1
	}
	if partial == (n.param != nil) {
		return loc{}, false
	}
	return loc{n: n, idx: idx}, true
}

// walk visits every parameter (and, with objects, every object) under the
// object l named prefix (ending with '.', or "" for the root), depth first
// in registration order and instance order.
func (t *Tree) walk(l loc, prefix string, objects bool, fn func(name string, n *node, idx []uint32)) {
	n := l.n
	if n.table != nil {
		inst := n.child("{i}")
		for _, i := range t.instances(n, prefix, l.idx) {
			p := prefix + strconv.FormatUint(uint64(i), 10) + "."
			idx := append(slices.Clip(l.idx), i)
			if objects {
				fn(p, inst, idx)
			}
			t.walk(loc{n: inst, idx: idx}, p, objects, fn)
		}
		return
	}
	for _, c := range n.kids {
		if c.param != nil {
			fn(prefix+c.name, c, l.idx)
			continue
		}
		p := prefix + c.name + "."
		if objects {
			fn(p, c, l.idx)
		}
		t.walk(loc{n: c, idx: l.idx}, p, objects, fn)
	}
}

// value reads a parameter; called with t.mu held.
func (t *Tree) value(name string, p *Param, idx []uint32) (string, error) {
	if p.Get != nil {
		v, err := p.Get(idx)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		return v, nil
	}
	if v, ok := t.values[name]; ok {
		return v, nil
	}
	return p.Default, nil
}

// valueOf reads a parameter by name; called with t.mu held.
func (t *Tree) valueOf(name string) (string, bool) {
	name = t.canonical(name)
	l, ok := t.resolve(name)
	if !ok || l.n.param == nil {
		return "", false
	}
	v, err := t.value(name, l.n.param, l.idx)
	return v, err == nil
}

// lockedView is the Values view handed to committers.
type lockedView struct{ t *Tree }

func (v lockedView) Value(name string) (string, bool) { return v.t.valueOf(name) }

func (v lockedView) Instances(table string) []uint32 { return v.t.instancesOf(table) }

// instancesOf lists a table's instances by path; with t.mu held.
func (t *Tree) instancesOf(table string) []uint32 {
	table = t.canonical(table)
	l, ok := t.resolve(table)
	if !ok || l.n.table == nil {
		return nil
	}
	return slices.Clone(t.instances(l.n, table, l.idx))
}

// Instances lists the instance numbers of a multi-instance object
// ("Device.X.Service."), nil when there is no such object.
func (t *Tree) Instances(table string) []uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.instancesOf(table)
}

// ---- RPC operations ----

// GetValues implements GetParameterValues: full names and partial paths
// ("" is the whole tree). An unknown name is fault 9005.
func (t *Tree) GetValues(names []string) ([]ParameterValue, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ParameterValue
	var werr error
	for _, asked := range names {
		name := t.canonical(asked)
		l, ok := t.resolve(name)
		if !ok {
			return nil, NewFault(FaultInvalidName, "no such parameter %q", asked)
		}
		emit := func(full string, n *node, idx []uint32) {
			v, err := t.value(full, n.param, idx)
			if err != nil && werr == nil {
				werr = err
			}
			if n.param.Secret {
				v = ""
			}
			if full == name {
				full = asked
			}
			out = append(out, ParameterValue{Name: full, Value: v, Type: n.param.Type.XSD()})
		}
		if l.n.param != nil {
			emit(name, l.n, l.idx)
		} else {
			if out == nil {
				out = make([]ParameterValue, 0, 256)
			}
			t.walk(l, name, false, emit)
		}
		if werr != nil {
			return nil, NewFault(FaultInternal, "%v", werr)
		}
	}
	return out, nil
}

// objectWritable: a table is writable when the ACS may add to it, an
// instance when the ACS may delete it.
func objectWritable(n *node) bool {
	if n.table != nil {
		return n.table.Writable
	}
	if n.name == "{i}" && n.parent != nil && n.parent.table != nil {
		return n.parent.table.Writable
	}
	return false
}

// GetNames implements GetParameterNames.
func (t *Tree) GetNames(path string, nextLevel bool) ([]ParameterInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	asked := path
	path = t.canonical(path)
	l, ok := t.resolve(path)
	if !ok {
		return nil, NewFault(FaultInvalidName, "no such parameter or object %q", asked)
	}
	if l.n.param != nil {
		if nextLevel {
			return nil, NewFault(FaultInvalidArguments, "NextLevel true with parameter name %q", asked)
		}
		return []ParameterInfo{{Name: asked, Writable: l.n.param.Writable}}, nil
	}
	var out []ParameterInfo
	if path != "" && !nextLevel {
		out = append(out, ParameterInfo{Name: path, Writable: objectWritable(l.n)})
	}
	if nextLevel {
		// Only the direct children of the object.
		if l.n.table != nil {
			inst := l.n.child("{i}")
			for _, i := range t.instances(l.n, path, l.idx) {
				out = append(out, ParameterInfo{Name: path + strconv.FormatUint(uint64(i), 10) + ".", Writable: objectWritable(inst)})
			}
			return out, nil
		}
		for _, c := range l.n.kids {
			if c.param != nil {
				out = append(out, ParameterInfo{Name: path + c.name, Writable: c.param.Writable})
			} else {
				out = append(out, ParameterInfo{Name: path + c.name + ".", Writable: objectWritable(c)})
			}
		}
		return out, nil
	}
	t.walk(l, path, true, func(name string, n *node, _ []uint32) {
		if n.param != nil {
			out = append(out, ParameterInfo{Name: name, Writable: n.param.Writable})
		} else {
			out = append(out, ParameterInfo{Name: name, Writable: objectWritable(n)})
		}
	})
	return out, nil
}

// template rebuilds the registered path of a node.
func template(n *node) string {
	var segs []string
	for ; n != nil && n.parent != nil; n = n.parent {
		segs = append(segs, n.name)
	}
	slices.Reverse(segs)
	return strings.Join(segs, ".")
}

type pendingSet struct {
	ch    Change
	p     *Param
	asked string // the name as the request wrote it (maybe an alias)
}

// askedNames returns f with each per-parameter fault under the name the ACS
// used for that parameter (an Appendix I alias stays an alias), as TR-069
// wants the fault to name what was in the request.
func askedNames(f *Fault, sets []pendingSet) *Fault {
	out := *f
	out.SPV = slices.Clone(f.SPV)
	for i, e := range out.SPV {
		for _, s := range sets {
			if s.ch.Name == e.Name {
				out.SPV[i].Name = s.asked
				break
			}
		}
	}
	return &out
}

// SetValues implements SetParameterValues atomically: every parameter is
// checked first (one 9003 fault listing each bad one and nothing applied),
// then all are applied and committed; a failing commit rolls every step
// back (9002). status is 1 when a change needs a reboot.
func (t *Tree) SetValues(params []ParameterValue, key string) (status int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var faults []SPVFault
	var sets []pendingSet
	seen := make(map[string]bool, len(params))
	for _, pv := range params {
		fault := func(code int, format string, args ...any) {
			faults = append(faults, SPVFault{Name: pv.Name, Code: code, String: fmt.Sprintf(format, args...)})
		}
		name := t.canonical(pv.Name)
		if seen[name] {
			fault(FaultInvalidArguments, "parameter %q appears twice", pv.Name)
			continue
		}
		seen[name] = true
		l, ok := t.resolve(name)
		if !ok || l.n.param == nil {
			fault(FaultInvalidName, "no such parameter %q", pv.Name)
			continue
		}
		p := l.n.param
		if !p.Writable {
			fault(FaultNotWritable, "%s is read-only", pv.Name)
			continue
		}
		if pv.Type != "" && pv.Type != "string" && pv.Type != "anySimpleType" {
			if ty, known := typeByXSD(pv.Type); !known || !compatible(ty, p.Type) {
				fault(FaultInvalidType, "%s is %s, got xsd:%s", pv.Name, p.Type.XSD(), pv.Type)
				continue
			}
		}
		v, err := p.Type.Normalize(pv.Value)
		if err != nil {
			fault(FaultInvalidValue, "%s: %v", pv.Name, err)
			continue
		}
		if p.MaxLen > 0 && len([]rune(v)) > p.MaxLen {
			fault(FaultInvalidValue, "%s: longer than %d characters", pv.Name, p.MaxLen)
			continue
		}
		if p.Validate != nil {
			if err := p.Validate(l.idx, v); err != nil {
				fault(FaultInvalidValue, "%s: %v", pv.Name, err)
				continue
			}
		}
		old, _ := t.value(name, p, l.idx)
		sets = append(sets, pendingSet{ch: Change{Name: name, Template: template(l.n), Idx: l.idx, Old: old, New: v}, p: p, asked: pv.Name})
	}
	if len(faults) > 0 {
		return 0, &Fault{Code: FaultInvalidArguments, String: faultStrings[FaultInvalidArguments], SPV: faults}
	}
	prevKey := t.paramKey
	oldStored := make(map[string]*string, len(sets))
	for _, s := range sets {
		if s.p.Get != nil {
			continue // live parameter: its committer holds the value
		}
		if v, ok := t.values[s.ch.Name]; ok {
			oldStored[s.ch.Name] = &v
		} else {
			oldStored[s.ch.Name] = nil
		}
		t.values[s.ch.Name] = s.ch.New
	}
	restore := func() {
		for name, v := range oldStored {
			if v == nil {
				delete(t.values, name)
			} else {
				t.values[name] = *v
			}
		}
		t.paramKey = prevKey
	}
	groups := t.group(sets)
	for i, g := range groups {
		if err := g.c.Commit(lockedView{t}, g.changes); err != nil {
			for j := i - 1; j >= 0; j-- {
				groups[j].c.Rollback(lockedView{t}, groups[j].changes)
			}
			restore()
			// A committer that judged the values together (a SID that does
			// not match, two services on one function) answers with its own
			// fault, naming the parameters; anything else is internal.
			var f *Fault
			if errors.As(err, &f) {
				return 0, askedNames(f, sets)
			}
			return 0, NewFault(FaultInternal, "commit %s: %v", g.changes[0].Name, err)
		}
	}
	t.paramKey = key
	for _, s := range sets {
		if _, notified := t.last[s.ch.Name]; notified {
			// Changes the ACS makes itself are not notified back to it.
			t.last[s.ch.Name] = s.ch.New
			delete(t.changed, s.ch.Name)
		}
		if s.p.Reboot {
			status = 1
		}
	}
	if err := t.save(); err != nil {
		for j := len(groups) - 1; j >= 0; j-- {
			groups[j].c.Rollback(lockedView{t}, groups[j].changes)
		}
		restore()
		return 0, NewFault(FaultInternal, "%v", err)
	}
	return status, nil
}

// compatible: an ACS may send a narrower integer type than declared.
func compatible(sent, want Type) bool {
	if sent == want {
		return true
	}
	switch want {
	case TypeUnsignedLong:
		return sent == TypeUnsignedInt
	case TypeLong:
		return sent == TypeInt || sent == TypeUnsignedInt
	}
	return false
}

type commitGroup struct {
	c       Committer
	changes []Change
}

// group assigns each change to the committer with the longest matching
// prefix, keeping the first-seen order of committers.
func (t *Tree) group(sets []pendingSet) []commitGroup {
	var groups []commitGroup
	for _, s := range sets {
		best := -1
		for i, r := range t.committers {
			if strings.HasPrefix(s.ch.Name, r.prefix) && (best < 0 || len(r.prefix) > len(t.committers[best].prefix)) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		c := t.committers[best].c
		gi := slices.IndexFunc(groups, func(g commitGroup) bool { return g.c == c })
		if gi < 0 {
			groups = append(groups, commitGroup{c: c})
			gi = len(groups) - 1
		}
		groups[gi].changes = append(groups[gi].changes, s.ch)
	}
	return groups
}

// ---- objects ----

// AddObject creates an instance of the multi-instance object name
// ("Device.X.Service.") and returns its number; numbers are never reused.
func (t *Tree) AddObject(name, key string) (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	name = t.canonical(name)
	l, ok := t.resolve(name)
	if !ok || name == "" || l.n.table == nil || !l.n.table.Writable || l.n.table.Instances != nil {
		return 0, NewFault(FaultInvalidName, "%q is not a multi-instance object the ACS may add to", name)
	}
	ts := t.tables[name]
	if ts == nil {
		ts = &tableState{Next: 1}
		t.tables[name] = ts
	}
	if m := l.n.table.MaxInstances; m > 0 && len(ts.Insts) >= m {
		return 0, NewFault(FaultResourcesExceeded, "%s already has %d instances", name, m)
	}
	if ts.Next == 0 {
		return 0, NewFault(FaultResourcesExceeded, "%s instance numbers exhausted", name)
	}
	inst := ts.Next
	idx := append(slices.Clip(l.idx), inst)
	if h := l.n.table.OnAdd; h != nil {
		if err := h(idx); err != nil {
			return 0, AsFault(err)
		}
	}
	prev := *ts
	ts.Next++
	ts.Insts = append(slices.Clip(ts.Insts), inst)
	prevKey := t.paramKey
	t.paramKey = key
	if err := t.save(); err != nil {
		*ts = prev
		t.paramKey = prevKey
		if h := l.n.table.OnDelete; h != nil {
			_ = h(idx) // best effort undo of OnAdd; the fault reports the save error
		}
		return 0, NewFault(FaultInternal, "%v", err)
	}
	return inst, nil
}

// DeleteObject removes the instance name ("Device.X.Service.3.") and all
// state under it.
func (t *Tree) DeleteObject(name, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	name = t.canonical(name)
	l, ok := t.resolve(name)
	if !ok || !strings.HasSuffix(name, ".") || l.n.name != "{i}" {
		return NewFault(FaultInvalidName, "%q is not an object instance", name)
	}
	table := l.n.parent.table
	if !table.Writable || table.Instances != nil {
		return NewFault(FaultRequestDenied, "instances of %s cannot be deleted by the ACS", template(l.n.parent))
	}
	inst := l.idx[len(l.idx)-1]
	tablePath := strings.TrimSuffix(strings.TrimSuffix(name, "."), strconv.FormatUint(uint64(inst), 10))
	if table.OnDelete != nil {
		if err := table.OnDelete(l.idx); err != nil {
			return AsFault(err)
		}
	}
	ts := t.tables[tablePath]
	ts.Insts = slices.DeleteFunc(slices.Clone(ts.Insts), func(i uint32) bool { return i == inst })
	for _, m := range []map[string]string{t.values, t.last} {
		for k := range m {
			if strings.HasPrefix(k, name) {
				delete(m, k)
			}
		}
	}
	for k := range t.attrs {
		if strings.HasPrefix(k, name) {
			delete(t.attrs, k)
		}
	}
	for k := range t.tables {
		if strings.HasPrefix(k, name) {
			delete(t.tables, k)
		}
	}
	for k := range t.changed {
		if strings.HasPrefix(k, name) {
			delete(t.changed, k)
		}
	}
	t.paramKey = key
	if err := t.save(); err != nil {
		// The instance is gone in memory and the hook ran; report the
		// failure so the ACS knows the deletion may not survive a reboot.
		return NewFault(FaultInternal, "%v", err)
	}
	return nil
}

// ---- attributes and notification ----

func (t *Tree) notifyOf(name string, p *Param) int {
	if p.ForceActive {
		return 2
	}
	return t.attrs[name].Notify
}

// GetAttributes implements GetParameterAttributes.
func (t *Tree) GetAttributes(names []string) ([]ParameterAttribute, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ParameterAttribute
	for _, asked := range names {
		name := t.canonical(asked)
		l, ok := t.resolve(name)
		if !ok {
			return nil, NewFault(FaultInvalidName, "no such parameter %q", asked)
		}
		emit := func(full string, n *node, _ []uint32) {
			a := t.attrs[full]
			shown := full
			if full == name {
				shown = asked
			}
			out = append(out, ParameterAttribute{Name: shown, Notification: t.notifyOf(full, n.param), AccessList: slices.Clone(a.Access)})
		}
		if l.n.param != nil {
			emit(name, l.n, l.idx)
		} else {
			t.walk(l, name, false, emit)
		}
	}
	return out, nil
}

type attrTarget struct {
	name string
	n    *node
	idx  []uint32
	s    SetParameterAttributesStruct
}

// SetAttributes implements SetParameterAttributes, all or nothing. A
// partial path applies to every parameter under it that accepts the
// change; a full name that refuses it is fault 9009.
func (t *Tree) SetAttributes(list []SetParameterAttributesStruct) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var targets []attrTarget
	for _, s := range list {
		if s.NotificationChange && (s.Notification < 0 || s.Notification > 6) {
			return NewFault(FaultInvalidArguments, "%s: Notification %d out of range", s.Name, s.Notification)
		}
		if s.AccessListChange {
			for _, a := range s.AccessList {
				if a != "Subscriber" {
					return NewFault(FaultInvalidArguments, "%s: AccessList entry %q is not Subscriber", s.Name, a)
				}
			}
		}
		name := t.canonical(s.Name)
		l, ok := t.resolve(name)
		if !ok {
			return NewFault(FaultInvalidName, "no such parameter %q", s.Name)
		}
		refuse := func(p *Param) string {
			if !s.NotificationChange {
				return ""
			}
			switch {
			case s.Notification > 2:
				return "lightweight notification is not supported"
			case p.ForceActive && s.Notification != 2:
				return "notification is forced active"
			case p.DenyActive && s.Notification == 2:
				return "active notification is not allowed"
			}
			return ""
		}
		if l.n.param != nil {
			if why := refuse(l.n.param); why != "" {
				return NewFault(FaultNotifyRejected, "%s: %s", s.Name, why)
			}
			targets = append(targets, attrTarget{name, l.n, l.idx, s})
			continue
		}
		t.walk(l, name, false, func(full string, n *node, idx []uint32) {
			if refuse(n.param) == "" {
				targets = append(targets, attrTarget{full, n, idx, s})
			}
		})
	}
	prevAttrs, prevLast, prevChanged := cloneMap(t.attrs), cloneMap(t.last), cloneMap(t.changed)
	for _, tg := range targets {
		a := t.attrs[tg.name]
		if tg.s.AccessListChange {
			a.Access = slices.Clone(tg.s.AccessList)
		}
		if tg.s.NotificationChange && !tg.n.param.ForceActive {
			a.Notify = tg.s.Notification
			if a.Notify == 0 {
				delete(t.last, tg.name)
				delete(t.changed, tg.name)
			} else if v, err := t.value(tg.name, tg.n.param, tg.idx); err == nil {
				t.last[tg.name] = v
			}
		}
		if a.Notify == 0 && len(a.Access) == 0 {
			delete(t.attrs, tg.name)
		} else {
			t.attrs[tg.name] = a
		}
	}
	if err := t.save(); err != nil {
		t.attrs, t.last, t.changed = prevAttrs, prevLast, prevChanged
		return NewFault(FaultInternal, "%v", err)
	}
	return nil
}

func cloneMap[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// CheckNotifications compares every notified parameter with the value
// last seen, queues the changed ones for the next Inform, and calls the
// active-notification function when an active one changed. Call it
// periodically and whenever the device changed something.
func (t *Tree) CheckNotifications() error {
	t.mu.Lock()
	active, dirty := false, false
	var firstErr error
	visit := func(name string, n *node, idx []uint32) {
		mode := t.notifyOf(name, n.param)
		if mode == 0 || n.param.Secret {
			// A secret reads back empty: it never changes for the ACS,
			// and its value must not ride an Inform.
			return
		}
		v, err := t.value(name, n.param, idx)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		old, seen := t.last[name]
		if seen && old == v {
			return
		}
		// A first sighting is persisted too: a forced-active value that
		// changes across a reboot (SoftwareVersion after an upgrade) is
		// then still noticed.
		t.last[name] = v
		dirty = true
		if !seen {
			return
		}
		t.changed[name] = true
		if mode == 2 {
			active = true
		}
	}
	// Parameters with a notification attribute, plus forced-active ones.
	for name := range t.attrs {
		if l, ok := t.resolve(name); ok && l.n.param != nil {
			visit(name, l.n, l.idx)
		} else if !ok {
			delete(t.attrs, name) // the instance is gone
		}
	}
	t.walk(loc{n: t.root}, "", false, func(name string, n *node, idx []uint32) {
		if n.param.ForceActive {
			visit(name, n, idx)
		}
	})
	var err error
	if dirty {
		// Only on news: flash on a CPE must not be rewritten every check.
		err = t.save()
	}
	fn := t.onActive
	t.mu.Unlock()
	if active && fn != nil {
		fn()
	}
	return errors.Join(firstErr, err)
}

// SetLocal changes a stored parameter on the device's behalf (not the
// ACS's): no validation of writability, and notification applies.
func (t *Tree) SetLocal(name, value string) error {
	t.mu.Lock()
	name = t.canonical(name)
	l, ok := t.resolve(name)
	if !ok || l.n.param == nil || l.n.param.Get != nil {
		t.mu.Unlock()
		return fmt.Errorf("set %q: no such stored parameter", name)
	}
	v, err := l.n.param.Type.Normalize(value)
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("set %q: %w", name, err)
	}
	t.values[name] = v
	err = t.save()
	t.mu.Unlock()
	return errors.Join(err, t.CheckNotifications())
}

// PendingNotifications returns the changed notified parameters to put in
// the next Inform, with their current values.
func (t *Tree) PendingNotifications() []ParameterValue {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.changed))
	for n := range t.changed {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]ParameterValue, 0, len(names))
	for _, name := range names {
		l, ok := t.resolve(name)
		if !ok || l.n.param == nil {
			delete(t.changed, name)
			continue
		}
		v, err := t.value(name, l.n.param, l.idx)
		if err != nil {
			continue
		}
		out = append(out, ParameterValue{Name: name, Value: v, Type: l.n.param.Type.XSD()})
	}
	return out
}

// AckNotifications clears names reported in an Inform the ACS accepted.
func (t *Tree) AckNotifications(names []string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		delete(t.changed, n)
	}
	return t.save()
}

// ForcedInform returns the values every Inform carries.
func (t *Tree) ForcedInform() []ParameterValue {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ParameterValue
	t.walk(loc{n: t.root}, "", false, func(name string, n *node, idx []uint32) {
		if !n.param.ForcedInform {
			return
		}
		v, err := t.value(name, n.param, idx)
		if err != nil {
			return
		}
		out = append(out, ParameterValue{Name: name, Value: v, Type: n.param.Type.XSD()})
	})
	return out
}
