package twamp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef")

var fuzzReflectorConfigs = []ReflectorConfig{
	{},
	{Stateful: true},
	{Mode: Authenticated, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}},
	{TWAMPLight: true},
	{Keys: []PeerKey{{netip.MustParsePrefix("2001:db8::/32"), testKey}}},
	{Stateful: true, ReturnPathSRv6: true, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}},
}

func newTestCore(t testing.TB, cfg ReflectorConfig) *core {
	t.Helper()
	cfg.Clock = FixedClock{Synced: true, MaxErr: time.Microsecond}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	var sessions *sessionTable
	if cfg.Stateful {
		sessions = &sessionTable{m: map[sessKey]*session{}, max: cfg.MaxSessions, idle: cfg.SessionIdle}
	}
	var lim *tokenBucket
	if cfg.RatePPS > 0 {
		lim = &tokenBucket{rate: cfg.RatePPS, burst: float64(max(cfg.Burst, 1)), tokens: float64(max(cfg.Burst, 1))}
	}
	return newCore(&cfg, new(counters), sessions, lim)
}

var testRx = time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.UTC)

func testMeta() *rxMeta {
	return &rxMeta{
		src: netip.MustParseAddrPort("[2001:db8::2]:40000"),
		dst: netip.MustParseAddrPort("[2001:db8::1]:862"),
		rx:  testRx, ttl: 254, tclass: 0xb9, // DSCP 46, ECN 1
	}
}

func senderPacket(t testing.TB, mode Mode, seq uint32, ssid uint16, set *TLVSet) []byte {
	t.Helper()
	n := mode.BaseLen()
	if set != nil {
		n += set.Len()
	}
	b := make([]byte, n)
	(&SenderHeader{Seq: seq, Timestamp: 0x1122334455667788, ErrorEstimate: 0x8001, SSID: ssid}).Put(b, mode)
	if set != nil {
		set.Put(b[mode.BaseLen():], seq)
	}
	s := NewSigner(testKey)
	SignTLVs(s, b, mode)
	if mode == Authenticated {
		s.Sign(b)
	}
	return b
}

func reflectOnce(t *testing.T, c *core, req []byte, m *rxMeta) ([]byte, reply, dropReason) {
	t.Helper()
	out := make([]byte, max(len(req), AuthBaseLen))
	rp, reason := c.reflect(req, m, out)
	if reason == dropNone {
		c.finish(&rp, out, 0xaaaaaaaabbbbbbbb, 0x8001)
	}
	return out[:rp.n], rp, reason
}

func TestReflectBase(t *testing.T) {
	for _, mode := range []Mode{Unauthenticated, Authenticated} {
		t.Run(mode.String(), func(t *testing.T) {
			c := newTestCore(t, ReflectorConfig{Mode: mode, Keys: []PeerKey{{netip.MustParsePrefix("2001:db8::/32"), testKey}}})
			req := senderPacket(t, mode, 41, 0x0abc, nil)
			out, _, reason := reflectOnce(t, c, req, testMeta())
			if reason != dropNone {
				t.Fatalf("dropped: %d", reason)
			}
			if len(out) != len(req) {
				t.Fatalf("reply %d octets, request %d", len(out), len(req))
			}
			h, err := DecodeReflector(out, mode)
			if err != nil {
				t.Fatal(err)
			}
			want := ReflectorHeader{Seq: 41, Timestamp: 0xaaaaaaaabbbbbbbb, ErrorEstimate: 0x8001, SSID: 0x0abc,
				ReceiveTimestamp: EncodeTime(testRx, FormatNTP, 0), SenderSeq: 41,
				SenderTimestamp: 0x1122334455667788, SenderErrorEstimate: 0x8001, SenderTTL: 254}
			if h != want {
				t.Fatalf("reply header\n%+v\nwant\n%+v", h, want)
			}
			if mode == Authenticated && !NewSigner(testKey).Verify(out) {
				t.Fatal("reply HMAC does not verify")
			}
		})
	}
}

