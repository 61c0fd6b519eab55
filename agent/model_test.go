package agent

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// pathCaps is a VRF-less kernel with End.B6.Encaps, like the lab machines.
var pathCaps = dataplane.Capabilities{EndDT6Table: true, EncapRed: true, EndB6Encaps: true}

// modelDoc is a CPE's file config before the controller configures it.
const modelDoc = `
wan: {interface: wan0}
srv6: {locator_len: 48, extension: 0x5}
services:
  - {name: end, behavior: End, function: 0x1}
`

type modelHarness struct {
	*harness
	tree *cwmpclient.Tree
	dir  string
}

// startModel runs an agent on dir with the fake dataplane, gives it the
// delegated prefix 2001:db8:1200::/40 and registers its SRv6 model on a
// fresh parameter tree (as a new CWMP client would).
func startModel(t *testing.T, doc, dir string) *modelHarness {
	t.Helper()
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, pathCaps, dir)
	h.src.send(t, "2001:db8:1200::/40", "2001:db8:1200::1")
	h.waitStatus(func(s Status) bool { return s.State == StateApplied })
	tr := cwmpclient.NewTree(nil, "")
	if err := h.agent.model.register(tr); err != nil {
		t.Fatal(err)
	}
	return &modelHarness{harness: h, tree: tr, dir: dir}
}

func (m *modelHarness) get(names ...string) map[string]string {
	m.t.Helper()
	vals, err := m.tree.GetValues(names)
	if err != nil {
		m.t.Fatalf("GPV %v: %v", names, err)
	}
	out := map[string]string{}
	for _, v := range vals {
		out[v.Name] = v.Value
	}
	return out
}

func (m *modelHarness) spv(kv ...string) error {
	var params []cwmpclient.ParameterValue
	for i := 0; i+1 < len(kv); i += 2 {
		params = append(params, cwmpclient.ParameterValue{Name: kv[i], Value: kv[i+1]})
	}
	_, err := m.tree.SetValues(params, "key")
	return err
}

// kernel is the fake dataplane's routes.
// modelSnap is what a refused request must leave as it was.
type modelSnap struct {
	model   modelState
	overlay []byte
	kernel  dataplane.Desired
	calls   int
}

func (m *modelHarness) snap() modelSnap {
	st, _ := m.agent.model.snapshot()
	overlay, _ := m.state.ReadFile(OverlayFile)
	return modelSnap{st, overlay, m.kernel(), m.dp.ncalls()}
}

// unchangedSince checks that the model, the overlay file and the dataplane
// are as s saw them.
func (m *modelHarness) unchangedSince(t *testing.T, s modelSnap) {
	t.Helper()
	if after, _ := m.agent.model.snapshot(); !reflect.DeepEqual(s.model, after) {
		t.Errorf("model changed:\n%+v\n%+v", s.model, after)
	}
	if o, _ := m.state.ReadFile(OverlayFile); !bytes.Equal(o, s.overlay) {
		t.Error("overlay file changed")
	}
	if !reflect.DeepEqual(s.kernel, m.kernel()) || m.dp.ncalls() != s.calls {
		t.Error("dataplane changed")
	}
}

func (m *modelHarness) kernel() dataplane.Desired {
	m.dp.mu.Lock()
	defer m.dp.mu.Unlock()
	return m.dp.kernel
}

// appendixSPV is Q.Suppl.79's SRv6 + L3VPN configuration with the
// Appendix I bare names.
var appendixSPV = []string{
	"LocatorLength", "48",
	"ServiceID", "vpn1",
	"ServiceType", "L3VPN",
	"LANPrefixes", "2001:db8:1200:10::/64",
	"RouteDistinguisher", "65000:1",
	"ImportRT", "65000:1",
	"ExportRT", "65000:1",
	"Device.X_ITU-INT_SRv6.Service.1.Function", "0x10",
}

