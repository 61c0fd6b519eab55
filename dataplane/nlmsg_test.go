package dataplane

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// body strips the nlmsghdr of the single message in w.
func body(t *testing.T, w *wbuf) []byte {
	t.Helper()
	if got := int(ne.Uint32(w.b)); got != len(w.b) {
		t.Fatalf("message length field %d, buffer %d", got, len(w.b))
	}
	return w.b[sizeofNlmsghdr:]
}

// The requests we build decode to what we meant: this is the contract
// between Apply (encode) and read-back (decode), VRF paths included, which
// the lab kernel cannot exercise.
func TestRouteRoundTrip(t *testing.T) {
	segs := packSegs(addrs("2001:db8:2::1", "2001:db8:3::1", "2001:db8:4::1"))
	sid := func(s string) rkey { return rkey{unix.AF_INET6, tableMain, netip.PrefixFrom(mustAddr(s), 128)} }
	cases := []struct {
		name string
		key  rkey
		val  rval
	}{
		{"unreachable", rkey{unix.AF_INET6, tableMain, mustPrefix("2001:db8:1::/48")}, rval{Kind: kindUnreachable}},
		{"End", sid("2001:db8::1"), rval{Kind: kindLocal, Dev: 3, Action: actEnd}},
		{"End.X", sid("2001:db8::2"), rval{Kind: kindLocal, Dev: 3, Action: actEndX, NH: mustAddr("fe80::1")}},
		{"End.T", sid("2001:db8::3"), rval{Kind: kindLocal, Dev: 3, Action: actEndT, Table: 77}},
		{"End.DX4", sid("2001:db8::4"), rval{Kind: kindLocal, Dev: 3, Action: actEndDX4, NH: mustAddr("0.0.0.0")}},
		{"End.DX6", sid("2001:db8::5"), rval{Kind: kindLocal, Dev: 3, Action: actEndDX6, NH: mustAddr("::")}},
		{"End.DT6", sid("2001:db8::6"), rval{Kind: kindLocal, Dev: 3, Action: actEndDT6, Table: 1000}},
		{"End.DT4 vrftable", sid("2001:db8::7"), rval{Kind: kindLocal, Dev: 3, Action: actEndDT4, VRFTable: 10}},
		{"End.DT46 vrftable", sid("2001:db8::8"), rval{Kind: kindLocal, Dev: 3, Action: actEndDT46, VRFTable: 300}},
		{"End.B6.Encaps", sid("2001:db8::9"), rval{Kind: kindLocal, Dev: 3, Action: actEndB6Enc, Segs: segs}},
		{"encap v4", rkey{unix.AF_INET, tableMain, mustPrefix("10.1.2.0/24")}, rval{Kind: kindEncap, Dev: 4, Mode: seg6ModeEnc, Segs: segs}},
		{"encap.red v4 vrf table", rkey{unix.AF_INET, 1000, mustPrefix("10.1.2.0/24")}, rval{Kind: kindEncap, Dev: 4, Mode: seg6ModeRed, Segs: segs}},
		{"encap v6 default", rkey{unix.AF_INET6, 10, mustPrefix("::/0")}, rval{Kind: kindEncap, Dev: 4, Mode: seg6ModeEnc, Segs: segs[:16]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, replace := range []bool{false, true} {
				var w wbuf
				w.putRoute(7, c.key, c.val, 0, replace)
				flags := ne.Uint16(w.b[6:])
				if replace != (flags&unix.NLM_F_REPLACE != 0) || replace == (flags&unix.NLM_F_EXCL != 0) {
					t.Errorf("replace=%v: flags %#x", replace, flags)
				}
				r, err := decodeRoute(body(t, &w), nil)
				if err != nil {
					t.Fatal(err)
				}
				want := c.val
				if want.Kind == kindUnreachable {
					want.Dev = 0
				}
				if r.Key != c.key || r.Val != want || r.Proto != RouteProtocol || r.Prio != prioOf(c.key.Family) {
					t.Fatalf("decoded %+v\nwant key %+v val %+v", r, c.key, want)
				}
			}
		})
	}
}

