package board

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

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
