package twamp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Real validators: third-party decoders (tshark, scapy) read what this
// package puts on the wire, in network namespaces.

// pairNS is two namespaces, s (sender side) and r (reflector side), on a
// veth pair: s has fd00:1::1 and 10.99.0.1; r has fd00:1::2, fd00:1::22
// and 10.99.0.2.
func pairNS(t *testing.T) (s, r string) {
	s, r = netnstest.New(t, "tw", "s"), netnstest.New(t, "tw", "r")
	netnstest.Link(t, s, "tws", "fd00:1::1/64 10.99.0.1/24", r, "twr", "fd00:1::2/64 fd00:1::22/64 10.99.0.2/24")
	return s, r
}

// reflectorIn starts a reflector whose sockets live in ns.
func reflectorIn(t *testing.T, ns string, cfg ReflectorConfig) *Reflector {
	t.Helper()
	var r *Reflector
	var err error
	inNS(t, ns, func() { r, err = NewReflector(cfg, zap.NewNop()) })
	if err != nil {
		t.Fatal(err)
	}
	runReflector(t, r)
	return r
}

// senderIn runs a counted session whose sockets live in ns.
func senderIn(t *testing.T, ns string, cfg SenderConfig) (Metrics, []Sample) {
	t.Helper()
	var mu sync.Mutex
	var samples []Sample
	cfg.OnSample = func(s Sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() }
	var s *Sender
	var err error
	inNS(t, ns, func() { s, err = NewSender(cfg, zap.NewNop()) })
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

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("needs %s (CI installs it): %v", name, err)
	}
	return p
}

func TestTsharkDecodesReflectorReplies(t *testing.T) {
	requireRoot(t, "the tshark validator")
	needTool(t, "tshark")
	s, r := pairNS(t)
	reflectorIn(t, r, ReflectorConfig{Stateful: true})
	pcap, stop := netnstest.Capture(t, s, "tws", "udp port 862")
	// Probe the secondary address: the reply must come from it.
	m6, _ := senderIn(t, s, SenderConfig{Name: "v6", Dst: netip.MustParseAddrPort("[fd00:1::22]:862"),
		SSID: 0x1234, Count: 10, Interval: 10 * time.Millisecond, Timeout: time.Second, StatefulReflector: true})
	m4, _ := senderIn(t, s, SenderConfig{Name: "v4", Dst: netip.MustParseAddrPort("10.99.0.2:862"),
		SSID: 0x99, Count: 5, Interval: 10 * time.Millisecond, Timeout: time.Second, Padding: 64})
	stop()
	if m6.Received != 10 || m4.Received != 5 {
		t.Fatalf("received v6 %d/10, v4 %d/5", m6.Received, m4.Received)
	}
	out := netnstest.Run(t, "tshark", "-r", pcap, "-d", "udp.port==862,twamp.test", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src",
		"-e", "udp.srcport", "-e", "udp.checksum.status", "-e", "twamp.test.seq_number",
		"-e", "twamp.test.sender_seq_number", "-e", "twamp.test.timestamp", "-e", "twamp.test.receive_timestamp",
		"-e", "twamp.test.sender_timestamp", "-e", "twamp.test.sender_ttl", "-e", "twamp.test.padding")
	replies := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 12 {
			t.Fatalf("tshark line %q", line)
		}
		if f[4] != "1" && f[4] != "Good" {
			t.Errorf("bad UDP checksum (status %q): %s", f[4], line)
		}
		if f[3] != "862" {
			continue // a request
		}
		src := f[1] + f[2]
		n := replies[src]
		replies[src]++
		if f[5] != strconv.Itoa(n) || f[6] != strconv.Itoa(n) {
			t.Errorf("reply %d from %s: seq %s sender seq %s", n, src, f[5], f[6])
		}
		if f[10] != "255" {
			t.Errorf("sender TTL %s, want 255 over one veth", f[10])
		}
		frame := parseEpoch(t, f[0])
		t1, t2, t3 := parseTsharkTime(t, f[9]), parseTsharkTime(t, f[8]), parseTsharkTime(t, f[7])
		if t2.Before(t1) || t3.Before(t2) || frame.Before(t3) || frame.Sub(t1) > time.Second {
			t.Errorf("timestamps out of order: T1 %v T2 %v T3 %v capture %v", t1, t2, t3, frame)
		}
	}
	if replies["fd00:1::22"] != 10 || replies["10.99.0.2"] != 5 {
		t.Fatalf("replies by source %v: want 10 from fd00:1::22 (the probed address) and 5 from 10.99.0.2", replies)
	}
}

