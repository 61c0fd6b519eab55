// Package board is the device the agent runs on: its identity, its state
// directory (atomic writes), and the source of the delegated IPv6 prefix.
//
//   - LoadIdentity: TR-181 DeviceInfo identity from config, falling back to
//     DMI, the device tree, the WAN MAC and /etc/machine-id; DeviceID gives
//     the TR-069 "OUI-ProductClass-SerialNumber" username form.
//   - OpenStateDir: files written with temp file, fsync, rename, directory
//     fsync; interrupted writes are cleaned up at open.
//   - NewStaticPrefix / NewNetlinkPrefix: PrefixSource implementations. The
//     netlink source re-reads the kernel state after debounced rtnetlink
//     events and reports only real changes; a prefix that disappears is not
//     reported, the last one stays in force until a new one arrives.
package board
