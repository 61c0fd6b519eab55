package cwmpclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"
)

// TransportConfig is how the CPE reaches the ACS.
type TransportConfig struct {
	// URL of the ACS (Device.ManagementServer.URL), http or https.
	URL string `yaml:"url"`
	// Username and Password answer HTTP basic or digest challenges.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// CABundle is a PEM file of trusted CAs; empty means the system roots.
	CABundle string `yaml:"ca_bundle"`
	// ClientCert and ClientKey are PEM files of an optional client certificate.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// InsecureSkipTLSVerify accepts any server certificate and host name.
	// Only for labs: it lets anyone on the path impersonate the ACS.
	InsecureSkipTLSVerify bool `yaml:"insecure_skip_tls_verify"`
	// MaxBody caps an ACS response body; zero means DefaultMaxBody.
	MaxBody int64 `yaml:"max_body"`
}

// DefaultMaxBody is the default cap on an ACS response body.
const DefaultMaxBody = 4 << 20

// Per-session bounds: a session normally uses one connection; a server that
// closes it (e.g. after a 401) or a redirect to another host needs another,
// but never unboundedly many.
const (
	maxSessionDials     = 4
	maxSessionRedirects = 5 // TR-069 §3.4.5 lets the CPE stop after 5
	dialTimeout         = 30 * time.Second
)

// ErrBodyTooLarge is wrapped by errors about a body over its cap.
var ErrBodyTooLarge = errors.New("body too large")

// sessionConn is the HTTP side of one CWMP session: one TCP (or TLS)
// connection kept alive for the whole session, its cookies, and the
// authentication state answered on that connection.
type sessionConn struct {
	target  *url.URL
	maxBody int64
	jar     http.CookieJar
	tr      *http.Transport
	auth    *httpAuth

	mu    sync.Mutex
	pre   net.Conn // connected by dialSession, handed to the first dial
	dials int
}

// dialSession connects to the ACS (TCP, and the TLS handshake for https) so
// that a bad certificate fails before any session starts.
func dialSession(ctx context.Context, cfg TransportConfig) (*sessionConn, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ACS URL %q: %w", cfg.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ACS URL %q: want http:// or https:// with a host", cfg.URL)
	}
	tlsCfg, err := buildTLSConfig(cfg.CABundle, cfg.ClientCert, cfg.ClientKey, cfg.InsecureSkipTLSVerify)
	if err != nil {
		return nil, err
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("cookie jar: %w", err)
	}
	c := &sessionConn{target: u, maxBody: cfg.MaxBody, jar: jar,
		auth: &httpAuth{user: cfg.Username, pass: cfg.Password}}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBody
	}
	dial := func(ctx context.Context, network, addr string, useTLS bool) (net.Conn, error) {
		c.mu.Lock()
		if c.pre != nil && addr == hostPort(u) && useTLS == (u.Scheme == "https") {
			conn := c.pre
			c.pre = nil
			c.mu.Unlock()
			return conn, nil
		}
		if c.dials >= maxSessionDials {
			c.mu.Unlock()
			return nil, fmt.Errorf("session already opened %d connections to %s", c.dials, addr)
		}
		c.dials++
		c.mu.Unlock()
		return dialConn(ctx, network, addr, useTLS, tlsCfg)
	}
	c.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dial(ctx, network, addr, false)
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dial(ctx, network, addr, true)
		},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	c.dials = 1
	pre, err := dialConn(ctx, "tcp", hostPort(u), u.Scheme == "https", tlsCfg)
	if err != nil {
		return nil, err
	}
	c.pre = pre
	return c, nil
}

