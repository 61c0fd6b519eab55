package twamp

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// TimestampFormat is the format of the 64-bit STAMP timestamps, carried in
// the Z bit of the Error Estimate (RFC 8762 §4.2.1, RFC 8186 §2.3).
type TimestampFormat uint8

const (
	// FormatNTP is the NTP 64-bit format: seconds since 1900 UTC and a
	// 32-bit binary fraction (Z=0).
	FormatNTP TimestampFormat = 0
	// FormatPTP is the PTPv2 truncated format: TAI seconds since 1970 and
	// nanoseconds (Z=1).
	FormatPTP TimestampFormat = 1
)

func (f TimestampFormat) String() string {
	if f == FormatPTP {
		return "ptp"
	}
	return "ntp"
}

// ntpEpochOffset is the number of seconds between 1900-01-01 and 1970-01-01.
const ntpEpochOffset = 2208988800

// DefaultTAIOffset is TAI−UTC since 2017-01-01 (37 s); PTP timestamps are TAI.
const DefaultTAIOffset = 37 * time.Second

// SystemTAIOffset is the kernel's TAI−UTC (set by ntpd, chrony or ptp4l),
// or DefaultTAIOffset when nothing set it.
func SystemTAIOffset() time.Duration {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err == nil && tx.Tai > 0 {
		return time.Duration(tx.Tai) * time.Second
	}
	return DefaultTAIOffset
}

// EncodeTime converts a wall-clock (UTC) instant to a wire timestamp of the
// given format. taiOffset is TAI−UTC, used only by FormatPTP.
func EncodeTime(t time.Time, f TimestampFormat, taiOffset time.Duration) uint64 {
	if f == FormatPTP {
		t = t.Add(taiOffset)
		return uint64(uint32(t.Unix()))<<32 | uint64(uint32(t.Nanosecond()))
	}
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond())<<32 + 500_000_000) / 1_000_000_000
	return sec<<32 | frac&0xffffffff
}

// DecodeTime converts a wire timestamp of the given format back to UTC.
// NTP era 0 is assumed (until 2036), as every STAMP implementation does.
func DecodeTime(ts uint64, f TimestampFormat, taiOffset time.Duration) time.Time {
	sec := int64(ts >> 32)
	lo := ts & 0xffffffff
	if f == FormatPTP {
		if lo >= 1_000_000_000 {
			lo = 999_999_999
		}
		return time.Unix(sec, int64(lo)).Add(-taiOffset)
	}
	ns := (lo*1_000_000_000 + 1<<31) >> 32
	return time.Unix(sec-ntpEpochOffset, int64(ns))
}

// ErrorEstimate is the 16-bit Error Estimate field of RFC 4656 §4.1.2 as
// used by STAMP: S (synchronised to UTC), Z (timestamp format), 6-bit Scale
// and 8-bit Multiplier; error = Multiplier × 2^(Scale−32) seconds.
type ErrorEstimate uint16

// NewErrorEstimate encodes the estimate for a clock. maxErr is rounded up to
// the next representable value; the multiplier is never 0 (RFC 4656).
func NewErrorEstimate(synced bool, f TimestampFormat, maxErr time.Duration) ErrorEstimate {
	var e uint16
	if synced {
		e |= 0x8000
	}
	if f == FormatPTP {
		e |= 0x4000
	}
	scale, mult := encodeError(maxErr)
	return ErrorEstimate(e | uint16(scale)<<8 | uint16(mult))
}

func encodeError(d time.Duration) (scale, mult uint8) {
	if d <= 0 {
		return 0, 1
	}
	sec := d.Seconds()
	for s := 0; s < 64; s++ {
		m := math.Ceil(sec * math.Ldexp(1, 32-s))
		if m <= 255 {
			if m < 1 {
				m = 1
			}
			return uint8(s), uint8(m)
		}
	}
	return 63, 255
}

// Synced reports the S bit.
func (e ErrorEstimate) Synced() bool { return e&0x8000 != 0 }

// Format reports the Z bit.
func (e ErrorEstimate) Format() TimestampFormat { return TimestampFormat(e >> 14 & 1) }

// Scale is the 6-bit scale.
func (e ErrorEstimate) Scale() uint8 { return uint8(e>>8) & 0x3f }

// Multiplier is the 8-bit multiplier.
func (e ErrorEstimate) Multiplier() uint8 { return uint8(e) }

// Error is the estimated error as a duration.
func (e ErrorEstimate) Error() time.Duration {
	return time.Duration(float64(e.Multiplier()) * math.Ldexp(1, int(e.Scale())-32) * 1e9)
}

// ClockSource gives the wall-clock time and its quality; the quality fills
// the Error Estimate of every timestamp written.
type ClockSource interface {
	Now() time.Time
	// Estimate reports whether the clock is synchronised to an external
	// UTC source and its maximum error.
	Estimate() (synced bool, maxErr time.Duration)
}

// SystemClock reads CLOCK_REALTIME and takes its quality from the kernel's
// NTP state (adjtimex: STA_UNSYNC and esterror), refreshed at most once per
// second so the hot path makes no extra syscall.
type SystemClock struct {
	mu      sync.Mutex
	checked time.Time
	est     atomic.Uint64 // bit 63: synced; low bits: maxErr ns
}

// Now returns time.Now.
func (c *SystemClock) Now() time.Time { return time.Now() }

// Estimate implements ClockSource.
func (c *SystemClock) Estimate() (bool, time.Duration) {
	now := time.Now()
	c.mu.Lock()
	if now.Sub(c.checked) > time.Second || c.checked.IsZero() {
		c.checked = now
		c.est.Store(kernelEstimate())
	}
	c.mu.Unlock()
	v := c.est.Load()
	return v>>63 == 1, time.Duration(v &^ (1 << 63))
}

// unsyncedError is what an unsynchronised clock claims: one second.
const unsyncedError = time.Second

func kernelEstimate() uint64 {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil || state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0 {
		return uint64(unsyncedError)
	}
	e := time.Duration(tx.Esterror) * time.Microsecond
	if e <= 0 {
		e = time.Microsecond
	}
	return 1<<63 | uint64(e)
}

// FixedClock is a ClockSource with a declared quality, for hosts whose
// synchronisation the agent knows better than adjtimex (e.g. PTP on a PHC).
type FixedClock struct {
	Synced bool
	MaxErr time.Duration
}

// Now returns time.Now.
func (FixedClock) Now() time.Time { return time.Now() }

// Estimate implements ClockSource.
func (c FixedClock) Estimate() (bool, time.Duration) { return c.Synced, c.MaxErr }

// stamper writes timestamps in one format with the clock's current estimate.
type stamper struct {
	clock     ClockSource
	format    TimestampFormat
	taiOffset time.Duration
}

func (s stamper) estimate() ErrorEstimate {
	synced, maxErr := s.clock.Estimate()
	return NewErrorEstimate(synced, s.format, maxErr)
}

func (s stamper) encode(t time.Time) uint64 { return EncodeTime(t, s.format, s.taiOffset) }
