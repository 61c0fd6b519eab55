package httpdigest

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits on what the parser accepts: an Authorization header is small, and a
// peer gets no more work out of us by sending a big one.
const (
	maxHeaderLen = 4096
	maxParams    = 32
)

// Credentials are the fields of an "Authorization: Digest ..." header.
type Credentials struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string
	Cnonce    string
	Opaque    string
	QOP       string
	NC        string
	Userhash  bool
}

// ParseAuthorization parses an Authorization header value with the Digest
// scheme (RFC 7235 auth-param list: token = token / quoted-string, separated
// by commas). Unknown parameters are ignored; a repeated one is an error.
func ParseAuthorization(h string) (Credentials, error) {
	var c Credentials
	if len(h) > maxHeaderLen {
		return c, fmt.Errorf("authorization header of %d bytes exceeds %d", len(h), maxHeaderLen)
	}
	h = strings.TrimLeft(h, " \t")
	scheme, rest := h, ""
	if i := strings.IndexAny(h, " \t"); i >= 0 {
		scheme, rest = h[:i], h[i:]
	}
	if !strings.EqualFold(scheme, "Digest") {
		return c, fmt.Errorf("authorization scheme %q is not Digest", scheme)
	}
	seen := map[string]bool{}
	p := rest
	for n := 0; ; n++ {
		p = strings.TrimLeft(p, " \t,")
		if p == "" {
			break
		}
		if n >= maxParams {
			return c, fmt.Errorf("more than %d digest parameters", maxParams)
		}
		i := 0
		for i < len(p) && isTokenChar(p[i]) {
			i++
		}
		if i == 0 {
			return c, fmt.Errorf("digest parameter name expected at %q", clip(p))
		}
		key := strings.ToLower(p[:i])
		p = strings.TrimLeft(p[i:], " \t")
		if p == "" || p[0] != '=' {
			return c, fmt.Errorf("digest parameter %q has no value", key)
		}
		p = strings.TrimLeft(p[1:], " \t")
		var val string
		if p != "" && p[0] == '"' {
			v, tail, err := quoted(p)
			if err != nil {
				return c, fmt.Errorf("digest parameter %q: %w", key, err)
			}
			val, p = v, tail
		} else {
			j := 0
			for j < len(p) && isTokenChar(p[j]) {
				j++
			}
			if j == 0 {
				return c, fmt.Errorf("digest parameter %q has an empty value", key)
			}
			val, p = p[:j], p[j:]
		}
		p = strings.TrimLeft(p, " \t")
		if p != "" && p[0] != ',' {
			return c, fmt.Errorf("comma expected after digest parameter %q, got %q", key, clip(p))
		}
		if seen[key] {
			return c, fmt.Errorf("digest parameter %q repeated", key)
		}
		seen[key] = true
		switch key {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = val
		case "algorithm":
			c.Algorithm = val
		case "cnonce":
			c.Cnonce = val
		case "opaque":
			c.Opaque = val
		case "qop":
			c.QOP = val
		case "nc":
			c.NC = val
		case "userhash":
			c.Userhash = strings.EqualFold(val, "true")
		}
	}
	return c, nil
}

// quoted reads a quoted-string at the start of p and returns its unescaped
// value and what follows it.
func quoted(p string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(p); i++ {
		switch ch := p[i]; ch {
		case '"':
			return b.String(), p[i+1:], nil
		case '\\':
			if i+1 >= len(p) {
				return "", "", errors.New("unterminated escape in quoted string")
			}
			i++
			b.WriteByte(p[i])
		default:
			if ch < 0x20 && ch != '\t' || ch == 0x7f {
				return "", "", fmt.Errorf("control byte 0x%02x in quoted string", ch)
			}
			b.WriteByte(ch)
		}
	}
	return "", "", errors.New("unterminated quoted string")
}

// isTokenChar reports whether b is a tchar of RFC 9110 §5.6.2.
func isTokenChar(b byte) bool {
	switch {
	case b >= '0' && b <= '9', b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

func clip(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// Errors returned by Check. ErrStale means the digest was computed with the
// right password but the nonce is unknown, expired or replayed: the client
// should retry on a fresh challenge with stale=true (RFC 7616 §3.3).
var (
	ErrNoCredentials  = errors.New("no digest credentials")
	ErrStale          = errors.New("stale digest nonce")
	ErrBadCredentials = errors.New("digest credentials do not match")
)

// Algorithms this package implements (RFC 7616 §3.4.2 without the -sess variants).
const (
	MD5    = "MD5"
	SHA256 = "SHA-256"
)

// Config configures a Verifier.
type Config struct {
	// Realm sent in challenges and required in credentials.
	Realm string
	// Algorithms offered, one challenge each, in order of preference.
	// Empty means MD5 only, which every ACS implements.
	Algorithms []string
	// NonceTTL is how long a nonce is accepted. Zero means 5 minutes.
	NonceTTL time.Duration
	// MaxNonces bounds the nonce table; the oldest nonce is forgotten first.
	// Zero means 128.
	MaxNonces int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type nonceState struct {
	issued time.Time
	lastNC uint64
}

// Verifier issues challenges and checks digest credentials. It is safe for
// concurrent use.
type Verifier struct {
	cfg    Config
	mu     sync.Mutex
	nonces map[string]*nonceState
	ring   []string // issue order, for eviction; len(ring) <= MaxNonces
	next   int
}

// NewVerifier returns a Verifier; it rejects an algorithm it does not implement.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{MD5}
	}
	for _, a := range cfg.Algorithms {
		if newHash(a) == nil {
			return nil, fmt.Errorf("digest algorithm %q not supported (want %s or %s)", a, MD5, SHA256)
		}
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = 5 * time.Minute
	}
	if cfg.MaxNonces <= 0 {
		cfg.MaxNonces = 128
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, nonces: make(map[string]*nonceState, cfg.MaxNonces)}, nil
}

// NonceCount returns how many nonces the table holds (for tests and metrics).
func (v *Verifier) NonceCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.nonces)
}

