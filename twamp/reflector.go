package twamp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// MinKeyLen is the shortest HMAC key accepted (128 bits, the HMAC length).
const MinKeyLen = 16

// PeerKey is the HMAC key for the peers in Prefix (authenticated mode and
// the HMAC TLV). The longest matching prefix wins.
type PeerKey struct {
	Prefix netip.Prefix
	Key    []byte
}

// ReflectorConfig configures a Session-Reflector. Zero values take the
// documented defaults.
type ReflectorConfig struct {
	// Listen addresses (IPv4 or IPv6); default the IPv6 wildcard, which
	// also serves IPv4. Each gets one socket and one worker.
	Listen []netip.Addr
	// Port is the UDP port; default 862 (TWAMP-Test / STAMP).
	Port uint16
	// Stateful keeps per-session (peer address, port, SSID) sequence
	// numbers, so the sender can tell forward from backward loss
	// (RFC 8762 §4.3.1); stateless copies the sender's sequence number.
	Stateful bool
	// Mode is the STAMP mode served; authenticated needs Keys.
	Mode Mode
	// Keys are per-peer HMAC keys.
	Keys []PeerKey
	// Allow, if not empty, is the allow-list of peer prefixes.
	Allow []netip.Prefix
	// RatePPS and Burst bound the replies per second (0: unlimited).
	RatePPS float64
	Burst   int
	// ReturnPathSRv6 honours the SRv6 Segment List of a Return Path TLV
	// (RFC 9503 §5): the reply to an IPv6 sender follows that list (up to
	// 10 SIDs), sent through a raw socket because the kernel takes a type-4
	// routing header only as a socket option, not per packet; needs
	// CAP_NET_RAW. Off, the TLV comes back with U set and the reply goes
	// straight back. A Return Address (a third party) is never honoured.
	ReturnPathSRv6 bool
	// IsLocal reports whether an address belongs to this node, for the
	// Destination Node Address TLV (RFC 9503 §4): a TLV naming neither the
	// probed address nor a local one comes back with U set. Nil: only the
	// probed address counts. Called per such TLV; it must be cheap.
	IsLocal func(netip.Addr) bool
	// TWAMPLight serves RFC 5357 TWAMP Light senders: requests from 41
	// octets, the octets after the base packet are padding, not TLVs.
	TWAMPLight bool
	// MaxSessions bounds the stateful session table (default 4096);
	// SessionIdle expires idle sessions (default 5 minutes).
	MaxSessions int
	SessionIdle time.Duration
	// Timestamp is the format of T2 and T3 (NTP default, or PTP).
	Timestamp TimestampFormat
	// TAIOffset is TAI−UTC for the PTP format (default: the kernel's,
	// else 37 s).
	TAIOffset time.Duration
	// Clock gives the time quality for the Error Estimate (default: the
	// kernel's NTP state). Receive timestamps always come from the kernel.
	Clock ClockSource
	// Batch is the number of packets per recvmmsg/sendmmsg (default 32).
	Batch int
	// MaxPacket is the largest request served (default 4096 octets).
	MaxPacket int
}

func (c *ReflectorConfig) normalize() error {
	if len(c.Listen) == 0 {
		c.Listen = []netip.Addr{netip.IPv6Unspecified()}
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 4096
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = 5 * time.Minute
	}
	if c.TAIOffset == 0 {
		c.TAIOffset = SystemTAIOffset()
	}
	if c.Clock == nil {
		c.Clock = &SystemClock{}
	}
	if c.Batch <= 0 {
		c.Batch = 32
	}
	if c.MaxPacket <= 0 {
		c.MaxPacket = 4096
	}
	if c.MaxPacket < AuthBaseLen {
		return fmt.Errorf("reflector: MaxPacket %d below the %d-octet authenticated base packet", c.MaxPacket, AuthBaseLen)
	}
	if c.Mode == Authenticated && len(c.Keys) == 0 {
		return errors.New("reflector: authenticated mode needs at least one peer key")
	}
	if c.Mode == Authenticated && c.TWAMPLight {
		return errors.New("reflector: TWAMP Light compatibility is unauthenticated only")
	}
	for _, k := range c.Keys {
		if !k.Prefix.IsValid() || len(k.Key) < MinKeyLen {
			return fmt.Errorf("reflector: peer key for %v: need a prefix and a key of at least %d octets, have %d", k.Prefix, MinKeyLen, len(k.Key))
		}
	}
	if c.RatePPS < 0 || c.Burst < 0 {
		return fmt.Errorf("reflector: rate %v pps / burst %d must not be negative", c.RatePPS, c.Burst)
	}
	return nil
}

