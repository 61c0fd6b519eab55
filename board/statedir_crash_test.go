package board

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash tests re-exec the test binary as a writer that SIGKILLs itself
// (or is killed by the parent) in the middle of StateDir.WriteFile, then
// "restart" with OpenStateDir + ReadFile in the parent, as the agent does
// after a power cut. SIGKILL keeps the page cache, so this checks the
// protocol's ordering (temp, fsync, rename, dir fsync) and the leftover
// cleanup, not the disk's own write ordering.
const (
	crashEnvDir    = "SRV6CPE_CRASH_DIR"
	crashEnvName   = "SRV6CPE_CRASH_NAME"
	crashEnvData   = "SRV6CPE_CRASH_DATA"
	crashEnvKillAt = "SRV6CPE_CRASH_KILL_AT"
)

// crashStateFiles are the files the agent and the CWMP client keep in the
// state dir (agent.StatusFile, PrefixFile, OverlayFile, CWMPStateFile,
// MonitorOverlayFile; cwmpclient's events, tree and client files).
var crashStateFiles = []string{
	"status.json", "prefix.json", "srv6-controller.json", "monitor-controller.json",
	"cwmp-agent.json", "cwmp-events.json", "cwmp-tree.json", "cwmp-client.json",
}

// writeSteps are the points writeStep reports, in order; a kill at
// "renamed" or later must leave the new version, before it the old one.
var writeSteps = []string{"created", "written", "synced", "closed", "renamed", "dirsynced"}

// TestStateDirCrashWriter is the child process; it does nothing in a normal
// test run.
func TestStateDirCrashWriter(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("crash writer: only runs re-executed by TestStateDirCrash*")
	}
	data, err := os.ReadFile(os.Getenv(crashEnvData))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	if at := os.Getenv(crashEnvKillAt); at != "" {
		writeStepHook = func(step string) {
			if step == at {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is delivered before this returns
			}
		}
	}
	d := &StateDir{path: dir} // no OpenStateDir: the child must not clean up
	fmt.Println("ready")
	if err := d.WriteFile(os.Getenv(crashEnvName), data); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("done")
	select {} // wait for the parent's kill, like a daemon that keeps running
}

// stateVersion is plausible JSON of about size bytes, distinct per version.
func stateVersion(t *testing.T, name string, version, size int) []byte {
	t.Helper()
	pad := strings.Repeat(fmt.Sprintf("v%d-", version), size/3+1)[:size]
	b, err := json.Marshal(map[string]any{"file": name, "version": version, "pad": pad})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// crashOutcome is what a restart found.
type crashOutcome string

const (
	outcomeOld    crashOutcome = "old"
	outcomeNew    crashOutcome = "new"
	outcomeAbsent crashOutcome = "absent"
)

// restartAndRead reopens the dir as the next boot would and classifies the
// file: the old version (or absent when there was none), or the new one.
// Anything else (empty, truncated, mixed, invalid JSON) fails the test.
func restartAndRead(t *testing.T, dir, name string, old, new []byte) (crashOutcome, int) {
	t.Helper()
	leftovers := countTemps(t, dir)
	d, err := OpenStateDir(dir)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n := countTemps(t, dir); n != 0 {
		t.Fatalf("restart left %d temp files in %s", n, dir)
	}
	got, err := d.ReadFile(name)
	switch {
	case errors.Is(err, os.ErrNotExist) && old == nil:
		return outcomeAbsent, leftovers
	case err != nil:
		t.Fatalf("restart: %v", err)
	case bytes.Equal(got, new):
		return outcomeNew, leftovers
	case old != nil && bytes.Equal(got, old):
		return outcomeOld, leftovers
	}
	t.Fatalf("restart: %s is neither the old nor the new version: %d bytes, valid JSON %v", name, len(got), json.Valid(got))
	return "", 0
}

func countTemps(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			n++
		}
	}
	return n
}

// crashChild starts the writer for name with data; killAt names the step
// where it kills itself ("" for none).
func crashChild(t *testing.T, dir, name, dataPath, killAt string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStateDirCrashWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvName+"="+name,
		crashEnvData+"="+dataPath, crashEnvKillAt+"="+killAt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// readLine returns the child's next line that is one of ours (the test
// framework may print its own).
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for range 20 {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if line == "ready" || line == "done" || strings.HasPrefix(line, "error:") {
			return line
		}
		if err != nil {
			return "EOF"
		}
	}
	return "no ready/done line"
}

// prepare puts the old version (if any) in a fresh dir and the new one in a
// side file for the child.
func prepare(t *testing.T, name string, old, new []byte) (dir, dataPath string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "state")
	d, err := OpenStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if old != nil {
		if err := d.WriteFile(name, old); err != nil {
			t.Fatal(err)
		}
	}
	dataPath = filepath.Join(root, "new")
	if err := os.WriteFile(dataPath, new, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, dataPath
}