func TestModelAppendixConfiguration(t *testing.T) {
	m := startModel(t, modelDoc, t.TempDir())
	got := m.get("IPv6Prefix", "SRv6Locator", "SRv6Locator.Prefix", "IPv6Enable", "SupportedServices", "ServiceID", "ConnectionStatus")
	for name, want := range map[string]string{
		"IPv6Prefix": "2001:db8:1200::/40", "SRv6Locator": "loc1: 2001:db8:1205::/48",
		"SRv6Locator.Prefix": "2001:db8:1205::/48", "IPv6Enable": "true", "SupportedServices": "L3VPN",
		"ServiceID": "end", "ConnectionStatus": "NotRegistered",
	} {
		if got[name] != want {
			t.Errorf("GPV %s = %q, want %q", name, got[name], want)
		}
	}
	// The file's one service is Service.1: the controller adds its VPN.
	n, err := m.tree.AddObject("Device.X_ITU-INT_SRv6.Service.", "k1")
	if err != nil {
		t.Fatal(err)
	}
	svc := "Device.X_ITU-INT_SRv6.Service." + itoa(n) + "."
	if err := m.spv(svc+"ServiceID", "vpn1", svc+"ServiceType", "L3VPN", svc+"LANPrefixes", "2001:db8:1200:10::/64",
		svc+"RouteDistinguisher", "65000:1", svc+"ImportRT", "65000:1,65000:2", svc+"ExportRT", "65000:1", svc+"Function", "0x10"); err != nil {
		t.Fatal(err)
	}
	sids := m.dp.sids()
	if sids[netip.MustParseAddr("2001:db8:1205:10::")] != "End.DT6" || sids[netip.MustParseAddr("2001:db8:1205:1::")] != "End" {
		t.Errorf("kernel SIDs %v, want End at 2001:db8:1205:1:: and End.DT6 at 2001:db8:1205:10::", sids)
	}
	got = m.get(svc)
	for name, want := range map[string]string{
		svc + "ServiceSID": "2001:db8:1205:10::", svc + "Behavior": "End.DT6", svc + "TunnelStatus": "Up",
		svc + "ImportRT": "65000:1,65000:2", svc + "LocatorName": "loc1", svc + "TunnelEncapsulation": "SRH",
	} {
		if got[name] != want {
			t.Errorf("GPV %s = %q, want %q", name, got[name], want)
		}
	}
	st, base := m.agent.model.snapshot()
	cfg := st.apply(base)
	if len(cfg.Services) != 2 || cfg.Services[1].RouteDistinguisher != "65000:1" || !slices.Equal(cfg.Services[1].ImportRTs, []string{"65000:1", "65000:2"}) {
		t.Errorf("agent config services %+v", cfg.Services)
	}

	// A ServiceSID the controller sends is checked: equal is accepted and
	// changes nothing.
	calls := m.dp.ncalls()
	if err := m.spv(svc+"ServiceSID", "2001:db8:1205:10::", svc+"LocatorName", "loc1"); err != nil {
		t.Errorf("the derived ServiceSID refused: %v", err)
	}
	if m.dp.ncalls() != calls {
		t.Error("an SPV that only confirmed the ServiceSID re-applied the dataplane")
	}

	// §8.1 registration: a plain InformResponse registers, a controller's
	// ConnectionStatus wins.
	m.agent.model.onInformResponse(nil)
	if v := m.get("ConnectionStatus")["ConnectionStatus"]; v != "Registered" {
		t.Errorf("ConnectionStatus after an InformResponse = %q", v)
	}
	m.agent.model.onInformResponse(map[string]string{"ConnectionStatus": "Rejected"})
	if v := m.get("ConnectionStatus")["ConnectionStatus"]; v != "Rejected" {
		t.Errorf("ConnectionStatus = %q, want the controller's Rejected", v)
	}
}

// The Appendix I messages work verbatim on a CPE the file gave no service:
// the bare names stand for Service.1, which exists from the start.
func TestModelAppendixNamesOnEmptyCPE(t *testing.T) {
	m := startModel(t, "wan: {interface: wan0}\nsrv6: {locator_len: 64}\n", t.TempDir())
	if err := m.spv(appendixSPV...); err != nil {
		t.Fatal(err)
	}
	sid := netip.MustParseAddr("2001:db8:12ff:10::")
	if got := m.dp.sids()[sid]; got != "End.DT6" {
		t.Errorf("kernel SIDs %v, want End.DT6 %s", m.dp.sids(), sid)
	}
	if v := m.get("ServiceSID")["ServiceSID"]; v != sid.String() {
		t.Errorf("GPV ServiceSID = %q, want %s", v, sid)
	}
}