func TestRouteWithNexthopObject(t *testing.T) {
	var w wbuf
	key := rkey{unix.AF_INET, 5000, mustPrefix("10.9.0.0/16")}
	w.putRoute(1, key, rval{Kind: kindEncap, Dev: 4, Mode: seg6ModeEnc, Segs: packSegs(addrs("2001:db8::1"))}, 0xc6000001, false)
	r, err := decodeRoute(body(t, &w), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.NHID != 0xc6000001 || r.Key != key || r.Val.Kind != kindEncap || r.Val.Segs != "" {
		t.Fatalf("decoded %+v", r)
	}
	if rtTable := w.b[sizeofNlmsghdr+4]; rtTable != tableCompat {
		t.Errorf("rtm_table %d for table 5000, want RT_TABLE_COMPAT", rtTable)
	}
}

func TestNexthopRoundTrip(t *testing.T) {
	s := encapSpec{Mode: seg6ModeRed, Dev: 9, Segs: packSegs(addrs("2001:db8:2::1", "2001:db8:3::1"))}
	var w wbuf
	w.putNexthop(3, 0xc6000042, s)
	n, err := decodeNexthop(body(t, &w), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != 0xc6000042 || n.Proto != RouteProtocol || !n.Simple || n.Spec != s {
		t.Fatalf("decoded %+v, want spec %+v", n, s)
	}
}

// The SRH holds the segments reversed: Segment List[0] is the last one,
// and the outer destination (segments left = n-1) is the first.
func TestSRHOrder(t *testing.T) {
	var w wbuf
	w.srh(packSegs(addrs("2001:db8::a", "2001:db8::b", "2001:db8::c")))
	want := []byte{0, 6, 4, 2, 2, 0, 0, 0}
	if !bytes.Equal(w.b[:8], want) {
		t.Fatalf("SRH header % x, want % x", w.b[:8], want)
	}
	first := mustAddr("2001:db8::a").As16()
	last := mustAddr("2001:db8::c").As16()
	if !bytes.Equal(w.b[8:24], last[:]) || !bytes.Equal(w.b[40:56], first[:]) {
		t.Fatalf("segment list not reversed: % x", w.b[8:])
	}
	got, err := decodeSRH(w.b, nil)
	if err != nil || got.String() != "2001:db8::a,2001:db8::b,2001:db8::c" {
		t.Fatalf("decodeSRH: %q %v", got.String(), err)
	}
}

func TestDecodeError(t *testing.T) {
	var w wbuf
	off := w.begin(unix.NLMSG_ERROR, nlmFAckTLVs, 0)
	var e [4]byte
	code := -int32(unix.EEXIST)
	ne.PutUint32(e[:], uint32(code))
	w.b = append(w.b, e[:]...)
	orig := w.begin(unix.RTM_NEWROUTE, 0, 42) // the echoed request header
	ne.PutUint32(w.b[orig:], sizeofNlmsghdr)
	w.attr(nlmsgerrAttrMsg, []byte("File exists\x00"))
	w.end(off)
	var got *nlError
	err := eachMsg(w.b, func(typ, flags uint16, _ uint32, b []byte) error {
		seq, e, err := decodeError(b, flags)
		if seq != 42 {
			t.Errorf("seq %d, want 42", seq)
		}
		got = e
		return err
	})
	if err != nil || got == nil || !errors.Is(got, unix.EEXIST) || got.Msg != "File exists" {
		t.Fatalf("decoded %v %v", got, err)
	}
}

func seedRoutes(f *testing.F) {
	var w wbuf
	segs := packSegs(addrs("2001:db8:2::1", "2001:db8:3::1"))
	w.putRoute(1, rkey{unix.AF_INET6, tableMain, mustPrefix("2001:db8::/64")}, rval{Kind: kindLocal, Dev: 1, Action: actEndB6Enc, Segs: segs}, 0, false)
	f.Add(w.b[sizeofNlmsghdr:])
	w = wbuf{}
	w.putRoute(1, rkey{unix.AF_INET, 100, mustPrefix("10.0.0.0/8")}, rval{Kind: kindEncap, Dev: 1, Mode: seg6ModeRed, Segs: segs}, 0, false)
	f.Add(w.b[sizeofNlmsghdr:])
	w = wbuf{}
	w.putNexthop(1, 5, encapSpec{Mode: seg6ModeEnc, Dev: 2, Segs: segs})
	f.Add(w.b[sizeofNlmsghdr:])
	w = wbuf{}
	mp := pathList(packPaths([]wpath{{3, segs}, {256, segs[16:]}}, nil))
	w.putRoute(1, rkey{unix.AF_INET, 100, mustPrefix("10.0.0.0/8")}, rval{Kind: kindEncap, Dev: 1, Mode: seg6ModeEnc, Paths: mp}, 0, false)
	f.Add(w.b[sizeofNlmsghdr:])
	w = wbuf{}
	w.putGroup(1, 6, []grpEntry{{5, 3}, {7, 256}})
	f.Add(w.b[sizeofNlmsghdr:])
	f.Add([]byte{})
}

// Netlink answers are kernel data, but a decoder must never panic on
// whatever bytes arrive.
func FuzzDecodeRoute(f *testing.F) {
	seedRoutes(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRoute(b, nil)
		if err == nil && r.Val.Kind == kindEncap && len(r.Val.Segs)%16 != 0 {
			t.Fatalf("segment list of %d bytes", len(r.Val.Segs))
		}
		// Interning changes where the strings live, never what they say,
		// also when the interner already holds them.
		var si segInterner
		for range 2 {
			ri, erri := decodeRoute(b, &si)
			if ri != r || (erri == nil) != (err == nil) {
				t.Fatalf("interned decode %+v %v, plain %+v %v", ri, erri, r, err)
			}
		}
		// A multipath read back is in the canonical form plan makes.
		if p := r.Val.Paths; p != "" && string(packPaths(p.paths(), nil)) != string(p) {
			t.Fatalf("multipath %q is not canonical", p)
		}
	})
}

func FuzzDecodeNexthop(f *testing.F) {
	seedRoutes(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeNexthop(b, nil)
		var si segInterner
		for range 2 {
			ni, erri := decodeNexthop(b, &si)
			if ni.Spec != n.Spec || ni.ID != n.ID || ni.Simple != n.Simple || (erri == nil) != (err == nil) {
				t.Fatalf("interned decode %+v %v, plain %+v %v", ni, erri, n, err)
			}
		}
	})
}