// Reflector is a STAMP Session-Reflector (RFC 8762 §4.3, RFC 8972).
type Reflector struct {
	cfg      ReflectorConfig
	log      *zap.Logger
	cnt      counters
	sessions *sessionTable
	limiter  *tokenBucket
	socks    []rsock
	wake     int // eventfd: readable once Run is stopping
	raw      int // Return Path replies, -1 if unused
}

// rsock is one listening socket. The reflector keeps its sockets out of
// Go's netpoller and waits in poll(2) only when a socket is empty: an
// epoll registration would run a wakeup callback for every datagram
// queued and every reply freed, which costs more than the reflection.
type rsock struct {
	fd    int
	local netip.AddrPort
}

// NewReflector validates cfg and binds the sockets, so a busy port is an
// error here rather than in Run.
func NewReflector(cfg ReflectorConfig, log *zap.Logger) (*Reflector, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	r := &Reflector{cfg: cfg, log: log, raw: -1, wake: -1}
	if cfg.Stateful {
		r.sessions = &sessionTable{m: make(map[sessKey]*session), max: cfg.MaxSessions, idle: cfg.SessionIdle}
	}
	if cfg.RatePPS > 0 {
		burst := float64(max(cfg.Burst, 1))
		r.limiter = &tokenBucket{rate: cfg.RatePPS, burst: burst, tokens: burst}
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("reflector: eventfd: %w", err)
	}
	r.wake = wake
	for _, a := range cfg.Listen {
		fd, local, err := openUDP(netip.AddrPortFrom(a, cfg.Port), true)
		if err != nil {
			r.close()
			return nil, err
		}
		r.socks = append(r.socks, rsock{fd: fd, local: local})
	}
	if cfg.ReturnPathSRv6 {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_RAW)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("reflector: raw socket for Return Path replies (needs CAP_NET_RAW): %w", err)
		}
		r.raw = fd
	}
	return r, nil
}

// listenUDP opens an AF_INET6 UDP socket on Go's netpoller (see openUDP).
func listenUDP(ap netip.AddrPort, recvOpts bool) (*net.UDPConn, error) {
	fd, _, err := openUDP(ap, recvOpts)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "stamp-"+ap.String())
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket for %v: %w", ap, err)
	}
	return pc.(*net.UDPConn), nil
}

// openUDP opens a non-blocking AF_INET6 UDP socket (IPv4 through
// v4-mapped addresses) bound to ap, with the receive options parseOOB
// reads, and returns it with its bound address.
func openUDP(ap netip.AddrPort, recvOpts bool) (int, netip.AddrPort, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("socket for %v: %w", ap, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("IPV6_V6ONLY on %v: %w", ap, err)
	}
	if recvOpts {
		if err := setRecvOpts(fd, true); err != nil {
			return -1, netip.AddrPort{}, fmt.Errorf("receive options on %v: %w", ap, err)
		}
	}
	// Room for bursts: a CPE reflector must not drop because it was
	// descheduled for a millisecond.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<21)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<21)
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if z := ap.Addr().Zone(); z != "" { // a link-local address names its link
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return -1, netip.AddrPort{}, fmt.Errorf("bind %v: zone %q: %w", ap, z, err)
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("bind %v: %w", ap, err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("bound address of %v: %w", ap, err)
	}
	b6, _ := bound.(*unix.SockaddrInet6)
	if b6 == nil {
		return -1, netip.AddrPort{}, fmt.Errorf("bound address of %v: not IPv6", ap)
	}
	ok = true
	return fd, netip.AddrPortFrom(netip.AddrFrom16(b6.Addr).Unmap().WithZone(ap.Addr().Zone()), uint16(b6.Port)), nil
}

// close releases the sockets; Run calls it once every worker stopped.
func (r *Reflector) close() {
	for _, k := range r.socks {
		unix.Close(k.fd)
	}
	r.socks = nil
	if r.wake >= 0 {
		unix.Close(r.wake)
		r.wake = -1
	}
}

// closeRaw closes the Return Path socket once every worker has stopped.
func (r *Reflector) closeRaw() {
	if r.raw >= 0 {
		unix.Close(r.raw)
		r.raw = -1
	}
}

// Addrs returns the bound local addresses.
func (r *Reflector) Addrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, k := range r.socks {
		out = append(out, k.local)
	}
	return out
}

