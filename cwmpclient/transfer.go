package cwmpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Transfer fault codes beyond the generic ones (TR-069 Table A.5.1), used in
// the TransferComplete FaultStruct.
const (
	FaultFileServerUnreachable = 9015 // Download failure: unable to contact file server
	FaultFileAccess            = 9016 // Download failure: unable to access file
	FaultDownloadIncomplete    = 9017 // Download failure: unable to complete download
	FaultFileCorrupted         = 9018 // Download failure: file corrupted or otherwise unusable
)

// DefaultMaxTransferSize caps a download when TransferConfig.MaxSize is zero.
const DefaultMaxTransferSize = 64 << 20

// transferRedirects bounds redirects a file server may send.
const transferRedirects = 5

// TransferConfig configures Download and Upload file transfers.
type TransferConfig struct {
	// WorkDir receives downloaded files; it must exist.
	WorkDir string `yaml:"work_dir"`
	// MaxSize caps a download, whatever FileSize the ACS declared; zero
	// means DefaultMaxTransferSize.
	MaxSize int64 `yaml:"max_size"`
	// TLS settings for https file servers, as in TransportConfig.
	CABundle              string `yaml:"ca_bundle"`
	ClientCert            string `yaml:"client_cert"`
	ClientKey             string `yaml:"client_key"`
	InsecureSkipTLSVerify bool   `yaml:"insecure_skip_tls_verify"`
}

// Transferrer runs file transfers. Its errors are *Fault values whose code
// goes into the TransferComplete FaultStruct.
type Transferrer struct {
	cfg TransferConfig
	tls *tls.Config
}

// NewTransferrer checks the configuration and loads the TLS files.
func NewTransferrer(cfg TransferConfig) (*Transferrer, error) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxTransferSize
	}
	if st, err := os.Stat(cfg.WorkDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("transfer work dir %q is not a directory: %v", cfg.WorkDir, err)
	}
	t, err := buildTLSConfig(cfg.CABundle, cfg.ClientCert, cfg.ClientKey, cfg.InsecureSkipTLSVerify)
	if err != nil {
		return nil, err
	}
	return &Transferrer{cfg: cfg, tls: t}, nil
}

func (x *Transferrer) transport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     x.tls.Clone(),
		TLSHandshakeTimeout: dialTimeout,
		DisableCompression:  true, // the byte count must be the file's
		MaxConnsPerHost:     1,
	}
}

// Download fetches r.URL (http or https, with r.Username/r.Password for basic
// or digest) into a new file in the work dir and returns its path; the
// caller removes it after applying it. The size must match r.FileSize when
// that is non-zero and may never exceed the configured cap.
func (x *Transferrer) Download(ctx context.Context, r TransferRecord) (string, error) {
	limit := x.cfg.MaxSize
	if r.FileSize > 0 && int64(r.FileSize) > limit {
		return "", NewFault(FaultDownloadFailure, "FileSize %d exceeds the download cap of %d bytes", r.FileSize, limit)
	}
	tr := x.transport()
	defer tr.CloseIdleConnections()
	resp, err := x.send(ctx, tr, http.MethodGet, r.URL, r.Username, r.Password, nil, FaultDownloadFailure)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if f := statusFault(resp.StatusCode, FaultDownloadFailure, r.URL); f != nil {
		return "", f
	}
	if resp.ContentLength > limit {
		return "", NewFault(FaultDownloadFailure, "%s: Content-Length %d exceeds the download cap of %d bytes", r.URL, resp.ContentLength, limit)
	}
	if r.FileSize > 0 && resp.ContentLength >= 0 && resp.ContentLength != int64(r.FileSize) {
		return "", NewFault(FaultFileCorrupted, "%s: Content-Length %d, but FileSize %d was announced", r.URL, resp.ContentLength, r.FileSize)
	}
	f, err := os.CreateTemp(x.cfg.WorkDir, "cwmp-download-*")
	if err != nil {
		return "", NewFault(FaultInternal, "create download file in %s: %v", x.cfg.WorkDir, err)
	}
	path := f.Name()
	// Read no further than the announced size (or the cap) plus one byte,
	// enough to tell that the file is too long.
	want := limit
	if r.FileSize > 0 {
		want = int64(r.FileSize)
	}
	n, err := writeDownload(f, resp.Body, want)
	switch {
	case err != nil:
		err = NewFault(FaultDownloadIncomplete, "%s: after %d bytes: %v", r.URL, n, err)
	case r.FileSize > 0 && n != want:
		err = NewFault(FaultFileCorrupted, "%s: received %d bytes or more, but FileSize %d was announced", r.URL, n, r.FileSize)
	case n > limit:
		err = NewFault(FaultDownloadFailure, "%s: file exceeds the download cap of %d bytes", r.URL, limit)
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// writeDownload copies at most limit+1 bytes to f and syncs it.
func writeDownload(f *os.File, body io.Reader, limit int64) (int64, error) {
	n, err := io.Copy(f, io.LimitReader(body, limit+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return n, err
}

// Upload sends data to r.URL with HTTP PUT (TR-069 §A.4.1.4 "Upload").
func (x *Transferrer) Upload(ctx context.Context, r TransferRecord, data []byte) error {
	tr := x.transport()
	defer tr.CloseIdleConnections()
	resp, err := x.send(ctx, tr, http.MethodPut, r.URL, r.Username, r.Password, data, FaultUploadFailure)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if f := statusFault(resp.StatusCode, FaultUploadFailure, r.URL); f != nil {
		return f
	}
	return nil
}

// send issues the request, answering an authentication challenge and
// following redirects (credentials go only to the original host).
func (x *Transferrer) send(ctx context.Context, tr http.RoundTripper, method, rawURL, user, pass string, body []byte, generic int) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, NewFault(generic, "URL %q: %v", rawURL, err)
	}
	origin := u.Host
	for redirects := 0; ; redirects++ {
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, NewFault(FaultUnsupportedProtocol, "URL %s: scheme %q not supported (http, https)", u, u.Scheme)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, NewFault(generic, "URL %s: %v", u, err)
		}
		if method == http.MethodPut {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		auth := &httpAuth{}
		if u.Host == origin {
			auth.user, auth.pass = user, pass
		}
		resp, err := auth.roundTrip(tr, nil, req, body)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" && generic == FaultDownloadFailure {
				return nil, NewFault(FaultFileServerUnreachable, "%v", err)
			}
			return nil, NewFault(generic, "%v", err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, nil
		}
		loc, lerr := resp.Location()
		resp.Body.Close()
		if lerr != nil {
			return nil, NewFault(generic, "redirect from %s without a usable Location: %v", u, lerr)
		}
		if redirects >= transferRedirects {
			return nil, NewFault(generic, "more than %d redirects, last to %s", transferRedirects, loc)
		}
		u = loc
	}
}

// statusFault maps a file server's final HTTP status to a transfer fault.
func statusFault(status, generic int, target string) *Fault {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusUnauthorized || status == http.StatusProxyAuthRequired:
		return NewFault(FaultTransferAuth, "%s: HTTP %d", target, status)
	case generic == FaultDownloadFailure && (status == http.StatusForbidden || status == http.StatusNotFound || status == http.StatusGone):
		return NewFault(FaultFileAccess, "%s: HTTP %d", target, status)
	}
	return NewFault(generic, "%s: HTTP %d", target, status)
}
