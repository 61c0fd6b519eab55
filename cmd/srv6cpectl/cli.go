package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses. Scripts tell a mistyped command line from a value the
// agent's rules reject.
const (
	exitOK       = 0
	exitBadValue = 1 // the command line was well formed but a value is wrong
	exitUsage    = 2 // unknown command or flag, missing flag or argument
)

const prog = "srv6cpectl"

// command is a node of the command tree: a group holds subcommands, a leaf
// ("sid derive") runs. A group with flags ("sid") also runs itself when no
// subcommand follows.
type command struct {
	name     string
	summary  string // one line for the command list
	synopsis string // arguments after the command path, for "usage:"
	// flags declares the leaf's flags on fs and returns the function that runs
	// it once fs has parsed the command line.
	// The runner writes its result to out, and only when it succeeds.
	flags func(fs *flag.FlagSet) func(out io.Writer) error
	// args names the positional arguments the leaf takes after its flags
	// (its runner reads them from fs).
	args []string
	subs []*command
}

// usageError is a malformed command line (exit 2); any other error a command
// returns is a bad value (exit 1).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

var commandTree = &command{
	name: prog,
	subs: []*command{
		{
			name:     "status",
			summary:  "the agent's state: prefix, locator, capabilities, fallback, last apply, End.TSF",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathStatus, human: renderStatus}),
		},
		{
			name:     "sid",
			summary:  "the locator and service SIDs the agent derived",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathStatus, human: renderSIDs, asJSON: sidJSON}),
			subs: []*command{
				sidDeriveCommand,
			},
		},
		{
			name:     "routes",
			summary:  "the routes the dataplane holds in the kernel (its own route protocol only)",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathRoutes, human: renderRoutes}),
		},
		{
			name:     "bgp",
			summary:  "BGP peers and the VPN routes exported and imported",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathBGP, human: renderBGP}),
		},
		{
			name:     "stamp",
			summary:  "STAMP sessions, metrics and notifications",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathSTAMP, human: renderSTAMP}),
		},
		{
			name:     "paths",
			summary:  "dynamic SRv6 paths: binding SID, state, measured latency",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathPaths, human: renderPaths}),
		},
		{
			name:     "policy",
			summary:  "the SRv6 policies: constituent paths, their measurements, each service's choice",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathPolicy, human: renderPolicy}),
			subs:     []*command{policyRestoreCommand},
		},
		{
			name:     "cwmp",
			summary:  "the CWMP client: ACS, pending Inform events, transfers",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{path: pathCWMP, human: renderCWMP}),
		},
		{
			name:     "refresh",
			summary:  "make the agent re-read the delegated prefix (OpenWrt hotplug)",
			synopsis: "[--json] [--socket PATH]",
			flags:    daemonCommand(view{method: "POST", path: pathRefresh, human: renderRefresh}),
		},
		openwrtConfigCommand,
		{
			name:     "help",
			summary:  "show help for a command",
			synopsis: "[command ...]",
		},
	},
}

// run executes the command line args and returns the exit status. On
// failure it writes exactly one line to stderr and nothing to stdout.
func run(args []string, stdout, stderr io.Writer) int {
	fail := func(path []string, err error) int {
		code, hint := exitBadValue, ""
		var ue usageError
		if errors.As(err, &ue) {
			code, hint = exitUsage, fmt.Sprintf(" (see '%s')", strings.Join(append([]string{prog, "help"}, path[1:]...), " "))
		}
		var down daemonDown
		if errors.As(err, &down) {
			path = path[:1] // no command can work: the message is the program's
		}
		fmt.Fprintf(stderr, "%s: %s%s\n", strings.Join(path, " "), oneLine(err.Error()), hint)
		return code
	}

	if len(args) > 0 && (args[0] == "help" || isHelpFlag(args[0])) {
		node, path, rest := resolve(args[1:])
		if len(rest) > 0 {
			return fail([]string{prog}, usagef("unknown command %q", strings.Join(append(path[1:], rest[0]), " ")))
		}
		writeUsage(stdout, node, path)
		return exitOK
	}

	node, path, rest := resolve(args)
	runsItself := node.flags != nil && (len(rest) == 0 || strings.HasPrefix(rest[0], "-") && !isHelpFlag(rest[0]))
	if len(node.subs) > 0 && !runsItself { // a group: its subcommand is missing or unknown
		if len(rest) == 0 {
			return fail(path, usagef("missing command"))
		}
		if isHelpFlag(rest[0]) {
			writeUsage(stdout, node, path)
			return exitOK
		}
		return fail(path, usagef("unknown command %q", rest[0]))
	}

	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported here, on one line
	exec := node.flags(fs)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout, node, path)
			return exitOK
		}
		return fail(path, usageError{err.Error()})
	}
	if n := len(node.args); fs.NArg() > n {
		return fail(path, usagef("unexpected argument %q", fs.Arg(n)))
	} else if fs.NArg() < n {
		return fail(path, usagef("missing argument %s", node.args[fs.NArg()]))
	}
	if err := exec(stdout); err != nil {
		return fail(path, err)
	}
	return exitOK
}

// resolve walks args down the command tree as far as names match and returns
// the node reached, its path from the root, and the arguments left.
func resolve(args []string) (*command, []string, []string) {
	node, path := commandTree, []string{prog}
	for len(args) > 0 {
		next := node.sub(args[0])
		if next == nil {
			break
		}
		node, path, args = next, append(path, next.name), args[1:]
	}
	return node, path, args
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// oneLine keeps the promise of a single stderr line whatever a value held.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

// writeUsage prints the help of node: its synopsis and flags for a leaf, the
// commands under it for a group.
func writeUsage(w io.Writer, node *command, path []string) {
	name := strings.Join(path, " ")
	if len(node.subs) > 0 && node.flags != nil { // a group that runs itself
		writeLeafUsage(w, node, name, fmt.Sprintf("       %s <command> [arguments]\n", name))
		fmt.Fprintf(w, "\ncommands:\n")
		for _, line := range listCommands(node, nil) {
			fmt.Fprintln(w, line)
		}
		return
	}
	if len(node.subs) > 0 {
		if node == commandTree {
			fmt.Fprintf(w, "%s is the operator CLI of the srv6cpe SRv6 CPE agent.\n\n", prog)
		}
		fmt.Fprintf(w, "usage: %s <command> [arguments]\n\ncommands:\n", name)
		for _, line := range listCommands(node, nil) {
			fmt.Fprintln(w, line)
		}
		fmt.Fprintf(w, "\nRun '%s help <command>' for details.\n", prog)
		return
	}
	writeLeafUsage(w, node, name, "")
}

// writeLeafUsage prints a runnable command's synopsis (and more usage
// lines) and flags.
func writeLeafUsage(w io.Writer, node *command, name, more string) {
	fmt.Fprintf(w, "usage: %s %s\n%s\n%s%s.\n", name, node.synopsis, more, strings.ToUpper(node.summary[:1]), node.summary[1:])
	if node.flags == nil {
		return
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	node.flags(fs)
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// listCommands returns one aligned line per runnable command under c.
func listCommands(c *command, prefix []string) []string {
	var lines []string
	for _, s := range c.subs {
		p := append(append([]string(nil), prefix...), s.name)
		if len(s.subs) > 0 && s.flags != nil {
			lines = append(lines, fmt.Sprintf("  %-14s %s", strings.Join(p, " "), s.summary))
		}
		if len(s.subs) > 0 {
			lines = append(lines, listCommands(s, p)...)
			continue
		}
		lines = append(lines, fmt.Sprintf("  %-14s %s", strings.Join(p, " "), s.summary))
	}
	return lines
}
