package twamp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Benchmarks, run with SRV6CPE_BENCH=1 as root. They print figures and
// ratios measured in the same run; they assert nothing about speed.
//
//	SRV6CPE_BENCH=1 go test -count=1 -run '^TestBench' -v ./twamp/

func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv("SRV6CPE_BENCH") != "1" {
		t.Skip("benchmark: set SRV6CPE_BENCH=1 (and run as root)")
	}
	requireRoot(t, "the benchmark")
}

const (
	reflectorCPU = "1" // the reflector and the CPU hogs
	generatorCPU = 0   // the load generator's threads
)

// TestHelperReflectorProcess is not a test: the benchmarks run the Go
// reflector as its own process (this test binary with the env variable
// set) so it can be pinned to a core exactly like the C anchor.
func TestHelperReflectorProcess(t *testing.T) {
	port := os.Getenv("TWAMP_HELPER_REFLECTOR_PORT")
	if port == "" {
		t.Skip("helper process for the benchmarks")
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReflector(ReflectorConfig{Port: uint16(p)}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if p := os.Getenv("TWAMP_HELPER_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	fmt.Fprintf(os.Stderr, "go reflector: received %d reflected %d\n", st.Received, st.Reflected)
}

// startProc runs a reflector process in ns pinned to the reflector's CPU;
// it is killed at cleanup.
func startProc(t *testing.T, ns string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	full := append([]string{"netns", "exec", ns, "taskset", "-c", cpuOr(reflectorCPU)}, args...)
	cmd := exec.Command("ip", full...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

func cpuOr(cpu string) string {
	if runtime.NumCPU() < 2 {
		return "0"
	}
	return cpu
}

func goReflectorProc(t *testing.T, ns string, port int) *exec.Cmd {
	return startProc(t, ns, []string{"TWAMP_HELPER_REFLECTOR_PORT=" + strconv.Itoa(port)},
		os.Args[0], "-test.run=^TestHelperReflectorProcess$")
}

func cAnchorProc(t *testing.T, ns string, port int) *exec.Cmd {
	t.Helper()
	gcc := needTool(t, "gcc")
	src, _ := filepath.Abs("testdata/anchor/reflector.c")
	bin := filepath.Join(t.TempDir(), "anchor-reflector")
	netnstest.Run(t, gcc, "-O2", "-o", bin, src)
	return startProc(t, ns, nil, bin, strconv.Itoa(port))
}

// waitReflector probes until the reflector answers.
func waitReflector(t *testing.T, ns string, dst netip.AddrPort) {
	t.Helper()
	var c *net.UDPConn
	var err error
	inNS(t, ns, func() { c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst)) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 128)
	for i := 0; i < 100; i++ {
		c.Write(make([]byte, BaseLen))
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(buf); err == nil {
			return
		}
	}
	t.Fatalf("reflector at %v never answered", dst)
}

func pinThread(cpu int) {
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	if runtime.NumCPU() < 2 {
		return
	}
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set)
}

// udp6In is the number of UDP datagrams that reached sockets in ns,
// delivered or dropped at a full receive buffer.
func udp6In(t *testing.T, ns string) uint64 {
	var n uint64
	for _, line := range strings.Split(netnstest.Exec(t, ns, "cat", "/proc/net/snmp6"), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "Udp6InDatagrams" || f[0] == "Udp6InErrors") {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			n += v
		}
	}
	return n
}

// blast offers 44-octet requests to dst as fast as sendmmsg goes for d and
// counts the replies that come back: the reflected rate when the reflector
// saturates. The generator never reads the replies (the kernel counts
// them), so its own CPU goes to sending and the reflector is the limit.
func blast(t *testing.T, ns string, dst netip.AddrPort, d time.Duration) (sent, got uint64) {
	t.Helper()
	var conn *net.UDPConn
	var err error
	inNS(t, ns, func() { conn, err = listenUDP(netip.AddrPortFrom(netip.IPv6Unspecified(), 0), false) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, _ := conn.SyscallConn()
	before := udp6In(t, ns)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pinThread(generatorCPU)
		out := newBatch(32, 64)
		seq := uint32(0)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			for i := range out.msgs {
				clear(out.bufs[i][:BaseLen])
				binary.BigEndian.PutUint32(out.bufs[i], seq)
				seq++
				out.prepSend(i, BaseLen, dst, 0)
			}
			var n int
			var errno syscall.Errno
			if err := rc.Write(func(fd uintptr) bool {
				n, errno = mmsg(unix.SYS_SENDMMSG, fd, out.msgs, 0)
				return errno != unix.EAGAIN
			}); err != nil {
				return
			}
			if errno == 0 {
				sent += uint64(n)
			}
		}
	}()
	<-done
	time.Sleep(200 * time.Millisecond) // replies in flight
	return sent, udp6In(t, ns) - before
}

func TestBenchReflectorThroughput(t *testing.T) {
	requireBench(t)
	s, r := pairNS(t)
	const rounds, dur = 9, time.Second
	dstGo := netip.MustParseAddrPort("[fd00:1::2]:862")
	dstC := netip.MustParseAddrPort("[fd00:1::2]:863")
	goProc := goReflectorProc(t, r, 862)
	cProc := cAnchorProc(t, r, 863)
	waitReflector(t, s, dstGo)
	waitReflector(t, s, dstC)
	var goRates, cRates, ratios []float64
	cpu, usr := map[string]time.Duration{}, map[string]time.Duration{}
	pkts := map[string]float64{}
	for i := 0; i < rounds; i++ {
		// Back to back, alternating which goes first, so the load the
		// shared machine carries weighs on both alike.
		order := []string{"c", "go"}
		if i%2 == 1 {
			order = []string{"go", "c"}
		}
		rate := map[string]float64{}
		for _, which := range order {
			dst := dstC
			if which == "go" {
				dst = dstGo
			}
			proc := cProc
			if which == "go" {
				proc = goProc
			}
			u0, c0 := cpuTime(t, proc.Process.Pid)
			sent, got := blast(t, s, dst, dur)
			u1, c1 := cpuTime(t, proc.Process.Pid)
			cpu[which] += c1 - c0
			usr[which] += u1 - u0
			pkts[which] += float64(got)
			rate[which] = float64(got) / dur.Seconds()
			t.Logf("round %d %-2s reflector: offered %8.0f pps, reflected %8.0f pps", i+1, which, float64(sent)/dur.Seconds(), rate[which])
		}
		goRates, cRates = append(goRates, rate["go"]), append(cRates, rate["c"])
		ratios = append(ratios, rate["go"]/rate["c"])
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	t.Logf("reflector throughput (%d rounds × %v, 44-octet requests, veth, reflectors pinned to CPU %s):", rounds, dur, cpuOr(reflectorCPU))
	t.Logf("  C recvmmsg anchor  best %9.0f pps  median %9.0f pps", slices.Max(cRates), med(cRates))
	t.Logf("  Go twamp reflector best %9.0f pps  median %9.0f pps", slices.Max(goRates), med(goRates))
	t.Logf("  ratio Go/C: best/best %.3f, median of paired rounds %.3f (goal ≥ 0.95)", slices.Max(goRates)/slices.Max(cRates), med(ratios))
	// CPU time per reflected packet, user + system (softirq work done in the
	// reflector's own context included): less sensitive to what else runs.
	perPkt := func(d map[string]time.Duration, w string) float64 { return float64(d[w].Nanoseconds()) / pkts[w] }
	t.Logf("  CPU per reflected packet: C %.0f ns (user %.0f), Go %.0f ns (user %.0f); efficiency ratio C/Go = %.3f",
		perPkt(cpu, "c"), perPkt(usr, "c"), perPkt(cpu, "go"), perPkt(usr, "go"), perPkt(cpu, "c")/perPkt(cpu, "go"))
}

// cpuTime is a process's user and user + system CPU time (/proc/PID/stat,
// in clock ticks of 10 ms).
func cpuTime(t *testing.T, pid int) (user, total time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(utime) * 10 * time.Millisecond, time.Duration(utime+stime) * 10 * time.Millisecond
}

func TestBenchMeasurementFloor(t *testing.T) {
	requireBench(t)
	s, r := pairNS(t)
	dst := netip.MustParseAddrPort("[fd00:1::2]:862")
	goReflectorProc(t, r, 862)
	waitReflector(t, s, dst)
	run := func(label string) Metrics {
		m, _ := senderIn(t, s, SenderConfig{Name: label, Dst: dst, Interval: time.Millisecond, Count: 5000, Timeout: 200 * time.Millisecond})
		t.Logf("%-26s sent %5d recv %5d lost %d discarded %d  net RTT min %7v p50 %7v p90 %7v p99 %7v max %7v",
			label, m.Sent, m.Received, m.Lost, m.Discarded, m.RTT.Min, m.RTT.P50, m.RTT.P90, m.RTT.P99, m.RTT.Max)
		return m
	}
	idle := run("1 kpps, idle")
	// Two CPU hogs on the reflector's core, bounded in time.
	for i := 0; i < 2; i++ {
		startProc(t, r, nil, "timeout", "30", "sh", "-c", "while :; do :; done")
	}
	time.Sleep(200 * time.Millisecond)
	busy := run("1 kpps, 2 hogs on its core")
	t.Logf("measurement floor over a veth pair (goal p99 ≤ 40µs): idle p99 %v, with hogs p99 %v", idle.RTT.P99, busy.RTT.P99)
}

// Per-packet cost of the reflector's packet logic, without sockets:
//
//	go test -run '^$' -bench Reflect -benchmem ./twamp/
func BenchmarkReflect(b *testing.B) {
	keys := []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}
	tlvs := &TLVSet{Location: true, TimestampInfo: true, ClassOfService: &ClassOfService{DSCP1: 10},
		DirectMeasurement: true, FollowUpTelemetry: true, HMAC: true}
	for _, bc := range []struct {
		name string
		cfg  ReflectorConfig
		mode Mode
		set  *TLVSet
	}{
		{"stateless", ReflectorConfig{}, Unauthenticated, nil},
		{"stateful", ReflectorConfig{Stateful: true}, Unauthenticated, nil},
		{"authenticated", ReflectorConfig{Mode: Authenticated, Keys: keys}, Authenticated, nil},
		{"stateful+TLVs+HMAC-TLV", ReflectorConfig{Stateful: true, Keys: keys}, Unauthenticated, tlvs},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newTestCore(b, bc.cfg)
			req := senderPacket(b, bc.mode, 1, 1, bc.set)
			out := make([]byte, max(len(req), AuthBaseLen))
			m := testMeta()
			b.ReportAllocs()
			b.SetBytes(int64(len(req)))
			for b.Loop() {
				rp, reason := c.reflect(req, m, out)
				if reason != dropNone {
					b.Fatal(reason)
				}
				c.finish(&rp, out, 1, 1)
			}
		})
	}
}
