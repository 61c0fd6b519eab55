package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// SRH HMAC (RFC 8754 §2.1.2). Three kernel pieces:
//   - the namespace's key table (SEG6_CMD_SETHMAC / SEG6_CMD_DUMPHMAC of the
//     SEG6 generic-netlink family, net/ipv6/seg6.c);
//   - an HMAC TLV in the SRH of an encap route: the kernel fills in the
//     digest with the key of that id for every packet (seg6_push_hmac);
//   - net.ipv6.conf.<wan>.seg6_require_hmac=1: packets arriving on the WAN
//     with an SRH but without a valid HMAC are dropped at our SIDs.
//
// The kernel gap: seg6_require_hmac only judges packets that carry an SRH
// (seg6local's decap_and_validate checks HMAC "if (srh && ...)"). Linux
// H.Encaps always sends one, but H.Encaps.Red with one segment does not,
// nor does a plain IPv4/IPv6-in-IPv6 packet an attacker crafts, and
// End.DX4/DT4/DT6/DT46 decapsulate those unchecked (TestKernelHMACTraffic
// shows it). The SID filter (rules.go, by outer source) is what covers
// them; HMAC adds integrity of the SRH for the packets that have one.

const (
	seg6CmdSetHMAC   = 1 // SEG6_CMD_SETHMAC
	seg6CmdDumpHMAC  = 2 // SEG6_CMD_DUMPHMAC
	seg6AttrKeyID    = 3 // SEG6_ATTR_HMACKEYID (u32)
	seg6AttrSecret   = 4 // SEG6_ATTR_SECRET
	seg6AttrSecLen   = 5 // SEG6_ATTR_SECRETLEN (u8)
	seg6AttrAlgID    = 6 // SEG6_ATTR_ALGID (u8)
	sr6FlagHMAC      = 1 << 3
	sr6TLVHMAC       = 5  // SR6_TLV_HMAC
	hmacTLVLen       = 40 // type, len, reserved(2), key id(4), digest(32)
	hmacMaxSecretLen = 64 // SEG6_HMAC_SECRET_LEN
	// HMACMinSecretLen is the shortest secret accepted: the digest length
	// of the weakest algorithm (RFC 2104 §3: shorter keys weaken it).
	HMACMinSecretLen = 20
)

// HMAC key ids the dataplane owns. Apply makes the kernel's keys in this
// range equal to the desired ones (removing those no longer desired) and
// never touches keys outside it, which belong to whoever set them
// (ip sr hmac). Encap routes may use any id of the desired table.
const (
	HMACKeyIDMin = 1
	HMACKeyIDMax = 0xffff
)

// HMACAlgorithm is a kernel SEG6_HMAC_ALGO_* value.
type HMACAlgorithm uint8

const (
	HMACSHA1   HMACAlgorithm = 1
	HMACSHA256 HMACAlgorithm = 2
)

func (a HMACAlgorithm) String() string {
	switch a {
	case HMACSHA1:
		return "sha1"
	case HMACSHA256:
		return "sha256"
	}
	return "algorithm " + strconv.Itoa(int(a))
}

// ParseHMACAlgorithm reads "sha256" or "sha1" ("" = sha256).
func ParseHMACAlgorithm(s string) (HMACAlgorithm, error) {
	switch s {
	case "", "sha256":
		return HMACSHA256, nil
	case "sha1":
		return HMACSHA1, nil
	}
	return 0, fmt.Errorf("HMAC algorithm %q: not one of sha256, sha1", s)
}

// HMACKey is one entry of the namespace's HMAC key table.
type HMACKey struct {
	ID        uint32
	Algorithm HMACAlgorithm
	Secret    []byte
}

// String never shows the secret.
func (k HMACKey) String() string {
	return fmt.Sprintf("hmac key %d %s (%d-byte secret)", k.ID, k.Algorithm, len(k.Secret))
}

// GoString keeps %#v from printing the secret too.
func (k HMACKey) GoString() string { return k.String() }

