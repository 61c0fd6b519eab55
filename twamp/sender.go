package twamp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// SenderConfig configures one Session-Sender test session. Zero values take
// the documented defaults.
//
// SRv6: with Segments the probes travel the segment list. The sender puts
// the SRH on its own socket (IPV6_RTHDR with a type-4 routing header)
// rather than using an encapsulation route selected with SO_MARK: the
// session then needs no route, rule or mark in the dataplane, works for
// any number of concurrent sessions with different lists towards the same
// reflector, leaves nothing behind if the process dies, and the path
// measured is exactly the list configured, not whatever a route says at
// the time. The reflector's ingress interface needs seg6_enabled (the
// kernel drops SRH packets otherwise, even with Segments Left 0).
type SenderConfig struct {
	// Name identifies the session in events and logs.
	Name string
	// Dst is the reflector (port 0: 862). In loopback mode it is unused.
	Dst netip.AddrPort
	// Src and SrcPort are the local address and port (default: chosen by
	// the kernel). Loopback mode needs Src or finds it by route lookup.
	Src     netip.Addr
	SrcPort uint16
	// Interval between packets (default 1 s); Count packets then stop
	// (0: until the context ends).
	Interval time.Duration
	Count    int
	// Timeout after which an unanswered packet is lost (default 2 s).
	Timeout time.Duration
	// Padding octets: an Extra Padding TLV (STAMP), raw zeros (TWAMPLight).
	Padding int
	// DSCP of the test packets.
	DSCP uint8
	// SSID identifies the session at the reflector (RFC 8972 §3).
	SSID uint16
	// Mode and Key: authenticated mode signs with Key; Key also signs an
	// HMAC TLV when TLVs.HMAC is set.
	Mode Mode
	Key  []byte
	// TLVs to put in each packet (not in TWAMPLight mode).
	TLVs TLVSet
	// TWAMPLight sends RFC 5357 TWAMP Light packets (no TLVs).
	TWAMPLight bool
	// Segments is the SRv6 segment list the probes follow.
	Segments []netip.Addr
	// Loopback selects enhanced loopback mode (draft-ietf-spring-stamp-srpm
	// §3.1, §4.2): the probe goes along Segments, the last SID decapsulates
	// and an inner IPv6 header brings it back to Src. Needs CAP_NET_RAW.
	Loopback bool
	// OuterSrc, in loopback mode, is the source of the outer IPv6 header
	// (the inner one stays Src, where the probe comes back to). A far node
	// that admits SRv6 packets only from peer locators (SID anti-spoofing)
	// needs it to lie in our locator, as our encap traffic's does.
	// Unset: Src.
	OuterSrc netip.Addr
	// StatefulReflector says the reflector keeps its own sequence numbers,
	// so loss is split by direction.
	StatefulReflector bool
	// ClocksSynced enables one-way delays (T2−T1, T4−T3).
	ClocksSynced bool
	// EndTSF says the last SID of a loopback session is an End.TSF SID:
	// the far node writes T2 into the probe (see tsf.go). With
	// ClocksSynced, stamped replies give one-way delays (T2−T1, T4−T2).
	EndTSF bool
	// Timestamp format of T1 (NTP default), TAIOffset for PTP (default:
	// the kernel's TAI offset, else 37 s).
	Timestamp TimestampFormat
	TAIOffset time.Duration
	// Clock (default: SystemClock).
	Clock ClockSource
	// Window is the metrics window (default 10 s). A packet counts in the
	// window it was sent in, so a window is reported once every packet
	// sent in it was answered or timed out (its end + Timeout).
	Window time.Duration
	// Notify configures the threshold notifications.
	Notify NotifyConfig
	// Callbacks run on the session's goroutines and must not block.
	OnSample func(Sample)
	OnWindow func(Metrics)
	OnEvent  func(Event)
}

