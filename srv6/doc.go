// Package srv6 holds the pure SRv6 logic of the agent: clause 6.2 SID
// derivation (ITU-T Q.Suppl.79), endpoint behaviours with their IANA code
// points, SID and segment-list parsing. It does no I/O.
package srv6