// HMACState is the namespace's SRH HMAC setting.
type HMACState struct {
	// Keys is the wanted key table (ids in HMACKeyIDMin..HMACKeyIDMax).
	Keys []HMACKey
	// Require sets seg6_require_hmac=1 on the WAN interface (0 when false).
	Require bool
}

// validHMAC checks h and the key ids the encap routes use against it.
func validHMAC(h *HMACState, encaps []EncapRoute, wan string) error {
	ids := make(map[uint32]bool)
	if h != nil {
		for _, k := range h.Keys {
			if k.ID < HMACKeyIDMin || k.ID > HMACKeyIDMax {
				return fmt.Errorf("HMAC key id %d: outside %d..%d", k.ID, HMACKeyIDMin, HMACKeyIDMax)
			}
			if ids[k.ID] {
				return fmt.Errorf("HMAC key id %d: listed twice", k.ID)
			}
			ids[k.ID] = true
			if k.Algorithm != HMACSHA1 && k.Algorithm != HMACSHA256 {
				return fmt.Errorf("HMAC key id %d: unknown %s", k.ID, k.Algorithm)
			}
			if n := len(k.Secret); n < HMACMinSecretLen || n > hmacMaxSecretLen {
				return fmt.Errorf("HMAC key id %d: secret of %d bytes, want %d..%d", k.ID, n, HMACMinSecretLen, hmacMaxSecretLen)
			}
		}
		if h.Require && wan == "" {
			return fmt.Errorf("HMAC required but no WAN interface to require it on")
		}
	}
	for _, e := range encaps {
		if e.HMACKeyID != 0 && !ids[e.HMACKeyID] {
			return fmt.Errorf("encap route %s: HMAC key id %d is not in the HMAC key table", e.Prefix, e.HMACKeyID)
		}
	}
	return nil
}

// normHMAC is the form Installed reads back: nil when there is nothing
// to hold, keys sorted by id.
func normHMAC(h *HMACState) *HMACState {
	if h == nil || (len(h.Keys) == 0 && !h.Require) {
		return nil
	}
	out := &HMACState{Require: h.Require, Keys: make([]HMACKey, len(h.Keys))}
	for i, k := range h.Keys {
		out.Keys[i] = HMACKey{ID: k.ID, Algorithm: k.Algorithm, Secret: bytes.Clone(k.Secret)}
	}
	slices.SortFunc(out.Keys, func(a, b HMACKey) int { return int(a.ID) - int(b.ID) })
	if len(out.Keys) == 0 {
		out.Keys = nil
	}
	return out
}

// diffHMACKeys returns the keys to set and the owned ids to remove.
func diffHMACKeys(cur, want []HMACKey) (set []HMACKey, del []uint32) {
	have := make(map[uint32]HMACKey, len(cur))
	for _, k := range cur {
		have[k.ID] = k
	}
	wanted := make(map[uint32]bool, len(want))
	for _, k := range want {
		wanted[k.ID] = true
		if c, ok := have[k.ID]; !ok || c.Algorithm != k.Algorithm || !bytes.Equal(c.Secret, k.Secret) {
			set = append(set, k)
		}
	}
	for _, k := range cur {
		if !wanted[k.ID] && k.ID >= HMACKeyIDMin && k.ID <= HMACKeyIDMax {
			del = append(del, k.ID)
		}
	}
	return set, del
}

// putHMACTLV appends the HMAC TLV of an SRH with an empty digest (the
// kernel computes it per packet), as iproute2 writes it.
func putHMACTLV(b []byte, keyID uint32) []byte {
	var t [hmacTLVLen]byte
	t[0], t[1] = sr6TLVHMAC, hmacTLVLen-2
	binary.BigEndian.PutUint32(t[4:], keyID)
	return append(b, t[:]...)
}