// Stats returns a snapshot of the counters.
func (r *Reflector) Stats() ReflectorStats {
	s := r.cnt.snapshot()
	if r.sessions != nil {
		s.Sessions = r.sessions.len()
	}
	return s
}

// ReflectorSession is one stateful session as the reflector sees it.
type ReflectorSession struct {
	Peer     netip.AddrPort
	SSID     uint16
	Received uint32 // requests reflected or not
	Sent     uint32 // replies sent
	LastSeen time.Time
}

// Sessions lists the stateful sessions (none when stateless).
func (r *Reflector) Sessions() []ReflectorSession {
	if r.sessions == nil {
		return nil
	}
	r.sessions.mu.Lock()
	defer r.sessions.mu.Unlock()
	out := make([]ReflectorSession, 0, len(r.sessions.m))
	for k, s := range r.sessions.m {
		out = append(out, ReflectorSession{Peer: k.peer, SSID: k.ssid, Received: s.rx, Sent: s.tx, LastSeen: s.seen})
	}
	return out
}

// Run serves until ctx is cancelled, then closes the sockets. It returns
// nil after a cancellation and the first socket error otherwise. A
// Reflector runs once.
func (r *Reflector) Run(ctx context.Context) error {
	defer r.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(r.socks))
	for _, k := range r.socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.serve(ctx, k); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	// Wake the workers out of poll(2) when ctx ends; the goroutine is
	// waited for before the eventfd is closed.
	stopped, wakeDone := make(chan struct{}), make(chan struct{})
	defer func() { close(stopped); <-wakeDone }()
	go func(wake int) {
		defer close(wakeDone)
		select {
		case <-ctx.Done():
			var one [8]byte
			one[0], one[7] = 1, 1 // non-zero in either byte order
			unix.Write(wake, one[:])
		case <-stopped:
		}
	}(r.wake)
	if r.sessions != nil {
		go func() {
			t := time.NewTicker(r.cfg.SessionIdle / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					r.sessions.expire(now)
				}
			}
		}()
	}
	defer r.closeRaw()
	r.log.Info("stamp reflector serving", zap.Any("listen", r.Addrs()), zap.Stringer("mode", r.cfg.Mode),
		zap.Bool("stateful", r.cfg.Stateful), zap.Bool("twamp_light", r.cfg.TWAMPLight))
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// serve is one worker: recvmmsg a batch, build the replies, stamp T3 once
// for the batch just before sendmmsg.
func (r *Reflector) serve(ctx context.Context, k0 rsock) error {
	fd, port := uintptr(k0.fd), k0.local.Port()
	pfds := []unix.PollFd{{Fd: int32(k0.fd)}, {Fd: int32(r.wake), Events: unix.POLLIN}}
	cr := newCore(&r.cfg, &r.cnt, r.sessions, r.limiter)
	in := newBatch(r.cfg.Batch, r.cfg.MaxPacket+1)
	out := newBatch(r.cfg.Batch, r.cfg.MaxPacket+1)
	replies := make([]reply, r.cfg.Batch)
	var returnBuf []byte
	if r.raw >= 0 {
		returnBuf = make([]byte, returnHeaderLen(maxReturnSegs)+r.cfg.MaxPacket)
	}
	dsts := make([]netip.AddrPort, r.cfg.Batch)
	var m rxMeta
	dirty := len(in.msgs)
	for ctx.Err() == nil {
		in.prepRecv(dirty)
		dirty = 0
		n, errno := mmsg(unix.SYS_RECVMMSG, fd, in.msgs, unix.MSG_DONTWAIT)
		if errno == 0 {
			dirty = n
		}
		switch errno {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			if !r.wait(pfds, unix.POLLIN) {
				return nil
			}
			continue
		default:
			// Transient (ENOMEM, a queued ICMP error...): a reflector on a
			// CPE keeps serving; count it and back off a little.
			r.cnt.inc(cntRecvError)
			if ce := r.log.Check(zap.DebugLevel, "stamp recvmmsg failed"); ce != nil {
				ce.Write(zap.Stringer("listen", k0.local), zap.Error(errno))
			}
			time.Sleep(time.Millisecond)
			continue
		}
		k := 0
		for i := 0; i < n; i++ {
			r.cnt.inc(cntReceived)
			h := &in.msgs[i]
			if h.hdr.Flags&unix.MSG_TRUNC != 0 || int(h.n) > r.cfg.MaxPacket {
				r.cnt.inc(int(dropTooLong))
				continue
			}
			m.src = sockaddrAddr(&in.names[i])
			parseOOB(in.oobs[i][:h.hdr.Controllen], &m, port)
			if m.rx.IsZero() {
				m.rx = r.cfg.Clock.Now()
			}
			rp, reason := cr.reflect(in.bufs[i][:h.n:h.n], &m, out.bufs[k])
			if reason != dropNone {
				r.cnt.inc(int(reason))
				continue
			}
			if rp.returnSegs != nil {
				r.sendReturnPath(cr, &rp, out.bufs[k], m.dst, m.src, returnBuf)
				continue
			}
			oobN := putReplyOOB(out.oobs[k], m.dst.Addr(), m.ifindex, rp.tclass)
			out.prepSend(k, rp.n, m.src, oobN)
			replies[k], dsts[k] = rp, m.src
			k++
		}
		if k == 0 {
			continue
		}
		now := r.cfg.Clock.Now()
		st := cr.st
		t3, ee := st.encode(now), st.estimate()
		for i := 0; i < k; i++ {
			cr.finish(&replies[i], out.bufs[i], t3, ee)
		}
		if !r.send(fd, pfds, out, k, dsts) {
			return nil
		}
	}
	return nil
}

