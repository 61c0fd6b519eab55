package twamp

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// TLVType is a STAMP TLV type (IANA "STAMP TLV Types").
type TLVType uint8

// STAMP TLV types: RFC 8972 §4 and RFC 9503 §4, §5.
const (
	TLVExtraPadding           TLVType = 1
	TLVLocation               TLVType = 2
	TLVTimestampInfo          TLVType = 3
	TLVClassOfService         TLVType = 4
	TLVDirectMeasurement      TLVType = 5
	TLVAccessReport           TLVType = 6
	TLVFollowUpTelemetry      TLVType = 7
	TLVHMAC                   TLVType = 8
	TLVDestinationNodeAddress TLVType = 9
	TLVReturnPath             TLVType = 10
)

// STAMP TLV flags (RFC 8972 §4): Unrecognized, Malformed, Integrity.
const (
	FlagU uint8 = 0x80
	FlagM uint8 = 0x40
	FlagI uint8 = 0x20
)

const tlvHdrLen = 4

// Fixed value lengths of the TLVs that have one.
const (
	lenTimestampInfo     = 4
	lenClassOfService    = 4
	lenDirectMeasurement = 12
	lenAccessReport      = 4
	lenFollowUp          = 16
	lenHMAC              = HMACLen
	lenLocationMin       = 4
)

// Location sub-TLV types (RFC 8972 §4.2.1). A Session-Sender asks with
// the generic types (Source MAC, Destination IP, Source IP) and zeroed
// values; the Session-Reflector answers in place with the specific type.
// MAC-family values are 8 octets, address-family values 16 (an IPv4
// address is followed by 12 zero octets).
const (
	SubSrcMAC   uint8 = 1
	SubSrcEUI48 uint8 = 2
	SubSrcEUI64 uint8 = 3
	SubDstIP    uint8 = 4
	SubDstIPv4  uint8 = 5
	SubDstIPv6  uint8 = 6
	SubSrcIP    uint8 = 7
	SubSrcIPv4  uint8 = 8
	SubSrcIPv6  uint8 = 9

	lenSubMAC  = 8
	lenSubAddr = 16
)

// locationSubLen is the value length of a Location sub-TLV type, or -1.
func locationSubLen(t uint8) int {
	switch {
	case t >= SubSrcMAC && t <= SubSrcEUI64:
		return lenSubMAC
	case t >= SubDstIP && t <= SubSrcIPv6:
		return lenSubAddr
	}
	return -1
}

// Return Path sub-TLV types (RFC 9503 §5).
const (
	SubReturnControlCode uint8 = 1
	SubReturnAddress     uint8 = 2
	SubReturnSRMPLS      uint8 = 3
	SubReturnSRv6        uint8 = 4
)

// ControlCodeReplySameLink is the Return Path Control Code flag asking for a
// reply on the same link; without it no reply is requested (RFC 9503 §5.1).
const ControlCodeReplySameLink uint32 = 0x1

// TLV is one decoded TLV; Value aliases the packet buffer.
type TLV struct {
	Flags uint8
	Type  TLVType
	Value []byte
}

// TLVIter walks a TLV area without allocating. A TLV whose header or value
// runs past the end of the area is returned once with Malformed set and
// ends the walk: Off is where it starts, the rest of the area is its body.
type TLVIter struct {
	b         []byte
	off       int
	Off       int  // offset of the TLV last returned
	Malformed bool // the last TLV returned was truncated
}

// NewTLVIter iterates over b, the bytes after the base packet.
func NewTLVIter(b []byte) TLVIter { return TLVIter{b: b} }

// Next returns the next TLV, or false at the end.
func (it *TLVIter) Next() (TLV, bool) {
	if it.off >= len(it.b) || it.Malformed {
		return TLV{}, false
	}
	it.Off = it.off
	rest := it.b[it.off:]
	if len(rest) < tlvHdrLen {
		it.Malformed = true
		it.off = len(it.b)
		t := TLV{Flags: rest[0]}
		if len(rest) > 1 {
			t.Type = TLVType(rest[1])
		}
		return t, true
	}
	n := int(binary.BigEndian.Uint16(rest[2:]))
	t := TLV{Flags: rest[0], Type: TLVType(rest[1])}
	if tlvHdrLen+n > len(rest) {
		it.Malformed = true
		it.off = len(it.b)
		t.Value = rest[tlvHdrLen:]
		return t, true
	}
	t.Value = rest[tlvHdrLen : tlvHdrLen+n]
	it.off += tlvHdrLen + n
	return t, true
}

