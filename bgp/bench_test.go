package bgp

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/srv6"
)

const benchRoutes = 10000

// benchExport is one instance with n VPNv4 /24s, the CPE scale of issue 4.
func benchExport(n int, sid string) []Export {
	ps := make([]netip.Prefix, n)
	for i := range ps {
		ps[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	return []Export{{
		Instance: "red", RD: "65000:1", ExportRTs: []string{"65000:100"}, Prefixes: ps,
		SID: netip.MustParseAddr(sid), Behavior: srv6.EndDT4, Structure: testStructure,
		NextHop: netip.MustParseAddr("2001:db8:ffff::1"),
	}}
}

func allWithSID(sid string, n int) func([]Route) bool {
	a := netip.MustParseAddr(sid)
	return func(rs []Route) bool {
		if len(rs) != n {
			return false
		}
		for _, r := range rs {
			if r.SID != a {
				return false
			}
		}
		return true
	}
}

// BenchmarkLearn10k: one speaker advertises 10,000 VPNv4 routes, the other
// learns them over loopback; an iteration ends when B's Watch has delivered
// all of them. The anchor, measured in the same run, is building the 10,000
// paths alone (buildExports): the ratio says how much the BGP exchange costs
// on top of it.
func BenchmarkLearn10k(b *testing.B) {
	a, s, _, _ := twoSpeakers(b)
	benchLearn(b, a, s)
}

// BenchmarkLearn10kViaFRR is BenchmarkLearn10k through FRR's bgpd as the
// route reflector (issue 4's path, without the kernel install).
func BenchmarkLearn10kViaFRR(b *testing.B) {
	f := startFRR(b, 2)
	a, s := f.client(b, 0, "A"), f.client(b, 1, "B")
	runSpeaker(b, a)
	runSpeaker(b, s)
	waitEstablished(b, s, 20*time.Second)
	benchLearn(b, a, s)
}

func benchLearn(b *testing.B, a, s *Speaker) {
	if err := s.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		b.Fatal(err)
	}
	waitEstablished(b, a, 20*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := s.Watch(ctx)

	var anchor time.Duration
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		if _, err := buildExports(benchExport(benchRoutes, "fd00:a::1")); err != nil {
			b.Fatal(err)
		}
		anchor += time.Since(t0)
	}
	anchor /= 3

	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := a.SetExports(nil); err != nil {
			b.Fatal(err)
		}
		waitRoutes(b, w, 60*time.Second, "withdrawal of all routes", func(rs []Route) bool { return len(rs) == 0 })
		sid := fmt.Sprintf("fd00:a::%x", i+1)
		ex := benchExport(benchRoutes, sid)
		b.StartTimer()
		t0 := time.Now()
		if err := a.SetExports(ex); err != nil {
			b.Fatal(err)
		}
		waitRoutes(b, w, 60*time.Second, "10k routes", allWithSID(sid, benchRoutes))
		total += time.Since(t0)
	}
	b.StopTimer()
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(benchRoutes)/per.Seconds(), "routes/s")
	b.ReportMetric(float64(per.Milliseconds()), "ms/10k")
	b.ReportMetric(float64(per)/float64(anchor), "x-build-anchor")
}

// BenchmarkReceiverRSS10k measures the memory of a process that holds only
// the receiving speaker with 10,000 learned routes (issue 4's goal: the
// receiving agent under 40 MB RSS). The receiver is this test binary re-run
// in helper mode; it reports its own VmRSS and Go heap. The anchor is the
// same helper's RSS before any route arrived. GOGC / GOMEMLIMIT in the
// environment reach the helper, to see what the daemon's settings would give.
func BenchmarkReceiverRSS10k(b *testing.B) {
	for i := 0; i < b.N; i++ {
		port := freePort(b, "127.0.0.2")
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReceiver$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("BGP_HELPER_RECEIVER=%d:%d", port, benchRoutes))
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		a, err := New(Config{
			LocalAS: 65000, RouterID: "10.0.0.1", ListenPort: -1,
			Neighbors: []Neighbor{{Address: "127.0.0.2", RemoteAS: 65000, Port: uint16(port), SourceAddress: "127.0.0.1", ConnectRetry: 1}},
		}, testLogger(b, "A"))
		if err != nil {
			b.Fatal(err)
		}
		if err := a.SetExports(benchExport(benchRoutes, "fd00:a::1")); err != nil {
			b.Fatal(err)
		}
		stop := runSpeaker(b, a)
		res := map[string]float64{}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			for _, f := range strings.Fields(sc.Text()) {
				if k, v, ok := strings.Cut(f, "="); ok && strings.HasSuffix(k, "_KB") {
					n, _ := strconv.ParseFloat(v, 64)
					res[k] = n
				}
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("receiver helper: %v", err)
		}
		stop()
		if res["RSS_KB"] == 0 {
			b.Fatal("receiver helper reported nothing")
		}
		b.ReportMetric(res["RSS_KB"]/1024, "rss-MB")
		b.ReportMetric(res["SETTLED_RSS_KB"]/1024, "settled-rss-MB")
		b.ReportMetric(res["ANON_KB"]/1024, "settled-anon-MB")
		b.ReportMetric(res["HEAP_KB"]/1024, "heap-MB")
		b.ReportMetric(res["IDLE_RSS_KB"]/1024, "idle-rss-MB")
	}
}

