package cwmpclient

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// memStore is an in-memory Store.
type memStore struct {
	mu        sync.Mutex
	files     map[string][]byte
	failWrite error
	writes    int
}

func newMemStore() *memStore { return &memStore{files: map[string][]byte{}} }

func (m *memStore) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return slices.Clone(b), nil
}

func (m *memStore) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite != nil {
		return m.failWrite
	}
	m.files[name] = slices.Clone(data)
	m.writes++
	return nil
}

// recCommitter records commits and can fail.
type recCommitter struct {
	commits, rollbacks [][]Change
	fail               error
}

func (c *recCommitter) Commit(_ Values, ch []Change) error {
	if c.fail != nil {
		return c.fail
	}
	c.commits = append(c.commits, ch)
	return nil
}

func (c *recCommitter) Rollback(_ Values, ch []Change) { c.rollbacks = append(c.rollbacks, ch) }

// testTree builds a small model:
//
//	Device.Info.Name (ro string, forced inform), Device.Info.Up (ro live, deny active)
//	Device.X.Enable (rw bool), Device.X.Count (rw unsignedInt, <= 100), Device.X.Reboot (rw, reboot)
//	Device.X.Secret (rw secret)
//	Device.X.Svc.{i}.Name (rw), Device.X.Svc.{i}.Port (rw unsignedInt)
//	Device.X.If.{i}.Addr (ro, instances from the caller)
func testTree(t testing.TB, store Store) (*Tree, *int) {
	t.Helper()
	up := new(int)
	tr := NewTree(store, "tree.json")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.Register("Device.Info.Name", Param{Default: "cpe", ForcedInform: true}))
	must(tr.Register("Device.Info.Up", Param{Type: TypeUnsignedInt, DenyActive: true,
		Get: func([]uint32) (string, error) { return strconv.Itoa(*up), nil }}))
	must(tr.Register("Device.X.Enable", Param{Type: TypeBoolean, Writable: true, Default: "false"}))
	must(tr.Register("Device.X.Count", Param{Type: TypeUnsignedInt, Writable: true, Default: "1",
		Validate: func(_ []uint32, v string) error {
			if n, _ := strconv.Atoi(v); n > 100 {
				return errors.New("over 100")
			}
			return nil
		}}))
	must(tr.Register("Device.X.Reboot", Param{Writable: true, Reboot: true}))
	must(tr.Register("Device.X.Secret", Param{Writable: true, Secret: true}))
	must(tr.RegisterObject("Device.X.Svc.{i}.", Object{Writable: true, MaxInstances: 3}))
	must(tr.Register("Device.X.Svc.{i}.Name", Param{Writable: true, MaxLen: 8}))
	must(tr.Register("Device.X.Svc.{i}.Port", Param{Type: TypeUnsignedInt, Writable: true, Default: "0"}))
	must(tr.RegisterObject("Device.X.If.{i}.", Object{Instances: func([]uint32) []uint32 { return []uint32{4, 2} }}))
	must(tr.Register("Device.X.If.{i}.Addr", Param{Get: func(idx []uint32) (string, error) {
		return fmt.Sprintf("2001:db8::%d", idx[0]), nil
	}}))
	must(tr.Load())
	return tr, up
}

func faultCode(err error) int {
	var f *Fault
	if errors.As(err, &f) {
		return f.Code
	}
	return -1
}

func names[T any](l []T, name func(T) string) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = name(x)
	}
	return out
}

