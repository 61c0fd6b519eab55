package cwmpclient

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

type noteCommitter struct{ changes []Change }

func (n *noteCommitter) Commit(_ Values, ch []Change) error {
	n.changes = append(n.changes, ch...)
	return nil
}
func (n *noteCommitter) Rollback(Values, []Change) {}

func stdTree(t testing.TB, store Store, ifs []IPInterface) (*Tree, *noteCommitter) {
	t.Helper()
	return stdTreeVersion(t, store, ifs, "1.2.3")
}

func stdTreeVersion(t testing.TB, store Store, ifs []IPInterface, version string) (*Tree, *noteCommitter) {
	t.Helper()
	tr := NewTree(store, "tree.json")
	boot := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	note := &noteCommitter{}
	err := RegisterStandard(tr, StdObjects{
		Info: DeviceInfo{Manufacturer: "Acme", ManufacturerOUI: "00AABB", ProductClass: "SRv6CPE", SerialNumber: "SN1", HardwareVersion: "hw1", SoftwareVersion: version},
		ACS: ManagementDefaults{URL: "http://acs.example/cwmp", Username: "cpe", Password: "secret",
			PeriodicInformEnable: true, PeriodicInformInterval: 300, ConnectionRequestUsername: "cr", ConnectionRequestPassword: "crpw"},
		ConnectionRequestURL: func() string { return "http://[2001:db8::1]:7547/cr" },
		Interfaces:           func() []IPInterface { return ifs },
		Boot:                 boot,
		Now:                  func() time.Time { return boot.Add(90 * time.Second) },
	}, note)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Load(); err != nil {
		t.Fatal(err)
	}
	return tr, note
}

func TestStandardObjects(t *testing.T) {
	ifs := []IPInterface{
		{Index: 3, Name: "wan", Enable: true, Status: "Up", IPv6Addresses: []string{"2001:db8::1", "fe80::1"}, IPv6Prefixes: []string{"2001:db8:1::/48"}},
		{Index: 1, Name: "lo", Enable: true, Status: "Up"},
	}
	tr, note := stdTree(t, newMemStore(), ifs)
	vals, err := tr.GetValues([]string{"Device.DeviceInfo.UpTime", "Device.ManagementServer.Password", "Device.ManagementServer.ConnectionRequestPassword",
		"Device.IP.Interface.3.IPv6Address.2.IPAddress", "Device.IP.Interface.3.IPv6Prefix.1.Prefix", "Device.IP.InterfaceNumberOfEntries",
		"Device.ManagementServer.PeriodicInformTime"})
	if err != nil {
		t.Fatal(err)
	}
	got := names(vals, func(p ParameterValue) string { return p.Value })
	if want := []string{"90", "", "", "fe80::1", "2001:db8:1::/48", "2", "0001-01-01T00:00:00Z"}; !slices.Equal(got, want) {
		t.Errorf("values %v, want %v", got, want)
	}
	// Instance numbers stay with the address: when fe80::1 goes and a new
	// address comes, 2001:db8::1 keeps 1 and the new one gets 3.
	ifs[0].IPv6Addresses = []string{"2001:db8::99", "2001:db8::1"}
	vals, err = tr.GetValues([]string{"Device.IP.Interface.3.IPv6Address."})
	if err != nil {
		t.Fatal(err)
	}
	got = names(vals, func(p ParameterValue) string { return p.Name + "=" + p.Value })
	if want := []string{"Device.IP.Interface.3.IPv6Address.1.IPAddress=2001:db8::1", "Device.IP.Interface.3.IPv6Address.1.Status=Enabled",
		"Device.IP.Interface.3.IPv6Address.3.IPAddress=2001:db8::99", "Device.IP.Interface.3.IPv6Address.3.Status=Enabled"}; !slices.Equal(got, want) {
		t.Errorf("after an address change %v, want %v", got, want)
	}
	l, _ := tr.GetNames("Device.IP.Interface.", true)
	if got := names(l, func(p ParameterInfo) string { return p.Name }); !slices.Equal(got, []string{"Device.IP.Interface.1.", "Device.IP.Interface.3."}) {
		t.Errorf("interfaces %v", got)
	}
	for _, tc := range []struct {
		name, value string
		code        int
	}{
		{"Device.IP.Interface.3.IPv6Address.1.IPAddress", "2001:db8::9", FaultNotWritable},
		{"Device.DeviceInfo.SoftwareVersion", "2", FaultNotWritable},
		{"Device.ManagementServer.CWMPRetryIntervalMultiplier", "999", FaultInvalidValue},
		{"Device.ManagementServer.CWMPRetryMinimumWaitInterval", "0", FaultInvalidValue},
		{"Device.ManagementServer.PeriodicInformInterval", "0", FaultInvalidValue},
		{"Device.ManagementServer.URL", "ftp://x", FaultInvalidValue},
	} {
		_, err := tr.SetValues([]ParameterValue{{Name: tc.name, Value: tc.value}}, "")
		var code int
		if f, ok := err.(*Fault); ok && len(f.SPV) == 1 {
			code = f.SPV[0].Code
		}
		if code != tc.code {
			t.Errorf("SPV %s=%s: %v, want %d", tc.name, tc.value, err, tc.code)
		}
	}
	if _, err := tr.SetValues([]ParameterValue{{Name: pPassword, Value: "new"}, {Name: pPeriodicIntvl, Value: "60"}, {Name: pRetryMult, Value: "1500"}}, "k9"); err != nil {
		t.Fatal(err)
	}
	ms := readManagementServer(tr)
	if ms.Password != "new" || ms.PeriodicInterval != time.Minute || !ms.PeriodicEnable || ms.RetryMult != 1500 || ms.RetryMin != 5 || ms.URL != "http://acs.example/cwmp" || ms.ConnReqPwd != "crpw" {
		t.Errorf("management server view %+v", ms)
	}
	if len(note.changes) != 3 {
		t.Errorf("committer saw %d changes", len(note.changes))
	}
	forced := names(tr.ForcedInform(), func(p ParameterValue) string { return p.Name + "=" + p.Value })
	want := []string{"Device.RootDataModelVersion=2.15", "Device.DeviceInfo.HardwareVersion=hw1", "Device.DeviceInfo.SoftwareVersion=1.2.3",
		"Device.DeviceInfo.ProvisioningCode=", "Device.ManagementServer.ParameterKey=k9", "Device.ManagementServer.ConnectionRequestURL=http://[2001:db8::1]:7547/cr"}
	if !slices.Equal(forced, want) {
		t.Errorf("forced inform %v, want %v", forced, want)
	}
}

