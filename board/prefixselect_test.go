package board

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func ac(s string, flags uint32, pref uint32) addrCandidate {
	return addrCandidate{Prefix: netip.MustParsePrefix(s), Flags: flags, PreferredLft: pref}
}

const forever = 0xffffffff

func TestPickAddress(t *testing.T) {
	tests := []struct {
		name   string
		cands  []addrCandidate
		hostOK bool
		want   string // "" = none
	}{
		{"empty", nil, false, ""},
		{"one global", []addrCandidate{ac("2001:db8:1200::1/40", 0, forever)}, false, "2001:db8:1200::1/40"},
		{"link-local only", []addrCandidate{ac("fe80::1/64", 0, forever)}, false, ""},
		{"link-local ignored", []addrCandidate{ac("fe80::1/64", 0, forever), ac("2001:db8:1200::1/40", 0, forever)}, false, "2001:db8:1200::1/40"},
		{"temporary ignored", []addrCandidate{ac("2001:db8:1200::aaaa/40", unix.IFA_F_TEMPORARY, 9000), ac("2001:db8:1200::1/40", 0, 100)}, false, "2001:db8:1200::1/40"},
		{"dadfailed ignored", []addrCandidate{ac("2001:db8:1200::1/40", unix.IFA_F_DADFAILED, forever)}, false, ""},
		{"global over ULA", []addrCandidate{ac("fd00::1/48", 0, forever), ac("2001:db8:1200::1/40", unix.IFA_F_DEPRECATED, 0)}, false, "2001:db8:1200::1/40"},
		{"ULA when alone", []addrCandidate{ac("fd00::1/48", 0, forever)}, false, "fd00::1/48"},
		{"non-deprecated over deprecated", []addrCandidate{ac("2001:db8:1200::1/40", unix.IFA_F_DEPRECATED, 0), ac("2001:db8:4400::1/40", 0, 3600)}, false, "2001:db8:4400::1/40"},
		{"non-tentative over tentative", []addrCandidate{ac("2001:db8:1200::1/40", unix.IFA_F_TENTATIVE, forever), ac("2001:db8:4400::1/40", 0, 3600)}, false, "2001:db8:4400::1/40"},
		{"optimistic counts as not ready", []addrCandidate{ac("2001:db8:1200::1/40", unix.IFA_F_OPTIMISTIC, forever), ac("2001:db8:4400::1/40", 0, 3600)}, false, "2001:db8:4400::1/40"},
		{"tentative when alone", []addrCandidate{ac("2001:db8:1200::1/40", unix.IFA_F_TENTATIVE, forever)}, false, "2001:db8:1200::1/40"},
		{"longer preferred lifetime", []addrCandidate{ac("2001:db8:1200::1/40", 0, 3600), ac("2001:db8:4400::1/40", 0, 7200)}, false, "2001:db8:4400::1/40"},
		{"forever beats any lifetime", []addrCandidate{ac("2001:db8:4400::1/40", 0, 7200), ac("2001:db8:1200::1/40", 0, forever)}, false, "2001:db8:1200::1/40"},
		{"lowest address on a tie", []addrCandidate{ac("2001:db8:4400::1/40", 0, forever), ac("2001:db8:1200::1/40", 0, forever)}, false, "2001:db8:1200::1/40"},
		{"host address skipped in address mode", []addrCandidate{ac("2001:db8:ffff::5/128", 0, forever), ac("2001:db8:1200::1/40", 0, 10)}, false, "2001:db8:1200::1/40"},
		{"host address taken when allowed", []addrCandidate{ac("2001:db8:ffff::5/128", 0, forever)}, true, "2001:db8:ffff::5/128"},
		{"loopback and mapped ignored", []addrCandidate{ac("::1/128", 0, forever), ac("::ffff:192.0.2.1/120", 0, forever)}, true, ""},
		{"multicast ignored", []addrCandidate{ac("ff02::1/16", 0, forever)}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The choice must not depend on the order the kernel lists addresses in.
			for i := range 10 {
				cands := append([]addrCandidate(nil), tc.cands...)
				rand.New(rand.NewPCG(uint64(i), 1)).Shuffle(len(cands), func(a, b int) { cands[a], cands[b] = cands[b], cands[a] })
				got, ok := pickAddress(cands, tc.hostOK)
				if tc.want == "" {
					if ok {
						t.Fatalf("pickAddress = %v, want none", got)
					}
					continue
				}
				if !ok || got != netip.MustParsePrefix(tc.want) {
					t.Fatalf("pickAddress(%v) = %v, %v; want %s", cands, got, ok, tc.want)
				}
			}
		})
	}
}