func parseEpoch(t *testing.T, s string) time.Time {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("epoch %q: %v", s, err)
	}
	return time.Unix(0, int64(f*1e9))
}

// parseTsharkTime reads an FT_ABSOLUTE_TIME field as tshark prints it.
func parseTsharkTime(t *testing.T, s string) time.Time {
	t.Helper()
	s = strings.Join(strings.Fields(s), " ")
	for _, layout := range []string{"Jan 2, 2006 15:04:05.999999999 MST", "Jan 2, 2006 15:04:05.999999999 UTC"} {
		if v, err := time.Parse(layout, s); err == nil {
			return v
		}
	}
	t.Fatalf("tshark time %q", s)
	return time.Time{}
}

func scapyPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 with python3-scapy")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import scapy.contrib.stamp").Run(); err != nil {
		t.Skipf("needs python3-scapy (scapy.contrib.stamp): %v", err)
	}
	return "/usr/bin/python3"
}

type scapyReply struct {
	Seq       uint32 `json:"seq"`
	SenderSeq uint32 `json:"seq_sender"`
	SSID      uint16 `json:"ssid"`
	TTL       uint8  `json:"ttl_sender"`
	TS        uint64 `json:"ts"`
	RxTS      uint64 `json:"ts_rx"`
	Len       int    `json:"len"`
	TLVs      []struct {
		Flags int    `json:"flags"`
		Type  int    `json:"type"`
		Value string `json:"value"`
	} `json:"tlvs"`
}

func TestScapySenderAgainstReflector(t *testing.T) {
	requireRoot(t, "the scapy validator")
	py := scapyPython(t)
	s, r := pairNS(t)
	key := []byte("0123456789abcdef")
	refl := reflectorIn(t, r, ReflectorConfig{Stateful: true, Keys: []PeerKey{{netip.MustParsePrefix("fd00:1::/64"), key}}})
	script, _ := filepath.Abs("testdata/scapy_sender.py")
	out := netnstest.Run(t, "ip", "netns", "exec", s, py, script, "fd00:1::2", "862", "5", "4660")
	var replies []scapyReply
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rp scapyReply
		if err := json.Unmarshal([]byte(line), &rp); err != nil {
			t.Fatalf("scapy output %q: %v", line, err)
		}
		replies = append(replies, rp)
	}
	if len(replies) != 5 {
		t.Fatalf("%d replies, want 5:\n%s", len(replies), out)
	}
	for i, rp := range replies {
		if rp.SenderSeq != uint32(i) || rp.Seq != uint32(i) || rp.SSID != 4660 || rp.TTL != 255 || rp.RxTS == 0 || rp.TS < rp.RxTS {
			t.Fatalf("reply %d: %+v", i, rp)
		}
		byType := map[int]string{}
		flags := map[int]int{}
		for _, tlv := range rp.TLVs {
			byType[tlv.Type], flags[tlv.Type] = tlv.Value, tlv.Flags
		}
		// Location: ports filled (dst 862 = 0x035e, src 40001 = 0x9c41); the
		// Source IP (7) and Destination IP (4) requests answered as Source
		// IPv6 (9) and Destination IPv6 (6).
		if want := "035e9c41" + "00090010" + "fd000001000000000000000000000001" + "00060010" + "fd000001000000000000000000000002"; byType[2] != want {
			t.Errorf("location %s, want %s", byType[2], want)
		}
		if flags[200] != 0x80 || byType[200] != "cafe" {
			t.Errorf("unknown TLV flags %#x value %s: want U set, value unchanged", flags[200], byType[200])
		}
		if byType[4] != "bae00000" || flags[4] != 0 { // DSCP1 46, DSCP2 46 as received, ECN 0
			t.Errorf("class of service %s flags %#x", byType[4], flags[4])
		}
		if byType[1] != strings.Repeat("00", 20) {
			t.Errorf("extra padding %s", byType[1])
		}
	}
	if st := settledStats(refl, 5); st.UnknownTLVs != 5 || st.Reflected != 5 {
		t.Fatalf("reflector stats %+v", st)
	}
}