func TestRegisterErrors(t *testing.T) {
	tr := NewTree(nil, "")
	for _, tc := range []struct {
		path string
		obj  bool
	}{
		{"Device.A.", false}, {"", false}, {"Device.T.{i}.P", false}, {"Device..P", false}, {"Device.A", true},
	} {
		var err error
		if tc.obj {
			err = tr.RegisterObject(tc.path, Object{})
		} else {
			err = tr.Register(tc.path, Param{})
		}
		if err == nil {
			t.Errorf("register %q accepted", tc.path)
		}
	}
	if err := tr.Register("Device.P", Param{}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Register("Device.P", Param{}); err == nil {
		t.Error("duplicate accepted")
	}
	if err := tr.Register("Device.P.Q", Param{}); err == nil {
		t.Error("parameter under a parameter accepted")
	}
}

func TestGetValuesAndNames(t *testing.T) {
	tr, up := testTree(t, nil)
	*up = 42
	if _, err := tr.AddObject("Device.X.Svc.", "k"); err != nil {
		t.Fatal(err)
	}
	vals, err := tr.GetValues([]string{"Device.Info.", "Device.X.If.", "Device.X.Secret"})
	if err != nil {
		t.Fatal(err)
	}
	want := []ParameterValue{
		{"Device.Info.Name", "cpe", "string"}, {"Device.Info.Up", "42", "unsignedInt"},
		{"Device.X.If.2.Addr", "2001:db8::2", "string"}, {"Device.X.If.4.Addr", "2001:db8::4", "string"},
		{"Device.X.Secret", "", "string"},
	}
	if !slices.Equal(vals, want) {
		t.Errorf("GPV = %v, want %v", vals, want)
	}
	all, err := tr.GetValues([]string{""})
	if err != nil || len(all) != 10 {
		t.Errorf("whole tree: %d values, %v", len(all), err)
	}
	for _, bad := range []string{"Device.Nope", "Device.X.If.3.", "Device.X.If.03.Addr", "Device.X.Enable.", "Device.X", "Device.X.Svc.{i}.Name"} {
		if _, err := tr.GetValues([]string{bad}); faultCode(err) != FaultInvalidName {
			t.Errorf("GPV %q: %v, want 9005", bad, err)
		}
	}

	gpn := func(path string, next bool) ([]string, error) {
		l, err := tr.GetNames(path, next)
		return names(l, func(p ParameterInfo) string { return fmt.Sprintf("%s:%v", p.Name, p.Writable) }), err
	}
	for _, tc := range []struct {
		path string
		next bool
		want []string
	}{
		{"", true, []string{"Device.:false"}},
		{"Device.X.", true, []string{"Device.X.Enable:true", "Device.X.Count:true", "Device.X.Reboot:true", "Device.X.Secret:true", "Device.X.Svc.:true", "Device.X.If.:false"}},
		{"Device.X.Svc.", true, []string{"Device.X.Svc.1.:true"}},
		{"Device.X.Svc.", false, []string{"Device.X.Svc.:true", "Device.X.Svc.1.:true", "Device.X.Svc.1.Name:true", "Device.X.Svc.1.Port:true"}},
		{"Device.X.If.4.", false, []string{"Device.X.If.4.:false", "Device.X.If.4.Addr:false"}},
		{"Device.Info.Up", false, []string{"Device.Info.Up:false"}},
	} {
		got, err := gpn(tc.path, tc.next)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("GPN(%q,%v) = %v %v, want %v", tc.path, tc.next, got, err, tc.want)
		}
	}
	if got, _ := gpn("", false); len(got) != 18 || got[0] != "Device.:false" {
		t.Errorf("GPN whole tree = %d names %v", len(got), got)
	}
	if _, err := gpn("Device.Info.Up", true); faultCode(err) != FaultInvalidArguments {
		t.Errorf("GPN param with NextLevel: %v, want 9003", err)
	}
	if _, err := gpn("Device.Nope.", false); faultCode(err) != FaultInvalidName {
		t.Errorf("GPN unknown: %v, want 9005", err)
	}
}

