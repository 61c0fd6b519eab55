package dataplane

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// conn is a raw rtnetlink socket. Requests go out many per sendmsg without
// NLM_F_ACK: rtnetlink handles a sendmsg synchronously, so when it returns
// every failed request of that batch has queued its error and the rest
// succeeded. That keeps a 10,000-route apply to a handful of syscalls.
type conn struct {
	fd    int
	seq   uint32
	rbuf  []byte
	chunk int // bytes per sendmsg
	sent  int // change requests sent (dumps not counted)
}

const (
	connRcvBuf  = 8 << 20
	connSndBuf  = 1 << 20
	dumpTimeout = 10 * time.Second
	dumpRetries = 3
)

// inNetns runs fn with the calling goroutine's thread in ns (the current
// namespace when ns is not open). If the thread cannot be moved back it
// stays locked, so the Go runtime retires it instead of reusing it.
func inNetns(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("return to network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func openConn(ns netns.NsHandle) (*conn, error) {
	c := &conn{rbuf: make([]byte, recvBuf), chunk: 64 << 10}
	err := inNetns(ns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(c.fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	for _, o := range []int{unix.NETLINK_CAP_ACK, unix.NETLINK_EXT_ACK, unix.NETLINK_GET_STRICT_CHK} {
		// Best effort: old kernels lack some; the code copes without them.
		_ = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, o, 1)
	}
	// Room for the errors of a whole chunk. Without CAP_NET_ADMIN the
	// FORCE variants fail; then smaller chunks keep within the default.
	if unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, connRcvBuf) != nil {
		c.chunk = 8 << 10
	}
	_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, connSndBuf)
	tv := unix.NsecToTimeval(dumpTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(c.fd)
		return nil, fmt.Errorf("netlink receive timeout: %w", err)
	}
	return c, nil
}

func (c *conn) close() error { return unix.Close(c.fd) }

// nextSeq numbers requests consecutively (wrapping through 0 is fine:
// the kernel only echoes the number).
func (c *conn) nextSeq() uint32 {
	c.seq++
	return c.seq
}

var errLostReplies = errors.New("netlink replies lost (receive buffer overrun): outcome unknown")

// streamMin is the request count from which encoding runs in its own
// goroutine, overlapping with the kernel working through the previous
// chunk (on a 2-core CPE that hides most of the encoding).
const streamMin = 512

// exec sends n requests, request j encoded by enc(j, w, seq) with
// consecutive sequence numbers starting at first, and returns the failed
// ones by sequence number. A transport error means the outcome of every
// request not yet confirmed is unknown.
func (c *conn) exec(n int, first uint32, enc func(j int, w *wbuf, seq uint32)) (map[uint32]*nlError, error) {
	failed := make(map[uint32]*nlError)
	if err := c.drain(nil); err != nil {
		return failed, err
	}
	c.sent += n
	if n < streamMin {
		var w wbuf
		for j := 0; j < n; j++ {
			if len(w.b) >= c.chunk {
				if err := c.send(w.b, failed); err != nil {
					return failed, err
				}
				w.b = w.b[:0]
			}
			enc(j, &w, first+uint32(j))
		}
		if len(w.b) == 0 {
			return failed, nil
		}
		return failed, c.send(w.b, failed)
	}
	chunks := make(chan []byte, 2)
	free := make(chan []byte, 3)
	stop := make(chan struct{})
	go func() {
		defer close(chunks)
		var w wbuf
		for j := 0; j < n; {
			select {
			case w.b = <-free:
				w.b = w.b[:0]
			default:
				w.b = make([]byte, 0, c.chunk+4096)
			}
			for ; j < n && len(w.b) < c.chunk; j++ {
				enc(j, &w, first+uint32(j))
			}
			select {
			case chunks <- w.b:
			case <-stop:
				return
			}
		}
	}()
	var err error
	for b := range chunks {
		if err == nil {
			if err = c.send(b, failed); err != nil {
				close(stop)
			}
		}
		select {
		case free <- b:
		default:
		}
	}
	return failed, err
}

