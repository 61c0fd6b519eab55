package twamp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// DefaultPort is the well-known STAMP / TWAMP-Test port (RFC 8762 §4.1).
const DefaultPort = 862

// Packet sizes (RFC 8762 §4.2, §4.3): the base packet before any TLV.
const (
	BaseLen     = 44  // unauthenticated Session-Sender and Session-Reflector
	AuthBaseLen = 112 // authenticated Session-Sender and Session-Reflector
	HMACLen     = 16  // HMAC-SHA-256 truncated to 128 bits
	authHMACOff = 96  // the HMAC covers bytes 0..95 (RFC 8762 §4.2.2, §4.3.2)
	// TWAMPLightMinLen is the RFC 5357 §4.2.1 reflector base packet (41
	// octets): a TWAMP Light request at least that long gets a reply.
	TWAMPLightMinLen = 41
)

// Mode is the STAMP mode of a session.
type Mode uint8

const (
	// Unauthenticated is the 44-octet base packet.
	Unauthenticated Mode = iota
	// Authenticated is the 112-octet base packet with HMAC-SHA-256.
	Authenticated
)

func (m Mode) String() string {
	if m == Authenticated {
		return "authenticated"
	}
	return "unauthenticated"
}

// BaseLen returns the base packet length of the mode; TLVs start there.
func (m Mode) BaseLen() int {
	if m == Authenticated {
		return AuthBaseLen
	}
	return BaseLen
}

// Errors returned by the decoders; wrapped with the offending length.
var (
	ErrShort   = errors.New("stamp: packet too short")
	ErrBadHMAC = errors.New("stamp: HMAC mismatch")
)

// field offsets for one mode and role.
type layout struct {
	seq, ts, ee, ssid                 int
	rxts, sseq, sts, see, ttl, length int
}

var (
	senderUnauth = layout{seq: 0, ts: 4, ee: 12, ssid: 14, length: BaseLen}
	senderAuth   = layout{seq: 0, ts: 16, ee: 24, ssid: 26, length: AuthBaseLen}
	reflUnauth   = layout{seq: 0, ts: 4, ee: 12, ssid: 14, rxts: 16, sseq: 24, sts: 28, see: 36, ttl: 40, length: BaseLen}
	reflAuth     = layout{seq: 0, ts: 16, ee: 24, ssid: 26, rxts: 32, sseq: 48, sts: 64, see: 72, ttl: 80, length: AuthBaseLen}
)

func senderLayout(m Mode) *layout {
	if m == Authenticated {
		return &senderAuth
	}
	return &senderUnauth
}

func reflectorLayout(m Mode) *layout {
	if m == Authenticated {
		return &reflAuth
	}
	return &reflUnauth
}

// SenderHeader is the base Session-Sender test packet (RFC 8762 §4.2 with
// the SSID of RFC 8972 §3).
type SenderHeader struct {
	Seq           uint32
	Timestamp     uint64 // T1
	ErrorEstimate ErrorEstimate
	SSID          uint16
}

// Put writes the header into b[:mode.BaseLen()], zeroing every MBZ octet and
// the HMAC field. b must be at least that long; TLV bytes are untouched.
func (h *SenderHeader) Put(b []byte, m Mode) {
	l := senderLayout(m)
	clear(b[:l.length])
	be := binary.BigEndian
	be.PutUint32(b[l.seq:], h.Seq)
	be.PutUint64(b[l.ts:], h.Timestamp)
	be.PutUint16(b[l.ee:], uint16(h.ErrorEstimate))
	be.PutUint16(b[l.ssid:], h.SSID)
}

// DecodeSender reads a Session-Sender base packet. MBZ octets are not
// checked (RFC 8762: ignored on receipt).
func DecodeSender(b []byte, m Mode) (SenderHeader, error) {
	l := senderLayout(m)
	if len(b) < l.length {
		return SenderHeader{}, fmt.Errorf("%w: %d octets, %s sender needs %d", ErrShort, len(b), m, l.length)
	}
	be := binary.BigEndian
	return SenderHeader{
		Seq:           be.Uint32(b[l.seq:]),
		Timestamp:     be.Uint64(b[l.ts:]),
		ErrorEstimate: ErrorEstimate(be.Uint16(b[l.ee:])),
		SSID:          be.Uint16(b[l.ssid:]),
	}, nil
}

