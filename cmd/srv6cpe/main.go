// Command srv6cpe is the CPE daemon: it derives the SRv6 locator and service
// SIDs from the delegated IPv6 prefix and keeps them programmed in the
// kernel.
//
//	srv6cpe --config /etc/srv6cpe.yaml [--state-dir DIR] [--log-level LEVEL] [--acs-url URL] [--control-socket PATH]
//
// With an ACS URL (acs.url in the file, or --acs-url) it runs the TR-069
// client: it Informs the ACS at start and serves its requests.
//
// SIGHUP reloads the config file (a bad file is logged and the running
// config stays). SIGTERM and SIGINT stop the daemon with exit status 0 and
// leave the routes in the kernel; the next start reconciles them without a
// flush. Bad flags or a bad config exit with status 2 and one line on stderr
// that names the problem; other failures exit with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/srv6cpe/srv6cpe/agent"
	"github.com/srv6cpe/srv6cpe/board"
)

const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad flags or config
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// flags are the command line; the overrides apply to every (re)load.
type flags struct {
	config, stateDir, logLevel, acsURL string
	controlSocket                      string
}

func (f flags) load() (agent.Config, error) {
	cfg, err := agent.LoadConfig(f.config)
	if err != nil {
		return agent.Config{}, err
	}
	if f.stateDir != "" {
		cfg.StateDir = f.stateDir
	}
	if f.logLevel != "" {
		cfg.LogLevel = f.logLevel
	}
	if f.acsURL != "" {
		cfg.ACS.URL = f.acsURL
	}
	if f.controlSocket != "" {
		cfg.ControlSocket = f.controlSocket
	}
	if cfg.ControlSocket == "" {
		cfg.ControlSocket = agent.DefaultControlSocket
	}
	// The overrides must be valid too.
	if err := cfg.Validate(); err != nil {
		return agent.Config{}, err
	}
	return cfg, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	// Catch SIGHUP from the start: its default action would kill us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var f flags
	fs := flag.NewFlagSet("srv6cpe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "config `FILE` (YAML; required)")
	fs.StringVar(&f.stateDir, "state-dir", "", "state `DIR` (overrides state_dir)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides log_level)")
	fs.StringVar(&f.acsURL, "acs-url", "", "TR-069 ACS `URL` (overrides acs.url)")
	fs.StringVar(&f.controlSocket, "control-socket", "", "unix socket `PATH` srv6cpectl talks to (overrides control_socket; default "+agent.DefaultControlSocket+")")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *version {
		fmt.Fprintln(stdout, "srv6cpe", board.Version)
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "srv6cpe: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if f.config == "" {
		fmt.Fprintln(stderr, "srv6cpe: --config FILE is required")
		return exitUsage
	}
	cfg, err := f.load()
	if err != nil {
		fmt.Fprintf(stderr, "srv6cpe: %s\n", oneLine(err))
		return exitUsage
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
	level, _ := zap.ParseAtomicLevel(cfg.LogLevel) // Validate checked it
	log := newLogger(stderr, level)
	defer func() { _ = log.Sync() }()

	ag, err := agent.New(cfg, agent.WithLogger(log), agent.WithConfigFile(f.config, f.load))
	if err != nil {
		fmt.Fprintf(stderr, "srv6cpe: %s\n", oneLine(err))
		if errors.Is(err, agent.ErrKernel) {
			return exitUsage
		}
		return exitFailed
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		reloadOnHUP(ctx, hup, f, ag, level, log)
	}()
	err = ag.Run(ctx)
	stop()
	<-reloaderDone
	if err != nil {
		log.Error("srv6cpe failed", zap.Error(err))
		return exitFailed
	}
	log.Info("srv6cpe stopped")
	return exitOK
}

// reloadOnHUP re-reads the config file on every SIGHUP until ctx ends.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, f flags, ag *agent.Agent, level zap.AtomicLevel, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		log.Info("SIGHUP: reloading the config", zap.String("file", f.config))
		cfg, err := f.load()
		if err == nil {
			err = ag.Reload(cfg)
		}
		if err != nil {
			if !errors.Is(err, agent.ErrStopped) {
				log.Error("config reload failed; the running config stays", zap.String("error", oneLine(err)))
			}
			continue
		}
		if l, err := zapcore.ParseLevel(cfg.LogLevel); err == nil {
			level.SetLevel(l)
		}
	}
}

// newLogger logs in console format, which reads well on a CPE's syslog.
func newLogger(w io.Writer, level zap.AtomicLevel) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}

// oneLine joins a multi-error's lines so the problem fits one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