func (c *SenderConfig) normalize() error {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.TAIOffset == 0 {
		c.TAIOffset = SystemTAIOffset()
	}
	if c.Clock == nil {
		c.Clock = &SystemClock{}
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.Dst.Port() == 0 {
		c.Dst = netip.AddrPortFrom(c.Dst.Addr(), DefaultPort)
	}
	if c.Count < 0 || c.Padding < 0 || c.Padding > 9000 || c.DSCP > 63 {
		return fmt.Errorf("sender %q: count %d, padding %d, DSCP %d: out of range", c.Name, c.Count, c.Padding, c.DSCP)
	}
	if (c.Mode == Authenticated || c.TLVs.HMAC) && len(c.Key) < MinKeyLen {
		return fmt.Errorf("sender %q: %s mode / HMAC TLV needs a key of at least %d octets, have %d", c.Name, c.Mode, MinKeyLen, len(c.Key))
	}
	if c.Loopback || len(c.Segments) > 0 {
		if err := checkSegments(c.Segments); err != nil {
			return fmt.Errorf("sender %q: %w", c.Name, err)
		}
	}
	if c.OuterSrc.IsValid() && (!c.Loopback || !c.OuterSrc.Is6() || c.OuterSrc.Is4In6()) {
		return fmt.Errorf("sender %q: outer source %s needs loopback mode and an IPv6 address", c.Name, c.OuterSrc)
	}
	if c.EndTSF && !c.Loopback {
		return fmt.Errorf("sender %q: End.TSF needs loopback mode", c.Name)
	}
	if c.Loopback && c.Mode == Authenticated {
		return fmt.Errorf("sender %q: loopback mode is unauthenticated (no reflector holds a key)", c.Name)
	}
	if !c.Loopback && !c.Dst.Addr().IsValid() {
		return fmt.Errorf("sender %q: no reflector address", c.Name)
	}
	return nil
}

// slot is one packet in flight.
type slot struct {
	seq   uint32
	t1    time.Time // read just before the send call, written in the packet
	t1k   time.Time // the kernel's transmit timestamp, when it came
	ts    uint64    // T1 as written, to recognise the echo
	key   uint32    // SO_TIMESTAMPING OPT_ID of the send
	keyed bool
	used  bool
}

// Sender runs one STAMP test session.
type Sender struct {
	cfg    SenderConfig
	log    *zap.Logger
	conn   *net.UDPConn
	raw    int // loopback raw socket, -1 if none
	local  netip.AddrPort
	st     stamper
	signer *Signer

	mu       sync.Mutex
	slots    []slot
	seq      uint32
	total    accumulator
	epoch    time.Time
	windows  map[int64]*accumulator // by window index since epoch
	notifier *Notifier
	pkt      []byte
	// Kernel transmit timestamps (SO_TIMESTAMPING, OPT_ID): the key of
	// the next send and the sequence number each recent key was sent as.
	txStamps bool
	txKey    uint32
	keySeq   []uint32
}

// NewSender validates cfg and opens the session's sockets.
func NewSender(cfg SenderConfig, log *zap.Logger) (*Sender, error) {
	s, err := newSender(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// newSender builds the session state without sockets.
func newSender(cfg SenderConfig, log *zap.Logger) (*Sender, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, log: log, raw: -1,
		st:       stamper{clock: cfg.Clock, format: cfg.Timestamp, taiOffset: cfg.TAIOffset},
		notifier: NewNotifier(cfg.Name, cfg.Notify)}
	if len(cfg.Key) > 0 {
		s.signer = NewSigner(cfg.Key)
	}
	n := 1
	for n < int(cfg.Timeout/cfg.Interval)+2 && n < 1<<16 {
		n <<= 1
	}
	s.slots = make([]slot, n)
	s.keySeq = make([]uint32, n)
	now := cfg.Clock.Now()
	s.total.reset(now)
	s.epoch, s.windows = now, map[int64]*accumulator{}
	return s, nil
}

func (s *Sender) open() error {
	src := s.cfg.Src
	if s.cfg.Loopback && !src.IsValid() {
		a, err := routeSource(s.cfg.Segments[0])
		if err != nil {
			return fmt.Errorf("sender %q: source for loopback: %w", s.cfg.Name, err)
		}
		src = a
	}
	if !src.IsValid() {
		src = netip.IPv6Unspecified()
	}
	conn, err := listenUDP(netip.AddrPortFrom(src, s.cfg.SrcPort), true)
	if err != nil {
		return fmt.Errorf("sender %q: %w", s.cfg.Name, err)
	}
	s.conn = conn
	s.local = netip.AddrPortFrom(src.Unmap(), conn.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	fail := func(err error) error {
		conn.Close()
		if s.raw >= 0 {
			unix.Close(s.raw)
		}
		return fmt.Errorf("sender %q: %w", s.cfg.Name, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return fail(err)
	}
	tos := int(s.cfg.DSCP) << 2
	var serr error
	err = rc.Control(func(fd uintptr) {
		f := int(fd)
		// RFC 8762 §4.2: the sender's TTL / hop limit is 255, so the
		// reflector's Ses-Sender TTL field shows the hops taken.
		for _, o := range [][3]int{
			{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255},
			{unix.IPPROTO_IP, unix.IP_TTL, 255},
			{unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tos},
			{unix.IPPROTO_IP, unix.IP_TOS, tos},
		} {
			if e := unix.SetsockoptInt(f, o[0], o[1], o[2]); e != nil && serr == nil {
				serr = fmt.Errorf("socket option %d/%d: %w", o[0], o[1], e)
			}
		}
		// T1 for the delays is the kernel's software transmit timestamp
		// when the kernel gives one: it leaves out the time between
		// reading the clock and the packet reaching the stack.
		if !s.cfg.Loopback && enableTxStamps(f) {
			s.txStamps = true
		}
		if len(s.cfg.Segments) > 0 && !s.cfg.Loopback {
			srh, e := SocketSRH(s.cfg.Segments)
			if e == nil {
				e = unix.SetsockoptString(f, unix.IPPROTO_IPV6, unix.IPV6_RTHDR, string(srh))
			}
			if e != nil && serr == nil {
				serr = fmt.Errorf("IPV6_RTHDR with %d segments: %w", len(s.cfg.Segments), e)
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fail(err)
	}
	if s.cfg.Loopback {
		if !s.local.Addr().Is6() || s.local.Addr().IsUnspecified() {
			return fail(fmt.Errorf("loopback needs an IPv6 source, have %v", s.local.Addr()))
		}
		// IPPROTO_RAW on AF_INET6 means the header is ours (IPV6_HDRINCL).
		// Non-blocking: a full send buffer loses the probe, it never stalls
		// the session (sendOne holds the session lock).
		fd, e := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_RAW)
		if e != nil {
			return fail(fmt.Errorf("raw socket for loopback mode (needs CAP_NET_RAW): %w", e))
		}
		s.raw = fd
		s.txStamps = enableTxStamps(fd)
	}
	return nil
}

// enableTxStamps asks for software transmit timestamps on the error queue,
// keyed by a per-socket counter (OPT_ID).
func enableTxStamps(fd int) bool {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
		unix.SOF_TIMESTAMPING_TX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE|
			unix.SOF_TIMESTAMPING_OPT_ID|unix.SOF_TIMESTAMPING_OPT_TSONLY) == nil
}

// routeSource asks the kernel which source address it would use towards dst.
func routeSource(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// LocalAddr is the session's local address and port.
func (s *Sender) LocalAddr() netip.AddrPort { return s.local }

// Metrics returns the whole session's metrics so far.
func (s *Sender) Metrics() Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total.metrics(s.cfg.Clock.Now(), s.cfg.StatefulReflector)
}

// State is the session's liveness.
func (s *Sender) State() SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notifier.State()
}

// Run sends the session until Count packets are answered or timed out, or
// ctx ends, then closes the sockets. A Sender runs once.
func (s *Sender) Run(ctx context.Context) error {
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rxDone := make(chan error, 1)
	go func() { rxDone <- s.receive(ctx) }()
	go func() {
		<-ctx.Done()
		s.conn.Close()
	}()
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	win := time.NewTicker(s.cfg.Window)
	defer win.Stop()
	var drain <-chan time.Time
	s.sendOne()
	sent := 1
	for {
		select {
		case <-ctx.Done():
			<-rxDone
			s.flushWindows(true)
			return nil
		case err := <-rxDone:
			if ctx.Err() != nil { // stopping: the receiver saw the close first
				s.flushWindows(true)
				return nil
			}
			if err == nil {
				err = errors.New("receive socket closed")
			}
			return fmt.Errorf("sender %q: %w", s.cfg.Name, err)
		case <-tick.C:
			s.expire()
			if s.cfg.Count > 0 && sent >= s.cfg.Count {
				if drain == nil {
					drain = time.After(s.cfg.Timeout + s.cfg.Interval)
				}
				if s.inFlight() == 0 {
					cancel()
				}
				continue
			}
			s.sendOne()
			sent++
		case <-win.C:
			s.flushWindows(false)
		case <-drain:
			s.expireAll()
			cancel()
		}
	}
}

func (s *Sender) close() {
	s.conn.Close()
	if s.raw >= 0 {
		unix.Close(s.raw)
		s.raw = -1
	}
}

func (s *Sender) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.slots {
		if s.slots[i].used {
			n++
		}
	}
	return n
}

// payloadLen is the STAMP payload length of every test packet.
func (s *Sender) payloadLen() int {
	n := s.cfg.Mode.BaseLen()
	if s.cfg.TWAMPLight {
		return n + s.cfg.Padding
	}
	set := s.cfg.TLVs
	if s.cfg.Padding > 0 {
		set.ExtraPadding = s.cfg.Padding
	}
	return n + set.Len()
}

// sendOne sends the next packet; T1 is read just before the send call.
func (s *Sender) sendOne() {
	s.mu.Lock()
	seq := s.seq
	s.seq++
	plen := s.payloadLen()
	off := 0
	if s.cfg.Loopback {
		off = loopbackHeaderLen(len(s.cfg.Segments))
	}
	if len(s.pkt) != off+plen {
		s.pkt = make([]byte, off+plen)
	}
	p := s.pkt[off:]
	base := s.cfg.Mode.BaseLen()
	h := SenderHeader{Seq: seq, SSID: s.cfg.SSID}
	h.Put(p, s.cfg.Mode)
	if !s.cfg.TWAMPLight {
		set := s.cfg.TLVs
		if s.cfg.Padding > 0 {
			set.ExtraPadding = s.cfg.Padding
		}
		set.Put(p[base:], uint32(s.total.m.Sent+1))
		if set.HMAC { // covers the sequence number and TLVs, not T1
			SignTLVs(s.signer, p, s.cfg.Mode)
		}
	}
	t1 := s.cfg.Clock.Now()
	h.Timestamp, h.ErrorEstimate = s.st.encode(t1), s.st.estimate()
	putT1(p, s.cfg.Mode, h.Timestamp, h.ErrorEstimate)
	if s.cfg.Mode == Authenticated {
		s.signer.Sign(p)
	}
	var err error
	if s.cfg.Loopback {
		outer := s.cfg.OuterSrc
		if !outer.IsValid() {
			outer = s.local.Addr()
		}
		n := putLoopback(s.pkt, outer, s.local.Addr(), s.local.Port(), s.cfg.Segments, s.cfg.DSCP<<2, plen)
		err = unix.Sendto(s.raw, s.pkt[:n], 0, &unix.SockaddrInet6{Addr: s.cfg.Segments[0].As16()})
	} else {
		_, err = s.conn.WriteToUDPAddrPort(p, s.cfg.Dst)
	}
	sl := &s.slots[seq%uint32(len(s.slots))]
	var evicted *Sample
	if sl.used { // the ring wrapped over an unanswered packet
		evicted = &Sample{Seq: sl.seq, Sent: sl.t1, Lost: true}
	}
	*sl = slot{seq: seq, t1: t1, ts: h.Timestamp, used: true}
	if err == nil && s.txStamps {
		sl.key, sl.keyed = s.txKey, true
		s.keySeq[s.txKey%uint32(len(s.keySeq))] = seq
		s.txKey++
	}
	s.total.sent()
	s.windowAt(t1).sent()
	if err != nil {
		s.total.m.SendErrors++
		s.windowAt(t1).m.SendErrors++
		sl.used = false
		evicted2 := Sample{Seq: seq, Sent: t1, Lost: true}
		s.mu.Unlock()
		if ce := s.log.Check(zap.DebugLevel, "stamp probe not sent"); ce != nil {
			ce.Write(zap.String("session", s.cfg.Name), zap.Error(err))
		}
		s.record(evicted, &evicted2)
		return
	}
	s.mu.Unlock()
	s.record(evicted)
}

// expire declares packets older than the timeout lost.
func (s *Sender) expire() { s.expireBefore(s.cfg.Clock.Now().Add(-s.cfg.Timeout)) }

func (s *Sender) expireAll() { s.expireBefore(time.Now().Add(time.Hour)) }

func (s *Sender) expireBefore(limit time.Time) {
	var lost []*Sample
	s.mu.Lock()
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.used && sl.t1.Before(limit) {
			sl.used = false
			lost = append(lost, &Sample{Seq: sl.seq, Sent: sl.t1, Lost: true})
		}
	}
	s.mu.Unlock()
	s.record(lost...)
}

// record accounts samples and runs the notifications, then the callbacks.
func (s *Sender) record(samples ...*Sample) {
	var evs []Event
	s.mu.Lock()
	for _, sm := range samples {
		if sm == nil {
			continue
		}
		s.total.add(sm, s.cfg.StatefulReflector)
		s.windowAt(sm.Sent).add(sm, s.cfg.StatefulReflector)
		evs = s.notifier.Observe(s.cfg.Clock.Now(), *sm, evs)
	}
	s.mu.Unlock()
	for _, sm := range samples {
		if sm != nil && s.cfg.OnSample != nil {
			s.cfg.OnSample(*sm)
		}
	}
	s.emit(evs)
}

func (s *Sender) emit(evs []Event) {
	for _, e := range evs {
		s.log.Info("stamp session event", zap.String("session", e.Session), zap.Stringer("event", e.Kind),
			zap.Duration("delay", e.Delay), zap.Int("lost", e.Lost))
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(e)
		}
	}
}

// windowAt returns the accumulator of the window holding t; s.mu is held.
func (s *Sender) windowAt(t time.Time) *accumulator {
	i := int64(t.Sub(s.epoch) / s.cfg.Window)
	a := s.windows[i]
	if a == nil {
		a = &accumulator{}
		a.reset(s.epoch.Add(time.Duration(i) * s.cfg.Window))
		s.windows[i] = a
	}
	return a
}

// flushWindows reports the windows whose packets have all settled (every
// window when final), oldest first.
func (s *Sender) flushWindows(final bool) {
	now := s.cfg.Clock.Now()
	var out []Metrics
	var evs []Event
	s.mu.Lock()
	idx := make([]int64, 0, len(s.windows))
	for i := range s.windows {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		a := s.windows[i]
		end := a.m.Start.Add(s.cfg.Window)
		if !final && now.Before(end.Add(s.cfg.Timeout)) {
			continue
		}
		delete(s.windows, i)
		if now.Before(end) {
			end = now
		}
		m := a.metrics(end, s.cfg.StatefulReflector)
		if m.Sent == 0 && m.Received == 0 && m.Lost == 0 {
			continue
		}
		out = append(out, m)
		if ev, announce := s.notifier.Window(now, m); announce {
			evs = append(evs, ev)
		}
	}
	s.mu.Unlock()
	for _, m := range out {
		if s.cfg.OnWindow != nil {
			s.cfg.OnWindow(m)
		}
	}
	s.emit(evs)
}

// receive reads replies with their kernel receive timestamp (T4).
func (s *Sender) receive(ctx context.Context) error {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 9216)
	oob := make([]byte, senderOOBLen)
	errOOB := make([]byte, senderOOBLen)
	var name unix.RawSockaddrInet6
	var m rxMeta
	for ctx.Err() == nil {
		var n, oobn int
		var errno syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			iov := unix.Iovec{Base: &buf[0]}
			iov.SetLen(len(buf))
			h := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&name)), Namelen: unix.SizeofSockaddrInet6, Iov: &iov, Control: &oob[0]}
			h.SetIovlen(1)
			h.SetControllen(len(oob))
			r, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&h)), unix.MSG_DONTWAIT)
			n, oobn, errno = int(r), int(h.Controllen), e
			return e != unix.EAGAIN && e != unix.EINTR
		})
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if errno != 0 {
			continue // ICMP errors surface here (ECONNREFUSED...): the probe is lost
		}
		parseOOB(oob[:oobn], &m, s.local.Port())
		if m.rx.IsZero() {
			m.rx = s.cfg.Clock.Now()
		}
		if s.txStamps {
			// The reply's own transmit timestamp is queued long before it.
			if s.cfg.Loopback {
				s.drainTxStamps(uintptr(s.raw), errOOB) // non-blocking raw socket
			} else {
				rc.Read(func(fd uintptr) bool { s.drainTxStamps(fd, errOOB); return true })
			}
		}
		s.handle(buf[:n:n], m.rx, sockaddrAddr(&name))
	}
	return nil
}

