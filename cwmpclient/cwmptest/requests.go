package cwmptest

import (
	"bytes"
	"strconv"

	"github.com/beevik/etree"
)

// Request is one ACS-to-CPE RPC the double sends when the CPE hands it the
// floor (an empty POST, or a response to the previous request).
type Request struct {
	// Method is the RPC name ("GetParameterValues", ...).
	Method string
	fill   func(m *etree.Element)
	inner  []byte // Raw: the Body's content, spliced in as is
	whole  []byte // RawEnvelope: the whole HTTP body
}

// rawMarker stands for a Raw request's content until it is spliced in.
const rawMarker = "cwmptest-raw-content"

// body writes the request into an envelope body.
func (r Request) body(b *etree.Element) {
	if r.inner != nil {
		b.CreateElement(rawMarker)
		return
	}
	m := b.CreateElement("cwmp:" + r.Method)
	if r.fill != nil {
		r.fill(m)
	}
}

// encode returns the HTTP body of the request.
func (r Request) encode(ns, id string) []byte {
	switch {
	case r.whole != nil:
		return r.whole
	case r.inner != nil:
		return bytes.Replace(envelope(ns, id, r.body), []byte("<"+rawMarker+"/>"), r.inner, 1)
	}
	return envelope(ns, id, r.body)
}

// Raw is a request whose Body content is inner, verbatim (the "cwmp",
// "xsd", "xsi", "soap-enc" prefixes are bound), inside a normal envelope
// with a cwmp:ID: for unknown methods or malformed arguments.
func Raw(method string, inner []byte) Request { return Request{Method: method, inner: inner} }

// RawEnvelope is a request sent verbatim as the whole HTTP body (e.g.
// malformed SOAP). The CPE cannot be expected to echo an ID from it.
func RawEnvelope(method string, body []byte) Request { return Request{Method: method, whole: body} }

// GetRPCMethods asks the CPE which methods it supports.
func GetRPCMethods() Request { return Request{Method: "GetRPCMethods"} }

// GetParameterNames asks for the names under path (empty = whole tree).
func GetParameterNames(path string, nextLevel bool) Request {
	return Request{Method: "GetParameterNames", fill: func(m *etree.Element) {
		addText(m, "ParameterPath", path)
		addText(m, "NextLevel", boolText(nextLevel))
	}}
}

// GetParameterValues asks for the values of full or partial paths.
func GetParameterValues(names ...string) Request {
	return Request{Method: "GetParameterValues", fill: func(m *etree.Element) {
		l := addArray(m, "ParameterNames", "xsd:string", len(names))
		for _, n := range names {
			addText(l, "string", n)
		}
	}}
}

// SetParameterValues sets values; a ParameterValue without Type is sent as
// xsd:string.
func SetParameterValues(parameterKey string, values ...ParameterValue) Request {
	return Request{Method: "SetParameterValues", fill: func(m *etree.Element) {
		l := addArray(m, "ParameterList", "cwmp:ParameterValueStruct", len(values))
		for _, v := range values {
			s := l.CreateElement("ParameterValueStruct")
			addText(s, "Name", v.Name)
			typ := v.Type
			if typ == "" {
				typ = "string"
			}
			val := addText(s, "Value", v.Value)
			val.CreateAttr("xsi:type", "xsd:"+typ)
		}
		addText(m, "ParameterKey", parameterKey)
	}}
}

// GetParameterAttributes asks for the attributes of full or partial paths.
func GetParameterAttributes(names ...string) Request {
	return Request{Method: "GetParameterAttributes", fill: func(m *etree.Element) {
		l := addArray(m, "ParameterNames", "xsd:string", len(names))
		for _, n := range names {
			addText(l, "string", n)
		}
	}}
}

// SetAttribute is one SetParameterAttributesStruct.
type SetAttribute struct {
	Name               string
	NotificationChange bool
	Notification       int
	AccessListChange   bool
	AccessList         []string
}

// SetParameterAttributes changes notification and access list attributes.
func SetParameterAttributes(attrs ...SetAttribute) Request {
	return Request{Method: "SetParameterAttributes", fill: func(m *etree.Element) {
		l := addArray(m, "ParameterList", "cwmp:SetParameterAttributesStruct", len(attrs))
		for _, a := range attrs {
			s := l.CreateElement("SetParameterAttributesStruct")
			addText(s, "Name", a.Name)
			addText(s, "NotificationChange", boolText(a.NotificationChange))
			addText(s, "Notification", strconv.Itoa(a.Notification))
			addText(s, "AccessListChange", boolText(a.AccessListChange))
			al := addArray(s, "AccessList", "xsd:string", len(a.AccessList))
			for _, e := range a.AccessList {
				addText(al, "string", e)
			}
		}
	}}
}

