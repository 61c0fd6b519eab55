package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/srv6cpe/srv6cpe/srv6"
)

var sidDeriveCommand = &command{
	name:     "derive",
	summary:  "derive the locator and service SIDs from a delegated prefix (Q.Suppl.79 clause 6.2), offline",
	synopsis: "--prefix X/Y --locator-len L --function-len F [--extension E] [--service NAME=BEHAVIOR:FUNCTION ...]",
	flags:    sidDeriveFlags,
}

func sidDeriveFlags(fs *flag.FlagSet) func(io.Writer) error {
	var prefix, locLen, fnLen, ext onceString
	var services []string
	fs.Var(&prefix, "prefix", "delegated IPv6 prefix `X/Y` (bits beyond Y are ignored); required")
	fs.Var(&locLen, "locator-len", "locator length `L` in bits, Y <= L; required")
	fs.Var(&fnLen, "function-len", "function length `F` in bits, 1..64, L+F <= 128; required")
	fs.Var(&ext, "extension", "value `E` of the L-Y locator bits after the prefix, decimal or 0x hex (default all ones)")
	fs.Func("service", "a service SID `NAME=BEHAVIOR:FUNCTION`, e.g. vpn1=End.DT4:0x4 (repeatable)", func(s string) error {
		services = append(services, s)
		return nil
	})
	return func(out io.Writer) error {
		for _, f := range []struct {
			name string
			v    *onceString
		}{{"prefix", &prefix}, {"locator-len", &locLen}, {"function-len", &fnLen}} {
			if !f.v.set {
				return usagef("missing --%s", f.name)
			}
		}
		p, err := netip.ParsePrefix(prefix.v)
		if err != nil {
			return fmt.Errorf("--prefix %q is not a prefix in X/Y notation", prefix.v)
		}
		l, err := parseLen("locator-len", locLen.v)
		if err != nil {
			return err
		}
		f, err := parseLen("function-len", fnLen.v)
		if err != nil {
			return err
		}
		var e *uint64
		if ext.set {
			v, err := srv6.ParseFunction(ext.v)
			if err != nil {
				return fmt.Errorf("--extension: %w", err)
			}
			e = &v
		}
		svcs := make([]srv6.Service, 0, len(services))
		for _, s := range services {
			svc, err := parseService(s)
			if err != nil {
				return fmt.Errorf("--service %q: %w", s, err)
			}
			svcs = append(svcs, svc)
		}
		d, err := srv6.Derive(p, l, f, e, svcs)
		if err != nil {
			return err
		}
		b, err := deriveJSON(d)
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}
}

// onceString is a string flag that refuses to be given twice, so a script
// that repeats --prefix learns of it instead of the last one silently winning.
type onceString struct {
	v   string
	set bool
}

func (o *onceString) String() string { return o.v }

func (o *onceString) Set(s string) error {
	if o.set {
		return fmt.Errorf("given twice (%q and %q)", o.v, s)
	}
	o.v, o.set = s, true
	return nil
}

func parseLen(flagName, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--%s %q is not a bit count", flagName, s)
	}
	return n, nil
}

// parseService reads NAME=BEHAVIOR:FUNCTION. The function is after the last
// colon, so a behaviour name may hold none but the name may hold any but "=".
func parseService(s string) (srv6.Service, error) {
	name, rest, ok := strings.Cut(s, "=")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return srv6.Service{}, errors.New("want NAME=BEHAVIOR:FUNCTION, e.g. vpn1=End.DT4:0x4")
	}
	if name == "" {
		return srv6.Service{}, errors.New("the service name is empty")
	}
	b, err := srv6.ParseBehavior(rest[:i])
	if err != nil {
		return srv6.Service{}, err
	}
	fn, err := srv6.ParseFunction(rest[i+1:])
	if err != nil {
		return srv6.Service{}, fmt.Errorf("function: %w", err)
	}
	return srv6.Service{Name: name, Behavior: b, Function: fn}, nil
}

// deriveJSON is the output of "sid derive": one line, keys in this order,
// addresses in RFC 5952 form (netip's), the prefix masked to Y bits.
func deriveJSON(d srv6.Derivation) ([]byte, error) {
	type sid struct {
		Name     string `json:"name"`
		Behavior string `json:"behavior"`
		Function uint64 `json:"function"`
		SID      string `json:"sid"`
	}
	out := struct {
		Prefix      string `json:"prefix"`
		Locator     string `json:"locator"`
		LocatorLen  int    `json:"locator_len"`
		FunctionLen int    `json:"function_len"`
		SIDs        []sid  `json:"sids"`
	}{
		Prefix:      d.Prefix.String(),
		Locator:     d.Locator.String(),
		LocatorLen:  d.Locator.Bits(),
		FunctionLen: d.FunctionLen,
		SIDs:        make([]sid, 0, len(d.SIDs)), // "sids": [] rather than null
	}
	for _, s := range d.SIDs {
		out.SIDs = append(out.SIDs, sid{Name: s.Name, Behavior: s.Behavior.String(), Function: s.Function, SID: s.SID.String()})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a name like "a&b" stays readable
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
