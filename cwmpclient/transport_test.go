package cwmpclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/cwmpclient/internal/httpdigest"
)

// acsRecorder is an HTTP server that counts TCP connections and records
// each request's headers and body.
type acsRecorder struct {
	*httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	reqs  []recordedReq
}

type recordedReq struct {
	header http.Header
	body   string
	length int64
	te     []string
}

func newACSRecorder(t *testing.T, tlsMode bool, h http.HandlerFunc) *acsRecorder {
	t.Helper()
	a := &acsRecorder{}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.reqs = append(a.reqs, recordedReq{r.Header.Clone(), string(body), r.ContentLength, r.TransferEncoding})
		a.mu.Unlock()
		h(w, r)
	}))
	a.Config.ErrorLog = log.New(io.Discard, "", 0)
	a.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.conns.Add(1)
		}
	}
	if tlsMode {
		a.StartTLS()
	} else {
		a.Start()
	}
	t.Cleanup(a.Close)
	return a
}

func (a *acsRecorder) requests() []recordedReq {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]recordedReq(nil), a.reqs...)
}

func mustDial(t *testing.T, cfg TransportConfig) *sessionConn {
	t.Helper()
	c, err := dialSession(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dialSession: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func sessPost(t *testing.T, c *sessionConn, body string) (int, string) {
	t.Helper()
	code, resp, err := c.Post(context.Background(), []byte(body))
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	return code, string(resp)
}

func TestSessionHeadersCookiesOneConnection(t *testing.T) {
	a := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		if ck, err := r.Cookie("sid"); err != nil || ck.Value != "42" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "42", Path: "/"})
		}
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "<ok/>")
	})
	c := mustDial(t, TransportConfig{URL: a.URL + "/acs"})
	if code, body := sessPost(t, c, "<Inform/>"); code != 200 || body != "<ok/>" {
		t.Fatalf("first post: %d %q", code, body)
	}
	sessPost(t, c, "")
	sessPost(t, c, "<x/>")
	reqs := a.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	if ct := reqs[0].header.Get("Content-Type"); ct != `text/xml; charset="utf-8"` {
		t.Errorf("Content-Type %q", ct)
	}
	if v, ok := reqs[0].header["Soapaction"]; !ok || len(v) != 1 || v[0] != "" {
		t.Errorf("SOAPAction header %q present=%v", v, ok)
	}
	if _, ok := reqs[1].header["Content-Type"]; ok || reqs[1].body != "" || reqs[1].length != 0 || len(reqs[1].te) != 0 {
		t.Errorf("empty POST: headers %v body %q", reqs[1].header, reqs[1].body)
	}
	if _, ok := reqs[1].header["Soapaction"]; ok {
		t.Errorf("empty POST carries SOAPAction")
	}
	for i, r := range reqs[1:] {
		if !strings.Contains(r.header.Get("Cookie"), "sid=42") {
			t.Errorf("request %d lacks the session cookie: %q", i+2, r.header.Get("Cookie"))
		}
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1", n)
	}
}

