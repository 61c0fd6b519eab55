package netnstest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Capture runs tcpdump in namespace ns on interface ifc with a capture
// filter until the returned stop is called, and returns the pcap file (in
// the test's temp dir). Without tcpdump the test is skipped.
func Capture(t testing.TB, ns, ifc, filter string) (pcap string, stop func()) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump")
	}
	pcap = t.TempDir() + "/cap.pcap"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	// -Z root: write into the test's (root-only) temp dir; --immediate-mode:
	// every packet reaches the file before SIGINT, not after a block timeout.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", ifc, "-U", "-n", "-w", pcap, filter)
	logf, err := os.Create(pcap + ".log")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		cancel()
		logf.Close()
		t.Fatal(err)
	}
	// With -U the pcap header is written as soon as the capture is open.
	for i := 0; i < 100; i++ {
		if st, err := os.Stat(pcap); err == nil && st.Size() >= 24 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the filter is attached a moment later
	return pcap, func() {
		time.Sleep(200 * time.Millisecond)
		_ = cmd.Process.Signal(unix.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
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
