package cwmpclient

import (
	"strings"
	"testing"

	"github.com/srv6cpe/srv6cpe/internal/cwmpschema"
)

// mustValidate checks one envelope against the schema of its CWMP
// namespace; the test fails when the message does not validate.
func mustValidate(t testing.TB, msg []byte) {
	t.Helper()
	version := "1-4"
	switch {
	case strings.Contains(string(msg), NS10):
		version = "1-0"
	case strings.Contains(string(msg), NS11):
		t.Fatalf("no 1-1 schema entry point; emit 1-0 or 1-2")
	}
	if err := cwmpschema.Validate(t, version, msg); err != nil {
		t.Fatalf("the schema rejected the message: %v\nmessage:\n%s", err, msg)
	}
}
