package bgp

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// rawPeer is a BGP peer written by hand: it does the OPEN/KEEPALIVE exchange
// itself and then sends whatever bytes a test crafts.
type rawPeer struct {
	t       testing.TB
	ln      net.Listener
	conn    net.Conn
	closed  chan struct{} // closed when the current session's reader ends
	notices chan string   // NOTIFICATIONs the speaker sent
}

func newRawPeer(t testing.TB) *rawPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, ln: ln, notices: make(chan string, 16)}
	t.Cleanup(func() {
		ln.Close()
		if p.conn != nil {
			p.conn.Close()
			<-p.closed
		}
	})
	return p
}

func (p *rawPeer) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func readMsg(r io.Reader) (typ byte, body []byte, err error) {
	var hdr [19]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < 19 {
		return 0, nil, fmt.Errorf("message length %d", n)
	}
	body = make([]byte, n-19)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[18], body, nil
}

func frame(typ byte, body []byte) []byte {
	msg := make([]byte, 19, 19+len(body))
	for i := 0; i < 16; i++ {
		msg[i] = 0xff
	}
	binary.BigEndian.PutUint16(msg[16:], uint16(19+len(body)))
	msg[18] = typ
	return append(msg, body...)
}

// session accepts the speaker's connection (within timeout) and brings the
// session to Established.
func (p *rawPeer) session(timeout time.Duration) {
	p.t.Helper()
	if p.conn != nil {
		p.conn.Close()
		<-p.closed
	}
	_ = p.ln.(*net.TCPListener).SetDeadline(time.Now().Add(timeout))
	conn, err := p.ln.Accept()
	if err != nil {
		p.t.Fatalf("raw peer: no connection from the speaker: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if typ, _, err := readMsg(conn); err != nil || typ != gobgp.BGP_MSG_OPEN {
		p.t.Fatalf("raw peer: want the speaker's OPEN, got type %d, %v", typ, err)
	}
	open, err := gobgp.NewBGPOpenMessage(65000, 90, netip.MustParseAddr("10.9.9.9"), []gobgp.OptionParameterInterface{
		gobgp.NewOptionParameterCapability([]gobgp.ParameterCapabilityInterface{
			gobgp.NewCapMultiProtocol(gobgp.RF_IPv4_VPN),
			gobgp.NewCapMultiProtocol(gobgp.RF_IPv6_VPN),
			gobgp.NewCapFourOctetASNumber(65000),
			gobgp.NewCapExtendedNexthop([]*gobgp.CapExtendedNexthopTuple{gobgp.NewCapExtendedNexthopTuple(gobgp.RF_IPv4_VPN, gobgp.AFI_IP6)}),
		}),
	})
	if err != nil {
		p.t.Fatal(err)
	}
	ob, err := open.Serialize()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := conn.Write(append(ob, frame(gobgp.BGP_MSG_KEEPALIVE, nil)...)); err != nil {
		p.t.Fatalf("raw peer: sending OPEN: %v", err)
	}
	if typ, body, err := readMsg(conn); err != nil || typ != gobgp.BGP_MSG_KEEPALIVE {
		p.t.Fatalf("raw peer: want KEEPALIVE, got type %d %x, %v", typ, body, err)
	}
	_ = conn.SetDeadline(time.Time{})
	p.conn = conn
	p.closed = make(chan struct{})
	go func() {
		defer close(p.closed)
		for {
			typ, body, err := readMsg(conn)
			if err != nil {
				return
			}
			if typ == gobgp.BGP_MSG_NOTIFICATION && len(body) >= 2 {
				select {
				case p.notices <- fmt.Sprintf("code %d subcode %d", body[0], body[1]):
				default:
				}
			}
		}
	}()
}

func (p *rawPeer) send(b []byte) error {
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := p.conn.Write(b)
	return err
}

// Wire pieces of a VPN UPDATE, built by hand so that tests can break them.

func attr(flags, typ byte, val []byte) []byte {
	if len(val) > 255 {
		flags |= 0x10
		b := []byte{flags, typ, 0, 0}
		binary.BigEndian.PutUint16(b[2:], uint16(len(val)))
		return append(b, val...)
	}
	return append([]byte{flags &^ 0x10, typ, byte(len(val))}, val...)
}

func tlv(typ byte, lenField int, val []byte) []byte { // 1-byte type, 2-byte length
	b := []byte{typ, 0, 0}
	binary.BigEndian.PutUint16(b[1:], uint16(lenField))
	return append(b, val...)
}

// infoSubTLV is an SRv6 SID Information Sub-TLV with its true length.
func infoSubTLV(sid string, behavior uint16, subsub ...[]byte) []byte {
	v := []byte{0}
	v = append(v, netip.MustParseAddr(sid).AsSlice()...)
	v = append(v, 0, byte(behavior>>8), byte(behavior), 0)
	for _, s := range subsub {
		v = append(v, s...)
	}
	return tlv(1, len(v), v)
}

func structureSubSub(lb, ln, fn, arg, tl, to byte) []byte {
	return tlv(1, 6, []byte{lb, ln, fn, arg, tl, to})
}

// l3Service is an SRv6 L3 Service TLV around sub-TLVs, with its true length.
func l3Service(subs ...[]byte) []byte {
	v := []byte{0}
	for _, s := range subs {
		v = append(v, s...)
	}
	return tlv(5, len(v), v)
}

// vpnUpdate builds an UPDATE advertising prefix (VPNv4 or VPNv6) with RD
// 65000:9, RT 65000:100, the given 20-bit label and Prefix-SID value.
func vpnUpdate(prefix string, label uint32, prefixSID []byte) []byte {
	p := netip.MustParsePrefix(prefix)
	afi := byte(1)
	if p.Addr().Is6() {
		afi = 2
	}
	nlri := []byte{byte(24 + 64 + p.Bits())}
	raw := label<<4 | 1
	nlri = append(nlri, byte(raw>>16), byte(raw>>8), byte(raw))
	nlri = append(nlri, 0, 0, 0xfd, 0xe8, 0, 0, 0, 9) // RD type 0, 65000:9
	nlri = append(nlri, p.Addr().AsSlice()[:(p.Bits()+7)/8]...)
	mp := []byte{0, afi, 128, 24, 0, 0, 0, 0, 0, 0, 0, 0}
	mp = append(mp, netip.MustParseAddr("2001:db8:99::9").AsSlice()...)
	mp = append(mp, 0)
	mp = append(mp, nlri...)

	var attrs []byte
	attrs = append(attrs, attr(0x40, 1, []byte{0})...)            // ORIGIN IGP
	attrs = append(attrs, attr(0x40, 2, nil)...)                  // AS_PATH empty (iBGP)
	attrs = append(attrs, attr(0x40, 5, []byte{0, 0, 0, 100})...) // LOCAL_PREF
	attrs = append(attrs, attr(0x80, 14, mp)...)                  // MP_REACH_NLRI
	attrs = append(attrs, attr(0xc0, 16, []byte{0, 2, 0xfd, 0xe8, 0, 0, 0, 100})...)
	if prefixSID != nil {
		attrs = append(attrs, attr(0xc0, 40, prefixSID)...)
	}
	body := []byte{0, 0, byte(len(attrs) >> 8), byte(len(attrs))}
	body = append(body, attrs...)
	return frame(gobgp.BGP_MSG_UPDATE, body)
}

func goodSID(sid string) []byte {
	return l3Service(infoSubTLV(sid, 19, structureSubSub(40, 8, 16, 0, 0, 0)))
}

// TestMalformedSRv6FromPeer feeds the speaker crafted UPDATEs whose SRv6 data
// is malformed, unknown or unusable. The speaker must keep running, treat a
// broken route as withdrawn (or reset the session, RFC 7606), never hang, and
// still learn a good route afterwards.
func TestMalformedSRv6FromPeer(t *testing.T) {
	peer := newRawPeer(t)
	s, err := New(Config{
		LocalAS: 65000, RouterID: "10.0.0.1", ListenPort: -1,
		Neighbors: []Neighbor{{Address: "127.0.0.1", RemoteAS: 65000, Port: uint16(peer.port()), ConnectRetry: 1}},
	}, testLogger(t, "S"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImports([]ImportPolicy{{Instance: "red", ImportRTs: []string{"65000:100"}}}); err != nil {
		t.Fatal(err)
	}
	runSpeaker(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := s.Watch(ctx)
	peer.session(10 * time.Second)

	// A good route first, then a malformed update for the same prefix: the
	// route must go (treat-as-withdraw), not stay with its old SID.
	if err := peer.send(vpnUpdate("172.16.0.0/24", 3, goodSID("fd00:c:0:0:1::"))); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, watch, 10*time.Second, "good route", func(rs []Route) bool {
		return hasRoute(rs, "red", "172.16.0.0/24", "fd00:c:0:0:1::")
	})

	sid := netip.MustParseAddr("fd00:c::").AsSlice()
	cases := []struct {
		name   string
		prefix string
		label  uint32
		psid   []byte
		want   string // SID expected for prefix, "" = the route must be absent
		raw    []byte // sent instead of the UPDATE built from the fields above
	}{
		{"info sub-TLV too short (10 bytes)", "172.16.0.0/24", 3,
			l3Service(tlv(1, 10, make([]byte, 10))), "", nil},
		{"info sub-TLV length overruns its TLV", "172.16.1.0/24", 3,
			l3Service(tlv(1, 200, append([]byte{0}, sid...))), "", nil},
		{"service TLV length overruns the attribute", "172.16.2.0/24", 3,
			tlv(5, 500, []byte{0}), "", nil},
		{"zero-length service TLV", "172.16.3.0/24", 3, tlv(5, 0, nil), "", nil},
		{"zero-length info sub-TLV", "172.16.4.0/24", 3, l3Service(tlv(1, 0, nil)), "", nil},
		{"structure sub-sub-TLV of 5 bytes", "172.16.5.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:5::", 19, tlv(1, 5, []byte{40, 8, 16, 0, 0}))), "", nil},
		{"sub-sub-TLV length overruns the sub-TLV", "172.16.6.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:6::", 19, tlv(9, 300, []byte{1, 2}))), "", nil},
		{"transposition beyond 128 bits", "172.16.7.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:7::", 19, structureSubSub(40, 8, 16, 0, 16, 120))), "", nil},
		{"transposition longer than the label", "172.16.8.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:8::", 19, structureSubSub(40, 8, 16, 0, 24, 48))), "", nil},
		{"behaviour End (not a VPN behaviour)", "172.16.9.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:9::", 1)), "", nil},
		{"End.DT6 on a VPNv4 route", "172.16.10.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:a::", 18)), "", nil},
		{"unspecified SID", "172.16.11.0/24", 3, l3Service(infoSubTLV("::", 19)), "", nil},
		{"no Prefix-SID attribute", "172.16.12.0/24", 3, nil, "", nil},
		{"only an unknown Prefix-SID TLV", "172.16.13.0/24", 3, tlv(99, 3, []byte{1, 2, 3}), "", nil},
		{"L2 service TLV instead of L3", "172.16.14.0/24", 3,
			tlv(6, 1+33, append([]byte{0}, infoSubTLV("fd00:c:0:0:e::", 19)...)), "", nil},
		// Framing errors: the speaker may reset the session (RFC 7606 §4).
		{name: "Prefix-SID attribute length overruns the UPDATE", prefix: "172.16.15.0/24",
			raw: overrunAttr(vpnUpdate("172.16.15.0/24", 3, goodSID("fd00:c:0:0:f::")))},
		{name: "path attribute length overruns the UPDATE", prefix: "172.16.16.0/24",
			raw: overrunAttrs(vpnUpdate("172.16.16.0/24", 3, goodSID("fd00:c:0:0:10::")))},
		// Unknown types are skipped; the rest of the attribute still counts.
		{"unknown TLV before the L3 service TLV", "172.16.20.0/24", 3,
			append(tlv(99, 3, []byte{1, 2, 3}), goodSID("fd00:c:0:0:20::")...), "fd00:c:0:0:20::", nil},
		{"unknown sub-TLV before the info sub-TLV", "172.16.21.0/24", 3,
			l3Service(tlv(9, 4, []byte{1, 2, 3, 4}), infoSubTLV("fd00:c:0:0:21::", 19)), "fd00:c:0:0:21::", nil},
		{"zero-length unknown sub-TLV", "172.16.22.0/24", 3,
			l3Service(tlv(9, 0, nil), infoSubTLV("fd00:c:0:0:22::", 19)), "fd00:c:0:0:22::", nil},
		{"unknown sub-sub-TLV next to the structure", "172.16.23.0/24", 3,
			l3Service(infoSubTLV("fd00:c:0:0:23::", 19, tlv(7, 2, []byte{1, 2}), structureSubSub(40, 8, 16, 0, 0, 0))), "fd00:c:0:0:23::", nil},
		{"behaviour 0xFFFF on VPNv6", "2001:db8:24::/64", 3,
			l3Service(infoSubTLV("fd00:c:0:0:24::", 0xffff)), "fd00:c:0:0:24::", nil},
		// RFC 9252 §4: 16 function bits at offset 48 travel in the label.
		{"transposed function bits", "172.16.25.0/24", 0x12345,
			l3Service(infoSubTLV("fd00:c::", 19, structureSubSub(40, 8, 16, 0, 16, 48))), "fd00:c:0:1234::", nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := c.raw
			if msg == nil {
				msg = vpnUpdate(c.prefix, c.label, c.psid)
			}
			if err := peer.send(msg); err != nil {
				t.Logf("sending: %v (session reset)", err)
			}
			// A good route after the case proves the speaker is alive and has
			// processed the case (GoBGP handles a session's UPDATEs in order).
			// If the speaker resets the session meanwhile, the peer accepts
			// the new connection and sends the probe again.
			probe := fmt.Sprintf("10.250.%d.0/24", i)
			probeSID := "fd00:d::" + strconv.Itoa(i+1)
			_ = peer.send(vpnUpdate(probe, 3, goodSID(probeSID)))
			deadline := time.NewTimer(40 * time.Second)
			defer deadline.Stop()
			var rs []Route
		wait:
			for {
				select {
				case rs = <-watch:
					if hasRoute(rs, "red", probe, probeSID) {
						break wait
					}
				case <-peer.closed:
					select {
					case n := <-peer.notices:
						t.Logf("session reset by the speaker: NOTIFICATION %s", n)
					default:
						t.Log("session reset")
					}
					peer.session(30 * time.Second)
					_ = peer.send(vpnUpdate(probe, 3, goodSID(probeSID)))
				case <-deadline.C:
					t.Fatalf("probe %s not learned within 40s; routes:\n%s", probe, fmtRoutes(rs))
				}
			}
			p := netip.MustParsePrefix(c.prefix)
			var got *Route
			for i := range rs {
				if rs[i].Prefix == p {
					got = &rs[i]
				}
			}
			switch {
			case c.want == "" && got != nil:
				t.Errorf("%s learned from a malformed update: %+v", c.prefix, *got)
			case c.want != "" && got == nil:
				t.Errorf("%s not learned; routes:\n%s", c.prefix, fmtRoutes(rs))
			case c.want != "" && got.SID != netip.MustParseAddr(c.want):
				t.Errorf("%s: SID %s, want %s", c.prefix, got.SID, c.want)
			case c.want != "" && got.Behavior != wantBehavior(p):
				t.Errorf("%s: behaviour %s, want %s", c.prefix, got.Behavior, wantBehavior(p))
			}
		})
	}
	if ps := s.Peers(); ps[0].State != StateEstablished {
		t.Errorf("after the bad input the session is %s, want established", ps[0].State)
	}
}

