package cwmptest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// CWMP namespaces the double speaks. A CPE may use any; the double answers
// in the namespace of the CPE's Inform unless WithNamespace fixes one.
const (
	NS10 = "urn:dslforum-org:cwmp-1-0"
	NS11 = "urn:dslforum-org:cwmp-1-1"
	NS12 = "urn:dslforum-org:cwmp-1-2"
	NS13 = "urn:dslforum-org:cwmp-1-3"
	NS14 = "urn:dslforum-org:cwmp-1-4"

	nsSOAPEnv = "http://schemas.xmlsoap.org/soap/envelope/"
	nsSOAPEnc = "http://schemas.xmlsoap.org/soap/encoding/"
	nsXSD     = "http://www.w3.org/2001/XMLSchema"
	nsXSI     = "http://www.w3.org/2001/XMLSchema-instance"
)

func isCWMPNamespace(ns string) bool {
	switch ns {
	case NS10, NS11, NS12, NS13, NS14:
		return true
	}
	return false
}

// envelope builds an ACS message: the cwmp:ID header (mustUnderstand) and a
// body holding what fill adds.
func envelope(ns, id string, fill func(body *etree.Element)) []byte {
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
		e := h.CreateElement("cwmp:ID")
		e.CreateAttr("soap-env:mustUnderstand", "1")
		e.SetText(id)
	}
	fill(env.CreateElement("soap-env:Body"))
	b, err := doc.WriteToBytes()
	if err != nil {
		// Writing a tree built here to memory cannot fail.
		panic(err)
	}
	return b
}

// addArray adds a SOAP-encoded array element with its arrayType.
func addArray(parent *etree.Element, name, itemType string, n int) *etree.Element {
	e := parent.CreateElement(name)
	e.CreateAttr("soap-enc:arrayType", fmt.Sprintf("%s[%d]", itemType, n))
	return e
}

func addText(parent *etree.Element, name, text string) *etree.Element {
	e := parent.CreateElement(name)
	e.SetText(text)
	return e
}

// faultBody writes an ACS fault (TR-069 A.5.2, codes 8000-8005); genie
// writes the element name the way GenieACS does ("soap-env:Body:Fault").
func faultBody(body *etree.Element, code int, msg string, genie bool) {
	name := "soap-env:Fault"
	if genie {
		name = "soap-env:Body:Fault"
	}
	f := body.CreateElement(name)
	faultCode := "Server"
	if code == 8003 || code == 8005 {
		faultCode = "Client"
	}
	addText(f, "faultcode", faultCode)
	addText(f, "faultstring", "CWMP fault")
	d := f.CreateElement("detail").CreateElement("cwmp:Fault")
	addText(d, "FaultCode", strconv.Itoa(code))
	addText(d, "FaultString", msg)
}

// Message is one HTTP POST the CPE sent, as received.
type Message struct {
	// Method is the body's element local name ("Inform",
	// "GetParameterValuesResponse", "Fault"); empty for the empty POST.
	Method string
	// ID is the cwmp:ID header value.
	ID string
	// Namespace is the CWMP namespace the message used.
	Namespace string
	// Raw is the body exactly as received.
	Raw []byte
	// Header is the HTTP request header.
	Header map[string][]string
	// Body is the method element; nil for the empty POST.
	Body *etree.Element
	// ParseError is set when Raw is not a SOAP envelope.
	ParseError error
}

// parseMessage parses a CPE POST body leniently: element names are matched
// by local name, whatever the prefixes.
func parseMessage(raw []byte) Message {
	m := Message{Raw: raw}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return m
	}
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(raw); err != nil {
		m.ParseError = fmt.Errorf("XML: %w", err)
		return m
	}
	env := doc.Root()
	if env == nil || env.Tag != "Envelope" || env.NamespaceURI() != nsSOAPEnv {
		m.ParseError = fmt.Errorf("root element is not a SOAP 1.1 Envelope")
		return m
	}
	if h := child(env, "Header"); h != nil {
		if id := child(h, "ID"); id != nil {
			m.ID = id.Text()
			m.Namespace = id.NamespaceURI()
		}
	}
	body := child(env, "Body")
	if body == nil {
		m.ParseError = fmt.Errorf("envelope without Body")
		return m
	}
	els := body.ChildElements()
	if len(els) != 1 {
		m.ParseError = fmt.Errorf("Body holds %d elements, want 1", len(els))
		return m
	}
	m.Body = els[0]
	m.Method = els[0].Tag
	if ns := els[0].NamespaceURI(); isCWMPNamespace(ns) {
		m.Namespace = ns
	}
	return m
}

// child returns the first child element with the local name.
func child(e *etree.Element, local string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if c.Tag == local {
			return c
		}
	}
	return nil
}

