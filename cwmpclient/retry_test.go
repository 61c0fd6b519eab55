package cwmpclient

import (
	"math"
	"testing"
	"time"
)

func TestRetryWaitSpecTable(t *testing.T) {
	// TR-069 §3.2.1.1 Table 3 with the default m = 5, k = 2000.
	spec := []struct{ lo, hi float64 }{
		{5, 10}, {10, 20}, {20, 40}, {40, 80}, {80, 160}, {160, 320},
		{320, 640}, {640, 1280}, {1280, 2560}, {2560, 5120},
		{2560, 5120}, {2560, 5120}, // n = 11, 12: capped at 10
	}
	almostOne := math.Nextafter(1, 0)
	for i, row := range spec {
		n := i + 1
		for _, tc := range []struct {
			r    float64
			want float64
		}{
			{0, row.lo},
			{0.5, (row.lo + row.hi) / 2},
			{almostOne, row.hi},
		} {
			got := RetryWait(n, 0, 0, func() float64 { return tc.r }).Seconds()
			if math.Abs(got-tc.want) > 1e-6*tc.want {
				t.Errorf("n=%d r=%v: wait %.6fs, want %.6fs", n, tc.r, got, tc.want)
			}
		}
	}
}

func TestRetryWaitParameters(t *testing.T) {
	half := func() float64 { return 0.5 }
	tests := []struct {
		name    string
		n       int
		m, k    uint32
		r       func() float64
		wantSec float64
	}{
		{"explicit defaults", 1, 5, 2000, half, 7.5},
		{"m=10 k=1500 n=2", 2, 10, 1500, func() float64 { return 0 }, 15},
		{"m=10 k=1500 n=2 top", 2, 10, 1500, func() float64 { return math.Nextafter(1, 0) }, 22.5},
		{"k=1000 constant range", 7, 30, 1000, half, 30},
		{"k below bound raised", 3, 30, 500, half, 30},
		{"n=0 treated as 1", 0, 0, 0, func() float64 { return 0 }, 5},
		{"negative n treated as 1", -4, 0, 0, func() float64 { return 0 }, 5},
		{"bad rnd treated as 0", 1, 0, 0, func() float64 { return 7 }, 5},
		{"NaN rnd treated as 0", 1, 0, 0, func() float64 { return math.NaN() }, 5},
	}
	for _, tc := range tests {
		got := RetryWait(tc.n, tc.m, tc.k, tc.r).Seconds()
		if math.Abs(got-tc.wantSec) > 1e-6 {
			t.Errorf("%s: wait %.6fs, want %.6fs", tc.name, got, tc.wantSec)
		}
	}
}

func TestRetryWaitHugeSaturates(t *testing.T) {
	got := RetryWait(10, 65535, 65535, func() float64 { return 0.5 })
	if got != time.Duration(math.MaxInt64) {
		t.Fatalf("wait %v, want the largest Duration", got)
	}
}

func TestRetryWaitDefaultRandomInRange(t *testing.T) {
	for n := 1; n <= 12; n++ {
		for range 50 {
			got := RetryWait(n, 0, 0, nil).Seconds()
			e := float64(min(n, 10))
			lo, hi := 5*math.Pow(2, e-1), 5*math.Pow(2, e)
			if got < lo || got > hi {
				t.Fatalf("n=%d: wait %.3fs outside [%v, %v]", n, got, lo, hi)
			}
		}
	}
}
