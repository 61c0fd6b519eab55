package bgp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/srv6cpe/srv6cpe/srv6"
)

// logBuffer collects a test's logs and prints them only if the test failed
// (or BGP_TEST_LOG is set), so that GoBGP's chatter does not drown the output
// and a late log line after the test cannot panic.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Sync() error { return nil }

func testLogger(t testing.TB, name string) *zap.Logger {
	b := &logBuffer{}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	core := zapcore.NewCore(enc, b, zapcore.DebugLevel)
	if os.Getenv("BGP_TEST_LOG") == "" {
		core = zapcore.NewCore(enc, b, zapcore.InfoLevel)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("BGP_TEST_LOG") != "" {
			b.mu.Lock()
			t.Logf("log of %s:\n%s", name, b.buf.String())
			b.mu.Unlock()
		}
	})
	return zap.New(core).Named(name)
}

// freePort returns a TCP port that was free on addr a moment ago.
func freePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runSpeaker runs s until the test ends and checks that Run returns nil
// within a bound after cancellation. It returns a stop function that does
// the same earlier.
func runSpeaker(t testing.TB, s *Speaker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Wait for StartBgp and AddPeer to have happened: GoBGP keeps its route
	// selection options in package variables that each StartBgp writes, so
	// speakers of one test process are started one after the other.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		running := s.srv != nil
		s.mu.Unlock()
		if running {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("speaker did not start within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitEstablished(t testing.TB, s *Speaker, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ps := s.Peers()
		if len(ps) > 0 && !slices.ContainsFunc(ps, func(p PeerState) bool { return p.State != StateEstablished }) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sessions not established within %v: %+v", timeout, s.Peers())
}

// waitRoutes reads route sets from ch until want accepts one, or fails the
// test after timeout, showing the last set.
func waitRoutes(t testing.TB, ch <-chan []Route, timeout time.Duration, what string, want func([]Route) bool) []Route {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var last []Route
	for {
		select {
		case rs, ok := <-ch:
			if !ok {
				t.Fatalf("%s: watch channel closed; last set:\n%s", what, fmtRoutes(last))
			}
			last = rs
			if want(rs) {
				return rs
			}
		case <-timer.C:
			t.Fatalf("%s: not seen within %v; last set:\n%s", what, timeout, fmtRoutes(last))
		}
	}
}

func fmtRoutes(rs []Route) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %s %s rd=%s sid=%s %s nh=%s\n", r.Instance, r.Prefix, r.RD, r.SID, r.Behavior, r.NextHop)
	}
	if len(rs) == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}

// hasRoute is true when rs holds prefix for instance with that SID.
func hasRoute(rs []Route, instance, prefix string, sid string) bool {
	p, a := netip.MustParsePrefix(prefix), netip.MustParseAddr(sid)
	return slices.ContainsFunc(rs, func(r Route) bool {
		return r.Instance == instance && r.Prefix == p && r.SID == a
	})
}

func hasPrefix(rs []Route, prefix string) bool {
	p := netip.MustParsePrefix(prefix)
	return slices.ContainsFunc(rs, func(r Route) bool { return r.Prefix == p })
}

var testStructure = srv6.SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 8, FunctionLen: 16}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
