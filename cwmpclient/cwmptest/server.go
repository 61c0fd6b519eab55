package cwmptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/icholy/digest"

	"github.com/srv6cpe/srv6cpe/cwmpclient/internal/httpdigest"
)

// TB is the part of testing.TB the server uses; *testing.T satisfies it.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
}

// AuthMode is how the double authenticates the CPE.
type AuthMode int

// Authentication modes.
const (
	AuthNone AuthMode = iota
	AuthBasic
	AuthDigest
)

// maxBody caps a CPE message the double reads.
const maxBody = 8 << 20

// Reply tells the double how to answer one CPE message, overriding the
// default. Zero fields are ignored; the first set of Close, Status, Fault,
// Body, Request, End (in that order) decides the answer, after Delay.
type Reply struct {
	Delay   time.Duration
	Close   bool // drop the TCP connection without answering
	Status  int  // answer with this HTTP status and no body
	Fault   int  // answer with an ACS SOAP fault (8000-8005)
	Body    []byte
	Request *Request
	End     bool // answer 204: end of session
}

// Hook sees each CPE message (with a snapshot of its session) and may
// decide the answer; returning nil keeps the default.
type Hook func(s Session, m Message) *Reply

// Sent is one answer of the double.
type Sent struct {
	Method string // RPC name sent, "" for 204 / status-only / close
	ID     string
	Status int // HTTP status; 0 when the connection was closed instead
	Raw    []byte
}

// Session is one CWMP session as the double saw it.
type Session struct {
	Index      int
	Inform     *Inform
	Messages   []Message
	Sent       []Sent
	Violations []string
	// Ended is true once the double answered 204 (or ended it otherwise).
	Ended bool
	// Conns counts the TCP connections the session used.
	Conns int
}

// DeviceID is the DeviceId of the session's Inform.
func (s Session) DeviceID() DeviceID {
	if s.Inform == nil {
		return DeviceID{}
	}
	return s.Inform.DeviceID
}

// Responses lists the CPE messages answering requests (every message
// after the Inform that is not empty and not a CPE request).
func (s Session) Responses() []Message {
	var out []Message
	for _, m := range s.Messages {
		if strings.HasSuffix(m.Method, "Response") || m.Method == "Fault" {
			out = append(out, m)
		}
	}
	return out
}

// Option configures a Server.
type Option func(*Server)

// WithAuth makes the double require HTTP basic or digest credentials on
// every POST.
func WithAuth(mode AuthMode, username, password string) Option {
	return func(s *Server) { s.auth, s.user, s.pass = mode, username, password }
}

// WithCookie makes the double set a session cookie of that name with the
// InformResponse and record a violation for every later message without it.
func WithCookie(name string) Option { return func(s *Server) { s.cookie = name } }

// WithNamespace fixes the CWMP namespace of the double's messages; by
// default it answers in the namespace of the CPE's Inform.
func WithNamespace(ns string) Option { return func(s *Server) { s.ns = ns } }

// WithGenieACSFaults writes faults as GenieACS does: a
// "soap-env:Body:Fault" element.
func WithGenieACSFaults() Option { return func(s *Server) { s.genie = true } }

// WithHook installs a hook (see Hook).
func WithHook(h Hook) Option { return func(s *Server) { s.hook = h } }

// WithSessionLimit keeps only the last n sessions (a long-running lab ACS
// would otherwise keep every message forever); zero keeps all.
func WithSessionLimit(n int) Option { return func(s *Server) { s.keep = n } }

// WithTLS serves https with httptest's self-signed certificate.
func WithTLS() Option { return func(s *Server) { s.useTLS = true } }

// Server is the ACS double. It implements http.Handler.
type Server struct {
	// URL is the ACS URL to configure in the CPE (set once started).
	URL string

	auth       AuthMode
	user, pass string
	cookie     string
	ns         string
	genie      bool
	useTLS     bool
	keep       int
	verifier   *httpdigest.Verifier
	hs         *httptest.Server
	log        func(string, ...any)

	mu         sync.Mutex
	hook       Hook
	queue      []Request
	sessions   []*sessionState
	opened     int // sessions ever opened (Index of the next one)
	ended      int // sessions ever ended
	conns      int
	challenges int
	idSeq      int
	orphans    []string
	changed    chan struct{}
}

type sessionState struct {
	Session
	cookieVal string
	connIDs   map[uint64]bool
	pending   *pendingRequest // request awaiting the CPE's response
	ns        string
}

type pendingRequest struct {
	Sent
	verbatim bool // sent by RawEnvelope: no ID the CPE could echo
}

type connKey struct{}

type connInfo struct{ id uint64 }

