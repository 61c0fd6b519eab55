// Package cwmpclient is the CPE side of TR-069 (CWMP): the SOAP codec, the
// session engine, the RPC handlers, the connection-request server and the
// parameter tree.
package cwmpclient
