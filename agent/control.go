package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/cwmpclient"
	"github.com/srv6cpe/srv6cpe/dataplane"
)

// DefaultControlSocket is where the daemon serves its control API when
// neither control_socket nor --control-socket names another path. A
// library user gets no control socket unless Config.ControlSocket is set.
const DefaultControlSocket = "/run/srv6cpe/control.sock"

// The control API: HTTP/1.1 over the unix socket Config.ControlSocket,
// answering JSON. Every path is read-only but ControlRefresh. Errors are
// {"error": "..."} with a 4xx/5xx status. Operators can use it without
// srv6cpectl: curl --unix-socket /run/srv6cpe/control.sock http://srv6cpe/v1/status
const (
	ControlStatus  = "/v1/status"  // Status
	ControlRoutes  = "/v1/routes"  // ControlRoutesView: what the dataplane holds
	ControlBGP     = "/v1/bgp"     // ControlBGPView
	ControlCWMP    = "/v1/cwmp"    // ControlCWMPView
	ControlSTAMP   = "/v1/stamp"   // ControlSTAMPView
	ControlPaths   = "/v1/paths"   // ControlPathsView
	ControlPolicy  = "/v1/policy"  // ControlPolicyView
	ControlRefresh = "/v1/refresh" // POST: the prefix source re-reads the WAN state
	// ControlPolicyRestore is POST ?policy=NAME&service=NAME: the manual
	// restore of a service (Agent.RestorePolicyService).
	ControlPolicyRestore = "/v1/policy/restore"
)

// ControlPolicyView is the SRv6 policies (Agent.PolicyStatus).
type ControlPolicyView struct {
	Policies []PolicyStatus `json:"policies"`
}

// maxSocketPath is sun_path's 108 bytes less the terminating NUL.
const maxSocketPath = 107

// ControlRoutesView is what the dataplane reads back from the kernel: only
// the routes the agent owns (its route protocol), SIDs in travel order.
type ControlRoutesView struct {
	Locators  []netip.Prefix     `json:"locators"`
	VRFs      []ControlVRF       `json:"vrfs"`
	LocalSIDs []ControlLocalSID  `json:"local_sids"`
	BSIDs     []ControlLocalSID  `json:"bsids"`
	Encaps    []ControlEncapView `json:"encaps"`
}

// ControlVRF is a VRF device and its table.
type ControlVRF struct {
	Name  string `json:"name"`
	Table int    `json:"table"`
}

// ControlLocalSID is one seg6local route.
type ControlLocalSID struct {
	SID      netip.Addr   `json:"sid"`
	Behavior string       `json:"behavior"`
	Table    int          `json:"table,omitempty"`
	VRF      string       `json:"vrf,omitempty"`
	NH4      netip.Addr   `json:"nh4,omitzero"`
	NH6      netip.Addr   `json:"nh6,omitzero"`
	Dev      string       `json:"dev,omitempty"`
	Segments []netip.Addr `json:"segments,omitempty"`
}

// ControlEncapView is one seg6 encap route.
type ControlEncapView struct {
	Prefix   netip.Prefix `json:"prefix"`
	Table    int          `json:"table,omitempty"`
	VRF      string       `json:"vrf,omitempty"`
	Mode     string       `json:"mode"` // encap or encap.red
	Segments []netip.Addr `json:"segments"`
	Dev      string       `json:"dev,omitempty"`
}

// ControlBGPView is the BGP speaker; Status is nil when the config has no
// bgp section.
type ControlBGPView struct {
	Configured bool       `json:"configured"`
	Status     *BGPStatus `json:"status,omitempty"`
}

// ControlSTAMPView is the STAMP side: the monitoring tasks (Q.Suppl.79
// §8.3) with their sessions' state and last report.
type ControlSTAMPView struct {
	Tasks []MonitorTaskStatus `json:"tasks"`
}