// New returns a Server that is not listening: serve it with your own
// http.Server, setting ConnContext to s.ConnContext so that sessions are
// tracked per connection.
func New(opts ...Option) *Server {
	s := &Server{changed: make(chan struct{}), log: func(string, ...any) {}}
	for _, o := range opts {
		o(s)
	}
	v, err := httpdigest.NewVerifier(httpdigest.Config{Realm: "cwmptest"})
	if err != nil {
		// MD5 is always implemented; reaching this is a bug.
		panic(err)
	}
	s.verifier = v
	return s
}

// NewServer starts a Server on a loopback port; tb (may be nil) gets its
// log and closes it at cleanup, otherwise call Close.
func NewServer(tb TB, opts ...Option) *Server {
	s := New(opts...)
	if tb != nil {
		tb.Helper()
		s.log = tb.Logf
	}
	s.hs = httptest.NewUnstartedServer(s)
	s.hs.Config.ConnContext = s.ConnContext
	if s.useTLS {
		s.hs.StartTLS()
	} else {
		s.hs.Start()
	}
	s.URL = s.hs.URL + "/acs"
	if tb != nil {
		tb.Cleanup(s.Close)
	}
	return s
}

// Close stops a server started by NewServer.
func (s *Server) Close() {
	if s.hs != nil {
		s.hs.CloseClientConnections()
		s.hs.Close()
	}
}

// CertificatePEM returns the TLS certificate of a WithTLS server, PEM
// encoded, for the CPE's CA bundle.
func (s *Server) CertificatePEM() []byte {
	if s.hs == nil || s.hs.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.hs.Certificate().Raw})
}

var connSeq struct {
	sync.Mutex
	n uint64
}

// ConnContext tags each accepted connection (use as http.Server.ConnContext).
func (s *Server) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	connSeq.Lock()
	connSeq.n++
	id := connSeq.n
	connSeq.Unlock()
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	return context.WithValue(ctx, connKey{}, &connInfo{id: id})
}

// Enqueue appends requests to send, in order, whenever a CPE hands the
// double the floor; they are shared by all sessions.
func (s *Server) Enqueue(reqs ...Request) {
	s.mu.Lock()
	s.queue = append(s.queue, reqs...)
	s.mu.Unlock()
}

// Queued returns how many requests are still waiting.
func (s *Server) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// SetHook replaces the hook.
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// Connections returns how many TCP connections the double has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Challenges returns how many 401 challenges the double has sent.
func (s *Server) Challenges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.challenges
}

// Orphans lists messages that belonged to no session (e.g. a POST without
// an Inform first); each is a violation by the CPE.
func (s *Server) Orphans() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.orphans)
}

// Sessions returns a snapshot of every session kept (see WithSessionLimit).
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, len(s.sessions))
	for i, st := range s.sessions {
		out[i] = st.snapshot()
	}
	return out
}