func TestSetValuesAtomic(t *testing.T) {
	store := newMemStore()
	tr, _ := testTree(t, store)
	c := &recCommitter{}
	tr.AddCommitter("Device.X.", c)
	_, err := tr.SetValues([]ParameterValue{
		{Name: "Device.X.Enable", Value: "1"},
		{Name: "Device.Nope", Value: "1"},
		{Name: "Device.Info.Name", Value: "x"},
		{Name: "Device.X.Count", Value: "abc"},
		{Name: "Device.X.Count", Value: "5"},
		{Name: "Device.X.Reboot", Value: "5", Type: "boolean"},
		{Name: "Device.X.Secret", Value: "7", Type: "unsignedInt"},
	}, "key1")
	var f *Fault
	if !errors.As(err, &f) || f.Code != FaultInvalidArguments {
		t.Fatalf("err = %v, want 9003", err)
	}
	gotCodes := names(f.SPV, func(s SPVFault) string { return fmt.Sprintf("%s=%d", s.Name, s.Code) })
	wantCodes := []string{"Device.Nope=9005", "Device.Info.Name=9008", "Device.X.Count=9007", "Device.X.Count=9003", "Device.X.Reboot=9006", "Device.X.Secret=9006"}
	if !slices.Equal(gotCodes, wantCodes) {
		t.Errorf("SPV faults = %v, want %v", gotCodes, wantCodes)
	}
	if v, _ := tr.GetValues([]string{"Device.X.Enable"}); v[0].Value != "false" || len(c.commits) != 0 || tr.ParameterKey() != "" {
		t.Errorf("something applied after a fault: %v commits=%d key=%q", v, len(c.commits), tr.ParameterKey())
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Count", Value: "101"}}, "k"); faultCode(err) != FaultInvalidArguments {
		t.Errorf("validator: %v", err)
	}

	st, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Enable", Value: "1", Type: "boolean"}, {Name: "Device.X.Count", Value: "7"}}, "key2")
	if err != nil || st != 0 {
		t.Fatalf("SPV: %d %v", st, err)
	}
	if len(c.commits) != 1 || len(c.commits[0]) != 2 || fmt.Sprint(c.commits[0][0]) != fmt.Sprint(Change{Name: "Device.X.Enable", Template: "Device.X.Enable", Old: "false", New: "true"}) {
		t.Errorf("commits = %+v", c.commits)
	}
	if st, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Reboot", Value: "r"}}, "key3"); st != 1 || err != nil {
		t.Errorf("reboot param: status %d %v", st, err)
	}

	// A failing commit rolls back every committer and the stored values.
	other := &recCommitter{}
	tr.AddCommitter("Device.X.Svc.", other)
	if _, err := tr.AddObject("Device.X.Svc.", "k"); err != nil {
		t.Fatal(err)
	}
	other.fail = errors.New("dataplane refused")
	_, err = tr.SetValues([]ParameterValue{{Name: "Device.X.Count", Value: "9"}, {Name: "Device.X.Svc.1.Port", Value: "80"}}, "key4")
	if faultCode(err) != FaultInternal {
		t.Fatalf("err = %v, want 9002", err)
	}
	v, _ := tr.GetValues([]string{"Device.X.Count", "Device.X.Svc.1.Port"})
	if v[0].Value != "7" || v[1].Value != "0" || len(c.rollbacks) != 1 || tr.ParameterKey() != "k" {
		t.Errorf("after rollback: %v rollbacks=%d key=%q", v, len(c.rollbacks), tr.ParameterKey())
	}

	// A committer that judges the values together answers with its own
	// fault, per parameter; the rollback is the same.
	other.fail = &Fault{Code: FaultInvalidArguments, String: "Invalid arguments",
		SPV: []SPVFault{{Name: "Device.X.Svc.1.Port", Code: FaultInvalidValue, String: "port 80 is taken by Svc 2"}}}
	_, err = tr.SetValues([]ParameterValue{{Name: "Device.X.Count", Value: "9"}, {Name: "Device.X.Svc.1.Port", Value: "80"}}, "key4")
	if f := AsFault(err); f == nil || f.Code != FaultInvalidArguments || len(f.SPV) != 1 || f.SPV[0].Name != "Device.X.Svc.1.Port" {
		t.Fatalf("committer fault = %v, want its own 9003 with the per-parameter fault", err)
	}
	if v, _ := tr.GetValues([]string{"Device.X.Count"}); v[0].Value != "7" || len(c.rollbacks) != 2 {
		t.Errorf("after a committer fault: Count=%s rollbacks=%d", v[0].Value, len(c.rollbacks))
	}

	// Asked through an alias, the fault names the alias, as the request did.
	if err := tr.Alias("SvcPort", "Device.X.Svc.1.Port"); err != nil {
		t.Fatal(err)
	}
	_, err = tr.SetValues([]ParameterValue{{Name: "SvcPort", Value: "80"}}, "key4")
	if f := AsFault(err); f == nil || len(f.SPV) != 1 || f.SPV[0].Name != "SvcPort" {
		t.Fatalf("committer fault through an alias = %v, want it to name SvcPort", err)
	}

	// A failing save rolls back too.
	other.fail = nil
	store.failWrite = errors.New("disk full")
	if _, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Count", Value: "10"}}, "key5"); faultCode(err) != FaultInternal {
		t.Errorf("save failure: %v", err)
	}
	store.failWrite = nil
	if v, _ := tr.GetValues([]string{"Device.X.Count"}); v[0].Value != "7" {
		t.Errorf("value after failed save = %s", v[0].Value)
	}

	// Persisted: a new tree on the same store sees the values and key.
	tr2, _ := testTree(t, store)
	if v, _ := tr2.GetValues([]string{"Device.X.Count", "Device.X.Enable"}); v[0].Value != "7" || v[1].Value != "true" || tr2.ParameterKey() != "k" {
		t.Errorf("reloaded: %v key %q", v, tr2.ParameterKey())
	}
}

