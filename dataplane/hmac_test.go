package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/srv6cpe/srv6cpe/srv6"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

func TestValidHMAC(t *testing.T) {
	key := func(id uint32, alg HMACAlgorithm, n int) HMACKey {
		return HMACKey{ID: id, Algorithm: alg, Secret: bytes.Repeat([]byte{'x'}, n)}
	}
	enc := func(id uint32) []EncapRoute {
		return []EncapRoute{{Prefix: mustPrefix("10.9.0.0/16"), HMACKeyID: id}}
	}
	tests := []struct {
		name   string
		h      *HMACState
		encaps []EncapRoute
		wan    string
		want   string // substring of the error, "" = valid
	}{
		{"nil", nil, nil, "", ""},
		{"ok", &HMACState{Keys: []HMACKey{key(1, HMACSHA256, 32), key(0xffff, HMACSHA1, 64)}, Require: true}, enc(1), "wan0", ""},
		{"key id 0", &HMACState{Keys: []HMACKey{key(0, HMACSHA256, 32)}}, nil, "wan0", "HMAC key id 0: outside"},
		{"key id above range", &HMACState{Keys: []HMACKey{key(0x10000, HMACSHA256, 32)}}, nil, "wan0", "HMAC key id 65536: outside"},
		{"twice", &HMACState{Keys: []HMACKey{key(3, HMACSHA256, 32), key(3, HMACSHA1, 32)}}, nil, "wan0", "HMAC key id 3: listed twice"},
		{"algorithm", &HMACState{Keys: []HMACKey{key(3, 9, 32)}}, nil, "wan0", "HMAC key id 3: unknown algorithm 9"},
		{"short secret", &HMACState{Keys: []HMACKey{key(3, HMACSHA256, 19)}}, nil, "wan0", "secret of 19 bytes"},
		{"long secret", &HMACState{Keys: []HMACKey{key(3, HMACSHA256, 65)}}, nil, "wan0", "secret of 65 bytes"},
		{"require without wan", &HMACState{Require: true}, nil, "", "no WAN interface"},
		{"route key missing", &HMACState{Keys: []HMACKey{key(1, HMACSHA256, 32)}}, enc(2), "wan0", "encap route 10.9.0.0/16: HMAC key id 2 is not in the HMAC key table"},
		{"route key without table", nil, enc(2), "wan0", "HMAC key id 2 is not in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validHMAC(tc.h, tc.encaps, tc.wan)
			if tc.want == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHMACKeyNeverPrintsSecret(t *testing.T) {
	k := HMACKey{ID: 7, Algorithm: HMACSHA256, Secret: []byte("supersecretsupersecret")}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprintf("%v", []HMACKey{k})} {
		if strings.Contains(s, "supersecret") {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

func TestParseHMACAlgorithm(t *testing.T) {
	for s, want := range map[string]HMACAlgorithm{"": HMACSHA256, "sha256": HMACSHA256, "sha1": HMACSHA1} {
		if a, err := ParseHMACAlgorithm(s); err != nil || a != want {
			t.Fatalf("%q: %v %v", s, a, err)
		}
	}
	if _, err := ParseHMACAlgorithm("md5"); err == nil || !strings.Contains(err.Error(), `"md5"`) {
		t.Fatalf("md5: %v", err)
	}
}

func TestDiffHMACKeys(t *testing.T) {
	a := HMACKey{ID: 1, Algorithm: HMACSHA256, Secret: secretA}
	b := HMACKey{ID: 2, Algorithm: HMACSHA256, Secret: secretA}
	b2 := HMACKey{ID: 2, Algorithm: HMACSHA256, Secret: secretB}
	b3 := HMACKey{ID: 2, Algorithm: HMACSHA1, Secret: secretA}
	foreign := HMACKey{ID: 70000, Algorithm: HMACSHA1, Secret: secretA}
	tests := []struct {
		name      string
		cur, want []HMACKey
		set       []HMACKey
		del       []uint32
	}{
		{"equal", []HMACKey{a, b}, []HMACKey{b, a}, nil, nil},
		{"new", []HMACKey{a}, []HMACKey{a, b}, []HMACKey{b}, nil},
		{"secret changed", []HMACKey{b}, []HMACKey{b2}, []HMACKey{b2}, nil},
		{"algorithm changed", []HMACKey{b}, []HMACKey{b3}, []HMACKey{b3}, nil},
		{"stale owned goes, foreign stays", []HMACKey{a, b, foreign}, []HMACKey{a}, nil, []uint32{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, del := diffHMACKeys(tc.cur, tc.want)
			if !reflect.DeepEqual(set, tc.set) || !reflect.DeepEqual(del, tc.del) {
				t.Fatalf("set %v del %v, want %v %v", set, del, tc.set, tc.del)
			}
		})
	}
}

// The SRH with an HMAC TLV is the one iproute2 writes for
// "encap seg6 mode encap segs A,B hmac 0x1234" (ipseg6.c/iproute_lwtunnel.c).
func TestSRHKeyedEncoding(t *testing.T) {
	segs := packSegs(addrs("2001:db8::a", "2001:db8::b"))
	var w wbuf
	w.srhKeyed(segs, 0x1234)
	b := w.b
	if len(b) != 8+32+40 {
		t.Fatalf("SRH of %d bytes", len(b))
	}
	want := []byte{0, 9, 4, 1, 1, sr6FlagHMAC, 0, 0}
	if !bytes.Equal(b[:8], want) {
		t.Fatalf("header % x, want % x", b[:8], want)
	}
	tlv := b[40:]
	if tlv[0] != 5 || tlv[1] != 38 || !bytes.Equal(tlv[4:8], []byte{0, 0, 0x12, 0x34}) || !bytes.Equal(tlv[8:], make([]byte, 32)) {
		t.Fatalf("TLV % x", tlv)
	}
	got, err := decodeSRH(b, nil)
	if err != nil || got != segs {
		t.Fatalf("decodeSRH: %v %v", got, err)
	}
	if id := srhHMACKeyID(b); id != 0x1234 {
		t.Fatalf("key id %#x", id)
	}
	var plain wbuf
	plain.srh(segs)
	if id := srhHMACKeyID(plain.b); id != 0 {
		t.Fatalf("plain SRH key id %#x", id)
	}

	// Through a whole route message and back.
	v := rval{Kind: kindEncap, Dev: 3, Mode: seg6ModeEnc, Segs: segs, HMAC: 0x1234}
	k := rkey{Family: 2, Table: tableMain, Dst: mustPrefix("10.9.0.0/16")}
	var m wbuf
	m.putRoute(1, k, v, 0, false)
	r, err := decodeRoute(m.b[sizeofNlmsghdr:], nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != k || r.Val != v {
		t.Fatalf("decoded %+v %+v, want %+v %+v", r.Key, r.Val, k, v)
	}
}

func hmacDumpMsg(id uint32, slen int, secret []byte, alg byte) []byte {
	var w wbuf
	w.u32(seg6AttrKeyID, id)
	w.attr(seg6AttrSecLen, []byte{byte(slen)})
	w.attr(seg6AttrSecret, secret)
	w.attr(seg6AttrAlgID, []byte{alg})
	return w.b
}

func TestDecodeHMACKey(t *testing.T) {
	k, err := decodeHMACKey(hmacDumpMsg(9, 20, append(bytes.Repeat([]byte{'s'}, 20), make([]byte, 44)...), 2))
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != 9 || k.Algorithm != HMACSHA256 || !bytes.Equal(k.Secret, bytes.Repeat([]byte{'s'}, 20)) {
		t.Fatalf("decoded %v %q", k, k.Secret)
	}
	if _, err := decodeHMACKey(hmacDumpMsg(0, 0, nil, 2)); err == nil {
		t.Fatal("key id 0 accepted")
	}
	var w wbuf
	w.attr(seg6AttrKeyID, []byte{1, 2})
	if _, err := decodeHMACKey(w.b); err == nil {
		t.Fatal("2-byte key id accepted")
	}
}

func FuzzDecodeHMACKey(f *testing.F) {
	f.Add(hmacDumpMsg(9, 20, bytes.Repeat([]byte{'s'}, 64), 2))
	f.Add(hmacDumpMsg(1, 200, []byte{1}, 1))
	f.Add([]byte{4, 0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := decodeHMACKey(b)
		if err == nil && k.ID == 0 {
			t.Fatal("key without id accepted")
		}
	})
}

func FuzzSRHHMACKeyID(f *testing.F) {
	var w wbuf
	w.srhKeyed(packSegs(addrs("2001:db8::a")), 7)
	f.Add(w.b)
	f.Add([]byte{0, 0, 4, 0, 0, sr6FlagHMAC, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeSRH(b, nil); err != nil {
			return // srhHMACKeyID is only called on SRHs decodeSRH took
		}
		srhHMACKeyID(b)
	})
}

func hmacDesired() Desired {
	return Desired{
		Encaps: []EncapRoute{{Prefix: mustPrefix("10.9.0.0/16"), Segments: addrs("fc00:b::100"), Dev: "wan0", HMACKeyID: 7}},
		HMAC: &HMACState{Require: true, Keys: []HMACKey{
			{ID: 7, Algorithm: HMACSHA256, Secret: secretA},
			{ID: 3, Algorithm: HMACSHA1, Secret: secretB},
		}},
	}
}

func TestFakeHMAC(t *testing.T) {
	ctx := context.Background()
	caps := Capabilities{EncapRed: true}
	f := NewFake(caps)
	d := hmacDesired()
	if err := f.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check := func(d Desired) {
		t.Helper()
		got, err := f.Installed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Normalize(d, caps, "wan0")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("installed %+v\nwant %+v", got, want)
		}
	}
	check(d)
	// Idempotent: no key operation the second time.
	ops := f.ops
	if err := f.Apply(ctx, d); err != nil || f.ops != ops {
		t.Fatalf("second apply: %v, %d ops", err, f.ops-ops)
	}
	// A key goes, require goes off.
	d.HMAC = &HMACState{Keys: d.HMAC.Keys[:1]}
	if err := f.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(d)
	// A route naming a missing key: nothing applied.
	bad := d
	bad.Encaps = []EncapRoute{{Prefix: mustPrefix("10.9.0.0/16"), Segments: addrs("fc00:b::100"), Dev: "wan0", HMACKeyID: 3}}
	if err := f.Apply(ctx, bad); err == nil || !strings.Contains(err.Error(), "HMAC key id 3") {
		t.Fatalf("missing key: %v", err)
	}
	check(d)
}

// newHMNS is a namespace with lo up (prefix "hm" and the role).
func newHMNS(t *testing.T, role string) *testNS {
	t.Helper()
	return newBareNS(t, "hm"+role)
}

// hmacShow is "ip sr hmac show" as id -> "algo secret" (iproute2's own reading).
func hmacShow(t *testing.T, n *testNS) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(n.ip(t, "sr hmac show")), "\n") {
		f := strings.Fields(l)
		// "hmac 7 algo sha256 secret "0123...""
		if len(f) >= 6 && f[0] == "hmac" {
			out[f[1]] = f[3] + " " + strings.Trim(f[5], `"`)
		}
	}
	return out
}

func TestKernelHMACKeyTable(t *testing.T) {
	n := newHMNS(t, "k")
	n.ip(t, "link add wan0 type veth peer name peer0")
	n.ip(t, "link set wan0 up")
	n.ip(t, "link set peer0 up")
	k := openKernel(t, n)
	ctx := context.Background()
	d := hmacDesired()
	check := func(d Desired, show map[string]string) {
		t.Helper()
		checkInstalled(t, k, d)
		if s := hmacShow(t, n); !reflect.DeepEqual(s, show) {
			t.Fatalf("ip sr hmac show %v, want %v", s, show)
		}
	}
	// A foreign key outside our range: never touched.
	g, err := openGenl(k)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	fam, err := g.seg6Family()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.setHMACKey(fam, HMACKey{ID: 70000, Algorithm: HMACSHA1, Secret: secretB}); err != nil {
		t.Fatal(err)
	}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	show := map[string]string{"7": "sha256 " + string(secretA), "3": "sha1 " + string(secretB), "70000": "sha1 " + string(secretB)}
	check(d, show)
	if r := n.ip(t, "route show 10.9.0.0/16"); !strings.Contains(r, "hmac 7 ") {
		t.Fatalf("route without hmac 7: %s", r)
	}
	if v := readNSSysctl(t, n, "net/ipv6/conf/wan0/seg6_require_hmac"); v != "1" {
		t.Fatalf("seg6_require_hmac %q", v)
	}

	// Level-triggered: a key removed, one changed, require cleared behind
	// our back all come back on the next Apply.
	if err := g.setHMACKey(fam, HMACKey{ID: 3}); err != nil {
		t.Fatal(err)
	}
	if err := g.setHMACKey(fam, HMACKey{ID: 7, Algorithm: HMACSHA256, Secret: secretB}); err != nil {
		t.Fatal(err)
	}
	n.ip(t, "link set wan0 down") // harmless; the sysctl is what matters
	n.ip(t, "link set wan0 up")
	writeNSSysctl(t, n, "net/ipv6/conf/wan0/seg6_require_hmac", "0")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(d, show)

	// Our encap route replaced by one without the HMAC TLV: restored.
	n.ip(t, "route replace 10.9.0.0/16 encap seg6 mode encap segs fc00:b::100 dev wan0 proto 198")
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if r := n.ip(t, "route show 10.9.0.0/16"); !strings.Contains(r, "hmac 7 ") {
		t.Fatalf("route not restored with hmac 7: %s", r)
	}
	check(d, show)

	// A key dropped from the desired table is removed; require off.
	d.HMAC = &HMACState{Keys: d.HMAC.Keys[:1]}
	if err := k.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	delete(show, "3")
	check(d, show)
	if v := readNSSysctl(t, n, "net/ipv6/conf/wan0/seg6_require_hmac"); v != "0" {
		t.Fatalf("seg6_require_hmac %q", v)
	}
}

func readNSSysctl(t *testing.T, n *testNS, p string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.name, "cat", "/proc/sys/"+p).CombinedOutput()
	if err != nil {
		t.Fatalf("read %s: %v: %s", p, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeNSSysctl(t *testing.T, n *testNS, p, v string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.name, "sh", "-c", "echo "+v+" > /proc/sys/"+p).CombinedOutput()
	if err != nil {
		t.Fatalf("write %s: %v: %s", p, err, out)
	}
}

// hmacPair is two nodes on one link: a sender (encap to the receiver's
// End.DX4 SID) and a receiver that counts inner packets to 10.9.9.2.
type hmacPair struct {
	a, b   *testNS
	ka, kb *Kernel
}

const hmacSID = "fc00:b::100"

func newHMACPair(t *testing.T) *hmacPair {
	p := &hmacPair{a: newHMNS(t, "a"), b: newHMNS(t, "b")}
	p.a.ip(t, "link add wan0 type veth peer name wan0 netns "+p.b.name)
	for i, n := range []*testNS{p.a, p.b} {
		n.ip(t, "link set wan0 up")
		n.ip(t, fmt.Sprintf("-6 addr add fc00:ab::%d/64 dev wan0 nodad", i+1))
	}
	p.a.ip(t, "addr add 10.8.8.1/32 dev lo")
	p.a.ip(t, "-6 route add fc00:b::/48 via fc00:ab::2 dev wan0")
	p.b.ip(t, "addr add 10.9.9.2/32 dev lo")
	nft := "add table inet hm\n" +
		"add chain inet hm in { type filter hook input priority 0; }\n" +
		"add counter inet hm got\n" +
		"add rule inet hm in ip daddr 10.9.9.2 udp dport 9999 counter name got\n"
	cmd := exec.Command("ip", "netns", "exec", p.b.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	var err error
	for _, x := range []struct {
		n *testNS
		k **Kernel
	}{{p.a, &p.ka}, {p.b, &p.kb}} {
		*x.k, err = Open(context.Background(), Options{WANInterface: "wan0", Logger: zaptest.NewLogger(t), NetNS: x.n.h})
		if err != nil {
			t.Fatal(err)
		}
		k := *x.k
		t.Cleanup(func() { k.Close() })
	}
	return p
}

// receiver applies the receiver's state: the End.DX4 SID and its keys.
func (p *hmacPair) receiver(t *testing.T, key []byte, require bool) {
	t.Helper()
	d := Desired{
		Locators:  []netip.Prefix{mustPrefix("fc00:b::/48")},
		LocalSIDs: []LocalSID{{SID: mustAddr(hmacSID), Behavior: srv6.EndDX4, NH4: netip.IPv4Unspecified()}},
		HMAC:      &HMACState{Require: require, Keys: []HMACKey{{ID: 7, Algorithm: HMACSHA256, Secret: key}}},
	}
	if err := p.kb.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// sender applies the sender's encap route to 10.9.9.0/24 (key 7 = secretA).
func (p *hmacPair) sender(t *testing.T, mode EncapMode, hmacKey uint32) {
	t.Helper()
	d := Desired{
		Encaps: []EncapRoute{{Prefix: mustPrefix("10.9.9.0/24"), Segments: addrs(hmacSID), Dev: "wan0", Mode: mode, HMACKeyID: hmacKey}},
		HMAC:   &HMACState{Keys: []HMACKey{{ID: 7, Algorithm: HMACSHA256, Secret: secretA}}},
	}
	if err := p.ka.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// send sends n datagrams from the sender and returns how many the
// receiver's counter saw.
func (p *hmacPair) send(t *testing.T, n int) int {
	t.Helper()
	before := p.counter(t)
	script := "import socket,time\n" +
		"s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" +
		"s.bind(('10.8.8.1',0))\n" +
		"for i in range(" + strconv.Itoa(n) + "):\n" +
		"    try: s.sendto(b'x'*32,('10.9.9.2',9999))\n" +
		"    except OSError: pass\n" +
		"    time.sleep(0.002)\n"
	if out, err := exec.Command("ip", "netns", "exec", p.a.name, "python3", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("send: %v: %s", err, out)
	}
	time.Sleep(100 * time.Millisecond) // the veth delivers asynchronously
	return p.counter(t) - before
}

// capture starts a tcpdump on the receiver's WAN for one packet matching
// filter; the returned func waits (bounded) for it.
func (p *hmacPair) capture(t *testing.T, filter string) func() error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", p.b.name, "tcpdump", "-l", "-c", "1", "-i", "wan0", "-nn", filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("tcpdump: %v", err)
	}
	// tcpdump says "listening on" once the capture is open.
	buf := make([]byte, 512)
	var got []byte
	for !bytes.Contains(got, []byte("listening on")) {
		k, err := stderr.Read(buf)
		if err != nil {
			cancel()
			_ = cmd.Wait()
			t.Fatalf("tcpdump did not start: %v: %s", err, got)
		}
		got = append(got, buf[:k]...)
	}
	return func() error {
		defer cancel()
		return cmd.Wait()
	}
}

func (p *hmacPair) counter(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", p.b.name, "nft", "list", "counter", "inet", "hm", "got").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list counter: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	for i := range f[:len(f)-1] {
		if f[i] == "packets" {
			v, err := strconv.Atoi(f[i+1])
			if err != nil {
				t.Fatalf("counter %q: %v", f[i+1], err)
			}
			return v
		}
	}
	t.Fatalf("no packet count in %s", out)
	return 0
}

// TestKernelHMACTraffic shows what seg6_require_hmac does and does not
// cover, with real packets between two namespaces.
func TestKernelHMACTraffic(t *testing.T) {
	p := newHMACPair(t)
	if !p.ka.Capabilities().EncapRed {
		t.Skip("kernel without seg6 encap.red")
	}
	const n = 20
	tests := []struct {
		name        string
		rxKey       []byte
		require     bool
		mode        EncapMode
		txKey       uint32
		wantArrived int
		nextHeader  int // of the outer IPv6 header on the wire: 43 SRH, 4 IPv4
	}{
		{"SRH without HMAC, HMAC not required: accepted", secretA, false, Encap, 0, n, 43},
		{"SRH with a valid HMAC, required: accepted", secretA, true, Encap, 7, n, 43},
		{"SRH without HMAC, required: dropped", secretA, true, Encap, 0, 0, 43},
		{"SRH with HMAC of the wrong key, required: dropped", secretB, true, Encap, 7, 0, 43},
		{"SRH with HMAC of the wrong key, not required: dropped (a present HMAC is checked)", secretB, false, Encap, 7, 0, 43},
		// The gap: encap.red with one segment sends no SRH at all, and
		// End.DX4 decapsulates it whatever seg6_require_hmac says.
		{"no SRH (encap.red, one segment), required: accepted (the kernel gap)", secretA, true, EncapRed, 0, n, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.receiver(t, tc.rxKey, tc.require)
			p.sender(t, tc.mode, tc.txKey)
			seen := p.capture(t, fmt.Sprintf("ip6 dst %s and ip6[6] == %d", hmacSID, tc.nextHeader))
			if got := p.send(t, n); got != tc.wantArrived {
				t.Fatalf("%d of %d arrived, want %d\nsender: %s", got, n, tc.wantArrived, p.a.ip(t, "route show 10.9.9.0/24"))
			}
			if err := seen(); err != nil {
				t.Fatalf("no packet with next header %d on the receiver's wire: %v", tc.nextHeader, err)
			}
		})
	}
}
