package cwmpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/srv6cpe/srv6cpe/cwmpclient/internal/httpdigest"
)

// fileServer serves /fw (1000 bytes) and accepts PUT /up, with digest auth
// on /d/..., basic on /b/..., and a few broken behaviours.
type fileServer struct {
	*httptest.Server
	mu       sync.Mutex
	uploaded []byte
	authSeen []string
}

var fwImage = bytes.Repeat([]byte("0123456789"), 100)

func newFileServer(t *testing.T, tlsMode bool) *fileServer {
	t.Helper()
	v, err := httpdigest.NewVerifier(httpdigest.Config{Realm: "files"})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fileServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.authSeen = append(fs.authSeen, r.Header.Get("Authorization"))
		fs.mu.Unlock()
		path := r.URL.Path
		switch {
		case strings.HasPrefix(path, "/d/"):
			if err := v.Check(r.Method, r.RequestURI, r.Header.Get("Authorization"), "cpe", "pw"); err != nil {
				for _, ch := range v.Challenges(errors.Is(err, httpdigest.ErrStale)) {
					w.Header().Add("WWW-Authenticate", ch)
				}
				w.WriteHeader(401)
				return
			}
			path = path[2:]
		case strings.HasPrefix(path, "/b/"):
			if u, p, ok := r.BasicAuth(); !ok || u != "cpe" || p != "pw" {
				w.Header().Set("WWW-Authenticate", `Basic realm="files"`)
				w.WriteHeader(401)
				return
			}
			path = path[2:]
		}
		switch path {
		case "/fw":
			_, _ = w.Write(fwImage)
		case "/chunked":
			for range 3 {
				_, _ = w.Write(fwImage)
				w.(http.Flusher).Flush()
			}
		case "/short":
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write(fwImage[:500])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/moved":
			http.Redirect(w, r, "/fw", http.StatusFound)
		case "/up":
			if r.Method != http.MethodPut {
				w.WriteHeader(405)
				return
			}
			body, _ := io.ReadAll(r.Body)
			fs.mu.Lock()
			fs.uploaded = body
			fs.mu.Unlock()
			w.WriteHeader(201)
		case "/broken":
			w.WriteHeader(500)
		default:
			http.NotFound(w, r)
		}
	})
	fs.Server = httptest.NewUnstartedServer(h)
	if tlsMode {
		fs.StartTLS()
	} else {
		fs.Start()
	}
	t.Cleanup(fs.Close)
	return fs
}

func newTestTransferrer(t *testing.T, cfg TransferConfig) *Transferrer {
	t.Helper()
	if cfg.WorkDir == "" {
		cfg.WorkDir = t.TempDir()
	}
	x, err := NewTransferrer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func xferFaultCode(err error) int {
	if err == nil {
		return 0
	}
	var f *Fault
	if !errors.As(err, &f) {
		return -1
	}
	return f.Code
}

func TestDownload(t *testing.T) {
	fs := newFileServer(t, false)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String() + "/fw"
	closed.Close()
	tests := []struct {
		name      string
		rec       TransferRecord
		maxSize   int64
		wantFault int
	}{
		{"plain", TransferRecord{URL: fs.URL + "/fw"}, 0, 0},
		{"declared size matches", TransferRecord{URL: fs.URL + "/fw", FileSize: 1000}, 0, 0},
		{"digest", TransferRecord{URL: fs.URL + "/d/fw", Username: "cpe", Password: "pw", FileSize: 1000}, 0, 0},
		{"basic", TransferRecord{URL: fs.URL + "/b/fw", Username: "cpe", Password: "pw"}, 0, 0},
		{"redirect", TransferRecord{URL: fs.URL + "/moved"}, 0, 0},
		{"digest wrong password", TransferRecord{URL: fs.URL + "/d/fw", Username: "cpe", Password: "no"}, 0, FaultTransferAuth},
		{"no credentials", TransferRecord{URL: fs.URL + "/b/fw"}, 0, FaultTransferAuth},
		{"not found", TransferRecord{URL: fs.URL + "/missing"}, 0, FaultFileAccess},
		{"server error", TransferRecord{URL: fs.URL + "/broken"}, 0, FaultDownloadFailure},
		{"size mismatch", TransferRecord{URL: fs.URL + "/fw", FileSize: 999}, 0, FaultFileCorrupted},
		{"chunked size mismatch", TransferRecord{URL: fs.URL + "/chunked", FileSize: 2000}, 0, FaultFileCorrupted},
		{"over the cap", TransferRecord{URL: fs.URL + "/fw"}, 500, FaultDownloadFailure},
		{"chunked over the cap", TransferRecord{URL: fs.URL + "/chunked"}, 1500, FaultDownloadFailure},
		{"declared over the cap", TransferRecord{URL: fs.URL + "/fw", FileSize: 1000}, 999, FaultDownloadFailure},
		{"connection dropped", TransferRecord{URL: fs.URL + "/short"}, 0, FaultDownloadIncomplete},
		{"unsupported scheme", TransferRecord{URL: "ftp://files/fw"}, 0, FaultUnsupportedProtocol},
		{"unreachable", TransferRecord{URL: deadURL}, 0, FaultFileServerUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			x := newTestTransferrer(t, TransferConfig{WorkDir: dir, MaxSize: tc.maxSize})
			path, err := x.Download(context.Background(), tc.rec)
			if got := xferFaultCode(err); got != tc.wantFault {
				t.Fatalf("fault %d (%v), want %d", got, err, tc.wantFault)
			}
			left, _ := os.ReadDir(dir)
			if tc.wantFault != 0 {
				if len(left) != 0 {
					t.Fatalf("failed download left %d files in the work dir", len(left))
				}
				return
			}
			if filepath.Dir(path) != dir {
				t.Fatalf("file %s outside the work dir %s", path, dir)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, fwImage) {
				t.Fatalf("downloaded %d bytes (%v), want the 1000-byte image", len(got), err)
			}
		})
	}
}

