// Package board is the device the agent runs on: its identity, its state
// directory (atomic writes), and the source of the delegated IPv6 prefix.
package board
