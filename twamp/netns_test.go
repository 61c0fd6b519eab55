package twamp

import (
	"os"
	"os/exec"
	"testing"

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