func TestDownloadRedirectDropsCredentials(t *testing.T) {
	fs := newFileServer(t, false)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fs.URL+"/fw", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(other.Close)
	x := newTestTransferrer(t, TransferConfig{})
	if _, err := x.Download(context.Background(), TransferRecord{URL: other.URL + "/x", Username: "cpe", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, a := range fs.authSeen {
		if a != "" {
			t.Fatalf("credentials for the first host were sent to the redirect target: %q", a)
		}
	}
}

func TestDownloadTLS(t *testing.T) {
	fs := newFileServer(t, true)
	x := newTestTransferrer(t, TransferConfig{})
	if _, err := x.Download(context.Background(), TransferRecord{URL: fs.URL + "/fw"}); xferFaultCode(err) != FaultDownloadFailure {
		t.Fatalf("untrusted certificate: %v", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca, "CERTIFICATE", fs.Certificate().Raw)
	x = newTestTransferrer(t, TransferConfig{CABundle: ca})
	if _, err := x.Download(context.Background(), TransferRecord{URL: fs.URL + "/d/fw", Username: "cpe", Password: "pw"}); err != nil {
		t.Fatalf("trusted via CA bundle: %v", err)
	}
}

func TestUpload(t *testing.T) {
	fs := newFileServer(t, false)
	x := newTestTransferrer(t, TransferConfig{})
	data := []byte("config blob")
	for _, tc := range []struct {
		name      string
		rec       TransferRecord
		wantFault int
	}{
		{"plain", TransferRecord{URL: fs.URL + "/up"}, 0},
		{"digest", TransferRecord{URL: fs.URL + "/d/up", Username: "cpe", Password: "pw"}, 0},
		{"basic", TransferRecord{URL: fs.URL + "/b/up", Username: "cpe", Password: "pw"}, 0},
		{"wrong password", TransferRecord{URL: fs.URL + "/d/up", Username: "cpe", Password: "x"}, FaultTransferAuth},
		{"server error", TransferRecord{URL: fs.URL + "/broken"}, FaultUploadFailure},
		{"not found", TransferRecord{URL: fs.URL + "/nope"}, FaultUploadFailure},
		{"unsupported scheme", TransferRecord{URL: "tftp://x/y"}, FaultUnsupportedProtocol},
	} {
		fs.mu.Lock()
		fs.uploaded = nil
		fs.mu.Unlock()
		err := x.Upload(context.Background(), tc.rec, data)
		if got := xferFaultCode(err); got != tc.wantFault {
			t.Errorf("%s: fault %d (%v), want %d", tc.name, got, err, tc.wantFault)
			continue
		}
		fs.mu.Lock()
		got := fs.uploaded
		fs.mu.Unlock()
		if tc.wantFault == 0 && !bytes.Equal(got, data) {
			t.Errorf("%s: server received %q", tc.name, got)
		}
	}
}

func TestNewTransferrerChecksWorkDir(t *testing.T) {
	if _, err := NewTransferrer(TransferConfig{WorkDir: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing work dir: %v", err)
	}
}