// Challenges returns the WWW-Authenticate header values to send with a 401:
// one per configured algorithm, sharing a fresh nonce.
func (v *Verifier) Challenges(stale bool) []string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	nonce := hex.EncodeToString(b[:])
	v.mu.Lock()
	if len(v.ring) < v.cfg.MaxNonces {
		v.ring = append(v.ring, nonce)
	} else {
		delete(v.nonces, v.ring[v.next])
		v.ring[v.next] = nonce
		v.next = (v.next + 1) % len(v.ring)
	}
	v.nonces[nonce] = &nonceState{issued: v.cfg.Now()}
	v.mu.Unlock()
	out := make([]string, 0, len(v.cfg.Algorithms))
	for _, a := range v.cfg.Algorithms {
		s := fmt.Sprintf(`Digest realm="%s", qop="auth", algorithm=%s, nonce="%s"`, escape(v.cfg.Realm), a, nonce)
		if stale {
			s += ", stale=true"
		}
		out = append(out, s)
	}
	return out
}

// Check verifies the Authorization header of a request with the given method
// and request-target against username and password.
func (v *Verifier) Check(method, requestURI, authorization, username, password string) error {
	if authorization == "" {
		return ErrNoCredentials
	}
	c, err := ParseAuthorization(authorization)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	alg := c.Algorithm
	if alg == "" {
		alg = MD5
	}
	if !v.offers(alg) {
		return fmt.Errorf("%w: algorithm %q not offered", ErrBadCredentials, c.Algorithm)
	}
	if c.Userhash {
		return fmt.Errorf("%w: userhash not offered", ErrBadCredentials)
	}
	if c.QOP != "auth" {
		return fmt.Errorf("%w: qop %q, want auth", ErrBadCredentials, c.QOP)
	}
	if c.Realm != v.cfg.Realm {
		return fmt.Errorf("%w: realm %q", ErrBadCredentials, c.Realm)
	}
	if c.URI != requestURI {
		return fmt.Errorf("%w: uri %q is not the request target %q", ErrBadCredentials, c.URI, requestURI)
	}
	if len(c.NC) != 8 || c.Cnonce == "" {
		return fmt.Errorf("%w: nc %q / cnonce %q malformed", ErrBadCredentials, c.NC, c.Cnonce)
	}
	nc, err := strconv.ParseUint(c.NC, 16, 32)
	if err != nil || nc == 0 {
		return fmt.Errorf("%w: nc %q is not a positive hex count", ErrBadCredentials, c.NC)
	}
	want := Response(alg, username, v.cfg.Realm, password, method, c.URI, c.Nonce, c.NC, c.Cnonce, c.QOP)
	userOK := subtle.ConstantTimeCompare([]byte(c.Username), []byte(username)) == 1
	respOK := subtle.ConstantTimeCompare([]byte(strings.ToLower(c.Response)), []byte(want)) == 1
	if !userOK || !respOK {
		return ErrBadCredentials
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	st, ok := v.nonces[c.Nonce]
	switch {
	case !ok:
		return fmt.Errorf("%w: nonce unknown", ErrStale)
	case v.cfg.Now().Sub(st.issued) > v.cfg.NonceTTL:
		return fmt.Errorf("%w: nonce expired", ErrStale)
	case nc <= st.lastNC:
		return fmt.Errorf("%w: nc %s replayed", ErrStale, c.NC)
	}
	st.lastNC = nc
	return nil
}

func (v *Verifier) offers(alg string) bool {
	for _, a := range v.cfg.Algorithms {
		if strings.EqualFold(a, alg) {
			return true
		}
	}
	return false
}

// Response computes the RFC 7616 §3.4.1 request-digest for qop=auth.
func Response(alg, username, realm, password, method, uri, nonce, nc, cnonce, qop string) string {
	h := newHash(alg)
	if h == nil {
		return ""
	}
	ha1 := hexHash(h, username+":"+realm+":"+password)
	ha2 := hexHash(h, method+":"+uri)
	return hexHash(h, ha1+":"+nonce+":"+nc+":"+cnonce+":"+qop+":"+ha2)
}

func newHash(alg string) hash.Hash {
	switch strings.ToUpper(alg) {
	case MD5:
		return md5.New()
	case SHA256:
		return sha256.New()
	}
	return nil
}

func hexHash(h hash.Hash, s string) string {
	h.Reset()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}
