// Package cwmptest is a scriptable in-process ACS (the TR-069 server side),
// like net/http/httptest for CWMP. It answers Informs, hands the CPE a queue
// of requests, records every session (events, DeviceId, parameters, each
// message as received) and checks what the CPE does against TR-069 (IDs
// echoed, responses matching requests, cookies returned). It is the
// independent judge of the CPE client: its SOAP code is its own.
//
// Nothing in its core depends on package testing, so the lab controller can
// run it as a real ACS.
package cwmptest