func TestReflectDrops(t *testing.T) {
	authCfg := ReflectorConfig{Mode: Authenticated, Keys: []PeerKey{{netip.MustParsePrefix("2001:db8::/32"), testKey}}}
	badHMAC := senderPacket(t, Authenticated, 1, 0, nil)
	badHMAC[100] ^= 0xff
	other := testMeta()
	other.src = netip.MustParseAddrPort("[2001:db9::2]:40000")
	loop := testMeta()
	loop.src = netip.MustParseAddrPort("[2001:db8::2]:862")
	mcast := testMeta()
	mcast.dst = netip.MustParseAddrPort("[ff02::1]:862")
	cc := uint32(0)
	tests := []struct {
		name string
		cfg  ReflectorConfig
		req  []byte
		m    *rxMeta
		want dropReason
	}{
		{"truncated", ReflectorConfig{}, make([]byte, 43), testMeta(), dropBadLength},
		{"truncated light", ReflectorConfig{TWAMPLight: true}, make([]byte, 40), testMeta(), dropBadLength},
		{"light 41 ok", ReflectorConfig{TWAMPLight: true}, make([]byte, 41), testMeta(), dropNone},
		{"auth short", authCfg, make([]byte, 111), testMeta(), dropBadLength},
		{"bad hmac", authCfg, badHMAC, testMeta(), dropBadHMAC},
		{"no key", authCfg, senderPacket(t, Authenticated, 1, 0, nil), other, dropNoKey},
		{"unknown peer", ReflectorConfig{Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, make([]byte, 44), other, dropUnknownPeer},
		{"allowed peer", ReflectorConfig{Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, make([]byte, 44), testMeta(), dropNone},
		{"loop", ReflectorConfig{}, make([]byte, 44), loop, dropLoop},
		{"multicast", ReflectorConfig{}, make([]byte, 44), mcast, dropBadDestination},
		{"no reply requested", ReflectorConfig{}, senderPacket(t, Unauthenticated, 1, 0, &TLVSet{ReturnPath: &ReturnPath{ControlCode: &cc}}), testMeta(), dropNoReplyRequested},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t, tc.cfg)
			out, _, reason := reflectOnce(t, c, tc.req, tc.m)
			if reason != tc.want {
				t.Fatalf("reason %d, want %d", reason, tc.want)
			}
			if reason == dropNone && len(out) != len(tc.req) {
				t.Fatalf("reply %d octets to %d", len(out), len(tc.req))
			}
		})
	}
}

func TestReflectRateLimit(t *testing.T) {
	c := newTestCore(t, ReflectorConfig{RatePPS: 10, Burst: 3})
	m := testMeta()
	got := 0
	for i := 0; i < 10; i++ { // same instant: only the burst passes
		if _, _, r := reflectOnce(t, c, make([]byte, 44), m); r == dropNone {
			got++
		}
	}
	m.rx = m.rx.Add(200 * time.Millisecond) // 2 more tokens
	for i := 0; i < 10; i++ {
		if _, _, r := reflectOnce(t, c, make([]byte, 44), m); r == dropNone {
			got++
		}
	}
	if got != 5 {
		t.Fatalf("%d replies, want 3 + 2", got)
	}
}

func TestReflectStateful(t *testing.T) {
	c := newTestCore(t, ReflectorConfig{Stateful: true, MaxSessions: 2})
	m := testMeta()
	// Sender sequence numbers jump (forward loss); the reflector counts its own.
	for i, sseq := range []uint32{0, 1, 5, 9} {
		out, _, reason := reflectOnce(t, c, senderPacket(t, Unauthenticated, sseq, 7, nil), m)
		if reason != dropNone {
			t.Fatal(reason)
		}
		h, _ := DecodeReflector(out, Unauthenticated)
		if h.Seq != uint32(i) || h.SenderSeq != sseq {
			t.Fatalf("packet %d: reflector seq %d sender seq %d", i, h.Seq, h.SenderSeq)
		}
	}
	// Another SSID from the same peer is another session.
	out, _, _ := reflectOnce(t, c, senderPacket(t, Unauthenticated, 100, 8, nil), m)
	if h, _ := DecodeReflector(out, Unauthenticated); h.Seq != 0 {
		t.Fatalf("new session starts at %d", h.Seq)
	}
	// The table is bounded.
	m2 := testMeta()
	m2.src = netip.MustParseAddrPort("[2001:db8::3]:1")
	if _, _, reason := reflectOnce(t, c, senderPacket(t, Unauthenticated, 0, 7, nil), m2); reason != dropTableFull {
		t.Fatalf("third session: reason %d, want table full", reason)
	}
	c.sessions.expire(m.rx.Add(time.Hour))
	if n := c.sessions.len(); n != 0 {
		t.Fatalf("%d sessions after expiry", n)
	}
}

