package dataplane

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestNormFilter(t *testing.T) {
	loc, peer := mustPrefix("fc00:1:1::/48"), mustPrefix("fc00:2:2::/48")
	tests := []struct {
		name string
		in   *SIDFilter
		wan  string
		want *SIDFilter
		err  string
	}{
		{"nil", nil, "wan0", nil, ""},
		{"no locators installs nothing", &SIDFilter{Allow: []netip.Prefix{peer}}, "wan0", nil, ""},
		{"wan filled in, sorted, deduplicated",
			&SIDFilter{Locators: []netip.Prefix{loc, loc}, Allow: []netip.Prefix{peer, mustPrefix("fc00::/32"), peer}}, "wan0",
			&SIDFilter{Interface: "wan0", Locators: []netip.Prefix{loc}, Allow: []netip.Prefix{mustPrefix("fc00::/32"), peer}}, ""},
		{"empty allow drops everything", &SIDFilter{Interface: "eth1", Locators: []netip.Prefix{loc}, Allow: []netip.Prefix{}}, "",
			&SIDFilter{Interface: "eth1", Locators: []netip.Prefix{loc}}, ""},
		{"no interface", &SIDFilter{Locators: []netip.Prefix{loc}}, "", nil, `interface ""`},
		{"IPv4 allow", &SIDFilter{Locators: []netip.Prefix{loc}, Allow: []netip.Prefix{mustPrefix("10.0.0.0/8")}}, "wan0", nil, "allowed source 10.0.0.0/8: not an IPv6 prefix"},
		{"host bits", &SIDFilter{Locators: []netip.Prefix{mustPrefix("fc00:1:1::1/48")}}, "wan0", nil, "host bits set (want fc00:1:1::/48)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normFilter(tc.in, tc.wan)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Renumbering our locator: the new locator's allows, then its drop, go in
// before anything goes; the old drop goes before the old allows.
func TestDiffRulesOrder(t *testing.T) {
	peer := []netip.Prefix{mustPrefix("fc00:2:2::/48")}
	old := planRules(&SIDFilter{Interface: "wan0", Locators: []netip.Prefix{mustPrefix("fc00:1:1::/48")}, Allow: peer})
	nu := planRules(&SIDFilter{Interface: "wan0", Locators: []netip.Prefix{mustPrefix("fc00:1:5::/48")}, Allow: peer})
	add, del := diffRules(old, nu)
	var got []string
	for _, r := range add {
		got = append(got, "+"+r.String())
	}
	for _, r := range del {
		got = append(got, "-"+r.String())
	}
	want := []string{
		"+rule 1000 from fc00:2:2::/48 to fc00:1:5::/48 iif wan0 lookup 254",
		"+rule 1001 from all to fc00:1:5::/48 iif wan0 blackhole",
		"-rule 1001 from all to fc00:1:1::/48 iif wan0 blackhole",
		"-rule 1000 from fc00:2:2::/48 to fc00:1:1::/48 iif wan0 lookup 254",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if a, d := diffRules(nu, nu); len(a)+len(d) != 0 {
		t.Fatalf("no-op diff gave %v %v", a, d)
	}
}

// What putRule writes, decodeRule reads back (after the kernel's header).
func TestRuleEncodeDecode(t *testing.T) {
	for _, r := range planRules(&SIDFilter{Interface: "wan0", Locators: []netip.Prefix{mustPrefix("fc00:1::/32")}, Allow: []netip.Prefix{mustPrefix("2001:db8::/48")}}) {
		var w wbuf
		w.putRule(1, r)
		got, proto, err := decodeRule(w.b[sizeofNlmsghdr:])
		if err != nil {
			t.Fatal(err)
		}
		if got != r || proto != RouteProtocol {
			t.Fatalf("read back %v proto %d, wrote %v", got, proto, r)
		}
	}
}

func FuzzDecodeRule(f *testing.F) {
	var w wbuf
	for _, r := range planRules(&SIDFilter{Interface: "wan0", Locators: []netip.Prefix{mustPrefix("fc00:1::/32")}, Allow: []netip.Prefix{mustPrefix("2001:db8::/48")}}) {
		w.b = w.b[:0]
		w.putRule(1, r)
		f.Add(append([]byte(nil), w.b[sizeofNlmsghdr:]...))
	}
	flows, err := flowKRules(sampleFlows(), allCaps)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range flows {
		w.b = w.b[:0]
		w.putRule(1, r)
		f.Add(append([]byte(nil), w.b[sizeofNlmsghdr:]...))
	}
	f.Add([]byte{10, 200, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, err := decodeRule(b)
		if err != nil {
			return
		}
		if r.Dst.IsValid() && (r.Dst.Addr().Is6() != (r.Family == unix.AF_INET6) || r.Dst.Bits() > r.Dst.Addr().BitLen()) {
			t.Fatalf("decoded destination %v", r.Dst)
		}
		_ = r.String()
	})
}

func FuzzDecodeTunsrc(f *testing.F) {
	var w wbuf
	x := mustAddr("fc00:1:1:ffff:ffff:ffff:ffff:ffff").As16()
	w.attr(seg6AttrDst, x[:])
	f.Add(w.b)
	f.Add([]byte{5, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeTunsrc(b)
		if err == nil && a.IsValid() && !a.Is6() {
			t.Fatalf("tunnel source %v is not IPv6", a)
		}
	})
}

func TestFakeSIDFilter(t *testing.T) {
	f := NewFake(Capabilities{})
	d := Desired{
		Locators:     []netip.Prefix{mustPrefix("fc00:1:1::/48")},
		SIDFilter:    &SIDFilter{Locators: []netip.Prefix{mustPrefix("fc00:1:1::/48")}, Allow: []netip.Prefix{mustPrefix("fc00:2:2::/48")}},
		TunnelSource: mustAddr("fc00:1:1:ffff:ffff:ffff:ffff:ffff"),
	}
	if err := f.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Installed(context.Background())
	want, _ := Normalize(d, Capabilities{}, "wan0")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("installed %+v\nwant %+v", got, want)
	}
	if st := f.Status(); st.Rules != 2 || st.TunnelSource != d.TunnelSource {
		t.Fatalf("status rules %d tunsrc %v", st.Rules, st.TunnelSource)
	}
	ops := f.Ops()
	if err := f.Apply(context.Background(), d); err != nil || f.Ops() != ops {
		t.Fatalf("re-apply: %v, %d ops", err, f.Ops()-ops)
	}
	d.SIDFilter = nil
	if err := f.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Installed(context.Background()); got.SIDFilter != nil {
		t.Fatalf("filter left: %+v", got.SIDFilter)
	}
}

// newASNS is a namespace with lo and a veth wan0 up, under this file's
// prefix ("as").
func newASNS(t *testing.T) *testNS {
	t.Helper()
	n := newBareNS(t, "as")
	n.ip(t, "link add wan0 type veth peer name peer0")
	n.ip(t, "link set wan0 up")
	n.ip(t, "link set peer0 up")
	return n
}

// ourRules lists "ip -6 rule" lines of protocol 198 (srv6cpe).
func ourRules(t *testing.T, n *testNS) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(n.ip(t, "-6 rule show")), "\n") {
		if strings.HasSuffix(l, " proto 198") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return out
}

func TestKernelSIDFilter(t *testing.T) {
	n := newASNS(t)
	k := openKernel(t, n)
	ctx := context.Background()
	loc := mustPrefix("fc00:1:1::/48")
	src := mustAddr("fc00:1:1:ffff:ffff:ffff:ffff:ffff")
	d := Desired{
		Locators:     []netip.Prefix{loc},
		LocalSIDs:    []LocalSID{{SID: mustAddr("fc00:1:1:100::"), Behavior: srv6.EndDX4, NH4: netip.IPv4Unspecified()}},
		SIDFilter:    &SIDFilter{Locators: []netip.Prefix{loc}, Allow: []netip.Prefix{mustPrefix("fc00:2:2::/48"), mustPrefix("fc00:3::/32")}},
		TunnelSource: src,
	}
	// A foreign rule at our priority and our destination: never touched.
	n.ip(t, "-6 rule add pref 1000 from fc00:9::/48 to fc00:1:1::/48 iif wan0 lookup main")
	foreign := "1000: from fc00:9::/48 to fc00:1:1::/48 iif wan0 lookup main"
	hasForeign := func() {
		t.Helper()
		if !strings.Contains(strings.Join(strings.Fields(n.ip(t, "-6 rule show")), " "), foreign) {
			t.Fatalf("foreign rule gone:\n%s", n.ip(t, "-6 rule show"))
		}
	}
	check := func(d Desired, rules []string) {
		t.Helper()
		if got := ourRules(t, n); !slices.Equal(got, rules) {
			t.Fatalf("rules\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(rules, "\n"))
		}
		checkInstalled(t, k, d)
		hasForeign()
	}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	rules := []string{
		"1000: from fc00:2:2::/48 to fc00:1:1::/48 iif wan0 lookup main proto 198",
		"1000: from fc00:3::/32 to fc00:1:1::/48 iif wan0 lookup main proto 198",
		"1001: from all to fc00:1:1::/48 iif wan0 blackhole proto 198",
	}
	check(d, rules)
	if got := strings.TrimSpace(n.ip(t, "sr tunsrc show")); got != "tunsrc addr "+src.String() {
		t.Fatalf("ip sr tunsrc show: %q", got)
	}
	if st := k.Status(); st.Rules != 3 || st.TunnelSource != src {
		t.Fatalf("status rules %d tunsrc %v", st.Rules, st.TunnelSource)
	}

	// Level-triggered: what is removed behind our back comes back, and
	// only that (one rule + the tunnel source = 2 changes).
	n.ip(t, "-6 rule del pref 1001 to fc00:1:1::/48 iif wan0 blackhole")
	n.ip(t, "sr tunsrc set ::")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(d, rules)
	if got := strings.TrimSpace(n.ip(t, "sr tunsrc show")); got != "tunsrc addr "+src.String() {
		t.Fatalf("tunsrc not restored: %q", got)
	}
	// A rule of ours with something we never set is replaced.
	n.ip(t, "-6 rule add pref 1000 from fc00:2:2::/48 to fc00:1:1::/48 iif wan0 fwmark 7 lookup main proto 198")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(d, rules)

	// Our locator renumbers, a peer goes: the rules follow.
	nloc := mustPrefix("fc00:1:5::/48")
	d.Locators = []netip.Prefix{nloc}
	d.LocalSIDs[0].SID = mustAddr("fc00:1:5:100::")
	d.SIDFilter = &SIDFilter{Locators: []netip.Prefix{nloc}, Allow: []netip.Prefix{mustPrefix("fc00:2:2::/48")}}
	d.TunnelSource = mustAddr("fc00:1:5:ffff:ffff:ffff:ffff:ffff")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(d, []string{
		"1000: from fc00:2:2::/48 to fc00:1:5::/48 iif wan0 lookup main proto 198",
		"1001: from all to fc00:1:5::/48 iif wan0 blackhole proto 198",
	})

	// Filter off: all of ours go, the foreign rule stays.
	d.SIDFilter = nil
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(d, nil)

	// An invalid filter changes nothing.
	d.SIDFilter = &SIDFilter{Locators: []netip.Prefix{nloc}, Allow: []netip.Prefix{mustPrefix("10.0.0.0/8")}}
	if err := k.Apply(ctx, d); err == nil || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Fatalf("invalid filter: %v", err)
	}
}
