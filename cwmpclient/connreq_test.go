package cwmpclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icholy/digest"
)

type crFixture struct {
	srv      *ConnReqServer
	url      string
	triggers atomic.Int32
}

func startConnReq(t *testing.T, cfg ConnReqConfig) *crFixture {
	t.Helper()
	f := &crFixture{}
	f.srv = NewConnReqServer(cfg, func() { f.triggers.Add(1) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Serve records the port before it accepts; wait for it to be visible.
	for i := 0; i < 100 && !strings.Contains(f.srv.URL("127.0.0.1"), ":"+portOf(ln)); i++ {
		time.Sleep(time.Millisecond)
	}
	f.url = f.srv.URL("127.0.0.1")
	return f
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func digestGet(t *testing.T, url, user, pass string) int {
	t.Helper()
	c := &http.Client{Transport: &digest.Transport{Username: user, Password: pass}, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestConnReqGoClient(t *testing.T) {
	for _, sha := range []bool{false, true} {
		t.Run(fmt.Sprintf("sha256=%v", sha), func(t *testing.T) {
			f := startConnReq(t, ConnReqConfig{Path: "/cr", Username: "acs", Password: "s3cret", OfferSHA256: sha})
			resp, err := http.Get(f.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || len(resp.Header.Values("WWW-Authenticate")) == 0 {
				t.Fatalf("no credentials: %d %v", resp.StatusCode, resp.Header)
			}
			if got := digestGet(t, f.url, "acs", "wrong"); got != 401 {
				t.Fatalf("wrong password: %d, want 401", got)
			}
			if got := f.triggers.Load(); got != 0 {
				t.Fatalf("trigger called %d times before good credentials", got)
			}
			if got := digestGet(t, f.url, "acs", "s3cret"); got != 200 {
				t.Fatalf("good credentials: %d, want 200", got)
			}
			if got := f.triggers.Load(); got != 1 {
				t.Fatalf("trigger called %d times, want 1", got)
			}
			if got := digestGet(t, f.url, "acs", "s3cret"); got != 503 {
				t.Fatalf("request while pending: %d, want 503", got)
			}
			f.srv.SessionActive(true)
			if got := digestGet(t, f.url, "acs", "s3cret"); got != 503 {
				t.Fatalf("request during a session: %d, want 503", got)
			}
			f.srv.SessionActive(false)
			if got := digestGet(t, f.url, "acs", "s3cret"); got != 200 {
				t.Fatalf("request after the session: %d, want 200", got)
			}
			if got := f.triggers.Load(); got != 2 {
				t.Fatalf("trigger called %d times, want 2", got)
			}
		})
	}
}

func TestConnReqMethodsAndPaths(t *testing.T) {
	f := startConnReq(t, ConnReqConfig{Path: "/cr", Username: "u", Password: "p"})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/cr", 405}, {"PUT", "/cr", 405}, {"HEAD", "/cr", 405}, {"GET", "/other", 404},
	} {
		req, _ := http.NewRequest(tc.method, strings.TrimSuffix(f.url, "/cr")+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	f.srv.SetCredentials("u2", "p2")
	if got := digestGet(t, f.url, "u", "p"); got != 401 {
		t.Errorf("old credentials after SetCredentials: %d", got)
	}
	if got := digestGet(t, f.url, "u2", "p2"); got != 200 {
		t.Errorf("new credentials: %d", got)
	}
}

func TestConnReqPendingExpires(t *testing.T) {
	f := startConnReq(t, ConnReqConfig{Username: "u", Password: "p", PendingTimeout: time.Minute})
	var mu sync.Mutex
	now := time.Unix(0, 0)
	f.srv.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	if got := digestGet(t, f.url, "u", "p"); got != 200 {
		t.Fatalf("first: %d", got)
	}
	if got := digestGet(t, f.url, "u", "p"); got != 503 {
		t.Fatalf("second: %d", got)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if got := digestGet(t, f.url, "u", "p"); got != 200 {
		t.Fatalf("after the pending timeout: %d, want 200", got)
	}
}

func TestConnReqCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	for _, sha := range []bool{false, true} {
		t.Run(fmt.Sprintf("sha256=%v", sha), func(t *testing.T) {
			f := startConnReq(t, ConnReqConfig{Path: "/cr/x", Username: "acs", Password: "pa ss", OfferSHA256: sha})
			curl := func(args ...string) string {
				t.Helper()
				args = append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"}, args...)
				out, err := exec.Command("curl", append(args, f.url)...).Output()
				if err != nil {
					t.Fatalf("curl %v: %v", args, err)
				}
				return string(out)
			}
			if got := curl(); got != "401" {
				t.Fatalf("curl without credentials: %s", got)
			}
			if got := curl("--digest", "-u", "acs:nope"); got != "401" {
				t.Fatalf("curl with a wrong password: %s", got)
			}
			if got := curl("--basic", "-u", "acs:pa ss"); got != "401" {
				t.Fatalf("curl with basic auth: %s, want 401 (digest only)", got)
			}
			if n := f.triggers.Load(); n != 0 {
				t.Fatalf("trigger called %d times", n)
			}
			if got := curl("--digest", "-u", "acs:pa ss"); got != "200" {
				t.Fatalf("curl --digest with good credentials: %s", got)
			}
			if n := f.triggers.Load(); n != 1 {
				t.Fatalf("trigger called %d times, want 1", n)
			}
			if got := curl("--digest", "-u", "acs:pa ss"); got != "503" {
				t.Fatalf("curl while pending: %s, want 503", got)
			}
		})
	}
}

func TestConnReqFlood(t *testing.T) {
	f := startConnReq(t, ConnReqConfig{Username: "u", Password: "p", MaxConns: 4})
	const n, workers = 1000, 8
	var codes [600]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the workers authenticate (the digest transport reuses its
			// challenge with increasing nc), half send garbage credentials.
			var rt http.RoundTripper = &http.Transport{MaxConnsPerHost: 1}
			if w%2 == 0 {
				rt = &digest.Transport{Username: "u", Password: "p", Transport: rt}
			}
			c := &http.Client{Transport: rt, Timeout: 10 * time.Second}
			for range n / workers {
				req, _ := http.NewRequest("GET", f.url, nil)
				if w%2 == 1 {
					req.Header.Set("Authorization", `Digest username="u", nonce="x", response="y"`)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[resp.StatusCode].Add(1)
			}
		}()
	}
	wg.Wait()
	if got := f.triggers.Load(); got != 1 {
		t.Fatalf("flood of %d requests called trigger %d times, want 1", n, got)
	}
	if codes[200].Load() != 1 || codes[503].Load() == 0 || codes[401].Load() < n/2 {
		t.Fatalf("status counts 200=%d 503=%d 401=%d", codes[200].Load(), codes[503].Load(), codes[401].Load())
	}
	if got := f.srv.verifier.NonceCount(); got > connReqMaxNonces {
		t.Fatalf("nonce table grew to %d, bound %d", got, connReqMaxNonces)
	}
	// An oversized header is refused before the handler runs.
	req, _ := http.NewRequest("GET", f.url, nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %d, want 431", resp.StatusCode)
	}
}

func TestConnReqURL(t *testing.T) {
	s := NewConnReqServer(ConnReqConfig{Addr: ":7547", Path: "/x"}, func() {})
	for host, want := range map[string]string{
		"192.0.2.1":   "http://192.0.2.1:7547/x",
		"2001:db8::1": "http://[2001:db8::1]:7547/x",
		"cpe.example": "http://cpe.example:7547/x",
	} {
		if got := s.URL(host); got != want {
			t.Errorf("URL(%q) = %q, want %q", host, got, want)
		}
	}
}

func FuzzConnReqRequest(f *testing.F) {
	f.Add("GET", "/", `Digest username="u", realm="srv6cpe", nonce="n", uri="/", cnonce="c", nc=00000001, qop=auth, response="r"`)
	f.Add("POST", "/x", "Basic dTpw")
	f.Add("GET", "/", "Digest ,,,=")
	s := NewConnReqServer(ConnReqConfig{Username: "u", Password: "p"}, func() {})
	f.Fuzz(func(t *testing.T, method, path, auth string) {
		req, err := http.NewRequest(method, "http://cpe"+path, nil)
		if err != nil {
			return
		}
		req.RequestURI = path
		req.Header.Set("Authorization", auth)
		w := &discardWriter{h: http.Header{}}
		s.ServeHTTP(w, req)
		if w.code == 200 {
			t.Fatalf("accepted %s %q with %q", method, path, auth)
		}
	})
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkConnReqFlood sends unauthenticated and authenticated requests
// (half each) at the server and reports the live heap after the flood
// relative to before it: bounded state means the ratio stays near 1
// whatever b.N is.
func BenchmarkConnReqFlood(b *testing.B) {
	var triggers atomic.Int32
	srv := NewConnReqServer(ConnReqConfig{Username: "u", Password: "p"}, func() { triggers.Add(1) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String() + "/"
	authed := &http.Client{Transport: &digest.Transport{Username: "u", Password: "p"}}
	anon := &http.Client{}
	get := func(c *http.Client) {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(authed)
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc)
	}
	before := heap()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			get(anon)
		} else {
			get(authed)
		}
	}
	b.ReportMetric(heap()/before, "heap-after/before")
	b.ReportMetric(before/1024, "heap-before-KiB")
	b.ReportMetric(float64(srv.verifier.NonceCount()), "nonces")
	b.ReportMetric(float64(triggers.Load()), "triggers")
}
