package twamp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// freePort returns a UDP port that was free on [::1] a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

func startReflector(t *testing.T, cfg ReflectorConfig) *Reflector {
	t.Helper()
	if len(cfg.Listen) == 0 {
		cfg.Listen = []netip.Addr{netip.IPv6Loopback()}
	}
	if cfg.Port == 0 {
		cfg.Port = freePort(t)
	}
	r, err := NewReflector(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	runReflector(t, r)
	return r
}

// runReflector runs r until the test ends, then checks it stops cleanly.
func runReflector(t *testing.T, r *Reflector) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("reflector: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("reflector did not stop")
		}
	})
}

// settledStats waits (boundedly) until the reflector has counted n
// replies: a reply can reach the sender before the reflector counts it.
func settledStats(r *Reflector, n uint64) ReflectorStats {
	st := r.Stats()
	for i := 0; i < 100 && st.Reflected < n; i++ {
		time.Sleep(10 * time.Millisecond)
		st = r.Stats()
	}
	return st
}

func runSender(t *testing.T, cfg SenderConfig) (Metrics, []Sample, []Event) {
	t.Helper()
	var mu sync.Mutex
	var samples []Sample
	var events []Event
	var windows []Metrics
	cfg.OnWindow = func(m Metrics) { mu.Lock(); windows = append(windows, m); mu.Unlock() }
	cfg.OnSample = func(s Sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() }
	cfg.OnEvent = func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	s, err := NewSender(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("sender did not finish its count")
	}
	mu.Lock()
	defer mu.Unlock()
	total := s.Metrics()
	// Every packet is counted in exactly one window, the one it was sent in.
	var sent, recv, lost uint64
	for i, w := range windows {
		sent, recv, lost = sent+w.Sent, recv+w.Received, lost+w.Lost
		if i > 0 && !w.Start.After(windows[i-1].Start) {
			t.Fatalf("windows out of order: %v then %v", windows[i-1].Start, w.Start)
		}
	}
	if sent != total.Sent || recv != total.Received || lost != total.Lost {
		t.Fatalf("windows add up to sent %d recv %d lost %d, session %d %d %d", sent, recv, lost, total.Sent, total.Received, total.Lost)
	}
	return total, samples, events
}

func TestSenderReflectorLoopback(t *testing.T) {
	key := []byte("a per-peer key of 32 octets.....")
	tests := []struct {
		name string
		rcfg ReflectorConfig
		scfg SenderConfig
	}{
		{"stateless", ReflectorConfig{}, SenderConfig{}},
		{"stateful with TLVs", ReflectorConfig{Stateful: true, Keys: []PeerKey{{netip.MustParsePrefix("::1/128"), key}}},
			SenderConfig{StatefulReflector: true, SSID: 77, Key: key, Padding: 100,
				TLVs: TLVSet{Location: true, TimestampInfo: true, DirectMeasurement: true,
					FollowUpTelemetry: true, ClassOfService: &ClassOfService{DSCP1: 46}, HMAC: true}}},
		{"authenticated PTP", ReflectorConfig{Mode: Authenticated, Timestamp: FormatPTP, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), key}}},
			SenderConfig{Mode: Authenticated, Key: key, Timestamp: FormatPTP, ClocksSynced: true}},
		{"twamp light", ReflectorConfig{TWAMPLight: true}, SenderConfig{TWAMPLight: true, Padding: 27}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startReflector(t, tc.rcfg)
			cfg := tc.scfg
			cfg.Name = tc.name
			cfg.Dst = r.Addrs()[0]
			cfg.Src = netip.IPv6Loopback()
			cfg.Interval = 5 * time.Millisecond
			cfg.Count = 50
			cfg.Timeout = time.Second
			cfg.DSCP = 10
			cfg.Notify = NotifyConfig{DownAfter: 3}
			cfg.Window = 60 * time.Millisecond
			m, samples, events := runSender(t, cfg)
			if m.Sent != 50 || m.Received != 50 || m.Lost != 0 || m.Discarded != 0 {
				t.Fatalf("metrics %+v", m)
			}
			if m.RTT.Min <= 0 || m.RTT.Max > time.Second || m.RTT.P99 < m.RTT.P50 {
				t.Fatalf("rtt %+v", m.RTT)
			}
			if len(samples) != 50 || samples[0].SenderTTL != 255 {
				t.Fatalf("%d samples, first %+v", len(samples), samples[0])
			}
			kernel := 0
			for _, s := range samples {
				if s.KernelT1 {
					kernel++
				}
			}
			if kernel < 45 {
				t.Fatalf("only %d of 50 samples used the kernel transmit timestamp", kernel)
			}
			if tc.scfg.ClocksSynced && m.Forward.Count != 50 {
				t.Fatalf("one-way %+v", m.Forward)
			}
			if len(events) == 0 || events[0].Kind != EventUp {
				t.Fatalf("events %+v", events)
			}
			st := settledStats(r, 50)
			if st.Received != 50 || st.Reflected != 50 || st.TLVIntegrityFailures != 0 || st.MalformedTLVs != 0 {
				t.Fatalf("reflector stats %+v", st)
			}
			if tc.rcfg.Stateful {
				ss := r.Sessions()
				if st.Sessions != 1 || len(ss) != 1 || ss[0].SSID != 77 || ss[0].Received != 50 || ss[0].Sent != 50 {
					t.Fatalf("sessions %d: %+v", st.Sessions, ss)
				}
			}
		})
	}
}

