// Package twamp implements STAMP (RFC 8762, RFC 8972, RFC 9503) and TWAMP
// Light: the packet codec, the Session-Reflector, the Session-Sender with
// its metrics, and the threshold notifications of
// draft-ietf-spring-stamp-srpm.
//
// Codec (pure): SenderHeader and ReflectorHeader put into and decode from
// caller buffers for both modes (44 and 112 octets, HMAC-SHA-256 truncated
// to 128 bits over octets 0..95), the SSID, and the TLVs (TLVIter, TLVSet,
// Parse* for each type). Timestamps are NTP (Z=0) or PTPv2 truncated
// (Z=1); the Error Estimate comes from a ClockSource.
//
// Reflector: NewReflector(ReflectorConfig, logger) binds, Run(ctx) serves
// with recvmmsg/sendmmsg. T2 is the kernel receive timestamp
// (SO_TIMESTAMPNS), T3 is read once per batch just before sendmmsg, the
// reply leaves from the probed address (IPV6_PKTINFO), the sender's TTL is
// copied, and the reply is exactly as long as the request. Every request
// is either reflected or counted under one drop reason (Stats).
//
// Sender: NewSender(SenderConfig, logger), Run(ctx). Plain, along an SRv6
// segment list (an SRH set on the socket with IPV6_RTHDR, see SenderConfig
// for why), or in enhanced loopback mode (outer IPv6 + SRH + inner IPv6
// back to the sender through a raw socket; the far end only decapsulates).
// With EndTSF the far node stamps T2 into the probe (twamp/endtsf), and the
// loopback session reports one-way forward and backward delays too.
// Metrics per window and per session; jitter is the mean absolute IPDV of
// RFC 5481 over consecutive packets.
//
// Notifications: NewNotifier holds pure state machines (delay above TH for
// M packets, X of the last Y lost, down after N consecutive losses, up on
// the first reply) and damps re-announcements to moves above
// max(10 %, 50 µs).
//
// The Class of Service TLV follows RFC 8972 §4.4 as published (DSCP1,
// DSCP2, ECN, RP), not the later draft that adds a requested ECN.
package twamp
