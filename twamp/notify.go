package twamp

import (
	"math"
	"time"
)

// Notification state machines (draft-ietf-spring-stamp-srpm §5): pure, fed
// one sample at a time with the time passed in, so they are table-tested
// with an injected clock and know nothing of sockets.

// EventKind is the kind of a session notification.
type EventKind uint8

const (
	// EventUp: the first reply, or the first reply after Down.
	EventUp EventKind = iota + 1
	// EventDown: N consecutive losses once the session was up.
	EventDown
	// EventDelayAbove: delay above the threshold for M consecutive replies.
	EventDelayAbove
	// EventDelayNormal: delay back at or below the threshold for M replies.
	EventDelayNormal
	// EventLossAbove: X or more of the last Y packets lost.
	EventLossAbove
	// EventLossNormal: fewer than X of the last Y lost again.
	EventLossNormal
	// EventMetrics: a window's values moved enough to be re-announced.
	EventMetrics
)

func (k EventKind) String() string {
	switch k {
	case EventUp:
		return "up"
	case EventDown:
		return "down"
	case EventDelayAbove:
		return "delay-above"
	case EventDelayNormal:
		return "delay-normal"
	case EventLossAbove:
		return "loss-above"
	case EventLossNormal:
		return "loss-normal"
	case EventMetrics:
		return "metrics"
	}
	return "unknown"
}

// Event is one notification.
type Event struct {
	At      time.Time
	Session string
	Kind    EventKind
	Delay   time.Duration // the delay that crossed (delay events)
	Lost    int           // losses in the last Y (loss events)
	Metrics *Metrics      // EventMetrics
}

// NotifyConfig holds the thresholds. A zero threshold disables its monitor.
type NotifyConfig struct {
	// DelayThreshold (TH) and DelayCount (M): EventDelayAbove after M
	// consecutive replies with a delay above TH.
	DelayThreshold time.Duration
	DelayCount     int
	// LossX of the last LossY packets lost: EventLossAbove.
	LossX, LossY int
	// DownAfter (N) consecutive losses take an up session down.
	DownAfter int
	// Damping: a window's metrics are re-announced only when a value moved
	// by more than max(DampRelative × old, DampAbsolute); defaults 10 %
	// and 50 µs. Loss ratios use max(DampRelative × old, 0.1 %).
	DampRelative float64
	DampAbsolute time.Duration
}

// delayMonitor: M consecutive samples above TH raise, M at or below clear.
type delayMonitor struct {
	th    time.Duration
	m     int
	above bool
	run   int
}

func (d *delayMonitor) observe(delay time.Duration) (EventKind, bool) {
	if (delay > d.th) != d.above {
		d.run++
	} else {
		d.run = 0
	}
	if d.run >= d.m {
		d.run = 0
		d.above = !d.above
		if d.above {
			return EventDelayAbove, true
		}
		return EventDelayNormal, true
	}
	return 0, false
}

// lossMonitor keeps the outcome of the last Y packets.
type lossMonitor struct {
	x, y  int
	ring  []bool
	next  int
	lost  int
	above bool
}

func (l *lossMonitor) observe(lost bool) (EventKind, bool) {
	if len(l.ring) < l.y {
		l.ring = append(l.ring, lost)
	} else {
		if l.ring[l.next] {
			l.lost--
		}
		l.ring[l.next] = lost
		l.next = (l.next + 1) % l.y
	}
	if lost {
		l.lost++
	}
	switch {
	case !l.above && l.lost >= l.x:
		l.above = true
		return EventLossAbove, true
	case l.above && l.lost < l.x:
		l.above = false
		return EventLossNormal, true
	}
	return 0, false
}

// SessionState is the liveness of a session.
type SessionState uint8

const (
	// StateInit: no reply yet.
	StateInit SessionState = iota
	// StateUp: replies are coming back.
	StateUp
	// StateDown: DownAfter consecutive losses after being up.
	StateDown
)

func (s SessionState) String() string {
	return [...]string{"init", "up", "down"}[s]
}

type livenessMonitor struct {
	n      int
	state  SessionState
	losses int
}

func (l *livenessMonitor) observe(lost bool) (EventKind, bool) {
	if !lost {
		l.losses = 0
		if l.state != StateUp {
			l.state = StateUp
			return EventUp, true
		}
		return 0, false
	}
	l.losses++
	if l.state == StateUp && l.n > 0 && l.losses >= l.n {
		l.state = StateDown
		return EventDown, true
	}
	return 0, false
}

// damper re-announces a value only when it moved far enough.
type damper struct {
	rel  float64
	abs  float64
	last float64
	have bool
}

func (d *damper) moved(v float64) bool {
	if !d.have {
		return true
	}
	return math.Abs(v-d.last) > math.Max(d.rel*math.Abs(d.last), d.abs)
}

// Notifier runs every monitor of one session.
type Notifier struct {
	session  string
	delay    *delayMonitor
	loss     *lossMonitor
	live     livenessMonitor
	avg, p99 damper
	jitter   damper
	lossR    damper
}

// NewNotifier returns the monitors for a session named session.
func NewNotifier(session string, c NotifyConfig) *Notifier {
	rel := c.DampRelative
	if rel <= 0 {
		rel = 0.10
	}
	abs := c.DampAbsolute
	if abs <= 0 {
		abs = 50 * time.Microsecond
	}
	n := &Notifier{session: session, live: livenessMonitor{n: c.DownAfter}}
	n.avg = damper{rel: rel, abs: float64(abs)}
	n.p99, n.jitter = n.avg, n.avg
	n.lossR = damper{rel: rel, abs: 0.001}
	if c.DelayThreshold > 0 {
		n.delay = &delayMonitor{th: c.DelayThreshold, m: max(c.DelayCount, 1)}
	}
	if c.LossX > 0 && c.LossY >= c.LossX {
		n.loss = &lossMonitor{x: c.LossX, y: c.LossY}
	}
	return n
}

// State is the session's liveness.
func (n *Notifier) State() SessionState { return n.live.state }

// Observe feeds one sample at time now and appends the events it causes.
func (n *Notifier) Observe(now time.Time, s Sample, evs []Event) []Event {
	if k, ok := n.live.observe(s.Lost); ok {
		evs = append(evs, Event{At: now, Session: n.session, Kind: k})
	}
	if n.loss != nil {
		if k, ok := n.loss.observe(s.Lost); ok {
			evs = append(evs, Event{At: now, Session: n.session, Kind: k, Lost: n.loss.lost})
		}
	}
	if n.delay != nil && !s.Lost {
		if k, ok := n.delay.observe(s.RTT); ok {
			evs = append(evs, Event{At: now, Session: n.session, Kind: k, Delay: s.RTT})
		}
	}
	return evs
}

// Window offers a window's metrics; it returns an EventMetrics event when
// the average or p99 delay, the jitter or the loss ratio moved by more than
// the damping allows since the last announcement (or on the first window).
func (n *Notifier) Window(now time.Time, m Metrics) (Event, bool) {
	avg, p99, jit, loss := float64(m.RTT.Avg), float64(m.RTT.P99), float64(m.Jitter), m.LossRatio()
	if !n.avg.moved(avg) && !n.p99.moved(p99) && !n.jitter.moved(jit) && !n.lossR.moved(loss) {
		return Event{}, false
	}
	for _, u := range []struct {
		d *damper
		v float64
	}{{&n.avg, avg}, {&n.p99, p99}, {&n.jitter, jit}, {&n.lossR, loss}} {
		u.d.last, u.d.have = u.v, true
	}
	return Event{At: now, Session: n.session, Kind: EventMetrics, Metrics: &m}, true
}
