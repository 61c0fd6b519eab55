package cwmpschema

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool finds ../shared/tools/cwmp-validate next to the module root. Without
// it or without xmllint the test is skipped, except under CI=true, where the
// schema check must run and the test fails instead.
func Tool(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root (go.mod) not found above the test directory")
		}
		dir = parent
	}
	tool := filepath.Join(dir, "..", "shared", "tools", "cwmp-validate")
	_, toolErr := os.Stat(tool)
	_, lintErr := exec.LookPath("xmllint")
	if toolErr != nil || lintErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("schema validation unavailable (tool %s: %v, xmllint: %v)", tool, toolErr, lintErr)
		}
		t.Skipf("schema validation unavailable: cwmp-validate at %s (%v) or xmllint (%v) missing", tool, toolErr, lintErr)
	}
	return tool
}

// Validate checks every message against the schema of CWMP version
// ("1-0", "1-2" or "1-4") and returns the validator's complaint, if any.
func Validate(t testing.TB, version string, msgs ...[]byte) error {
	t.Helper()
	tool := Tool(t)
	dir := t.TempDir()
	files := make([]string, 0, len(msgs))
	for i, m := range msgs {
		f := filepath.Join(dir, fmt.Sprintf("m%03d.xml", i))
		if err := os.WriteFile(f, m, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := exec.Command(tool, append([]string{"--version", version}, files...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cwmp-validate --version %s: %w\n%s", version, err, out)
	}
	return nil
}
