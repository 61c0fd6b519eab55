package endtsf

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/srv6cpe/srv6cpe/twamp"
)

// The stamping program, written with cilium/ebpf's assembler (no clang, no
// object files in the tree: the firmware build stays pure Go).
//
// It runs at tc ingress (tcx) of the far node's links and leaves every
// packet to the rest of the stack (TCX_NEXT); it never drops. It acts on a
// packet only when all of these hold:
//
//	outer IPv6, Next Header 43, SRH type 4 with Segments Left 0 and Next
//	Header 41: the packet is at its last segment and carries an inner IPv6
//	packet, as the twamp Session-Sender builds enhanced-loopback probes;
//	the outer destination is a SID in the sids map (the End.TSF SIDs);
//	the inner packet is UDP (no extension headers), to the SID's port (any
//	port when 0: a loopback probe goes to the sender's own ephemeral port),
//	at least as long as the STAMP base packet of the SID's mode;
//	the 8 octets where T2 goes are zero (MBZ in the Session-Sender packet:
//	a packet stamped already, or not STAMP at all, is left alone).
//
// It then writes T2, the TAI time of CLOCK_TAI plus the clock map's
// correction, as a PTPv2 truncated timestamp (32-bit seconds, 32-bit
// nanoseconds) at payload offset 16 (unauthenticated) or 32
// (authenticated), the Receive Timestamp position of the RFC 8762 §4.3
// Session-Reflector packet, and updates the inner UDP checksum by the
// difference. The plain seg6local End.DX6 route of the SID then
// decapsulates and forwards as usual.

// sidValue is the value of the sids map, in host byte order.
type sidValue struct {
	Port     uint16 // inner UDP destination port; 0: any
	TSOffset uint16 // where T2 goes in the STAMP payload
	MinLen   uint16 // STAMP base packet length of the mode
	_        uint16
}

func (v sidValue) marshal() []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint16(b, v.Port)
	binary.NativeEndian.PutUint16(b[2:], v.TSOffset)
	binary.NativeEndian.PutUint16(b[4:], v.MinLen)
	return b
}

func valueOf(sid SID) sidValue {
	v := sidValue{Port: sid.Port, TSOffset: 16, MinLen: twamp.BaseLen}
	if sid.Mode == twamp.Authenticated {
		v.TSOffset, v.MinLen = 32, twamp.AuthBaseLen
	}
	return v
}

func sidKey(a netip.Addr) []byte { k := a.As16(); return k[:] }

const (
	maxSIDs = 64

	skbProtocol   = 16 // offsetof(struct __sk_buff, protocol)
	ethPIPv6      = 0x86dd
	protoRouting  = 43
	protoIPv6     = 41
	protoUDP      = 17
	srhTypeSeg    = 4
	tcxNext       = -1
	fMarkMangled0 = 1 << 5 // BPF_F_MARK_MANGLED_0: a 0 result becomes 0xffff

	// Stack layout (offsets from the frame pointer).
	outerBuf  = -48 // outer IPv6 (40) + first 8 octets of the SRH
	outerDst  = outerBuf + 24
	outerNext = outerBuf + 6
	srhNext   = outerBuf + 40
	srhExtLen = outerBuf + 41
	srhType   = outerBuf + 42
	srhLeft   = outerBuf + 43
	innerBuf  = -96 // inner IPv6 (40) + UDP (8)
	innerNext = innerBuf + 6
	udpDport  = innerBuf + 42
	udpLen    = innerBuf + 44
	tsBuf     = -104 // the 8 octets of T2
	keyBuf    = -108 // the clock map key
)

