package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The probe tries each feature on throwaway routes in the RFC 6666
// discard-only prefix 100::/64, with our protocol, and deletes them again.

const (
	probeVRF      = "s6cpe-probe"
	probeTable    = 0xc6c6
	probeNHID     = 0xc6ffff00
	probeRulePrio = 0xc6c6
)

// probeRule is the rule the DSCP probe installs: it looks up a table
// nothing routes in, at a priority after "lookup main", so it is never
// reached even for the instant it exists.
var probeRule = krule{Family: unix.AF_INET, Prio: probeRulePrio, Action: frActToTbl, Table: probeTable, DSCP: 46, HasDSCP: true}

func probeSID(n byte) rkey {
	a := [16]byte{0x01, 0x00, 14: 0xc6, 15: n}
	return rkey{Family: unix.AF_INET6, Table: tableMain, Dst: netip.PrefixFrom(netip.AddrFrom16(a), 128)}
}

var probeSeg = segList(string([]byte{0x01, 0x00, 14: 0xc6, 15: 0xff}))

// try sends one request and returns the kernel's verdict.
func (k *Kernel) try(build func(w *wbuf, seq uint32)) error {
	failed, err := k.run(1, func(_ int, w *wbuf, seq uint32) { build(w, seq) })
	if err != nil {
		return err
	}
	if e, ok := failed[0]; ok {
		return e
	}
	return nil
}

// tryRoute installs a probe route and removes it again.
func (k *Kernel) tryRoute(key rkey, v rval, nhid uint32) error {
	if err := k.try(func(w *wbuf, seq uint32) { w.putRoute(seq, key, v, nhid, false) }); err != nil {
		return err
	}
	return k.try(func(w *wbuf, seq uint32) { w.delRoute(seq, key, prioOf(key.Family)) })
}

// probe finds what the kernel can do by trying it. Notes say why a
// feature is missing.
func (k *Kernel) probe() (Capabilities, []string) {
	var caps Capabilities
	var notes []string
	note := func(what string, err error) bool {
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", what, err))
			return false
		}
		return true
	}
	k.probeCleanup()
	lo, err := k.h.LinkByName("lo")
	if !note("loopback", err) {
		return caps, notes
	}
	// Routes on a down device are refused, so with lo down every probe
	// would fail and the kernel would look able to do nothing. Loopback is
	// always up on a working system (a fresh namespace is the exception).
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if !note("bring loopback up", k.h.LinkSetUp(lo)) {
			return caps, notes
		}
		notes = append(notes, "loopback was down: brought it up")
	}
	dev := lo.Attrs().Index

	if vrf, err := k.addProbeVRF(); note("VRF device", err) {
		caps.VRF = true
		caps.EndDT4 = note("End.DT4 vrftable", k.tryRoute(probeSID(1), rval{Kind: kindLocal, Dev: dev, Action: actEndDT4, VRFTable: probeTable}, 0))
		caps.EndDT46 = note("End.DT46 vrftable", k.tryRoute(probeSID(2), rval{Kind: kindLocal, Dev: dev, Action: actEndDT46, VRFTable: probeTable}, 0))
		note("delete probe VRF", k.h.LinkDel(vrf))
	}
	caps.EndDT6Table = note("End.DT6 table", k.tryRoute(probeSID(3), rval{Kind: kindLocal, Dev: dev, Action: actEndDT6, Table: probeTable}, 0))
	caps.EndB6Encaps = note("End.B6.Encaps", k.tryRoute(probeSID(4), rval{Kind: kindLocal, Dev: dev, Action: actEndB6Enc, Segs: probeSeg}, 0))
	caps.EncapRed = note("seg6 encap.red", k.tryRoute(probeSID(5), rval{Kind: kindEncap, Dev: dev, Mode: seg6ModeRed, Segs: probeSeg}, 0))
	caps.NexthopObjects = note("nexthop object with seg6 encap", k.probeNexthop(dev))
	caps.EndBPF = note("End.BPF", k.probeBPF(dev))
	caps.RuleDSCP = note("rule DSCP selector (FRA_DSCP)", k.probeRuleDSCP())
	return caps, notes
}

// probeCleanup removes what a probe that crashed half-way may have left.
func (k *Kernel) probeCleanup() {
	for n := byte(1); n <= 7; n++ {
		key := probeSID(n)
		_ = k.try(func(w *wbuf, seq uint32) { w.delRoute(seq, key, prioOf(key.Family)) })
	}
	if l, err := k.h.LinkByName(probeVRF); err == nil && l.Type() == "vrf" {
		_ = k.h.LinkDel(l)
	}
	_ = k.try(func(w *wbuf, seq uint32) { w.rule(unix.RTM_DELRULE, unix.NLM_F_REQUEST, seq, probeRule) })
}

