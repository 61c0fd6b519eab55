// Package bgp embeds GoBGP to exchange SRv6 L3VPN routes (RFC 9252).
package bgp
