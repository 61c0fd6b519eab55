// Package agent is the orchestrator and the library entry point: it owns the
// agent state, derives SIDs from the delegated prefix, and drives the
// dataplane, BGP, CWMP and STAMP components.
package agent
