package dataplane

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// readRules dumps the rules (IPv4 and IPv6) carrying our protocol, with each rule's
// message body by rule: deleting by the body's own attributes removes
// exactly that rule, never a look-alike that differs in one we do not read.
func (k *Kernel) readRules() ([]krule, map[krule][][]byte, error) {
	var out []krule
	raw := map[krule][][]byte{}
	err := k.c.dump(func(w *wbuf, seq uint32) { w.dumpRules(seq) }, func() { out, raw = out[:0], map[krule][][]byte{} }, func(typ uint16, body []byte) error {
		if typ != unix.RTM_NEWRULE {
			return nil
		}
		r, proto, err := decodeRule(body)
		if err != nil {
			if len(body) > 2 && (body[0] == unix.AF_INET6 || body[0] == unix.AF_INET) {
				k.log.Warn("unreadable rule skipped", zap.Error(err))
			}
			return nil
		}
		if proto == RouteProtocol {
			out = append(out, r)
			raw[r] = append(raw[r], slices.Clone(body))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read rules: %w", err)
	}
	return out, raw, nil
}

// delRules deletes rules read by readRules, each by its own message body.
func (k *Kernel) delRules(list []krule, raw map[krule][][]byte, ae *ApplyError) {
	type one struct {
		r    krule
		body []byte
	}
	var todo []one
	for _, r := range list {
		bodies := raw[r]
		if len(bodies) == 0 {
			continue
		}
		todo = append(todo, one{r, bodies[0]})
		raw[r] = bodies[1:] // duplicates are listed once per copy
	}
	if len(todo) == 0 {
		return
	}
	failed, err := k.run(len(todo), func(i int, w *wbuf, seq uint32) {
		off := w.begin(unix.RTM_DELRULE, unix.NLM_F_REQUEST, seq)
		w.bytes(todo[i].body)
		w.end(off)
	})
	for i, x := range todo {
		e, bad := failed[i]
		if bad && (errors.Is(e, unix.ENOENT) || errors.Is(e, unix.ESRCH)) {
			bad = false // already gone
		}
		if bad || err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "delete " + x.r.String(), Err: errors.Join(e, err)})
			continue
		}
		ae.Applied++
	}
}

// addRules adds rules, recording the outcome in ae.
func (k *Kernel) addRules(list []krule, ae *ApplyError) {
	if len(list) == 0 {
		return
	}
	failed, err := k.run(len(list), func(i int, w *wbuf, seq uint32) { w.putRule(seq, list[i]) })
	for i, r := range list {
		e, bad := failed[i]
		if bad || err != nil {
			ae.Failed = append(ae.Failed, OpError{Op: "add " + r.String(), Err: errors.Join(e, err)})
			continue
		}
		ae.Applied++
	}
}