// ControlCWMPView is what the agent knows of its CWMP client from the state
// dir: the events the next Inform carries and the queued or unacknowledged
// transfers (without their credentials).
type ControlCWMPView struct {
	// ACSURL is the acs.url the client last started with ("" = never).
	ACSURL        string                `json:"acs_url"`
	PendingEvents []ControlCWMPEvent    `json:"pending_events"`
	Transfers     []ControlCWMPTransfer `json:"transfers"`
}

// ControlCWMPEvent is one Inform EventStruct.
type ControlCWMPEvent struct {
	Code       string `json:"code"`
	CommandKey string `json:"command_key,omitempty"`
}

// ControlCWMPTransfer is one Download or Upload the client keeps.
type ControlCWMPTransfer struct {
	ID           uint64    `json:"id"`
	Direction    string    `json:"direction"` // download or upload
	FileType     string    `json:"file_type"`
	CommandKey   string    `json:"command_key,omitempty"`
	State        string    `json:"state"` // queued, in_progress, completed
	NotBefore    time.Time `json:"not_before,omitzero"`
	CompleteTime time.Time `json:"complete_time,omitzero"`
	FaultCode    int       `json:"fault_code,omitempty"`
	FaultString  string    `json:"fault_string,omitempty"`
}

// ControlPathsView answers ControlPaths: the dynamic paths (Path.{i}) as
// the controller reads them.
type ControlPathsView struct {
	Paths []ControlPathView `json:"paths"`
}

// ControlPathView is one dynamic path: its configuration, ConfigStatus,
// ErrorDetails and ActivePathInfo.
type ControlPathView struct {
	// Instance is the Path.{i} instance number (0 until the CWMP client
	// has numbered the file's paths).
	Instance       uint32       `json:"instance,omitempty"`
	ID             string       `json:"id"`
	Source         string       `json:"source,omitempty"`
	Destination    string       `json:"destination,omitempty"`
	Segments       []netip.Addr `json:"segments"`
	BSID           netip.Addr   `json:"bsid,omitzero"`
	Priority       uint32       `json:"priority"`
	Status         string       `json:"status"`
	Details        string       `json:"details,omitempty"`
	ActivePathInfo string       `json:"active_path_info,omitempty"`
}

// validateControl checks control_socket: an absolute path that fits a unix
// socket address with room for the temporary name it is bound under.
func (c *Config) validateControl() []error {
	p := c.ControlSocket
	switch {
	case p == "":
		return nil
	case !filepath.IsAbs(p):
		return []error{fmt.Errorf("control_socket: %q is not an absolute path", p)}
	case p != filepath.Clean(p) || strings.HasSuffix(p, "/"):
		return []error{fmt.Errorf("control_socket: %q is not a clean path (did you mean %q?)", p, filepath.Clean(p))}
	case len(tempSocketPath(p, math.MaxUint32)) > maxSocketPath:
		return []error{fmt.Errorf("control_socket: %q is too long for a unix socket (at most %d bytes with its temporary name)", p, maxSocketPath)}
	}
	return nil
}

// tempSocketPath is the n-th name the socket is bound under before it is
// made 0600 and renamed into place, so it never exists with looser
// permissions under its real name. The pid and n keep agents in one or
// several processes apart.
func tempSocketPath(p string, n uint64) string {
	return filepath.Join(filepath.Dir(p), fmt.Sprintf(".ctl%d.%d", os.Getpid(), n))
}

// tempSocketSeq numbers the temporary names of this process.
var tempSocketSeq atomic.Uint64

// startControl serves the control API on path until ctx ends; the channel
// closes once the server is shut down and its socket file removed. An
// empty path serves nothing. A socket that cannot be set up is logged and
// the agent runs on without it: the CLI is a convenience, forwarding is not.
func (a *Agent) startControl(ctx context.Context, path string) <-chan struct{} {
	done := make(chan struct{})
	if path == "" {
		close(done)
		return done
	}
	log := a.log.Named("control").With(zap.String("socket", path))
	ln, err := listenControl(path)
	if err != nil {
		log.Error("control socket not served; srv6cpectl cannot reach this agent", zap.Error(err))
		close(done)
		return done
	}
	srv := &http.Server{
		Handler:           a.controlHandler(log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          zap.NewStdLog(log),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control socket stopped serving", zap.Error(err))
		}
	}()
	log.Info("control socket serving")
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-served
	}()
	return done
}

