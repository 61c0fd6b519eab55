package agent

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEPolicyExample: the policies: example in README.md is a valid
// section of a config (the lab's cpe1 with its own policies replaced).
func TestREADMEPolicyExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.HasPrefix(m[1], "policies:") {
			example = m[1]
		}
	}
	if example == "" {
		t.Fatal("README.md has no ```yaml block starting with policies:")
	}
	lab, err := os.ReadFile("../examples/lab/cpe1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base, _, ok := strings.Cut(string(lab), "\npolicies:")
	if !ok {
		t.Fatal("examples/lab/cpe1.yaml has no policies: section")
	}
	cfg, err := ParseConfig([]byte(base + "\n" + example))
	if err != nil {
		t.Fatalf("README's policies example: %v", err)
	}
	if len(cfg.Policies) != 1 || len(cfg.Policies[0].Flows) != 4 {
		t.Fatalf("README's policies example read as %+v", cfg.Policies)
	}
}