// PutTLV writes a TLV header and value at b[0:] and returns its length. b
// must have room for 4+len(value) octets.
func PutTLV(b []byte, flags uint8, typ TLVType, value []byte) int {
	b[0], b[1] = flags, byte(typ)
	binary.BigEndian.PutUint16(b[2:], uint16(len(value)))
	return tlvHdrLen + copy(b[tlvHdrLen:], value)
}

// putTLVHeader writes a header for a value of n octets that the caller fills.
func putTLVHeader(b []byte, typ TLVType, n int) []byte {
	b[0], b[1] = 0, byte(typ)
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	v := b[tlvHdrLen : tlvHdrLen+n]
	clear(v)
	return v
}

// fixedLen is the only valid value length of a TLV type, or -1.
func fixedLen(t TLVType) int {
	switch t {
	case TLVTimestampInfo:
		return lenTimestampInfo
	case TLVClassOfService:
		return lenClassOfService
	case TLVDirectMeasurement:
		return lenDirectMeasurement
	case TLVAccessReport:
		return lenAccessReport
	case TLVFollowUpTelemetry:
		return lenFollowUp
	case TLVHMAC:
		return lenHMAC
	}
	return -1
}

// wellFormed checks a known TLV's value length (RFC 8972: a TLV with a wrong
// length is malformed).
func wellFormed(t TLV) bool {
	if n := fixedLen(t.Type); n >= 0 {
		return len(t.Value) == n
	}
	switch t.Type {
	case TLVLocation:
		return len(t.Value) >= lenLocationMin && locationWellFormed(t.Value[lenLocationMin:])
	case TLVDestinationNodeAddress:
		return len(t.Value) == 4 || len(t.Value) == 16
	case TLVReturnPath:
		return len(t.Value) >= tlvHdrLen && subTLVsWellFormed(t.Value)
	}
	return true
}

// locationWellFormed checks the sub-TLV structure and the length of every
// known sub-TLV type.
func locationWellFormed(b []byte) bool {
	it := NewTLVIter(b)
	for {
		s, ok := it.Next()
		if !ok {
			return true
		}
		if n := locationSubLen(uint8(s.Type)); it.Malformed || n >= 0 && len(s.Value) != n {
			return false
		}
	}
}

func subTLVsWellFormed(b []byte) bool {
	it := NewTLVIter(b)
	for {
		if _, ok := it.Next(); !ok {
			return true
		}
		if it.Malformed {
			return false
		}
	}
}

// Known reports whether this implementation understands the TLV type.
func (t TLVType) Known() bool { return t >= TLVExtraPadding && t <= TLVReturnPath }

func (t TLVType) String() string {
	names := [...]string{"", "extra-padding", "location", "timestamp-info", "class-of-service",
		"direct-measurement", "access-report", "follow-up-telemetry", "hmac",
		"destination-node-address", "return-path"}
	if t.Known() {
		return names[t]
	}
	return fmt.Sprintf("tlv-%d", uint8(t))
}

// Sync source and timestamping method codes of the Timestamp Information TLV
// (RFC 8972 §4.3, IANA registries).
const (
	SyncNTP       uint8 = 1
	SyncPTP       uint8 = 2
	SyncSSU       uint8 = 3
	SyncGNSS      uint8 = 4
	SyncLocalFree uint8 = 5

	StampHW           uint8 = 1
	StampSWLocal      uint8 = 2
	StampControlPlane uint8 = 3
)

// TimestampInfo is the Timestamp Information TLV value.
type TimestampInfo struct{ SyncIn, MethodIn, SyncOut, MethodOut uint8 }

// ParseTimestampInfo decodes a Timestamp Information TLV value.
func ParseTimestampInfo(v []byte) (TimestampInfo, error) {
	if len(v) != lenTimestampInfo {
		return TimestampInfo{}, fmt.Errorf("timestamp-info TLV: length %d, want %d", len(v), lenTimestampInfo)
	}
	return TimestampInfo{v[0], v[1], v[2], v[3]}, nil
}