// controlListener removes its socket file on Close, unless another process
// has put its own socket there since.
type controlListener struct {
	net.Listener
	path string
	fi   os.FileInfo
	uid  int
}

// listenControl binds the socket under a temporary name, makes it 0600 and
// renames it over path: a stale socket left by a crash is replaced in one
// step. A live one (another agent answers on it) is left alone and is an
// error, as is anything at path that is not a socket. The directory is
// created 0700 when missing; an existing one is used as it is.
func listenControl(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("control socket directory %s is not a directory", dir)
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}
	tmp := tempSocketPath(path, tempSocketSeq.Add(1))
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("control socket %q: path too long for a unix socket", path)
	}
	_ = os.Remove(tmp) // left by a crashed process that had our pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the file is renamed; Close removes it by its real name
	fail := func(err error) (net.Listener, error) {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &controlListener{Listener: ln, path: path, fi: fi, uid: os.Getuid()}, nil
}

// checkStale returns nil when path is free or holds a socket nobody
// listens on.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s: a %s is there, not a socket; not replacing it", path, fileKind(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("control socket %s: another process serves it (is a second srv6cpe running?)", path)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil // stale: the agent that bound it is gone
	}
	return fmt.Errorf("control socket %s: %w", path, err)
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// Accept refuses peers of another uid than the agent's or root: the
// socket's mode already does, unless someone loosened it.
func (l *controlListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if uid, err := peerUID(c); err == nil && (uid == 0 || uid == l.uid) {
			return c, nil
		}
		_ = c.Close()
	}
}

