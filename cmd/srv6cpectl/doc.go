// Command srv6cpectl is the operator CLI of srv6cpe.
//
// Most commands ask the running daemon over its control socket
// (/run/srv6cpe/control.sock, root's, mode 0600; --socket names another)
// and print tables, or the daemon's JSON with --json:
//
//	srv6cpectl status        state, prefix, locator, capabilities, last apply, End.TSF
//	srv6cpectl sid           the derived locator and service SIDs
//	srv6cpectl routes        the routes the dataplane holds in the kernel
//	srv6cpectl bgp           BGP peers and VPN route counts
//	srv6cpectl cwmp          the ACS, pending Inform events, transfers
//	srv6cpectl stamp|paths|policy
//	srv6cpectl refresh       make the agent re-read the delegated prefix
//
// Two work offline: "sid derive" plans an address plan from a prefix
// (Q.Suppl.79 clause 6.2), and "openwrt-config" converts the OpenWrt UCI
// file to the daemon's YAML for the init script.
//
// Exit status: 0 on success, 1 when a value is wrong or the daemon cannot
// answer (one line on stderr, e.g. "srv6cpectl: the srv6cpe daemon is not
// running (no control socket at /run/srv6cpe/control.sock)"), 2 for a
// malformed command line.
package main
