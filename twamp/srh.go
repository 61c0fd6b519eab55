package twamp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Packet building for the two SRv6 paths of the sender. Pure functions.

const (
	ipv6HdrLen    = 40
	udpHdrLen     = 8
	protoRouting  = 43
	protoIPv6     = 41
	protoUDP      = 17
	srhTypeSeg    = 4
	maxSegments   = 32 // far above any CPE policy; keeps packets sane
	loopHopLimit  = 64
	innerHopLimit = 255
)

func checkSegments(segs []netip.Addr) error {
	if len(segs) == 0 || len(segs) > maxSegments {
		return fmt.Errorf("segment list of %d SIDs: want 1..%d", len(segs), maxSegments)
	}
	for _, s := range segs {
		if !s.Is6() || s.Is4In6() || s.IsMulticast() || s.IsUnspecified() {
			return fmt.Errorf("segment %v is not a unicast IPv6 SID", s)
		}
	}
	return nil
}

// srhLen is the length of an SRH carrying n segment-list entries.
func srhLen(n int) int { return 8 + 16*n }

// putSRH writes a Segment Routing Header (RFC 8754 §2) whose packet travels
// segs in order and then to final (when valid). The list is stored in
// reverse: entry 0 is the last segment. next is the Next Header value.
func putSRH(b []byte, next uint8, segs []netip.Addr, final netip.Addr) int {
	n := len(segs)
	if final.IsValid() {
		n++
	}
	l := srhLen(n)
	clear(b[:8])
	b[0] = next
	b[1] = uint8(2 * n) // Hdr Ext Len in 8-octet units, excluding the first 8
	b[2] = srhTypeSeg
	b[3] = uint8(n - 1) // Segments Left
	b[4] = uint8(n - 1) // Last Entry
	e := 8
	if final.IsValid() {
		f := final.As16()
		copy(b[e:], f[:])
		e += 16
	}
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i].As16()
		copy(b[e:], s[:])
		e += 16
	}
	return l
}

// SocketSRH is the IPV6_RTHDR socket option value that sends every packet
// of a UDP socket along segs and then to the address the socket sends to:
// the kernel (ipv6_push_rthdr4) puts the destination in entry 0 and sends
// the packet to entry Segments Left.
func SocketSRH(segs []netip.Addr) ([]byte, error) {
	if err := checkSegments(segs); err != nil {
		return nil, err
	}
	b := make([]byte, srhLen(len(segs)+1))
	putSRH(b, 0, segs, netip.IPv6Unspecified())
	return b, nil
}

func putIPv6(b []byte, tclass uint8, payloadLen int, next, hops uint8, src, dst netip.Addr) {
	binary.BigEndian.PutUint32(b, 6<<28|uint32(tclass)<<20)
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6], b[7] = next, hops
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
}

// loopbackHeaderLen is the length of everything before the STAMP payload
// of an enhanced-loopback packet.
func loopbackHeaderLen(nsegs int) int {
	return ipv6HdrLen + srhLen(nsegs) + ipv6HdrLen + udpHdrLen
}

// putLoopback writes the headers of an enhanced-loopback test packet
// (draft-ietf-spring-stamp-srpm §3.1, §4.2) in front of payload, which
// already sits at b[loopbackHeaderLen(len(segs)):]: an outer IPv6 header
// from outer (self, or an address of our locator) to the first segment,
// an SRH with the segment list, then an
// inner IPv6 + UDP header from self:port back to self:port. The last SID
// decapsulates (End.DX6 / End.DT6) and the inner packet routes home, so
// the far end keeps no state. It returns the packet length.
func putLoopback(b []byte, outer, self netip.Addr, port uint16, segs []netip.Addr, tclass uint8, payloadLen int) int {
	inner := ipv6HdrLen + udpHdrLen + payloadLen
	srh := srhLen(len(segs))
	putIPv6(b, tclass, srh+inner, protoRouting, loopHopLimit, outer, segs[0])
	putSRH(b[ipv6HdrLen:], protoIPv6, segs, netip.Addr{})
	in := b[ipv6HdrLen+srh:]
	putIPv6(in, tclass, udpHdrLen+payloadLen, protoUDP, innerHopLimit, self, self)
	u := in[ipv6HdrLen:]
	binary.BigEndian.PutUint16(u, port)
	binary.BigEndian.PutUint16(u[2:], port)
	binary.BigEndian.PutUint16(u[4:], uint16(udpHdrLen+payloadLen))
	u[6], u[7] = 0, 0
	binary.BigEndian.PutUint16(u[6:], udp6Checksum(self, self, u[:udpHdrLen+payloadLen]))
	return ipv6HdrLen + srh + inner
}

// returnHeaderLen is the length of the headers of a reply that follows a
// Return Path segment list of nsegs SIDs.
func returnHeaderLen(nsegs int) int { return ipv6HdrLen + srhLen(nsegs+1) + udpHdrLen }

// putReturnPath writes the IPv6 + SRH + UDP headers of a reply that follows
// a Return Path SRv6 Segment List (RFC 9503 §5) to its sender, in front of
// the payload already at b[returnHeaderLen(len(segs)/16):]. segs holds the
// SIDs in travel order, 16 octets each; the sender is the last segment.
// The UDP checksum uses the final destination (RFC 8200 §8.1). It returns
// the packet length.
func putReturnPath(b []byte, src, dst netip.AddrPort, segs []byte, tclass uint8, payloadLen int) int {
	k := len(segs) / 16
	srh := srhLen(k + 1)
	first := netip.AddrFrom16([16]byte(segs[:16]))
	putIPv6(b, tclass, srh+udpHdrLen+payloadLen, protoRouting, loopHopLimit, src.Addr(), first)
	h := b[ipv6HdrLen:]
	clear(h[:8])
	h[0], h[1], h[2], h[3], h[4] = protoUDP, uint8(2*(k+1)), srhTypeSeg, uint8(k), uint8(k)
	final := dst.Addr().As16()
	copy(h[8:], final[:])
	for i := 0; i < k; i++ { // reversed: the first SID is the last entry
		copy(h[8+16*(k-i):], segs[16*i:16*i+16])
	}
	u := h[srh:]
	binary.BigEndian.PutUint16(u, src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpHdrLen+payloadLen))
	u[6], u[7] = 0, 0
	binary.BigEndian.PutUint16(u[6:], udp6Checksum(src.Addr(), dst.Addr(), u[:udpHdrLen+payloadLen]))
	return ipv6HdrLen + srh + udpHdrLen + payloadLen
}

// udp6Checksum is the UDP checksum over the IPv6 pseudo-header (RFC 8200
// §8.1); a result of 0 is sent as 0xffff.
func udp6Checksum(src, dst netip.Addr, udp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(udp)) + protoUDP
	add(udp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	return c
}
