package srv6

import (
	"math/big"
	"math/rand"
	"net/netip"
	"strings"
	"testing"
)

func u64(v uint64) *uint64 { return &v }

// Expected values were computed independently with Python's ipaddress module.
func TestDerive(t *testing.T) {
	type sid struct{ name, sid string }
	tests := []struct {
		name     string
		prefix   string
		l, f     int
		ext      *uint64
		services []Service
		prefixW  string // masked delegated prefix
		locator  string
		sids     []sid
		st       SIDStructure
	}{
		{
			name: "issue example", prefix: "2001:db8:1200::/40", l: 48, f: 16, ext: u64(0x5),
			services: []Service{{"vpn1", EndDT4, 0x4}, {"vpn6", EndDT6, 0x6}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:1205::/48",
			sids: []sid{{"vpn1", "2001:db8:1205:4::"}, {"vpn6", "2001:db8:1205:6::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 8, FunctionLen: 16},
		},
		{
			name: "default extension is all ones", prefix: "2001:db8:1200::/40", l: 48, f: 16,
			services: []Service{{"vpn1", EndDT4, 0x4}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:12ff::/48",
			sids: []sid{{"vpn1", "2001:db8:12ff:4::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 8, FunctionLen: 16},
		},
		{
			name: "bits beyond Y ignored", prefix: "2001:db8:1234::/40", l: 48, f: 16, ext: u64(5),
			services: []Service{{"vpn1", EndDT4, 4}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:1205::/48",
			sids: []sid{{"vpn1", "2001:db8:1205:4::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 8, FunctionLen: 16},
		},
		{
			name: "bits beyond Y ignored, default extension", prefix: "2001:db8:1:5::/48", l: 48, f: 16,
			services: []Service{{"a", End, 0x10}},
			prefixW:  "2001:db8:1::/48", locator: "2001:db8:1::/48",
			sids: []sid{{"a", "2001:db8:1:10::"}},
			st:   SIDStructure{LocatorBlockLen: 48, FunctionLen: 16},
		},
		{
			name: "L+F = 128, no padding", prefix: "2001:db8::/32", l: 112, f: 16, ext: u64(1),
			services: []Service{{"a", EndDT4, 0xffff}, {"b", EndDT6, 1}},
			prefixW:  "2001:db8::/32", locator: "2001:db8::1:0/112",
			sids: []sid{{"a", "2001:db8::1:ffff"}, {"b", "2001:db8::1:1"}},
			st:   SIDStructure{LocatorBlockLen: 32, LocatorNodeLen: 80, FunctionLen: 16},
		},
		{
			name: "L = 47", prefix: "2001:db8:1200::/40", l: 47, f: 16,
			services: []Service{{"a", EndDT4, 1}, {"b", EndDT6, 0xffff}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:12fe::/47",
			sids: []sid{{"a", "2001:db8:12fe:2::"}, {"b", "2001:db8:12ff:fffe::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 7, FunctionLen: 16},
		},
		{
			name: "L = 49", prefix: "2001:db8:1200::/40", l: 49, f: 16,
			services: []Service{{"a", EndDT4, 1}, {"b", EndDT6, 0xffff}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:12ff:8000::/49",
			sids: []sid{{"a", "2001:db8:12ff:8000:8000::"}, {"b", "2001:db8:12ff:ffff:8000::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 9, FunctionLen: 16},
		},
		{
			name: "L = 49, extension 0", prefix: "2001:db8:1200::/40", l: 49, f: 16, ext: u64(0),
			services: []Service{{"a", EndDT4, 1}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:1200::/49",
			sids: []sid{{"a", "2001:db8:1200:0:8000::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 9, FunctionLen: 16},
		},
		{
			name: "L = 63, F = 17", prefix: "2001:db8:1200::/40", l: 63, f: 17, ext: u64(0x5a5a5),
			services: []Service{{"a", EndDT4, 1}, {"b", EndDT6, 0x1ffff}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:120b:4b4a::/63",
			sids: []sid{{"a", "2001:db8:120b:4b4a:1::"}, {"b", "2001:db8:120b:4b4b:ffff::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 23, FunctionLen: 17},
		},
		{
			name: "L = 65, F = 7", prefix: "2001:db8:1200::/40", l: 65, f: 7,
			services: []Service{{"a", EndDT4, 0x7f}, {"b", EndDT6, 1}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:12ff:ffff:8000::/65",
			sids: []sid{{"a", "2001:db8:12ff:ffff:ff00::"}, {"b", "2001:db8:12ff:ffff:8100::"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 25, FunctionLen: 7},
		},
		{
			name: "L = 120, default extension over 80 bits", prefix: "2001:db8:1200::/40", l: 120, f: 8,
			services: []Service{{"a", EndDT4, 0xff}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:12ff:ffff:ffff:ffff:ffff:ff00/120",
			sids: []sid{{"a", "2001:db8:12ff:ffff:ffff:ffff:ffff:ffff"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 80, FunctionLen: 8},
		},
		{
			name: "L = 120, explicit extension", prefix: "2001:db8:1200::/40", l: 120, f: 8, ext: u64(3),
			services: []Service{{"a", EndDT4, 0x80}},
			prefixW:  "2001:db8:1200::/40", locator: "2001:db8:1200::300/120",
			sids: []sid{{"a", "2001:db8:1200::380"}},
			st:   SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 80, FunctionLen: 8},
		},
		{
			name: "L = Y, F = 64", prefix: "2001:db8:1200::/56", l: 56, f: 64,
			services: []Service{{"a", EndDT4, ^uint64(0)}, {"b", EndDT6, 1}},
			prefixW:  "2001:db8:1200::/56", locator: "2001:db8:1200::/56",
			sids: []sid{{"a", "2001:db8:1200:ff:ffff:ffff:ffff:ff00"}, {"b", "2001:db8:1200::100"}},
			st:   SIDStructure{LocatorBlockLen: 56, FunctionLen: 64},
		},
		{
			name: "default extension of 117 bits", prefix: "2000::/3", l: 120, f: 8,
			services: []Service{{"a", End, 1}},
			prefixW:  "2000::/3", locator: "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120",
			sids: []sid{{"a", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ff01"}},
			st:   SIDStructure{LocatorBlockLen: 3, LocatorNodeLen: 117, FunctionLen: 8},
		},
		{
			name: "61-bit extension", prefix: "2000::/3", l: 64, f: 64, ext: u64(0x00010db800000001),
			services: []Service{{"a", End, 1}},
			prefixW:  "2000::/3", locator: "2001:db8:0:1::/64",
			sids: []sid{{"a", "2001:db8:0:1::1"}},
			st:   SIDStructure{LocatorBlockLen: 3, LocatorNodeLen: 61, FunctionLen: 64},
		},
		{
			name: "64-bit extension, all ones given", prefix: "2000::/3", l: 67, f: 16, ext: u64(^uint64(0)),
			services: []Service{{"a", End, 1}},
			prefixW:  "2000::/3", locator: "3fff:ffff:ffff:ffff:e000::/67",
			sids: []sid{{"a", "3fff:ffff:ffff:ffff:e000:2000::"}},
			st:   SIDStructure{LocatorBlockLen: 3, LocatorNodeLen: 64, FunctionLen: 16},
		},
		{
			name: "L = 127, F = 1", prefix: "2001:db8::/32", l: 127, f: 1,
			services: []Service{{"a", End, 1}},
			prefixW:  "2001:db8::/32", locator: "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe/127",
			sids: []sid{{"a", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"}},
			st:   SIDStructure{LocatorBlockLen: 32, LocatorNodeLen: 95, FunctionLen: 1},
		},
		{
			name: "odd boundaries Y = 39, L = 47, F = 3", prefix: "2001:db8:1200::/39", l: 47, f: 3, ext: u64(0x81),
			services: []Service{{"a", End, 5}},
			prefixW:  "2001:db8:1200::/39", locator: "2001:db8:1302::/47",
			sids: []sid{{"a", "2001:db8:1303:4000::"}},
			st:   SIDStructure{LocatorBlockLen: 39, LocatorNodeLen: 8, FunctionLen: 3},
		},
		{
			name: "no services", prefix: "2001:db8:1200::/40", l: 48, f: 16, ext: u64(5),
			prefixW: "2001:db8:1200::/40", locator: "2001:db8:1205::/48",
			st: SIDStructure{LocatorBlockLen: 40, LocatorNodeLen: 8, FunctionLen: 16},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Derive(netip.MustParsePrefix(tt.prefix), tt.l, tt.f, tt.ext, tt.services)
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			if got := d.Prefix.String(); got != tt.prefixW {
				t.Errorf("Prefix = %s, want %s", got, tt.prefixW)
			}
			if got := d.Locator.String(); got != tt.locator {
				t.Errorf("Locator = %s, want %s", got, tt.locator)
			}
			if d.FunctionLen != tt.f {
				t.Errorf("FunctionLen = %d, want %d", d.FunctionLen, tt.f)
			}
			if got := d.Structure(); got != tt.st {
				t.Errorf("Structure = %+v, want %+v", got, tt.st)
			}
			if len(d.SIDs) != len(tt.sids) {
				t.Fatalf("%d SIDs, want %d", len(d.SIDs), len(tt.sids))
			}
			for i, w := range tt.sids {
				g := d.SIDs[i]
				if g.Name != w.name || g.SID.String() != w.sid {
					t.Errorf("SIDs[%d] = %s %s, want %s %s", i, g.Name, g.SID, w.name, w.sid)
				}
				if g.Behavior != tt.services[i].Behavior || g.Function != tt.services[i].Function {
					t.Errorf("SIDs[%d] = %v %#x, want %v %#x", i, g.Behavior, g.Function, tt.services[i].Behavior, tt.services[i].Function)
				}
				if s, ok := d.SID(w.name); !ok || s != g {
					t.Errorf("SID(%q) = %+v, %v; want %+v", w.name, s, ok, g)
				}
			}
		})
	}
}

func TestDeriveSIDMissing(t *testing.T) {
	d, err := Derive(netip.MustParsePrefix("2001:db8::/32"), 48, 16, nil, []Service{{"a", End, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := d.SID("b"); ok {
		t.Errorf("SID(b) = %+v, true; want not found", s)
	}
}

func TestDeriveErrors(t *testing.T) {
	ok := []Service{{"vpn1", EndDT4, 4}}
	tests := []struct {
		name     string
		prefix   netip.Prefix
		l, f     int
		ext      *uint64
		services []Service
		want     string // a fragment the error must hold: the bad value
	}{
		{"zero prefix", netip.Prefix{}, 48, 16, nil, ok, "delegated prefix is missing"},
		{"IPv4 prefix", netip.MustParsePrefix("192.0.2.0/24"), 48, 16, nil, ok, "192.0.2.0/24 is not an IPv6 prefix"},
		{"IPv4-mapped prefix", netip.MustParsePrefix("::ffff:192.0.2.0/120"), 124, 4, nil, ok, "::ffff:192.0.2.0/120 overlaps ::/8"},
		{"multicast prefix", netip.MustParsePrefix("ff02::/16"), 48, 16, nil, ok, "ff02::/16 overlaps ff00::/8"},
		{"prefix ::/0", netip.MustParsePrefix("::/0"), 48, 16, nil, ok, "::/0 overlaps"},
		{"Y > L", netip.MustParsePrefix("2001:db8:1200::/40"), 32, 16, nil, ok, "locator length 32 is shorter than the delegated prefix 2001:db8:1200::/40"},
		{"negative L", netip.MustParsePrefix("2001:db8:1200::/40"), -1, 16, nil, ok, "locator length -1"},
		{"L+F > 128", netip.MustParsePrefix("2001:db8:1200::/40"), 120, 16, nil, ok, "locator length 120 + function length 16 = 136 exceeds 128"},
		{"L > 128", netip.MustParsePrefix("2001:db8:1200::/40"), 129, 1, nil, ok, "locator length 129 + function length 1"},
		{"F = 0", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 0, nil, ok, "function length 0 is outside 1..64"},
		{"F > 64", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 65, nil, ok, "function length 65 is outside 1..64"},
		{"E too big", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, u64(0x100), ok, "locator extension 0x100 does not fit the 8 bits"},
		{"E nonzero with L = Y", netip.MustParsePrefix("2001:db8:1200::/40"), 40, 16, u64(1), ok, "locator extension 0x1 does not fit the 0 bits"},
		{"E one bit too big at L = 49", netip.MustParsePrefix("2001:db8:1200::/40"), 49, 16, u64(0x200), ok, "locator extension 0x200 does not fit the 9 bits"},
		{"function 0", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, nil, []Service{{"vpn1", EndDT4, 0}}, `service "vpn1": function value 0 is reserved`},
		{"function too big", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, nil, []Service{{"vpn1", EndDT4, 0x10000}}, `service "vpn1": function value 0x10000 does not fit 16 bits`},
		{"function too big, odd F", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 7, nil, []Service{{"vpn1", EndDT4, 0x80}}, `function value 0x80 does not fit 7 bits`},
		{"duplicate function", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, nil, []Service{{"vpn1", EndDT4, 4}, {"vpn6", EndDT6, 4}}, `service "vpn6": function value 0x4 is already used by service "vpn1"`},
		{"duplicate name", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, nil, []Service{{"vpn1", EndDT4, 4}, {"vpn1", EndDT6, 6}}, `service name "vpn1" is used twice`},
		{"empty name", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, nil, []Service{{"", EndDT4, 4}}, "service with function 0x4 has no name"},
		{"no behaviour", netip.MustParsePrefix("2001:db8:1200::/40"), 48, 16, nil, []Service{{"vpn1", 0, 4}}, `service "vpn1" has no behaviour`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Derive(tt.prefix, tt.l, tt.f, tt.ext, tt.services)
			if err == nil {
				t.Fatalf("Derive = %+v, want an error holding %q", d, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not hold %q", err, tt.want)
			}
		})
	}
}

func bigOf(a netip.Addr) *big.Int {
	b := a.As16()
	return new(big.Int).SetBytes(b[:])
}

// field reads n bits of a starting at bit off (0 = most significant).
func field(a netip.Addr, off, n int) *big.Int {
	v := new(big.Int).Rsh(bigOf(a), uint(128-off-n))
	return v.And(v, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(n)), big.NewInt(1)))
}

// TestDeriveProperties derives from random valid inputs and checks, with
// math/big rather than the code under test, that every SID re-parses to
// itself, lies in the locator and the delegated prefix, carries its function
// value in bits L..L+F and zeros after, and that the locator carries the
// extension.
func TestDeriveProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(8986))
	for iter := 0; iter < 3000; iter++ {
		var raw [16]byte
		rng.Read(raw[:])
		raw[0] = 0x20 | raw[0]&0x1f // global unicast 2000::/3: clear of ::/8 and ff00::/8
		y := 3 + rng.Intn(124)      // 3..126
		l := y + rng.Intn(128-y)    // y..127
		f := 1 + rng.Intn(min(64, 128-l))
		prefix := netip.PrefixFrom(netip.AddrFrom16(raw), y)

		var ext *uint64
		wantExt := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(l-y)), big.NewInt(1))
		if rng.Intn(2) == 0 {
			e := rng.Uint64()
			if l-y < 64 {
				e &= 1<<uint(l-y) - 1
			}
			ext, wantExt = &e, new(big.Int).SetUint64(e)
		}
		var services []Service
		used := map[uint64]bool{}
		for i := 0; i < 1+rng.Intn(4); i++ {
			fn := rng.Uint64()
			if f < 64 {
				fn &= 1<<uint(f) - 1
			}
			if fn == 0 || used[fn] {
				continue
			}
			used[fn] = true
			services = append(services, Service{Name: string(rune('a' + i)), Behavior: EndDT6, Function: fn})
		}

		d, err := Derive(prefix, l, f, ext, services)
		if err != nil {
			t.Fatalf("Derive(%s, L=%d, F=%d): %v", prefix, l, f, err)
		}
		if d.Prefix != prefix.Masked() || d.Locator.Bits() != l || d.Locator != d.Locator.Masked() {
			t.Fatalf("Derive(%s, L=%d): prefix %s locator %s", prefix, l, d.Prefix, d.Locator)
		}
		if !d.Prefix.Contains(d.Locator.Addr()) {
			t.Fatalf("locator %s outside prefix %s", d.Locator, d.Prefix)
		}
		if got := field(d.Locator.Addr(), y, l-y); got.Cmp(wantExt) != 0 {
			t.Fatalf("locator %s (Y=%d) carries extension %#x, want %#x", d.Locator, y, got, wantExt)
		}
		if len(d.SIDs) != len(services) {
			t.Fatalf("%d SIDs for %d services", len(d.SIDs), len(services))
		}
		for i, s := range d.SIDs {
			p, err := ParseSID(s.SID.String())
			if err != nil || p.Addr != s.SID {
				t.Fatalf("ParseSID(%s) = %v, %v", s.SID, p, err)
			}
			if !d.Locator.Contains(s.SID) || !d.Prefix.Contains(s.SID) {
				t.Fatalf("SID %s outside locator %s or prefix %s", s.SID, d.Locator, d.Prefix)
			}
			if got := field(s.SID, l, f); got.Cmp(new(big.Int).SetUint64(services[i].Function)) != 0 {
				t.Fatalf("SID %s (L=%d F=%d) reads back function %#x, want %#x", s.SID, l, f, got, services[i].Function)
			}
			if pad := 128 - l - f; pad > 0 && field(s.SID, l+f, pad).Sign() != 0 {
				t.Fatalf("SID %s (L=%d F=%d) has non-zero padding", s.SID, l, f)
			}
		}
	}
}
