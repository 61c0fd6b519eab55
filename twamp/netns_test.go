package twamp

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/internal/netnstest"
)

// Helpers for tests in network namespaces. Names carry the "tw" prefix and
// the test's pid so parallel runs never collide.

func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s runs in network namespaces", what)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs iproute2 (ip): %v", err)
	}
}

// inNS runs fn on a thread moved into namespace ns: sockets fn opens live
// there for good.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := netnstest.Do(ns, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// capture runs tcpdump in ns on ifc until the returned stop is called.
func capture(t *testing.T, ns, ifc, filter string) (pcap string, stop func()) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump")
	}
	pcap = t.TempDir() + "/cap.pcap"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", ifc, "-U", "-n", "-w", pcap, filter)
	logf, err := os.Create(pcap + ".log")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	// With -U the pcap header is written as soon as the capture is open.
	for i := 0; i < 100; i++ {
		if st, err := os.Stat(pcap); err == nil && st.Size() >= 24 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return pcap, func() {
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(unix.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		cancel()
		logf.Close()
		if b, _ := os.ReadFile(pcap + ".log"); testing.Verbose() {
			t.Logf("tcpdump: %s", b)
		}
	}
}