// wantBehavior is what the crafted routes resolve to: End.DT4 (19) as sent,
// or End.DT6 inferred from 0xFFFF on VPNv6.
func wantBehavior(p netip.Prefix) srv6.Behavior {
	if p.Addr().Is4() {
		return srv6.EndDT4
	}
	return srv6.EndDT6
}

// overrunAttr makes the last attribute (the Prefix-SID) claim 200 more bytes
// than the UPDATE holds; the attribute has a 2-byte length (extended flag).
func overrunAttr(msg []byte) []byte {
	m := append([]byte(nil), msg...)
	// Find the Prefix-SID attribute header: flags, type 40.
	for i := 23; i+3 < len(m); i++ {
		if m[i+1] == 40 && m[i]&0xc0 == 0xc0 {
			if m[i]&0x10 != 0 {
				n := binary.BigEndian.Uint16(m[i+2:]) + 200
				binary.BigEndian.PutUint16(m[i+2:], n)
			} else {
				m[i+2] = 255
			}
			return m
		}
	}
	panic("no Prefix-SID attribute")
}

// overrunAttrs makes the total path attribute length exceed the UPDATE.
func overrunAttrs(msg []byte) []byte {
	m := append([]byte(nil), msg...)
	n := binary.BigEndian.Uint16(m[21:23]) + 50
	binary.BigEndian.PutUint16(m[21:23], n)
	return m
}
