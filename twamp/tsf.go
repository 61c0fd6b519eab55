package twamp

import (
	"encoding/binary"
	"time"
)

// End.TSF (timestamp and forward): in enhanced loopback mode the far node
// of the segment list can write its receive timestamp T2 into the probe as
// it passes (twamp/endtsf does so on Linux). T2 is a PTPv2 truncated
// timestamp at the Receive Timestamp position of the Session-Reflector
// packet (RFC 8762 §4.3: payload offset 16 unauthenticated, 32
// authenticated), octets that are MBZ in the Session-Sender packet the
// sender sent, so a zero there means no node stamped the probe (the far
// node fell back to a plain decapsulating SID): the sample then keeps its
// round-trip delay only.

// tsfOneWay sets the one-way delays of a loopback sample from the T2 the
// far node wrote in b, the returned Session-Sender packet.
func tsfOneWay(b []byte, m Mode, taiOffset time.Duration, t1, t4 time.Time, sm *Sample) {
	off := reflectorLayout(m).rxts
	if len(b) < off+8 {
		return
	}
	ts := binary.BigEndian.Uint64(b[off:])
	if ts == 0 {
		return
	}
	t2 := DecodeTime(ts, FormatPTP, taiOffset)
	fwd, bwd := t2.Sub(t1), t4.Sub(t2)
	if fwd >= 0 && bwd >= 0 {
		sm.Forward, sm.Backward, sm.OneWay = fwd, bwd, true
	}
}