// ClassOfService is the Class of Service TLV value (RFC 8972 §4.4):
// DSCP1 (6 bits, requested for the reflected packet), DSCP2 (6 bits, as
// received by the reflector), ECN (2 bits, as received), RP (2 bits).
type ClassOfService struct{ DSCP1, DSCP2, ECN, RP uint8 }

// ParseClassOfService decodes a Class of Service TLV value.
func ParseClassOfService(v []byte) (ClassOfService, error) {
	if len(v) != lenClassOfService {
		return ClassOfService{}, fmt.Errorf("class-of-service TLV: length %d, want %d", len(v), lenClassOfService)
	}
	w := binary.BigEndian.Uint16(v)
	return ClassOfService{DSCP1: uint8(w >> 10), DSCP2: uint8(w>>4) & 0x3f, ECN: uint8(w>>2) & 3, RP: uint8(w) & 3}, nil
}

func (c ClassOfService) put(v []byte) {
	binary.BigEndian.PutUint16(v, uint16(c.DSCP1&0x3f)<<10|uint16(c.DSCP2&0x3f)<<4|uint16(c.ECN&3)<<2|uint16(c.RP&3))
	v[2], v[3] = 0, 0
}

// DirectMeasurement is the Direct Measurement TLV value (RFC 8972 §4.5).
type DirectMeasurement struct{ SenderTx, ReflectorRx, ReflectorTx uint32 }

// ParseDirectMeasurement decodes a Direct Measurement TLV value.
func ParseDirectMeasurement(v []byte) (DirectMeasurement, error) {
	if len(v) != lenDirectMeasurement {
		return DirectMeasurement{}, fmt.Errorf("direct-measurement TLV: length %d, want %d", len(v), lenDirectMeasurement)
	}
	be := binary.BigEndian
	return DirectMeasurement{be.Uint32(v), be.Uint32(v[4:]), be.Uint32(v[8:])}, nil
}

// AccessReport is the Access Report TLV value (RFC 8972 §4.6).
type AccessReport struct{ ID, ReturnCode uint8 }

// ParseAccessReport decodes an Access Report TLV value.
func ParseAccessReport(v []byte) (AccessReport, error) {
	if len(v) != lenAccessReport {
		return AccessReport{}, fmt.Errorf("access-report TLV: length %d, want %d", len(v), lenAccessReport)
	}
	return AccessReport{ID: v[0] >> 4, ReturnCode: v[1]}, nil
}

// FollowUpTelemetry is the Follow-Up Telemetry TLV value (RFC 8972 §4.7):
// the reflector's previous reply in the session and when it really left.
type FollowUpTelemetry struct {
	Seq       uint32
	Timestamp uint64
	Mode      uint8
}

// ParseFollowUpTelemetry decodes a Follow-Up Telemetry TLV value.
func ParseFollowUpTelemetry(v []byte) (FollowUpTelemetry, error) {
	if len(v) != lenFollowUp {
		return FollowUpTelemetry{}, fmt.Errorf("follow-up-telemetry TLV: length %d, want %d", len(v), lenFollowUp)
	}
	be := binary.BigEndian
	return FollowUpTelemetry{Seq: be.Uint32(v), Timestamp: be.Uint64(v[4:]), Mode: v[12]}, nil
}

// Location is the Location TLV value as filled by a reflector (RFC 8972 §4.2).
type Location struct {
	DstPort, SrcPort uint16
	Src, Dst         netip.Addr // from the IPv4/IPv6 address sub-TLVs
}

// ParseLocation decodes a Location TLV value and its address sub-TLVs.
func ParseLocation(v []byte) (Location, error) {
	if len(v) < lenLocationMin {
		return Location{}, fmt.Errorf("location TLV: length %d, want at least %d", len(v), lenLocationMin)
	}
	l := Location{DstPort: binary.BigEndian.Uint16(v), SrcPort: binary.BigEndian.Uint16(v[2:])}
	it := NewTLVIter(v[lenLocationMin:])
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		if it.Malformed {
			return l, fmt.Errorf("location TLV: sub-TLV %d at %d truncated", s.Type, it.Off)
		}
		if len(s.Value) != lenSubAddr {
			continue
		}
		switch uint8(s.Type) {
		case SubSrcIPv4:
			l.Src = netip.AddrFrom4([4]byte(s.Value[:4]))
		case SubSrcIPv6:
			l.Src = netip.AddrFrom16([16]byte(s.Value))
		case SubDstIPv4:
			l.Dst = netip.AddrFrom4([4]byte(s.Value[:4]))
		case SubDstIPv6:
			l.Dst = netip.AddrFrom16([16]byte(s.Value))
		}
	}
	return l, nil
}