// srhHMACKeyID returns the key id of an SRH's HMAC TLV (0 = none). The
// SRH is known to hold n segments; the kernel puts the HMAC TLV last.
func srhHMACKeyID(srh []byte) uint32 {
	if len(srh) < 8 || srh[5]&sr6FlagHMAC == 0 {
		return 0
	}
	t := srh[8+16*(int(srh[4])+1):]
	if len(t) < hmacTLVLen || t[len(t)-hmacTLVLen] != sr6TLVHMAC {
		return 0
	}
	return binary.BigEndian.Uint32(t[len(t)-hmacTLVLen+4:])
}

// decodeHMACKey reads one SEG6_CMD_DUMPHMAC message's attributes.
func decodeHMACKey(a []byte) (HMACKey, error) {
	var k HMACKey
	slen := -1
	err := attrs(a, func(t uint16, v []byte) error {
		switch t {
		case seg6AttrKeyID:
			if len(v) < 4 {
				return fmt.Errorf("HMAC key id of %d bytes: %w", len(v), errShort)
			}
			k.ID = ne.Uint32(v)
		case seg6AttrSecLen:
			if len(v) < 1 {
				return fmt.Errorf("HMAC secret length of 0 bytes: %w", errShort)
			}
			slen = int(v[0])
		case seg6AttrSecret:
			k.Secret = bytes.Clone(v)
		case seg6AttrAlgID:
			if len(v) < 1 {
				return fmt.Errorf("HMAC algorithm of 0 bytes: %w", errShort)
			}
			k.Algorithm = HMACAlgorithm(v[0])
		}
		return nil
	})
	if err != nil {
		return HMACKey{}, err
	}
	if k.ID == 0 {
		return HMACKey{}, fmt.Errorf("HMAC key without id")
	}
	// The kernel sends the whole secret buffer; the length says how much is key.
	if slen >= 0 && slen <= len(k.Secret) {
		k.Secret = k.Secret[:slen]
	}
	return k, nil
}