// TestStateDirCrashAtEveryStep kills the writer at each step of WriteFile
// for every state file, with and without a previous version: the restart
// sees the old version up to the rename and the new one from it on.
func TestStateDirCrashAtEveryStep(t *testing.T) {
	if os.Getenv(crashEnvDir) != "" {
		t.Skip("inside the crash writer")
	}
	if testing.Short() {
		t.Skip("re-executes the test binary about 100 times")
	}
	steps := append(append([]string(nil), writeSteps...), "") // "": runs to the end
	counts := map[string]map[crashOutcome]int{}
	for _, name := range crashStateFiles {
		for _, hasOld := range []bool{true, false} {
			for _, step := range steps {
				var old []byte
				if hasOld {
					old = stateVersion(t, name, 1, 2048)
				}
				new := stateVersion(t, name, 2, 3000)
				dir, dataPath := prepare(t, name, old, new)
				cmd, out := crashChild(t, dir, name, dataPath, step)
				if line := readLine(t, out); line != "ready" {
					t.Fatalf("%s kill at %q: child said %q", name, step, line)
				}
				line := readLine(t, out)
				if step == "" {
					if line != "done" {
						t.Fatalf("%s: child said %q, want done", name, line)
					}
					cmd.Process.Kill()
				}
				werr := cmd.Wait()
				var ee *exec.ExitError
				if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("%s kill at %q: child ended with %v, want SIGKILL", name, step, werr)
				}
				got, _ := restartAndRead(t, dir, name, old, new)
				want := outcomeNew
				if k := stepIndex(step); k < stepIndex("renamed") {
					want = outcomeOld
					if !hasOld {
						want = outcomeAbsent
					}
				}
				if got != want {
					t.Errorf("%s (old version %v) killed at %q: restart read %s, want %s", name, hasOld, step, got, want)
				}
				label := step
				if label == "" {
					label = "completed"
				}
				if counts[label] == nil {
					counts[label] = map[crashOutcome]int{}
				}
				counts[label][got]++
			}
		}
	}
	for _, step := range append(append([]string(nil), writeSteps...), "completed") {
		t.Logf("killed after %-10s %d files x {old, none}: %v", step, len(crashStateFiles), counts[step])
	}
}

// stepIndex orders steps; "" (completed) is after all of them.
func stepIndex(step string) int {
	for i, s := range writeSteps {
		if s == step {
			return i
		}
	}
	return len(writeSteps)
}

// TestStateDirCrashRandomKill kills the writer from outside after a random
// delay, 200 times, with a 1 MiB payload so many kills land inside the
// write itself (a partial temp file), which the step hook cannot split.
func TestStateDirCrashRandomKill(t *testing.T) {
	if os.Getenv(crashEnvDir) != "" {
		t.Skip("inside the crash writer")
	}
	if testing.Short() {
		t.Skip("re-executes the test binary 200 times")
	}
	const iterations = 200
	const size = 1 << 20
	// Calibrate: the delay range spans the time from the child's "ready"
	// to its "done" for a complete write of this size, plus half.
	var span time.Duration
	for range 3 {
		dir, dataPath := prepare(t, "calibrate", nil, stateVersion(t, "calibrate", 1, size))
		cmd, out := crashChild(t, dir, "calibrate", dataPath, "")
		if line := readLine(t, out); line != "ready" {
			t.Fatalf("calibration: child said %q", line)
		}
		start := time.Now()
		if line := readLine(t, out); line != "done" {
			t.Fatalf("calibration: child said %q", line)
		}
		span = max(span, time.Since(start)*3/2)
		cmd.Process.Kill()
		cmd.Wait()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	outcomes := map[crashOutcome]int{}
	midWrite := 0
	deadline := time.Now().Add(2 * time.Minute)
	for i := range iterations {
		if time.Now().After(deadline) {
			t.Logf("stopped after %d iterations at the time bound", i)
			break
		}
		name := crashStateFiles[i%len(crashStateFiles)]
		old := stateVersion(t, name, 1, size)
		new := stateVersion(t, name, 2, size+i)
		dir, dataPath := prepare(t, name, old, new)
		cmd, out := crashChild(t, dir, name, dataPath, "")
		if line := readLine(t, out); line != "ready" {
			t.Fatalf("iteration %d: child said %q", i, line)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(span) + 1)))
		cmd.Process.Kill()
		cmd.Wait()
		got, leftovers := restartAndRead(t, dir, name, old, new)
		outcomes[got]++
		if leftovers > 0 {
			midWrite++
		}
	}
	t.Logf("random kills within %v of a 1 MiB write: restart read %v; %d kills left a temp file (killed mid-write), all removed on restart", span, outcomes, midWrite)
}