// Text returns the trimmed text of the element at the slash-separated path
// of local names below the method element ("DeviceId/SerialNumber"), or "".
func (m Message) Text(path string) string {
	e := m.Body
	for _, p := range strings.Split(path, "/") {
		e = child(e, p)
	}
	if e == nil {
		return ""
	}
	return strings.TrimSpace(e.Text())
}

// Fault returns the CWMP fault code and string of a Fault message (0 if the
// message is no fault).
func (m Message) Fault() (int, string) {
	if m.Method != "Fault" {
		return 0, ""
	}
	d := child(child(m.Body, "detail"), "Fault")
	code, _ := strconv.Atoi(strings.TrimSpace(textOf(child(d, "FaultCode"))))
	return code, strings.TrimSpace(textOf(child(d, "FaultString")))
}

// SPVFaults lists the SetParameterValuesFault entries of a Fault message:
// parameter name to fault code.
func (m Message) SPVFaults() map[string]int {
	out := map[string]int{}
	d := child(child(m.Body, "detail"), "Fault")
	if d == nil {
		return out
	}
	for _, f := range d.ChildElements() {
		if f.Tag != "SetParameterValuesFault" {
			continue
		}
		code, _ := strconv.Atoi(strings.TrimSpace(textOf(child(f, "FaultCode"))))
		out[strings.TrimSpace(textOf(child(f, "ParameterName")))] = code
	}
	return out
}

// ParameterValue is one ParameterValueStruct.
type ParameterValue struct {
	Name, Value string
	// Type is the xsi:type without prefix ("string", "unsignedInt", ...);
	// empty when the CPE sent none.
	Type string
}

// Params lists the ParameterValueStructs of the message's ParameterList
// (Inform, GetParameterValuesResponse).
func (m Message) Params() []ParameterValue {
	var out []ParameterValue
	list := child(m.Body, "ParameterList")
	if list == nil {
		return nil
	}
	for _, s := range list.ChildElements() {
		v := child(s, "Value")
		pv := ParameterValue{Name: strings.TrimSpace(textOf(child(s, "Name"))), Value: textOf(v)}
		if v != nil {
			if a := v.SelectAttr("xsi:type"); a != nil {
				pv.Type = a.Value[strings.IndexByte(a.Value, ':')+1:]
			} else {
				for _, a := range v.Attr {
					if a.Key == "type" && a.NamespaceURI() == nsXSI {
						pv.Type = a.Value[strings.IndexByte(a.Value, ':')+1:]
					}
				}
			}
		}
		out = append(out, pv)
	}
	return out
}

// Values is Params as a map from name to value.
func (m Message) Values() map[string]string {
	out := map[string]string{}
	for _, p := range m.Params() {
		out[p.Name] = p.Value
	}
	return out
}

// Names lists the ParameterInfoStructs of a GetParameterNamesResponse:
// parameter name to writable.
func (m Message) Names() map[string]bool {
	out := map[string]bool{}
	list := child(m.Body, "ParameterList")
	if list == nil {
		return out
	}
	for _, s := range list.ChildElements() {
		w := strings.TrimSpace(textOf(child(s, "Writable")))
		out[strings.TrimSpace(textOf(child(s, "Name")))] = w == "1" || w == "true"
	}
	return out
}

func textOf(e *etree.Element) string {
	if e == nil {
		return ""
	}
	return e.Text()
}

// Event is one Inform EventStruct.
type Event struct {
	Code, CommandKey string
}

// DeviceID is the Inform DeviceIdStruct.
type DeviceID struct {
	Manufacturer, OUI, ProductClass, SerialNumber string
}

// Inform is what the CPE said in the Inform that opened a session.
type Inform struct {
	DeviceID     DeviceID
	Events       []Event
	MaxEnvelopes string
	CurrentTime  string
	RetryCount   string
	Params       []ParameterValue
}

// HasEvent reports whether the Inform carried the event code.
func (in *Inform) HasEvent(code string) bool {
	for _, e := range in.Events {
		if e.Code == code {
			return true
		}
	}
	return false
}

func parseInform(m Message) *Inform {
	in := &Inform{
		DeviceID: DeviceID{
			Manufacturer: m.Text("DeviceId/Manufacturer"),
			OUI:          m.Text("DeviceId/OUI"),
			ProductClass: m.Text("DeviceId/ProductClass"),
			SerialNumber: m.Text("DeviceId/SerialNumber"),
		},
		MaxEnvelopes: m.Text("MaxEnvelopes"),
		CurrentTime:  m.Text("CurrentTime"),
		RetryCount:   m.Text("RetryCount"),
		Params:       m.Params(),
	}
	if evs := child(m.Body, "Event"); evs != nil {
		for _, e := range evs.ChildElements() {
			in.Events = append(in.Events, Event{
				Code:       strings.TrimSpace(textOf(child(e, "EventCode"))),
				CommandKey: strings.TrimSpace(textOf(child(e, "CommandKey"))),
			})
		}
	}
	return in
}