// dialConn opens a TCP connection and, for TLS, completes the handshake,
// verifying the certificate chain and host name unless tlsCfg says not to.
func dialConn(ctx context.Context, network, addr string, useTLS bool, tlsCfg *tls.Config) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if !useTLS {
		return raw, nil
	}
	cfg := tlsCfg.Clone()
	host, _, _ := net.SplitHostPort(addr)
	cfg.ServerName = host
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return conn, nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// buildTLSConfig returns the client TLS configuration: system roots or the
// CA bundle, an optional client certificate, TLS 1.2 at least.
func buildTLSConfig(caBundle, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caBundle != "" {
		pem, err := os.ReadFile(caBundle)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", caBundle)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s / key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Post sends one CWMP message (an empty body is the empty POST) and returns
// the ACS's status and body. It answers authentication challenges and
// follows redirects (for the rest of the session) on its own.
func (c *sessionConn) Post(ctx context.Context, body []byte) (int, []byte, error) {
	redirects := 0
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target.String(), bytes.NewReader(body))
		if err != nil {
			return 0, nil, fmt.Errorf("request to %s: %w", c.target, err)
		}
		if len(body) > 0 {
			req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
			// TR-069 §3.4.1: the SOAPAction header is present; CWMP names
			// the method in the body, so its value is empty.
			req.Header["SOAPAction"] = []string{""}
		}
		resp, err := c.auth.roundTrip(c.tr, c.jar, req, body)
		if err != nil {
			return 0, nil, err
		}
		respBody, err := readCapped(resp.Body, resp.ContentLength, c.maxBody)
		resp.Body.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("response from %s: %w", c.target, err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := resp.Location()
			if err != nil {
				return resp.StatusCode, respBody, fmt.Errorf("redirect from %s without a usable Location: %w", c.target, err)
			}
			if redirects++; redirects > maxSessionRedirects {
				return resp.StatusCode, respBody, fmt.Errorf("more than %d redirects, last to %s", maxSessionRedirects, loc)
			}
			if loc.Scheme != "http" && loc.Scheme != "https" {
				return resp.StatusCode, respBody, fmt.Errorf("redirect to unsupported URL %s", loc)
			}
			c.target = loc
			continue
		}
		return resp.StatusCode, respBody, nil
	}
}

// Close releases the session's connection.
func (c *sessionConn) Close() {
	c.mu.Lock()
	if c.pre != nil {
		c.pre.Close()
		c.pre = nil
	}
	c.mu.Unlock()
	c.tr.CloseIdleConnections()
}

// httpAuth answers HTTP basic and digest challenges, keeping the digest
// challenge to authenticate the next requests pre-emptively (nc counts up).
type httpAuth struct {
	user, pass string
	chal       *digest.Challenge
	nc         int
	basic      bool
}

// roundTrip sends req (whose body is body) through rt with the session's
// cookies, answering at most one challenge, and returns the response with
// its body unread.
func (a *httpAuth) roundTrip(rt http.RoundTripper, jar http.CookieJar, req *http.Request, body []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		r.Body, r.ContentLength = http.NoBody, 0
		if len(body) > 0 {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		if jar != nil {
			for _, ck := range jar.Cookies(r.URL) {
				r.AddCookie(ck)
			}
		}
		if err := a.authorize(r); err != nil {
			return nil, err
		}
		resp, err := rt.RoundTrip(r)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL, err)
		}
		if jar != nil {
			jar.SetCookies(r.URL, resp.Cookies())
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 || !a.learn(resp.Header) {
			return resp, nil
		}
		// Drain a little so the connection can carry the retry.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}

// authorize adds credentials for a known challenge.
func (a *httpAuth) authorize(r *http.Request) error {
	switch {
	case a.chal != nil:
		a.nc++
		cred, err := digest.Digest(a.chal, digest.Options{Method: r.Method, URI: r.URL.RequestURI(),
			Count: a.nc, Username: a.user, Password: a.pass})
		if err != nil {
			return fmt.Errorf("digest for %s: %w", r.URL, err)
		}
		r.Header.Set("Authorization", cred.String())
	case a.basic:
		r.SetBasicAuth(a.user, a.pass)
	}
	return nil
}

// learn takes the challenge of a 401 and reports whether retrying with it
// can succeed: a new digest nonce, or basic when not already sent.
func (a *httpAuth) learn(h http.Header) bool {
	if a.user == "" && a.pass == "" {
		return false
	}
	if ch, err := digest.FindChallenge(h); err == nil {
		retry := a.chal == nil || ch.Stale || ch.Nonce != a.chal.Nonce
		a.chal, a.nc, a.basic = ch, 0, false
		return retry
	}
	for _, v := range h.Values("WWW-Authenticate") {
		if len(v) >= 5 && strings.EqualFold(v[:5], "Basic") && !a.basic {
			a.basic, a.chal = true, nil
			return true
		}
	}
	return false
}

// readCapped reads a body, failing with ErrBodyTooLarge past max bytes.
func readCapped(r io.Reader, declared, max int64) ([]byte, error) {
	if declared > max {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds the cap of %d bytes", ErrBodyTooLarge, declared, max)
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than the cap of %d bytes", ErrBodyTooLarge, max)
	}
	return data, nil
}
