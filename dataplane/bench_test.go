package dataplane

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// vpnEncaps is n IPv4 VPN routes 10.x.y.0/24, spread over `remotes`
// remote End.DT4 SIDs (one segment each, as a VPN route learned by BGP).
func vpnEncaps(n, remotes int) []EncapRoute {
	out := make([]EncapRoute, n)
	for i := range out {
		out[i] = EncapRoute{
			Prefix:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24),
			Segments: []netip.Addr{netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0xa, 0, byte(i % remotes), 0, 4})},
		}
	}
	return out
}

// ipBatch writes the same routes as an `ip -batch` file: one seg6 encap
// per route, which is what iproute2 users write. They carry proto static
// so that the two sides never see each other's routes.
func ipBatch(tb testing.TB, encaps []EncapRoute) string {
	var b strings.Builder
	for _, e := range encaps {
		segs := make([]string, len(e.Segments))
		for i, s := range e.Segments {
			segs[i] = s.String()
		}
		fmt.Fprintf(&b, "route add %s proto static encap seg6 mode encap segs %s dev wan0\n", e.Prefix, strings.Join(segs, ","))
	}
	p := filepath.Join(tb.TempDir(), "routes.batch")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkEncap10kVsIPBatch installs 10,000 IPv4 VPN encap routes with
// Apply (from an empty table: read, diff, nexthop objects, routes) and
// with `ip -batch` of the same routes, alternating which goes first, in
// one throwaway namespace. ns/op is Apply's mean; ipbatch-ns/op is ip's;
// ratio is median(Apply) / median(ip -batch), medians so that a burst of
// load from elsewhere on the machine does not decide it (the goal is
// <= 0.25). Run it with -benchtime 10x or more.
func BenchmarkEncap10kVsIPBatch(b *testing.B) {
	n := newTestNS(b)
	k := openKernel(b, n)
	const routes = 10000
	d := Desired{Encaps: vpnEncaps(routes, 4)}
	file := ipBatch(b, d.Encaps)
	ctx := context.Background()

	var ours, ip time.Duration
	var oursAll, ipAll []time.Duration
	ipFailed := 0
	// Each side starts from a settled kernel: freeing the other side's
	// 10,000 routes goes on in RCU callbacks after the flush returns.
	const settle = 100 * time.Millisecond
	runOurs := func() {
		time.Sleep(settle)
		t0 := time.Now()
		b.StartTimer()
		err := k.Apply(ctx, d)
		b.StopTimer()
		ours += time.Since(t0)
		oursAll = append(oursAll, time.Since(t0))
		if err != nil {
			b.Fatalf("Apply: %v", err)
		}
		if err := k.Apply(ctx, Desired{}); err != nil {
			b.Fatalf("Apply(empty): %v", err)
		}
	}
	runIP := func() {
		cmd := exec.Command("ip", "-n", n.name, "-force", "-batch", file)
		time.Sleep(settle)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		ip += time.Since(t0)
		ipAll = append(ipAll, time.Since(t0))
		if err != nil {
			// -force goes on after a failed line (per-route encap states
			// can hit ENOMEM under bursts); count them.
			ipFailed += strings.Count(string(out), "Command failed")
		}
		n.ip(b, "-4 route flush proto static")
	}
	b.StopTimer()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			runOurs()
			runIP()
		} else {
			runIP()
			runOurs()
		}
	}
	b.ReportMetric(float64(ip.Nanoseconds())/float64(b.N), "ipbatch-ns/op")
	b.ReportMetric(float64(median(oursAll))/float64(median(ipAll)), "ratio")
	b.ReportMetric(float64(ipFailed)/float64(b.N), "ipbatch-failed/op")
}

func median[T cmp.Ordered](d []T) T {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkApplyNoChange is the steady state: the agent re-applies the
// same 10,000 routes after an unrelated event (read, diff, nothing sent).
func BenchmarkApplyNoChange(b *testing.B) {
	n := newTestNS(b)
	k := openKernel(b, n)
	d := Desired{Encaps: vpnEncaps(10000, 4)}
	ctx := context.Background()
	if err := k.Apply(ctx, d); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := k.Apply(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicySwitch times one SRv6 policy switch: an Apply that moves
// the N routes of one service table from a 3:1 share over two segment
// lists to 1:3 (a new nexthop group, N route replaces, the old group
// deleted). The anchor, measured in the same run, is the no-op Apply of
// the same state (read, diff, nothing sent); ratio is median(switch) /
// median(no-op).
func BenchmarkPolicySwitch(b *testing.B) {
	for _, routes := range []int{1, 100} {
		b.Run(fmt.Sprintf("routes=%d", routes), func(b *testing.B) {
			n := newTestNS(b)
			k := openKernel(b, n)
			ctx := context.Background()
			p1, p2 := addrs("2001:db8:a1::1", "2001:db8:a3::4"), addrs("2001:db8:a2::4")
			choice := func(i int) Desired {
				w1, w2 := uint32(3), uint32(1)
				if i%2 == 1 {
					w1, w2 = 1, 3
				}
				d := Desired{FlowRules: []FlowRule{{Priority: 600, Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, DstPorts: PortRange{Lo: 5000}, Table: 100}}}
				for r := 0; r < routes; r++ {
					d.Encaps = append(d.Encaps, EncapRoute{
						Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 60, byte(r), 0}), 24), Table: 100,
						Paths: []EncapPath{{p1, w1}, {p2, w2}},
					})
				}
				return d
			}
			if err := k.Apply(ctx, choice(0)); err != nil {
				b.Fatal(err)
			}
			var sw, noop []time.Duration
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				d := choice(i)
				t0 := time.Now()
				if err := k.Apply(ctx, d); err != nil {
					b.Fatal(err)
				}
				sw = append(sw, time.Since(t0))
				b.StopTimer()
				t0 = time.Now()
				if err := k.Apply(ctx, d); err != nil {
					b.Fatal(err)
				}
				noop = append(noop, time.Since(t0))
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(median(noop).Nanoseconds()), "noop-ns/op")
			b.ReportMetric(float64(median(sw))/float64(median(noop)), "ratio")
		})
	}
}
