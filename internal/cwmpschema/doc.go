// Package cwmpschema lets tests judge SOAP messages with the Broadband
// Forum's CWMP schemas, through ../shared/tools/cwmp-validate (xmllint).
package cwmpschema
