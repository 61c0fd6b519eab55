package board

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func recv(t *testing.T, ch <-chan PrefixChange, within time.Duration) PrefixChange {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(within):
		t.Fatalf("no PrefixChange within %v", within)
		return PrefixChange{}
	}
}

func expectNone(t *testing.T, ch <-chan PrefixChange, within time.Duration) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("unexpected PrefixChange %+v", c)
	case <-time.After(within):
	}
}

func TestStaticPrefix(t *testing.T) {
	p1 := netip.MustParsePrefix("2001:db8:1200::1/40") // host bits are ignored
	a1 := netip.MustParseAddr("2001:db8:1200::1")
	p2 := netip.MustParsePrefix("2001:db8:4400::/40")
	a2 := netip.MustParseAddr("2001:db8:4400::1")

	src := NewStaticPrefix(p1, a1)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan PrefixChange)
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, out) }()

	first := recv(t, out, time.Second)
	want := PrefixChange{New: netip.MustParsePrefix("2001:db8:1200::/40"), Addr: a1}
	if first != want {
		t.Fatalf("first = %+v, want %+v", first, want)
	}
	if err := src.Set(p1, a1); err != nil { // no change: no event
		t.Fatal(err)
	}
	expectNone(t, out, 50*time.Millisecond)

	if err := src.Set(p2, a2); err != nil {
		t.Fatal(err)
	}
	want = PrefixChange{Old: first.New, New: p2, Addr: a2}
	if got := recv(t, out, time.Second); got != want {
		t.Fatalf("after Set = %+v, want %+v", got, want)
	}

	if err := src.Set(netip.MustParsePrefix("10.0.0.0/8"), netip.Addr{}); err == nil || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("Set(IPv4) = %v, want an error naming 10.0.0.0/8", err)
	}
	expectNone(t, out, 50*time.Millisecond)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch after cancel = %v, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestStaticPrefixInvalid(t *testing.T) {
	tests := []struct {
		p    netip.Prefix
		a    netip.Addr
		want string
	}{
		{netip.Prefix{}, netip.Addr{}, "invalid Prefix"},
		{netip.MustParsePrefix("192.0.2.0/24"), netip.Addr{}, "192.0.2.0/24"},
		{netip.MustParsePrefix("::ffff:192.0.2.0/120"), netip.Addr{}, "::ffff:192.0.2.0/120"},
		{netip.MustParsePrefix("::/0"), netip.Addr{}, "::/0"},
		{netip.MustParsePrefix("2001:db8::/32"), netip.MustParseAddr("192.0.2.1"), "192.0.2.1"},
	}
	for _, tc := range tests {
		err := NewStaticPrefix(tc.p, tc.a).Watch(context.Background(), make(chan PrefixChange, 1))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Watch(%v, %v) = %v, want an error containing %q", tc.p, tc.a, err, tc.want)
		}
	}
}

// Two watchers of one source both see a change.
func TestStaticPrefixTwoWatchers(t *testing.T) {
	src := NewStaticPrefix(netip.MustParsePrefix("2001:db8:1200::/40"), netip.Addr{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := make(chan PrefixChange), make(chan PrefixChange)
	go src.Watch(ctx, a)
	go src.Watch(ctx, b)
	recv(t, a, time.Second)
	recv(t, b, time.Second)
	p2 := netip.MustParsePrefix("2001:db8:4400::/40")
	if err := src.Set(p2, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan PrefixChange{a, b} {
		if got := recv(t, ch, time.Second); got.New != p2 {
			t.Errorf("watcher got %+v, want New %v", got, p2)
		}
	}
}
