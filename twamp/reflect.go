package twamp

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// dropReason says why a request got no reply.
type dropReason uint8

const (
	dropNone dropReason = iota
	dropBadLength
	dropTooLong
	dropUnknownPeer
	dropNoKey
	dropBadHMAC
	dropRateLimit
	dropTableFull
	dropNoReplyRequested
	dropLoop
	dropBadDestination
	dropSendError
	numDrops
)

// counter indexes beyond the drop reasons.
const (
	cntReceived = iota + int(numDrops)
	cntReflected
	cntMalformedTLV
	cntUnknownTLV
	cntTLVIntegrity
	cntRecvError
	numCounters
)

type counters [numCounters]atomic.Uint64

func (c *counters) inc(i int) { c[i].Add(1) }

// ReflectorStats is a snapshot of the reflector's counters: every request
// is either reflected or counted under exactly one drop reason.
type ReflectorStats struct {
	Received  uint64
	Reflected uint64
	// Drops by reason.
	BadLength        uint64 // shorter than the base packet of the mode
	TooLong          uint64 // larger than MaxPacket (truncated by the kernel)
	UnknownPeer      uint64 // source outside the allow-list
	NoKey            uint64 // authenticated mode, no key for the peer
	BadHMAC          uint64
	RateLimited      uint64
	TableFull        uint64 // stateful session table at MaxSessions
	NoReplyRequested uint64 // Return Path Control Code asked for no reply
	Loop             uint64 // source port is the reflector's own port
	BadDestination   uint64 // multicast destination or unusable source
	SendErrors       uint64
	// TLV handling (the packet was still reflected).
	MalformedTLVs        uint64
	UnknownTLVs          uint64
	TLVIntegrityFailures uint64
	// RecvErrors counts failed receive calls (nothing was lost to them
	// that the kernel had delivered).
	RecvErrors uint64
	Sessions   int
}

func (c *counters) snapshot() ReflectorStats {
	g := func(i int) uint64 { return c[i].Load() }
	return ReflectorStats{
		Received: g(cntReceived), Reflected: g(cntReflected),
		BadLength: g(int(dropBadLength)), TooLong: g(int(dropTooLong)), UnknownPeer: g(int(dropUnknownPeer)),
		NoKey: g(int(dropNoKey)), BadHMAC: g(int(dropBadHMAC)), RateLimited: g(int(dropRateLimit)),
		TableFull: g(int(dropTableFull)), NoReplyRequested: g(int(dropNoReplyRequested)), Loop: g(int(dropLoop)),
		BadDestination: g(int(dropBadDestination)), SendErrors: g(int(dropSendError)),
		MalformedTLVs: g(cntMalformedTLV), UnknownTLVs: g(cntUnknownTLV), TLVIntegrityFailures: g(cntTLVIntegrity),
		RecvErrors: g(cntRecvError),
	}
}

// rxMeta is what the kernel told about a received request.
type rxMeta struct {
	src, dst netip.AddrPort
	ifindex  uint32
	rx       time.Time // kernel receive timestamp (T2)
	ttl      int16     // IPv4 TTL / IPv6 hop limit, -1 if unknown
	tclass   int16     // traffic class / TOS octet, -1 if unknown
}

// reply is a prepared reflector packet waiting for T3.
type reply struct {
	n      int
	tclass int16 // traffic class to send with, -1: socket default
	sess   *session
	seq    uint32
	signer *Signer // authenticated mode: signs the base packet after T3
	// returnSegs is a Return Path SRv6 Segment List the reply follows
	// (16 octets per SID, aliasing the reply buffer), or nil.
	returnSegs []byte
}

// maxReturnSegs bounds the SIDs of a Return Path the reflector follows.
const maxReturnSegs = 10

type sessKey struct {
	peer netip.AddrPort
	ssid uint16
}

// session is the stateful reflector's per-session state (RFC 8762 §4.3.1).
type session struct {
	nextSeq uint32
	rx, tx  uint32
	lastSeq uint32
	lastT3  uint64
	hasLast bool
	seen    time.Time
}

type sessionTable struct {
	mu   sync.Mutex
	m    map[sessKey]*session
	max  int
	idle time.Duration
}

// get returns the session, creating it; nil when the table is full.
func (t *sessionTable) get(k sessKey, now time.Time) *session {
	s := t.m[k]
	if s == nil {
		if len(t.m) >= t.max {
			return nil
		}
		s = &session{}
		t.m[k] = s
	}
	s.seen = now
	return s
}

