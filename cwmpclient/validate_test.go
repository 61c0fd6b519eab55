package cwmpclient

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// validator finds ../shared/tools/cwmp-validate relative to the module
// root. Without xmllint the schema check is skipped, except under CI=true
// where it must run.
func validator(t testing.TB) string {
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

// mustValidate writes one envelope to a temp file and runs cwmp-validate
// on it against the schema of its CWMP namespace; the test fails when the
// message does not validate.
func mustValidate(t testing.TB, msg []byte) {
	t.Helper()
	tool := validator(t)
	version := "1-4"
	switch {
	case strings.Contains(string(msg), NS10):
		version = "1-0"
	case strings.Contains(string(msg), NS11):
		t.Fatalf("no 1-1 schema entry point; emit 1-0 or 1-2")
	}
	f := filepath.Join(t.TempDir(), "msg.xml")
	if err := os.WriteFile(f, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "--version", version, f).CombinedOutput()
	if err != nil {
		t.Fatalf("cwmp-validate (%s) rejected the message: %v\n%s\nmessage:\n%s", version, err, out, msg)
	}
}
