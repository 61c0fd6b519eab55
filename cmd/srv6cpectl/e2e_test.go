package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonE2E runs the real daemon in a network namespace (the kernel
// dataplane, the example config) and the CLI against its control socket:
// the routes it shows are the ones the kernel reads back.
func TestDaemonE2E(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs srv6cpe in one")
	}
	for _, tool := range []string{"ip", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "srv6cpe")
	if out, err := exec.Command("go", "build", "-o", bin, "../srv6cpe").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cpe, wan := fmt.Sprintf("ct%dcpe", os.Getpid()), fmt.Sprintf("ct%dwan", os.Getpid())
	for _, ns := range []string{cpe, wan} {
		run := exec.Command("ip", "netns", "add", ns)
		if out, err := run.CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	for _, args := range [][]string{
		{"link", "add", "wan0", "netns", cpe, "type", "veth", "peer", "name", "cpe1", "netns", wan},
		{"-n", cpe, "link", "set", "lo", "up"},
		{"-n", cpe, "link", "set", "wan0", "up"},
		{"-n", wan, "link", "set", "cpe1", "up"},
		{"-n", cpe, "addr", "add", "2001:db8:1200::1/40", "dev", "wan0", "nodad"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	sock := filepath.Join(dir, "run", "control.sock")
	logPath := filepath.Join(dir, "srv6cpe.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command("ip", "netns", "exec", cpe, bin, "--config", "../../examples/srv6cpe.yaml",
		"--state-dir", filepath.Join(dir, "state"), "--control-socket", sock)
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	t.Cleanup(func() {
		if d.ProcessState == nil {
			_ = d.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("daemon log:\n%s", b)
		}
	})

	ctl := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := run(append(args, "--socket", sock), &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, code := ctl("status", "--json")
		var st struct{ State string }
		if code == exitOK && json.Unmarshal([]byte(out), &st) == nil && st.State == "applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not report applied within 10s (last: exit %d, %s)", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket || !ok || sys.Uid != 0 {
		t.Errorf("control socket %v owned by %v, want a socket 0600 owned by root", fi.Mode(), fi.Sys())
	}

	out, errOut, code := ctl("routes")
	if code != exitOK {
		t.Fatalf("routes: exit %d: %s", code, errOut)
	}
	t.Logf("srv6cpectl routes:\n%s", out)
	for _, want := range []string{"  2001:db8:1205::/48\n", "2001:db8:1205:1::  End ", "2001:db8:1205:6::  End.DT6   table main"} {
		if !strings.Contains(out, want) {
			t.Errorf("routes does not show %q:\n%s", want, out)
		}
	}
	if out, _, _ := ctl("sid"); !strings.Contains(out, "locator 2001:db8:1205::/48 (loc1), from prefix 2001:db8:1200::/40") {
		t.Errorf("sid:\n%s", out)
	}
	if out, errOut, code := ctl("refresh"); code != exitOK || !strings.Contains(out, "re-reads") {
		t.Errorf("refresh: exit %d, %q %q", code, out, errOut)
	}

	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop within 10s of SIGTERM")
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left after exit (%v)", err)
	}
	if _, errOut, code := ctl("status"); code != exitBadValue || !strings.HasPrefix(errOut, "srv6cpectl: the srv6cpe daemon is not running (no control socket at ") {
		t.Errorf("after exit: exit %d, stderr %q", code, errOut)
	}
}