func FuzzEachMsg(f *testing.F) {
	seedRoutes(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = eachMsg(b, func(typ, flags uint16, _ uint32, body []byte) error {
			_, _, _ = decodeError(body, flags)
			return nil
		})
	})
}

// An SRH with a TLV after the segments (an HMAC, say) still reads: the
// segment count comes from first_segment, not from the length.
func TestSRHWithTLV(t *testing.T) {
	var w wbuf
	w.srh(packSegs(addrs("2001:db8::a", "2001:db8::b")))
	w.b = append(w.b, 5, 6, 0, 0, 0, 0, 0, 0) // 8 bytes of TLV
	w.b[1] += 1                               // length in 8-octet units
	got, err := decodeSRH(w.b, nil)
	if err != nil || got.String() != "2001:db8::a,2001:db8::b" {
		t.Fatalf("decodeSRH: %q %v", got.String(), err)
	}
	w.b[4] = 5 // first_segment beyond the header
	if _, err := decodeSRH(w.b, nil); err == nil {
		t.Fatal("decodeSRH accepted 6 segments in 2")
	}
}

// A route of ours whose encap cannot be read comes back as kindOther (to
// be replaced), not as an error that would stop every Apply.
func TestUnreadableEncapIsOther(t *testing.T) {
	var w wbuf
	w.putRoute(1, rkey{unix.AF_INET, tableMain, mustPrefix("10.0.0.0/24")}, rval{Kind: kindEncap, Dev: 2, Mode: seg6ModeEnc, Segs: packSegs(addrs("2001:db8::1"))}, 0, false)
	b := body(t, &w)
	b[len(b)-16-8+1] = 9 // corrupt the SRH length
	r, err := decodeRoute(b, nil)
	if err != nil || r.Val.Kind != kindOther || r.Key.Dst != mustPrefix("10.0.0.0/24") {
		t.Fatalf("decoded %+v %v", r, err)
	}
}