func TestObjects(t *testing.T) {
	store := newMemStore()
	tr, _ := testTree(t, store)
	for i := uint32(1); i <= 3; i++ {
		n, err := tr.AddObject("Device.X.Svc.", "a")
		if err != nil || n != i {
			t.Fatalf("add %d: %d %v", i, n, err)
		}
	}
	if _, err := tr.AddObject("Device.X.Svc.", "a"); faultCode(err) != FaultResourcesExceeded {
		t.Errorf("over max: %v", err)
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Svc.2.Name", Value: "two"}}, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Svc.2.Name", Value: "ninechars"}}, "b"); faultCode(err) != FaultInvalidArguments {
		t.Errorf("MaxLen: %v", err)
	}
	if err := tr.DeleteObject("Device.X.Svc.2.", "c"); err != nil || tr.ParameterKey() != "c" {
		t.Fatal(err)
	}
	for _, bad := range []string{"Device.X.Svc.2.", "Device.X.Svc.", "Device.X.If.2.", "Device.X.Enable"} {
		if err := tr.DeleteObject(bad, "d"); err == nil {
			t.Errorf("delete %q accepted", bad)
		}
	}
	for _, bad := range []string{"Device.X.If.", "Device.X.", "Device.X.Svc.1.", "Device.Nope."} {
		if _, err := tr.AddObject(bad, "d"); faultCode(err) != FaultInvalidName {
			t.Errorf("add %q: %v", bad, err)
		}
	}
	if got := tr.Instances("Device.X.Svc."); !slices.Equal(got, []uint32{1, 3}) {
		t.Errorf("Instances = %v", got)
	}
	if got := tr.Instances("Device.X.If."); !slices.Equal(got, []uint32{2, 4}) {
		t.Errorf("caller-owned Instances = %v", got)
	}
	if tr.Instances("Device.X.") != nil || tr.Instances("Device.X.Enable") != nil {
		t.Error("Instances of a non-table")
	}
	tr2, _ := testTree(t, store)
	n, err := tr2.AddObject("Device.X.Svc.", "e")
	if err != nil || n != 4 {
		t.Errorf("after reload: instance %d %v, want 4 (never reused)", n, err)
	}
	l, _ := tr2.GetNames("Device.X.Svc.", true)
	if got := names(l, func(p ParameterInfo) string { return p.Name }); !slices.Equal(got, []string{"Device.X.Svc.1.", "Device.X.Svc.3.", "Device.X.Svc.4."}) {
		t.Errorf("instances = %v", got)
	}
	if v, _ := tr2.GetValues([]string{"Device.X.Svc.4.Name"}); v[0].Value != "" {
		t.Errorf("new instance inherited a value: %v", v)
	}
}

