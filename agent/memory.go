package agent

import (
	"runtime/debug"
	"sync"
	"time"
)

// Bursts: when one apply adds or removes at least burstRoutes encap routes
// (a full BGP table arriving or leaving), the agent hands the burst's freed
// memory back to the kernel once things have settled for burstSettle.
const (
	burstRoutes = 1000
	burstSettle = 2 * time.Second
)

// memoryRelease returns freed heap to the kernel after a burst. The Go
// runtime otherwise keeps the pages of the burst's garbage (UPDATE decoding,
// route sets, netlink batches) resident for minutes: with 10,000 routes
// learned the live heap is about 18 MiB but the process holds some 40 MiB of
// anonymous memory, and on a CPE that memory belongs to the rest of the box.
// Small changes never pay for the forced collection. The zero value is ready.
type memoryRelease struct {
	mu      sync.Mutex
	encaps  int // encap routes the last good apply held
	pending *time.Timer
}

func (m *memoryRelease) applied(encaps int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delta := encaps - m.encaps
	m.encaps = encaps
	if delta < burstRoutes && -delta < burstRoutes {
		return
	}
	// Wait for the rest of the burst (BGP advertisements, status, the
	// speaker's own processing) to settle; a burst that goes on defers it.
	if m.pending == nil {
		m.pending = time.AfterFunc(burstSettle, debug.FreeOSMemory)
		return
	}
	m.pending.Reset(burstSettle)
}
