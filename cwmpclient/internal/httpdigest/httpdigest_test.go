package httpdigest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
)

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		in      string
		want    Credentials
		wantErr string
	}{
		{
			in: `Digest username="u", realm="r", nonce="abc", uri="/cr?x=1", cnonce="c1", nc=00000001, qop=auth, response="0a", algorithm=MD5`,
			want: Credentials{Username: "u", Realm: "r", Nonce: "abc", URI: "/cr?x=1", Cnonce: "c1",
				NC: "00000001", QOP: "auth", Response: "0a", Algorithm: "MD5"},
		},
		{
			in:   "digest\tUSERNAME = \"a\\\"b\" ,, qop=\"auth\",userhash=TRUE",
			want: Credentials{Username: `a"b`, QOP: "auth", Userhash: true},
		},
		{in: "Digest ", want: Credentials{}},
		{in: `Basic dXNlcjpwYXNz`, wantErr: "not Digest"},
		{in: `Digest username="u`, wantErr: "unterminated quoted"},
		{in: `Digest username="u\`, wantErr: "unterminated escape"},
		{in: `Digest username`, wantErr: "has no value"},
		{in: `Digest username=`, wantErr: "empty value"},
		{in: `Digest =x`, wantErr: "name expected"},
		{in: `Digest a=b c=d`, wantErr: "comma expected"},
		{in: `Digest nonce="a", nonce="b"`, wantErr: "repeated"},
		{in: "Digest a=\"\x01\"", wantErr: "control byte"},
		{in: "Digest " + strings.Repeat("a=b,", 40), wantErr: "repeated"},
		{in: "Digest " + strings.Repeat("x", maxHeaderLen), wantErr: "exceeds"},
	}
	for _, tc := range tests {
		got, err := ParseAuthorization(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAuthorization(%.40q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAuthorization(%.40q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	var many strings.Builder
	many.WriteString("Digest ")
	for i := range maxParams + 1 {
		many.WriteString("p" + strings.Repeat("x", i) + "=1,")
	}
	if _, err := ParseAuthorization(many.String()); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many params: error %v", err)
	}
}

// clientAuth answers a challenge the way a client does, through icholy/digest.
func clientAuth(t *testing.T, challenge, method, uri, user, pass string, nc int) string {
	t.Helper()
	ch, err := digest.ParseChallenge(challenge)
	if err != nil {
		t.Fatalf("client cannot parse our challenge %q: %v", challenge, err)
	}
	cred, err := digest.Digest(ch, digest.Options{Method: method, URI: uri, Username: user, Password: pass, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}

func TestVerifier(t *testing.T) {
	now := time.Unix(1000, 0)
	v, err := NewVerifier(Config{Realm: "cpe", Algorithms: []string{SHA256, MD5}, NonceTTL: time.Minute,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	chs := v.Challenges(false)
	if len(chs) != 2 || !strings.Contains(chs[0], "algorithm=SHA-256") || !strings.Contains(chs[1], "algorithm=MD5") {
		t.Fatalf("challenges %q", chs)
	}
	for i := range chs {
		ch := v.Challenges(false)[i]
		good := clientAuth(t, ch, "GET", "/cr", "acs", "secret", 1)
		if err := v.Check("GET", "/cr", good, "acs", "secret"); err != nil {
			t.Fatalf("good credentials (%s) rejected: %v", ch, err)
		}
		if err := v.Check("GET", "/cr", good, "acs", "secret"); !errors.Is(err, ErrStale) {
			t.Errorf("replayed nc: %v, want stale", err)
		}
		next := clientAuth(t, ch, "GET", "/cr", "acs", "secret", 2)
		if err := v.Check("GET", "/cr", next, "acs", "secret"); err != nil {
			t.Errorf("next nc rejected: %v", err)
		}
	}
	ch := v.Challenges(false)[1]
	cases := []struct {
		name, method, uri, auth string
		want                    error
	}{
		{"none", "GET", "/cr", "", ErrNoCredentials},
		{"wrong password", "GET", "/cr", clientAuth(t, ch, "GET", "/cr", "acs", "nope", 1), ErrBadCredentials},
		{"wrong user", "GET", "/cr", clientAuth(t, ch, "GET", "/cr", "root", "secret", 1), ErrBadCredentials},
		{"other uri", "GET", "/other", clientAuth(t, ch, "GET", "/cr", "acs", "secret", 1), ErrBadCredentials},
		{"other method", "POST", "/cr", clientAuth(t, ch, "GET", "/cr", "acs", "secret", 1), ErrBadCredentials},
		{"basic", "GET", "/cr", "Basic YWNzOnNlY3JldA==", ErrBadCredentials},
		{"no qop", "GET", "/cr", strings.Replace(clientAuth(t, ch, "GET", "/cr", "acs", "secret", 1), "qop=auth", "qop=auth-int", 1), ErrBadCredentials},
		{"unknown nonce", "GET", "/cr", strings.Replace(clientAuth(t, ch, "GET", "/cr", "acs", "secret", 1), "nonce=\"", "nonce=\"x", 1), ErrBadCredentials},
	}
	for _, tc := range cases {
		if err := v.Check(tc.method, tc.uri, tc.auth, "acs", "secret"); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A valid digest on an expired nonce is stale, not bad.
	old := v.Challenges(false)[1]
	now = now.Add(2 * time.Minute)
	if err := v.Check("GET", "/cr", clientAuth(t, old, "GET", "/cr", "acs", "secret", 1), "acs", "secret"); !errors.Is(err, ErrStale) {
		t.Errorf("expired nonce: %v, want stale", err)
	}
	if s := v.Challenges(true)[0]; !strings.Contains(s, "stale=true") {
		t.Errorf("stale challenge %q", s)
	}
}

func TestVerifierNonceTableBounded(t *testing.T) {
	v, err := NewVerifier(Config{Realm: "r", MaxNonces: 8})
	if err != nil {
		t.Fatal(err)
	}
	first := v.Challenges(false)[0]
	for range 1000 {
		v.Challenges(false)
	}
	if n := v.NonceCount(); n != 8 {
		t.Fatalf("nonce table holds %d, want 8", n)
	}
	// The evicted nonce's valid digest is stale: the client re-authenticates.
	if err := v.Check("GET", "/", clientAuth(t, first, "GET", "/", "u", "p", 1), "u", "p"); !errors.Is(err, ErrStale) {
		t.Fatalf("evicted nonce: %v, want stale", err)
	}
}

func TestNewVerifierRejectsAlgorithm(t *testing.T) {
	if _, err := NewVerifier(Config{Algorithms: []string{"SHA-512-256"}}); err == nil || !strings.Contains(err.Error(), "SHA-512-256") {
		t.Fatalf("error %v, want one naming the algorithm", err)
	}
}

// RFC 7616 §3.9.1 example: user Mufasa, password "Circle of Life".
func TestResponseRFC7616Vectors(t *testing.T) {
	const (
		realm  = "http-auth@example.org"
		uri    = "/dir/index.html"
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	)
	if got := Response(MD5, "Mufasa", realm, "Circle of Life", "GET", uri, nonce, "00000001", cnonce, "auth"); got != "8ca523f5e9506fed4657c9700eebdbec" {
		t.Errorf("MD5 response %s", got)
	}
	if got := Response(SHA256, "Mufasa", realm, "Circle of Life", "GET", uri, nonce, "00000001", cnonce, "auth"); got != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Errorf("SHA-256 response %s", got)
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		`Digest username="u", realm="r", nonce="abc", uri="/cr", cnonce="c1", nc=00000001, qop=auth, response="0a"`,
		`Digest a="\"", b=c,,d=e`, `Basic x`, `Digest`, "Digest a=\"\\", "Digest \t a \t = \t b",
	} {
		f.Add(s)
	}
	v, err := NewVerifier(Config{Realm: "r", MaxNonces: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseAuthorization(s)
		if err == nil && len(c.Username)+len(c.Nonce)+len(c.URI)+len(c.Response) > len(s) {
			t.Fatalf("parsed fields longer than the input %q", s)
		}
		// Check must never accept made-up credentials nor panic.
		if err := v.Check("GET", "/cr", s, "u", "p"); err == nil {
			t.Fatalf("Check accepted %q without a nonce we issued", s)
		}
	})
}
