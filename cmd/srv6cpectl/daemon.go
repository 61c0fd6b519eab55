package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// defaultSocket is agent.DefaultControlSocket. The CLI does not import the
// agent, which would link GoBGP into it; a test checks the two agree.
const defaultSocket = "/run/srv6cpe/control.sock"

// Control API paths (agent.Control*).
const (
	pathStatus  = "/v1/status"
	pathRoutes  = "/v1/routes"
	pathBGP     = "/v1/bgp"
	pathCWMP    = "/v1/cwmp"
	pathSTAMP   = "/v1/stamp"
	pathPaths   = "/v1/paths"
	pathPolicy  = "/v1/policy"
	pathRefresh = "/v1/refresh"
)

// requestTimeout bounds one exchange with the daemon: reading the kernel's
// routes back is the slowest answer.
const requestTimeout = 15 * time.Second

// maxAnswer caps what is read from the daemon.
const maxAnswer = 16 << 20

// daemonDown is the daemon not listening; it is reported on its own line
// without the command's name, since no command can work.
type daemonDown struct{ why string }

func (e daemonDown) Error() string { return "the srv6cpe daemon is not running (" + e.why + ")" }

// daemonFlags are the flags of every command that asks the daemon.
type daemonFlags struct {
	socket string
	json   bool
}

func addDaemonFlags(fs *flag.FlagSet) *daemonFlags {
	d := &daemonFlags{}
	fs.StringVar(&d.socket, "socket", defaultSocket, "the daemon's control socket `PATH`")
	fs.BoolVar(&d.json, "json", false, "print JSON (one line) for scripts instead of tables")
	return d
}

// call sends one request to the daemon and returns its JSON answer.
func call(socket, method, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://srv6cpe"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, dialError(socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the daemon's answer to %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return nil, fmt.Errorf("the daemon answered %s: %s", resp.Status, e.Error)
	}
	return body, nil
}

func dialError(socket string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return daemonDown{"no control socket at " + socket}
	case errors.Is(err, syscall.ECONNREFUSED):
		return daemonDown{"nobody answers on the control socket " + socket}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("permission denied on the control socket %s (it is root's: run as root)", socket)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the daemon did not answer on %s within %s", socket, requestTimeout)
	}
	return fmt.Errorf("control socket %s: %w", socket, err)
}

// view is a daemon command: what it asks and how it prints the answer.
type view struct {
	method string // GET unless set
	path   string
	// human renders the answer as tables; asJSON, when set, reshapes it
	// for --json (default: the daemon's JSON as it came).
	human  func(w io.Writer, body []byte) error
	asJSON func(body []byte) ([]byte, error)
}

// daemonCommand is a leaf (or a runnable group) that asks the daemon.
func daemonCommand(v view) func(fs *flag.FlagSet) func(io.Writer) error {
	return func(fs *flag.FlagSet) func(io.Writer) error {
		d := addDaemonFlags(fs)
		return func(out io.Writer) error {
			method := v.method
			if method == "" {
				method = http.MethodGet
			}
			body, err := call(d.socket, method, v.path)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			switch {
			case d.json && v.asJSON != nil:
				b, err := v.asJSON(body)
				if err != nil {
					return err
				}
				buf.Write(b)
			case d.json:
				if err := json.Compact(&buf, body); err != nil {
					return fmt.Errorf("the daemon's answer is not JSON: %w", err)
				}
				buf.WriteByte('\n')
			default:
				if err := v.human(&buf, body); err != nil {
					return err
				}
			}
			_, err = out.Write(buf.Bytes())
			return err
		}
	}
}

// decode reads the daemon's answer into v, naming what was asked.
func decode(body []byte, what string, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the daemon's %s answer does not decode: %w", what, err)
	}
	return nil
}
