package board

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix marks files being written. Names starting with "." are refused
// for state files, so a temp file can never be mistaken for one.
const tempPrefix = ".tmp-"

// maxStateNameLen leaves room for the temp prefix and random suffix within
// the 255-byte file name limit of Linux file systems.
const maxStateNameLen = 200

// StateDir is the directory where the agent keeps what must survive a
// reboot or a power cut. Every write is atomic: a reader, or the next boot,
// sees either the old content or the new one, never a mix or a truncation.
// It is safe for concurrent use; concurrent writes of one name leave exactly
// one of the written versions.
type StateDir struct {
	path string
}

// OpenStateDir opens the state directory at path, creating it (mode 0700,
// it may hold credentials) if needed, and removes temp files left by a
// write that a crash or power cut interrupted.
func OpenStateDir(path string) (*StateDir, error) {
	if path == "" {
		return nil, errors.New("state dir: empty path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("state dir %s: not a directory", path)
	}
	d := &StateDir{path: path}
	if err := d.removeTemps(); err != nil {
		return nil, err
	}
	return d, nil
}

// Path is the directory's path.
func (d *StateDir) Path() string { return d.path }

// removeTemps deletes interrupted writes. Their content may be partial; the
// real file they were meant to replace is still intact.
func (d *StateDir) removeTemps() error {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", d.path, err)
	}
	removed := false
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(d.path, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state dir %s: removing leftover %s: %w", d.path, e.Name(), err)
		}
		removed = true
	}
	if removed {
		return syncDir(d.path)
	}
	return nil
}

// validName accepts plain file names: no path separators, not "." or "..",
// not hidden (the temp file namespace), no NUL, at most 200 bytes.
func validName(name string) error {
	switch {
	case name == "":
		return errors.New("state file name is empty")
	case strings.ContainsAny(name, `/\`+"\x00"):
		return fmt.Errorf("state file name %q: path separators and NUL are not allowed", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("state file name %q: must not start with a dot", name)
	case len(name) > maxStateNameLen:
		return fmt.Errorf("state file name %q: %d bytes, at most %d allowed", name, len(name), maxStateNameLen)
	}
	return nil
}

// writeStepHook, when set by a crash test, runs between the steps of
// WriteFile so the test can kill the process at each one. Nil in production.
var writeStepHook func(step string)

func writeStep(step string) {
	if writeStepHook != nil {
		writeStepHook(step)
	}
}

// WriteFile replaces the file name with data atomically and durably: it
// writes a temp file in the same directory, fsyncs it, renames it over
// name and fsyncs the directory. When it returns nil the new content
// survives a power cut.
func (d *StateDir) WriteFile(name string, data []byte) (err error) {
	if err := validName(name); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.path, tempPrefix+name+"-*")
	if err != nil {
		return fmt.Errorf("state file %s: %w", name, err)
	}
	tmp := f.Name()
	writeStep("created")
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("state file %s: write: %w", name, err)
	}
	writeStep("written")
	if err := f.Sync(); err != nil {
		return fmt.Errorf("state file %s: fsync: %w", name, err)
	}
	writeStep("synced")
	if err := f.Close(); err != nil {
		return fmt.Errorf("state file %s: close: %w", name, err)
	}
	writeStep("closed")
	if err := os.Rename(tmp, filepath.Join(d.path, name)); err != nil {
		return fmt.Errorf("state file %s: rename: %w", name, err)
	}
	writeStep("renamed")
	if err := syncDir(d.path); err != nil {
		return err
	}
	writeStep("dirsynced")
	return nil
}

// ReadFile returns the content of name. A file that was never written
// gives an error matching os.ErrNotExist.
func (d *StateDir) ReadFile(name string) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.path, name))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", name, err)
	}
	return b, nil
}

// Remove deletes name durably (factory reset). Removing a file that does
// not exist is not an error.
func (d *StateDir) Remove(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(d.path, name)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("state file %s: %w", name, err)
	}
	return syncDir(d.path)
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("state dir %s: fsync: %w", dir, err)
	}
	return nil
}
