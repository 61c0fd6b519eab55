package twamp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimestampVectors(t *testing.T) {
	at := time.Date(2021, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	tests := []struct {
		name string
		f    TimestampFormat
		want uint64
	}{
		{"ntp", FormatNTP, 0xe398e480_80000000},
		{"ptp-tai", FormatPTP, 0x5fee6625_1dcd6500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EncodeTime(at, tc.f, DefaultTAIOffset)
			if got != tc.want {
				t.Fatalf("EncodeTime = %#x, want %#x", got, tc.want)
			}
			back := DecodeTime(got, tc.f, DefaultTAIOffset)
			if d := back.Sub(at); d < -time.Nanosecond || d > time.Nanosecond {
				t.Fatalf("DecodeTime = %v, want %v", back, at)
			}
		})
	}
	// NTP fraction round trip keeps nanosecond precision over a second.
	for ns := 0; ns < 1e9; ns += 999_983 {
		at := time.Unix(1700000000, int64(ns))
		if d := DecodeTime(EncodeTime(at, FormatNTP, 0), FormatNTP, 0).Sub(at); d < -time.Nanosecond || d > time.Nanosecond {
			t.Fatalf("ntp round trip of %d ns off by %v", ns, d)
		}
	}
}

func TestErrorEstimate(t *testing.T) {
	tests := []struct {
		synced bool
		f      TimestampFormat
		err    time.Duration
	}{
		{true, FormatNTP, time.Millisecond},
		{false, FormatPTP, 0},
		{false, FormatNTP, time.Second},
		{true, FormatPTP, time.Microsecond},
		{true, FormatNTP, 37 * time.Nanosecond},
		{false, FormatNTP, 1000 * time.Hour},
	}
	for _, tc := range tests {
		e := NewErrorEstimate(tc.synced, tc.f, tc.err)
		if e.Synced() != tc.synced || e.Format() != tc.f {
			t.Fatalf("NewErrorEstimate(%v,%v,%v) = %#x: S/Z wrong", tc.synced, tc.f, tc.err, uint16(e))
		}
		if e.Multiplier() == 0 {
			t.Fatalf("multiplier 0 for %v", tc.err)
		}
		if e.Error() < tc.err && tc.err < time.Hour {
			t.Fatalf("estimate %v below the error %v", e.Error(), tc.err)
		}
		if tc.err > 0 && tc.err < time.Hour && e.Error() > tc.err*2 {
			t.Fatalf("estimate %v more than twice the error %v", e.Error(), tc.err)
		}
	}
	if e := NewErrorEstimate(true, FormatNTP, time.Millisecond); e != 0x8f84 {
		t.Fatalf("1 ms synced NTP = %#x, want 0x8f84", uint16(e))
	}
}

func TestSenderVector(t *testing.T) {
	want := unhex(t, "0000000101020304050607088001abcd00000000000000000000000000000000000000000000000000000000")
	h := SenderHeader{Seq: 1, Timestamp: 0x0102030405060708, ErrorEstimate: 0x8001, SSID: 0xabcd}
	b := bytes.Repeat([]byte{0xff}, BaseLen)
	h.Put(b, Unauthenticated)
	if !bytes.Equal(b, want) {
		t.Fatalf("Put =\n%x\nwant\n%x", b, want)
	}
	got, err := DecodeSender(want, Unauthenticated)
	if err != nil || got != h {
		t.Fatalf("DecodeSender = %+v, %v", got, err)
	}
	if _, err := DecodeSender(want[:43], Unauthenticated); !errors.Is(err, ErrShort) {
		t.Fatalf("43 octets: err = %v, want ErrShort", err)
	}
}