// wantFault checks that err is a 9003 fault whose entry for parameter name
// has code and every text in it, whether the tree's own checks found it or
// the committer, checking the whole configuration, did.
func wantFault(t *testing.T, err error, code int, name string, texts ...string) {
	t.Helper()
	var f *cwmpclient.Fault
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not a CWMP fault", err)
	}
	s := f.String
	switch {
	case f.Code == cwmpclient.FaultInvalidArguments && len(f.SPV) > 0:
		i := slices.IndexFunc(f.SPV, func(e cwmpclient.SPVFault) bool { return e.Name == name })
		if i < 0 {
			t.Fatalf("fault %+v has no entry for %s", f.SPV, name)
		}
		if f.SPV[i].Code != code {
			t.Errorf("%s: fault %d (%s), want %d", name, f.SPV[i].Code, f.SPV[i].String, code)
		}
		s = f.SPV[i].String
	default:
		t.Fatalf("fault %d %q, want %d for %s", f.Code, s, code, name)
	}
	for _, x := range texts {
		if !strings.Contains(s, x) {
			t.Errorf("fault %q does not say %q", s, x)
		}
	}
}

// Every bad value the controller can send gets its fault, and nothing
// changes: not the model, not the overlay file, not the dataplane.
func TestModelBadValuesChangeNothing(t *testing.T) {
	const (
		top = "Device.X_ITU-INT_SRv6."
		s1  = top + "Service.1."
		s2  = top + "Service.2."
		p1  = top + "Path.1."
	)
	doc := modelDoc + `  - {name: vpn, behavior: End.DT6, function: 0x6, route_distinguisher: "65000:1", export_rts: ["65000:1"], lan_prefixes: ["2001:db8:1200:10::/64"]}
paths:
  list:
    - {id: p1, segments: ["2001:db8:99::1"], bsid: "2001:db8:1205:b5::", priority: 1}
`
	m := startModel(t, doc, t.TempDir())
	// Make the controller own the configuration, so the overlay exists.
	if err := m.spv(top+"Locator.Name", "loc1", p1+"PathPriority", "2"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		spv   []cwmpclient.ParameterValue
		code  int
		param string
		texts []string
	}{
		{"read-only prefix", pv("IPv6Prefix", "2001:db8::/32"), cwmpclient.FaultNotWritable, "IPv6Prefix", nil},
		{"unknown name", pv(top+"Nope", "1"), cwmpclient.FaultInvalidName, top + "Nope", nil},
		{"wrong type", []cwmpclient.ParameterValue{{Name: "LocatorLength", Value: "true", Type: "boolean"}}, cwmpclient.FaultInvalidType, "LocatorLength", nil},
		{"locator shorter than the delegated prefix", pv("LocatorLength", "32"), cwmpclient.FaultInvalidValue, "LocatorLength", []string{"32", "2001:db8:1200::/40"}},
		{"locator plus function over 128", pv("LocatorLength", "120"), cwmpclient.FaultInvalidValue, "LocatorLength", []string{"120", "16"}},
		{"extension wider than the locator bits", pv(top+"Extension", "0x1ff"), cwmpclient.FaultInvalidValue, top + "Extension", []string{"0x1ff"}},
		{"bad extension", pv(top+"Extension", "five"), cwmpclient.FaultInvalidValue, top + "Extension", []string{"five"}},
		{"unknown service type", pv(s2+"ServiceType", "FancyVPN"), cwmpclient.FaultInvalidValue, s2 + "ServiceType", []string{"FancyVPN"}},
		{"VPWS unsupported", pv(s2+"ServiceType", "VPWS"), cwmpclient.FaultInvalidValue, s2 + "ServiceType", []string{"End.DX2"}},
		{"bad RD", pv(s2+"RouteDistinguisher", "not-an-rd"), cwmpclient.FaultInvalidValue, s2 + "RouteDistinguisher", []string{"not-an-rd"}},
		{"bad RT", pv(s2+"ImportRT", "65000:1,banana"), cwmpclient.FaultInvalidValue, s2 + "ImportRT", []string{"banana"}},
		{"export without RD", pv(s2+"RouteDistinguisher", ""), cwmpclient.FaultInvalidValue, s2 + "RouteDistinguisher", []string{"route_distinguisher"}},
		{"bad LAN prefix", pv(s2+"LANPrefixes", "2001:db8:1200:10::1/64"), cwmpclient.FaultInvalidValue, s2 + "LANPrefixes", []string{"host bits"}},
		{"IPv4 LAN on End.DT6", pv(s2+"LANPrefixes", "192.0.2.0/24"), cwmpclient.FaultInvalidValue, s2 + "LANPrefixes", []string{"192.0.2.0/24"}},
		{"function collision", pv(s2+"Function", "0x1"), cwmpclient.FaultInvalidValue, s2 + "Function", []string{"0x1", "end"}},
		{"function too wide", pv(s2+"Function", "0x10000"), cwmpclient.FaultInvalidValue, s2 + "Function", []string{"0x10000"}},
		{"two services, one name", pv(s2+"ServiceID", "end"), cwmpclient.FaultInvalidValue, s2 + "ServiceID", []string{"end"}},
		{"wrong ServiceSID", pv(s2+"ServiceSID", "2001:db8:1205:7::"), cwmpclient.FaultInvalidValue, s2 + "ServiceSID", []string{"2001:db8:1205:7::", "2001:db8:1205:6::"}},
		{"ServiceSID not a SID", pv(s2+"ServiceSID", "vpn-sid"), cwmpclient.FaultInvalidValue, s2 + "ServiceSID", []string{"vpn-sid"}},
		{"foreign locator name", pv(s2+"LocatorName", "other"), cwmpclient.FaultInvalidValue, s2 + "LocatorName", []string{"other", "loc1"}},
		{"segment list with a non-SID", pv("SegmentList", "2001:db8:99::1, 10.0.0.1"), cwmpclient.FaultInvalidValue, "SegmentList", []string{"10.0.0.1"}},
		{"BSID not an address", pv("TargetBSID", "bsid-1"), cwmpclient.FaultInvalidValue, "TargetBSID", []string{"bsid-1"}},
		{"BSID outside the locator", pv(p1+"TargetBSID", "2001:db8:77::1"), cwmpclient.FaultInvalidValue, p1 + "TargetBSID", []string{"2001:db8:77::1", "2001:db8:1205::/48"}},
		{"BSID is a service SID", pv(p1+"TargetBSID", "2001:db8:1205:6::"), cwmpclient.FaultInvalidValue, p1 + "TargetBSID", []string{"vpn"}},
		{"one good, one bad", append(pv(s2+"ExportRT", "65000:9"), pv(s2+"ServiceType", "Nope")...), cwmpclient.FaultInvalidValue, s2 + "ServiceType", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := m.snap()
			_, err := m.tree.SetValues(tc.spv, "bad")
			if err == nil {
				t.Fatal("accepted")
			}
			wantFault(t, err, tc.code, tc.param, tc.texts...)
			m.unchangedSince(t, snap)
			if m.tree.ParameterKey() == "bad" {
				t.Error("ParameterKey taken from a refused SPV")
			}
		})
	}
}

