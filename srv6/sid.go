package srv6

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// SID is a segment identifier as an operator or a controller writes it: an
// IPv6 address and, in Q.Suppl.79's notation, the behaviour it performs.
type SID struct {
	Addr     netip.Addr
	Behavior Behavior // 0 when the notation carried no behaviour word
}

// String writes s back in the notation ParseSID reads: the canonical
// (RFC 5952) address, then ":" and the behaviour name when there is one. An
// address ending in "::" shares its last colon with the behaviour
// ("2001:db8:1205:4::End.DT4").
func (s SID) String() string {
	a := s.Addr.String()
	if s.Behavior == 0 {
		return a
	}
	if strings.HasSuffix(a, "::") {
		return a + s.Behavior.String()
	}
	return a + ":" + s.Behavior.String()
}

// ParseSID reads a SID: a plain IPv6 address ("2001:db8::1") or Q.Suppl.79's
// notation, an address followed by ":" and a behaviour word
// ("2001:0C68:3000::1:End", "2001:0C68:5000::1:BSID", "2001:db8::1:End.DT4").
//
// The rule that keeps the two apart: if the whole text is an IPv6 address, it
// is one. Otherwise the text after the last ":" is a behaviour word when it
// starts with a letter and is not all hex digits; if it is not, it belongs to
// the address, which is simply malformed ("2001:db8::1:12345"). Every
// behaviour name starts with a letter and holds a non-hex one ("End",
// "BSID", "Opaque"), so the rule never steals a group from an address
// ("2001:db8::1:dead" is an address). When the word follows "::" the colon
// is shared: "2001:db8::End" is 2001:db8:: with End.
//
// Surrounding white space is ignored. IPv4, IPv4-mapped, zoned, unspecified
// and multicast addresses are rejected: none can be a segment.
func ParseSID(s string) (SID, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return SID{}, errors.New("empty SID")
	}
	if a, err := netip.ParseAddr(t); err == nil {
		return sidFrom(s, a, 0)
	}
	i := strings.LastIndexByte(t, ':')
	if i < 0 {
		return SID{}, fmt.Errorf("SID %s is not an IPv6 address", clip(s))
	}
	addrText, word := t[:i], t[i+1:]
	if !isBehaviorWord(word) {
		return SID{}, fmt.Errorf("SID %s is not an IPv6 address", clip(s))
	}
	b, err := ParseBehavior(word)
	if err != nil {
		return SID{}, fmt.Errorf("SID %s: %w", clip(s), err)
	}
	if strings.HasSuffix(addrText, ":") {
		addrText += ":" // "...::End": the separator is the second colon of "::"
	}
	a, err := netip.ParseAddr(addrText)
	if err != nil {
		return SID{}, fmt.Errorf("SID %s: address %s is not an IPv6 address", clip(s), clip(addrText))
	}
	return sidFrom(s, a, b)
}

func sidFrom(text string, a netip.Addr, b Behavior) (SID, error) {
	switch {
	case a.Zone() != "":
		return SID{}, fmt.Errorf("SID %s has a zone; a segment is a global address", clip(text))
	case a.Is4():
		return SID{}, fmt.Errorf("SID %s is an IPv4 address", clip(text))
	case a.Is4In6():
		return SID{}, fmt.Errorf("SID %s is an IPv4-mapped address", clip(text))
	case a.IsUnspecified():
		return SID{}, fmt.Errorf("SID %s is the unspecified address", clip(text))
	case a.IsMulticast():
		return SID{}, fmt.Errorf("SID %s is a multicast address", clip(text))
	}
	return SID{Addr: a, Behavior: b}, nil
}