func TestSessionDigestOnSameConnection(t *testing.T) {
	v, err := httpdigest.NewVerifier(httpdigest.Config{Realm: "acs"})
	if err != nil {
		t.Fatal(err)
	}
	var challenges atomic.Int32
	a := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		if err := v.Check(r.Method, r.RequestURI, r.Header.Get("Authorization"), "cpe", "pw"); err != nil {
			challenges.Add(1)
			for _, ch := range v.Challenges(errors.Is(err, httpdigest.ErrStale)) {
				w.Header().Add("WWW-Authenticate", ch)
			}
			w.WriteHeader(401)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	c := mustDial(t, TransportConfig{URL: a.URL + "/cwmp?x=1", Username: "cpe", Password: "pw"})
	for i := range 4 {
		if code, _ := sessPost(t, c, "<m/>"); code != 200 {
			t.Fatalf("post %d: status %d", i, code)
		}
	}
	if n := challenges.Load(); n != 1 {
		t.Errorf("%d challenges, want 1 (later requests reuse the nonce with nc+1)", n)
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1", n)
	}

	bad := mustDial(t, TransportConfig{URL: a.URL + "/cwmp", Username: "cpe", Password: "wrong"})
	if code, _ := sessPost(t, bad, "<m/>"); code != 401 {
		t.Errorf("wrong password: status %d, want 401", code)
	}
}

func TestSessionBasicAuth(t *testing.T) {
	a := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "cpe" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="acs"`)
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(204)
	})
	c := mustDial(t, TransportConfig{URL: a.URL, Username: "cpe", Password: "pw"})
	for range 2 {
		if code, _ := sessPost(t, c, ""); code != 204 {
			t.Fatalf("status %d", code)
		}
	}
	if n := len(a.requests()); n != 3 {
		t.Errorf("%d requests, want 3 (one challenge, then basic sent pre-emptively)", n)
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1", n)
	}
}

func TestSessionBodyCap(t *testing.T) {
	a := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 2000))
	})
	for _, path := range []string{"/len", "/chunked"} {
		c := mustDial(t, TransportConfig{URL: a.URL + path, MaxBody: 1000})
		_, _, err := c.Post(context.Background(), nil)
		if !errors.Is(err, ErrBodyTooLarge) || !strings.Contains(err.Error(), "1000 bytes") {
			t.Errorf("%s: error %v, want one naming the 1000-byte cap", path, err)
		}
	}
}

func TestSessionRedirect(t *testing.T) {
	var hits atomic.Int32
	target := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method != "POST" {
			t.Errorf("redirected request is %s", r.Method)
		}
		_, _ = io.WriteString(w, "there")
	})
	origin := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/new", http.StatusTemporaryRedirect)
	})
	c := mustDial(t, TransportConfig{URL: origin.URL})
	for range 2 {
		if code, body := sessPost(t, c, "<m/>"); code != 200 || body != "there" {
			t.Fatalf("%d %q", code, body)
		}
	}
	if len(origin.requests()) != 1 || hits.Load() != 2 {
		t.Errorf("origin saw %d, target %d: the redirect must hold for the session", len(origin.requests()), hits.Load())
	}
	loop := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	})
	lc := mustDial(t, TransportConfig{URL: loop.URL})
	if _, _, err := lc.Post(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("redirect loop: %v", err)
	}
}

func TestSessionTLS(t *testing.T) {
	a := newACSRecorder(t, true, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writePEM(t, ca, "CERTIFICATE", a.Certificate().Raw)

	// The self-signed test certificate is not trusted by the system roots:
	// no connection, hence no session.
	if _, err := dialSession(context.Background(), TransportConfig{URL: a.URL}); err == nil {
		t.Fatal("untrusted certificate accepted")
	} else if !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("error %v, want a TLS handshake failure", err)
	}
	if n := len(a.requests()); n != 0 {
		t.Fatalf("%d HTTP requests reached the server over a rejected TLS connection", n)
	}
	c := mustDial(t, TransportConfig{URL: a.URL, CABundle: ca})
	if code, _ := sessPost(t, c, ""); code != 204 {
		t.Fatalf("trusted via CA bundle: status %d", code)
	}
	// The certificate names 127.0.0.1 and example.com, not localhost.
	port := a.URL[strings.LastIndex(a.URL, ":")+1:]
	if _, err := dialSession(context.Background(), TransportConfig{URL: "https://localhost:" + port, CABundle: ca}); err == nil {
		t.Fatal("certificate accepted for a host name it does not carry")
	}
	ic := mustDial(t, TransportConfig{URL: "https://localhost:" + port, InsecureSkipTLSVerify: true})
	if code, _ := sessPost(t, ic, ""); code != 204 {
		t.Fatalf("insecure: status %d", code)
	}
	if _, err := dialSession(context.Background(), TransportConfig{URL: a.URL, CABundle: filepath.Join(dir, "none.pem")}); err == nil {
		t.Fatal("missing CA bundle accepted")
	}
}

func TestSessionClientCertificate(t *testing.T) {
	caCert, caKey := newCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cpe.pem"), filepath.Join(dir, "cpe.key")
	issueClientCert(t, caCert, caKey, certFile, keyFile)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	a := &acsRecorder{}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "cpe-1" {
			w.WriteHeader(403)
			return
		}
		w.WriteHeader(204)
	}))
	a.Config.ErrorLog = log.New(io.Discard, "", 0)
	a.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	a.StartTLS()
	t.Cleanup(a.Close)
	ca := filepath.Join(dir, "ca.pem")
	writePEM(t, ca, "CERTIFICATE", a.Certificate().Raw)

	c := mustDial(t, TransportConfig{URL: a.URL, CABundle: ca, ClientCert: certFile, ClientKey: keyFile})
	if code, _ := sessPost(t, c, ""); code != 204 {
		t.Fatalf("with client certificate: status %d", code)
	}
	// Without one the server refuses during or right after the handshake.
	nc, err := dialSession(context.Background(), TransportConfig{URL: a.URL, CABundle: ca})
	if err == nil {
		defer nc.Close()
		if _, _, err = nc.Post(context.Background(), nil); err == nil {
			t.Fatal("server accepted a session without a client certificate")
		}
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func issueClientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cpe-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
}

// An ACS whose nonce expires mid-session answers stale=true; the session
// re-authenticates on the same connection without failing the POST.
func TestSessionDigestStaleNonce(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(0, 0)
	v, err := httpdigest.NewVerifier(httpdigest.Config{Realm: "acs", NonceTTL: time.Minute,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	var stale atomic.Int32
	a := newACSRecorder(t, false, func(w http.ResponseWriter, r *http.Request) {
		if err := v.Check(r.Method, r.RequestURI, r.Header.Get("Authorization"), "cpe", "pw"); err != nil {
			if errors.Is(err, httpdigest.ErrStale) {
				stale.Add(1)
			}
			for _, ch := range v.Challenges(errors.Is(err, httpdigest.ErrStale)) {
				w.Header().Add("WWW-Authenticate", ch)
			}
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(204)
	})
	c := mustDial(t, TransportConfig{URL: a.URL, Username: "cpe", Password: "pw"})
	if code, _ := sessPost(t, c, ""); code != 204 {
		t.Fatalf("first: %d", code)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if code, _ := sessPost(t, c, ""); code != 204 {
		t.Fatalf("after the nonce expired: %d", code)
	}
	if stale.Load() != 1 || a.conns.Load() != 1 {
		t.Fatalf("%d stale answers, %d connections; want 1, 1", stale.Load(), a.conns.Load())
	}
}
