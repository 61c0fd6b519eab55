// Package httpdigest is the server side of HTTP Digest access authentication
// (RFC 7616) with qop=auth, MD5 and SHA-256: the Authorization header parser,
// challenge generation, and a verifier whose nonce table is bounded so that a
// flood of requests cannot grow memory.
package httpdigest