// handle matches a reply to its slot and turns it into a sample.
func (s *Sender) handle(b []byte, t4 time.Time, from netip.AddrPort) {
	mode := s.cfg.Mode
	var sm Sample
	var seq uint32
	var echoTS uint64
	var t2, t3 time.Time
	if s.cfg.Loopback {
		sh, err := DecodeSender(b, mode)
		if err != nil || sh.SSID != s.cfg.SSID {
			s.discard()
			return
		}
		seq, echoTS = sh.Seq, sh.Timestamp
	} else {
		minLen := mode.BaseLen()
		if s.cfg.TWAMPLight {
			minLen = TWAMPLightMinLen
		}
		if len(b) < minLen || from.Addr().Unmap() != s.cfg.Dst.Addr().Unmap() {
			s.discard()
			return
		}
		var full [BaseLen]byte
		hb := b
		if len(b) < mode.BaseLen() {
			copy(full[:], b)
			hb = full[:]
		}
		rh, _ := DecodeReflector(hb, mode)
		if mode == Authenticated && !s.signer.Verify(b) {
			s.discard()
			return
		}
		if !s.cfg.TWAMPLight && rh.SSID != s.cfg.SSID {
			s.discard()
			return
		}
		seq, echoTS = rh.SenderSeq, rh.SenderTimestamp
		f := rh.ErrorEstimate.Format()
		t2 = DecodeTime(rh.ReceiveTimestamp, f, s.cfg.TAIOffset)
		t3 = DecodeTime(rh.Timestamp, f, s.cfg.TAIOffset)
		sm.ReflectorSeq, sm.SenderTTL = rh.Seq, rh.SenderTTL
	}
	s.mu.Lock()
	sl := &s.slots[seq%uint32(len(s.slots))]
	if !sl.used || sl.seq != seq || sl.ts != echoTS {
		// Late (already counted lost), duplicate, or not ours.
		s.total.m.Duplicates++
		s.windowAt(t4).m.Duplicates++
		s.mu.Unlock()
		return
	}
	sl.used = false
	sent, t1 := sl.t1, sl.t1
	if !sl.t1k.IsZero() {
		t1, sm.KernelT1 = sl.t1k, true
	}
	s.mu.Unlock()
	sm.Seq, sm.Sent = seq, sent
	total := t4.Sub(t1)
	sm.RTT = total
	if !s.cfg.Loopback {
		residence := t3.Sub(t2)
		if residence < 0 || residence > total {
			s.discard()
			return
		}
		sm.RTT = total - residence
		if s.cfg.ClocksSynced {
			fwd, bwd := t2.Sub(t1), t4.Sub(t3)
			if fwd >= 0 && bwd >= 0 {
				sm.Forward, sm.Backward, sm.OneWay = fwd, bwd, true
			}
		}
	}
	if s.cfg.EndTSF && s.cfg.ClocksSynced {
		tsfOneWay(b, mode, s.cfg.TAIOffset, t1, t4, &sm)
	}
	if sm.RTT < 0 || sm.RTT > s.cfg.Timeout {
		s.discard()
		return
	}
	s.record(&sm)
}

