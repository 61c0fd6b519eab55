package twamp

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr; Go pads it like C on every architecture.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batch is a set of preallocated message headers, buffers, addresses and
// control buffers for recvmmsg/sendmmsg: nothing is allocated per packet.
type batch struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	names []unix.RawSockaddrInet6
	oobs  [][]byte
}

const oobLen = 128

func newBatch(n, bufLen int) *batch {
	b := &batch{msgs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), bufs: make([][]byte, n),
		names: make([]unix.RawSockaddrInet6, n), oobs: make([][]byte, n)}
	for i := range b.msgs {
		b.bufs[i] = make([]byte, bufLen)
		b.oobs[i] = make([]byte, oobLen)
	}
	return b
}

// prepRecv resets the first n headers (the ones the last receive used;
// the kernel touches no others) for a receive into the full buffers.
func (b *batch) prepRecv(n int) {
	for i := range b.msgs[:n] {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		h.Control = &b.oobs[i][0]
		h.SetControllen(oobLen)
		h.Flags = 0
	}
}

// prepSend sets message i to send n octets of bufs[i] to dst with oob.
func (b *batch) prepSend(i, n int, dst netip.AddrPort, oobN int) {
	b.iovs[i].Base = &b.bufs[i][0]
	b.iovs[i].SetLen(n)
	h := &b.msgs[i].hdr
	h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	h.Namelen = putSockaddr(&b.names[i], dst)
	h.Iov = &b.iovs[i]
	h.SetIovlen(1)
	if oobN > 0 {
		h.Control = &b.oobs[i][0]
		h.SetControllen(oobN)
	} else {
		h.Control = nil
		h.SetControllen(0)
	}
	h.Flags = 0
}

// mmsg calls recvmmsg or sendmmsg. Every socket it is used on is
// non-blocking, so the call never sleeps and can skip the runtime's
// syscall bookkeeping (RawSyscall6): at small batches that bookkeeping is
// a measurable share of the reflector's user time.
func mmsg(trap uintptr, fd uintptr, msgs []mmsghdr, flags int) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	return int(n), e
}

// putSockaddr writes dst into a sockaddr_in6 (IPv4 as v4-mapped, the socket
// is AF_INET6) and returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, dst netip.AddrPort) uint32 {
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.Addr().As16()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	binary.BigEndian.PutUint16(p[:], dst.Port())
	return unix.SizeofSockaddrInet6
}

// sockaddrAddr decodes a sockaddr_in6 / sockaddr_in filled by the kernel.
func sockaddrAddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port := binary.BigEndian.Uint16(p[:])
	if sa.Family == unix.AF_INET {
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(v4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
}

var cmsgHdrLen = unix.CmsgLen(0)

// parseOOB reads the control messages the reflector and the sender ask for
// without allocating: receive timestamp, destination address, TTL, tclass.
func parseOOB(oob []byte, m *rxMeta, port uint16) {
	m.ttl, m.tclass, m.ifindex = -1, -1, 0
	m.dst = netip.AddrPortFrom(netip.Addr{}, port)
	for len(oob) >= cmsgHdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < cmsgHdrLen || l > len(oob) {
			return
		}
		data := oob[cmsgHdrLen:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			m.rx = time.Unix(int64(ts.Sec), int64(ts.Nsec))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			m.dst = netip.AddrPortFrom(netip.AddrFrom16(pi.Addr).Unmap(), port)
			m.ifindex = pi.Ifindex
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			m.dst = netip.AddrPortFrom(netip.AddrFrom4(pi.Addr), port)
			m.ifindex = uint32(pi.Ifindex)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT && len(data) >= 4:
			m.ttl = int16(*(*int32)(unsafe.Pointer(&data[0])))
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL && len(data) >= 4:
			m.ttl = int16(*(*int32)(unsafe.Pointer(&data[0])))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_TCLASS && len(data) >= 4:
			m.tclass = int16(*(*int32)(unsafe.Pointer(&data[0])) & 0xff)
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TOS && len(data) >= 1:
			m.tclass = int16(data[0])
		}
		oob = oob[min(unix.CmsgSpace(l-cmsgHdrLen), len(oob)):]
	}
}

// putReplyOOB writes the control messages of a reply: the source address
// (the address that was probed) and, when set, the traffic class.
func putReplyOOB(oob []byte, src netip.Addr, ifindex uint32, tclass int16) int {
	n := 0
	if src.IsValid() {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&oob[cmsgHdrLen]))
		pi.Addr = src.As16()
		pi.Ifindex = 0
		if src.Is6() && (src.IsLinkLocalUnicast() || src.IsLinkLocalMulticast()) {
			pi.Ifindex = ifindex
		}
		n = unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	}
	if tclass >= 0 {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[n]))
		d := (*int32)(unsafe.Pointer(&oob[n+cmsgHdrLen]))
		if src.Is4() {
			h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TOS
		} else {
			h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_TCLASS
		}
		h.SetLen(unix.CmsgLen(4))
		*d = int32(tclass)
		n += unix.CmsgSpace(4)
	}
	return n
}

// setRecvOpts asks the kernel for everything parseOOB reads.
func setRecvOpts(fd int, v6 bool) error {
	opts := [][2]int{
		{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS},
		{unix.IPPROTO_IP, unix.IP_PKTINFO},
		{unix.IPPROTO_IP, unix.IP_RECVTTL},
		{unix.IPPROTO_IP, unix.IP_RECVTOS},
	}
	if v6 {
		opts = append(opts, [2]int{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO},
			[2]int{unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT},
			[2]int{unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], 1); err != nil {
			return err
		}
	}
	return nil
}
