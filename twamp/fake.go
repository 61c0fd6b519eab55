package twamp

import (
	"context"

	"go.uber.org/zap"
)

// Session is the seam the agent drives a test session through; *Sender
// and *FakeSender implement it.
type Session interface {
	Run(ctx context.Context) error
	Metrics() Metrics
	State() SessionState
}

var (
	_ Session = (*Sender)(nil)
	_ Session = (*FakeSender)(nil)
)

// FakeSender replays scripted samples through the real metrics, windows
// and notifications of a Sender, without sockets, so code that consumes
// sessions (the agent, the policy selector) is tested without root.
type FakeSender struct {
	s      *Sender
	script []Sample
}

// NewFakeSender validates cfg like NewSender. Each scripted sample counts
// as one packet sent at its Sent time; Lost samples are losses.
func NewFakeSender(cfg SenderConfig, log *zap.Logger, script []Sample) (*FakeSender, error) {
	s, err := newSender(cfg, log)
	if err != nil {
		return nil, err
	}
	if len(script) > 0 {
		s.epoch = script[0].Sent
		s.total.reset(s.epoch)
	}
	return &FakeSender{s: s, script: script}, nil
}

// Run replays the script, reports every window, and returns.
func (f *FakeSender) Run(ctx context.Context) error {
	for i := range f.script {
		if ctx.Err() != nil {
			break
		}
		sm := f.script[i]
		f.s.mu.Lock()
		f.s.total.sent()
		f.s.windowAt(sm.Sent).sent()
		f.s.mu.Unlock()
		f.s.record(&sm)
	}
	f.s.flushWindows(true)
	return nil
}

// Metrics is the whole replayed session's metrics.
func (f *FakeSender) Metrics() Metrics { return f.s.Metrics() }

// State is the replayed session's liveness.
func (f *FakeSender) State() SessionState { return f.s.State() }
