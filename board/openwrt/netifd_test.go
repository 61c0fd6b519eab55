package openwrt

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srv6cpe/srv6cpe/board"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/ubus/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInterfaceStatusFixtures(t *testing.T) {
	tests := []struct {
		file       string
		up         bool
		l3         string
		prefix     string // "" = none
		addr       string // "" = none
		nPrefixes  int
		nAddresses int
	}{
		{"wan6-up.json", true, "wan", "2001:db8:1200::/56", "2001:db8:0:100::1a2b", 1, 1},
		{"wan6-down.json", false, "", "", "", 0, 0},
		// ULA, deprecated, expired (negative valid) and two equal /56s:
		// the lowest non-deprecated global /56 wins; the address is the
		// lowest of the two non-deprecated globals with equal lifetimes.
		{"wan6-several.json", true, "pppoe-wan", "2001:db8:5600::/56", "2001:db8:0:100::5", 5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			st, err := ParseInterfaceStatus(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if st.Up != tt.up || st.L3Device != tt.l3 || len(st.Prefixes) != tt.nPrefixes || len(st.Addresses) != tt.nAddresses {
				t.Errorf("status %+v", st)
			}
			p, ok := st.DelegatedPrefix()
			if got := fmtPrefix(p, ok); got != tt.prefix {
				t.Errorf("prefix %q, want %q", got, tt.prefix)
			}
			a, ok := st.WANAddress()
			if got := fmtAddr(a, ok); got != tt.addr {
				t.Errorf("address %q, want %q", got, tt.addr)
			}
		})
	}
}

func fmtPrefix(p netip.Prefix, ok bool) string {
	if !ok {
		return ""
	}
	return p.String()
}

func fmtAddr(a netip.Addr, ok bool) string {
	if !ok {
		return ""
	}
	return a.String()
}

