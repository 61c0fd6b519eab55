package board

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestStateDirRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	d, err := OpenStateDir(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("state dir mode %v, want no group/other access", perm)
	}
	if _, err := d.ReadFile("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want os.ErrNotExist", err)
	}
	for _, content := range []string{"first", "second, longer content", ""} {
		if err := d.WriteFile("prefix", []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := d.ReadFile("prefix")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("ReadFile = %q, want %q", got, content)
		}
	}
	fi, err = os.Stat(filepath.Join(path, "prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("state file mode %v, want 0600", perm)
	}
	if err := d.Remove("prefix"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("prefix"); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	if _, err := d.ReadFile("prefix"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile after Remove = %v, want os.ErrNotExist", err)
	}
	assertNoTemps(t, path)
}

func TestStateDirBadNames(t *testing.T) {
	d, err := OpenStateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "a/b", "../x", "..", ".", ".hidden", ".tmp-x", `a\b`, "a\x00b", strings.Repeat("n", 201)} {
		werr := d.WriteFile(name, []byte("x"))
		_, rerr := d.ReadFile(name)
		derr := d.Remove(name)
		for op, err := range map[string]error{"WriteFile": werr, "ReadFile": rerr, "Remove": derr} {
			if err == nil {
				t.Errorf("%s(%q) = nil, want an error", op, name)
			} else if name != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				t.Errorf("%s(%q) = %v, want the error to name %q", op, name, err, name)
			}
		}
	}
}

func TestOpenStateDirNotADirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStateDir(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenStateDir(file) = %v, want an error naming %s", err, path)
	}
}

// A power cut between writing the temp file and renaming it leaves the temp
// file behind. It must never become the real file, and the next open cleans
// it up.
func TestStateDirCrashLeavesOldVersion(t *testing.T) {
	path := t.TempDir()
	d, err := OpenStateDir(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFile("config", []byte("complete version")); err != nil {
		t.Fatal(err)
	}
	// The interrupted write: a half-written temp for the same name, and one
	// for a file that was never completed at all.
	for _, leftover := range []string{tempPrefix + "config-123456", tempPrefix + "new-987"} {
		if err := os.WriteFile(filepath.Join(path, leftover), []byte("compl"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := d.ReadFile("config"); err != nil || string(got) != "complete version" {
		t.Fatalf("before reboot: ReadFile = %q, %v; want the complete version", got, err)
	}

	d2, err := OpenStateDir(path) // the reboot
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d2.ReadFile("config"); err != nil || string(got) != "complete version" {
		t.Errorf("after reboot: ReadFile = %q, %v; want the complete version", got, err)
	}
	if _, err := d2.ReadFile("new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an interrupted first write must leave no file: ReadFile(new) = %v", err)
	}
	assertNoTemps(t, path)
}

// Concurrent writers of one name: every read sees one complete version, and
// at the end the file is exactly one of the written versions.
func TestStateDirConcurrentWriters(t *testing.T) {
	path := t.TempDir()
	d, err := OpenStateDir(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, rounds, size = 8, 10, 64 << 10
	payload := func(w int) []byte { return bytes.Repeat([]byte{byte('a' + w)}, size) }
	complete := func(b []byte) bool {
		return len(b) == size && bytes.Count(b, b[:1]) == size
	}
	if err := d.WriteFile("shared", payload(0)); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := d.ReadFile("shared")
			if err != nil || !complete(b) {
				readErr <- fmt.Errorf("reader saw len %d err %v", len(b), err)
				return
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := d.WriteFile("shared", payload(w)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readErr; err != nil {
		t.Error(err)
	}
	b, err := d.ReadFile("shared")
	if err != nil {
		t.Fatal(err)
	}
	if !complete(b) {
		t.Errorf("final content is not one complete version (len %d)", len(b))
	}
	assertNoTemps(t, path)
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp file %s left in %s", e.Name(), dir)
		}
	}
}