// WaitSessions waits until n sessions have ended (counting from the start)
// and returns the snapshot.
func (s *Server) WaitSessions(ctx context.Context, n int) ([]Session, error) {
	for {
		s.mu.Lock()
		ended := s.ended
		ch := s.changed
		s.mu.Unlock()
		if ended >= n {
			return s.Sessions(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.Sessions(), fmt.Errorf("%d of %d sessions ended: %w", ended, n, ctx.Err())
		}
	}
}

func (st *sessionState) snapshot() Session {
	c := st.Session
	c.Messages = slices.Clone(st.Messages)
	c.Sent = slices.Clone(st.Sent)
	c.Violations = slices.Clone(st.Violations)
	return c
}

// endSession marks a session ended; with s.mu held.
func (s *Server) endSession(st *sessionState) {
	if !st.Ended {
		st.Ended = true
		s.ended++
	}
}

func (st *sessionState) violate(format string, args ...any) {
	st.Violations = append(st.Violations, fmt.Sprintf(format, args...))
}

// notify wakes waiters; call with s.mu held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ServeHTTP answers one CPE POST.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		http.Error(w, "body unreadable or too large", http.StatusRequestEntityTooLarge)
		return
	}
	if !s.authenticate(w, r) {
		return
	}
	msg := parseMessage(raw)
	msg.Header = r.Header.Clone()

	s.mu.Lock()
	st := s.sessionFor(r, msg)
	if st == nil {
		s.orphans = append(s.orphans, fmt.Sprintf("%s from %s outside a session", methodOrEmpty(msg.Method), r.RemoteAddr))
		s.notify()
		s.mu.Unlock()
		http.Error(w, "no session: send an Inform first", http.StatusBadRequest)
		return
	}
	s.check(st, r, msg)
	st.Messages = append(st.Messages, msg)
	snap, hook := st.snapshot(), s.hook
	s.notify()
	s.mu.Unlock()

	var rep *Reply
	if hook != nil {
		rep = hook(snap, msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	if rep == nil {
		rep = s.defaultReply(st, msg)
	}
	if rep.Delay > 0 {
		s.mu.Unlock()
		select {
		case <-time.After(rep.Delay):
		case <-r.Context().Done():
		}
		s.mu.Lock()
	}
	s.answer(w, st, msg, rep)
}

func methodOrEmpty(m string) string {
	if m == "" {
		return "empty POST"
	}
	return m
}

// authenticate checks credentials and sends a challenge when they are
// missing or wrong.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	switch s.auth {
	case AuthBasic:
		if u, p, ok := r.BasicAuth(); ok && u == s.user && p == s.pass {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="cwmptest"`)
	case AuthDigest:
		err := s.verifier.Check(r.Method, r.RequestURI, r.Header.Get("Authorization"), s.user, s.pass)
		if err == nil {
			return true
		}
		for _, ch := range s.verifier.Challenges(errors.Is(err, httpdigest.ErrStale)) {
			w.Header().Add("WWW-Authenticate", ch)
		}
	default:
		return true
	}
	s.mu.Lock()
	s.challenges++
	s.mu.Unlock()
	w.WriteHeader(http.StatusUnauthorized)
	return false
}

// sessionFor finds or opens the session of a message; with s.mu held.
func (s *Server) sessionFor(r *http.Request, msg Message) *sessionState {
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	if msg.Method == "Inform" {
		st := &sessionState{Session: Session{Index: s.opened}, connIDs: map[uint64]bool{}, ns: msg.Namespace}
		s.opened++
		st.Inform = parseInform(msg)
		if ci != nil {
			for _, old := range s.sessions {
				if !old.Ended && old.connIDs[ci.id] {
					old.violate("a new Inform arrived on this session's connection before it ended")
					s.endSession(old)
				}
			}
			st.connIDs[ci.id] = true
			st.Conns = 1
		}
		s.sessions = append(s.sessions, st)
		if s.keep > 0 && len(s.sessions) > s.keep {
			s.sessions = slices.Delete(s.sessions, 0, len(s.sessions)-s.keep)
		}
		return st
	}
	for i := len(s.sessions) - 1; i >= 0; i-- {
		st := s.sessions[i]
		if st.Ended {
			continue
		}
		if ci != nil && st.connIDs[ci.id] {
			return st
		}
		if s.cookie != "" && st.cookieVal != "" {
			if c, err := r.Cookie(s.cookie); err == nil && c.Value == st.cookieVal {
				if ci != nil {
					st.connIDs[ci.id] = true
					st.Conns++
				}
				return st
			}
		}
		if ci == nil && s.cookie == "" {
			// Served without ConnContext or cookies: the latest open session.
			return st
		}
	}
	return nil
}

// check records what the CPE did wrong in this message; with s.mu held.
func (s *Server) check(st *sessionState, r *http.Request, msg Message) {
	n := len(st.Messages) + 1
	if msg.ParseError != nil {
		st.violate("message %d: %v", n, msg.ParseError)
	}
	if len(msg.Raw) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
		st.violate("message %d (%s): Content-Type %q, want text/xml", n, msg.Method, r.Header.Get("Content-Type"))
	}
	if msg.Method != "Inform" && s.cookie != "" && st.cookieVal != "" {
		if c, err := r.Cookie(s.cookie); err != nil || c.Value != st.cookieVal {
			st.violate("message %d (%s): session cookie %s not returned", n, methodOrEmpty(msg.Method), s.cookie)
		}
	}
	if msg.Method == "Inform" {
		if msg.ID == "" {
			st.violate("Inform without a cwmp:ID header")
		}
		if st.Inform.MaxEnvelopes != "1" {
			st.violate("Inform MaxEnvelopes %q, want 1", st.Inform.MaxEnvelopes)
		}
		return
	}
	if p := st.pending; p != nil {
		switch {
		case msg.Method == "":
			st.violate("message %d: empty POST while %s (ID %s) is unanswered", n, p.Method, p.ID)
		case msg.Method != p.Method+"Response" && msg.Method != "Fault":
			st.violate("message %d: %s does not answer %s", n, msg.Method, p.Method)
		case msg.ID != p.ID && !p.verbatim:
			st.violate("message %d: %s carries ID %q, want %q echoed", n, msg.Method, msg.ID, p.ID)
		}
		st.pending = nil
	} else if strings.HasSuffix(msg.Method, "Response") {
		st.violate("message %d: %s answers no request", n, msg.Method)
	}
}

// defaultReply is the ordinary ACS behaviour; with s.mu held.
func (s *Server) defaultReply(st *sessionState, msg Message) *Reply {
	switch {
	case msg.ParseError != nil:
		return &Reply{Status: http.StatusBadRequest}
	case msg.Method == "Inform", msg.Method == "TransferComplete", msg.Method == "AutonomousTransferComplete",
		msg.Method == "RequestDownload", msg.Method == "GetRPCMethods":
		return &Reply{Body: s.respond(st, msg, msg.Method+"Response")}
	case msg.Method == "", msg.Method == "Fault", strings.HasSuffix(msg.Method, "Response"):
		if len(s.queue) == 0 {
			return &Reply{End: true}
		}
		next := s.queue[0]
		s.queue = s.queue[1:]
		return &Reply{Request: &next}
	}
	return &Reply{Fault: 8000}
}

func (s *Server) namespace(st *sessionState) string {
	switch {
	case s.ns != "":
		return s.ns
	case isCWMPNamespace(st.ns):
		return st.ns
	}
	return NS10
}

// respond builds the double's answer to a CPE request.
func (s *Server) respond(st *sessionState, msg Message, method string) []byte {
	return envelope(s.namespace(st), msg.ID, func(b *etree.Element) {
		m := b.CreateElement("cwmp:" + method)
		switch method {
		case "InformResponse":
			addText(m, "MaxEnvelopes", "1")
		case "GetRPCMethodsResponse":
			l := addArray(m, "MethodList", "xsd:string", len(acsMethods))
			for _, x := range acsMethods {
				addText(l, "string", x)
			}
		}
	})
}

// acsMethods are the CPE-to-ACS methods the double answers.
var acsMethods = []string{"Inform", "GetRPCMethods", "TransferComplete", "AutonomousTransferComplete", "RequestDownload"}

// answer writes the reply; with s.mu held.
func (s *Server) answer(w http.ResponseWriter, st *sessionState, msg Message, rep *Reply) {
	sent := Sent{}
	switch {
	case rep.Close:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		s.endSession(st)
	case rep.Status != 0:
		sent.Status = rep.Status
		w.WriteHeader(rep.Status)
		s.endSession(st)
	case rep.Fault != 0:
		sent.Method, sent.ID, sent.Status = "Fault", msg.ID, http.StatusInternalServerError
		sent.Raw = envelope(s.namespace(st), msg.ID, func(b *etree.Element) {
			faultBody(b, rep.Fault, faultText(rep.Fault), s.genie)
		})
		writeXML(w, sent.Status, sent.Raw)
	case rep.Body != nil:
		sent.Method, sent.ID, sent.Status, sent.Raw = msg.Method+"Response", msg.ID, http.StatusOK, rep.Body
		if msg.Method == "Inform" && s.cookie != "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			st.cookieVal = hex.EncodeToString(b[:])
			http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: st.cookieVal, Path: "/", HttpOnly: true})
		}
		writeXML(w, http.StatusOK, rep.Body)
	case rep.Request != nil:
		s.idSeq++
		id := fmt.Sprintf("cwmptest-%d", s.idSeq)
		sent.Method, sent.ID, sent.Status = rep.Request.Method, id, http.StatusOK
		sent.Raw = rep.Request.encode(s.namespace(st), id)
		p := pendingRequest{Sent: sent, verbatim: rep.Request.whole != nil}
		st.pending = &p
		writeXML(w, http.StatusOK, sent.Raw)
	default:
		sent.Status = http.StatusNoContent
		w.WriteHeader(http.StatusNoContent)
		s.endSession(st)
	}
	st.Sent = append(st.Sent, sent)
	s.log("cwmptest: session %d: CPE %s -> ACS %s %d", st.Index, methodOrEmpty(msg.Method), sent.Method, sent.Status)
}

func writeXML(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func faultText(code int) string {
	switch code {
	case 8000:
		return "Method not supported"
	case 8001:
		return "Request denied"
	case 8002:
		return "Internal error"
	case 8003:
		return "Invalid arguments"
	case 8004:
		return "Resources exceeded"
	case 8005:
		return "Retry request"
	}
	return "Vendor fault"
}

// ConnectionRequest sends a Connection Request (HTTP GET with digest
// credentials) to a CPE and returns the HTTP status.
func ConnectionRequest(ctx context.Context, url, username, password string) (int, error) {
	c := &http.Client{Transport: &digest.Transport{Username: username, Password: password,
		Transport: &http.Transport{DisableKeepAlives: true}}, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("connection request to %q: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("connection request to %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ConnectionRequestUntilAccepted repeats a Connection Request while the CPE
// answers 503 (TR-069 §3.2.2: a session is pending or still winding down),
// as an ACS does, until another answer or until ctx ends, and returns the
// last status.
func ConnectionRequestUntilAccepted(ctx context.Context, url, username, password string) (int, error) {
	for {
		code, err := ConnectionRequest(ctx, url, username, password)
		if err != nil || code != http.StatusServiceUnavailable {
			return code, err
		}
		select {
		case <-ctx.Done():
			return code, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ConnectionRequest is the package function, for symmetry with the server.
func (s *Server) ConnectionRequest(ctx context.Context, url, username, password string) (int, error) {
	return ConnectionRequest(ctx, url, username, password)
}