// send writes one datagram of requests and collects their errors.
func (c *conn) send(b []byte, failed map[uint32]*nlError) error {
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	return c.drain(failed)
}

// recvBuf holds one netlink datagram. The kernel sizes dump datagrams to
// the reader's buffer but at most 32 KiB, and acknowledgements are small,
// so 64 KiB is ample; a datagram that still does not fit is an error, never
// silently cut short.
const recvBuf = 64 << 10

// recv reads one datagram into c.rbuf.
func (c *conn) recv(flags int) (int, error) {
	n, _, rflags, _, err := unix.Recvmsg(c.fd, c.rbuf, nil, flags)
	if err == nil && rflags&unix.MSG_TRUNC != 0 {
		return 0, fmt.Errorf("netlink receive: a datagram is larger than the %d-byte buffer", len(c.rbuf))
	}
	return n, err
}

// drain reads every queued message without blocking, recording errors.
func (c *conn) drain(failed map[uint32]*nlError) error {
	for {
		n, err := c.recv(unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOBUFS) {
			return errLostReplies
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		err = eachMsg(c.rbuf[:n], func(typ, flags uint16, _ uint32, body []byte) error {
			if typ != unix.NLMSG_ERROR || failed == nil {
				return nil
			}
			seq, e, err := decodeError(body, flags)
			if err != nil {
				return err
			}
			if e != nil {
				failed[seq] = e
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

// eachMsg walks the netlink messages in one datagram.
func eachMsg(b []byte, fn func(typ, flags uint16, seq uint32, body []byte) error) error {
	for len(b) >= sizeofNlmsghdr {
		l := int(ne.Uint32(b))
		if l < sizeofNlmsghdr || l > len(b) {
			return fmt.Errorf("netlink message length %d: %w", l, errShort)
		}
		if err := fn(ne.Uint16(b[4:]), ne.Uint16(b[6:]), ne.Uint32(b[8:]), b[sizeofNlmsghdr:l]); err != nil {
			return err
		}
		if a := align4(l); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	return nil
}

var errDumpInterrupted = errors.New("netlink dump interrupted by a concurrent change")

// dump sends one dump request (built by req with the given seq) and hands
// every answer body to fn. An interrupted dump is retried from scratch.
func (c *conn) dump(req func(w *wbuf, seq uint32), reset func(), fn func(typ uint16, body []byte) error) error {
	var err error
	for try := 0; try < dumpRetries; try++ {
		reset()
		if err = c.dumpOnce(req, fn); !errors.Is(err, errDumpInterrupted) {
			return err
		}
	}
	return err
}

func (c *conn) dumpOnce(req func(w *wbuf, seq uint32), fn func(typ uint16, body []byte) error) error {
	if err := c.drain(nil); err != nil {
		return err
	}
	var w wbuf
	seq := c.nextSeq()
	req(&w, seq)
	if err := unix.Sendto(c.fd, w.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink dump request: %w", err)
	}
	interrupted := false
	deadline := time.Now().Add(dumpTimeout)
	for time.Now().Before(deadline) {
		n, err := c.recv(0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink dump receive: %w", err)
		}
		done := false
		err = eachMsg(c.rbuf[:n], func(typ, flags uint16, s uint32, body []byte) error {
			if s != seq {
				return nil
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch typ {
			case unix.NLMSG_DONE:
				done = true
				return nil
			case unix.NLMSG_ERROR:
				_, e, err := decodeError(body, flags)
				if err != nil {
					return err
				}
				if e != nil {
					return fmt.Errorf("netlink dump: %w", e)
				}
				done = true
				return nil
			}
			return fn(typ, body)
		})
		if err != nil {
			return err
		}
		if done {
			if interrupted {
				return errDumpInterrupted
			}
			return nil
		}
	}
	return errors.New("netlink dump: no end after " + dumpTimeout.String())
}
