package cwmpclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// CWMP namespaces. Protocol versions 1.3 and 1.4 reuse the 1-2 namespace.
const (
	NS10 = "urn:dslforum-org:cwmp-1-0"
	NS11 = "urn:dslforum-org:cwmp-1-1"
	NS12 = "urn:dslforum-org:cwmp-1-2"

	nsSOAPEnv = "http://schemas.xmlsoap.org/soap/envelope/"
	nsSOAPEnc = "http://schemas.xmlsoap.org/soap/encoding/"
	nsXSD     = "http://www.w3.org/2001/XMLSchema"
	nsXSI     = "http://www.w3.org/2001/XMLSchema-instance"
)

// MaxEnvelopeSize caps what Decode accepts; an ACS request bigger than this
// is refused before parsing (a GetParameterValues for the whole tree is a
// few kB; a SetParameterValues of thousands of parameters stays well under).
const MaxEnvelopeSize = 4 << 20

// maxElements bounds the element count of a decoded message so a body of
// many tiny elements cannot make the dispatcher do unbounded work.
const maxElements = 100000

// maxDepth bounds nesting; CWMP messages are at most 6 levels deep, vendor
// RPCs get some room.
const maxDepth = 64

var genieFaultName = regexp.MustCompile(`(</?)([A-Za-z_][A-Za-z0-9_.-]*):Body:Fault`)

// unknownTime is the TR-069 "Unknown Time" for dateTime fields.
var unknownTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// Envelope is one decoded SOAP envelope.
type Envelope struct {
	// NS is the CWMP namespace the sender used ("" when none was seen).
	NS string
	// ID is the cwmp:ID header, echoed in the answer.
	ID string
	// HoldRequests: the ACS asks the CPE not to send requests for now.
	HoldRequests bool
	// NoMoreRequests is the obsolete header (CWMP 1.0); only recorded.
	NoMoreRequests bool
	// Msg is the body's message; nil for an empty body.
	Msg Message
}

// MustUnderstandError reports a header the client does not implement but
// the sender marked mustUnderstand="1"; the CPE answers with a fault.
type MustUnderstandError struct{ Header string }

func (e *MustUnderstandError) Error() string {
	return fmt.Sprintf("soap header %q is mustUnderstand and not supported", e.Header)
}

// ErrTooLarge is returned for envelopes over MaxEnvelopeSize.
var ErrTooLarge = errors.New("soap envelope too large")

// Decode parses one SOAP envelope leniently: elements are matched by local
// name whatever prefix or namespace they carry, values are trimmed, and
// unknown headers are ignored unless they are mustUnderstand. On a
// MustUnderstandError or a *Fault (malformed arguments) the returned
// envelope still carries the ID so the caller can answer.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &Envelope{}, nil
	}
	if bytes.Contains(b, []byte(":Body:Fault")) {
		// GenieACS writes its faults as <soap-env:Body:Fault>, a name Go's
		// XML reader refuses (two colons): read it as <soap-env:Fault>.
		b = genieFaultName.ReplaceAll(b, []byte("${1}${2}:Fault"))
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{CharsetReader: passCharset}
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, fmt.Errorf("soap: malformed xml: %w", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" {
		return nil, errors.New("soap: no Envelope element")
	}
	if err := checkShape(root); err != nil {
		return nil, err
	}
	env := &Envelope{}
	var body *etree.Element
	var hdrErr error
	for _, c := range root.ChildElements() {
		switch c.Tag {
		case "Header":
			hdrErr = decodeHeader(env, c)
		case "Body":
			if body == nil {
				body = c
			}
		}
	}
	if body == nil {
		return nil, errors.New("soap: no Body element")
	}
	if hdrErr != nil {
		return env, hdrErr
	}
	kids := body.ChildElements()
	if len(kids) == 0 {
		return env, nil
	}
	m := kids[0]
	if ns := m.NamespaceURI(); strings.HasPrefix(ns, "urn:dslforum-org:cwmp-") {
		env.NS = ns
	}
	msg, err := decodeMessage(m)
	env.Msg = msg
	return env, err
}

func passCharset(_ string, r io.Reader) (io.Reader, error) { return r, nil }

// checkShape bounds the element count and depth of a parsed message, so
// that no later (recursive) walk does unbounded work. Iterative on purpose.
func checkShape(root *etree.Element) error {
	type item struct {
		e     *etree.Element
		depth int
	}
	stack := []item{{root, 1}}
	n := 0
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n++; n > maxElements {
			return fmt.Errorf("soap: more than %d elements", maxElements)
		}
		if it.depth > maxDepth {
			return fmt.Errorf("soap: elements nested deeper than %d", maxDepth)
		}
		for _, c := range it.e.Child {
			if ce, ok := c.(*etree.Element); ok {
				stack = append(stack, item{ce, it.depth + 1})
			}
		}
	}
	return nil
}

func decodeHeader(env *Envelope, h *etree.Element) error {
	var firstErr error
	for _, c := range h.ChildElements() {
		if env.NS == "" && strings.HasPrefix(c.NamespaceURI(), "urn:dslforum-org:cwmp-") {
			env.NS = c.NamespaceURI()
		}
		switch c.Tag {
		case "ID":
			env.ID = text(c)
		case "HoldRequests":
			env.HoldRequests = parseBool(text(c))
		case "NoMoreRequests":
			env.NoMoreRequests = parseBool(text(c))
		case "SessionTimeout", "SupportedCWMPVersions", "UseCWMPVersion":
			// Known CWMP 1.4 headers that need no action from this CPE.
		default:
			if mustUnderstand(c) && firstErr == nil {
				firstErr = &MustUnderstandError{Header: c.Tag}
			}
		}
	}
	return firstErr
}