func TestReflectTLVs(t *testing.T) {
	c := newTestCore(t, ReflectorConfig{Stateful: true, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}})
	set := &TLVSet{ExtraPadding: 8, Location: true, TimestampInfo: true,
		ClassOfService: &ClassOfService{DSCP1: 10}, DirectMeasurement: true, FollowUpTelemetry: true,
		DestinationNode: netip.MustParseAddr("2001:db8::1"), HMAC: true}
	m := testMeta()
	reflectOnce(t, c, senderPacket(t, Unauthenticated, 0, 1, set), m)
	req := senderPacket(t, Unauthenticated, 1, 1, set)
	// An unknown TLV before the HMAC TLV; re-sign so the HMAC still holds.
	unknown := []byte{0, 200, 0, 2, 0xde, 0xad}
	hmacAt := len(req) - 20
	req = append(req[:hmacAt:hmacAt], append(unknown, req[hmacAt:]...)...)
	SignTLVs(NewSigner(testKey), req, Unauthenticated)
	out, rp, reason := reflectOnce(t, c, req, m)
	if reason != dropNone || len(out) != len(req) {
		t.Fatalf("reason %d, %d octets for %d", reason, len(out), len(req))
	}
	if rp.tclass != 10<<2 {
		t.Fatalf("reply tclass %#x, want DSCP1 10", rp.tclass)
	}
	it := NewTLVIter(out[BaseLen:])
	for {
		tlv, ok := it.Next()
		if !ok {
			break
		}
		switch tlv.Type {
		case TLVLocation:
			l, err := ParseLocation(tlv.Value)
			if err != nil || l.SrcPort != 40000 || l.DstPort != 862 || l.Src != m.src.Addr() || l.Dst != m.dst.Addr() {
				t.Fatalf("location %+v, %v", l, err)
			}
		case TLVTimestampInfo:
			ti, _ := ParseTimestampInfo(tlv.Value)
			if ti != (TimestampInfo{SyncNTP, StampSWLocal, SyncNTP, StampSWLocal}) {
				t.Fatalf("timestamp info %+v", ti)
			}
		case TLVClassOfService:
			cos, _ := ParseClassOfService(tlv.Value)
			if cos != (ClassOfService{DSCP1: 10, DSCP2: 46, ECN: 1}) {
				t.Fatalf("cos %+v", cos)
			}
		case TLVDirectMeasurement:
			d, _ := ParseDirectMeasurement(tlv.Value)
			if d != (DirectMeasurement{SenderTx: 1, ReflectorRx: 2, ReflectorTx: 2}) {
				t.Fatalf("direct measurement %+v", d)
			}
		case TLVFollowUpTelemetry:
			f, _ := ParseFollowUpTelemetry(tlv.Value)
			if f.Seq != 0 || f.Timestamp != 0xaaaaaaaabbbbbbbb || f.Mode != StampSWLocal {
				t.Fatalf("follow-up %+v", f)
			}
		case TLVDestinationNodeAddress, TLVExtraPadding:
			if tlv.Flags != 0 {
				t.Fatalf("%v flags %#x", tlv.Type, tlv.Flags)
			}
		case 200:
			if tlv.Flags != FlagU || !bytes.Equal(tlv.Value, []byte{0xde, 0xad}) {
				t.Fatalf("unknown TLV flags %#x value %x", tlv.Flags, tlv.Value)
			}
		case TLVHMAC:
			if tlv.Flags != 0 {
				t.Fatalf("HMAC TLV flags %#x: integrity failed", tlv.Flags)
			}
			if !verifyTLVMAC(NewSigner(testKey), out, BaseLen, BaseLen+it.Off) {
				t.Fatal("reply HMAC TLV does not verify")
			}
		}
	}
	if s := c.cnt.snapshot(); s.UnknownTLVs != 1 || s.MalformedTLVs != 0 || s.TLVIntegrityFailures != 0 {
		t.Fatalf("counters %+v", s)
	}
}

