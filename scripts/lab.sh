#!/usr/bin/env bash
# srv6cpe namespace lab.
#
#   scripts/lab.sh up              build srv6cpe, create the lab, start the CPE, show its SIDs
#   scripts/lab.sh status          show the CPE's prefix, locator, SIDs and kernel routes
#   scripts/lab.sh renumber cpe1   move cpe1's WAN address to the other /40 and time the SID swap
#   scripts/lab.sh down            stop the daemon and delete everything the lab created
#
# Topology (network namespaces; later issues add cpe2, rr, lan1, lan2, ctl):
#
#   [cpe1] wan0 ---veth--- cpe1 [wan]
#          2001:db8:1200::1/40      (the operator side)
#
# cpe1 runs srv6cpe with examples/srv6cpe.yaml: the delegated prefix comes
# from the WAN address, locator = prefix + extension 0x5 over 48 bits, and
# one SID per service. Files live under $SRV6CPE_LAB_DIR (default
# /run/srv6cpe-lab): bin/, and per CPE its state dir, log and pid file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${SRV6CPE_LAB_DIR:-/run/srv6cpe-lab}
CONFIG=$ROOT/examples/srv6cpe.yaml
BIN=$RUN/bin/srv6cpe
PROTO=198 # dataplane.RouteProtocol (0xc6): every route the agent owns carries it

NAMESPACES=(cpe1 wan)
ADDR_A=2001:db8:1200::1/40
ADDR_B=2001:db8:4400::1/40

die() {
	echo "lab: $*" >&2
	exit 1
}

