package endtsf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/twamp"
)

var (
	tsfSID   = netip.MustParseAddr("fc00:c::100")
	otherSID = netip.MustParseAddr("fc00:c::200")
	senderIP = netip.MustParseAddr("fd00:ab::1")
)

func needBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs (CAP_BPF, CAP_NET_ADMIN)")
	}
}

// probe describes one test frame: Ethernet, outer IPv6 + SRH, inner IPv6 +
// UDP, STAMP payload.
type probe struct {
	dst        netip.Addr
	segsLeft   uint8
	srhNext    uint8
	innerNext  uint8
	port       uint16
	payloadLen int
	mbz        uint64 // the octets at the T2 position
	tsOff      int
}

func defaultProbe() probe {
	return probe{dst: tsfSID, srhNext: 41, innerNext: 17, port: 40000, payloadLen: twamp.BaseLen, tsOff: 16}
}

// frame returns the frame and the offset of the inner UDP header.
func (p probe) frame() ([]byte, int) {
	segs := []netip.Addr{netip.MustParseAddr("fc00:b::1"), p.dst}
	srh := 8 + 16*len(segs)
	udp := 14 + 40 + srh + 40
	b := make([]byte, udp+8+p.payloadLen)
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(b)-14-40))
	ip[6], ip[7] = 43, 63
	s, d := senderIP.As16(), p.dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	h := ip[40:]
	h[0], h[1], h[2], h[3], h[4] = p.srhNext, uint8(2*len(segs)), 4, p.segsLeft, uint8(len(segs)-1)
	for i, sg := range segs {
		a := sg.As16()
		copy(h[8+16*(len(segs)-1-i):], a[:])
	}
	in := h[srh:]
	in[0] = 0x60
	binary.BigEndian.PutUint16(in[4:], uint16(8+p.payloadLen))
	in[6], in[7] = p.innerNext, 255
	copy(in[8:], s[:])
	copy(in[24:], s[:])
	u := b[udp:]
	binary.BigEndian.PutUint16(u, p.port)
	binary.BigEndian.PutUint16(u[2:], p.port)
	binary.BigEndian.PutUint16(u[4:], uint16(8+p.payloadLen))
	pl := u[8:]
	for i := range pl {
		pl[i] = byte(i * 7)
	}
	if p.tsOff+8 <= len(pl) {
		binary.BigEndian.PutUint64(pl[p.tsOff:], p.mbz)
	}
	binary.BigEndian.PutUint16(u[6:], udpChecksum(s, s, u))
	return b, udp
}

