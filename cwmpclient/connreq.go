package cwmpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/srv6cpe/srv6cpe/cwmpclient/internal/httpdigest"
)

// ConnReqConfig configures the Connection Request server (TR-069 §3.2.2).
type ConnReqConfig struct {
	// Addr is the listen address, e.g. ":7547"; Serve takes a listener, so
	// Addr only gives the port for URL before Serve runs.
	Addr string `yaml:"addr"`
	// Path of the Connection Request URL; empty means "/".
	Path string `yaml:"path"`
	// Username and Password are ConnectionRequestUsername/Password; they can
	// be changed later with SetCredentials.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Realm of the digest challenge; empty means "srv6cpe".
	Realm string `yaml:"realm"`
	// OfferSHA256 adds an algorithm=SHA-256 challenge before the MD5 one.
	// Off by default: some ACSes merge repeated WWW-Authenticate headers and
	// then fail to parse either.
	OfferSHA256 bool `yaml:"offer_sha256"`
	// PendingTimeout bounds how long an accepted request keeps later ones
	// answered 503 when no session starts (SessionActive never called).
	// Zero means one minute.
	PendingTimeout time.Duration `yaml:"pending_timeout"`
	// MaxConns bounds concurrent TCP connections; zero means 16.
	MaxConns int `yaml:"max_conns"`
	// Logger receives one debug line per rejected request; nil means none.
	Logger *zap.Logger `yaml:"-"`
}

// Limits that keep a flood of connection requests cheap: a request is a
// bodiless GET, so small headers and short timeouts lose nothing.
const (
	connReqMaxHeaderBytes = 8 << 10
	connReqReadTimeout    = 5 * time.Second
	connReqMaxNonces      = 64
)

// ConnReqServer answers ACS Connection Requests: HTTP GET on the configured
// path, authenticated with digest (TR-069 §3.2.2 requires it), and calls
// trigger to start a session with "6 CONNECTION REQUEST". At most one request
// is pending at a time: while a triggered session has not started, or a
// session is in progress, further requests get 503 and trigger is not called.
type ConnReqServer struct {
	cfg      ConnReqConfig
	trigger  func()
	verifier *httpdigest.Verifier
	log      *zap.Logger
	now      func() time.Time

	mu           sync.Mutex
	user, pass   string
	pending      bool
	pendingSince time.Time
	active       bool
	port         string
}

// NewConnReqServer returns a server that calls trigger (which must not block)
// for each accepted Connection Request.
func NewConnReqServer(cfg ConnReqConfig, trigger func()) *ConnReqServer {
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Realm == "" {
		cfg.Realm = "srv6cpe"
	}
	if cfg.PendingTimeout <= 0 {
		cfg.PendingTimeout = time.Minute
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	algs := []string{httpdigest.MD5}
	if cfg.OfferSHA256 {
		algs = []string{httpdigest.SHA256, httpdigest.MD5}
	}
	v, err := httpdigest.NewVerifier(httpdigest.Config{Realm: cfg.Realm, Algorithms: algs, MaxNonces: connReqMaxNonces})
	if err != nil {
		// Both algorithms are implemented by httpdigest; reaching this is a bug.
		panic(err)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	_, port, _ := net.SplitHostPort(cfg.Addr)
	return &ConnReqServer{cfg: cfg, trigger: trigger, verifier: v, log: log, now: time.Now,
		user: cfg.Username, pass: cfg.Password, port: port}
}

// SetCredentials changes the credentials a request must carry (after a
// SetParameterValues on ConnectionRequestUsername/Password).
func (s *ConnReqServer) SetCredentials(username, password string) {
	s.mu.Lock()
	s.user, s.pass = username, password
	s.mu.Unlock()
}

// SessionActive tells the server whether a CWMP session is in progress: the
// session engine calls it with true when a session starts and false when it
// ends. A start clears the pending request.
func (s *ConnReqServer) SessionActive(active bool) {
	s.mu.Lock()
	s.active = active
	if active {
		s.pending = false
	}
	s.mu.Unlock()
}

// URL returns the Connection Request URL for the given host (an IP address
// or name the ACS can reach), the value of ConnectionRequestURL.
func (s *ConnReqServer) URL(host string) string {
	s.mu.Lock()
	port := s.port
	s.mu.Unlock()
	hp := host
	if port != "" {
		hp = net.JoinHostPort(host, port)
	} else if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		hp = "[" + host + "]"
	}
	return "http://" + hp + s.cfg.Path
}

// Serve answers requests on ln until ctx is done, then shuts down and
// returns nil; it returns other errors from the listener.
func (s *ConnReqServer) Serve(ctx context.Context, ln net.Listener) error {
	if _, port, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		s.mu.Lock()
		s.port = port
		s.mu.Unlock()
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: connReqReadTimeout,
		ReadTimeout:       connReqReadTimeout,
		WriteTimeout:      connReqReadTimeout,
		MaxHeaderBytes:    connReqMaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(s.log),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	// One request per connection: an idle keep-alive connection would hold
	// one of the MaxConns slots that a flood is competing for.
	srv.SetKeepAlivesEnabled(false)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := srv.Shutdown(shut); err != nil {
				_ = srv.Close()
			}
		case <-done:
		}
	}()
	err := srv.Serve(newLimitListener(ln, s.cfg.MaxConns))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("connection request server on %s: %w", ln.Addr(), err)
}

// ServeHTTP implements one Connection Request.
func (s *ConnReqServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.cfg.Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	user, pass := s.user, s.pass
	s.mu.Unlock()
	if err := s.verifier.Check(r.Method, r.RequestURI, r.Header.Get("Authorization"), user, pass); err != nil {
		s.log.Debug("connection request rejected", zap.String("remote", r.RemoteAddr), zap.Error(err))
		for _, ch := range s.verifier.Challenges(errors.Is(err, httpdigest.ErrStale)) {
			w.Header().Add("WWW-Authenticate", ch)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if !s.accept() {
		// TR-069 §3.2.2: a session is already pending or in progress.
		w.Header().Set("Retry-After", "30")
		http.Error(w, "session pending", http.StatusServiceUnavailable)
		return
	}
	s.log.Info("connection request accepted", zap.String("remote", r.RemoteAddr))
	s.trigger()
	w.WriteHeader(http.StatusOK)
}

// accept reports whether a new session may be triggered and, if so, marks
// one pending.
func (s *ConnReqServer) accept() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.pending && now.Sub(s.pendingSince) > s.cfg.PendingTimeout {
		s.pending = false
	}
	if s.pending || s.active {
		return false
	}
	s.pending, s.pendingSince = true, now
	return true
}

// limitListener bounds concurrent connections: Accept waits for a slot, so a
// flood queues in the kernel backlog instead of in goroutines.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