// probeRuleDSCP adds an IPv4 rule with FRA_DSCP and reads it back: a
// kernel older than 6.12 ignores the attribute it does not know and
// makes a rule without it.
func (k *Kernel) probeRuleDSCP() error {
	if err := k.try(func(w *wbuf, seq uint32) { w.putRule(seq, probeRule) }); err != nil {
		return err
	}
	rules, _, rerr := k.readRules()
	derr := k.try(func(w *wbuf, seq uint32) { w.rule(unix.RTM_DELRULE, unix.NLM_F_REQUEST, seq, probeRule) })
	if err := errors.Join(rerr, derr); err != nil {
		return err
	}
	if !slices.Contains(rules, probeRule) {
		return errors.New("the kernel made the rule without its DSCP selector")
	}
	return nil
}

func (k *Kernel) addProbeVRF() (*netlink.Vrf, error) {
	v := &netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: probeVRF}, Table: probeTable}
	if err := k.h.LinkAdd(v); err != nil {
		return nil, err
	}
	if err := k.h.LinkSetUp(v); err != nil {
		_ = k.h.LinkDel(v)
		return nil, err
	}
	return v, nil
}

// probeNexthop makes a seg6 nexthop object and a route using it. A
// nexthop needs a device with carrier: lo when it is up, else the WAN.
func (k *Kernel) probeNexthop(lo int) error {
	// The id must be free; one of ours left by a crashed probe goes.
	used := map[uint32]uint8{}
	err := k.c.dump(func(w *wbuf, seq uint32) { w.dumpNexthops(seq) }, func() { clear(used) }, func(typ uint16, body []byte) error {
		if n, err := decodeNexthop(body, nil); err == nil && typ == unix.RTM_NEWNEXTHOP {
			used[n.ID] = n.Proto
		}
		return nil
	})
	if err != nil {
		return err
	}
	if used[probeNHID] == RouteProtocol {
		_ = k.try(func(w *wbuf, seq uint32) { w.delNexthop(seq, probeNHID) })
		delete(used, probeNHID)
	}
	id := uint32(probeNHID)
	for _, taken := used[id]; taken; _, taken = used[id] {
		id++
	}
	spec := encapSpec{Mode: seg6ModeEnc, Dev: lo, Segs: probeSeg}
	err = k.try(func(w *wbuf, seq uint32) { w.putNexthop(seq, id, spec) })
	if errors.Is(err, unix.ENETDOWN) && k.opt.WANInterface != "" {
		if l, lerr := k.h.LinkByName(k.opt.WANInterface); lerr == nil {
			spec.Dev = l.Attrs().Index
			err = k.try(func(w *wbuf, seq uint32) { w.putNexthop(seq, id, spec) })
		}
	}
	if err != nil {
		return err
	}
	rerr := k.tryRoute(probeSID(6), rval{Kind: kindEncap}, id)
	derr := k.try(func(w *wbuf, seq uint32) { w.delNexthop(seq, id) })
	return errors.Join(rerr, derr)
}

// bpfProgLoad is the head of union bpf_attr for BPF_PROG_LOAD.
type bpfProgLoad struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
}

// probeBPF loads "return BPF_OK" as an lwt_seg6local program and installs
// an End.BPF route with it.
func (k *Kernel) probeBPF(dev int) error {
	insns := [][8]byte{
		{0xb7}, // mov64 r0, 0 (BPF_OK)
		{0x95}, // exit
	}
	license := []byte("GPL\x00")
	attr := bpfProgLoad{
		progType: unix.BPF_PROG_TYPE_LWT_SEG6LOCAL,
		insnCnt:  uint32(len(insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "srv6cpe_probe")
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if errno != 0 {
		return fmt.Errorf("load program: %w", errno)
	}
	defer unix.Close(int(fd))
	key := probeSID(7)
	err := k.try(func(w *wbuf, seq uint32) {
		off := w.begin(unix.RTM_NEWROUTE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL, seq)
		w.rtmsg(key.Family, 128, key.Table, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
		w.addr(unix.RTA_DST, key.Dst.Addr())
		w.u32(unix.RTA_TABLE, key.Table)
		w.u32(unix.RTA_PRIORITY, prio6)
		w.u32(unix.RTA_OIF, uint32(dev))
		w.u16(unix.RTA_ENCAP_TYPE, unix.LWTUNNEL_ENCAP_SEG6_LOCAL)
		n := w.nest(unix.RTA_ENCAP)
		w.u32(seg6LocalAction, actEndBPF)
		b := w.nest(seg6LocalBPF)
		w.u32(lwtBPFProgFD, uint32(fd))
		w.attr(lwtBPFProgName, []byte("srv6cpe_probe\x00"))
		w.endNest(b)
		w.endNest(n)
		w.end(off)
	})
	if err != nil {
		return err
	}
	return k.try(func(w *wbuf, seq uint32) { w.delRoute(seq, key, prio6) })
}