func TestScapyDecodesSender(t *testing.T) {
	requireRoot(t, "the scapy validator")
	py := scapyPython(t)
	s, r := pairNS(t)
	reflectorIn(t, r, ReflectorConfig{})
	pcap, stop := netnstest.Capture(t, s, "tws", "udp dst port 862")
	m, _ := senderIn(t, s, SenderConfig{Name: "scapy", Dst: netip.MustParseAddrPort("[fd00:1::2]:862"), SSID: 0xbeef,
		Count: 4, Interval: 10 * time.Millisecond, Timeout: time.Second, Padding: 12,
		TLVs: TLVSet{TimestampInfo: true, ClassOfService: &ClassOfService{DSCP1: 34}}})
	stop()
	if m.Received != 4 {
		t.Fatalf("received %d/4: %+v", m.Received, m)
	}
	script, _ := filepath.Abs("testdata/scapy_decode.py")
	out := netnstest.Run(t, py, script, pcap)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("scapy decoded %d packets, want 4:\n%s", len(lines), out)
	}
	now := time.Now()
	for i, line := range lines {
		var p struct {
			Seq  uint32  `json:"seq"`
			SSID uint16  `json:"ssid"`
			Z    int     `json:"z"`
			S    int     `json:"s"`
			TS   float64 `json:"ts"`
			TLVs []struct {
				Flags int    `json:"flags"`
				Type  int    `json:"type"`
				Value string `json:"value"`
			} `json:"tlvs"`
		}
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("scapy output %q: %v", line, err)
		}
		sent := time.Unix(0, int64(p.TS*1e9))
		if p.Seq != uint32(i) || p.SSID != 0xbeef || p.Z != 0 || now.Sub(sent) > time.Minute || sent.After(now) {
			t.Fatalf("packet %d decoded as %+v (T1 %v)", i, p, sent)
		}
		got := fmt.Sprint(len(p.TLVs))
		if len(p.TLVs) == 3 {
			got = fmt.Sprintf("%d:%s %d:%s %d:%s", p.TLVs[0].Type, p.TLVs[0].Value, p.TLVs[1].Type, p.TLVs[1].Value, p.TLVs[2].Type, p.TLVs[2].Value)
		}
		if want := "1:" + strings.Repeat("00", 12) + " 3:00000000 4:88000000"; got != want {
			t.Fatalf("TLVs %s, want %s", got, want)
		}
	}
}

