package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const issueExample = `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:1205::/48","locator_len":48,"function_len":16,` +
	`"sids":[{"name":"vpn1","behavior":"End.DT4","function":4,"sid":"2001:db8:1205:4::"},` +
	`{"name":"vpn6","behavior":"End.DT6","function":6,"sid":"2001:db8:1205:6::"}]}` + "\n"

func derive(extra ...string) []string {
	return append([]string{"sid", "derive", "--prefix", "2001:db8:1200::/40", "--locator-len", "48", "--function-len", "16"}, extra...)
}

func TestSIDDerive(t *testing.T) {
	tests := []struct {
		name string
		args []string
		out  string
	}{
		{
			name: "issue example",
			args: derive("--extension", "0x5", "--service", "vpn1=End.DT4:0x4", "--service", "vpn6=End.DT6:0x6"),
			out:  issueExample,
		},
		{
			name: "issue example, single-dash and = flags, decimal values",
			args: []string{"sid", "derive", "-prefix=2001:db8:1200::/40", "-locator-len=48", "-function-len=16", "-extension=5", "-service=vpn1=End.DT4:4", "-service=vpn6=end.dt6:6"},
			out:  issueExample,
		},
		{
			name: "prefix printed masked",
			args: []string{"sid", "derive", "--prefix", "2001:DB8:12ab::1/40", "--locator-len", "48", "--function-len", "16", "--extension", "0x5", "--service", "vpn1=End.DT4:0x4", "--service", "vpn6=End.DT6:0x6"},
			out:  issueExample,
		},
		{
			name: "default extension",
			args: derive("--service", "vpn1=End.DT4:0x4"),
			out:  `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:12ff::/48","locator_len":48,"function_len":16,"sids":[{"name":"vpn1","behavior":"End.DT4","function":4,"sid":"2001:db8:12ff:4::"}]}` + "\n",
		},
		{
			name: "extension decimal",
			args: derive("--extension", "17", "--service", "a=End:1"),
			out:  `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:1211::/48","locator_len":48,"function_len":16,"sids":[{"name":"a","behavior":"End","function":1,"sid":"2001:db8:1211:1::"}]}` + "\n",
		},
		{
			name: "extension hex",
			args: derive("--extension", "0x11", "--service", "a=End:1"),
			out:  `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:1211::/48","locator_len":48,"function_len":16,"sids":[{"name":"a","behavior":"End","function":1,"sid":"2001:db8:1211:1::"}]}` + "\n",
		},
		{
			name: "no services",
			args: derive("--extension", "0"),
			out:  `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:1200::/48","locator_len":48,"function_len":16,"sids":[]}` + "\n",
		},
		{
			name: "odd boundary L = 63, one bit of padding, BSID word",
			args: []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "63", "--function-len", "64", "--service", "b=BSID:1"},
			out:  `{"prefix":"2001:db8::/32","locator":"2001:db8:ffff:fffe::/63","locator_len":63,"function_len":64,"sids":[{"name":"b","behavior":"End.B6.Encaps","function":1,"sid":"2001:db8:ffff:fffe::2"}]}` + "\n",
		},
		{
			name: "L+F = 128 with a 64-bit function",
			args: []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "64", "--function-len", "64", "--extension", "0", "--service", "b=BSID:0xffffffffffffffff", "--service", "x=End with PSP, USP & USD:2"},
			out: `{"prefix":"2001:db8::/32","locator":"2001:db8::/64","locator_len":64,"function_len":64,"sids":[` +
				`{"name":"b","behavior":"End.B6.Encaps","function":18446744073709551615,"sid":"2001:db8::ffff:ffff:ffff:ffff"},` +
				`{"name":"x","behavior":"End with PSP, USP & USD","function":2,"sid":"2001:db8::2"}]}` + "\n",
		},
		{
			name: "name with JSON-special characters",
			args: derive("--extension", "1", "--service", `a&"b"=End.DT46:0x10`),
			out:  `{"prefix":"2001:db8:1200::/40","locator":"2001:db8:1201::/48","locator_len":48,"function_len":16,"sids":[{"name":"a&\"b\"","behavior":"End.DT46","function":16,"sid":"2001:db8:1201:10::"}]}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
			if got := stdout.String(); got != tt.out {
				t.Errorf("stdout =\n%s\nwant\n%s", got, tt.out)
			}
		})
	}
}

// TestSIDDeriveKeys decodes the output generically: exactly the issue's keys,
// in its order, and numbers as JSON numbers.
func TestSIDDeriveKeys(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(derive("--service", "vpn1=End.DT4:0x4"), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.Count(stdout.String(), "\n") != 1 || !strings.HasSuffix(stdout.String(), "\n") {
		t.Errorf("output is not one line: %q", stdout.String())
	}
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	var keys []string
	var walk func(depth int)
	walk = func(depth int) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				k, _ := dec.Token()
				keys = append(keys, strings.Repeat(".", depth)+k.(string))
				walk(depth + 1)
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				walk(depth + 1)
			}
			dec.Token()
		default:
			if k := keys[len(keys)-1]; strings.HasSuffix(k, "len") || strings.HasSuffix(k, "function") {
				if _, ok := tok.(json.Number); !ok {
					t.Errorf("%s = %#v, want a JSON number", k, tok)
				}
			}
		}
	}
	walk(0)
	want := "prefix locator locator_len function_len sids ..name ..behavior ..function ..sid"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys %q, want %q", got, want)
	}
}

func TestSIDDeriveErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string // a fragment of the one stderr line: the bad value
	}{
		{"missing --prefix", []string{"sid", "derive", "--locator-len", "48", "--function-len", "16"}, exitUsage, "missing --prefix"},
		{"missing --locator-len", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--function-len", "16"}, exitUsage, "missing --locator-len"},
		{"missing --function-len", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "48"}, exitUsage, "missing --function-len"},
		{"flag without value", derive("--service"), exitUsage, "flag needs an argument: -service"},
		{"unknown flag", derive("--locator", "x"), exitUsage, "flag provided but not defined: -locator"},
		{"flag given twice", derive("--prefix", "2001:db8::/32"), exitUsage, `given twice ("2001:db8:1200::/40" and "2001:db8::/32")`},
		{"stray argument", derive("vpn1"), exitUsage, `unexpected argument "vpn1"`},
		{"bad prefix", []string{"sid", "derive", "--prefix", "2001:db8::zz/40", "--locator-len", "48", "--function-len", "16"}, exitBadValue, `--prefix "2001:db8::zz/40" is not a prefix`},
		{"address, not prefix", []string{"sid", "derive", "--prefix", "2001:db8::", "--locator-len", "48", "--function-len", "16"}, exitBadValue, `--prefix "2001:db8::" is not a prefix`},
		{"IPv4 prefix", []string{"sid", "derive", "--prefix", "192.0.2.0/24", "--locator-len", "48", "--function-len", "16"}, exitBadValue, "delegated prefix 192.0.2.0/24 is not an IPv6 prefix"},
		{"multicast prefix", []string{"sid", "derive", "--prefix", "ff0e::/16", "--locator-len", "48", "--function-len", "16"}, exitBadValue, "ff0e::/16 overlaps ff00::/8"},
		{"L < Y", []string{"sid", "derive", "--prefix", "2001:db8:1200::/40", "--locator-len", "32", "--function-len", "16"}, exitBadValue, "locator length 32 is shorter than the delegated prefix 2001:db8:1200::/40"},
		{"L not a number", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "forty", "--function-len", "16"}, exitBadValue, `--locator-len "forty" is not a bit count`},
		{"F negative", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "48", "--function-len", "-1"}, exitBadValue, `--function-len "-1" is not a bit count`},
		{"F = 0", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "48", "--function-len", "0"}, exitBadValue, "function length 0 is outside 1..64"},
		{"F > 64", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "48", "--function-len", "80"}, exitBadValue, "function length 80 is outside 1..64"},
		{"L+F > 128", []string{"sid", "derive", "--prefix", "2001:db8::/32", "--locator-len", "120", "--function-len", "16"}, exitBadValue, "locator length 120 + function length 16 = 136 exceeds 128"},
		{"function too big", derive("--service", "vpn1=End.DT4:0x10000"), exitBadValue, `service "vpn1": function value 0x10000 does not fit 16 bits`},
		{"function 0", derive("--service", "vpn1=End.DT4:0"), exitBadValue, `service "vpn1": function value 0 is reserved`},
		{"function beyond 64 bits", derive("--service", "vpn1=End.DT4:18446744073709551616"), exitBadValue, `--service "vpn1=End.DT4:18446744073709551616": function: value "18446744073709551616" does not fit 64 bits`},
		{"function not a number", derive("--service", "vpn1=End.DT4:four"), exitBadValue, `function: value "four" is not a decimal or 0x-prefixed hex number`},
		{"duplicate function", derive("--service", "vpn1=End.DT4:0x4", "--service", "vpn6=End.DT6:4"), exitBadValue, `service "vpn6": function value 0x4 is already used by service "vpn1"`},
		{"duplicate name", derive("--service", "vpn1=End.DT4:0x4", "--service", "vpn1=End.DT6:6"), exitBadValue, `service name "vpn1" is used twice`},
		{"bad behaviour", derive("--service", "vpn1=End.DT5:0x4"), exitBadValue, `--service "vpn1=End.DT5:0x4": unknown SRv6 behaviour "End.DT5"`},
		{"service without =", derive("--service", "vpn1:End.DT4:4"), exitBadValue, `--service "vpn1:End.DT4:4": want NAME=BEHAVIOR:FUNCTION`},
		{"service without function", derive("--service", "vpn1=End.DT4"), exitBadValue, `--service "vpn1=End.DT4": want NAME=BEHAVIOR:FUNCTION`},
		{"service without name", derive("--service", "=End.DT4:4"), exitBadValue, `--service "=End.DT4:4": the service name is empty`},
		{"extension too big", derive("--extension", "0x100"), exitBadValue, "locator extension 0x100 does not fit the 8 bits between /40 and /48"},
		{"extension not a number", derive("--extension", "0xZZ"), exitBadValue, `--extension: value "0xZZ" is not a decimal or 0x-prefixed hex number`},
		{"extension negative", derive("--extension", "-1"), exitBadValue, `--extension: value "-1" is not`},
		{"value with a newline stays one line", derive("--service", "a\nb=End:1", "--service", "c=End:1"), exitBadValue, `service "c": function value 0x1 is already used by service "a\nb"`},
		{"no command", nil, exitUsage, "srv6cpectl: missing command"},
		{"unknown command", []string{"status2"}, exitUsage, `srv6cpectl: unknown command "status2"`},
		{"unknown subcommand", []string{"sid", "allocate"}, exitUsage, `srv6cpectl sid: unknown command "allocate"`},
		{"help for an unknown command", []string{"help", "sid", "allocate"}, exitUsage, `srv6cpectl: unknown command "sid allocate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			e := stderr.String()
			if strings.Count(e, "\n") != 1 || !strings.HasSuffix(e, "\n") {
				t.Errorf("stderr is not one line: %q", e)
			}
			if !strings.Contains(e, tt.msg) {
				t.Errorf("stderr %q does not hold %q", e, tt.msg)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // fragments of stdout
	}{
		{[]string{"help"}, []string{"usage: srv6cpectl <command>", "sid derive", "help "}},
		{[]string{"-h"}, []string{"usage: srv6cpectl <command>", "sid derive"}},
		{[]string{"--help"}, []string{"usage: srv6cpectl <command>"}},
		{[]string{"help", "sid"}, []string{"srv6cpectl sid <command>", "derive"}},
		{[]string{"sid", "-h"}, []string{"usage: srv6cpectl sid [--json] [--socket PATH]", "srv6cpectl sid <command>", "-socket PATH", "derive"}},
		{[]string{"help"}, []string{"status ", "routes ", "bgp ", "stamp ", "paths ", "policy ", "cwmp ", "refresh ", "openwrt-config "}},
		{[]string{"status", "--help"}, []string{"usage: srv6cpectl status [--json] [--socket PATH]", "-json", "/run/srv6cpe/control.sock"}},
		{[]string{"help", "openwrt-config"}, []string{"usage: srv6cpectl openwrt-config --uci FILE --out FILE", "-uci FILE"}},
		{[]string{"help", "sid", "derive"}, []string{"usage: srv6cpectl sid derive --prefix X/Y", "-extension E", "-service NAME=BEHAVIOR:FUNCTION"}},
		{[]string{"sid", "derive", "--help"}, []string{"usage: srv6cpectl sid derive", "-locator-len L"}},
		{[]string{"sid", "derive", "--prefix", "2001:db8::/32", "-h"}, []string{"usage: srv6cpectl sid derive"}},
		{[]string{"help", "help"}, []string{"usage: srv6cpectl help [command ...]"}},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, &stdout, &stderr); code != exitOK || stderr.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q", tt.args, code, stderr.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%q: stdout does not hold %q:\n%s", tt.args, w, stdout.String())
			}
		}
	}
}
