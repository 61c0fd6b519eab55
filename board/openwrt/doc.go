// Package openwrt is the OpenWrt side of the board: what an OpenWrt router
// says about itself, where it gets its delegated prefix, how it flashes,
// resets and reboots, and the UCI configuration format.
//
//   - ParseUCI / File.Marshal: the UCI file format exactly as libuci reads
//     it (quoting, escapes, continuation lines, anonymous sections with
//     @type[N] lookup), with errors naming file:line and the text.
//   - DaemonConfig / WriteDaemonConfig: /etc/config/srv6cpe to the daemon's
//     YAML configuration, what the feed's init script runs through
//     "srv6cpectl openwrt-config".
//   - LoadFacts / Identity: TR-181 identity from /etc/board.json and the
//     release files, over board.LoadIdentity.
//   - NewNetifdPrefix: a board.PrefixSource reading netifd's
//     "ubus call network.interface.wan6 status"; Refresh is the hotplug
//     script's poke.
//   - Device: sysupgrade (checked with -T first), firstboot, reboot,
//     configuration backup and restore, logread; its methods match
//     cwmpclient.BoardHooks.
//
// Every system command goes through Runner, so tests use a fake.
package openwrt
