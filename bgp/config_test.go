package bgp

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func validConfig() Config {
	return Config{
		LocalAS: 65000, RouterID: "10.0.0.1",
		Neighbors: []Neighbor{{Address: "2001:db8::1", RemoteAS: 65000}},
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none = valid
	}{
		{"valid", func(*Config) {}, nil},
		{"valid with everything", func(c *Config) {
			c.ListenPort = -1
			c.ListenAddresses = []string{"::", "127.0.0.1"}
			c.Neighbors[0] = Neighbor{Address: "192.0.2.1", RemoteAS: 65001, Password: "s3cret", Passive: true,
				HoldTime: 9, KeepaliveInterval: 3, SourceAddress: "192.0.2.2", Port: 1179, Families: []Family{"VPNv4"}}
		}, nil},
		{"zero AS", func(c *Config) { c.LocalAS = 0 }, []string{"local_as"}},
		{"IPv6 router id", func(c *Config) { c.RouterID = "2001:db8::1" }, []string{`router_id "2001:db8::1"`}},
		{"listen port", func(c *Config) { c.ListenPort = 70000 }, []string{"listen_port 70000"}},
		{"listen address", func(c *Config) { c.ListenAddresses = []string{"eth0"} }, []string{`listen_addresses "eth0"`}},
		{"neighbour address", func(c *Config) { c.Neighbors[0].Address = "rr.example" }, []string{`address "rr.example"`}},
		{"remote AS", func(c *Config) { c.Neighbors[0].RemoteAS = 0 }, []string{"remote_as of 2001:db8::1"}},
		{"hold time 2", func(c *Config) { c.Neighbors[0].HoldTime = 2 }, []string{"hold_time 2"}},
		{"keepalive not below hold", func(c *Config) { c.Neighbors[0].HoldTime = 9; c.Neighbors[0].KeepaliveInterval = 9 }, []string{"keepalive_interval 9"}},
		{"source address", func(c *Config) { c.Neighbors[0].SourceAddress = "wan" }, []string{`source_address "wan"`}},
		{"family", func(c *Config) { c.Neighbors[0].Families = []Family{"ipv4"} }, []string{`families "ipv4"`}},
		{"password too long", func(c *Config) { c.Neighbors[0].Password = strings.Repeat("x", 81) }, []string{"password of 2001:db8::1"}},
		{"duplicate neighbour", func(c *Config) { c.Neighbors = append(c.Neighbors, c.Neighbors[0]) }, []string{"2001:db8::1 configured twice"}},
		{"every error at once", func(c *Config) {
			c.LocalAS = 0
			c.RouterID = "x"
			c.Neighbors[0].RemoteAS = 0
		}, []string{"local_as", `router_id "x"`, "remote_as"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
local_as: 65000
router_id: 10.0.0.1
listen_port: -1
neighbors:
  - address: "2001:db8::100"
    remote_as: 65000
    password: pw
    hold_time: 30
    families: [vpnv4]
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	n := c.Neighbors[0]
	if c.ListenPort != -1 || n.Password != "pw" || n.HoldTime != 30 || len(n.families()) != 1 || n.families()[0] != VPNv4 {
		t.Errorf("decoded %+v", c)
	}
	if f := (Neighbor{}).families(); len(f) != 2 {
		t.Errorf("default families = %v, want both", f)
	}
}

// TestImportsOnlySRv6 enforces DESIGN.md's dependency rule: bgp may use srv6
// from this module and nothing else (no dataplane, cwmpclient, twamp, board,
// agent), directly or through srv6.
func TestImportsOnlySRv6(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	module := strings.Fields(strings.SplitN(string(mod), "\n", 2)[0])[1]
	allowed := map[string]bool{module + "/bgp": true, module + "/srv6": true}

	seen := map[string]bool{}
	var visit func(pkg, from string)
	visit = func(pkg, from string) {
		if seen[pkg] {
			return
		}
		seen[pkg] = true
		if !allowed[pkg] {
			t.Errorf("%s imports %s: bgp may only depend on %s/srv6 from this module", from, pkg, module)
			return
		}
		p, err := build.ImportDir(filepath.Join(root, strings.TrimPrefix(pkg, module+"/")), 0)
		if err != nil {
			t.Fatalf("reading %s: %v", pkg, err)
		}
		imports := p.Imports
		if pkg == module+"/bgp" { // bgp's tests count too; srv6's are its own business
			imports = append(append(append([]string{}, p.Imports...), p.TestImports...), p.XTestImports...)
		}
		for _, imp := range imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				visit(imp, pkg)
			}
		}
	}
	visit(module+"/bgp", "")
	if !seen[module+"/srv6"] {
		t.Errorf("bgp does not import srv6: the test would not notice a broken module path")
	}
}