// udpChecksum computes the IPv6 UDP checksum with the checksum field as it
// is: over a packet with a correct checksum it returns 0.
func udpChecksum(src, dst [16]byte, udp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for ; len(b) >= 2; b = b[2:] {
			sum += uint32(binary.BigEndian.Uint16(b))
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(udp)) + 17
	add(udp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func loadStamper(t testing.TB, sids ...SID) *Stamper {
	t.Helper()
	s, err := New(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetSIDs(sids); err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t testing.TB, s *Stamper, in []byte) []byte {
	t.Helper()
	out := make([]byte, len(in)+256)
	ret, err := s.progs[14].Run(&ebpf.RunOptions{Data: in, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	if int32(ret) != tcxNext {
		t.Fatalf("program returned %d, want TCX_NEXT", int32(ret))
	}
	return out[:len(in)]
}

func TestProgramStamps(t *testing.T) {
	needBPF(t)
	s := loadStamper(t, SID{Addr: tsfSID}, SID{Addr: netip.MustParseAddr("fc00:c::300"), Mode: twamp.Authenticated},
		SID{Addr: netip.MustParseAddr("fc00:c::400"), Port: 862})
	auth := defaultProbe()
	auth.dst, auth.payloadLen, auth.tsOff = netip.MustParseAddr("fc00:c::300"), twamp.AuthBaseLen, 32
	port := defaultProbe()
	port.dst, port.port = netip.MustParseAddr("fc00:c::400"), 862
	for _, tc := range []struct {
		name string
		p    probe
		mod  func(*probe)
		want bool
	}{
		{name: "unauthenticated at 16", p: defaultProbe(), want: true},
		{name: "with TLVs after the base packet", p: defaultProbe(), mod: func(p *probe) { p.payloadLen = 200 }, want: true},
		{name: "authenticated at 32", p: auth, want: true},
		{name: "port matches", p: port, want: true},
		{name: "port differs", p: port, mod: func(p *probe) { p.port = 863 }},
		{name: "not an End.TSF SID", p: defaultProbe(), mod: func(p *probe) { p.dst = otherSID }},
		{name: "segments left", p: defaultProbe(), mod: func(p *probe) { p.segsLeft = 1 }},
		{name: "no inner IPv6", p: defaultProbe(), mod: func(p *probe) { p.srhNext = 17 }},
		{name: "inner not UDP", p: defaultProbe(), mod: func(p *probe) { p.innerNext = 6 }},
		{name: "already stamped", p: defaultProbe(), mod: func(p *probe) { p.mbz = 1 }},
		{name: "shorter than the base packet", p: defaultProbe(), mod: func(p *probe) { p.payloadLen = twamp.BaseLen - 1 }},
		{name: "authenticated SID, unauthenticated length", p: auth, mod: func(p *probe) { p.payloadLen = twamp.BaseLen }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			if tc.mod != nil {
				tc.mod(&p)
			}
			in, udp := p.frame()
			before := time.Now()
			out := run(t, s, in)
			after := time.Now()
			src := senderIP.As16()
			if c := udpChecksum(src, src, out[udp:]); c != 0 {
				t.Fatalf("UDP checksum off by %#04x after the program", c)
			}
			ts := udp + 8 + p.tsOff
			if !tc.want {
				if !bytes.Equal(in, out) {
					t.Fatalf("packet changed:\n in %x\nout %x", in, out)
				}
				return
			}
			// Only T2 and the checksum changed.
			diff := 0
			for i := range in {
				if in[i] != out[i] && !(i >= ts && i < ts+8) && i != udp+6 && i != udp+7 {
					diff++
				}
			}
			if diff != 0 {
				t.Fatalf("%d octets changed outside T2 and the checksum", diff)
			}
			t2 := twamp.DecodeTime(binary.BigEndian.Uint64(out[ts:]), twamp.FormatPTP, twamp.SystemTAIOffset())
			if t2.Before(before.Add(-time.Millisecond)) || t2.After(after.Add(time.Millisecond)) {
				t.Fatalf("T2 %v not within [%v, %v]", t2, before, after)
			}
			if ns := binary.BigEndian.Uint32(out[ts+4:]); ns >= 1e9 {
				t.Fatalf("nanoseconds field %d", ns)
			}
		})
	}
}

func TestSetSIDsLevelTriggered(t *testing.T) {
	needBPF(t)
	s := loadStamper(t, SID{Addr: tsfSID}, SID{Addr: otherSID})
	if err := s.SetSIDs([]SID{{Addr: otherSID, Port: 862}}); err != nil {
		t.Fatal(err)
	}
	var keys []netip.Addr
	var k [16]byte
	var v [8]byte
	it := s.sids.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, netip.AddrFrom16(k))
		if got := binary.NativeEndian.Uint16(v[:]); got != 862 {
			t.Fatalf("port in map %d, want 862", got)
		}
	}
	if len(keys) != 1 || keys[0] != otherSID {
		t.Fatalf("map holds %v, want only %v", keys, otherSID)
	}
	in, _ := defaultProbe().frame()
	if out := run(t, s, in); !bytes.Equal(in, out) {
		t.Fatal("a removed SID is still stamped")
	}
	for _, bad := range [][]SID{
		{{Addr: netip.MustParseAddr("192.0.2.1")}},
		{{Addr: tsfSID}, {Addr: tsfSID}},
		{{Addr: tsfSID, Mode: 7}},
	} {
		if err := s.SetSIDs(bad); err == nil {
			t.Fatalf("SetSIDs(%v) accepted", bad)
		}
	}
}

func TestRunStops(t *testing.T) {
	needBPF(t)
	s := loadStamper(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// TestEndBPFCannotWritePayload records why End.TSF is not an End.BPF
// program: the verifier refuses both ways of writing the packet in
// BPF_PROG_TYPE_LWT_SEG6LOCAL, while the same program without the write
// loads.
func TestEndBPFCannotWritePayload(t *testing.T) {
	needBPF(t)
	ok := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()} // BPF_OK
	store := asm.Instructions{
		asm.StoreImm(asm.RFP, -8, 0, asm.DWord),
		asm.Mov.Imm(asm.R2, 100),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 8),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
	direct := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 76, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 80, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 1),
		asm.JGT.Reg(asm.R4, asm.R3, "out"),
		asm.StoreImm(asm.R2, 0, 0, asm.Byte),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	load := func(insns asm.Instructions) error {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.LWTSeg6Local, License: "GPL", Instructions: insns})
		if err == nil {
			p.Close()
		}
		return err
	}
	if err := load(ok); err != nil {
		t.Skipf("no LWT_SEG6LOCAL programs on this kernel: %v", err)
	}
	for name, insns := range map[string]asm.Instructions{"bpf_skb_store_bytes": store, "direct packet write": direct} {
		err := load(insns)
		var ve *ebpf.VerifierError
		if err == nil || !errors.As(err, &ve) {
			t.Fatalf("%s in End.BPF: loaded (err %v), want a verifier refusal", name, err)
		}
		t.Logf("%s in End.BPF refused: %v", name, err)
	}
}

