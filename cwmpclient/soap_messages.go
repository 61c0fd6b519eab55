package cwmpclient

import (
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// Schema length limits used when emitting (cwmp-1-2.xsd).
const (
	maxCommandKey   = 32
	maxNameLen      = 256
	maxFaultString  = 256
	maxEvents       = 64
	maxDevIDField   = 64
	maxMethodName   = 64
	maxTransferList = 16
)

// ---- CPE -> ACS encoders ----

func (m Inform) encode(e *etree.Element) {
	d := e.CreateElement("DeviceId")
	add(d, "Manufacturer", clip(m.DeviceID.Manufacturer, maxDevIDField))
	add(d, "OUI", m.DeviceID.OUI)
	add(d, "ProductClass", clip(m.DeviceID.ProductClass, maxDevIDField))
	add(d, "SerialNumber", clip(m.DeviceID.SerialNumber, maxDevIDField))
	events := m.Events
	if len(events) > maxEvents {
		events = events[:maxEvents]
	}
	ev := array(e, "Event", "cwmp:EventStruct", len(events))
	for _, x := range events {
		s := ev.CreateElement("EventStruct")
		add(s, "EventCode", clip(x.Code, 64))
		add(s, "CommandKey", clip(x.CommandKey, maxCommandKey))
	}
	add(e, "MaxEnvelopes", strconv.FormatUint(uint64(max(m.MaxEnvelopes, 1)), 10))
	add(e, "CurrentTime", formatTime(m.CurrentTime))
	add(e, "RetryCount", strconv.FormatUint(uint64(m.RetryCount), 10))
	encodeValues(e, m.Params)
}

func encodeValues(e *etree.Element, params []ParameterValue) {
	pl := array(e, "ParameterList", "cwmp:ParameterValueStruct", len(params))
	for _, p := range params {
		s := pl.CreateElement("ParameterValueStruct")
		add(s, "Name", clip(p.Name, maxNameLen))
		v := add(s, "Value", clean(p.Value))
		v.CreateAttr("xsi:type", "xsd:"+valueType(p))
	}
}

// transferFaultOK: the codes a TransferCompleteFaultStruct may carry.
func transferFaultOK(code int) bool {
	switch {
	case code == 0, code == 9001, code == 9002, code == 9010, code == 9011, code == 9012,
		code >= 9014 && code <= 9020, code >= 9033 && code <= 9899:
		return true
	}
	return false
}

// valueType is the xsi:type to declare: the parameter's type when the
// value is valid for it, else string (a getter that returns garbage must
// not make the whole message invalid).
func valueType(p ParameterValue) string {
	ty, ok := typeByXSD(p.Type)
	if !ok || ty == TypeString {
		return "string"
	}
	if _, err := ty.Normalize(p.Value); err != nil || p.Value != strings.TrimSpace(p.Value) {
		return "string"
	}
	return ty.XSD()
}

func encodeFaultStruct(e *etree.Element, f FaultStruct) {
	fs := e.CreateElement("FaultStruct")
	if !transferFaultOK(f.Code) {
		f.Code = FaultInternal
	}
	add(fs, "FaultCode", strconv.Itoa(f.Code))
	add(fs, "FaultString", clip(f.String, maxFaultString))
}

func (m TransferComplete) encode(e *etree.Element) {
	add(e, "CommandKey", clip(m.CommandKey, maxCommandKey))
	encodeFaultStruct(e, m.Fault)
	add(e, "StartTime", formatTime(m.StartTime))
	add(e, "CompleteTime", formatTime(m.CompleteTime))
}

func (m AutonomousTransferComplete) encode(e *etree.Element) {
	add(e, "AnnounceURL", clip(m.AnnounceURL, 1024))
	add(e, "TransferURL", clip(m.TransferURL, 1024))
	add(e, "IsDownload", boolText(m.IsDownload))
	add(e, "FileType", clip(m.FileType, 64))
	add(e, "FileSize", strconv.FormatUint(uint64(m.FileSize), 10))
	add(e, "TargetFileName", clip(m.TargetFileName, 256))
	encodeFaultStruct(e, m.Fault)
	add(e, "StartTime", formatTime(m.StartTime))
	add(e, "CompleteTime", formatTime(m.CompleteTime))
}

func (GetRPCMethods) encode(*etree.Element) {}

func (m GetRPCMethodsResponse) encode(e *etree.Element) {
	l := array(e, "MethodList", "xsd:string", len(m.Methods))
	for _, s := range m.Methods {
		add(l, "string", clip(s, maxMethodName))
	}
}

func (m GetParameterNamesResponse) encode(e *etree.Element) {
	l := array(e, "ParameterList", "cwmp:ParameterInfoStruct", len(m.Params))
	for _, p := range m.Params {
		s := l.CreateElement("ParameterInfoStruct")
		add(s, "Name", clip(p.Name, maxNameLen))
		add(s, "Writable", boolText(p.Writable))
	}
}

func (m GetParameterValuesResponse) encode(e *etree.Element) { encodeValues(e, m.Params) }

func (m SetParameterValuesResponse) encode(e *etree.Element) {
	add(e, "Status", strconv.Itoa(m.Status))
}

func (m GetParameterAttributesResponse) encode(e *etree.Element) {
	l := array(e, "ParameterList", "cwmp:ParameterAttributeStruct", len(m.Params))
	for _, p := range m.Params {
		s := l.CreateElement("ParameterAttributeStruct")
		add(s, "Name", clip(p.Name, maxNameLen))
		add(s, "Notification", strconv.Itoa(p.Notification))
		al := array(s, "AccessList", "xsd:string", len(p.AccessList))
		for _, a := range p.AccessList {
			add(al, "string", clip(a, 64))
		}
	}
}

func (SetParameterAttributesResponse) encode(*etree.Element) {}

func (m AddObjectResponse) encode(e *etree.Element) {
	add(e, "InstanceNumber", strconv.FormatUint(uint64(m.InstanceNumber), 10))
	add(e, "Status", strconv.Itoa(m.Status))
}

func (m DeleteObjectResponse) encode(e *etree.Element) { add(e, "Status", strconv.Itoa(m.Status)) }
func (RebootResponse) encode(*etree.Element)           {}
func (FactoryResetResponse) encode(*etree.Element)     {}
func (ScheduleInformResponse) encode(*etree.Element)   {}
func (CancelTransferResponse) encode(*etree.Element)   {}

func (m DownloadResponse) encode(e *etree.Element) {
	add(e, "Status", strconv.Itoa(m.Status))
	add(e, "StartTime", formatTime(m.StartTime))
	add(e, "CompleteTime", formatTime(m.CompleteTime))
}

func (m UploadResponse) encode(e *etree.Element) {
	add(e, "Status", strconv.Itoa(m.Status))
	add(e, "StartTime", formatTime(m.StartTime))
	add(e, "CompleteTime", formatTime(m.CompleteTime))
}

func (m GetQueuedTransfersResponse) encode(e *etree.Element) {
	ts := m.Transfers
	if len(ts) > maxTransferList {
		ts = ts[:maxTransferList]
	}
	l := array(e, "TransferList", "cwmp:QueuedTransferStruct", len(ts))
	for _, t := range ts {
		s := l.CreateElement("QueuedTransferStruct")
		add(s, "CommandKey", clip(t.CommandKey, maxCommandKey))
		add(s, "State", strconv.Itoa(t.State))
	}
}

func (m GetAllQueuedTransfersResponse) encode(e *etree.Element) {
	ts := m.Transfers
	if len(ts) > maxTransferList {
		ts = ts[:maxTransferList]
	}
	l := array(e, "TransferList", "cwmp:AllQueuedTransferStruct", len(ts))
	for _, t := range ts {
		s := l.CreateElement("AllQueuedTransferStruct")
		add(s, "CommandKey", clip(t.CommandKey, maxCommandKey))
		add(s, "State", strconv.Itoa(t.State))
		add(s, "IsDownload", boolText(t.IsDownload))
		add(s, "FileType", clip(t.FileType, 64))
		add(s, "FileSize", strconv.FormatUint(uint64(t.FileSize), 10))
		add(s, "TargetFileName", clip(t.TargetFileName, 256))
	}
}

// ---- ACS -> CPE decoding ----

// decodeMessage turns a body element into a typed message. Arguments that
// cannot be parsed give a 9003 fault together with the message name.
func decodeMessage(m *etree.Element) (Message, error) {
	switch m.Tag {
	case "Fault":
		return decodeFault(m), nil
	case "InformResponse":
		n, err := uintArg(m, "MaxEnvelopes", false)
		r := InformResponse{MaxEnvelopes: n}
		for _, c := range m.ChildElements() {
			if c.Tag != "MaxEnvelopes" && len(c.ChildElements()) == 0 {
				if r.Extra == nil {
					r.Extra = map[string]string{}
				}
				r.Extra[c.Tag] = text(c)
			}
		}
		return r, err
	case "TransferCompleteResponse":
		return TransferCompleteResponse{}, nil
	case "AutonomousTransferCompleteResponse":
		return AutonomousTransferCompleteResponse{}, nil
	case "GetRPCMethodsResponse":
		return GetRPCMethodsResponse{Methods: strings2(child(m, "MethodList"))}, nil
	case "GetRPCMethods":
		return GetRPCMethods{}, nil
	case "GetParameterNames":
		return GetParameterNames{Path: childText(m, "ParameterPath"), NextLevel: parseBool(childText(m, "NextLevel"))}, nil
	case "GetParameterValues":
		return GetParameterValues{Names: strings2(child(m, "ParameterNames"))}, nil
	case "SetParameterValues":
		r := SetParameterValues{ParameterKey: childText(m, "ParameterKey")}
		for _, s := range child(m, "ParameterList").NotNil().ChildElements() {
			v := child(s, "Value")
			pv := ParameterValue{Name: childText(s, "Name"), Value: text(v)}
			if v != nil {
				if t := v.SelectAttrValue("xsi:type", ""); t != "" {
					pv.Type = localPart(t)
				} else {
					for _, a := range v.Attr {
						if a.Key == "type" {
							pv.Type = localPart(a.Value)
						}
					}
				}
			}
			r.Params = append(r.Params, pv)
		}
		return r, nil
	case "GetParameterAttributes":
		return GetParameterAttributes{Names: strings2(child(m, "ParameterNames"))}, nil
	case "SetParameterAttributes":
		var r SetParameterAttributes
		for _, s := range child(m, "ParameterList").NotNil().ChildElements() {
			n := 0
			if t := childText(s, "Notification"); t != "" {
				var err error
				if n, err = strconv.Atoi(t); err != nil {
					return r, NewFault(FaultInvalidArguments, "Notification %q is not an integer", t)
				}
			}
			r.Params = append(r.Params, SetParameterAttributesStruct{
				Name:               childText(s, "Name"),
				NotificationChange: parseBool(childText(s, "NotificationChange")),
				Notification:       n,
				AccessListChange:   parseBool(childText(s, "AccessListChange")),
				AccessList:         strings2(child(s, "AccessList")),
			})
		}
		return r, nil
	case "AddObject":
		return AddObject{ObjectName: childText(m, "ObjectName"), ParameterKey: childText(m, "ParameterKey")}, nil
	case "DeleteObject":
		return DeleteObject{ObjectName: childText(m, "ObjectName"), ParameterKey: childText(m, "ParameterKey")}, nil
	case "Reboot":
		return Reboot{CommandKey: childText(m, "CommandKey")}, nil
	case "FactoryReset":
		return FactoryReset{}, nil
	case "Download":
		size, err1 := uintArg(m, "FileSize", false)
		delay, err2 := uintArg(m, "DelaySeconds", false)
		r := Download{
			CommandKey: childText(m, "CommandKey"), FileType: childText(m, "FileType"),
			URL: childText(m, "URL"), Username: childText(m, "Username"), Password: childText(m, "Password"),
			FileSize: size, TargetFileName: childText(m, "TargetFileName"), DelaySeconds: delay,
			SuccessURL: childText(m, "SuccessURL"), FailureURL: childText(m, "FailureURL"),
		}
		return r, firstErr(err1, err2)
	case "Upload":
		delay, err := uintArg(m, "DelaySeconds", false)
		return Upload{
			CommandKey: childText(m, "CommandKey"), FileType: childText(m, "FileType"),
			URL: childText(m, "URL"), Username: childText(m, "Username"), Password: childText(m, "Password"),
			DelaySeconds: delay,
		}, err
	case "ScheduleInform":
		delay, err := uintArg(m, "DelaySeconds", true)
		return ScheduleInform{DelaySeconds: delay, CommandKey: childText(m, "CommandKey")}, err
	case "GetQueuedTransfers":
		return GetQueuedTransfers{}, nil
	case "GetAllQueuedTransfers":
		return GetAllQueuedTransfers{}, nil
	case "CancelTransfer":
		return CancelTransfer{CommandKey: childText(m, "CommandKey")}, nil
	}
	return VendorMessage{Name: m.Tag, Fields: decodeFields(m, 0)}, nil
}

// decodeFields reads a vendor message generically; depth is bounded by
// the element cap in Decode, and again here for safety.
func decodeFields(e *etree.Element, depth int) []Field {
	var out []Field
	for _, c := range e.ChildElements() {
		f := Field{Name: c.Tag}
		if len(c.ChildElements()) > 0 && depth < 32 {
			f.Children = decodeFields(c, depth+1)
		} else {
			f.Value = text(c)
		}
		out = append(out, f)
	}
	return out
}

func decodeFault(m *etree.Element) *Fault {
	f := &Fault{SOAPCode: childText(m, "faultcode"), String: childText(m, "faultstring")}
	cf := child(child(m, "detail"), "Fault")
	if cf == nil {
		// Some ACSs put the cwmp fault directly in the body.
		if child(m, "FaultCode") != nil {
			cf = m
		} else {
			return f
		}
	}
	f.Code, _ = strconv.Atoi(childText(cf, "FaultCode"))
	if s := childText(cf, "FaultString"); s != "" {
		f.String = s
	}
	for _, s := range cf.ChildElements() {
		if s.Tag != "SetParameterValuesFault" {
			continue
		}
		code, _ := strconv.Atoi(childText(s, "FaultCode"))
		f.SPV = append(f.SPV, SPVFault{Name: childText(s, "ParameterName"), Code: code, String: childText(s, "FaultString")})
	}
	return f
}

// strings2 reads an array of strings (ParameterNames, MethodList, ...):
// every child element's text, whatever its name.
func strings2(e *etree.Element) []string {
	if e == nil {
		return nil
	}
	kids := e.ChildElements()
	out := make([]string, 0, len(kids))
	for _, c := range kids {
		out = append(out, text(c))
	}
	return out
}

func uintArg(m *etree.Element, name string, required bool) (uint32, error) {
	t := childText(m, name)
	if t == "" {
		if required && child(m, name) == nil {
			return 0, NewFault(FaultInvalidArguments, "%s: missing %s", m.Tag, name)
		}
		return 0, nil
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, NewFault(FaultInvalidArguments, "%s: %s %q is not an unsignedInt", m.Tag, name, t)
	}
	return uint32(n), nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func localPart(qname string) string {
	if i := strings.LastIndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}