// ReturnPath is a Return Path TLV (RFC 9503 §5) as a sender asks for it.
type ReturnPath struct {
	ControlCode *uint32      // Control Code sub-TLV
	Address     netip.Addr   // Return Address sub-TLV
	SRv6        []netip.Addr // SRv6 Segment List sub-TLV
}

func (r *ReturnPath) valueLen() int {
	n := 0
	if r.ControlCode != nil {
		n += tlvHdrLen + 4
	}
	if r.Address.IsValid() {
		n += tlvHdrLen + r.Address.BitLen()/8
	}
	if len(r.SRv6) > 0 {
		n += tlvHdrLen + 16*len(r.SRv6)
	}
	return n
}

func (r *ReturnPath) put(v []byte) {
	off := 0
	if r.ControlCode != nil {
		var cc [4]byte
		binary.BigEndian.PutUint32(cc[:], *r.ControlCode)
		off += PutTLV(v[off:], 0, TLVType(SubReturnControlCode), cc[:])
	}
	if r.Address.IsValid() {
		off += PutTLV(v[off:], 0, TLVType(SubReturnAddress), r.Address.AsSlice())
	}
	if len(r.SRv6) > 0 {
		s := putTLVHeader(v[off:], TLVType(SubReturnSRv6), 16*len(r.SRv6))
		for i, a := range r.SRv6 {
			a16 := a.As16()
			copy(s[16*i:], a16[:])
		}
	}
}

// ParseReturnPath decodes a Return Path TLV value.
func ParseReturnPath(v []byte) (ReturnPath, error) {
	var r ReturnPath
	it := NewTLVIter(v)
	for {
		s, ok := it.Next()
		if !ok {
			return r, nil
		}
		if it.Malformed {
			return r, fmt.Errorf("return-path TLV: sub-TLV %d at %d truncated", s.Type, it.Off)
		}
		switch uint8(s.Type) {
		case SubReturnControlCode:
			if len(s.Value) != 4 {
				return r, fmt.Errorf("return-path control code: length %d, want 4", len(s.Value))
			}
			cc := binary.BigEndian.Uint32(s.Value)
			r.ControlCode = &cc
		case SubReturnAddress:
			a, ok := netip.AddrFromSlice(s.Value)
			if !ok {
				return r, fmt.Errorf("return-path address: length %d, want 4 or 16", len(s.Value))
			}
			r.Address = a
		case SubReturnSRv6:
			if len(s.Value)%16 != 0 || len(s.Value) == 0 {
				return r, fmt.Errorf("return-path SRv6 segment list: length %d, not a multiple of 16", len(s.Value))
			}
			for i := 0; i < len(s.Value); i += 16 {
				r.SRv6 = append(r.SRv6, netip.AddrFrom16([16]byte(s.Value[i:i+16])))
			}
		}
	}
}

// TLVSet says which TLVs a Session-Sender puts in its test packets, in this
// order; the HMAC TLV, when asked for, is always last (RFC 8972 §4.8).
type TLVSet struct {
	ExtraPadding      int // octets of Extra Padding value (0: none)
	Location          bool
	TimestampInfo     bool
	ClassOfService    *ClassOfService // DSCP1 requested for the reply
	DirectMeasurement bool
	AccessReport      *AccessReport
	FollowUpTelemetry bool
	DestinationNode   netip.Addr
	ReturnPath        *ReturnPath
	HMAC              bool
}

// Len is the number of octets the TLVs take.
func (s *TLVSet) Len() int {
	n := 0
	if s.ExtraPadding > 0 {
		n += tlvHdrLen + s.ExtraPadding
	}
	if s.Location {
		n += tlvHdrLen + s.locationLen()
	}
	if s.TimestampInfo {
		n += tlvHdrLen + lenTimestampInfo
	}
	if s.ClassOfService != nil {
		n += tlvHdrLen + lenClassOfService
	}
	if s.DirectMeasurement {
		n += tlvHdrLen + lenDirectMeasurement
	}
	if s.AccessReport != nil {
		n += tlvHdrLen + lenAccessReport
	}
	if s.FollowUpTelemetry {
		n += tlvHdrLen + lenFollowUp
	}
	if s.DestinationNode.IsValid() {
		n += tlvHdrLen + s.DestinationNode.BitLen()/8
	}
	if s.ReturnPath != nil {
		n += tlvHdrLen + s.ReturnPath.valueLen()
	}
	if s.HMAC {
		n += tlvHdrLen + lenHMAC
	}
	return n
}

