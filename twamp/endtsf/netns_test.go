package endtsf

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
	"github.com/srv6cpe/srv6cpe/twamp"
)

// Namespaces carry the "ts" prefix and the test's pid.

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and loads eBPF")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs iproute2 (ip): %v", err)
	}
}

// inNS runs fn on a thread moved into namespace ns: sockets fn opens live
// there for good.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := netnstest.Do(ns, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// srv6Path is a (sender) → b (transit, End fc00:b::1) → c (far node,
// End.DX6 fc00:c::100: the End.TSF SID). The decapsulated probe goes back
// c → b → a.
func srv6Path(t *testing.T) (a, b, c string) {
	a, b, c = netnstest.New(t, "ts", "a"), netnstest.New(t, "ts", "b"), netnstest.New(t, "ts", "c")
	netnstest.Link(t, a, "tsa", "fd00:ab::1/64", b, "tsb1", "fd00:ab::2/64")
	netnstest.Link(t, b, "tsb2", "fd00:bc::2/64", c, "tsc", "fd00:bc::3/64")
	netnstest.Exec(t, a, "ip", "-6", "route", "add", "fc00::/16", "via", "fd00:ab::2")
	netnstest.Exec(t, b, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.tsb1.seg6_enabled=1")
	netnstest.Exec(t, b, "ip", "-6", "route", "add", "fc00:b::1/128", "encap", "seg6local", "action", "End", "dev", "tsb2")
	netnstest.Exec(t, b, "ip", "-6", "route", "add", "fc00:c::/64", "via", "fd00:bc::3")
	netnstest.Exec(t, c, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.tsc.seg6_enabled=1")
	netnstest.Exec(t, c, "ip", "-6", "route", "add", tsfSID.String()+"/128", "encap", "seg6local", "action", "End.DX6", "nh6", "fd00:bc::2", "dev", "tsc")
	netnstest.Exec(t, c, "ip", "-6", "route", "add", "fd00:ab::/64", "via", "fd00:bc::2")
	return a, b, c
}

// loopSession runs 50 enhanced-loopback probes from a over the path and
// returns the metrics and samples.
func loopSession(t *testing.T, a string) (twamp.Metrics, []twamp.Sample) {
	t.Helper()
	var mu sync.Mutex
	var samples []twamp.Sample
	cfg := twamp.SenderConfig{Name: "tsf", Loopback: true, EndTSF: true, ClocksSynced: true,
		Segments: []netip.Addr{netip.MustParseAddr("fc00:b::1"), tsfSID},
		Src:      senderIP, SrcPort: 40862, SSID: 9, Count: 50, Interval: 10 * time.Millisecond, Timeout: time.Second,
		OnSample: func(s twamp.Sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() }}
	var s *twamp.Sender
	var err error
	inNS(t, a, func() { s, err = twamp.NewSender(cfg, zap.NewNop()) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return s.Metrics(), samples
}

func TestEndTSFOverSRv6(t *testing.T) {
	requireNetns(t)
	if err := Probe(); err != nil {
		t.Skipf("End.TSF unavailable on this kernel: %v", err)
	}
	a, _, c := srv6Path(t)
	st, err := New(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetSIDs([]SID{{Addr: tsfSID}}); err != nil {
		t.Fatal(err)
	}
	inNS(t, c, func() { err = st.SetInterfaces([]string{"tsc"}) })
	if err != nil {
		t.Fatal(err)
	}
	pcap, stop := netnstest.Capture(t, c, "tsc", "ip6")
	m, samples := loopSession(t, a)
	stop()
	if m.Sent != 50 || m.Received != 50 || m.Discarded != 0 {
		t.Fatalf("metrics %+v", m)
	}
	if m.Forward.Count != 50 || m.Backward.Count != 50 {
		t.Fatalf("one-way delays for %d/%d of 50 probes", m.Forward.Count, m.Backward.Count)
	}
	var worst time.Duration
	for _, s := range samples {
		if !s.OneWay || s.Forward <= 0 || s.Backward <= 0 {
			t.Fatalf("sample %+v has no one-way delays", s)
		}
		// T1, T2 and T4 are on one clock here: forward + backward is the
		// round trip up to the truncation of T2 to whole nanoseconds and
		// T1/T4's microsecond rounding in the PTP/time conversions.
		d := s.Forward + s.Backward - s.RTT
		worst = max(worst, d, -d)
	}
	if worst > time.Microsecond {
		t.Fatalf("forward + backward differs from the round trip by up to %v", worst)
	}
	t.Logf("End.TSF a→b(End)→c(End.DX6 + tcx stamp)→b→a: RTT p50 %v, forward p50 %v (min %v max %v), backward p50 %v (min %v max %v); |fwd+bwd−RTT| ≤ %v",
		m.RTT.P50, m.Forward.P50, m.Forward.Min, m.Forward.Max, m.Backward.P50, m.Backward.Min, m.Backward.Max, worst)

	t.Run("detached", func(t *testing.T) {
		// Level-triggered: an empty set detaches, an unknown name is named.
		var err error
		inNS(t, c, func() { err = st.SetInterfaces([]string{"tsnone"}) })
		if err == nil || !strings.Contains(err.Error(), `"tsnone"`) {
			t.Fatalf("unknown interface: %v", err)
		}
		m, _ := loopSession(t, a)
		if m.Received != 50 || m.Forward.Count != 0 {
			t.Fatalf("after detaching: %+v", m)
		}
	})
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Log("no tshark: capture not decoded")
		return
	}
	// The decapsulated probes leaving c: good UDP checksums and T2 filled.
	out := netnstest.Run(t, "tshark", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-Y",
		"udp.dstport == 40862 && !ipv6.routing && ipv6.src == fd00:ab::1 && ipv6.dst == fd00:ab::1",
		"-T", "fields", "-e", "udp.checksum.status", "-e", "udp.payload")
	lines := strings.Fields(out)
	if len(lines) != 100 { // two fields per probe
		t.Fatalf("%d fields for the probes leaving c, want 2×50:\n%s", len(lines), out)
	}
	for i := 0; i < len(lines); i += 2 {
		if lines[i] != "1" {
			t.Fatalf("probe %d left c with UDP checksum status %s (1 is good)", i/2, lines[i])
		}
		p, err := hex.DecodeString(lines[i+1])
		if err != nil || len(p) < twamp.BaseLen {
			t.Fatalf("payload %q: %v", lines[i+1], err)
		}
		t2 := twamp.DecodeTime(binary.BigEndian.Uint64(p[16:]), twamp.FormatPTP, twamp.SystemTAIOffset())
		t1 := twamp.DecodeTime(binary.BigEndian.Uint64(p[4:]), twamp.FormatNTP, 0)
		if d := t2.Sub(t1); d <= 0 || d > time.Second {
			t.Fatalf("probe %d: T2 %v is %v after T1 %v", i/2, t2, d, t1)
		}
	}
	// Entering c, the same probes were not stamped yet (the capture tap
	// runs before tc ingress): the field was MBZ.
	out = netnstest.Run(t, "tshark", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-Y",
		"ipv6.routing.type == 4 && ipv6.dst == "+tsfSID.String()+" && udp.checksum.status == 1", "-T", "fields", "-e", "udp.payload")
	in := strings.Fields(out)
	if len(in) != 50 {
		t.Fatalf("%d probes with the SRH entering c, want 50", len(in))
	}
	if p, _ := hex.DecodeString(in[0]); len(p) < 24 || binary.BigEndian.Uint64(p[16:]) != 0 {
		t.Fatalf("probe entering c already carries T2: %x", p)
	}
	t.Logf("tshark: 50 probes left c with good UDP checksums and T2 filled; 50 entered with T2 zero")
}

// TestEndTSFFallback: a far node without the stamper (End.TSF unavailable:
// plain End.DX6) still answers loopback probes; the sender reports round
// trips and no one-way delays, and counts nothing as discarded.
func TestEndTSFFallback(t *testing.T) {
	requireNetns(t)
	a, _, _ := srv6Path(t)
	m, samples := loopSession(t, a)
	if m.Sent != 50 || m.Received != 50 || m.Discarded != 0 {
		t.Fatalf("metrics %+v", m)
	}
	if m.Forward.Count != 0 || m.Backward.Count != 0 || samples[0].OneWay {
		t.Fatalf("one-way delays without End.TSF: %+v", m)
	}
	t.Logf("plain loopback fallback: RTT p50 %v, no one-way delays", m.RTT.P50)
}

// TestProbeUnprivileged: where the program cannot load (here: an
// unprivileged process), Probe says so and wraps ErrUnsupported.
func TestProbeUnprivileged(t *testing.T) {
	if os.Getenv("ENDTSF_PROBE_CHILD") == "1" {
		err := Probe()
		fmt.Printf("probe: %v unsupported=%v\n", err, errors.Is(err, ErrUnsupported))
		return
	}
	requireNetns(t)
	// The test binary sits in a directory only root may enter: run a copy
	// from one the unprivileged user can.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "endtsf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe := dir + "/endtsf.test"
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestProbeUnprivileged$")
	cmd.Env = append(os.Environ(), "ENDTSF_PROBE_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "unsupported=true") || strings.Contains(string(out), "probe: <nil>") {
		t.Fatalf("unprivileged probe: %s", out)
	}
	line, _, _ := strings.Cut(string(out[strings.Index(string(out), "probe:"):]), "\n")
	t.Logf("unprivileged: %s", line)
}
