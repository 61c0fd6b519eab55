package dataplane

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The seg6 tunnel source ("ip sr tunsrc"): the outer IPv6 source of every
// packet this namespace encapsulates (H.Encaps). The SID filter of a peer
// admits only sources inside our locator, so the agent sets it to an
// address of the locator. It is a per-namespace setting of the SEG6
// generic-netlink family (net/ipv6/seg6.c), which vishvananda/netlink does
// not wrap; these few messages are written by hand.

const (
	genlCtrlID          = unix.GENL_ID_CTRL
	genlCtrlGetFamily   = unix.CTRL_CMD_GETFAMILY
	genlCtrlAttrName    = unix.CTRL_ATTR_FAMILY_NAME
	genlCtrlAttrID      = unix.CTRL_ATTR_FAMILY_ID
	seg6GenlName        = "SEG6"
	seg6GenlVersion     = 1
	seg6CmdSetTunsrc    = 3 // SEG6_CMD_SET_TUNSRC
	seg6CmdGetTunsrc    = 4 // SEG6_CMD_GET_TUNSRC
	seg6AttrDst         = 1 // SEG6_ATTR_DST
	sizeofGenlmsghdr    = 4
	genlReplyBufferSize = 8192
)

// genl is a short-lived generic-netlink socket in one namespace.
type genl struct {
	fd  int
	seq uint32
	buf []byte
}