func rc(s string, typ, proto int) routeCandidate {
	return routeCandidate{Dst: netip.MustParsePrefix(s), Type: typ, Protocol: proto}
}

func TestPickRoute(t *testing.T) {
	const (
		unreach = unix.RTN_UNREACHABLE
		agent   = 0xc6
	)
	tests := []struct {
		name   string
		routes []routeCandidate
		f      routeFilter
		want   string
	}{
		{"empty", nil, routeFilter{}, ""},
		{"odhcp6c style", []routeCandidate{rc("2001:db8:1200::/40", unreach, unix.RTPROT_STATIC)}, routeFilter{}, "2001:db8:1200::/40"},
		{"host bits masked", []routeCandidate{rc("2001:db8:1200::1/40", unreach, unix.RTPROT_STATIC)}, routeFilter{}, "2001:db8:1200::/40"},
		{"unicast routes ignored", []routeCandidate{rc("2001:db8:1200::/40", unix.RTN_UNICAST, unix.RTPROT_STATIC)}, routeFilter{}, ""},
		{"blackhole ignored", []routeCandidate{rc("2001:db8::/32", unix.RTN_BLACKHOLE, unix.RTPROT_STATIC)}, routeFilter{}, ""},
		{"default and host ignored", []routeCandidate{rc("::/0", unreach, 0), rc("2001:db8::1/128", unreach, 0)}, routeFilter{}, ""},
		{"link-local ignored", []routeCandidate{rc("fe80::/64", unreach, 0)}, routeFilter{}, ""},
		{"protocol filter", []routeCandidate{rc("2001:db8:1200::/40", unreach, unix.RTPROT_STATIC), rc("2001:db8:4400::/40", unreach, unix.RTPROT_DHCP)}, routeFilter{Protocol: unix.RTPROT_DHCP}, "2001:db8:4400::/40"},
		{"agent locator ignored, delegation kept", []routeCandidate{rc("2001:db8:12ff::/48", unreach, agent), rc("2001:db8:1200::/40", unreach, unix.RTPROT_STATIC)}, routeFilter{Ignore: []int{agent}}, "2001:db8:1200::/40"},
		{"agent locator alone is not a delegation", []routeCandidate{rc("2001:db8:12ff::/48", unreach, agent)}, routeFilter{Ignore: []int{agent}}, ""},
		{"shortest prefix wins", []routeCandidate{rc("2001:db8:1234::/48", unreach, 0), rc("2001:db8:1200::/40", unreach, 0)}, routeFilter{}, "2001:db8:1200::/40"},
		{"global before ULA", []routeCandidate{rc("fd00::/40", unreach, 0), rc("2001:db8:1200::/48", unreach, 0)}, routeFilter{}, "2001:db8:1200::/48"},
		{"lowest address on a tie", []routeCandidate{rc("2001:db8:4400::/40", unreach, 0), rc("2001:db8:1200::/40", unreach, 0)}, routeFilter{}, "2001:db8:1200::/40"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 10 {
				routes := append([]routeCandidate(nil), tc.routes...)
				rand.New(rand.NewPCG(uint64(i), 2)).Shuffle(len(routes), func(a, b int) { routes[a], routes[b] = routes[b], routes[a] })
				got, ok := pickRoute(routes, tc.f)
				if tc.want == "" {
					if ok {
						t.Fatalf("pickRoute = %v, want none", got)
					}
					continue
				}
				if !ok || got != netip.MustParsePrefix(tc.want) {
					t.Fatalf("pickRoute(%v) = %v, %v; want %s", routes, got, ok, tc.want)
				}
			}
		})
	}
}
