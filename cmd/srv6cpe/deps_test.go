package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// The dependency guard (tailscale's deptest idea): the binaries ship on
// CPE flash, so a new module is a decision, not an accident. It fails when
//   - a module on the deny-list is linked at all;
//   - a package of ours imports a module outside directDeps;
//   - a module GoBGP drags in (viper, gRPC, ...) is imported by anything
//     but GoBGP and those modules themselves;
//   - the count of non-standard packages or modules grows past its cap;
//   - srv6cpectl links the agent, GoBGP or gRPC (the CLI stays small).

const module = "github.com/srv6cpe/srv6cpe"

// denied never belong in the binaries, whoever imports them.
var denied = []string{
	"github.com/spf13/cobra",
	"github.com/urfave/cli",
	"github.com/alecthomas/kingpin",
	"github.com/prometheus/",
	"github.com/getsentry/",
	"github.com/sirupsen/logrus",
	"github.com/grpc-ecosystem/",
	"github.com/golang/protobuf",
	"github.com/gogo/protobuf",
	"go.opentelemetry.io/",
	"k8s.io/",
	"sigs.k8s.io/",
	"github.com/aws/",
	"cloud.google.com/",
	"github.com/Azure/",
	"github.com/hashicorp/",
	"github.com/docker/",
	"go.etcd.io/",
	"github.com/mattn/go-sqlite3",
	"gorm.io/",
}

// directDeps are the modules our own packages may import (DESIGN.md,
// "Dependencies"); the last two are planned there and not yet used.
var directDeps = []string{
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"go.uber.org/zap",
	"github.com/beevik/etree",
	"github.com/icholy/digest",
	"golang.org/x/sys",
	"gopkg.in/yaml.v3",
	"github.com/osrg/gobgp/v4",
	"github.com/cilium/ebpf",
	"github.com/google/nftables",
}

// viaGoBGP are modules linked only because GoBGP's server imports them
// (pkg/server -> pkg/config/oc -> viper; api -> gRPC). Tolerated there,
// never to be used by us or pulled in by anything else.
var viaGoBGP = []string{
	"github.com/spf13/viper",
	"github.com/spf13/afero",
	"github.com/spf13/cast",
	"github.com/spf13/pflag",
	"github.com/fsnotify/fsnotify",
	"github.com/go-viper/mapstructure/v2",
	"github.com/pelletier/go-toml/v2",
	"github.com/sagikazarmark/locafero",
	"github.com/subosito/gotenv",
	"github.com/sourcegraph/conc",
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"google.golang.org/genproto/googleapis/rpc",
}

// Caps with headroom over today's figures (196 packages in 33 modules for
// srv6cpe, 19 packages for srv6cpectl): room for the planned cilium/ebpf and
// nftables, not for another GoBGP-sized tree.
const (
	maxDaemonPackages = 260
	maxDaemonModules  = 42
	maxCLIPackages    = 40
)

type pkgInfo struct {
	path, module string
	imports      []string
}

// listDeps runs go list -deps on the command and returns its non-standard
// packages.
func listDeps(t *testing.T, cmd string) map[string]pkgInfo {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool: ", err)
	}
	c := exec.Command(goTool, "list", "-deps", "-f",
		`{{if not .Standard}}{{.ImportPath}}|{{with .Module}}{{.Path}}{{end}}|{{join .Imports " "}}{{end}}`, cmd)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v: %s", cmd, err, stderr.String())
	}
	pkgs := map[string]pkgInfo{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 3 {
			continue
		}
		pkgs[f[0]] = pkgInfo{path: f[0], module: f[1], imports: strings.Fields(f[2])}
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list -deps %s listed no packages", cmd)
	}
	return pkgs
}

func inList(mod string, list []string) bool {
	for _, l := range list {
		if mod == l || strings.HasSuffix(l, "/") && strings.HasPrefix(mod, l) {
			return true
		}
	}
	return false
}

// entries names the packages outside module mod that import it: how it
// got in, for the failure message.
func entries(pkgs map[string]pkgInfo, mod string) string {
	seen := map[string]bool{}
	for _, p := range pkgs {
		if p.module == mod {
			continue
		}
		for _, i := range p.imports {
			if dep, ok := pkgs[i]; ok && dep.module == mod {
				seen[p.path+" -> "+i] = true
			}
		}
	}
	who := make([]string, 0, len(seen))
	for w := range seen {
		who = append(who, w)
	}
	sort.Strings(who)
	if len(who) > 5 {
		who = append(who[:5], fmt.Sprintf("and %d more", len(who)-5))
	}
	return strings.Join(who, ", ")
}

