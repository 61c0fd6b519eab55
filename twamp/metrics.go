package twamp

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-linear histogram of non-negative durations: 32
// sub-buckets per power of two (≤ 3 % relative error) from 1 ns to 68 s
// (larger values share the last bucket; min and max stay exact). It is
// fixed size (4 KiB), so percentiles of a long session cost no growth.
type histogram struct {
	counts   [histBuckets]uint32
	n        uint64
	sum      float64
	min, max time.Duration
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histMaxBits = 36 // 2^36 ns ≈ 68.7 s
	histBuckets = (histMaxBits - histSubBits + 1) * histSub
)

func histIndex(v time.Duration) int {
	u := uint64(v)
	if u < histSub {
		return int(u)
	}
	if u >= 1<<histMaxBits {
		return histBuckets - 1
	}
	exp := bits.Len64(u) - histSubBits - 1
	return (exp+1)*histSub + int(u>>exp) - histSub
}

// histValue is the midpoint of bucket i.
func histValue(i int) time.Duration {
	if i < histSub {
		return time.Duration(i)
	}
	exp := i/histSub - 1
	lo := uint64(i%histSub+histSub) << exp
	return time.Duration(lo + (uint64(1)<<exp)/2)
}

func (h *histogram) add(v time.Duration) {
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[histIndex(v)]++
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(max(histValue(i), h.min), h.max)
		}
	}
	return h.max
}

// Stats summarises a set of delays.
type Stats struct {
	Count         uint64
	Min, Avg, Max time.Duration
	P50, P90, P99 time.Duration
}

func (h *histogram) stats() Stats {
	if h.n == 0 {
		return Stats{}
	}
	return Stats{Count: h.n, Min: h.min, Max: h.max, Avg: time.Duration(h.sum / float64(h.n)),
		P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99)}
}

// Sample is the outcome of one test packet.
type Sample struct {
	Seq  uint32
	Sent time.Time // T1
	Lost bool
	// RTT is the two-way delay (T4−T1)−(T3−T2); in loopback mode T4−T1.
	RTT time.Duration
	// Forward (T2−T1) and Backward (T4−T3) are set when OneWay is: the
	// session declares the clocks synchronised and both are plausible.
	Forward, Backward time.Duration
	OneWay            bool
	ReflectorSeq      uint32
	// SenderTTL is the TTL/hop limit the reflector saw (0 if unknown).
	SenderTTL uint8
	// KernelT1 says the delays used the kernel's transmit timestamp as T1
	// rather than the clock read before the send call.
	KernelT1 bool
}

// Metrics are the measurements of a window or of a whole session.
//
// Jitter is the mean absolute IP Packet Delay Variation of RFC 5481 §4.1
// (IPDV), taken over the two-way delays of packets with consecutive
// sequence numbers: mean |D(i) − D(i−1)|. It is not the RFC 3550 smoothed
// interarrival jitter: IPDV needs no smoothing constant and is what the
// SR performance-measurement drafts report.
type Metrics struct {
	Start, End time.Time
	Sent       uint64
	Received   uint64
	Lost       uint64
	// LostForward and LostBackward split Lost by direction; only known
	// against a stateful reflector (DirectionKnown).
	LostForward, LostBackward uint64
	DirectionKnown            bool
	Duplicates                uint64
	// Discarded counts replies with negative or implausible delays (clock
	// steps, replies after the timeout); they count neither as received
	// nor as lost.
	Discarded uint64
	// SendErrors counts probes the kernel refused to send (no route...);
	// they are also lost.
	SendErrors        uint64
	RTT               Stats
	Forward, Backward Stats
	Jitter            time.Duration
	JitterP99         time.Duration
}

// LossRatio is Lost / (Received + Lost).
func (m *Metrics) LossRatio() float64 {
	if d := m.Received + m.Lost; d > 0 {
		return float64(m.Lost) / float64(d)
	}
	return 0
}

// accumulator builds Metrics from samples.
type accumulator struct {
	m             Metrics
	rtt, fwd, bwd histogram
	ipdv          histogram
	ipdvSum       float64
	ipdvN         uint64
	lastSeq       uint32
	lastRTT       time.Duration
	lastRefl      uint32
	haveLast      bool
}

func (a *accumulator) reset(start time.Time) {
	*a = accumulator{m: Metrics{Start: start}}
}

func (a *accumulator) sent() { a.m.Sent++ }

func (a *accumulator) add(s *Sample, stateful bool) {
	if s.Lost {
		a.m.Lost++
		return
	}
	a.m.Received++
	a.rtt.add(s.RTT)
	if s.OneWay {
		a.fwd.add(s.Forward)
		a.bwd.add(s.Backward)
	}
	if a.haveLast && s.Seq == a.lastSeq+1 {
		d := s.RTT - a.lastRTT
		if d < 0 {
			d = -d
		}
		a.ipdv.add(d)
		a.ipdvSum += float64(d)
		a.ipdvN++
	}
	// Sequence numbers wrap (49 days at 1 kpps): compare them as serial
	// numbers (RFC 1982), never as plain integers.
	newer := !a.haveLast || int32(s.Seq-a.lastSeq) > 0
	if stateful && a.haveLast && newer {
		// Between two replies the sender advanced dS, the reflector dR:
		// dS−dR requests never reached it, dR−1 replies never came back.
		dS, dR := s.Seq-a.lastSeq, s.ReflectorSeq-a.lastRefl
		if dR >= 1 && dR <= dS {
			a.m.LostForward += uint64(dS - dR)
			a.m.LostBackward += uint64(dR - 1)
		}
	}
	if newer {
		a.lastSeq, a.lastRTT, a.lastRefl, a.haveLast = s.Seq, s.RTT, s.ReflectorSeq, true
	}
}

func (a *accumulator) metrics(end time.Time, stateful bool) Metrics {
	m := a.m
	m.End = end
	m.RTT, m.Forward, m.Backward = a.rtt.stats(), a.fwd.stats(), a.bwd.stats()
	if a.ipdvN > 0 {
		m.Jitter = time.Duration(a.ipdvSum / float64(a.ipdvN))
		m.JitterP99 = a.ipdv.quantile(0.99)
	}
	m.DirectionKnown = stateful
	return m
}