// ReflectorHeader is the base Session-Reflector test packet (RFC 8762 §4.3,
// SSID per RFC 8972 §3).
type ReflectorHeader struct {
	Seq                 uint32
	Timestamp           uint64 // T3
	ErrorEstimate       ErrorEstimate
	SSID                uint16
	ReceiveTimestamp    uint64 // T2
	SenderSeq           uint32
	SenderTimestamp     uint64 // T1
	SenderErrorEstimate ErrorEstimate
	SenderTTL           uint8
}

// Put writes the header into b[:mode.BaseLen()], zeroing MBZ octets and the
// HMAC field.
func (h *ReflectorHeader) Put(b []byte, m Mode) {
	l := reflectorLayout(m)
	clear(b[:l.length])
	be := binary.BigEndian
	be.PutUint32(b[l.seq:], h.Seq)
	be.PutUint64(b[l.ts:], h.Timestamp)
	be.PutUint16(b[l.ee:], uint16(h.ErrorEstimate))
	be.PutUint16(b[l.ssid:], h.SSID)
	be.PutUint64(b[l.rxts:], h.ReceiveTimestamp)
	be.PutUint32(b[l.sseq:], h.SenderSeq)
	be.PutUint64(b[l.sts:], h.SenderTimestamp)
	be.PutUint16(b[l.see:], uint16(h.SenderErrorEstimate))
	b[l.ttl] = h.SenderTTL
}

// DecodeReflector reads a Session-Reflector base packet.
func DecodeReflector(b []byte, m Mode) (ReflectorHeader, error) {
	l := reflectorLayout(m)
	if len(b) < l.length {
		return ReflectorHeader{}, fmt.Errorf("%w: %d octets, %s reflector needs %d", ErrShort, len(b), m, l.length)
	}
	be := binary.BigEndian
	return ReflectorHeader{
		Seq:                 be.Uint32(b[l.seq:]),
		Timestamp:           be.Uint64(b[l.ts:]),
		ErrorEstimate:       ErrorEstimate(be.Uint16(b[l.ee:])),
		SSID:                be.Uint16(b[l.ssid:]),
		ReceiveTimestamp:    be.Uint64(b[l.rxts:]),
		SenderSeq:           be.Uint32(b[l.sseq:]),
		SenderTimestamp:     be.Uint64(b[l.sts:]),
		SenderErrorEstimate: ErrorEstimate(be.Uint16(b[l.see:])),
		SenderTTL:           b[l.ttl],
	}, nil
}

// putT3 rewrites the reflector's own timestamp and error estimate in place;
// T3 is written just before the reply is sent.
func putT3(b []byte, m Mode, ts uint64, ee ErrorEstimate) {
	l := reflectorLayout(m)
	binary.BigEndian.PutUint64(b[l.ts:], ts)
	binary.BigEndian.PutUint16(b[l.ee:], uint16(ee))
}

// putT1 rewrites the sender's timestamp and error estimate in place.
func putT1(b []byte, m Mode, ts uint64, ee ErrorEstimate) {
	l := senderLayout(m)
	binary.BigEndian.PutUint64(b[l.ts:], ts)
	binary.BigEndian.PutUint16(b[l.ee:], uint16(ee))
}

// Signer computes STAMP HMACs with one key. It reuses its hash state, so a
// Signer is not safe for concurrent use; each worker keeps its own.
type Signer struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewSigner returns a Signer for key (HMAC-SHA-256, RFC 8762 §4.4).
func NewSigner(key []byte) *Signer { return &Signer{h: hmac.New(sha256.New, key)} }

func (s *Signer) mac(parts ...[]byte) []byte {
	s.h.Reset()
	for _, p := range parts {
		s.h.Write(p)
	}
	return s.h.Sum(s.sum[:0])[:HMACLen]
}

// Sign writes the HMAC of an authenticated base packet: HMAC-SHA-256 over
// octets 0..95, truncated to 128 bits, into octets 96..111.
func (s *Signer) Sign(b []byte) {
	copy(b[authHMACOff:AuthBaseLen], s.mac(b[:authHMACOff]))
}

// Verify checks the HMAC of an authenticated base packet in constant time.
func (s *Signer) Verify(b []byte) bool {
	if len(b) < AuthBaseLen {
		return false
	}
	return hmac.Equal(s.mac(b[:authHMACOff]), b[authHMACOff:AuthBaseLen])
}

// tlvMAC is the HMAC TLV value (RFC 8972 §4.8): over the base packet's
// Sequence Number followed by every TLV that precedes the HMAC TLV.
func (s *Signer) tlvMAC(seq, tlvs []byte) []byte { return s.mac(seq, tlvs) }