indent() { sed 's/^/    /'; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# daemon_pid NS prints the pid of the srv6cpe this lab started in NS, if it runs.
daemon_pid() {
	local pidfile=$RUN/$1/srv6cpe.pid pid
	[[ -r $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	# Only ever a process we started: right pid and right program (setsid
	# and ip netns exec are what it is for a moment before they exec it).
	case $(cat "/proc/$pid/comm" 2>/dev/null) in
	srv6cpe | setsid | ip) ;;
	*) return 1 ;;
	esac
	echo "$pid"
}

build() {
	mkdir -p "$RUN/bin"
	if command -v go >/dev/null; then
		echo "lab: building srv6cpe"
		(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/srv6cpe)
	elif [[ -x $ROOT/bin/srv6cpe ]]; then
		cp "$ROOT/bin/srv6cpe" "$BIN"
	else
		die "no Go toolchain and no bin/srv6cpe: run 'make build' first"
	fi
}

# wan_addr NS prints NS's global IPv6 address on wan0 with its prefix length.
wan_addr() {
	ip -n "$1" -6 -o addr show dev wan0 scope global | awk '{print $4; exit}'
}

# start_cpe NS starts srv6cpe in NS, detached, logging to its run dir.
start_cpe() {
	local ns=$1 dir=$RUN/$1
	mkdir -p "$dir/state"
	# setsid: the daemon outlives this script and the terminal; it keeps
	# the pid (ip netns exec execs it), so the pid file is the daemon's.
	setsid ip netns exec "$ns" "$BIN" --config "$CONFIG" --state-dir "$dir/state" \
		</dev/null >>"$dir/srv6cpe.log" 2>&1 &
	echo $! >"$dir/srv6cpe.pid"
}

# wait_applied NS waits until NS's agent reports its SIDs applied.
wait_applied() {
	local ns=$1 status=$RUN/$1/state/status.json i
	for ((i = 0; i < 100; i++)); do
		if [[ -r $status ]] && grep -q '"state": "applied"' "$status"; then
			return 0
		fi
		daemon_pid "$ns" >/dev/null || die "srv6cpe in $ns exited; see $RUN/$ns/srv6cpe.log: $(tail -n 3 "$RUN/$ns/srv6cpe.log")"
		sleep 0.1
	done
	die "srv6cpe in $ns applied nothing within 10s; see $RUN/$ns/srv6cpe.log"
}

# sid_routes NS prints the agent's IPv6 routes in NS, one per line.
sid_routes() {
	ip -n "$1" -6 route show proto "$PROTO"
}

# summary NS prints what NS's agent derived and what the kernel holds.
summary() {
	local ns=$1 status=$RUN/$1/state/status.json pid
	pid=$(daemon_pid "$ns") || {
		echo "$ns: srv6cpe not running"
		return 0
	}
	echo "$ns: srv6cpe pid $pid, WAN wan0 $(wan_addr "$ns"), log $RUN/$ns/srv6cpe.log"
	if [[ ! -r $status ]]; then
		echo "  no status yet ($status)"
		return 0
	fi
	if command -v python3 >/dev/null; then
		python3 - "$status" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  state             {s['state']}" + (f"  (last error: {s['last_error']})" if s.get('last_error') else ""))
print(f"  delegated prefix  {s.get('prefix', '-')}  (CPE address {s.get('address', '-')})")
print(f"  locator {s.get('locator_name', ''):<9} {s.get('locator', '-')}")
print("  service SIDs")
for d in s.get('sids') or []:
    print(f"    {d['name']:<6} {d['behavior']:<8} {d['sid']:<22} installed as {d['installed']}")
c = s.get('capabilities', {})
yes = lambda k: "yes" if c.get(k) else "no"
print(f"  kernel            VRF {yes('VRF')}, End.DT4 {yes('EndDT4')}, End.DT46 {yes('EndDT46')}, "
      f"End.DT6 table {yes('EndDT6Table')}, encap.red {yes('EncapRed')}, nexthop objects {yes('NexthopObjects')}")
for f in s.get('fallback') or []:
    print(f"  fallback          {f}")
EOF
	else
		cat "$status"
	fi
	echo "  kernel routes (ip -n $ns -6 route show proto $PROTO):"
	sid_routes "$ns" | indent
}

down() {
	local ns pid i
	for ns in "${NAMESPACES[@]}"; do
		if pid=$(daemon_pid "$ns"); then
			kill -TERM "$pid"
			for ((i = 0; i < 50; i++)); do
				[[ -d /proc/$pid ]] || break
				sleep 0.1
			done
			[[ -d /proc/$pid ]] && die "srv6cpe (pid $pid) in $ns did not stop within 5s"
		fi
	done
	for ns in "${NAMESPACES[@]}"; do
		if netns_exists "$ns"; then
			ip netns del "$ns"
		fi
	done
	rm -rf "$RUN"
	echo "lab: down"
}

up() {
	down >/dev/null
	build
	local ns
	for ns in "${NAMESPACES[@]}"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip link add wan0 netns cpe1 type veth peer name cpe1 netns wan
	ip -n cpe1 link set wan0 up
	ip -n wan link set cpe1 up
	# nodad: the address is usable at once, as after a real DHCPv6 exchange.
	ip -n cpe1 -6 addr add "$ADDR_A" dev wan0 nodad
	start_cpe cpe1
	wait_applied cpe1
	echo
	summary cpe1
	echo
	echo "Next: scripts/lab.sh renumber cpe1   (then: scripts/lab.sh status, scripts/lab.sh down)"
}

# renumber NS moves NS's WAN address between the two /40s and times how
# long the agent takes to swap the SIDs in the kernel.
renumber() {
	local ns=$1 old new old_routes new_routes t0 t1 i old_loc new_loc
	daemon_pid "$ns" >/dev/null || die "srv6cpe is not running in $ns (scripts/lab.sh up)"
	old=$(wan_addr "$ns")
	case $old in
	"$ADDR_A") new=$ADDR_B old_loc=2001:db8:1205: new_loc=2001:db8:4405: ;;
	"$ADDR_B") new=$ADDR_A old_loc=2001:db8:4405: new_loc=2001:db8:1205: ;;
	*) die "$ns has WAN address '$old', expected $ADDR_A or $ADDR_B" ;;
	esac
	old_routes=$(sid_routes "$ns")
	echo "$ns: renumbering WAN $old -> $new"
	t0=$(now_ms)
	ip -n "$ns" -6 addr del "$old" dev wan0
	ip -n "$ns" -6 addr add "$new" dev wan0 nodad
	for ((i = 0; ; i++)); do
		new_routes=$(sid_routes "$ns")
		if [[ $new_routes == *"$new_loc"* && $new_routes != *"$old_loc"* ]] &&
			(($(wc -l <<<"$new_routes") == $(wc -l <<<"$old_routes"))); then
			break
		fi
		((i < 500)) || die "the SIDs did not move to $new_loc within 5s; see $RUN/$ns/srv6cpe.log"
		sleep 0.01
	done
	t1=$(now_ms)
	echo "  before:"
	indent <<<"$old_routes"
	echo "  after:"
	indent <<<"$new_routes"
	echo "  old SIDs gone, new SIDs in: $((t1 - t0)) ms after the address change"
}

[[ $EUID -eq 0 ]] || die "run as root (network namespaces)"
case ${1:-} in
up) up ;;
down) down ;;
status) summary cpe1 ;;
renumber)
	[[ ${2:-} == cpe1 ]] || die "usage: $0 renumber cpe1"
	renumber "$2"
	;;
*)
	echo "usage: $0 up | down | status | renumber cpe1" >&2
	exit 2
	;;
esac
