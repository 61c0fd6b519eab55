package openwrt

import (
	"context"
	"strings"
	"sync"
)

// fakeRunner records every command line and answers through reply.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	reply func(argv []string) ([]byte, error)
	// called, when set, receives each command line after reply ran.
	called chan string
}

func (f *fakeRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	line := strings.Join(argv, " ")
	f.mu.Lock()
	f.calls = append(f.calls, line)
	f.mu.Unlock()
	var out []byte
	var err error
	if f.reply != nil {
		out, err = f.reply(argv)
	}
	if f.called != nil {
		select {
		case f.called <- line:
		case <-ctx.Done():
		}
	}
	return out, err
}

func (f *fakeRunner) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
