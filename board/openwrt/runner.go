package openwrt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs a system command and returns its standard output. A failed
// command's error carries what it printed on standard error.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec, found on PATH.
type ExecRunner struct{}

// maxStderr bounds how much of a tool's standard error goes into an error.
const maxStderr = 1024

// Run runs name with args until it exits or ctx ends (the process is then
// killed). A non-zero exit is an *exec.ExitError wrapped with the command
// line and its trimmed standard error.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), commandError(name, args, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// commandError names the command, keeps err for errors.As, and appends the
// tool's own explanation.
func commandError(name string, args []string, err error, stderr []byte) error {
	msg := strings.TrimSpace(string(stderr))
	if len(msg) > maxStderr {
		msg = msg[:maxStderr] + "..."
	}
	line := strings.TrimSpace(name + " " + strings.Join(args, " "))
	if msg == "" {
		return fmt.Errorf("%s: %w", line, err)
	}
	return fmt.Errorf("%s: %w: %s", line, err, msg)
}

// errBadPath is returned for file arguments a tool would take as an option.
var errBadPath = errors.New("want an absolute file path")

func checkPath(what, p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%s %q: %w", what, p, errBadPath)
	}
	return nil
}