// modulesOf lists the modules of pkgs that match, once each, sorted.
func modulesOf(pkgs map[string]pkgInfo, match func(pkgInfo) bool) []string {
	seen := map[string]bool{}
	for _, p := range pkgs {
		if match(p) {
			seen[p.module] = true
		}
	}
	mods := make([]string, 0, len(seen))
	for m := range seen {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	return mods
}

func TestDaemonDependencies(t *testing.T) {
	pkgs := listDeps(t, "github.com/srv6cpe/srv6cpe/cmd/srv6cpe")
	modules := map[string]bool{}
	for _, p := range pkgs {
		modules[p.module] = true
		for _, imp := range p.imports {
			dep, ok := pkgs[imp]
			if !ok || dep.module == p.module { // standard library, or within one module
				continue
			}
			switch {
			case p.module == module && !inList(dep.module, directDeps):
				t.Errorf("%s imports %s (module %s), which is not one of the chosen dependencies (DESIGN.md)", p.path, imp, dep.module)
			case inList(dep.module, viaGoBGP) && p.module != "github.com/osrg/gobgp/v4" && !inList(p.module, viaGoBGP):
				t.Errorf("%s imports %s: %s is tolerated only as GoBGP's own dependency", p.path, imp, dep.module)
			}
		}
	}
	for _, m := range modulesOf(pkgs, func(p pkgInfo) bool { return inList(p.module, denied) }) {
		t.Errorf("module %s is on the deny-list; it comes in through %s", m, entries(pkgs, m))
	}
	if len(pkgs) > maxDaemonPackages {
		t.Errorf("srv6cpe links %d non-standard packages, more than the cap of %d: what pulled the new ones in?", len(pkgs), maxDaemonPackages)
	}
	if len(modules) > maxDaemonModules {
		var m []string
		for k := range modules {
			m = append(m, k)
		}
		sort.Strings(m)
		t.Errorf("srv6cpe links %d modules, more than the cap of %d: %s", len(modules), maxDaemonModules, strings.Join(m, " "))
	}
	t.Logf("srv6cpe: %d non-standard packages in %d modules", len(pkgs), len(modules))
}

func TestCLIDependencies(t *testing.T) {
	pkgs := listDeps(t, "github.com/srv6cpe/srv6cpe/cmd/srv6cpectl")
	heavy := []string{"github.com/osrg/gobgp/v4", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/spf13/viper", "github.com/beevik/etree"}
	for _, m := range modulesOf(pkgs, func(p pkgInfo) bool { return inList(p.module, heavy) || inList(p.module, denied) }) {
		t.Errorf("srv6cpectl links module %s; it comes in through %s", m, entries(pkgs, m))
	}
	for _, p := range pkgs {
		for _, ours := range []string{"/agent", "/bgp", "/cwmpclient", "/twamp", "/dataplane"} {
			if p.path == module+ours || strings.HasPrefix(p.path, module+ours+"/") {
				t.Errorf("srv6cpectl links %s: the CLI talks to the daemon over the control socket instead", p.path)
			}
		}
	}
	if len(pkgs) > maxCLIPackages {
		t.Errorf("srv6cpectl links %d non-standard packages, more than the cap of %d", len(pkgs), maxCLIPackages)
	}
	t.Logf("srv6cpectl: %d non-standard packages", len(pkgs))
}

// TestBuildsFor32BitBoards compiles every package for linux/arm (GOARM=7)
// and linux/mipsle: an untyped constant past 2^31 in an int comparison
// builds on amd64 and breaks make cross only there.
func TestBuildsFor32BitBoards(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the module twice; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool: ", err)
	}
	for _, env := range [][]string{{"GOARCH=arm", "GOARM=7"}, {"GOARCH=mipsle", "GOMIPS=softfloat"}} {
		c := exec.Command(goTool, "build", "github.com/srv6cpe/srv6cpe/...")
		c.Env = append(append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0"), env...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("%s go build ./...: %v\n%s", strings.Join(env, " "), err, out)
		}
	}
}
