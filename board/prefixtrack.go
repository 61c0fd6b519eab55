package board

import "net/netip"

// PrefixTracker is the reporting rule every prefix source shares: report a
// change of prefix or address; keep the last address when a read finds none;
// when the prefix disappears report nothing (the CPE keeps its SIDs until a
// new prefix arrives); when the same prefix comes back report it again with
// Old == New, because the kernel removed the routes on the WAN with it and
// the agent must re-apply them. The zero value is ready to use.
type PrefixTracker struct {
	last    PrefixChange
	missing bool
}

// Last is the last change reported.
func (t *PrefixTracker) Last() PrefixChange { return t.last }

// Lost records a read that found no prefix. It returns true for the first
// such read in a row, so the caller logs the loss once.
func (t *PrefixTracker) Lost() (first bool) {
	first = !t.missing
	t.missing = true
	return first
}

// Found records a read that found prefix p and address addr (invalid when
// unknown) and returns the change to report, if any. returned says the
// prefix had been lost before this read.
func (t *PrefixTracker) Found(p netip.Prefix, addr netip.Addr) (c PrefixChange, report, returned bool) {
	returned = t.missing
	t.missing = false
	if !addr.IsValid() {
		addr = t.last.Addr
	}
	if p == t.last.New && addr == t.last.Addr && !returned {
		return t.last, false, false
	}
	t.last = PrefixChange{Old: t.last.New, New: p, Addr: addr}
	return t.last, true, returned
}