// clip quotes a value for an error message, cut short so that a hostile
// input cannot blow up a log line.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// isBehaviorWord tells a behaviour word from the tail of a malformed
// address: it starts with a letter, as every behaviour name does, and holds a
// character that is not a hex digit, so it cannot be a group.
func isBehaviorWord(w string) bool {
	if w == "" || !('a' <= w[0]|0x20 && w[0]|0x20 <= 'z') {
		return false
	}
	for _, c := range []byte(w) {
		if !('0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f') {
			return true
		}
	}
	return false
}

// MaxSegments caps a segment list. Each segment costs 16 bytes of the WAN
// MTU: 16 segments already take 40 + 8 + 256 = 304 bytes of encapsulation out
// of a 1492-byte PPPoE link, and routers' Maximum SID Depth (RFC 8491) is
// rarely above that. Linux itself would take up to 127 (the SRH length field
// is one octet of 8-octet units), far beyond anything a CPE should send.
const MaxSegments = 16

// ParseSegmentList reads a segment list in traversal order (first segment
// first), each item in ParseSID's notation. Accepted forms: a JSON-style list
// (["2001:db8::1", "2001:db8::2:End"], quotes optional, single or double) or
// a comma-separated list (2001:db8::1, 2001:db8::2). White space around items
// is ignored; an item whose behaviour name holds a comma must be quoted. An
// empty list, an empty item, or more than MaxSegments items is
// an error; an item error names the item and its position (from 1).
func ParseSegmentList(s string) ([]SID, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") || strings.HasSuffix(t, "]") {
		if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
			return nil, fmt.Errorf("segment list %s: unbalanced brackets", clip(s))
		}
		t = strings.TrimSpace(t[1 : len(t)-1])
	}
	if t == "" {
		return nil, fmt.Errorf("segment list %s is empty", clip(s))
	}
	items, err := splitItems(t)
	if err != nil {
		return nil, fmt.Errorf("segment list %s: %w", clip(s), err)
	}
	segs := make([]SID, 0, len(items))
	for i, item := range items {
		item = unquote(strings.TrimSpace(item))
		if item == "" {
			return nil, fmt.Errorf("segment %d of %s is empty", i+1, clip(s))
		}
		sid, err := ParseSID(item)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", i+1, err)
		}
		segs = append(segs, sid)
	}
	return segs, nil
}

// splitItems splits at commas outside quotes (a behaviour name such as
// "End with PSP, USP & USD" holds one), refusing more than MaxSegments items
// before it allocates them.
func splitItems(t string) ([]string, error) {
	var items []string
	start, quote := 0, byte(0)
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ',':
			if len(items) == MaxSegments {
				return nil, fmt.Errorf("more than %d segments", MaxSegments)
			}
			items = append(items, t[start:i])
			start = i + 1
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if len(items) == MaxSegments {
		return nil, fmt.Errorf("more than %d segments", MaxSegments)
	}
	return append(items, t[start:]), nil
}

// unquote strips one pair of matching quotes. A SID never contains a quote,
// so no escapes need handling; a stray quote stays and fails ParseSID.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// FormatSegmentList writes segs as a JSON list that ParseSegmentList reads back.
func FormatSegmentList(segs []SID) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range segs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s.String()))
	}
	b.WriteByte(']')
	return b.String()
}

// Addrs returns the addresses of segs, the form the dataplane programs.
func Addrs(segs []SID) []netip.Addr {
	out := make([]netip.Addr, len(segs))
	for i, s := range segs {
		out[i] = s.Addr
	}
	return out
}

// ParseFunction reads a function or extension value: decimal ("4") or hex
// with a 0x prefix ("0x4"). A leading 0 does not mean octal, and signs,
// underscores and white space are rejected, so a value means what it looks
// like.
func ParseFunction(s string) (uint64, error) {
	digits, base := s, 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	}
	if digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, fmt.Errorf("value %s is not a decimal or 0x-prefixed hex number", clip(s))
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("value %s does not fit 64 bits", clip(s))
		}
		return 0, fmt.Errorf("value %s is not a decimal or 0x-prefixed hex number", clip(s))
	}
	return v, nil
}
