// Command labctl is the lab's SD-WAN controller (ITU-T Q.Suppl.79 clause
// 8): a TR-069 ACS that registers the CPEs, configures SRv6 and an L3VPN
// service on each, creates the monitoring tasks between them, keeps the
// information table of §8.3 and, on an IP change report, tells the other
// device of the task about the new address.
//
//	labctl --listen [::]:7548 --config scripts/labctl/lab.yaml --state /run/srv6cpe-lab/ctl/state.json
//
// The state file (JSON, rewritten atomically after every change) is what
// scripts/lab.sh and the end-to-end test read. SIGTERM or SIGINT stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/cwmpclient/cwmptest"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("labctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "[::]:7548", "address the ACS listens on")
	cfgPath := fs.String("config", "", "controller config (YAML)")
	statePath := fs.String("state", "", "where to write the state (JSON)")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || *statePath == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: labctl --listen ADDR --config FILE --state FILE")
		return 2
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "labctl: %v\n", err)
		return 2
	}
	zc := zap.NewProductionConfig()
	zc.Encoding, zc.Sampling = "console", nil
	zc.EncoderConfig = zap.NewDevelopmentEncoderConfig()
	if *debug {
		zc.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintf(stderr, "labctl: logger: %v\n", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "labctl: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c := NewController(cfg, *statePath, ln.Addr().String(), cwmptest.ConnectionRequest, log)
	if err := Serve(ctx, ln, c, log); err != nil {
		log.Error("labctl stopped", zap.Error(err))
		return 1
	}
	return 0
}