func TestLeaseLifetimes(t *testing.T) {
	st, err := ParseInterfaceStatus(fixture(t, "wan6-several.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ pref, valid uint32 }{{Forever, Forever}, {0, 120}, {3600, 7200}, {3600, 0}, {3600, 7200}}
	for i, w := range want {
		if l := st.Prefixes[i]; l.Preferred != w.pref || l.Valid != w.valid {
			t.Errorf("prefix %d (%s): lifetimes %d/%d, want %d/%d", i, l.Prefix, l.Preferred, l.Valid, w.pref, w.valid)
		}
	}
}

func TestDelegatedPrefixChoice(t *testing.T) {
	lease := func(p string, pref, valid uint32) Lease {
		return Lease{Prefix: netip.MustParsePrefix(p), Preferred: pref, Valid: valid}
	}
	tests := []struct {
		name string
		in   []Lease
		want string
	}{
		{"only ULA is still taken", []Lease{lease("fd00::/48", Forever, Forever)}, "fd00::/48"},
		{"global before ULA", []Lease{lease("fd00::/48", Forever, Forever), lease("2001:db8:1::/60", 10, 10)}, "2001:db8:1::/60"},
		{"only deprecated is still taken", []Lease{lease("2001:db8:1::/48", 0, 100)}, "2001:db8:1::/48"},
		{"expired is never taken", []Lease{lease("2001:db8:1::/48", 0, 0)}, ""},
		{"shortest wins", []Lease{lease("2001:db8:2::/60", 10, 10), lease("2001:db8:1::/56", 10, 10)}, "2001:db8:1::/56"},
		{"host bits masked", []Lease{lease("2001:db8:1::1/56", 10, 10)}, "2001:db8:1::/56"},
		{"link-local, /128 and ::/0 ignored", []Lease{lease("fe80::/64", 10, 10), lease("2001:db8::1/128", 10, 10), lease("::/0", 10, 10)}, ""},
		{"order of entries does not matter", []Lease{lease("2001:db8:9::/56", 10, 10), lease("2001:db8:3::/56", 10, 10)}, "2001:db8:3::/56"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := InterfaceStatus{Prefixes: tt.in}.DelegatedPrefix()
			if got := fmtPrefix(p, ok); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseInterfaceStatusErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"ipv6-prefix": [{"address": "10.0.0.0", "mask": 8}]}`, `ipv6-prefix[0].address "10.0.0.0": not an IPv6 address`},
		{`{"ipv6-prefix": [{"address": "2001:db8::", "mask": 129}]}`, `ipv6-prefix[0] (2001:db8::): mask 129 out of range`},
		{`{"ipv6-address": [{"address": "2001:db8::1"}]}`, `ipv6-address[0] (2001:db8::1): no mask`},
		{`{"ipv6-address": [{"address": "fe80::1%eth0", "mask": 64}]}`, `ipv6-address[0].address "fe80::1%eth0"`},
		{`Command failed: Not found`, `netifd status: invalid character`},
		{`{"up": "yes"}`, `netifd status: json: cannot unmarshal`},
	}
	for _, tt := range tests {
		_, err := ParseInterfaceStatus([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.in, err, tt.want)
		}
	}
}

// scripted answers successive ubus calls from a list; the last answer
// repeats.
type scripted struct {
	mu      sync.Mutex
	answers []answer
}

type answer struct {
	out []byte
	err error
}

func (s *scripted) reply(t *testing.T) func(argv []string) ([]byte, error) {
	return func(argv []string) ([]byte, error) {
		if got := strings.Join(argv, " "); got != "ubus call network.interface.wan6 status" {
			t.Errorf("ran %q", got)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		a := s.answers[0]
		if len(s.answers) > 1 {
			s.answers = s.answers[1:]
		}
		return a.out, a.err
	}
}

func status(prefix, addr string) []byte {
	s := `{"up": true, "l3_device": "wan", "ipv6-prefix": [`
	if prefix != "" {
		p := netip.MustParsePrefix(prefix)
		s += `{"address": "` + p.Addr().String() + `", "mask": ` + strconv.Itoa(p.Bits()) + `, "preferred": 3600, "valid": 7200, "class": "wan6", "assigned": {}}`
	}
	s += `], "ipv6-address": [`
	if addr != "" {
		s += `{"address": "` + addr + `", "mask": 128, "preferred": 3600, "valid": 7200}`
	}
	return []byte(s + `]}`)
}

func TestNetifdWatch(t *testing.T) {
	s := &scripted{answers: []answer{
		{out: fixture(t, "wan6-up.json")},                            // 1: first prefix
		{out: fixture(t, "wan6-up.json")},                            // 2: same: nothing
		{out: fixture(t, "wan6-down.json")},                          // 3: gone: keep last, nothing
		{err: errors.New("ubus: Command failed: Request timed out")}, // 4: error: retried
		{out: status("2001:db8:7700::/48", "")},                      // 5: renumbered, no address: keeps the last
		{out: status("2001:db8:7700::/48", "2001:db8:0:200::9")},     // 6: address alone changed
	}}
	r := &fakeRunner{called: make(chan string, 16)}
	r.reply = s.reply(t)
	src := NewNetifdPrefix(NetifdPrefixOptions{Runner: r, Poll: -1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan board.PrefixChange)
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, out) }()

	recv := func() board.PrefixChange {
		t.Helper()
		select {
		case c := <-out:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no prefix change")
		}
		return board.PrefixChange{}
	}
	waitCall := func() {
		t.Helper()
		select {
		case <-r.called:
		case <-time.After(10 * time.Second):
			t.Fatal("no ubus call")
		}
	}
	first := netip.MustParsePrefix("2001:db8:1200::/56")
	wanAddr := netip.MustParseAddr("2001:db8:0:100::1a2b")
	if c := recv(); c.Old.IsValid() || c.New != first || c.Addr != wanAddr {
		t.Fatalf("first change %+v", c)
	}
	waitCall()
	for range 3 { // calls 2, 3 and 4 report nothing
		src.Refresh()
		waitCall()
	}
	src.Refresh() // call 5 (or the retry timer got there first)
	renumbered := netip.MustParsePrefix("2001:db8:7700::/48")
	if c := recv(); c.Old != first || c.New != renumbered || c.Addr != wanAddr {
		t.Fatalf("renumbering %+v", c)
	}
	waitCall()
	src.Refresh()
	if c := recv(); c.Old != renumbered || c.New != renumbered || c.Addr != netip.MustParseAddr("2001:db8:0:200::9") {
		t.Fatalf("address change %+v", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not stop")
	}
}

func TestNetifdPoll(t *testing.T) {
	s := &scripted{answers: []answer{
		{out: fixture(t, "wan6-down.json")},
		{out: fixture(t, "wan6-down.json")},
		{out: fixture(t, "wan6-up.json")},
	}}
	r := &fakeRunner{}
	r.reply = s.reply(t)
	src := NewNetifdPrefix(NetifdPrefixOptions{Runner: r, Poll: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan board.PrefixChange, 1)
	go func() { _ = src.Watch(ctx, out) }()
	select {
	case c := <-out:
		if c.New != netip.MustParsePrefix("2001:db8:1200::/56") {
			t.Fatalf("change %+v", c)
		}
	case <-ctx.Done():
		t.Fatal("polling never found the prefix")
	}
	if n := len(r.Calls()); n < 3 {
		t.Errorf("%d calls, want at least 3", n)
	}
}

func TestNetifdWatchBadInterface(t *testing.T) {
	src := NewNetifdPrefix(NetifdPrefixOptions{Interface: "wan6/../x", Runner: &fakeRunner{}})
	err := src.Watch(context.Background(), make(chan board.PrefixChange))
	if err == nil || !strings.Contains(err.Error(), `"wan6/../x"`) {
		t.Fatalf("error %v", err)
	}
}

// FuzzParseInterfaceStatus: no panic, and a chosen prefix is always a
// masked global prefix that one of the entries carries.
func FuzzParseInterfaceStatus(f *testing.F) {
	for _, name := range []string{"wan6-up.json", "wan6-down.json", "wan6-several.json"} {
		b, err := os.ReadFile("testdata/ubus/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseInterfaceStatus(data)
		if err != nil {
			return
		}
		p, ok := st.DelegatedPrefix()
		if !ok {
			return
		}
		if p != p.Masked() || !p.Addr().IsGlobalUnicast() || p.Bits() == 0 || p.Bits() == 128 {
			t.Fatalf("chose %s", p)
		}
		for _, l := range st.Prefixes {
			if l.Prefix.Masked() == p && l.Valid > 0 {
				return
			}
		}
		t.Fatalf("chose %s, which no valid entry carries", p)
	})
}