func TestReflectorDropsBadPacketsAndKeepsServing(t *testing.T) {
	key := []byte("0123456789abcdef")
	r := startReflector(t, ReflectorConfig{Listen: []netip.Addr{netip.IPv6Unspecified()}, Mode: Authenticated,
		Keys: []PeerKey{{netip.MustParsePrefix("::/0"), key}}, Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}, MaxPacket: 1024})
	port := r.Addrs()[0].Port()
	// An IPv4 peer outside the allow-list.
	c4, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	c, err := net.DialUDP("udp6", nil, &net.UDPAddr{IP: net.IPv6loopback, Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := make([]byte, AuthBaseLen)
	(&SenderHeader{Seq: 1}).Put(good, Authenticated)
	NewSigner(key).Sign(good)
	badMAC := append([]byte(nil), good...)
	badMAC[0] ^= 1
	if _, err := c4.Write(good); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{make([]byte, 20), make([]byte, 2000), badMAC, good} {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || n != AuthBaseLen {
		t.Fatalf("reply: %d octets, %v", n, err)
	}
	if !NewSigner(key).Verify(buf[:n]) {
		t.Fatal("reply HMAC")
	}
	st := settledStats(r, 1)
	if st.UnknownPeer != 1 || st.BadLength != 1 || st.TooLong != 1 || st.BadHMAC != 1 || st.Reflected != 1 || st.Received != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSenderLossAndDown(t *testing.T) {
	// Nothing listens: every probe is lost, the session never comes up.
	port := freePort(t)
	cfg := SenderConfig{Name: "void", Dst: netip.AddrPortFrom(netip.IPv6Loopback(), port), Src: netip.IPv6Loopback(),
		Interval: 2 * time.Millisecond, Count: 20, Timeout: 50 * time.Millisecond, Notify: NotifyConfig{DownAfter: 3, LossX: 2, LossY: 4}}
	m, _, all := runSender(t, cfg)
	var events []Event
	for _, e := range all {
		if e.Kind != EventMetrics {
			events = append(events, e)
		}
	}
	if m.Sent != 20 || m.Lost != 20 || m.Received != 0 {
		t.Fatalf("metrics %+v", m)
	}
	if len(events) != 1 || events[0].Kind != EventLossAbove {
		t.Fatalf("events %+v", events)
	}
}