func TestReflectorAuthVector(t *testing.T) {
	// Computed independently with Python's hmac/hashlib.
	want := unhex(t, "0000000700000000000000000000000011111111222222224001010200000000333333334444444400000000000000000000000500000000000000000000000055555555666666668002000000000000fd00000000000000000000000000000082ea083120f6a303380e2e4c3e7956cc")
	h := ReflectorHeader{Seq: 7, Timestamp: 0x1111111122222222, ErrorEstimate: 0x4001, SSID: 0x0102,
		ReceiveTimestamp: 0x3333333344444444, SenderSeq: 5, SenderTimestamp: 0x5555555566666666,
		SenderErrorEstimate: 0x8002, SenderTTL: 253}
	b := bytes.Repeat([]byte{0xee}, AuthBaseLen)
	h.Put(b, Authenticated)
	s := NewSigner([]byte("0123456789abcdef"))
	s.Sign(b)
	if !bytes.Equal(b, want) {
		t.Fatalf("Put+Sign =\n%x\nwant\n%x", b, want)
	}
	if !s.Verify(b) {
		t.Fatal("Verify rejects its own HMAC")
	}
	got, err := DecodeReflector(b, Authenticated)
	if err != nil || got != h {
		t.Fatalf("DecodeReflector = %+v, %v", got, err)
	}
	b[50] ^= 1
	if s.Verify(b) {
		t.Fatal("Verify accepts a modified packet")
	}
	if NewSigner([]byte("another key 1234")).Verify(want) {
		t.Fatal("Verify accepts the wrong key")
	}
}

func TestReflectorUnauthOffsets(t *testing.T) {
	h := ReflectorHeader{Seq: 0x01020304, Timestamp: 0x1112131415161718, ErrorEstimate: 0x2122, SSID: 0x3132,
		ReceiveTimestamp: 0x4142434445464748, SenderSeq: 0x51525354, SenderTimestamp: 0x6162636465666768,
		SenderErrorEstimate: 0x7172, SenderTTL: 0x81}
	want := unhex(t, "01020304"+"1112131415161718"+"2122"+"3132"+"4142434445464748"+"51525354"+"6162636465666768"+"7172"+"0000"+"81"+"000000")
	b := make([]byte, BaseLen)
	h.Put(b, Unauthenticated)
	if !bytes.Equal(b, want) {
		t.Fatalf("Put =\n%x\nwant\n%x", b, want)
	}
}

func TestTLVSetPutAndSign(t *testing.T) {
	key := []byte("0123456789abcdef")
	set := TLVSet{ExtraPadding: 4, HMAC: true}
	pkt := make([]byte, BaseLen+set.Len())
	(&SenderHeader{Seq: 7}).Put(pkt, Unauthenticated)
	set.Put(pkt[BaseLen:], 0)
	SignTLVs(NewSigner(key), pkt, Unauthenticated)
	want := unhex(t, "0001000400000000"+"00080010"+"96159c968a7b43fb56167e44967a8644")
	if !bytes.Equal(pkt[BaseLen:], want) {
		t.Fatalf("TLVs =\n%x\nwant\n%x", pkt[BaseLen:], want)
	}
}