// AddObject creates an instance of a table ("Device.X.Y.").
func AddObject(objectName, parameterKey string) Request {
	return Request{Method: "AddObject", fill: func(m *etree.Element) {
		addText(m, "ObjectName", objectName)
		addText(m, "ParameterKey", parameterKey)
	}}
}

// DeleteObject deletes an instance ("Device.X.Y.3.").
func DeleteObject(objectName, parameterKey string) Request {
	return Request{Method: "DeleteObject", fill: func(m *etree.Element) {
		addText(m, "ObjectName", objectName)
		addText(m, "ParameterKey", parameterKey)
	}}
}

// Reboot asks the CPE to reboot after the session.
func Reboot(commandKey string) Request {
	return Request{Method: "Reboot", fill: func(m *etree.Element) { addText(m, "CommandKey", commandKey) }}
}

// FactoryReset asks the CPE to reset to factory defaults.
func FactoryReset() Request { return Request{Method: "FactoryReset"} }

// ScheduleInform asks for a session after delaySeconds.
func ScheduleInform(delaySeconds uint32, commandKey string) Request {
	return Request{Method: "ScheduleInform", fill: func(m *etree.Element) {
		addText(m, "DelaySeconds", strconv.FormatUint(uint64(delaySeconds), 10))
		addText(m, "CommandKey", commandKey)
	}}
}

// GetQueuedTransfers lists the CPE's transfers.
func GetQueuedTransfers() Request { return Request{Method: "GetQueuedTransfers"} }

// GetAllQueuedTransfers lists the CPE's transfers with details.
func GetAllQueuedTransfers() Request { return Request{Method: "GetAllQueuedTransfers"} }

// CancelTransfer cancels a queued transfer.
func CancelTransfer(commandKey string) Request {
	return Request{Method: "CancelTransfer", fill: func(m *etree.Element) { addText(m, "CommandKey", commandKey) }}
}

// DownloadArgs are the Download arguments.
type DownloadArgs struct {
	CommandKey, FileType, URL, Username, Password string
	FileSize                                      uint32
	TargetFileName                                string
	DelaySeconds                                  uint32
	SuccessURL, FailureURL                        string
}

// Download asks the CPE to fetch a file.
func Download(a DownloadArgs) Request {
	return Request{Method: "Download", fill: func(m *etree.Element) {
		addText(m, "CommandKey", a.CommandKey)
		addText(m, "FileType", a.FileType)
		addText(m, "URL", a.URL)
		addText(m, "Username", a.Username)
		addText(m, "Password", a.Password)
		addText(m, "FileSize", strconv.FormatUint(uint64(a.FileSize), 10))
		addText(m, "TargetFileName", a.TargetFileName)
		addText(m, "DelaySeconds", strconv.FormatUint(uint64(a.DelaySeconds), 10))
		addText(m, "SuccessURL", a.SuccessURL)
		addText(m, "FailureURL", a.FailureURL)
	}}
}

// UploadArgs are the Upload arguments.
type UploadArgs struct {
	CommandKey, FileType, URL, Username, Password string
	DelaySeconds                                  uint32
}

// Upload asks the CPE to send a file.
func Upload(a UploadArgs) Request {
	return Request{Method: "Upload", fill: func(m *etree.Element) {
		addText(m, "CommandKey", a.CommandKey)
		addText(m, "FileType", a.FileType)
		addText(m, "URL", a.URL)
		addText(m, "Username", a.Username)
		addText(m, "Password", a.Password)
		addText(m, "DelaySeconds", strconv.FormatUint(uint64(a.DelaySeconds), 10))
	}}
}

// Vendor is a vendor RPC (e.g. a Q.Suppl.79 Stats_* message) whose children
// are name/value pairs in order.
func Vendor(method string, fields ...[2]string) Request {
	return Request{Method: method, fill: func(m *etree.Element) {
		for _, f := range fields {
			addText(m, f[0], f[1])
		}
	}}
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