func TestSoftwareVersionChangeAcrossReboot(t *testing.T) {
	store := newMemStore()
	tr, _ := stdTreeVersion(t, store, nil, "1.0")
	if err := tr.CheckNotifications(); err != nil {
		t.Fatal(err)
	}
	writes := store.writes
	for range 3 {
		if err := tr.CheckNotifications(); err != nil {
			t.Fatal(err)
		}
	}
	if store.writes != writes {
		t.Errorf("%d state writes from checks that found nothing new", store.writes-writes)
	}
	// "Reboot" into a new image.
	tr2, _ := stdTreeVersion(t, store, nil, "2.0")
	active := 0
	tr2.OnActiveNotification(func() { active++ })
	if err := tr2.CheckNotifications(); err != nil {
		t.Fatal(err)
	}
	p := tr2.PendingNotifications()
	if active != 1 || len(p) != 1 || p[0].Name != "Device.DeviceInfo.SoftwareVersion" || p[0].Value != "2.0" {
		t.Errorf("after upgrade: active=%d pending=%v", active, p)
	}
}

// benchTree is the standard model plus a 250-row vendor table of 8
// parameters: 2,000+ parameters.
func benchTree(b testing.TB) (*Tree, int) {
	ifs := []IPInterface{{Index: 1, Name: "wan", Status: "Up", IPv6Addresses: []string{"2001:db8::1"}, IPv6Prefixes: []string{"2001:db8::/48"}}}
	tr, _ := stdTree(b, nil, ifs)
	addBenchRows(b, tr)
	all, err := tr.GetValues([]string{""})
	if err != nil {
		b.Fatal(err)
	}
	return tr, len(all)
}

// BenchmarkGPVWholeTree measures GetParameterValues("Device.") on 2,000+
// parameters: the tree walk alone, and the full answer (dispatch and SOAP
// encoding) as the ACS gets it.
// addBenchRows adds Device.X_TEST.Row.{i}. with 250 rows of 8 parameters.
func addBenchRows(b testing.TB, tr *Tree) {
	if err := tr.RegisterObject("Device.X_TEST.Row.{i}.", Object{Writable: true}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := tr.Register(fmt.Sprintf("Device.X_TEST.Row.{i}.P%d", i), Param{Type: TypeUnsignedInt, Writable: true, Default: "7"}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 250; i++ {
		if _, err := tr.AddObject("Device.X_TEST.Row.", ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGPVWholeTree(b *testing.B) {
	tr, n := benchTree(b)
	if n < 2000 {
		b.Fatalf("tree has %d parameters, want >= 2000", n)
	}
	b.Run("tree", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.GetValues([]string{"Device."}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "params")
	})
	b.Run("rpc+soap", func(b *testing.B) {
		d := NewDispatcher(tr, &fakeActions{})
		req := GetParameterValues{Names: []string{"Device."}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(NS12, "1", d.Dispatch(b.Context(), req)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "params")
	})
}
