package agent

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/srv6cpe/srv6cpe/bgp"
	"github.com/srv6cpe/srv6cpe/dataplane"
	"github.com/srv6cpe/srv6cpe/srv6"
)

func TestSIDFilter(t *testing.T) {
	on, off := true, false
	loc := netip.MustParsePrefix("2001:db8:1:100::/56")
	d := srv6.Derivation{Locator: loc, SIDs: []srv6.ServiceSID{{Name: "vpn", SID: netip.MustParseAddr("2001:db8:1:100:100::")}}}
	peerRoute := bgp.Route{SID: netip.MustParseAddr("2001:db8:2:200:100::")}
	src := netip.MustParseAddr("2001:db8:1:1ff:ffff:ffff:ffff:ffff")
	base := func() Config {
		var c Config
		c.WAN.Interface = "eth1"
		c.SRv6.LocatorLen = 56
		return c
	}
	tests := []struct {
		name      string
		cfg       func(c *Config)
		imported  []bgp.Route
		wantAllow []string // nil: no filter
	}{
		{"static only: off by default", func(c *Config) {}, nil, nil},
		{"bgp: on, peer locator at our locator length, listed once", func(c *Config) { c.BGP = &bgp.Config{} },
			[]bgp.Route{peerRoute, peerRoute}, []string{"2001:db8:2:200::/56"}},
		{"bgp with no peer yet: everything dropped", func(c *Config) { c.BGP = &bgp.Config{} }, nil, []string{}},
		{"peer_locator_len", func(c *Config) { c.BGP = &bgp.Config{}; c.SRv6.PeerLocatorLen = 48 },
			[]bgp.Route{peerRoute}, []string{"2001:db8:2::/48"}},
		{"allow-list and static far ends", func(c *Config) {
			c.SRv6.SIDAllow = []netip.Prefix{netip.MustParsePrefix("2001:db8:ff::/48")}
			c.Remote = []RemoteRoute{{Segments: []netip.Addr{netip.MustParseAddr("2001:db8:7:700::1"), netip.MustParseAddr("2001:db8:3:300:100::")}}}
		}, nil, []string{"2001:db8:ff::/48", "2001:db8:3:300::/56"}},
		{"explicitly off", func(c *Config) { c.BGP = &bgp.Config{}; c.SRv6.SIDFilter = &off }, []bgp.Route{peerRoute}, nil},
		{"explicitly on without sources", func(c *Config) { c.SRv6.SIDFilter = &on }, nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.cfg(&c)
			f, a := sidFilter(c, d, tc.imported)
			if tc.wantAllow == nil {
				if f != nil || a.IsValid() {
					t.Fatalf("filter %+v, tunnel source %v; want none", f, a)
				}
				return
			}
			var allow []string
			for _, p := range f.Allow {
				allow = append(allow, p.String())
			}
			if f.Interface != "eth1" || !reflect.DeepEqual(f.Locators, []netip.Prefix{loc}) || strings.Join(allow, ",") != strings.Join(tc.wantAllow, ",") {
				t.Fatalf("filter %+v (allow %v), want allow %v", f, allow, tc.wantAllow)
			}
			if a != src {
				t.Fatalf("tunnel source %v, want %v", a, src)
			}
		})
	}
}

func TestSIDTunnelSourceAvoidsSIDs(t *testing.T) {
	loc := netip.MustParsePrefix("2001:db8:1:100::/126")
	d := srv6.Derivation{Locator: loc, SIDs: []srv6.ServiceSID{
		{SID: netip.MustParseAddr("2001:db8:1:100::3")}, {SID: netip.MustParseAddr("2001:db8:1:100::2")}}}
	if got := sidTunnelSource(d); got != netip.MustParseAddr("2001:db8:1:100::1") {
		t.Fatalf("tunnel source %v", got)
	}
}

func TestValidateSIDFilterKeys(t *testing.T) {
	var c Config
	c.SRv6.PeerLocatorLen = 129
	c.SRv6.SIDAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/48")}
	errs := c.validateSIDFilter()
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	want := []string{
		"srv6.peer_locator_len: 129 is outside 1..128 (0 = srv6.locator_len)",
		"srv6.sid_allow[0]: 10.0.0.0/8 is not an IPv6 prefix",
		"srv6.sid_allow[1]: 2001:db8::1/48 has host bits set (want 2001:db8::/48)",
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Fatalf("errors\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}

// The filter follows renumbering on both sides through desiredState's
// inputs: our derivation and the imported routes.
func TestSIDFilterFollowsRenumbering(t *testing.T) {
	var c Config
	c.WAN.Interface = "eth1"
	c.SRv6.LocatorLen = 56
	c.BGP = &bgp.Config{}
	mk := func(loc, peer string) *dataplane.SIDFilter {
		f, _ := sidFilter(c, srv6.Derivation{Locator: netip.MustParsePrefix(loc)}, []bgp.Route{{SID: netip.MustParseAddr(peer)}})
		return f
	}
	a := mk("2001:db8:1:100::/56", "2001:db8:2:200:100::")
	b := mk("2001:db8:9:100::/56", "2001:db8:8:200:100::")
	if a.Locators[0] == b.Locators[0] || a.Allow[0] == b.Allow[0] || b.Allow[0] != netip.MustParsePrefix("2001:db8:8:200::/56") {
		t.Fatalf("before %+v after %+v", a, b)
	}
}
