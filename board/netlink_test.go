package board

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestNextChange(t *testing.T) {
	p1 := netip.MustParsePrefix("2001:db8:1200::/40")
	p2 := netip.MustParsePrefix("2001:db8:4400::/40")
	a1 := netip.MustParseAddr("2001:db8:1200::1")
	a2 := netip.MustParseAddr("2001:db8:4400::1")
	tests := []struct {
		name string
		last PrefixChange
		p    netip.Prefix
		a    netip.Addr
		want PrefixChange
		emit bool
	}{
		{"first", PrefixChange{}, p1, a1, PrefixChange{New: p1, Addr: a1}, true},
		{"first without address", PrefixChange{}, p1, netip.Addr{}, PrefixChange{New: p1}, true},
		{"unchanged", PrefixChange{New: p1, Addr: a1}, p1, a1, PrefixChange{New: p1, Addr: a1}, false},
		{"new prefix", PrefixChange{New: p1, Addr: a1}, p2, a2, PrefixChange{Old: p1, New: p2, Addr: a2}, true},
		{"address only", PrefixChange{New: p1, Addr: a1}, p1, a2, PrefixChange{Old: p1, New: p1, Addr: a2}, true},
		{"address gone keeps the last", PrefixChange{New: p1, Addr: a1}, p1, netip.Addr{}, PrefixChange{New: p1, Addr: a1}, false},
		{"new prefix, address gone", PrefixChange{New: p1, Addr: a1}, p2, netip.Addr{}, PrefixChange{Old: p1, New: p2, Addr: a1}, true},
	}
	for _, tc := range tests {
		got, emit := nextChange(tc.last, tc.p, tc.a)
		if emit != tc.emit || (emit && got != tc.want) {
			t.Errorf("%s: nextChange = %+v, %v; want %+v, %v", tc.name, got, emit, tc.want, tc.emit)
		}
	}
}

func TestNetlinkPrefixOptionsValidate(t *testing.T) {
	for _, opt := range []NetlinkPrefixOptions{
		{},
		{Interface: "wan", Mode: "dhcp"},
		{Interface: "a-very-long-interface-name"},
		{Interface: "wan", RouteTable: -1},
	} {
		err := NewNetlinkPrefix(opt).Watch(context.Background(), make(chan PrefixChange))
		if err == nil {
			t.Errorf("Watch with %+v = nil, want an error", opt)
		}
	}
}

// fakeSubscription mimics the netlink library: a goroutine that sends
// events on ch and closes it when the socket fails or done is closed.
type fakeSubscription struct {
	mu    sync.Mutex
	calls int
	// fail[i] makes subscribe call i return an error; lose[i] makes its
	// socket fail after sending one event.
	fail, lose map[int]bool
}

func (f *fakeSubscription) subscribe(ch chan int, done chan struct{}, onErr func(error)) error {
	f.mu.Lock()
	n := f.calls
	f.calls++
	f.mu.Unlock()
	if f.fail[n] {
		return errors.New("socket: too many open files")
	}
	go func() {
		defer close(ch)
		ch <- n
		if f.lose[n] {
			onErr(errors.New("Receive failed: no buffer space available"))
			return
		}
		<-done
		onErr(errors.New("Receive failed: use of closed file"))
	}()
	return nil
}

func (f *fakeSubscription) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// A lost subscription and a failing subscribe are both retried, each
// (re)subscription pokes a re-read, and cancel stops everything.
func TestSubscribeLoopResubscribes(t *testing.T) {
	f := &fakeSubscription{fail: map[int]bool{1: true}, lose: map[int]bool{0: true}}
	ctx, cancel := context.WithCancel(context.Background())
	pokes := make(chan struct{}, 1)
	var npokes atomic.Int64
	stopCounting := make(chan struct{})
	go func() {
		for {
			select {
			case <-pokes:
				npokes.Add(1)
			case <-stopCounting:
				return
			}
		}
	}()
	returned := make(chan struct{})
	go func() {
		subscribeLoop(ctx, zap.NewNop(), "fake", pokes, f.subscribe, func(int) bool { return true })
		close(returned)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.count() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.count(); got < 3 {
		t.Fatalf("subscribe called %d times, want 3 (lost, failed, ok)", got)
	}
	cancel()
	select {
	case <-returned:
	case <-time.After(2 * time.Second):
		t.Fatal("subscribeLoop did not return after cancel")
	}
	close(stopCounting)
	if npokes.Load() == 0 {
		t.Error("no re-read was poked")
	}
	if got := f.count(); got != 3 {
		t.Errorf("subscribe called %d times after cancel, want 3", got)
	}
}
