package openwrt

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// sec is a compact section for expectations: options as "name=value" or
// "name=[a b]" for lists (values joined by "|").
type sec struct {
	typ, name string
	opts      []string
}

func flatten(f *File) []sec {
	var out []sec
	for _, s := range f.Sections {
		x := sec{typ: s.Type, name: s.Name}
		for _, o := range s.Options {
			if o.List {
				x.opts = append(x.opts, o.Name+"=["+strings.Join(o.Values, "|")+"]")
			} else {
				x.opts = append(x.opts, o.Name+"="+o.Values[0])
			}
		}
		out = append(out, x)
	}
	return out
}

func TestParseUCI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sec
	}{
		{"empty", "", nil},
		{"blank and comments", "\n  \n# c\n\t# indented\n", nil},
		{"named and anonymous", "config a 'x'\n\toption k 'v'\nconfig b\n\toption k v\n",
			[]sec{{"a", "x", []string{"k=v"}}, {"b", "", []string{"k=v"}}}},
		{"abbreviated commands", "c a x\no k v\nl l 1\nl l 2\n",
			[]sec{{"a", "x", []string{"k=v", "l=[1|2]"}}}},
		{"double quotes and escapes", `config a` + "\n" + `option k "a\"b\\c\nd e"` + "\n",
			[]sec{{"a", "", []string{`k=a"b\cnd e`}}}},
		{"single quotes keep backslashes", `config a` + "\n" + `option k 'a\nb\'` + "\n",
			[]sec{{"a", "", []string{`k=a\nb\`}}}},
		{"export escape of a quote", "config a\noption k 'it'\\''s'\n",
			[]sec{{"a", "", []string{"k=it's"}}}},
		{"concatenated pieces", "config a\noption k ab'c d'\"e f\"g\\ h\n",
			[]sec{{"a", "", []string{"k=abc de fg h"}}}},
		{"unquoted backslash escapes", `config a` + "\n" + `option k a\#b\;c\\d\'e` + "\n",
			[]sec{{"a", "", []string{`k=a#b;c\d'e`}}}},
		{"comment after value", "config a # anonymous\noption k v # note\noption j 'w'#x\n",
			[]sec{{"a", "", []string{"k=v", "j=w"}}}},
		{"hash inside unquoted word ends the line", "config a\noption k v#w\n",
			[]sec{{"a", "", []string{"k=v"}}}},
		{"hash inside quotes is data", "config a\noption k 'v#w' \n",
			[]sec{{"a", "", []string{"k=v#w"}}}},
		{"line continuation unquoted", "config a\noption k ab\\\ncd\n",
			[]sec{{"a", "", []string{"k=abcd"}}}},
		{"line continuation CRLF", "config a\r\noption k ab\\\r\ncd\r\n",
			[]sec{{"a", "", []string{"k=abcd"}}}},
		{"line continuation in double quotes", "config a\noption k \"ab\\\ncd\"\n",
			[]sec{{"a", "", []string{"k=abcd"}}}},
		{"continuation before the value", "config a\noption k \\\nv\n",
			[]sec{{"a", "", []string{"k=v"}}}},
		{"multi-line single quotes keep newline", "config a\noption k 'ab\ncd'\noption j x\n",
			[]sec{{"a", "", []string{"k=ab\ncd", "j=x"}}}},
		{"backslash at end of input", "config a\noption k v\\",
			[]sec{{"a", "", []string{"k=v"}}}},
		{"CRLF line ends", "config a 'x'\r\n\toption k 'v'\r\n",
			[]sec{{"a", "x", []string{"k=v"}}}},
		{"no newline at end", "config a\noption k v",
			[]sec{{"a", "", []string{"k=v"}}}},
		{"semicolon separates commands", "config a x; option k v; list l 1;list l 2\n",
			[]sec{{"a", "x", []string{"k=v", "l=[1|2]"}}}},
		{"empty option is ignored", "config a\noption k ''\noption j\noption i v\noption i \"\"\n",
			[]sec{{"a", "", []string{"i=v"}}}},
		{"option set again moves last", "config a\noption k 1\noption j 2\noption k 3\n",
			[]sec{{"a", "", []string{"j=2", "k=3"}}}},
		{"same value again stays in place", "config a\noption k 1\noption j 2\noption k 1\n",
			[]sec{{"a", "", []string{"k=1", "j=2"}}}},
		{"list after option becomes list", "config a\noption k 1\noption j 2\nlist k 3\n",
			[]sec{{"a", "", []string{"j=2", "k=[1|3]"}}}},
		{"option after list replaces it", "config a\nlist k 1\nlist k 2\noption j 2\noption k 3\n",
			[]sec{{"a", "", []string{"j=2", "k=3"}}}},
		{"empty list item is kept", "config a\nlist k ''\nlist k x\n",
			[]sec{{"a", "", []string{"k=[|x]"}}}},
		{"named section reopened", "config a x\noption k 1\nconfig b\nconfig a x\noption j 2\n",
			[]sec{{"a", "x", []string{"k=1", "j=2"}}, {"b", "", nil}}},
		{"quoted empty name is anonymous", "config a ''\noption k v\n",
			[]sec{{"a", "", []string{"k=v"}}}},
		{"odd but valid type", "config 'my.type-1'\n",
			[]sec{{"my.type-1", "", nil}}},
		{"package line", "package network\n\nconfig a x\n",
			[]sec{{"a", "x", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseUCI("test", []byte(tt.in))
			if err != nil {
				t.Fatalf("ParseUCI: %v", err)
			}
			if got := flatten(f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			roundTrip(t, f)
		})
	}
}

func TestParseUCIErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the whole error text
	}{
		{"invalid command", "config a\n\tset k v\n", `cfg:2: invalid command "set": "set k v"`},
		{"config without type", "config\n", `cfg:1: insufficient arguments: "config"`},
		{"config with empty type", "config ''\n", `cfg:1: insufficient arguments: "config ''"`},
		{"bad type", "config 'a b'\n", `cfg:1: invalid character in type field ("a b"): "config 'a b'"`},
		{"bad section name", "config a 'my-name'\n", `cfg:1: invalid character in name field ("my-name"): "config a 'my-name'"`},
		{"bad option name", "config a\noption k.x v\n", `cfg:2: invalid character in name field ("k.x"): "option k.x v"`},
		{"option without name", "config a\noption\n", `cfg:2: insufficient arguments: "option"`},
		{"too many arguments", "config a\noption k v w\n", `cfg:2: too many arguments ("w"): "option k v w"`},
		{"config too many", "config a b c\n", `cfg:1: too many arguments ("c"): "config a b c"`},
		{"option before section", "# x\noption k v\n", `cfg:2: option/list command found before the first section: "option k v"`},
		{"unterminated single", "config a\noption k 'v\n\nmore\n", `cfg:2: EOF with unterminated ': "option k 'v"`},
		{"unterminated double", "config a\n\noption k \"v\n", `cfg:3: EOF with unterminated ": "option k \"v"`},
		{"type change", "config a x\nconfig b x\n", `cfg:2: section of different type overwrites prior section with same name ("x" is "a", not "b"): "config b x"`},
		{"NUL byte", "config a\noption k 'v\x00'\n", "cfg:2: NUL byte at offset 20: \"option k 'v\\x00'\""},
		{"second package", "package a\nconfig x\npackage b\n", `cfg:3: package "b" after the start of package "a": one package per file is supported: "package b"`},
		{"package without name", "package\n", `cfg:1: package without name: "package"`},
		{"error line after multi-line value", "config a\noption k 'x\ny'\noption 1.2 v\n", `cfg:4: invalid character in name field ("1.2"): "option 1.2 v"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseUCI("cfg", []byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestNetworkFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/network")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseUCI("network", b)
	if err != nil {
		t.Fatal(err)
	}
	get := func(ref, opt string) string {
		t.Helper()
		v, ok := f.Get(ref, opt)
		if !ok {
			t.Fatalf("%s.%s not set", ref, opt)
		}
		return v
	}
	checks := []struct{ got, want string }{
		{get("wan6", "proto"), "dhcpv6"},
		{get("wan6", "device"), "wan"},
		{get("globals", "ula_prefix"), "fd3c:8a2e:1b44::/48"},
		{get("@device[0]", "ports"), "lan1 lan2 lan3"},
		{get("@device[-1]", "macaddr"), "94:83:c4:a1:b2:c3"},
		{get("@interface[1]", "ipaddr"), "192.168.1.1"},
		{get("@[1]", "packet_steering"), "1"},
		{get("@rule6[0]", "lookup"), "100"},
		{get("@route6[0]", "gateway"), "fe80::1"},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: got %q, want %q", i, c.got, c.want)
		}
	}
	if got := f.List("@device[0]", "ports"); !reflect.DeepEqual(got, []string{"lan1", "lan2", "lan3"}) {
		t.Errorf("ports list: %q", got)
	}
	if got := f.List("lan", "proto"); !reflect.DeepEqual(got, []string{"static"}) {
		t.Errorf("plain option as list: %q", got)
	}
	if n := len(f.SectionsOfType("interface")); n != 4 {
		t.Errorf("%d interface sections, want 4", n)
	}
	for _, ref := range []string{"nope", "@device[2]", "@device[-3]", "@device", "@device[x]", "@device[0]x"} {
		if _, ok := f.Section(ref); ok {
			t.Errorf("Section(%q) found something", ref)
		}
	}
	if _, ok := f.Get("wan6", "nope"); ok {
		t.Error("absent option reported present")
	}
	roundTrip(t, f)
}

func TestMarshalRefuses(t *testing.T) {
	opt := func(name string, list bool, v ...string) *Option { return &Option{Name: name, Values: v, List: list} }
	tests := []struct {
		name string
		f    File
		want string
	}{
		{"bad package", File{Package: "a b"}, `package name "a b"`},
		{"bad type", File{Sections: []*Section{{Type: "a b"}}}, `type "a b"`},
		{"bad name", File{Sections: []*Section{{Type: "a", Name: "x-y"}}}, `name "x-y"`},
		{"duplicate name", File{Sections: []*Section{{Type: "a", Name: "x"}, {Type: "a", Name: "x"}}}, `name "x" is used twice`},
		{"bad option", File{Sections: []*Section{{Type: "a", Options: []*Option{opt("k.v", false, "1")}}}}, `option name "k.v"`},
		{"duplicate option", File{Sections: []*Section{{Type: "a", Options: []*Option{opt("k", false, "1"), opt("k", true, "2")}}}}, `option "k" is set twice`},
		{"empty option", File{Sections: []*Section{{Type: "a", Options: []*Option{opt("k", false, "")}}}}, `option "k" is empty`},
		{"two values", File{Sections: []*Section{{Type: "a", Options: []*Option{opt("k", false, "1", "2")}}}}, `option "k" has 2 values`},
		{"empty list", File{Sections: []*Section{{Type: "a", Options: []*Option{opt("k", true)}}}}, `list "k" has no values`},
		{"NUL", File{Sections: []*Section{{Type: "a", Options: []*Option{opt("k", false, "a\x00")}}}}, `NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.f.Marshal()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMarshalForm(t *testing.T) {
	f := &File{Package: "srv6cpe", Sections: []*Section{
		{Type: "srv6cpe", Name: "main", Options: []*Option{
			{Name: "k", Values: []string{"it's"}},
			{Name: "l", Values: []string{"a", ""}, List: true},
		}},
		{Type: "odd#type"},
	}}
	got, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "package srv6cpe\n\nconfig srv6cpe 'main'\n\toption k 'it'\\''s'\n\tlist l 'a'\n\tlist l ''\n\nconfig 'odd#type'\n\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	roundTrip(t, f)
}

// roundTrip checks that f survives Marshal and ParseUCI unchanged, and that
// marshalling is then stable byte for byte.
func roundTrip(t *testing.T, f *File) {
	t.Helper()
	out, err := f.Marshal()
	if err != nil {
		t.Fatalf("Marshal of a parsed file: %v", err)
	}
	g, err := ParseUCI("marshalled", out)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	if !sameStructure(f, g) {
		t.Fatalf("round trip changed the structure\nbefore %q\nafter  %q\ntext:\n%s", flatten(f), flatten(g), out)
	}
	out2, err := g.Marshal()
	if err != nil {
		t.Fatalf("second Marshal: %v", err)
	}
	if !bytes.Equal(out, out2) {
		t.Fatalf("Marshal not stable:\n%s\n---\n%s", out, out2)
	}
}

// sameStructure compares files ignoring line numbers.
func sameStructure(a, b *File) bool {
	if a.Package != b.Package || len(a.Sections) != len(b.Sections) {
		return false
	}
	for i, s := range a.Sections {
		u := b.Sections[i]
		if s.Type != u.Type || s.Name != u.Name || len(s.Options) != len(u.Options) {
			return false
		}
		for j, o := range s.Options {
			p := u.Options[j]
			if o.Name != p.Name || o.List != p.List || !slicesEqual(o.Values, p.Values) {
				return false
			}
		}
	}
	return true
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzParseUCI(f *testing.F) {
	seeds := []string{
		"config a 'x'\n\toption k 'v'\n\tlist l '1'\n",
		"package p\nconfig a\noption k \"a\\\"b\"\n",
		"config a\noption k 'it'\\''s'\n# c\n",
		"config a x; option k v; list l 1\n",
		"config a\noption k ab\\\ncd\n",
		"config a\noption k 'multi\nline'\n",
		"c a\no k v#c\nl k w\n",
		"config 'odd#type' ''\n",
	}
	if b, err := os.ReadFile("testdata/network"); err == nil {
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseUCI("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a located *ParseError", err)
			}
			return
		}
		roundTrip(t, file)
	})
}
