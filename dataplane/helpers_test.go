package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
	"go.uber.org/zap/zaptest"
)

var nsCounter atomic.Int32

// testNS is a throwaway network namespace with lo up and a veth pair
// wan0 <-> peer0 (both up, so nexthop objects on wan0 have carrier).
type testNS struct {
	name string
	h    netns.NsHandle
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and programs routes")
	}
}

func newTestNS(t testing.TB) *testNS {
	t.Helper()
	n := newBareNS(t, "dpm")
	n.ip(t, "link add wan0 type veth peer name peer0")
	n.ip(t, "link set wan0 up")
	n.ip(t, "link set peer0 up")
	n.ip(t, "-6 addr add fc00:ffff::1/64 dev wan0 nodad")
	return n
}

// newBareNS makes a namespace named prefix+pid-counter with only lo up,
// deleted when the test ends.
func newBareNS(t testing.TB, prefix string) *testNS {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &testNS{name: name}
	t.Cleanup(func() {
		if n.h.IsOpen() {
			n.h.Close()
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	n.ip(t, "link set lo up")
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	n.h = h
	return n
}

// ip runs "ip -n NS args..." and fails the test on error.
func (n *testNS) ip(t testing.TB, args string) string {
	t.Helper()
	out, err := n.tryIP(args)
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", n.name, args, err, out)
	}
	return out
}

func (n *testNS) tryIP(args string) (string, error) {
	a := append([]string{"-n", n.name}, strings.Fields(args)...)
	out, err := exec.Command("ip", a...).CombinedOutput()
	return string(out), err
}

func openKernel(t testing.TB, n *testNS) *Kernel {
	t.Helper()
	k, err := Open(context.Background(), Options{WANInterface: "wan0", Logger: zaptest.NewLogger(t), NetNS: n.h})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func packSegs(s []netip.Addr) segList {
	var b []byte
	for _, a := range s {
		x := a.As16()
		b = append(b, x[:]...)
	}
	return segList(b)
}

// checkInstalled asserts that the kernel holds Normalize(d) (WAN wan0).
func checkInstalled(t *testing.T, k *Kernel, d Desired) {
	t.Helper()
	checkInstalledDev(t, k, d, "wan0")
}

// checkInstalledDev asserts that the kernel holds Normalize(d) with this WAN.
func checkInstalledDev(t *testing.T, k *Kernel, d Desired, wan string) {
	t.Helper()
	got, err := k.Installed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := Normalize(d, k.Capabilities(), wan)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("installed\n %+v\nwant\n %+v", got, want)
	}
}
