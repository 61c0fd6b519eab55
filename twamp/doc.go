// Package twamp implements STAMP (RFC 8762, RFC 8972) and TWAMP Light: the
// packet codec, the Session-Reflector, the Session-Sender and its metrics.
package twamp
