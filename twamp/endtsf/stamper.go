package endtsf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/srv6cpe/srv6cpe/twamp"
)

// SID is one End.TSF SID of this node.
type SID struct {
	// Addr is the SID. Its seg6local route is a plain End.DX6 (or any
	// decapsulating behaviour) the dataplane installs as usual.
	Addr netip.Addr
	// Mode of the probes: T2 goes at payload offset 16 (unauthenticated)
	// or 32 (authenticated).
	Mode twamp.Mode
	// Port is the inner UDP destination port to stamp; 0 stamps any port
	// (a loopback probe returns to the sender's own, ephemeral, port).
	Port uint16
}

// Stamper holds the loaded program and its maps, and the tcx links that
// attach it to the node's ingress interfaces. Its setters are
// level-triggered: each call states the whole wanted set. Nothing is
// pinned: when the process exits, the kernel detaches and frees it all.
type Stamper struct {
	log *zap.Logger

	mu    sync.Mutex
	sids  *ebpf.Map
	clock *ebpf.Map
	progs map[int32]*ebpf.Program // by link header length
	links map[int]link.Link       // by ifindex
	names map[int]string
	have  map[netip.Addr]sidValue
}

// New loads the program (for Ethernet and for L3 links) and its maps; it
// attaches nothing yet. The clock correction is set once (SyncClock).
func New(log *zap.Logger) (*Stamper, error) {
	sids, err := ebpf.NewMap(&ebpf.MapSpec{Name: "endtsf_sids", Type: ebpf.Hash, KeySize: 16, ValueSize: 8, MaxEntries: maxSIDs})
	if err != nil {
		return nil, fmt.Errorf("end.tsf: SID map: %w", err)
	}
	clock, err := ebpf.NewMap(&ebpf.MapSpec{Name: "endtsf_clock", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		sids.Close()
		return nil, fmt.Errorf("end.tsf: clock map: %w", err)
	}
	s := &Stamper{log: log, sids: sids, clock: clock, progs: map[int32]*ebpf.Program{},
		links: map[int]link.Link{}, names: map[int]string{}, have: map[netip.Addr]sidValue{}}
	for _, l2 := range []int32{0, 14} {
		p, err := ebpf.NewProgram(programSpec(l2, sids, clock))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("end.tsf: load the stamping program (link header %d octets): %w", l2, err)
		}
		s.progs[l2] = p
	}
	if err := s.SyncClock(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ClockCorrection is what the program adds to CLOCK_TAI so that T2 has the
// twamp package's PTP convention (UTC + twamp.SystemTAIOffset): when no
// time daemon told the kernel the TAI−UTC offset, CLOCK_TAI equals UTC and
// the correction is the default 37 s; once it did, the correction is 0.
func ClockCorrection() time.Duration {
	var tx unix.Timex
	kernel := time.Duration(0)
	if _, err := unix.Adjtimex(&tx); err == nil && tx.Tai > 0 {
		kernel = time.Duration(tx.Tai) * time.Second
	}
	return twamp.SystemTAIOffset() - kernel
}

// SyncClock refreshes the clock correction; call it after the time daemon
// may have set the kernel's TAI offset (it does so once, at sync).
func (s *Stamper) SyncClock() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := ClockCorrection()
	if err := s.clock.Put(uint32(0), uint64(c)); err != nil {
		return fmt.Errorf("end.tsf: clock correction %v: %w", c, err)
	}
	return nil
}

// ClockRefresh is how often Run refreshes the clock correction.
const ClockRefresh = time.Minute

// Run keeps the clock correction current (a time daemon sets the kernel's
// TAI offset once, when it first syncs) until ctx ends. Failures are
// logged; T2 keeps the last correction.
func (s *Stamper) Run(ctx context.Context) {
	t := time.NewTicker(ClockRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.SyncClock(); err != nil {
				s.log.Warn("end.tsf clock correction not refreshed", zap.Error(err))
			}
		}
	}
}

// SetSIDs makes the program stamp exactly these SIDs.
func (s *Stamper) SetSIDs(sids []SID) error {
	want := map[netip.Addr]sidValue{}
	for _, sid := range sids {
		if !sid.Addr.Is6() || sid.Addr.Is4In6() {
			return fmt.Errorf("end.tsf: SID %v is not an IPv6 address", sid.Addr)
		}
		if sid.Mode != twamp.Unauthenticated && sid.Mode != twamp.Authenticated {
			return fmt.Errorf("end.tsf: SID %v: unknown mode %d", sid.Addr, sid.Mode)
		}
		if _, dup := want[sid.Addr]; dup {
			return fmt.Errorf("end.tsf: SID %v given twice", sid.Addr)
		}
		want[sid.Addr] = valueOf(sid)
	}
	if len(want) > maxSIDs {
		return fmt.Errorf("end.tsf: %d SIDs, at most %d", len(want), maxSIDs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for a := range s.have {
		if _, keep := want[a]; keep {
			continue
		}
		if err := s.sids.Delete(sidKey(a)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("end.tsf: remove SID %v: %w", a, err))
			continue
		}
		delete(s.have, a)
	}
	for a, v := range want {
		if old, ok := s.have[a]; ok && old == v {
			continue
		}
		if err := s.sids.Put(sidKey(a), v.marshal()); err != nil {
			errs = append(errs, fmt.Errorf("end.tsf: add SID %v: %w", a, err))
			continue
		}
		s.have[a] = v
	}
	return errors.Join(errs...)
}

// SetInterfaces attaches the program at tcx ingress of exactly these
// interfaces (by name), detaching it from any other. An interface that
// was recreated under the same name is attached again.
func (s *Stamper) SetInterfaces(names []string) error {
	type target struct {
		name string
		l2   int32
	}
	want := map[int]target{}
	var errs []error
	for _, n := range names {
		ifc, err := net.InterfaceByName(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("end.tsf: interface %q: %w", n, err))
			continue
		}
		// An Ethernet-style link (veth, NIC, bridge, loopback) shows the
		// program its 14-octet header; L3 links (PPP, WireGuard, tun) none.
		var l2 int32
		if len(ifc.HardwareAddr) == 6 {
			l2 = 14
		}
		want[ifc.Index] = target{n, l2}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for idx, l := range s.links {
		if t, keep := want[idx]; keep && t.name == s.names[idx] {
			continue
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("end.tsf: detach from %q: %w", s.names[idx], err))
		}
		delete(s.links, idx)
		delete(s.names, idx)
	}
	idxs := make([]int, 0, len(want))
	for idx := range want {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	for _, idx := range idxs {
		if _, ok := s.links[idx]; ok {
			continue
		}
		t := want[idx]
		l, err := link.AttachTCX(link.TCXOptions{Interface: idx, Program: s.progs[t.l2], Attach: ebpf.AttachTCXIngress})
		if err != nil {
			errs = append(errs, fmt.Errorf("end.tsf: attach at tcx ingress of %q: %w", t.name, err))
			continue
		}
		s.links[idx], s.names[idx] = l, t.name
		s.log.Info("end.tsf stamping attached", zap.String("interface", t.name), zap.Int32("link_header", t.l2))
	}
	return errors.Join(errs...)
}

// Close detaches the program everywhere and frees it.
func (s *Stamper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for idx, l := range s.links {
		errs = append(errs, l.Close())
		delete(s.links, idx)
	}
	for l2, p := range s.progs {
		errs = append(errs, p.Close())
		delete(s.progs, l2)
	}
	errs = append(errs, s.sids.Close(), s.clock.Close())
	return errors.Join(errs...)
}