func TestReflectMalformedTLVs(t *testing.T) {
	tests := []struct {
		name string
		tlvs string
		want string // TLV area of the reply
	}{
		{"truncated value", "00010008aabb", "40010008aabb"},
		{"truncated header", "000100", "400100"},
		{"wrong fixed length, then a cut header", "0003000201020000", "4003000201024000"},
		{"bad hmac: I on every TLV", "00010000" + "00080010" + "00000000000000000000000000000000", "20010000" + "20080010" + "00000000000000000000000000000000"},
		{"tlv after hmac", "00080010" + "00000000000000000000000000000000" + "00010000", "20080010" + "00000000000000000000000000000000" + "60010000"},
		{"foreign destination node", "0009000420010db8", "8009000420010db8"},
		{"return path address", "000a0008" + "00020004c0000201", "800a0008" + "00020004c0000201"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t, ReflectorConfig{})
			req := append(senderPacket(t, Unauthenticated, 3, 0, nil), unhex(t, tc.tlvs)...)
			out, _, reason := reflectOnce(t, c, req, testMeta())
			if reason != dropNone {
				t.Fatal(reason)
			}
			if got := out[BaseLen:]; !bytes.Equal(got, unhex(t, tc.want)) {
				t.Fatalf("TLVs %x, want %s", got, tc.want)
			}
		})
	}
}

func TestReflectTWAMPLightKeepsPadding(t *testing.T) {
	c := newTestCore(t, ReflectorConfig{TWAMPLight: true})
	req := senderPacket(t, Unauthenticated, 9, 0, nil)
	req = append(req, 0, 0, 0, 0, 0xff) // would be a malformed TLV in STAMP
	out, _, _ := reflectOnce(t, c, req, testMeta())
	if !bytes.Equal(out[BaseLen:], req[BaseLen:]) {
		t.Fatalf("padding changed: %x", out[BaseLen:])
	}
	if binary.BigEndian.Uint32(out) != 9 {
		t.Fatal("sequence not reflected")
	}
}

// The reflector's per-packet path allocates nothing (a count, not a timing).
func TestReflectNoAllocs(t *testing.T) {
	c := newTestCore(t, ReflectorConfig{Stateful: true, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}})
	req := senderPacket(t, Unauthenticated, 1, 1, &TLVSet{Location: true, TimestampInfo: true,
		ClassOfService: &ClassOfService{DSCP1: 10}, DirectMeasurement: true, FollowUpTelemetry: true, HMAC: true})
	out := make([]byte, len(req))
	m := testMeta()
	allocs := testing.AllocsPerRun(200, func() {
		rp, reason := c.reflect(req, m, out)
		if reason != dropNone {
			t.Fatal(reason)
		}
		c.finish(&rp, out, 1, 1)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per reflected packet, want 0", allocs)
	}
	auth := newTestCore(t, ReflectorConfig{Mode: Authenticated, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}})
	areq := senderPacket(t, Authenticated, 1, 1, nil)
	aout := make([]byte, len(areq))
	allocs = testing.AllocsPerRun(200, func() {
		rp, _ := auth.reflect(areq, m, aout)
		auth.finish(&rp, aout, 1, 1)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per authenticated reply, want 0", allocs)
	}
}

func TestConfigErrors(t *testing.T) {
	short := []PeerKey{{netip.MustParsePrefix("::/0"), []byte("short")}}
	for _, cfg := range []ReflectorConfig{
		{Mode: Authenticated},
		{Keys: short},
		{Mode: Authenticated, TWAMPLight: true, Keys: []PeerKey{{netip.MustParsePrefix("::/0"), testKey}}},
		{MaxPacket: 100},
		{RatePPS: -1},
	} {
		if err := cfg.normalize(); err == nil {
			t.Errorf("reflector config %+v accepted", cfg)
		}
	}
	dst := netip.MustParseAddrPort("[2001:db8::1]:862")
	segs := []netip.Addr{netip.MustParseAddr("fc00::1")}
	for _, cfg := range []SenderConfig{
		{},
		{Dst: dst, Mode: Authenticated, Key: []byte("short")},
		{Dst: dst, TLVs: TLVSet{HMAC: true}},
		{Dst: dst, DSCP: 64},
		{Loopback: true},
		{Loopback: true, Segments: segs, Mode: Authenticated, Key: testKey},
		{Dst: dst, Segments: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		{Dst: dst, Segments: []netip.Addr{netip.MustParseAddr("ff02::1")}},
	} {
		if err := cfg.normalize(); err == nil {
			t.Errorf("sender config %+v accepted", cfg)
		}
	}
	ok := SenderConfig{Loopback: true, Segments: segs}
	if err := ok.normalize(); err != nil {
		t.Errorf("loopback config: %v", err)
	}
}

func TestSocketSRH(t *testing.T) {
	b, err := SocketSRH([]netip.Addr{netip.MustParseAddr("fc00:b::1"), netip.MustParseAddr("fc00:c::1")})
	if err != nil {
		t.Fatal(err)
	}
	// Next header (kernel fills), Hdr Ext Len 6, type 4, SL 2, Last Entry 2,
	// then entry 0 (the destination, filled by the kernel), fc00:c::1, fc00:b::1.
	want := "00060402" + "02000000" + "00000000000000000000000000000000" +
		"fc00000c000000000000000000000001" + "fc00000b000000000000000000000001"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("SRH\n%s\nwant\n%s", got, want)
	}
}

