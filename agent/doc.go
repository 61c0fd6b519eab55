// Package agent is the orchestrator and the library entry point: it owns the
// agent state, derives SIDs from the delegated prefix, and drives the
// dataplane, BGP, CWMP and STAMP components.
//
// # Embedding
//
// A vendor builds a Config (ParseConfig / LoadConfig read the daemon's YAML)
// and calls New, then Run under its own context; Run returns nil when the
// context ends and leaves the routes in the kernel for the next start to
// reconcile. Reload swaps the config at run time; Status reports what was
// derived and applied. The example shows it end to end with fakes.
//
// Options replace what the config would otherwise build:
//
//   - the device: WithPrefixSource (where the delegated prefix comes from),
//     WithStateDir (persistent files), WithBoardHooks (reboot, factory
//     reset, firmware and config application for the ACS);
//   - the side effects: WithDataplane (default: netlink on the WAN
//     interface), WithBGP (default: the embedded GoBGP speaker);
//   - the process: WithLogger (zap; default none), WithClock, WithConfigFile
//     (the file ACS config downloads replace), and the timing knobs
//     WithRetryBackoff, WithApplyTimeout, WithResync, WithPeerPoll,
//     WithBGPSettle.
//
// # Control socket
//
// With Config.ControlSocket set (the daemon defaults it to
// DefaultControlSocket), Run serves a read-only JSON API over HTTP on that
// unix socket, mode 0600 in a 0700 directory, for srv6cpectl: the Control*
// paths. A stale socket left by a crash is replaced; a live one is left to
// its owner and the agent runs on without its own.
package agent