// TestHelperReceiver is the receiving speaker of BenchmarkReceiverRSS10k;
// it only runs when the benchmark starts it.
func TestHelperReceiver(t *testing.T) {
	env := os.Getenv("BGP_HELPER_RECEIVER")
	if env == "" {
		t.Skip("helper process of BenchmarkReceiverRSS10k")
	}
	ps, ns, _ := strings.Cut(env, ":")
	port, _ := strconv.Atoi(ps)
	n, _ := strconv.Atoi(ns)
	s, err := New(Config{
		LocalAS: 65000, RouterID: "10.0.0.2", ListenPort: port, ListenAddresses: []string{"127.0.0.2"},
		Neighbors: []Neighbor{{Address: "127.0.0.1", RemoteAS: 65000, Passive: true}},
	}, testLogger(t, "receiver"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	idle := vmRSSKB(t)
	runSpeaker(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Hold the delivered set, as the agent would.
	routes := waitRoutes(t, s.Watch(ctx), 60*time.Second, "all routes", func(rs []Route) bool { return len(rs) == n })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := vmRSSKB(t)
	debug.FreeOSMemory() // what the scavenger gives back over time
	fmt.Printf("RSS_KB=%d SETTLED_RSS_KB=%d ANON_KB=%d FILE_KB=%d HEAP_KB=%d IDLE_RSS_KB=%d ROUTES=%d\n",
		rss, vmRSSKB(t), procStatusKB(t, "RssAnon:"), procStatusKB(t, "RssFile:"), ms.HeapInuse/1024, idle, len(routes))
}

func vmRSSKB(t testing.TB) int { return procStatusKB(t, "VmRSS:") }

// procStatusKB reads a "Name:  N kB" line of /proc/self/status.
func procStatusKB(t testing.TB, name string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", name)
	return 0
}

// BenchmarkPeers10k: Peers() on a speaker that has learned 10,000 routes and
// advertises 10,000 of its own; the agent calls it every second, so what it
// allocates is garbage the daemon makes all the time. Two figures: a call
// that asks GoBGP (after a session or route change) and a call between
// changes (answered from the last listing). The anchor, measured in the same
// run, is a call that asks GoBGP on the same speakers without routes.
func BenchmarkPeers10k(b *testing.B) {
	a, s, _, _ := twoSpeakers(b)
	if err := s.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		b.Fatal(err)
	}
	waitEstablished(b, a, 20*time.Second)
	per := func(ask bool) (time.Duration, float64) {
		const n = 20
		var took time.Duration
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		for range n {
			if ask {
				s.mu.Lock()
				s.peers.valid = false
				s.mu.Unlock()
			}
			t0 := time.Now()
			s.Peers()
			took += time.Since(t0)
		}
		runtime.ReadMemStats(&ms1)
		return took / n, float64(ms1.TotalAlloc-ms0.TotalAlloc) / n
	}
	anchorTime, anchorBytes := per(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := s.Watch(ctx)
	if err := a.SetExports(benchExport(benchRoutes, "fd00:a::1")); err != nil {
		b.Fatal(err)
	}
	own := benchExport(benchRoutes, "fd00:b::1")
	own[0].RD, own[0].ExportRTs = "65000:2", []string{"65000:200"}
	if err := s.SetExports(own); err != nil {
		b.Fatal(err)
	}
	waitRoutes(b, w, 60*time.Second, "10k routes", allWithSID("fd00:a::1", benchRoutes))
	s.mu.Lock()
	s.peers.valid = false // the counts as of now, not up to peersRefresh ago
	s.mu.Unlock()
	if ps := s.Peers(); len(ps) != 1 || ps[0].PrefixesReceived != benchRoutes || ps[0].PrefixesSent != benchRoutes {
		b.Fatalf("Peers() = %+v, want %d prefixes received and sent", ps, benchRoutes)
	}
	b.ResetTimer()
	var askTime, pollTime time.Duration
	var askBytes, pollBytes float64
	for i := 0; i < b.N; i++ {
		t, by := per(true)
		askTime, askBytes = askTime+t, askBytes+by
		t, by = per(false)
		pollTime, pollBytes = pollTime+t, pollBytes+by
	}
	b.StopTimer()
	n := time.Duration(b.N)
	askTime, pollTime, askBytes, pollBytes = askTime/n, pollTime/n, askBytes/float64(b.N), pollBytes/float64(b.N)
	b.ReportMetric(float64(askTime.Microseconds()), "µs/asking-call")
	b.ReportMetric(askBytes/1024, "KiB/asking-call")
	b.ReportMetric(float64(pollTime.Nanoseconds())/1000, "µs/poll")
	b.ReportMetric(pollBytes/1024, "KiB/poll")
	fmt.Printf("Peers() with 10k routes learned and 10k advertised: asking GoBGP %s and %.0f KiB allocated (%.0fx the no-route anchor's %s, %.0f KiB); between changes %s and %.1f KiB\n",
		askTime.Round(time.Microsecond), askBytes/1024, float64(askTime)/float64(anchorTime), anchorTime.Round(time.Microsecond), anchorBytes/1024,
		pollTime.Round(100*time.Nanosecond), pollBytes/1024)
}