func TestLoopbackPacket(t *testing.T) {
	self := netip.MustParseAddr("fd00:ab::1")
	segs := []netip.Addr{netip.MustParseAddr("fc00:b::1"), netip.MustParseAddr("fc00:c::100")}
	payload := senderPacket(t, Unauthenticated, 3, 5, nil)
	b := make([]byte, loopbackHeaderLen(2)+len(payload))
	copy(b[loopbackHeaderLen(2):], payload)
	n := putLoopback(b, self, self, 40000, segs, 46<<2, len(payload))
	if n != len(b) || n != 40+40+40+8+44 {
		t.Fatalf("length %d", n)
	}
	// Outer: version 6, tclass 0xb8, payload 40+40+8+44, next 43, hops 64, to the first SID.
	if got := hex.EncodeToString(b[:8]); got != "6b800000"+"0084"+"2b40" {
		t.Fatalf("outer header %s", got)
	}
	if netip.AddrFrom16([16]byte(b[24:40])) != segs[0] {
		t.Fatal("outer destination is not the first SID")
	}
	// SRH: next 41 (IPv6), len 4, type 4, SL 1, last entry 1; list reversed.
	if got := hex.EncodeToString(b[40:45]); got != "2904040101" {
		t.Fatalf("SRH %s", got)
	}
	if netip.AddrFrom16([16]byte(b[48:64])) != segs[1] || netip.AddrFrom16([16]byte(b[64:80])) != segs[0] {
		t.Fatal("segment list order")
	}
	in := b[80:]
	if netip.AddrFrom16([16]byte(in[8:24])) != self || netip.AddrFrom16([16]byte(in[24:40])) != self || in[6] != 17 {
		t.Fatal("inner header is not self to self UDP")
	}
	// Recomputed over a datagram carrying a correct checksum, the one's
	// complement sum is 0, which udp6Checksum returns as 0xffff.
	if c := udp6Checksum(self, self, in[40:]); c != 0xffff {
		t.Fatalf("inner UDP checksum does not verify: %#x", c)
	}
}