func (l *controlListener) Close() error {
	err := l.Listener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		if rerr := os.Remove(l.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// controlHandler is the API. Handlers only read what is safe to read from
// another goroutine: Status (under its lock), the dataplane's Installed
// (its own lock), the state dir's files (written atomically), and the
// prefix source's Refresh (never blocks).
func (a *Agent) controlHandler(log *zap.Logger) http.Handler {
	mux := http.NewServeMux()
	get := func(path string, f func(r *http.Request) (any, error)) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			v, err := f(r)
			if err != nil {
				log.Warn("control request failed", zap.String("path", path), zap.Error(err))
				writeControlJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			writeControlJSON(w, http.StatusOK, v)
		})
	}
	get(ControlStatus, func(*http.Request) (any, error) { return a.Status(), nil })
	get(ControlRoutes, a.controlRoutes)
	get(ControlBGP, func(*http.Request) (any, error) {
		st := a.Status()
		return ControlBGPView{Configured: st.BGP != nil, Status: st.BGP}, nil
	})
	get(ControlCWMP, func(*http.Request) (any, error) { return a.controlCWMP() })
	get(ControlSTAMP, func(*http.Request) (any, error) { return ControlSTAMPView{Tasks: a.MonitorTasks()}, nil })
	get(ControlPaths, func(*http.Request) (any, error) { return ControlPathsView{Paths: a.model.pathViews()}, nil })
	get(ControlPolicy, func(*http.Request) (any, error) { return ControlPolicyView{Policies: a.PolicyStatus()}, nil })
	mux.HandleFunc("POST "+ControlPolicyRestore, func(w http.ResponseWriter, r *http.Request) {
		policy, service := r.URL.Query().Get("policy"), r.URL.Query().Get("service")
		err := a.RestorePolicyService(policy, service)
		switch {
		case errors.Is(err, ErrNoPolicy):
			writeControlJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		case err != nil:
			writeControlJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		log.Info("policy restore requested over the control socket", zap.String("policy", policy), zap.String("service", service))
		writeControlJSON(w, http.StatusOK, map[string]bool{"restored": true})
	})
	mux.HandleFunc("POST "+ControlRefresh, func(w http.ResponseWriter, r *http.Request) {
		rf, ok := a.src.(interface{ Refresh() })
		if !ok {
			writeControlJSON(w, http.StatusConflict, map[string]string{"error": "the prefix source cannot be refreshed (it is static)"})
			return
		}
		rf.Refresh()
		log.Info("prefix refresh requested over the control socket")
		writeControlJSON(w, http.StatusOK, map[string]bool{"refreshed": true})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeControlJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no such control request: %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

func writeControlJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func (a *Agent) controlRoutes(r *http.Request) (any, error) {
	rd, ok := a.dp.(interface {
		Installed(context.Context) (dataplane.Desired, error)
	})
	if !ok {
		return nil, errors.New("this dataplane cannot read back its routes")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d, err := rd.Installed(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the installed routes: %w", err)
	}
	return routesView(d), nil
}

func routesView(d dataplane.Desired) ControlRoutesView {
	v := ControlRoutesView{
		Locators:  append([]netip.Prefix{}, d.Locators...),
		VRFs:      make([]ControlVRF, 0, len(d.VRFs)),
		LocalSIDs: localSIDViews(d.LocalSIDs),
		BSIDs:     localSIDViews(d.BSIDs),
		Encaps:    make([]ControlEncapView, 0, len(d.Encaps)),
	}
	for _, f := range d.VRFs {
		v.VRFs = append(v.VRFs, ControlVRF{Name: f.Name, Table: f.Table})
	}
	for _, e := range d.Encaps {
		mode := EncapModeEncap
		if e.Mode == dataplane.EncapRed {
			mode = EncapModeRed
		}
		v.Encaps = append(v.Encaps, ControlEncapView{Prefix: e.Prefix, Table: e.Table, VRF: e.VRF, Mode: mode, Segments: e.Segments, Dev: e.Dev})
	}
	return v
}

func localSIDViews(ls []dataplane.LocalSID) []ControlLocalSID {
	out := make([]ControlLocalSID, 0, len(ls))
	for _, l := range ls {
		out = append(out, ControlLocalSID{SID: l.SID, Behavior: l.Behavior.String(), Table: l.Table, VRF: l.VRF,
			NH4: l.NH4, NH6: l.NH6, Dev: l.Dev, Segments: l.Segments})
	}
	return out
}

// controlCWMP reads the client's event store afresh: the client rewrites it
// atomically on every change, so the file is what the next Inform carries.
func (a *Agent) controlCWMP() (ControlCWMPView, error) {
	v := ControlCWMPView{PendingEvents: []ControlCWMPEvent{}, Transfers: []ControlCWMPTransfer{}}
	st, err := a.cwmp.loadState()
	if err != nil {
		return v, fmt.Errorf("%s: %w", CWMPStateFile, err)
	}
	v.ACSURL = st.ConfigURL
	ev, err := cwmpclient.NewEventStore(a.state, "")
	if err != nil {
		return v, fmt.Errorf("CWMP events: %w", err)
	}
	for _, e := range ev.Pending() {
		v.PendingEvents = append(v.PendingEvents, ControlCWMPEvent{Code: e.Code, CommandKey: e.CommandKey})
	}
	for _, t := range ev.Transfers() {
		dir := "upload"
		if t.IsDownload {
			dir = "download"
		}
		v.Transfers = append(v.Transfers, ControlCWMPTransfer{ID: t.ID, Direction: dir, FileType: t.FileType, CommandKey: t.CommandKey,
			State: transferState(t.State), NotBefore: t.NotBefore, CompleteTime: t.CompleteTime, FaultCode: t.FaultCode, FaultString: t.FaultString})
	}
	return v, nil
}

func transferState(s int) string {
	switch s {
	case cwmpclient.TransferQueued:
		return "queued"
	case cwmpclient.TransferInProgress:
		return "in_progress"
	case cwmpclient.TransferCompleted:
		return "completed"
	}
	return fmt.Sprintf("state %d", s)
}