func mustUnderstand(e *etree.Element) bool {
	for _, a := range e.Attr {
		if a.Key == "mustUnderstand" && strings.TrimSpace(a.Value) == "1" {
			return true
		}
	}
	return false
}

// text is an element's trimmed character data.
func text(e *etree.Element) string {
	if e == nil {
		return ""
	}
	return strings.TrimSpace(e.Text())
}

// child finds the first child with the given local name.
func child(e *etree.Element, name string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if c.Tag == name {
			return c
		}
	}
	return nil
}

func childText(e *etree.Element, name string) string { return text(child(e, name)) }

func parseBool(s string) bool {
	s = strings.TrimSpace(s)
	return s == "1" || strings.EqualFold(s, "true")
}

// ---- encoding ----

// encoder writes a message's children into its body element.
type encoder interface {
	encode(m *etree.Element)
}

// Encode writes one envelope strictly per the CWMP schemas: every element
// in the schema's order, arrays with their soap-enc:arrayType, values with
// xsi:type. ns is the CWMP namespace (NS10..NS12; empty means NS12) and id
// the cwmp:ID header (omitted when empty). A nil msg writes an empty body.
func Encode(ns, id string, msg Message) ([]byte, error) {
	if ns == "" {
		ns = NS12
	}
	if m, ok := msg.(Inform); ok && !ValidOUI(m.DeviceID.OUI) {
		return nil, fmt.Errorf("soap: Inform DeviceId OUI %q is not 6 upper-case hex digits", m.DeviceID.OUI)
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	env := doc.CreateElement("soap-env:Envelope")
	env.CreateAttr("xmlns:soap-env", nsSOAPEnv)
	env.CreateAttr("xmlns:soap-enc", nsSOAPEnc)
	env.CreateAttr("xmlns:xsd", nsXSD)
	env.CreateAttr("xmlns:xsi", nsXSI)
	env.CreateAttr("xmlns:cwmp", ns)
	if id != "" {
		h := env.CreateElement("soap-env:Header")
		idEl := h.CreateElement("cwmp:ID")
		idEl.CreateAttr("soap-env:mustUnderstand", "1")
		idEl.SetText(clean(id))
	}
	body := env.CreateElement("soap-env:Body")
	switch m := msg.(type) {
	case nil:
	case *Fault:
		encodeFault(body, m)
	case VendorMessage:
		if !validName(m.Name) {
			return nil, fmt.Errorf("soap: vendor method name %q is not an XML name", m.Name)
		}
		if err := checkFields(m.Fields, 0); err != nil {
			return nil, fmt.Errorf("soap: %s: %w", m.Name, err)
		}
		encodeFields(body.CreateElement("cwmp:"+m.Name), m.Fields)
	case encoder:
		m.encode(body.CreateElement("cwmp:" + msg.MethodName()))
	default:
		return nil, fmt.Errorf("soap: cannot encode %T", msg)
	}
	doc.WriteSettings.CanonicalEndTags = true
	return doc.WriteToBytes()
}

func encodeFault(body *etree.Element, f *Fault) {
	sf := body.CreateElement("soap-env:Fault")
	sf.CreateElement("faultcode").SetText(f.soapCode())
	sf.CreateElement("faultstring").SetText("CWMP fault")
	cf := sf.CreateElement("detail").CreateElement("cwmp:Fault")
	cf.CreateElement("FaultCode").SetText(strconv.Itoa(f.Code))
	cf.CreateElement("FaultString").SetText(clean(f.String))
	for _, p := range f.SPV {
		e := cf.CreateElement("SetParameterValuesFault")
		e.CreateElement("ParameterName").SetText(clean(p.Name))
		e.CreateElement("FaultCode").SetText(strconv.Itoa(p.Code))
		e.CreateElement("FaultString").SetText(clean(p.String))
	}
}

// checkFields rejects field names that are not XML names and nesting
// deeper than 32 levels.
func checkFields(fields []Field, depth int) error {
	if depth > 32 {
		return errors.New("fields nested deeper than 32 levels")
	}
	for _, f := range fields {
		if !validName(f.Name) {
			return fmt.Errorf("field name %q is not an XML name", f.Name)
		}
		if err := checkFields(f.Children, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func encodeFields(e *etree.Element, fields []Field) {
	for _, f := range fields {
		c := e.CreateElement(f.Name)
		if len(f.Children) > 0 {
			encodeFields(c, f.Children)
		} else {
			c.SetText(clean(f.Value))
		}
	}
}

// ValidOUI reports whether s is an IEEE OUI as CWMP writes it: six
// upper-case hex digits.
func ValidOUI(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// validName accepts the XML names a vendor RPC may use (ASCII subset).
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// clean replaces characters XML 1.0 cannot carry so the output stays well
// formed whatever a getter returns.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok && utf8.ValidString(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if xmlChar(r) {
			return r
		}
		return '\uFFFD'
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// clip cuts s to n characters (xsd maxLength counts characters) after
// cleaning it.
func clip(s string, n int) string {
	s = clean(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		t = unknownTime
	}
	return t.UTC().Format(time.RFC3339)
}

func array(parent *etree.Element, name, itemType string, n int) *etree.Element {
	a := parent.CreateElement(name)
	a.CreateAttr("soap-enc:arrayType", fmt.Sprintf("%s[%d]", itemType, n))
	return a
}

func add(parent *etree.Element, name, value string) *etree.Element {
	e := parent.CreateElement(name)
	e.SetText(value)
	return e
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