// expire drops sessions idle for longer than the idle time.
func (t *sessionTable) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.m {
		if now.Sub(s.seen) > t.idle {
			delete(t.m, k)
		}
	}
}

func (t *sessionTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// tokenBucket limits the reflected rate (packets per second, burst).
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A clock stepping back adds nothing; it only moves the reference.
	if d := now.Sub(b.last); !b.last.IsZero() && d > 0 {
		b.tokens = min(b.tokens+d.Seconds()*b.rate, b.burst)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// core is the reflector's packet logic for one worker: no sockets, so it is
// tested and fuzzed directly. Counters, sessions and the rate limiter are
// shared between workers; signers are per worker.
type core struct {
	cfg      *ReflectorConfig
	st       stamper
	cnt      *counters
	sessions *sessionTable
	limiter  *tokenBucket
	signers  []*Signer // one per cfg.Keys entry
}

func newCore(cfg *ReflectorConfig, cnt *counters, sessions *sessionTable, limiter *tokenBucket) *core {
	c := &core{cfg: cfg, cnt: cnt, sessions: sessions, limiter: limiter,
		st: stamper{clock: cfg.Clock, format: cfg.Timestamp, taiOffset: cfg.TAIOffset}}
	for _, k := range cfg.Keys {
		c.signers = append(c.signers, NewSigner(k.Key))
	}
	return c
}

// signerFor returns the signer of the longest configured prefix holding a.
func (c *core) signerFor(a netip.Addr) *Signer {
	a = a.Unmap()
	best, bits := -1, -1
	for i, k := range c.cfg.Keys {
		if k.Prefix.Contains(a) && k.Prefix.Bits() > bits {
			best, bits = i, k.Prefix.Bits()
		}
	}
	if best < 0 {
		return nil
	}
	return c.signers[best]
}

func (c *core) allowed(a netip.Addr) bool {
	if len(c.cfg.Allow) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range c.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// reflect builds the reply to req into out (len(out) ≥ max(len(req),
// AuthBaseLen)). The reply is exactly as long as the request, so the
// reflector never amplifies; only T3 and the base HMAC are left for finish.
func (c *core) reflect(req []byte, m *rxMeta, out []byte) (reply, dropReason) {
	mode := c.cfg.Mode
	base := mode.BaseLen()
	minLen := base
	if c.cfg.TWAMPLight && mode == Unauthenticated {
		minLen = TWAMPLightMinLen
	}
	switch {
	case len(req) < minLen:
		return reply{}, dropBadLength
	case m.dst.Addr().IsMulticast() || !m.src.Addr().IsValid() || m.src.Port() == 0:
		return reply{}, dropBadDestination
	case m.src.Port() == m.dst.Port():
		// Two reflectors must not bounce replies at each other forever.
		return reply{}, dropLoop
	case !c.allowed(m.src.Addr()):
		return reply{}, dropUnknownPeer
	case c.limiter != nil && !c.limiter.allow(m.rx):
		return reply{}, dropRateLimit
	}
	signer := c.signerFor(m.src.Addr())
	if mode == Authenticated {
		if signer == nil {
			return reply{}, dropNoKey
		}
		if !signer.Verify(req) {
			return reply{}, dropBadHMAC
		}
	}
	// A TWAMP Light request may be shorter than the STAMP base packet;
	// pad the parse with zeros (the MBZ/SSID octets it lacks).
	var short [BaseLen]byte
	hdrSrc := req
	if len(req) < base {
		copy(short[:], req)
		hdrSrc = short[:]
	}
	sh, _ := DecodeSender(hdrSrc, mode)
	rp := reply{n: len(req), tclass: -1}
	if mode == Authenticated {
		rp.signer = signer
	}
	rh := ReflectorHeader{
		Seq:                 sh.Seq,
		SSID:                sh.SSID,
		ReceiveTimestamp:    c.st.encode(m.rx),
		SenderSeq:           sh.Seq,
		SenderTimestamp:     sh.Timestamp,
		SenderErrorEstimate: sh.ErrorEstimate,
	}
	if m.ttl >= 0 {
		rh.SenderTTL = uint8(m.ttl)
	}
	var sess session // copy of the session state, read under the lock
	if c.sessions != nil {
		c.sessions.mu.Lock()
		s := c.sessions.get(sessKey{m.src, sh.SSID}, m.rx)
		if s == nil {
			c.sessions.mu.Unlock()
			return reply{}, dropTableFull
		}
		rh.Seq = s.nextSeq
		s.nextSeq++
		s.rx++
		sess = *s
		rp.sess = s
		c.sessions.mu.Unlock()
	}
	rp.seq = rh.Seq
	if len(req) > base {
		copy(out[base:len(req)], req[base:])
	}
	rh.Put(out, mode)
	if m.tclass > 3 && !c.cfg.TWAMPLight {
		// Without a CoS TLV, reply in the class the request came in (no
		// control message when that is the socket's default, 0).
		rp.tclass = m.tclass &^ 3
	}
	if len(req) > base && !c.cfg.TWAMPLight {
		if !c.processTLVs(req, out[:len(req)], m, &rp, &sess, signer) {
			return reply{}, dropNoReplyRequested
		}
	}
	return rp, dropNone
}

// processTLVs fills in the TLVs of a reply in place (RFC 8972 §4, RFC 9503).
// req is the request, pkt its copy being turned into the reply. It returns
// false when the sender asked for no reply.
func (c *core) processTLVs(req, pkt []byte, m *rxMeta, rp *reply, sess *session, signer *Signer) bool {
	base := c.cfg.Mode.BaseLen()
	area := pkt[base:]
	it := NewTLVIter(area)
	hmacAt := -1
	for {
		t, ok := it.Next()
		if !ok {
			break
		}
		at := it.Off
		if it.Malformed {
			// RFC 8972 §4: flag it and leave the rest of the packet as is.
			area[at] |= FlagM
			c.cnt.inc(cntMalformedTLV)
			break
		}
		if !t.Type.Known() {
			area[at] |= FlagU
			c.cnt.inc(cntUnknownTLV)
			continue
		}
		if !wellFormed(t) || hmacAt >= 0 {
			// A TLV after the HMAC TLV is malformed too: HMAC must be last.
			area[at] |= FlagM
			c.cnt.inc(cntMalformedTLV)
			continue
		}
		v := t.Value
		switch t.Type {
		case TLVLocation:
			c.fillLocation(area[at:at+tlvHdrLen+len(v)], m)
		case TLVTimestampInfo:
			sync := SyncLocalFree
			if synced, _ := c.st.clock.Estimate(); synced {
				sync = SyncNTP
				if c.st.format == FormatPTP {
					sync = SyncPTP
				}
			}
			// T2 is the kernel's software receive stamp, T3 is taken in
			// user space just before send: both "SW local".
			v[0], v[1], v[2], v[3] = sync, StampSWLocal, sync, StampSWLocal
		case TLVClassOfService:
			cos, _ := ParseClassOfService(v)
			if m.tclass >= 0 {
				cos.DSCP2, cos.ECN = uint8(m.tclass>>2), uint8(m.tclass&3)
			}
			cos.RP = 0
			cos.put(v)
			rp.tclass = int16(cos.DSCP1) << 2
		case TLVDirectMeasurement:
			if rp.sess != nil {
				binary.BigEndian.PutUint32(v[4:], sess.rx)
				binary.BigEndian.PutUint32(v[8:], sess.tx+1)
			}
		case TLVFollowUpTelemetry:
			if rp.sess != nil && sess.hasLast {
				binary.BigEndian.PutUint32(v, sess.lastSeq)
				binary.BigEndian.PutUint64(v[4:], sess.lastT3)
				v[12] = StampSWLocal
			}
		case TLVDestinationNodeAddress:
			a, _ := netip.AddrFromSlice(v)
			if a = a.Unmap(); a != m.dst.Addr().Unmap() && (c.cfg.IsLocal == nil || !c.cfg.IsLocal(a)) {
				area[at] |= FlagU
			}
		case TLVReturnPath:
			cc, hasCC, addr, segs, ok := scanReturnPath(v)
			if !ok {
				area[at] |= FlagM
				c.cnt.inc(cntMalformedTLV)
				continue
			}
			if hasCC && cc&ControlCodeReplySameLink == 0 {
				return false
			}
			n := len(segs) / 16
			switch {
			case addr:
				// Replies go to the source only, never to a third party
				// named in a packet: say so (RFC 9503 §5).
				area[at] |= FlagU
			case n > 0 && c.cfg.ReturnPathSRv6 && n <= maxReturnSegs && m.src.Addr().Is6() && !m.src.Addr().Is4In6():
				rp.returnSegs = segs
			case n > 0:
				area[at] |= FlagU
			}
		case TLVHMAC:
			hmacAt = at
		}
	}
	if hmacAt >= 0 {
		// Verified on the request: the reply's TLVs have been filled in.
		// On failure every TLV gets the I flag (RFC 8972 §4.8).
		if signer == nil || !verifyTLVMAC(signer, req, base, base+hmacAt) {
			all := NewTLVIter(area)
			for {
				if _, ok := all.Next(); !ok {
					break
				}
				area[all.Off] |= FlagI
			}
			c.cnt.inc(cntTLVIntegrity)
		}
		if signer != nil {
			copy(area[hmacAt+tlvHdrLen:], signer.tlvMAC(pkt[:4], area[:hmacAt]))
		}
	}
	return true
}

// scanReturnPath reads a Return Path TLV value without allocating: the
// Control Code, whether a Return Address is present, and the SRv6 Segment
// List octets. ok is false when the value is malformed.
func scanReturnPath(v []byte) (cc uint32, hasCC, addr bool, segs []byte, ok bool) {
	it := NewTLVIter(v)
	for {
		s, more := it.Next()
		if !more {
			return cc, hasCC, addr, segs, true
		}
		if it.Malformed {
			return 0, false, false, nil, false
		}
		switch uint8(s.Type) {
		case SubReturnControlCode:
			if len(s.Value) != 4 {
				return 0, false, false, nil, false
			}
			cc, hasCC = binary.BigEndian.Uint32(s.Value), true
		case SubReturnAddress:
			if len(s.Value) != 4 && len(s.Value) != 16 {
				return 0, false, false, nil, false
			}
			addr = true
		case SubReturnSRv6:
			if len(s.Value) == 0 || len(s.Value)%16 != 0 {
				return 0, false, false, nil, false
			}
			segs = s.Value
		}
	}
}

// fillLocation writes the ports and addresses the reflector saw (RFC 8972
// §4.2.2): each Source / Destination IP request is answered in place with
// the IPv4 or IPv6 sub-TLV. MAC requests stay zero (unreported: a UDP
// socket sees no link-layer header); unknown sub-TLVs get U.
func (c *core) fillLocation(tlv []byte, m *rxMeta) {
	v := tlv[tlvHdrLen:]
	binary.BigEndian.PutUint16(v, m.dst.Port())
	binary.BigEndian.PutUint16(v[2:], m.src.Port())
	sub := v[lenLocationMin:]
	it := NewTLVIter(sub)
	for {
		s, ok := it.Next()
		if !ok {
			return
		}
		var a netip.Addr
		v4, v6 := uint8(0), uint8(0)
		switch uint8(s.Type) {
		case SubSrcIP, SubSrcIPv4, SubSrcIPv6:
			a, v4, v6 = m.src.Addr().Unmap(), SubSrcIPv4, SubSrcIPv6
		case SubDstIP, SubDstIPv4, SubDstIPv6:
			a, v4, v6 = m.dst.Addr().Unmap(), SubDstIPv4, SubDstIPv6
		case SubSrcMAC, SubSrcEUI48, SubSrcEUI64:
			continue
		default:
			sub[it.Off] |= FlagU
			continue
		}
		if !a.IsValid() { // no packet info: leave it unreported
			continue
		}
		clear(s.Value) // lengths were checked: 16 octets
		if a.Is4() {
			sub[it.Off+1] = v4
			a4 := a.As4()
			copy(s.Value, a4[:])
		} else {
			sub[it.Off+1] = v6
			a16 := a.As16()
			copy(s.Value, a16[:])
		}
	}
}

// finish stamps T3, signs an authenticated reply and records what the
// session needs for Follow-Up Telemetry.
func (c *core) finish(rp *reply, out []byte, t3 uint64, ee ErrorEstimate) {
	putT3(out, c.cfg.Mode, t3, ee)
	if rp.signer != nil {
		rp.signer.Sign(out)
	}
	if rp.sess != nil {
		c.sessions.mu.Lock()
		rp.sess.tx++
		rp.sess.lastSeq, rp.sess.lastT3, rp.sess.hasLast = rp.seq, t3, true
		c.sessions.mu.Unlock()
	}
}