// FuzzProgram runs the program over arbitrary frames: it never fails and
// changes nothing but the 8 octets of T2 and the UDP checksum of a frame
// it recognises, which then still verifies.
func FuzzProgram(f *testing.F) {
	needBPF(f)
	for _, p := range []probe{defaultProbe(), {dst: tsfSID, srhNext: 41, innerNext: 17, payloadLen: 3}} {
		b, _ := p.frame()
		f.Add(b)
	}
	s := loadStamper(f, SID{Addr: tsfSID})
	f.Fuzz(func(t *testing.T, in []byte) {
		// BPF_PROG_TEST_RUN refuses an EtherType-IPv6 frame shorter than an
		// IPv6 header; such a frame cannot be a probe anyway.
		if len(in) < 14+40 || len(in) > 1500 {
			return
		}
		out := run(t, s, in)
		var changed []int
		for i := range in {
			if in[i] != out[i] {
				changed = append(changed, i)
			}
		}
		if len(changed) == 0 {
			return
		}
		if len(changed) > 10 {
			t.Fatalf("%d octets changed", len(changed))
		}
		// A stamped frame is a loopback probe to tsfSID: its inner UDP sits
		// after the SRH.
		srh := 14 + 40
		udp := srh + (int(in[srh+1])+1)*8 + 40
		for _, i := range changed {
			if !(i >= udp+8+16 && i < udp+8+24) && i != udp+6 && i != udp+7 {
				t.Fatalf("octet %d changed (UDP at %d)", i, udp)
			}
		}
	})
}

// BenchmarkProgram is the cost the stamper adds to every packet of a link,
// against an anchor program that only returns TCX_NEXT, in the same run
// (BPF_PROG_TEST_RUN, no syscall per packet). A probe is stamped only once
// (its T2 octets are then non-zero), so the stamping path itself is timed
// by the netns test, not here.
func BenchmarkProgram(b *testing.B) {
	needBPF(b)
	s := loadStamper(b, SID{Addr: tsfSID})
	anchor, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "Apache-2.0",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, tcxNext), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer anchor.Close()
	plain := make([]byte, 14+40+8+44) // IPv6 UDP, no SRH
	binary.BigEndian.PutUint16(plain[12:], 0x86dd)
	plain[14], plain[14+6] = 0x60, 17
	binary.BigEndian.PutUint16(plain[14+4:], 8+44)
	other := defaultProbe()
	other.dst = otherSID
	otherFrame, _ := other.frame()
	const n = 200_000
	per := func(p *ebpf.Program, in []byte) time.Duration {
		_, d, err := p.Benchmark(in, n, nil)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	for i := 0; i < b.N; i++ {
		base := per(anchor, plain)
		pl := per(s.progs[14], plain)
		sr := per(s.progs[14], otherFrame)
		b.ReportMetric(float64(base.Nanoseconds()), "anchor-ns/pkt")
		b.ReportMetric(float64(pl.Nanoseconds()), "plain-ipv6-ns/pkt")
		b.ReportMetric(float64(sr.Nanoseconds()), "srv6-other-sid-ns/pkt")
		b.ReportMetric(float64(pl)/float64(max(base, 1)), "plain/anchor")
		b.ReportMetric(float64(sr)/float64(max(base, 1)), "srv6/anchor")
	}
}