// locationLen: ports, then generic Source IP and Destination IP requests.
func (s *TLVSet) locationLen() int { return lenLocationMin + 2*(tlvHdrLen+lenSubAddr) }

// Put writes the TLVs into b (len(b) ≥ s.Len()) with the values a sender
// sends: zeroed fields the reflector fills, the sender's own counters.
// txCount is the sender's transmit counter for Direct Measurement. The
// HMAC TLV value is left zero; SignTLVs computes it.
func (s *TLVSet) Put(b []byte, txCount uint32) int {
	off := 0
	if s.ExtraPadding > 0 {
		putTLVHeader(b[off:], TLVExtraPadding, s.ExtraPadding)
		off += tlvHdrLen + s.ExtraPadding
	}
	if s.Location {
		v := putTLVHeader(b[off:], TLVLocation, s.locationLen())
		putTLVHeader(v[lenLocationMin:], TLVType(SubSrcIP), lenSubAddr)
		putTLVHeader(v[lenLocationMin+tlvHdrLen+lenSubAddr:], TLVType(SubDstIP), lenSubAddr)
		off += tlvHdrLen + len(v)
	}
	if s.TimestampInfo {
		putTLVHeader(b[off:], TLVTimestampInfo, lenTimestampInfo)
		off += tlvHdrLen + lenTimestampInfo
	}
	if c := s.ClassOfService; c != nil {
		v := putTLVHeader(b[off:], TLVClassOfService, lenClassOfService)
		ClassOfService{DSCP1: c.DSCP1}.put(v)
		off += tlvHdrLen + lenClassOfService
	}
	if s.DirectMeasurement {
		v := putTLVHeader(b[off:], TLVDirectMeasurement, lenDirectMeasurement)
		binary.BigEndian.PutUint32(v, txCount)
		off += tlvHdrLen + lenDirectMeasurement
	}
	if a := s.AccessReport; a != nil {
		v := putTLVHeader(b[off:], TLVAccessReport, lenAccessReport)
		v[0], v[1] = a.ID<<4, a.ReturnCode
		off += tlvHdrLen + lenAccessReport
	}
	if s.FollowUpTelemetry {
		putTLVHeader(b[off:], TLVFollowUpTelemetry, lenFollowUp)
		off += tlvHdrLen + lenFollowUp
	}
	if s.DestinationNode.IsValid() {
		off += PutTLV(b[off:], 0, TLVDestinationNodeAddress, s.DestinationNode.AsSlice())
	}
	if r := s.ReturnPath; r != nil {
		v := putTLVHeader(b[off:], TLVReturnPath, r.valueLen())
		r.put(v)
		off += tlvHdrLen + len(v)
	}
	if s.HMAC {
		putTLVHeader(b[off:], TLVHMAC, lenHMAC)
		off += tlvHdrLen + lenHMAC
	}
	return off
}

// SignTLVs fills the HMAC TLV at the end of pkt (base packet of mode m
// followed by TLVs), if the last TLV is one: HMAC over the Sequence Number
// and the TLVs before it (RFC 8972 §4.8).
func SignTLVs(s *Signer, pkt []byte, m Mode) {
	base := m.BaseLen()
	if len(pkt) < base+tlvHdrLen+lenHMAC {
		return
	}
	h := len(pkt) - tlvHdrLen - lenHMAC
	if TLVType(pkt[h+1]) != TLVHMAC || binary.BigEndian.Uint16(pkt[h+2:]) != lenHMAC {
		return
	}
	copy(pkt[h+tlvHdrLen:], s.tlvMAC(pkt[:4], pkt[base:h]))
}

// verifyTLVMAC checks the HMAC TLV whose header starts at offset h of pkt.
func verifyTLVMAC(s *Signer, pkt []byte, base, h int) bool {
	return hmac.Equal(s.tlvMAC(pkt[:4], pkt[base:h]), pkt[h+tlvHdrLen:h+tlvHdrLen+lenHMAC])
}
