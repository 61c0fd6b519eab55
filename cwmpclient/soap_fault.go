package cwmpclient

import (
	"errors"
	"fmt"
)

// CPE fault codes (TR-069 Table A.5.1).
const (
	FaultMethodNotSupported  = 9000
	FaultRequestDenied       = 9001
	FaultInternal            = 9002
	FaultInvalidArguments    = 9003
	FaultResourcesExceeded   = 9004
	FaultInvalidName         = 9005
	FaultInvalidType         = 9006
	FaultInvalidValue        = 9007
	FaultNotWritable         = 9008
	FaultNotifyRejected      = 9009
	FaultDownloadFailure     = 9010
	FaultUploadFailure       = 9011
	FaultTransferAuth        = 9012
	FaultUnsupportedProtocol = 9013
	FaultCancelNotPermitted  = 9021
)

var faultStrings = map[int]string{
	9000: "Method not supported",
	9001: "Request denied",
	9002: "Internal error",
	9003: "Invalid arguments",
	9004: "Resources exceeded",
	9005: "Invalid parameter name",
	9006: "Invalid parameter type",
	9007: "Invalid parameter value",
	9008: "Attempt to set a non-writable parameter",
	9009: "Notification request rejected",
	9010: "Download failure",
	9011: "Upload failure",
	9012: "File transfer server authentication failure",
	9013: "Unsupported protocol for file transfer",
	9021: "Cancelation of file transfer not permitted in current transfer state",
}

// SPVFault is one SetParameterValuesFault entry.
type SPVFault struct {
	Name   string
	Code   int
	String string
}

// Fault is a CWMP fault: what the CPE answers instead of a response, and
// what an ACS may answer to a CPE request.
type Fault struct {
	Code   int
	String string
	SPV    []SPVFault
	// SOAPCode is the SOAP faultcode; empty means derived from Code
	// ("Client" for errors in the request, "Server" otherwise).
	SOAPCode string
}

// NewFault builds a fault; an empty message uses the standard text.
func NewFault(code int, format string, args ...any) *Fault {
	s := fmt.Sprintf(format, args...)
	if s == "" {
		s = faultStrings[code]
	}
	return &Fault{Code: code, String: s}
}

func (f *Fault) Error() string {
	return fmt.Sprintf("cwmp fault %d: %s", f.Code, f.String)
}

// soapCode is the SOAP 1.1 faultcode for f (TR-069 Table A.5.1 column
// "SOAP faultcode").
func (f *Fault) soapCode() string {
	if f.SOAPCode != "" {
		return f.SOAPCode
	}
	switch f.Code {
	case 9003, 9005, 9006, 9007, 9008, 9021, 9022:
		return "Client"
	}
	return "Server"
}

// AsFault turns any error into a fault: a *Fault inside err is kept, any
// other error becomes 9002 naming it.
func AsFault(err error) *Fault {
	var f *Fault
	if errors.As(err, &f) {
		return f
	}
	return NewFault(FaultInternal, "%v", err)
}
