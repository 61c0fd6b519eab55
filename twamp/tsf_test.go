package twamp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func TestTSFOneWay(t *testing.T) {
	t1 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	t2 := t1.Add(300 * time.Microsecond)
	t4 := t1.Add(500 * time.Microsecond)
	put := func(m Mode, at time.Time) []byte {
		b := make([]byte, m.BaseLen())
		(&SenderHeader{Seq: 1}).Put(b, m)
		if !at.IsZero() {
			binary.BigEndian.PutUint64(b[reflectorLayout(m).rxts:], EncodeTime(at, FormatPTP, DefaultTAIOffset))
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		b        []byte
		mode     Mode
		fwd, bwd time.Duration
		oneWay   bool
	}{
		{"unauthenticated, stamped", put(Unauthenticated, t2), Unauthenticated, 300 * time.Microsecond, 200 * time.Microsecond, true},
		{"authenticated, stamped at 32", put(Authenticated, t2), Authenticated, 300 * time.Microsecond, 200 * time.Microsecond, true},
		{"not stamped (plain loopback far node)", put(Unauthenticated, time.Time{}), Unauthenticated, 0, 0, false},
		{"T2 before T1 (clocks apart)", put(Unauthenticated, t1.Add(-time.Millisecond)), Unauthenticated, 0, 0, false},
		{"T2 after T4 (clocks apart)", put(Unauthenticated, t4.Add(time.Millisecond)), Unauthenticated, 0, 0, false},
		{"too short for the field", put(Unauthenticated, t2)[:20], Unauthenticated, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sm Sample
			tsfOneWay(tc.b, tc.mode, DefaultTAIOffset, t1, t4, &sm)
			if sm.OneWay != tc.oneWay || sm.Forward != tc.fwd || sm.Backward != tc.bwd {
				t.Fatalf("got one-way %v forward %v backward %v, want %v %v %v", sm.OneWay, sm.Forward, sm.Backward, tc.oneWay, tc.fwd, tc.bwd)
			}
		})
	}
}

func TestEndTSFNeedsLoopback(t *testing.T) {
	cfg := SenderConfig{Name: "x", Dst: netip.MustParseAddrPort("[fd00::1]:862"), EndTSF: true}
	if err := cfg.normalize(); err == nil {
		t.Fatal("EndTSF without loopback accepted")
	}
}