// senderOOBLen has room for the receive cmsgs plus SCM_TIMESTAMPING and
// an extended error with its offender address.
const senderOOBLen = 256

// drainTxStamps reads the kernel transmit timestamps queued on the error
// queue and attaches each to its packet. A timestamp that does not fit
// its packet (a key that drifted after a failed send) is ignored, and the
// packet keeps the userspace T1.
func (s *Sender) drainTxStamps(fd uintptr, oob []byte) {
	for i := 0; i < 256; i++ {
		h := unix.Msghdr{Control: &oob[0]}
		h.SetControllen(len(oob))
		_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&h)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if e != 0 {
			return
		}
		ts, key, ok := parseTxStamp(oob[:h.Controllen])
		if !ok {
			continue
		}
		s.mu.Lock()
		seq := s.keySeq[key%uint32(len(s.keySeq))]
		sl := &s.slots[seq%uint32(len(s.slots))]
		if sl.used && sl.keyed && sl.key == key && sl.seq == seq && !ts.Before(sl.t1) && ts.Sub(sl.t1) < s.cfg.Timeout {
			sl.t1k = ts
		}
		s.mu.Unlock()
	}
}

// parseTxStamp reads a software transmit timestamp and its OPT_ID key.
func parseTxStamp(oob []byte) (ts time.Time, key uint32, ok bool) {
	var haveTS, haveKey bool
	for len(oob) >= cmsgHdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < cmsgHdrLen || l > len(oob) {
			break
		}
		data := oob[cmsgHdrLen:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPING && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			t := (*unix.Timespec)(unsafe.Pointer(&data[0])) // [0] is the software stamp
			ts, haveTS = time.Unix(int64(t.Sec), int64(t.Nsec)), t.Sec != 0 || t.Nsec != 0
		case (h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_RECVERR || h.Level == unix.IPPROTO_IP && h.Type == unix.IP_RECVERR) &&
			len(data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})):
			ee := (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
			if ee.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING {
				key, haveKey = ee.Data, true
			}
		}
		oob = oob[min(unix.CmsgSpace(l-cmsgHdrLen), len(oob)):]
	}
	return ts, key, haveTS && haveKey
}

func (s *Sender) discard() {
	s.mu.Lock()
	s.total.m.Discarded++
	s.windowAt(s.cfg.Clock.Now()).m.Discarded++
	s.mu.Unlock()
}