func TestAttributesAndNotifications(t *testing.T) {
	store := newMemStore()
	tr, up := testTree(t, store)
	active := 0
	tr.OnActiveNotification(func() { active++ })
	for _, tc := range []struct {
		s    SetParameterAttributesStruct
		code int
	}{
		{SetParameterAttributesStruct{Name: "Device.Info.Up", NotificationChange: true, Notification: 2}, FaultNotifyRejected},
		{SetParameterAttributesStruct{Name: "Device.Info.Name", NotificationChange: true, Notification: 3}, FaultNotifyRejected},
		{SetParameterAttributesStruct{Name: "Device.Info.Name", NotificationChange: true, Notification: 9}, FaultInvalidArguments},
		{SetParameterAttributesStruct{Name: "Device.Info.Name", AccessListChange: true, AccessList: []string{"Admin"}}, FaultInvalidArguments},
		{SetParameterAttributesStruct{Name: "Device.Nope", NotificationChange: true, Notification: 1}, FaultInvalidName},
	} {
		if err := tr.SetAttributes([]SetParameterAttributesStruct{tc.s}); faultCode(err) != tc.code {
			t.Errorf("SPA %+v: %v, want %d", tc.s, err, tc.code)
		}
	}
	// A partial path skips the parameters that refuse (Up denies active).
	if err := tr.SetAttributes([]SetParameterAttributesStruct{
		{Name: "Device.Info.", NotificationChange: true, Notification: 2},
		{Name: "Device.X.Count", NotificationChange: true, Notification: 1, AccessListChange: true, AccessList: []string{"Subscriber"}},
	}); err != nil {
		t.Fatal(err)
	}
	attrs, err := tr.GetAttributes([]string{"Device.Info.", "Device.X.Count"})
	if err != nil {
		t.Fatal(err)
	}
	got := names(attrs, func(a ParameterAttribute) string { return fmt.Sprintf("%s=%d%v", a.Name, a.Notification, a.AccessList) })
	if want := []string{"Device.Info.Name=2[]", "Device.Info.Up=0[]", "Device.X.Count=1[Subscriber]"}; !slices.Equal(got, want) {
		t.Errorf("attributes = %v, want %v", got, want)
	}

	// A secret never rides an Inform, whatever its attribute says.
	if err := tr.SetAttributes([]SetParameterAttributesStruct{{Name: "Device.X.Secret", NotificationChange: true, Notification: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetLocal("Device.X.Secret", "hunter2"); err != nil {
		t.Fatal(err)
	}
	if p := tr.PendingNotifications(); len(p) != 0 || active != 0 {
		t.Fatalf("secret notified: %v active=%d", p, active)
	}
	// An ACS change is not notified back.
	if _, err := tr.SetValues([]ParameterValue{{Name: "Device.X.Count", Value: "3"}}, ""); err != nil {
		t.Fatal(err)
	}
	*up = 99 // Up has no notification
	if err := tr.CheckNotifications(); err != nil || len(tr.PendingNotifications()) != 0 || active != 0 {
		t.Fatalf("spurious notification: %v %v active=%d", err, tr.PendingNotifications(), active)
	}
	// A local change of a passive parameter rides the next Inform.
	if err := tr.SetLocal("Device.X.Count", "4"); err != nil {
		t.Fatal(err)
	}
	if p := tr.PendingNotifications(); len(p) != 1 || p[0].Value != "4" || active != 0 {
		t.Errorf("passive: %v active=%d", p, active)
	}
	// An active one triggers a session.
	if err := tr.SetLocal("Device.Info.Name", "renamed"); err != nil {
		t.Fatal(err)
	}
	if active != 1 || len(tr.PendingNotifications()) != 2 {
		t.Errorf("active: %d pending %v", active, tr.PendingNotifications())
	}
	// Pending notifications survive a restart until acknowledged.
	tr2, _ := testTree(t, store)
	if p := tr2.PendingNotifications(); len(p) != 2 {
		t.Errorf("after restart: %v", p)
	}
	if err := tr2.AckNotifications([]string{"Device.Info.Name", "Device.X.Count"}); err != nil || len(tr2.PendingNotifications()) != 0 {
		t.Errorf("ack: %v", err)
	}
	if f := tr2.ForcedInform(); len(f) != 1 || f[0].Value != "renamed" {
		t.Errorf("forced inform = %v", f)
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		ty       Type
		in, want string
		ok       bool
	}{
		{TypeBoolean, " 1 ", "true", true}, {TypeBoolean, "false", "false", true}, {TypeBoolean, "yes", "", false},
		{TypeUnsignedInt, "007", "7", true}, {TypeUnsignedInt, "-1", "", false}, {TypeUnsignedInt, "4294967296", "", false},
		{TypeInt, "-2147483648", "-2147483648", true}, {TypeInt, "2147483648", "", false},
		{TypeUnsignedLong, "18446744073709551615", "18446744073709551615", true}, {TypeLong, "x", "", false},
		{TypeDateTime, "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z", true}, {TypeDateTime, "2026-01-02T03:04:05.5", "2026-01-02T03:04:05.5", true},
		{TypeDateTime, "yesterday", "", false}, {TypeBase64, "AAEC", "AAEC", true}, {TypeBase64, "!!", "", false},
		{TypeHexBinary, "0A0b", "0a0b", true}, {TypeHexBinary, "0", "", false}, {TypeString, " a b ", "a b", true},
	} {
		got, err := tc.ty.Normalize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s.Normalize(%q) = %q, %v; want %q ok=%v", tc.ty, tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestAliases(t *testing.T) {
	tr, _ := testTree(t, newMemStore())
	for _, bad := range [][2]string{{"A.B", "Device.X.Count"}, {"Svc.", "Device.X.Count"}, {"Device", "Device.X.Count"}, {"", "x"}} {
		if err := tr.Alias(bad[0], bad[1]); err == nil {
			t.Errorf("alias %q -> %q accepted", bad[0], bad[1])
		}
	}
	if err := tr.Alias("Count", "Device.X.Count"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Alias("Svc.", "Device.X.Svc."); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: "Count", Value: "5"}, {Name: "Device.X.Count", Value: "6"}}, "k"); faultCode(err) != FaultInvalidArguments {
		t.Errorf("alias and its target in one SPV: %v, want 9003 duplicate", err)
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: "Count", Value: "5"}}, "k"); err != nil {
		t.Fatal(err)
	}
	n, err := tr.AddObject("Svc.", "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: fmt.Sprintf("Svc.%d.Name", n), Value: "a"}}, "k"); err != nil {
		t.Fatal(err)
	}
	v, err := tr.GetValues([]string{"Count", "Device.X.Count", "Svc."})
	if err != nil {
		t.Fatal(err)
	}
	got := names(v, func(p ParameterValue) string { return p.Name + "=" + p.Value })
	if want := []string{"Count=5", "Device.X.Count=5", "Device.X.Svc.1.Name=a", "Device.X.Svc.1.Port=0"}; !slices.Equal(got, want) {
		t.Errorf("GPV through aliases %v, want %v", got, want)
	}
	if err := tr.DeleteObject("Svc.1.", "k"); err != nil {
		t.Fatal(err)
	}
}
