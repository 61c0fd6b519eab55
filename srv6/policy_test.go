package srv6

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// draftExample (testdata/draft-policy.yaml) is the configuration example of
// draft-yang-srv6ops-policy-selector (§4/§5) in this package's YAML shape.
// The draft's body could not be read when this was written (only its first
// page was available), so the structure follows issue 7's account of it: a
// parent sr-policy with the services conference and crm, steered by the
// routing policy selectors irp1 and irp2 over two constituent paths; the
// colors, addresses, 100 ms, 50M and 60 s are this test's own numbers.
var draftExample = func() string {
	b, err := os.ReadFile("testdata/draft-policy.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

type policiesFile struct {
	Policies []Policy `yaml:"policies"`
}

func decodePolicies(t *testing.T, text string) []Policy {
	t.Helper()
	var f policiesFile
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f.Policies
}

func draftPolicy(t *testing.T) Policy {
	a := netip.MustParseAddr
	return Policy{
		Name: "sr-policy", Color: 100, Endpoint: a("2001:db8:2::1"),
		Constituents: []Constituent{
			{Color: 10, Name: "path1", SegmentLists: []SegmentList{{Segments: Segments{a("2001:db8:a::1"), a("2001:db8:2::1")}, Weight: 1}}},
			{Color: 20, Name: "path2", SegmentLists: []SegmentList{{Segments: Segments{a("2001:db8:b::1"), a("2001:db8:2::1")}, Weight: 1}}},
		},
		Selectors: []RoutingSelector{
			{
				Name:       "irp1",
				Priorities: []PriorityEntry{{Priority: 1, Color: 10}, {Priority: 2, Color: 20}},
				Thresholds: Thresholds{Delay: 100 * time.Millisecond}, Default: 10, WaitToRestore: time.Minute,
			},
			{
				Name:       "irp2",
				Priorities: []PriorityEntry{{Priority: 1, Color: 20}, {Priority: 2, Color: 10}},
				Thresholds: Thresholds{MinBandwidth: 50e6}, Default: 20, WaitToRestore: time.Minute,
			},
		},
		Services: []PolicyService{{Name: "conference", Selector: "irp1"}, {Name: "crm", Selector: "irp2"}},
	}
}

func TestDraftExampleConfig(t *testing.T) {
	got := decodePolicies(t, draftExample)
	want := []Policy{draftPolicy(t)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if err := ValidatePolicies(got); err != nil {
		t.Fatal(err)
	}
	// and back: what the agent writes out it reads in again
	out, err := yaml.Marshal(policiesFile{Policies: got})
	if err != nil {
		t.Fatal(err)
	}
	if again := decodePolicies(t, string(out)); !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip through\n%s\ngave %+v", out, again)
	}
}

// TestDraftSection5 plays the draft's §5 behaviour: conference leaves path1
// for path2 when path1's delay exceeds its threshold, and CRM overflows off
// path2 when path2's remaining bandwidth falls under 50M; each service moves
// alone, and each comes back after its wait-to-restore.
func TestDraftSection5(t *testing.T) {
	s, err := NewSelector(draftPolicy(t), t0)
	if err != nil {
		t.Fatal(err)
	}
	both := func(color uint32, d time.Duration, bw Bandwidth) Measurement {
		return Measurement{Color: color, Liveness: PathUp, Has: MetricDelay | MetricBandwidth, Delay: d, Bandwidth: bw}
	}
	type want struct{ conference, crm uint32 }
	check := func(step string, evs []Event, err error, w want, moved ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		for svc, color := range map[string]uint32{"conference": w.conference, "crm": w.crm} {
			c, _ := s.Choice(svc)
			if len(c.Paths) != 1 || c.Paths[0].Color != color || c.Fallback {
				t.Errorf("%s: %s on %s, want color %d", step, svc, c, color)
			}
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Service+":"+e.Kind.String())
		}
		if strings.Join(got, ",") != strings.Join(moved, ",") {
			t.Errorf("%s: events %v, want %v", step, got, moved)
		}
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	evs, err := s.Observe(at(0), both(10, 20*time.Millisecond, 80e6))
	check("path1 measured", evs, err, want{10, 10}, "conference:select", "crm:select")
	evs, err = s.Observe(at(0), both(20, 30*time.Millisecond, 80e6))
	check("path2 measured", evs, err, want{10, 20}, "crm:select")

	evs, err = s.Observe(at(time.Second), both(10, 150*time.Millisecond, 80e6))
	check("path1 delay 150ms > 100ms", evs, err, want{20, 20}, "conference:degrade")
	if !strings.Contains(evs[0].Reason, "color 10 (path1): delay 150ms above 100ms") {
		t.Errorf("reason %q", evs[0].Reason)
	}

	evs, err = s.Observe(at(2*time.Second), both(20, 30*time.Millisecond, 40e6))
	check("path2 remaining bandwidth 40M < 50M", evs, err, want{20, 10}, "crm:degrade")
	if !strings.Contains(evs[0].Reason, "remaining bandwidth 40Mbit/s under 50Mbit/s") {
		t.Errorf("reason %q", evs[0].Reason)
	}

	evs, err = s.Observe(at(3*time.Second), both(10, 20*time.Millisecond, 80e6))
	check("path1 delay back", evs, err, want{20, 10})
	evs, err = s.Observe(at(4*time.Second), both(20, 30*time.Millisecond, 90e6))
	check("path2 bandwidth back", evs, err, want{20, 10})
	if n, ok := s.NextEvaluation(); !ok || !n.Equal(at(63*time.Second)) {
		t.Fatalf("next evaluation %v %v, want 63s", n.Sub(t0), ok)
	}
	evs = s.Evaluate(at(63 * time.Second))
	check("conference's wait over", evs, nil, want{10, 10}, "conference:restore")
	evs = s.Evaluate(at(64 * time.Second))
	check("crm's wait over", evs, nil, want{10, 20}, "crm:restore")
	if _, ok := s.NextEvaluation(); ok {
		t.Error("a wait is still pending")
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(p *Policy)
		want []string
	}{
		{"valid", func(*Policy) {}, nil},
		{"no name", func(p *Policy) { p.Name = "" }, []string{"no name"}},
		{"endpoint missing", func(p *Policy) { p.Endpoint = netip.Addr{} }, []string{"endpoint: no address"}},
		{"endpoint IPv4", func(p *Policy) { p.Endpoint = netip.MustParseAddr("192.0.2.1") }, []string{"endpoint: SID \"192.0.2.1\" is an IPv4 address"}},
		{"no constituents", func(p *Policy) { p.Constituents = nil; p.Selectors = nil; p.Services = nil }, []string{"no constituents"}},
		{"constituent with the parent's color", func(p *Policy) { p.Constituents[2].Color = 100 }, []string{"constituent 3 (color 100): the parent policy's own color"}},
		{"duplicate color", func(p *Policy) { p.Constituents[1].Color = 10 }, []string{"constituent 2 (color 10): color 10 used twice"}},
		{"no segment lists", func(p *Policy) { p.Constituents[0].SegmentLists = nil }, []string{"constituent 1 (color 10): no segment lists"}},
		{"weight 0", func(p *Policy) { p.Constituents[0].SegmentLists[0].Weight = 0 }, []string{"constituent 1 (color 10) segment list 1: weight 0"}},
		{"empty segment list", func(p *Policy) { p.Constituents[1].SegmentLists[0].Segments = nil }, []string{"constituent 2 (color 20) segment list 1: no segments"}},
		{"too many segments", func(p *Policy) {
			p.Constituents[0].SegmentLists[0].Segments = make(Segments, MaxSegments+1)
			for i := range p.Constituents[0].SegmentLists[0].Segments {
				p.Constituents[0].SegmentLists[0].Segments[i] = netip.MustParseAddr("2001:db8::1")
			}
		}, []string{"17 segments, more than 16"}},
		{"multicast segment", func(p *Policy) { p.Constituents[0].SegmentLists[0].Segments[1] = netip.MustParseAddr("ff02::1") }, []string{"segment list 1 segment 2: SID \"ff02::1\" is a multicast address"}},
		{"unknown color in priorities", func(p *Policy) { p.Selectors[0].Priorities[1].Color = 77 }, []string{`selector 1 ("s"): priority 2 names color 77, not a constituent`}},
		{"priority out of range", func(p *Policy) { p.Selectors[0].Priorities[0].Priority = 0 }, []string{"priority 0 of color 10 is outside 1..255"}},
		{"priority too large", func(p *Policy) { p.Selectors[0].Priorities[0].Priority = 256 }, []string{"priority 256 of color 10 is outside 1..255"}},
		{"color listed twice", func(p *Policy) { p.Selectors[0].Priorities[1].Color = 10 }, []string{"color 10 listed twice (priorities 1 and 2)"}},
		{"equal priority is a load share, allowed", func(p *Policy) { p.Selectors[0].Priorities[1].Priority = 1 }, nil},
		{"no priorities", func(p *Policy) { p.Selectors[0].Priorities = nil }, []string{"no priorities"}},
		{"default not a constituent", func(p *Policy) { p.Selectors[0].Default = 99 }, []string{"default color 99 is not a constituent"}},
		{"default omitted", func(p *Policy) { p.Selectors[0].Default = 0 }, []string{`selector 1 ("s"): no default constituent`}},
		{"parent color 0", func(p *Policy) { p.Color = 0 }, []string{"color 0 (colors are 1..4294967295)"}},
		{"constituent color 0", func(p *Policy) { p.Constituents[2].Color = 0; p.Selectors[0].Default = 10 }, []string{"constituent 3: color 0"}},
		{"negative wait", func(p *Policy) { p.Selectors[0].WaitToRestore = -time.Second }, []string{"wait_to_restore -1s is negative"}},
		{"negative delay", func(p *Policy) { p.Selectors[0].Thresholds.Delay = -1 }, []string{"delay threshold -1ns is negative"}},
		{"negative jitter", func(p *Policy) { p.Selectors[0].Thresholds.Jitter = -1 }, []string{"jitter threshold -1ns is negative"}},
		{"loss over 100", func(p *Policy) { p.Selectors[0].Thresholds.LossPercent = 101 }, []string{"loss threshold 101% is outside 0..100"}},
		{"selector without name", func(p *Policy) { p.Selectors[0].Name = "" }, []string{"selector 1: no name", `service "svc": selector "s" is not defined`}},
		{"selector name twice", func(p *Policy) { p.Selectors = append(p.Selectors, p.Selectors[0]) }, []string{`selector 2 ("s"): name used twice`}},
		{"service without name", func(p *Policy) { p.Services[0].Name = "" }, []string{"service 1: no name"}},
		{"service twice", func(p *Policy) { p.Services = append(p.Services, p.Services[0]) }, []string{`service "svc": name used twice`}},
		{"unknown selector", func(p *Policy) { p.Services[0].Selector = "nope" }, []string{`service "svc": selector "nope" is not defined`}},
		{"every bad value named at once", func(p *Policy) {
			p.Constituents[0].SegmentLists[0].Weight = 0
			p.Selectors[0].Default = 99
			p.Services[0].Selector = "nope"
		}, []string{"weight 0", "default color 99", `selector "nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := basePolicy(t)
			c.edit(&p)
			err := p.Validate()
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestValidatePolicies(t *testing.T) {
	a, b := basePolicy(t), basePolicy(t)
	err := ValidatePolicies([]Policy{a, b})
	for _, w := range []string{`name "p" used twice`, `color 100 to 2001:db8:ffff::1 already used by policy "p"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
	b.Name, b.Color = "q", 200
	if err := ValidatePolicies([]Policy{a, b}); err != nil {
		t.Error(err)
	}
	b.Selectors[0].Default = 5
	if err := ValidatePolicies([]Policy{a, b}); err == nil || !strings.Contains(err.Error(), `"q": selector 1 ("s"): default color 5`) {
		t.Errorf("error %v does not name policy q's default", err)
	}
}

func TestParseBandwidth(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Bandwidth
		err  string
	}{
		{"50M", 50e6, ""},
		{"50Mbps", 50e6, ""},
		{"50 Mbit/s", 50e6, ""},
		{"1.5G", 1.5e9, ""},
		{"2500000", 2.5e6, ""},
		{"100k", 1e5, ""},
		{"100K", 1e5, ""},
		{"10T", 1e13, ""},
		{"0", 0, ""},
		{"", 0, "not a rate"},
		{"M", 0, "not a rate"},
		{"-5M", 0, "not a rate"},
		{"+5M", 0, "not a rate"},
		{"5m", 0, "not a rate"},
		{"1e6", 0, "not a rate"},
		{"NaN", 0, "not a rate"},
		{"Inf", 0, "not a rate"},
		{"99999999999T", 0, "too large"},
		{"18446744073709551615", 18446744073709551615, ""},
		{"1e20", 0, "not a rate"},
		{"20000000000000000000", 0, "too large"},
	} {
		got, err := ParseBandwidth(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseBandwidth(%q) = %v, %v; want an error with %q", c.in, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParseBandwidth(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct {
		b    Bandwidth
		want string
	}{{50e6, "50M"}, {1.5e9, "1500M"}, {1e12, "1T"}, {1001, "1001"}, {0, "0"}} {
		if c.b.String() != c.want {
			t.Errorf("%d.String() = %q, want %q", uint64(c.b), c.b.String(), c.want)
		}
		if back, err := ParseBandwidth(c.b.String()); err != nil || back != c.b {
			t.Errorf("ParseBandwidth(%q) = %v, %v", c.b.String(), back, err)
		}
	}
}

func TestSegmentsYAML(t *testing.T) {
	var v struct {
		A, B Segments
	}
	in := "a: [2001:db8::1, 2001:db8::2]\nb: \"2001:db8::3:End, 2001:db8::4\"\n"
	if err := yaml.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if got := []netip.Addr(v.B); len(got) != 2 || got[0] != netip.MustParseAddr("2001:db8::3") {
		t.Errorf("b = %v", got)
	}
	if len(v.A) != 2 || v.A[1] != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("a = %v", v.A)
	}
	// (a sequence's items are netip.Addr: an IPv4 one decodes and
	// Policy.Validate refuses it)
	for _, bad := range []string{"a: [2001:db8::1, nope]\n", "a: \"\"\n", "a: \"2001:db8::1, ff02::1\"\n"} {
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestDraftSection5MetricOrder: a list only missing a metric a selector
// checks has not failed, so when delay arrives before bandwidth, crm goes
// straight to path2 once path2's bandwidth is in, with no wait-to-restore.
func TestDraftSection5MetricOrder(t *testing.T) {
	s, err := NewSelector(draftPolicy(t), t0)
	if err != nil {
		t.Fatal(err)
	}
	delay := func(color uint32) Measurement {
		return Measurement{Color: color, Liveness: PathUp, Has: MetricDelay, Delay: 20 * time.Millisecond}
	}
	bw := func(color uint32) Measurement {
		return Measurement{Color: color, Has: MetricBandwidth, Bandwidth: 80e6}
	}
	for _, m := range []Measurement{delay(10), delay(20)} {
		if _, err := s.Observe(t0, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []Measurement{bw(10), bw(20)} {
		if _, err := s.Observe(t0.Add(time.Second), m); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := s.Choice("crm"); c.Fallback || c.Priority != 1 || c.Colors()[0] != 20 {
		t.Fatalf("crm on %s, want priority 1 (color 20) at once", c)
	}
	if c, _ := s.Choice("conference"); c.Priority != 1 || c.Colors()[0] != 10 {
		t.Fatalf("conference on %s, want priority 1 (color 10)", c)
	}
}