func openGenl(k *Kernel) (*genl, error) {
	g := &genl{buf: make([]byte, genlReplyBufferSize)}
	err := inNetns(k.ns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
		if err != nil {
			return fmt.Errorf("generic netlink socket: %w", err)
		}
		g.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(g.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(g.fd)
		return nil, fmt.Errorf("generic netlink bind: %w", err)
	}
	tv := unix.NsecToTimeval(dumpTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(g.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(g.fd)
		return nil, fmt.Errorf("generic netlink receive timeout: %w", err)
	}
	return g, nil
}

func (g *genl) close() { unix.Close(g.fd) }

// request sends one message (family, cmd, attributes written by put) with
// NLM_F_ACK and returns the attributes of the reply message carrying its
// sequence number (nil when the kernel only acknowledged).
func (g *genl) request(family uint16, cmd uint8, put func(w *wbuf)) ([]byte, error) {
	var reply []byte
	// A reply and an ACK; stray messages are skipped.
	err := g.exchange(family, cmd, unix.NLM_F_ACK, put, 16, func(body []byte) error {
		reply = append([]byte(nil), body...)
		return nil
	})
	return reply, err
}

// exchange sends one request (family, cmd, extra flags, attributes written
// by put) and hands the attributes of every reply message of the family to
// fn, until the kernel's NLMSG_DONE or acknowledgement, reading at most
// maxReads datagrams (a request that never ends is not one to trust).
func (g *genl) exchange(family uint16, cmd uint8, flags uint16, put func(w *wbuf), maxReads int, fn func(attrs []byte) error) error {
	g.seq++
	var w wbuf
	off := w.begin(family, unix.NLM_F_REQUEST|flags, g.seq)
	w.b = append(w.b, cmd, seg6GenlVersion, 0, 0)
	if put != nil {
		put(&w)
	}
	w.end(off)
	if err := unix.Sendto(g.fd, w.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("generic netlink send: %w", err)
	}
	for range maxReads {
		n, _, err := unix.Recvfrom(g.fd, g.buf, 0)
		if err != nil {
			return fmt.Errorf("generic netlink receive: %w", err)
		}
		done := false
		err = eachMsg(g.buf[:n], func(typ, mflags uint16, seq uint32, body []byte) error {
			if seq != g.seq || done {
				return nil
			}
			switch typ {
			case unix.NLMSG_DONE:
				done = true
			case unix.NLMSG_ERROR:
				done = true
				_, e, perr := decodeError(body, mflags)
				if perr != nil {
					return perr
				}
				if e != nil {
					return e
				}
			case family:
				if len(body) < sizeofGenlmsghdr {
					return fmt.Errorf("generic netlink message of %d bytes: %w", len(body), errShort)
				}
				return fn(body[sizeofGenlmsghdr:])
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	return fmt.Errorf("generic netlink: request %d did not end after %d reads", g.seq, maxReads)
}

// seg6Family resolves the SEG6 family id.
func (g *genl) seg6Family() (uint16, error) {
	a, err := g.request(genlCtrlID, genlCtrlGetFamily, func(w *wbuf) {
		w.attr(genlCtrlAttrName, append([]byte(seg6GenlName), 0))
	})
	if err != nil {
		return 0, fmt.Errorf("generic netlink family %s (kernel without IPv6 segment routing?): %w", seg6GenlName, err)
	}
	var id uint16
	_ = attrs(a, func(t uint16, v []byte) error {
		if t == genlCtrlAttrID && len(v) >= 2 {
			id = ne.Uint16(v)
		}
		return nil
	})
	if id == 0 {
		return 0, fmt.Errorf("generic netlink family %s: no id in the reply", seg6GenlName)
	}
	return id, nil
}

// tunnelSource reads the namespace's seg6 tunnel source (zero when unset).
func (k *Kernel) tunnelSource() (netip.Addr, error) {
	g, err := openGenl(k)
	if err != nil {
		return netip.Addr{}, err
	}
	defer g.close()
	fam, err := g.seg6Family()
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := g.request(fam, seg6CmdGetTunsrc, nil)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read seg6 tunnel source: %w", err)
	}
	return decodeTunsrc(a)
}

// decodeTunsrc reads SEG6_ATTR_DST from a GET_TUNSRC reply.
func decodeTunsrc(a []byte) (netip.Addr, error) {
	var out netip.Addr
	err := attrs(a, func(t uint16, v []byte) error {
		if t != seg6AttrDst {
			return nil
		}
		if len(v) != 16 {
			return fmt.Errorf("seg6 tunnel source of %d bytes", len(v))
		}
		out = netip.AddrFrom16([16]byte(v))
		return nil
	})
	if err != nil {
		return netip.Addr{}, err
	}
	if out.IsUnspecified() {
		out = netip.Addr{}
	}
	return out, nil
}

// setTunnelSource sets the namespace's seg6 tunnel source (:: for zero).
func (k *Kernel) setTunnelSource(a netip.Addr) error {
	g, err := openGenl(k)
	if err != nil {
		return err
	}
	defer g.close()
	fam, err := g.seg6Family()
	if err != nil {
		return err
	}
	x := netip.IPv6Unspecified().As16()
	if a.IsValid() {
		x = a.As16()
	}
	if _, err := g.request(fam, seg6CmdSetTunsrc, func(w *wbuf) { w.attr(seg6AttrDst, x[:]) }); err != nil {
		return fmt.Errorf("set seg6 tunnel source %s: %w", a, err)
	}
	return nil
}

// validTunnelSource checks a desired tunnel source (zero = leave alone).
func validTunnelSource(a netip.Addr) error {
	if !a.IsValid() {
		return nil
	}
	if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Zone() != "" {
		return fmt.Errorf("tunnel source %s: not a unicast IPv6 address", a)
	}
	return nil
}

// ensureTunnelSource sets the tunnel source when want is set and differs
// from the kernel's (read every Apply: level-triggered, so a change behind
// our back is undone).
func (k *Kernel) ensureTunnelSource(want netip.Addr, ae *ApplyError) {
	if !want.IsValid() {
		return
	}
	cur, err := k.tunnelSource()
	if err == nil && cur == want {
		k.status.TunnelSource = cur
		return
	}
	if err == nil {
		err = k.setTunnelSource(want)
	}
	if err != nil {
		ae.Failed = append(ae.Failed, OpError{Op: "set seg6 tunnel source " + want.String(), Err: err})
		return
	}
	k.status.TunnelSource = want
	ae.Applied++
}