// wait sleeps in poll(2) until the socket has the events or Run stops;
// false means stop.
func (r *Reflector) wait(pfds []unix.PollFd, events int16) bool {
	pfds[0].Events = events
	for {
		pfds[0].Revents, pfds[1].Revents = 0, 0
		_, err := unix.Poll(pfds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pfds[1].Revents != 0 {
			return false
		}
		return true
	}
}

// sendReturnPath sends one reply along its Return Path segment list
// through the raw socket, T3 stamped just before.
func (r *Reflector) sendReturnPath(cr *core, rp *reply, payload []byte, local, peer netip.AddrPort, buf []byte) {
	off := returnHeaderLen(len(rp.returnSegs) / 16)
	copy(buf[off:], payload[:rp.n])
	tclass := uint8(0)
	if rp.tclass >= 0 {
		tclass = uint8(rp.tclass)
	}
	first := [16]byte(rp.returnSegs[:16])
	cr.finish(rp, buf[off:off+rp.n], cr.st.encode(r.cfg.Clock.Now()), cr.st.estimate())
	n := putReturnPath(buf, local, peer, rp.returnSegs, tclass, rp.n)
	if err := unix.Sendto(r.raw, buf[:n], 0, &unix.SockaddrInet6{Addr: first}); err != nil {
		r.cnt.inc(int(dropSendError))
		if ce := r.log.Check(zap.DebugLevel, "stamp return-path reply not sent"); ce != nil {
			ce.Write(zap.Stringer("peer", peer), zap.Error(err))
		}
		return
	}
	r.cnt.inc(cntReflected)
}

// send pushes k prepared messages with sendmmsg, skipping (and counting)
// a message the kernel refuses so one bad peer cannot stall the batch.
// false means Run is stopping.
func (r *Reflector) send(fd uintptr, pfds []unix.PollFd, out *batch, k int, dsts []netip.AddrPort) bool {
	for off := 0; off < k; {
		n, errno := mmsg(unix.SYS_SENDMMSG, fd, out.msgs[off:k], unix.MSG_DONTWAIT)
		switch {
		case errno == unix.EAGAIN || errno == unix.EINTR:
			if !r.wait(pfds, unix.POLLOUT) {
				return false
			}
		case errno != 0 || n <= 0:
			r.cnt.inc(int(dropSendError))
			if ce := r.log.Check(zap.DebugLevel, "stamp reply not sent"); ce != nil {
				ce.Write(zap.Stringer("peer", dsts[off]), zap.Error(errno))
			}
			off++
		default:
			r.cnt[cntReflected].Add(uint64(n))
			off += n
		}
	}
	return true
}