// program returns the instructions for links whose frames carry an l2-octet
// link header before IPv6 (14 on Ethernet, 0 on L3 devices).
func program(l2 int32, sids, clock *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.JNE.Imm(asm.R2, ethPIPv6, "out"),

		// Outer IPv6 header and the fixed part of the SRH.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, l2),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, outerBuf),
		asm.Mov.Imm(asm.R4, -outerBuf),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R2, asm.RFP, outerNext, asm.Byte),
		asm.JNE.Imm(asm.R2, protoRouting, "out"),
		asm.LoadMem(asm.R2, asm.RFP, srhType, asm.Byte),
		asm.JNE.Imm(asm.R2, srhTypeSeg, "out"),
		asm.LoadMem(asm.R2, asm.RFP, srhLeft, asm.Byte),
		asm.JNE.Imm(asm.R2, 0, "out"),
		asm.LoadMem(asm.R2, asm.RFP, srhNext, asm.Byte),
		asm.JNE.Imm(asm.R2, protoIPv6, "out"),

		// Is the destination an End.TSF SID?
		asm.LoadMapPtr(asm.R1, sids.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, outerDst),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R7, asm.R0),

		// R8: offset of the inner IPv6 header.
		asm.LoadMem(asm.R8, asm.RFP, srhExtLen, asm.Byte),
		asm.Add.Imm(asm.R8, 1),
		asm.LSh.Imm(asm.R8, 3),
		asm.Add.Imm(asm.R8, l2+40),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, innerBuf),
		asm.Mov.Imm(asm.R4, 48),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R2, asm.RFP, innerNext, asm.Byte),
		asm.JNE.Imm(asm.R2, protoUDP, "out"),

		asm.LoadMem(asm.R2, asm.R7, 0, asm.Half), // port
		asm.JEq.Imm(asm.R2, 0, "anyport"),
		asm.LoadMem(asm.R3, asm.RFP, udpDport, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.JNE.Reg(asm.R3, asm.R2, "out"),
		asm.LoadMem(asm.R2, asm.RFP, udpLen, asm.Half).WithSymbol("anyport"),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.LoadMem(asm.R3, asm.R7, 4, asm.Half), // minimum STAMP length
		asm.Add.Imm(asm.R3, 8),
		asm.JLT.Reg(asm.R2, asm.R3, "out"),

		// R9: offset of T2; it must still be zero.
		asm.LoadMem(asm.R9, asm.R7, 2, asm.Half),
		asm.Add.Reg(asm.R9, asm.R8),
		asm.Add.Imm(asm.R9, 48),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, tsBuf),
		asm.Mov.Imm(asm.R4, 8),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R2, asm.RFP, tsBuf, asm.DWord),
		asm.JNE.Imm(asm.R2, 0, "out"),

		// R7: T2 in TAI nanoseconds.
		asm.FnKtimeGetTaiNs.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.StoreImm(asm.RFP, keyBuf, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, clock.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyBuf),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "stamp"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Reg(asm.R7, asm.R1),

		// PTPv2 truncated: seconds and nanoseconds, 32 bits each, big endian.
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("stamp"),
		asm.Div.Imm(asm.R2, 1_000_000_000),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Mod.Imm(asm.R3, 1_000_000_000),
		asm.HostTo(asm.BE, asm.R2, asm.Word),
		asm.HostTo(asm.BE, asm.R3, asm.Word),
		asm.StoreMem(asm.RFP, tsBuf, asm.R2, asm.Word),
		asm.StoreMem(asm.RFP, tsBuf+4, asm.R3, asm.Word),

		// The old octets were zero: the checksum moves by the sum of the new.
		asm.Mov.Imm(asm.R1, 0),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, tsBuf),
		asm.Mov.Imm(asm.R4, 8),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCsumDiff.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),

		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, tsBuf),
		asm.Mov.Imm(asm.R4, 8),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "out"),

		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Add.Imm(asm.R2, 40+6), // the inner UDP checksum
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Mov.Imm(asm.R5, fMarkMangled0), // size 0: R4 is a checksum difference
		asm.FnL4CsumReplace.Call(),

		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("out"),
		asm.Return(),
	}
}

// programSpec is the loadable program for links with an l2-octet header.
func programSpec(l2 int32, sids, clock *ebpf.Map) *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{
		Name:         fmt.Sprintf("endtsf_l2_%d", l2),
		Type:         ebpf.SchedCLS,
		License:      "Apache-2.0",
		Instructions: program(l2, sids, clock),
	}
}