func pv(name, value string) []cwmpclient.ParameterValue {
	return []cwmpclient.ParameterValue{{Name: name, Value: value}}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// §8.4: a dynamic path installs End.B6.Encaps for its BSID; a second path
// on the same BSID with a worse priority stands by; deleting paths and
// services removes their routes.
func TestModelPathsAndObjects(t *testing.T) {
	m := startModel(t, modelDoc, t.TempDir())
	bsid := netip.MustParseAddr("2001:db8:1205:b5::")
	if err := m.spv("PathID", "p1", "SourceDevice", "cpe1", "DestinationDevice", "cpe2",
		"SegmentList", `["2001:db8:99::1:End", "2001:db8:2205:6::"]`, "TargetBSID", "2001:db8:1205:b5::", "PathPriority", "10"); err != nil {
		t.Fatal(err)
	}
	k := m.kernel()
	want := dataplane.LocalSID{SID: bsid, Behavior: k.BSIDs[0].Behavior, Dev: "wan0",
		Segments: []netip.Addr{netip.MustParseAddr("2001:db8:99::1"), netip.MustParseAddr("2001:db8:2205:6::")}}
	if len(k.BSIDs) != 1 || !reflect.DeepEqual(k.BSIDs[0], want) || k.BSIDs[0].Behavior.String() != "End.B6.Encaps" {
		t.Fatalf("kernel BSIDs %+v, want %+v End.B6.Encaps", k.BSIDs, want)
	}
	got := m.get("PathID", "ConfigStatus", "ActivePathInfo", "ErrorDetails")
	// The latency comes from the (fake) probe's goroutine.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(got["ActivePathInfo"], "latency 1.500 ms") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		got = m.get("PathID", "ConfigStatus", "ActivePathInfo", "ErrorDetails")
	}
	// DestinationDevice "cpe2" is a name: the BSID is installed, nothing steered.
	if got["ConfigStatus"] != "Active" || !strings.Contains(got["ErrorDetails"], `"cpe2" is not an IPv6 address or prefix`) ||
		got["ActivePathInfo"] != `SegmentList=["2001:db8:99::1", "2001:db8:2205:6::"]; latency 1.500 ms` {
		t.Errorf("path status %v", got)
	}

	n, err := m.tree.AddObject("Device.X_ITU-INT_SRv6.Path.", "k")
	if err != nil {
		t.Fatal(err)
	}
	p2 := "Device.X_ITU-INT_SRv6.Path." + itoa(n) + "."
	if v := m.get(p2 + "ConfigStatus")[p2+"ConfigStatus"]; v != "Incomplete" {
		t.Errorf("new path ConfigStatus %q", v)
	}
	if err := m.spv(p2+"PathID", "p2", p2+"SegmentList", "2001:db8:98::1", p2+"TargetBSID", "2001:db8:1205:b5::", p2+"PathPriority", "20"); err != nil {
		t.Fatal(err)
	}
	if v := m.get(p2 + "ConfigStatus")[p2+"ConfigStatus"]; v != "Standby" {
		t.Errorf("worse path ConfigStatus %q, want Standby", v)
	}
	if err := m.tree.DeleteObject("Device.X_ITU-INT_SRv6.Path.1.", "k"); err != nil {
		t.Fatal(err)
	}
	if k := m.kernel(); len(k.BSIDs) != 1 || k.BSIDs[0].Segments[0] != netip.MustParseAddr("2001:db8:98::1") {
		t.Errorf("after deleting the active path, BSIDs %+v, want p2's", k.BSIDs)
	}

	// Services: add, configure, delete.
	n, err = m.tree.AddObject("Device.X_ITU-INT_SRv6.Service.", "k")
	if err != nil {
		t.Fatal(err)
	}
	svc := "Device.X_ITU-INT_SRv6.Service." + itoa(n) + "."
	if v := m.get(svc + "TunnelStatus")[svc+"TunnelStatus"]; v != "NotConfigured" {
		t.Errorf("new service TunnelStatus %q", v)
	}
	if err := m.spv(svc+"ServiceID", "v6", svc+"ServiceType", "L3VPN", svc+"Function", "0x66"); err != nil {
		t.Fatal(err)
	}
	sid := netip.MustParseAddr("2001:db8:1205:66::")
	if m.dp.sids()[sid] != "End.DT6" {
		t.Fatalf("SIDs %v, want End.DT6 %s", m.dp.sids(), sid)
	}
	if err := m.tree.DeleteObject(svc, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.dp.sids()[sid]; ok {
		t.Errorf("SID %s still installed after DeleteObject", sid)
	}

	// Enable false withdraws every service and path; true brings them back.
	if err := m.spv("IPv6Enable", "false"); err != nil {
		t.Fatal(err)
	}
	if k := m.kernel(); len(k.LocalSIDs) != 0 || len(k.BSIDs) != 0 {
		t.Errorf("with Enable false the kernel still has %+v", k)
	}
	if err := m.spv("IPv6Enable", "true"); err != nil {
		t.Fatal(err)
	}
	if k := m.kernel(); len(k.LocalSIDs) != 1 || len(k.BSIDs) != 1 {
		t.Errorf("with Enable true again the kernel has %+v", k)
	}
}

// The controller's configuration survives a restart (a new agent on the
// same state dir, as after a power cut) and a reload of the config file.
func TestModelPersists(t *testing.T) {
	dir := t.TempDir()
	m := startModel(t, modelDoc, dir)
	n, err := m.tree.AddObject("Device.X_ITU-INT_SRv6.Service.", "k")
	if err != nil {
		t.Fatal(err)
	}
	svc := "Device.X_ITU-INT_SRv6.Service." + itoa(n) + "."
	if err := m.spv(svc+"ServiceID", "vpn1", svc+"ServiceType", "L3VPN", svc+"Function", "0x10",
		"PathID", "p1", "SegmentList", "2001:db8:99::1", "TargetBSID", "2001:db8:1205:b5::"); err != nil {
		t.Fatal(err)
	}
	// A SIGHUP reload of the unchanged file keeps the controller's sections.
	file, _ := ParseConfig([]byte(modelDoc))
	if err := m.agent.Reload(file); err != nil {
		t.Fatal(err)
	}
	if len(m.dp.sids()) != 2 || len(m.kernel().BSIDs) != 1 {
		t.Errorf("after a reload of the file the kernel has %+v", m.kernel())
	}
	m.stop()

	r := startModel(t, modelDoc, dir)
	if len(r.dp.sids()) != 2 || r.dp.sids()[netip.MustParseAddr("2001:db8:1205:10::")] != "End.DT6" || len(r.kernel().BSIDs) != 1 {
		t.Errorf("after a restart the kernel has %+v", r.kernel())
	}
	got := r.get(svc+"ServiceID", svc+"ServiceSID", "PathID", "ConfigStatus")
	for name, want := range map[string]string{svc + "ServiceID": "vpn1", svc + "ServiceSID": "2001:db8:1205:10::", "PathID": "p1", "ConfigStatus": "Active"} {
		if got[name] != want {
			t.Errorf("after a restart %s = %q, want %q", name, got[name], want)
		}
	}
}

// The committer answers a rejected configuration with one 9007 per
// parameter at fault, naming the values, and leaves the others out.
func TestCommitterFaultsPerParameter(t *testing.T) {
	doc := modelDoc + "  - {name: vpn, behavior: End.DT6, function: 0x6}\n"
	m := startModel(t, doc, t.TempDir())
	ch := func(field, value string) cwmpclient.Change {
		return cwmpclient.Change{Name: "Device.X_ITU-INT_SRv6.Service.2." + field, Template: "Device.X_ITU-INT_SRv6.Service.{i}." + field,
			Idx: []uint32{2}, New: value}
	}
	c := &srv6Committer{m: m.agent.model}
	for _, tc := range []struct {
		name    string
		changes []cwmpclient.Change
		want    map[string][]string // parameter -> texts of its fault
	}{
		{"collision beside a good value", []cwmpclient.Change{ch("Function", "0x1"), ch("TunnelID", "t1")},
			map[string][]string{"Function": {"0x1", `"end"`}}},
		{"wrong ServiceSID", []cwmpclient.Change{ch("ServiceSID", "2001:db8:1205:7::"), ch("TunnelID", "t1")},
			map[string][]string{"ServiceSID": {"2001:db8:1205:7::", "2001:db8:1205:6::"}}},
		{"two bad values", []cwmpclient.Change{ch("ServiceID", "end"), ch("LocatorName", "other")},
			map[string][]string{"ServiceID": {`"end"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Commit(nil, tc.changes)
			var f *cwmpclient.Fault
			if !errors.As(err, &f) || f.Code != cwmpclient.FaultInvalidArguments {
				t.Fatalf("Commit = %v, want a 9003 fault", err)
			}
			got := map[string]string{}
			for _, e := range f.SPV {
				if e.Code != cwmpclient.FaultInvalidValue {
					t.Errorf("%s: code %d, want 9007", e.Name, e.Code)
				}
				got[strings.TrimPrefix(e.Name, "Device.X_ITU-INT_SRv6.Service.2.")] = e.String
			}
			if len(got) != len(tc.want) {
				t.Errorf("faults %v, want entries for %v", got, tc.want)
			}
			for p, texts := range tc.want {
				for _, x := range texts {
					if !strings.Contains(got[p], x) {
						t.Errorf("%s fault %q does not say %s", p, got[p], x)
					}
				}
			}
		})
	}
}

func TestFillDefaults(t *testing.T) {
	p := netip.MustParsePrefix
	st := modelState{Services: []modelService{
		{Inst: 1, Type: "End", Config: ServiceConfig{Name: "end", Behavior: "End", Function: 1}},
		{Inst: 2, Type: ServiceL3VPN, Config: ServiceConfig{Name: "v4", VRF: "blue", LANPrefixes: []netip.Prefix{p("192.0.2.0/24")}}},
		{Inst: 3, Type: ServiceL3VPN, Config: ServiceConfig{Name: "v6", VRF: "blue", LANPrefixes: []netip.Prefix{p("2001:db8:1::/64")}}},
		{Inst: 4, Type: ServiceL3VPN, Config: ServiceConfig{Name: "both", VRF: "red", LANPrefixes: []netip.Prefix{p("192.0.2.0/24"), p("2001:db8:1::/64")}}},
		{Inst: 5, Type: ServiceL3VPN, Config: ServiceConfig{Name: "mine", Behavior: "End.DX6", Function: 3}},
		{Inst: 6, Config: ServiceConfig{Name: "incomplete"}},
	}}
	withoutVRF := st.clone()
	st.fillDefaults(withVRF)
	withoutVRF.fillDefaults(noVRF)
	type want struct {
		behavior string
		table    int
		function Function
	}
	for i, w := range []want{{"End", 0, 1}, {"End.DT4", 1000, 2}, {"End.DT6", 1000, 4}, {"End.DT46", 1001, 5}, {"End.DX6", 0, 3}, {"", 0, 0}} {
		s := st.Services[i].Config
		if s.Behavior != w.behavior || s.Table != w.table || s.Function != w.function {
			t.Errorf("%s: behaviour %q table %d function %d, want %q %d %d", s.Name, s.Behavior, s.Table, s.Function, w.behavior, w.table, w.function)
		}
	}
	if b := withoutVRF.Services[3].Config.Behavior; b != "End.DT6" {
		t.Errorf("IPv4+IPv6 LANs without VRF support: %s, want End.DT6 (End.DT46 needs a VRF)", b)
	}
	// An automatic behaviour follows the LAN prefixes; a chosen one stays.
	st.Services[1].Config.LANPrefixes = []netip.Prefix{p("2001:db8:2::/64")}
	st.Services[4].Config.LANPrefixes = []netip.Prefix{p("2001:db8:3::/64")}
	st.fillDefaults(withVRF)
	if b, mine := st.Services[1].Config.Behavior, st.Services[4].Config.Behavior; b != "End.DT6" || mine != "End.DX6" {
		t.Errorf("after new LAN prefixes: automatic %s (want End.DT6), chosen %s (want End.DX6)", b, mine)
	}
}

// An overlay that does not fit the config file (here: the file's remote
// route names a VPN the controller's services dropped) is set aside at
// start: the file's sections apply, and the CPE stays up.
func TestModelOverlaySetAside(t *testing.T) {
	doc := modelDoc + `  - {name: vpn, behavior: End.DT6, function: 0x6, vrf: blue, table: 100}
remote:
  - {prefix: "2001:db8:50::/48", vrf: blue, segments: ["2001:db8:2205:6::"]}
`
	for _, tc := range []struct{ name, overlay string }{
		{"unreadable", "{not json"},
		{"unknown version", `{"version": 9, "state": {}}`},
		{"does not fit the file", `{"version": 1, "state": {"srv6": {"LocatorLen": 48, "FunctionLen": 16, "EncapMode": "encap", "LocatorName": "loc1"},
			"services": [{"inst": 1, "type": "L3VPN", "config": {"Name": "other", "Behavior": "End.DT6", "Function": 7}}]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, OverlayFile), []byte(tc.overlay), 0o600); err != nil {
				t.Fatal(err)
			}
			m := startModel(t, doc, dir)
			sids := m.dp.sids()
			if sids[netip.MustParseAddr("2001:db8:1205:6::")] == "" || len(sids) != 2 {
				t.Errorf("kernel SIDs %v, want the file's end and vpn", sids)
			}
		})
	}
}

// Rollback (a later committer of the same SPV failed) brings the previous
// configuration back into the kernel.
func TestCommitterRollback(t *testing.T) {
	m := startModel(t, modelDoc, t.TempDir())
	c := &srv6Committer{m: m.agent.model}
	before, _ := m.agent.model.snapshot()
	changes := []cwmpclient.Change{{Name: "Device.X_ITU-INT_SRv6.Service.1.Function", Template: "Device.X_ITU-INT_SRv6.Service.{i}.Function", Idx: []uint32{1}, New: "0x9"}}
	if err := c.Commit(nil, changes); err != nil {
		t.Fatal(err)
	}
	if m.dp.sids()[netip.MustParseAddr("2001:db8:1205:9::")] != "End" {
		t.Fatalf("commit not applied: %v", m.dp.sids())
	}
	c.Rollback(nil, changes)
	if m.dp.sids()[netip.MustParseAddr("2001:db8:1205:1::")] != "End" || len(m.dp.sids()) != 1 {
		t.Errorf("after rollback the kernel has %v, want End at 2001:db8:1205:1::", m.dp.sids())
	}
	if after, _ := m.agent.model.snapshot(); !reflect.DeepEqual(before.Services, after.Services) {
		t.Errorf("after rollback the model is %+v, want %+v", after.Services, before.Services)
	}
}