// srv6NS builds three namespaces on a line, a — b — c, with an End SID
// fc00:b::1 on b and an End.DX6 SID fc00:c::100 on c whose decapsulated
// packets go back through b.
func srv6NS(t *testing.T) (a, b, c string) {
	a, b, c = netnstest.New(t, "tw", "a"), netnstest.New(t, "tw", "b"), netnstest.New(t, "tw", "c")
	netnstest.Link(t, a, "twa", "fd00:ab::1/64", b, "twb1", "fd00:ab::2/64")
	netnstest.Link(t, b, "twb2", "fd00:bc::2/64", c, "twc", "fd00:bc::3/64")
	netnstest.Exec(t, a, "ip", "-6", "route", "add", "fc00::/16", "via", "fd00:ab::2")
	netnstest.Exec(t, a, "ip", "-6", "route", "add", "fd00:bc::/64", "via", "fd00:ab::2")
	netnstest.Exec(t, b, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.twb1.seg6_enabled=1")
	netnstest.Exec(t, b, "ip", "-6", "route", "add", "fc00:b::1/128", "encap", "seg6local", "action", "End", "dev", "twb2")
	netnstest.Exec(t, b, "ip", "-6", "route", "add", "fc00:c::/64", "via", "fd00:bc::3")
	netnstest.Exec(t, c, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.twc.seg6_enabled=1")
	netnstest.Exec(t, c, "ip", "-6", "route", "add", "fc00:c::100/128", "encap", "seg6local", "action", "End.DX6", "nh6", "fd00:bc::2", "dev", "twc")
	netnstest.Exec(t, c, "ip", "-6", "route", "add", "fd00:ab::/64", "via", "fd00:bc::2")
	return a, b, c
}

// With an outer source the probes leave with it (what a far node's SID
// filter judges) and still come home to Src.
func TestLoopbackOuterSource(t *testing.T) {
	requireRoot(t, "the SRv6 loopback test")
	a, b, _ := srv6NS(t)
	segs := []netip.Addr{netip.MustParseAddr("fc00:b::1"), netip.MustParseAddr("fc00:c::100")}
	outer := netip.MustParseAddr("fc00:a::ffff") // assigned nowhere, like a tunnel source
	pcap, stop := netnstest.Capture(t, b, "twb1", "ip6")
	m, _ := senderIn(t, a, SenderConfig{Name: "loop-outer", Loopback: true, Segments: segs, OuterSrc: outer,
		Src: netip.MustParseAddr("fd00:ab::1"), Count: 20, Interval: 10 * time.Millisecond, Timeout: time.Second})
	stop()
	if m.Sent != 20 || m.Received != 20 {
		t.Fatalf("loopback with outer source %s: metrics %+v", outer, m)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out := netnstest.Run(t, "tshark", "-r", pcap, "-Y", "ipv6.routing.type == 4 && ipv6.src == fc00:a::ffff", "-T", "fields", "-e", "frame.number")
		if n := len(strings.Fields(out)); n != 20 {
			t.Fatalf("%d probes left with outer source %s, want 20", n, outer)
		}
	}
}

func TestLoopbackOverSRv6(t *testing.T) {
	requireRoot(t, "the SRv6 loopback test")
	a, b, _ := srv6NS(t)
	segs := []netip.Addr{netip.MustParseAddr("fc00:b::1"), netip.MustParseAddr("fc00:c::100")}
	pcap, stop := netnstest.Capture(t, b, "twb1", "ip6")
	m, samples := senderIn(t, a, SenderConfig{Name: "loop", Loopback: true, Segments: segs,
		Src: netip.MustParseAddr("fd00:ab::1"), SSID: 5, Count: 50, Interval: 10 * time.Millisecond, Timeout: time.Second, DSCP: 46})
	stop()
	if m.Sent != 50 || m.Received != 50 || m.Lost != 0 {
		t.Fatalf("loopback metrics %+v", m)
	}
	t.Logf("enhanced loopback a→b(End)→c(End.DX6)→b→a over veth: RTT min %v p50 %v p90 %v p99 %v max %v, jitter (mean IPDV) %v",
		m.RTT.Min, m.RTT.P50, m.RTT.P90, m.RTT.P99, m.RTT.Max, m.Jitter)
	if len(samples) != 50 || samples[0].RTT <= 0 {
		t.Fatalf("samples %d, first %+v", len(samples), samples[0])
	}
	kernel := 0
	for _, s := range samples {
		if s.KernelT1 {
			kernel++
		}
	}
	t.Logf("%d of 50 loopback samples timed from the kernel's transmit timestamp", kernel)
	if _, err := exec.LookPath("tshark"); err == nil {
		// The probes left a with an SRH of both SIDs and came back plain.
		out := netnstest.Run(t, "tshark", "-r", pcap, "-Y", "ipv6.routing.type == 4 && ipv6.routing.segleft == 1 && ipv6.dst == fc00:b::1 && ipv6.src == fd00:ab::1", "-T", "fields", "-e", "frame.number")
		if n := len(strings.Fields(out)); n != 50 {
			t.Fatalf("%d probes with the SRH seen on b, want 50", n)
		}
		out = netnstest.Run(t, "tshark", "-r", pcap, "-Y", "udp && !ipv6.routing && ipv6.dst == fd00:ab::1 && ipv6.src == fd00:ab::1", "-T", "fields", "-e", "frame.number")
		if n := len(strings.Fields(out)); n != 50 {
			t.Fatalf("%d decapsulated probes back through b, want 50", n)
		}
	}
}

func TestSenderAlongSegmentList(t *testing.T) {
	requireRoot(t, "the SRv6 sender test")
	a, b, c := srv6NS(t)
	reflectorIn(t, c, ReflectorConfig{})
	pcap, stop := netnstest.Capture(t, b, "twb1", "ip6")
	m, samples := senderIn(t, a, SenderConfig{Name: "srh", Dst: netip.MustParseAddrPort("[fd00:bc::3]:862"),
		Segments: []netip.Addr{netip.MustParseAddr("fc00:b::1")}, Count: 20, Interval: 10 * time.Millisecond, Timeout: time.Second})
	stop()
	if m.Received != 20 {
		t.Fatalf("metrics %+v", m)
	}
	// One router hop (b) between sender and reflector.
	if samples[0].SenderTTL != 254 {
		t.Fatalf("sender TTL seen by the reflector %d, want 254", samples[0].SenderTTL)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out := netnstest.Run(t, "tshark", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-Y",
			"ipv6.routing.type == 4 && ipv6.dst == fc00:b::1 && udp.dstport == 862 && udp.checksum.status == 1", "-T", "fields", "-e", "frame.number")
		if n := len(strings.Fields(out)); n != 20 {
			t.Fatalf("%d probes with an SRH and a good checksum on b, want 20", n)
		}
	}
}

func TestReflectorReturnPathSRv6(t *testing.T) {
	requireRoot(t, "the SRv6 return path test")
	a, b, c := srv6NS(t)
	// Replies come back along fc00:b::1 and end at a with an SRH.
	netnstest.Exec(t, a, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.twa.seg6_enabled=1")
	netnstest.Exec(t, c, "ip", "-6", "route", "add", "fc00::/16", "via", "fd00:bc::2")
	refl := reflectorIn(t, c, ReflectorConfig{ReturnPathSRv6: true})
	pcap, stop := netnstest.Capture(t, b, "twb2", "ip6")
	m, _ := senderIn(t, a, SenderConfig{Name: "rp", Dst: netip.MustParseAddrPort("[fd00:bc::3]:862"), Count: 10,
		Interval: 10 * time.Millisecond, Timeout: time.Second,
		TLVs: TLVSet{ReturnPath: &ReturnPath{SRv6: []netip.Addr{netip.MustParseAddr("fc00:b::1")}}}})
	stop()
	if m.Received != 10 || settledStats(refl, 10).Reflected != 10 {
		t.Fatalf("metrics %+v, reflector %+v", m, refl.Stats())
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out := netnstest.Run(t, "tshark", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-Y",
			"udp.srcport == 862 && ipv6.routing.type == 4 && ipv6.dst == fc00:b::1 && ipv6.src == fd00:bc::3 && udp.checksum.status == 1",
			"-T", "fields", "-e", "frame.number")
		if n := len(strings.Fields(out)); n != 10 {
			t.Fatalf("%d replies along the return segment list seen on b, want 10", n)
		}
	}
}
