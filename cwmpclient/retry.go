package cwmpclient

import (
	"math"
	"math/rand/v2"
	"time"
)

// Defaults of Device.ManagementServer.CWMPRetryMinimumWaitInterval and
// CWMPRetryIntervalMultiplier (TR-069 §3.2.1.1, TR-181).
const (
	DefaultRetryMinimumWait = 5
	DefaultRetryMultiplier  = 2000
)

// retryCountCap is where TR-069 §3.2.1.1 stops growing the interval: the
// 10th and every later retry use the same range.
const retryCountCap = 10

// RetryWait returns how long to wait before retry n of a failed session
// (n = 1 for the first retry after the first failure), per TR-069 §3.2.1.1:
// a value drawn uniformly from [m·(k/1000)^(n−1), m·(k/1000)^n] seconds with
// n capped at 10, m = CWMPRetryMinimumWaitInterval and k =
// CWMPRetryIntervalMultiplier. A zero m or k means the default (5, 2000); k
// below 1000 is raised to 1000 (the parameter's lower bound), so the wait never
// shrinks. rnd returns a value in [0, 1); nil means math/rand/v2. n below 1 is
// treated as 1. The result is capped at the largest time.Duration.
func RetryWait(n int, minWait, multiplier uint32, rnd func() float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > retryCountCap {
		n = retryCountCap
	}
	m := float64(minWait)
	if minWait == 0 {
		m = DefaultRetryMinimumWait
	}
	k := float64(multiplier)
	if multiplier == 0 {
		k = DefaultRetryMultiplier
	}
	if k < 1000 {
		k = 1000
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	lo := m * math.Pow(k/1000, float64(n-1))
	hi := m * math.Pow(k/1000, float64(n))
	r := rnd()
	if r < 0 || r >= 1 || math.IsNaN(r) {
		r = 0
	}
	secs := lo + r*(hi-lo)
	if secs >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(secs * float64(time.Second))
}