func TestReflectReturnPathSRv6(t *testing.T) {
	segs := []netip.Addr{netip.MustParseAddr("fc00:b::1"), netip.MustParseAddr("fc00:c::1")}
	set := &TLVSet{ReturnPath: &ReturnPath{SRv6: segs}}
	v4 := testMeta()
	v4.src, v4.dst = netip.MustParseAddrPort("192.0.2.2:40000"), netip.MustParseAddrPort("192.0.2.1:862")
	tests := []struct {
		name    string
		on      bool
		m       *rxMeta
		follows bool
	}{
		{"off: U flag", false, testMeta(), false},
		{"on: reply follows the list", true, testMeta(), true},
		{"on, IPv4 sender: U flag", true, v4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t, ReflectorConfig{ReturnPathSRv6: tc.on})
			out, rp, reason := reflectOnce(t, c, senderPacket(t, Unauthenticated, 1, 0, set), tc.m)
			if reason != dropNone {
				t.Fatal(reason)
			}
			flags := out[BaseLen]
			if tc.follows != (len(rp.returnSegs) == 32) || tc.follows != (flags == 0) {
				t.Fatalf("segments %x, TLV flags %#x", rp.returnSegs, flags)
			}
			if tc.follows {
				b := make([]byte, returnHeaderLen(2)+len(out))
				copy(b[returnHeaderLen(2):], out)
				n := putReturnPath(b, tc.m.dst, tc.m.src, rp.returnSegs, 0xb8, len(out))
				// IPv6 to the first SID, SRH (next UDP, 3 entries, SL 2) whose
				// entry 0 is the sender, then UDP 862 → 40000.
				want := "6b800000" + fmt.Sprintf("%04x", 56+8+len(out)) + "2b40" +
					"20010db8000000000000000000000001" + "fc00000b000000000000000000000001" +
					"11060402" + "02000000" + "20010db8000000000000000000000002" +
					"fc00000c000000000000000000000001" + "fc00000b000000000000000000000001" +
					"035e9c40" + fmt.Sprintf("%04x", 8+len(out))
				if got := hex.EncodeToString(b[:40+56+6]); got != want || n != len(b) {
					t.Fatalf("return path packet\n%s\nwant\n%s", got, want)
				}
				if c := udp6Checksum(tc.m.dst.Addr(), tc.m.src.Addr(), b[40+56:n]); c != 0xffff {
					t.Fatalf("UDP checksum over the final destination does not verify: %#x", c)
				}
			}
		})
	}
}

func TestReflectDestinationNodeAddress(t *testing.T) {
	other := netip.MustParseAddr("2001:db8::99")
	for _, tc := range []struct {
		name    string
		isLocal func(netip.Addr) bool
		addr    netip.Addr
		flags   uint8
	}{
		{"probed address", nil, netip.MustParseAddr("2001:db8::1"), 0},
		{"foreign address", nil, other, FlagU},
		{"another local address", func(a netip.Addr) bool { return a == other }, other, 0},
	} {
		c := newTestCore(t, ReflectorConfig{IsLocal: tc.isLocal})
		out, _, _ := reflectOnce(t, c, senderPacket(t, Unauthenticated, 1, 0, &TLVSet{DestinationNode: tc.addr}), testMeta())
		if out[BaseLen] != tc.flags {
			t.Errorf("%s: flags %#x, want %#x", tc.name, out[BaseLen], tc.flags)
		}
	}
}

func TestReflectLocationSubTLVs(t *testing.T) {
	v4 := testMeta()
	v4.src, v4.dst = netip.MustParseAddrPort("192.0.2.2:40000"), netip.MustParseAddrPort("192.0.2.1:862")
	zero16, zero8 := strings.Repeat("00", 16), strings.Repeat("00", 8)
	tests := []struct {
		name string
		m    *rxMeta
		tlvs string
		want string
	}{
		{"IPv4 answers with 12 zero octets after the address", v4,
			"0002002c" + "00000000" + "00070010" + zero16 + "00040010" + zero16,
			"0002002c" + "035e9c40" + "00080010" + "c0000202" + strings.Repeat("00", 12) + "00050010" + "c0000201" + strings.Repeat("00", 12)},
		{"MAC unreported, unknown sub-TLV flagged U", testMeta(),
			"00020014" + "00000000" + "00010008" + zero8 + "00630000",
			"00020014" + "035e9c40" + "00010008" + zero8 + "80630000"},
		{"address sub-TLV of the wrong length: malformed", testMeta(),
			"0002000c" + "00000000" + "00070004" + "00000000",
			"4002000c" + "00000000" + "00070004" + "00000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t, ReflectorConfig{})
			req := append(senderPacket(t, Unauthenticated, 1, 0, nil), unhex(t, tc.tlvs)...)
			out, _, reason := reflectOnce(t, c, req, tc.m)
			if reason != dropNone {
				t.Fatal(reason)
			}
			if got := hex.EncodeToString(out[BaseLen:]); got != tc.want {
				t.Fatalf("TLVs\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	l, err := ParseLocation(unhex(t, "035e9c40"+"00080010"+"c0000202"+strings.Repeat("00", 12)+"00050010"+"c0000201"+strings.Repeat("00", 12)))
	if err != nil || l.Src != v4.src.Addr() || l.Dst != v4.dst.Addr() || l.SrcPort != 40000 || l.DstPort != 862 {
		t.Fatalf("ParseLocation = %+v, %v", l, err)
	}
}