func TestTLVSetRoundTrip(t *testing.T) {
	cc := ControlCodeReplySameLink
	set := TLVSet{
		ExtraPadding: 3, Location: true, TimestampInfo: true,
		ClassOfService: &ClassOfService{DSCP1: 46}, DirectMeasurement: true,
		AccessReport: &AccessReport{ID: 2, ReturnCode: 1}, FollowUpTelemetry: true,
		DestinationNode: netip.MustParseAddr("2001:db8::1"),
		ReturnPath: &ReturnPath{ControlCode: &cc, Address: netip.MustParseAddr("192.0.2.1"),
			SRv6: []netip.Addr{netip.MustParseAddr("fc00::1"), netip.MustParseAddr("fc00::2")}},
		HMAC: true,
	}
	b := make([]byte, set.Len())
	if n := set.Put(b, 99); n != len(b) {
		t.Fatalf("Put wrote %d, Len says %d", n, len(b))
	}
	var types []TLVType
	it := NewTLVIter(b)
	for {
		tlv, ok := it.Next()
		if !ok {
			break
		}
		if it.Malformed || !wellFormed(tlv) {
			t.Fatalf("TLV %v at %d malformed", tlv.Type, it.Off)
		}
		types = append(types, tlv.Type)
		switch tlv.Type {
		case TLVClassOfService:
			c, err := ParseClassOfService(tlv.Value)
			if err != nil || c.DSCP1 != 46 || tlv.Value[0] != 46<<2 {
				t.Fatalf("CoS = %+v %x, %v", c, tlv.Value, err)
			}
		case TLVDirectMeasurement:
			d, _ := ParseDirectMeasurement(tlv.Value)
			if d.SenderTx != 99 {
				t.Fatalf("S_TxC = %d", d.SenderTx)
			}
		case TLVAccessReport:
			a, _ := ParseAccessReport(tlv.Value)
			if a != (AccessReport{ID: 2, ReturnCode: 1}) {
				t.Fatalf("access report = %+v", a)
			}
		case TLVReturnPath:
			r, err := ParseReturnPath(tlv.Value)
			if err != nil || r.ControlCode == nil || *r.ControlCode != 1 || r.Address != set.ReturnPath.Address || len(r.SRv6) != 2 || r.SRv6[1] != set.ReturnPath.SRv6[1] {
				t.Fatalf("return path = %+v, %v", r, err)
			}
		case TLVLocation:
			if _, err := ParseLocation(tlv.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []TLVType{1, 2, 3, 4, 5, 6, 7, 9, 10, 8}
	if len(types) != len(want) {
		t.Fatalf("types %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("types %v, want %v", types, want)
		}
	}
}

func TestTLVIterMalformed(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		n         int
		malformed bool
	}{
		{"empty", "", 0, false},
		{"one", "00010000", 1, false},
		{"two", "0001000000010001ff", 2, false},
		{"header cut", "000100", 1, true},
		{"value cut", "0001000500", 1, true},
		{"good then cut", "00010000" + "0002ffff00", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it := NewTLVIter(unhex(t, tc.in))
			n := 0
			for {
				if _, ok := it.Next(); !ok {
					break
				}
				n++
			}
			if n != tc.n || it.Malformed != tc.malformed {
				t.Fatalf("got %d TLVs malformed=%v, want %d %v", n, it.Malformed, tc.n, tc.malformed)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder and to the reflector's
// packet logic. The input is capped (b[:n:n]) so any read past its end is a
// panic rather than a silent read of spare capacity.
func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, BaseLen))
	f.Add(make([]byte, AuthBaseLen))
	f.Add(append(make([]byte, BaseLen), 0, 2, 0, 12, 0, 0, 3, 62, 0, 5, 0, 4, 1, 2, 3, 4))
	f.Add(append(make([]byte, BaseLen), 0, 10, 0, 8, 0, 1, 0, 4, 0, 0, 0, 0))
	f.Add(append(make([]byte, BaseLen), 0, 8, 0, 16))
	f.Add(append(make([]byte, BaseLen), 0, 99, 0xff, 0xff, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[:len(b):len(b)]
		for _, m := range []Mode{Unauthenticated, Authenticated} {
			_, _ = DecodeSender(b, m)
			_, _ = DecodeReflector(b, m)
		}
		it := NewTLVIter(b)
		for {
			tlv, ok := it.Next()
			if !ok {
				break
			}
			_ = wellFormed(tlv)
			_, _ = ParseLocation(tlv.Value)
			_, _ = ParseReturnPath(tlv.Value)
			_, _ = ParseTimestampInfo(tlv.Value)
			_, _ = ParseClassOfService(tlv.Value)
			_, _ = ParseDirectMeasurement(tlv.Value)
			_, _ = ParseAccessReport(tlv.Value)
			_, _ = ParseFollowUpTelemetry(tlv.Value)
		}
		for _, cfg := range fuzzReflectorConfigs {
			r := newTestCore(t, cfg)
			out := make([]byte, len(b)+AuthBaseLen)
			rp, reason := r.reflect(b, testMeta(), out)
			if reason == dropNone && rp.n > len(b) {
				t.Fatalf("reply of %d octets to a request of %d", rp.n, len(b))
			}
		}
	})
}