// hmacKeys dumps the namespace's HMAC key table.
func (g *genl) hmacKeys(fam uint16) ([]HMACKey, error) {
	var out []HMACKey
	// The table is bounded by the id range we own plus foreign keys.
	err := g.exchange(fam, seg6CmdDumpHMAC, unix.NLM_F_DUMP, nil, 4096, func(a []byte) error {
		k, err := decodeHMACKey(a)
		if err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("HMAC key dump: %w", err)
	}
	return out, nil
}

// setHMACKey sets (replaces) a key, or removes it when k.Secret is empty.
func (g *genl) setHMACKey(fam uint16, k HMACKey) error {
	_, err := g.request(fam, seg6CmdSetHMAC, func(w *wbuf) {
		w.u32(seg6AttrKeyID, k.ID)
		w.attr(seg6AttrSecLen, []byte{byte(len(k.Secret))})
		if len(k.Secret) > 0 {
			w.attr(seg6AttrSecret, k.Secret)
		}
		// The kernel wants an algorithm even for a removal.
		alg := k.Algorithm
		if alg == 0 {
			alg = HMACSHA256
		}
		w.attr(seg6AttrAlgID, []byte{byte(alg)})
	})
	return err
}

// readHMAC reads the owned keys and the WAN's seg6_require_hmac.
func (k *Kernel) readHMAC() (*HMACState, error) {
	g, err := openGenl(k)
	if err != nil {
		return nil, err
	}
	defer g.close()
	fam, err := g.seg6Family()
	if err != nil {
		return nil, err
	}
	keys, err := g.hmacKeys(fam)
	if hmacUnsupported(err) {
		return nil, nil // nothing can be installed either
	}
	if err != nil {
		return nil, fmt.Errorf("read HMAC keys: %w", err)
	}
	h := &HMACState{}
	for _, x := range keys {
		if x.ID >= HMACKeyIDMin && x.ID <= HMACKeyIDMax {
			h.Keys = append(h.Keys, x)
		}
	}
	if wan := k.opt.WANInterface; wan != "" {
		v, err := k.readSysctl(requireHMACSysctl(wan))
		if err == nil {
			h.Require = v == "1"
		}
	}
	return normHMAC(h), nil
}

// hmacUnsupported tells a kernel built without CONFIG_IPV6_SEG6_HMAC
// (its SEG6 commands answer ENOTSUPP, 524, or EOPNOTSUPP).
func hmacUnsupported(err error) bool {
	return errors.Is(err, unix.Errno(524)) || errors.Is(err, unix.EOPNOTSUPP)
}

func requireHMACSysctl(wan string) string {
	return "net.ipv6.conf." + wan + ".seg6_require_hmac"
}

func (k *Kernel) readSysctl(name string) (string, error) {
	s := k.setSysctl(sysctlWant{name: name, from: "\x00"}) // from matches nothing: read only
	if s.Err != "" {
		return "", fmt.Errorf("%s", s.Err)
	}
	return s.Value, nil
}

// ensureHMAC makes the key table and seg6_require_hmac equal to h (nil =
// leave both alone). Keys go in before the routes that use them.
func (k *Kernel) ensureHMAC(h *HMACState, ae *ApplyError) {
	if h == nil {
		return
	}
	g, err := openGenl(k)
	if err != nil {
		ae.Failed = append(ae.Failed, OpError{Op: "read HMAC keys", Err: err})
		return
	}
	defer g.close()
	fam, err := g.seg6Family()
	var cur []HMACKey
	if err == nil {
		cur, err = g.hmacKeys(fam)
	}
	if hmacUnsupported(err) && len(h.Keys) == 0 && !h.Require {
		return // the wanted state is what such a kernel has
	}
	if err != nil {
		ae.Failed = append(ae.Failed, OpError{Op: "read HMAC keys", Err: err})
		return
	}
	set, del := diffHMACKeys(cur, h.Keys)
	for _, x := range set {
		if err := g.setHMACKey(fam, x); err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "set " + x.String(), Err: err})
			continue
		}
		ae.Applied++
	}
	for _, id := range del {
		if err := g.setHMACKey(fam, HMACKey{ID: id}); err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: fmt.Sprintf("remove hmac key %d", id), Err: err})
			continue
		}
		ae.Applied++
	}
	if wan := k.opt.WANInterface; wan != "" {
		v := "0"
		if h.Require {
			v = "1"
		}
		s := k.setSysctl(sysctlWant{name: requireHMACSysctl(wan), value: v})
		switch {
		case s.Err != "":
			ae.Failed = append(ae.Failed, OpError{Op: "set " + s.Name + "=" + v, Err: fmt.Errorf("%s", s.Err)})
		case s.Was != "":
			ae.Applied++
		}
	}
}

// applyHMAC is ensureHMAC for the Fake.
func (f *Fake) applyHMAC(h *HMACState, ae *ApplyError) {
	if h == nil {
		return
	}
	if f.hmac == nil {
		f.hmac = &HMACState{}
	}
	set, del := diffHMACKeys(f.hmac.Keys, h.Keys)
	for _, x := range set {
		if f.op(ae, "set "+x.String()) {
			f.hmac.Keys = slices.DeleteFunc(f.hmac.Keys, func(c HMACKey) bool { return c.ID == x.ID })
			f.hmac.Keys = append(f.hmac.Keys, HMACKey{ID: x.ID, Algorithm: x.Algorithm, Secret: bytes.Clone(x.Secret)})
		}
	}
	for _, id := range del {
		if f.op(ae, fmt.Sprintf("remove hmac key %d", id)) {
			f.hmac.Keys = slices.DeleteFunc(f.hmac.Keys, func(c HMACKey) bool { return c.ID == id })
		}
	}
	if f.hmac.Require != h.Require && f.op(ae, "set "+requireHMACSysctl(f.wan)) {
		f.hmac.Require = h.Require
	}
}

// ownedHMAC is what Installed reports: the owned keys and require_hmac.
func (f *Fake) ownedHMAC() *HMACState {
	if f.hmac == nil {
		return nil
	}
	h := &HMACState{Require: f.hmac.Require}
	for _, x := range f.hmac.Keys {
		if x.ID >= HMACKeyIDMin && x.ID <= HMACKeyIDMax {
			h.Keys = append(h.Keys, x)
		}
	}
	return normHMAC(h)
}
