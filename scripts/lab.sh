#!/usr/bin/env bash
# srv6cpe namespace lab: two CPEs with an SRv6 L3VPN over BGP between them.
#
#   scripts/lab.sh up              build srv6cpe, create the lab, start FRR and both CPEs,
#                                  show SIDs, BGP sessions, encap routes, and ping lan1 -> lan2
#   scripts/lab.sh status          show each CPE's SIDs, BGP sessions and encap routes
#   scripts/lab.sh renumber cpe1   move cpe1's delegated prefix to the other /40; time how long
#                                  cpe2 takes to move to the new SIDs and traffic to recover
#   scripts/lab.sh down            stop everything and delete what the lab created
#
# Topology (network namespaces; the controller "ctl" comes with a later issue):
#
#   [lan1] eth0 -- lan0 [cpe1] wan0 --- cpe1 [wan] cpe2 --- wan0 [cpe2] lan0 -- eth0 [lan2]
#   192.168.1.0/24      2001:db8:1200::1/40   |     2001:db8:2200::1/40      192.168.2.0/24
#   2001:db8:1201::/64  fd00:0:1::2/64        rr    fd00:0:2::2/64           2001:db8:2201::/64
#                                             |
#                                        wan0 [rr] fd00:0:ff::2: FRR bgpd -Z, route reflector
#
# cpe1 and cpe2 run srv6cpe with examples/lab/cpeN.yaml: the delegated prefix
# comes from the global WAN address, locator = prefix + extension 0x5 over
# 48 bits, services vpn4 (End.DT4) and vpn6 (End.DT6) advertised with their
# LAN prefixes over BGP (sessions on the stable fd00:0:N::2 addresses) and
# reflected by FRR (scripts/frr/rr-bgpd.conf). "wan" is the transit: it
# routes each delegated /40 to its CPE and carries the SRv6 packets.
# Files live under $SRV6CPE_LAB_DIR (default /run/srv6cpe-lab).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${SRV6CPE_LAB_DIR:-/run/srv6cpe-lab}
BIN=$RUN/bin/srv6cpe
BGPD=/usr/lib/frr/bgpd
PROTO=198 # dataplane.RouteProtocol (0xc6): every route the agent owns carries it

NAMESPACES=(cpe1 cpe2 rr wan lan1 lan2)
CPES=(cpe1 cpe2)
ADDR_A=2001:db8:1200::1/40 # cpe1, and where renumber moves it back to
ADDR_B=2001:db8:4400::1/40 # where renumber moves cpe1

die() {
	echo "lab: $*" >&2
	exit 1
}

indent() { sed 's/^/    /'; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# lab_pid NS PROG prints the pid of PROG (srv6cpe or bgpd) this lab started
# in NS, if it runs.
lab_pid() {
	local pidfile=$RUN/$1/$2.pid pid
	[[ -r $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	# Only ever a process we started: right pid and right program (setsid
	# and ip netns exec are what it is for a moment before they exec it).
	case $(cat "/proc/$pid/comm" 2>/dev/null) in
	"$2" | setsid | ip) ;;
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

# wan_addr NS prints NS's global IPv6 address on wan0 with its prefix length
# (the delegated prefix, not the fd00: session address).
wan_addr() {
	ip -n "$1" -6 -o addr show dev wan0 scope global | awk '$4 !~ /^fd/ {print $4; exit}'
}

# link A AIF B BIF connects namespaces A and B with a veth pair.
link() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# addr NS DEV ADDR; IPv6 addresses with nodad: usable at once, as after a
# real DHCPv6 exchange.
addr() {
	if [[ $3 == *:* ]]; then
		ip -n "$1" addr add "$3" dev "$2" nodad
	else
		ip -n "$1" addr add "$3" dev "$2"
	fi
}

topology() {
	local ns i
	for ns in "${NAMESPACES[@]}"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip netns exec wan sysctl -qw net.ipv6.conf.all.forwarding=1
	link rr wan0 wan rr
	addr rr wan0 fd00:0:ff::2/64
	addr wan rr fd00:0:ff::1/64
	ip -n rr -6 route add default via fd00:0:ff::1
	for i in 1 2; do
		link "cpe$i" wan0 wan "cpe$i"
		addr "cpe$i" wan0 "2001:db8:${i}200::1/40"
		addr "cpe$i" wan0 "fd00:0:$i::2/64"
		addr wan "cpe$i" "fd00:0:$i::1/64"
		ip -n "cpe$i" -6 route add default via "fd00:0:$i::1"
		ip -n wan -6 route add "2001:db8:${i}200::/40" via "fd00:0:$i::2"
		link "cpe$i" lan0 "lan$i" eth0
		addr "cpe$i" lan0 "192.168.$i.1/24"
		addr "cpe$i" lan0 "2001:db8:${i}201::1/64"
		addr "lan$i" eth0 "192.168.$i.2/24"
		addr "lan$i" eth0 "2001:db8:${i}201::2/64"
		ip -n "lan$i" route add default via "192.168.$i.1"
		ip -n "lan$i" -6 route add default via "2001:db8:${i}201::1"
	done
}

# start_rr runs FRR's bgpd in rr with every path under $RUN/rr, so that
# nothing touches a system FRR. -S: stay root (no frr user needed).
start_rr() {
	local dir=$RUN/rr
	[[ -x $BGPD ]] || die "FRR's bgpd is not installed ($BGPD; Debian package frr)"
	mkdir -p "$dir"
	setsid ip netns exec rr "$BGPD" -Z -S -P 0 -f "$ROOT/scripts/frr/rr-bgpd.conf" \
		-i "$dir/bgpd.pid.frr" -z "$dir/zserv.api" --vty_socket "$dir" --log "file:$dir/bgpd.log" \
		</dev/null >>"$dir/bgpd.out" 2>&1 &
	echo $! >"$dir/bgpd.pid"
}

# vtysh CMD runs a show command in the reflector's bgpd.
vtysh() { ip netns exec rr vtysh --vty_socket "$RUN/rr" -c "$1"; }

# start_cpe NS starts srv6cpe in NS, detached, logging to its run dir.
start_cpe() {
	local ns=$1 dir=$RUN/$1
	mkdir -p "$dir/state"
	# setsid: the daemon outlives this script and the terminal; it keeps
	# the pid (ip netns exec execs it), so the pid file is the daemon's.
	setsid ip netns exec "$ns" "$BIN" --config "$ROOT/examples/lab/$ns.yaml" --state-dir "$dir/state" \
		</dev/null >>"$dir/srv6cpe.log" 2>&1 &
	echo $! >"$dir/srv6cpe.pid"
}

# wait_status NS WHAT PYEXPR waits up to 20s until PYEXPR holds for NS's
# status.json (as s).
wait_status() {
	local ns=$1 what=$2 expr=$3 status=$RUN/$1/state/status.json i
	for ((i = 0; i < 200; i++)); do
		if [[ -r $status ]] && python3 -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" "$status" 2>/dev/null; then
			return 0
		fi
		lab_pid "$ns" srv6cpe >/dev/null || die "srv6cpe in $ns exited; see $RUN/$ns/srv6cpe.log: $(tail -n 3 "$RUN/$ns/srv6cpe.log")"
		sleep 0.1
	done
	die "$ns: $what not within 20s; see $RUN/$ns/srv6cpe.log"
}

# encaps NS prints NS's seg6 encap routes (IPv4 and IPv6) the agent installed.
encaps() {
	{
		ip -n "$1" -4 route show proto "$PROTO"
		ip -n "$1" -6 route show proto "$PROTO"
	} | grep 'encap seg6 ' || true
}

# summary NS prints what NS's agent derived, its BGP session and what the
# kernel holds.
summary() {
	local ns=$1 status=$RUN/$1/state/status.json pid
	pid=$(lab_pid "$ns" srv6cpe) || {
		echo "$ns: srv6cpe not running"
		return 0
	}
	echo "$ns: srv6cpe pid $pid, WAN wan0 $(wan_addr "$ns"), log $RUN/$ns/srv6cpe.log"
	if [[ ! -r $status ]]; then
		echo "  no status yet ($status)"
		return 0
	fi
	python3 - "$status" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  state             {s['state']}" + (f"  (last error: {s['last_error']})" if s.get('last_error') else ""))
print(f"  delegated prefix  {s.get('prefix', '-')}  (CPE address {s.get('address', '-')})")
print(f"  locator {s.get('locator_name', ''):<9} {s.get('locator', '-')}")
print("  service SIDs")
for d in s.get('sids') or []:
    print(f"    {d['name']:<6} {d['behavior']:<8} {d['sid']:<22} installed as {d['installed']}")
for f in s.get('fallback') or []:
    print(f"  fallback          {f}")
b = s.get('bgp')
if b:
    print(f"  BGP               AS {b['local_as']}, router id {b['router_id']}: "
          f"{b['exported']} prefixes advertised, {b['imported']} routes imported, {b['installed']} installed")
    for p in b.get('peers') or []:
        since = f" since {p['established_at']}" if p.get('established_at') else ""
        print(f"    neighbour {p['address']:<14} {p['state']}{since}, "
              f"{p['prefixes_received']} prefixes received, {p['prefixes_sent']} sent")
    for n in b.get('skipped') or []:
        print(f"    skipped: {n}")
    if b.get('last_error'):
        print(f"    error: {b['last_error']}")
EOF
	echo "  encap routes towards remote SIDs (ip -n $ns route show proto $PROTO):"
	encaps "$ns" | indent
}

# ping_over_srv6 pings lan2 from lan1 (IPv4 and IPv6) while capturing on
# the transit link to cpe2, and shows the packets' outer destination.
ping_over_srv6() {
	local cap=$RUN/wan/ping.txt dst pid i
	mkdir -p "$RUN/wan"
	# Only SRv6 (a routing header after the IPv6 header) towards cpe2.
	timeout 8 ip netns exec wan tcpdump -Z root --immediate-mode -l -n -t -i cpe2 -c 4 \
		'outbound and ip6 and ip6[6] == 43' >"$cap" 2>"$cap.err" &
	pid=$!
	for ((i = 0; i < 50; i++)); do
		grep -q 'listening on' "$cap.err" 2>/dev/null && break
		sleep 0.1
	done
	sleep 0.3 # the filter is attached a moment after tcpdump says it listens
	for dst in 192.168.2.2 2001:db8:2201::2; do
		echo "  lan1 -> $dst:"
		ip netns exec lan1 ping -c 2 -i 0.2 -W 2 "$dst" | tail -n 2 | indent
	done
	wait "$pid" || true
	echo "  on the transit link wan -> cpe2 (tcpdump -i cpe2 in wan): the outer destination is cpe2's service SID"
	grep . "$cap" | indent
}

down() {
	local ns pid i prog
	for ns in "${NAMESPACES[@]}"; do
		for prog in srv6cpe bgpd; do
			if pid=$(lab_pid "$ns" "$prog"); then
				kill -TERM "$pid"
				for ((i = 0; i < 50; i++)); do
					[[ -d /proc/$pid ]] || break
					sleep 0.1
				done
				[[ -d /proc/$pid ]] && die "$prog (pid $pid) in $ns did not stop within 5s"
			fi
		done
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
	local ns
	down >/dev/null
	build
	topology
	start_rr
	sleep 0.3
	lab_pid rr bgpd >/dev/null || die "FRR's bgpd exited at once: $(tail -n 3 "$RUN/rr/bgpd.out" "$RUN/rr/bgpd.log" 2>/dev/null)"
	for ns in "${CPES[@]}"; do
		start_cpe "$ns"
	done
	for ns in "${CPES[@]}"; do
		wait_status "$ns" "SIDs applied" "s['state'] == 'applied'"
		wait_status "$ns" "BGP session established" "s.get('bgp') and s['bgp']['peers'] and s['bgp']['peers'][0]['state'] == 'established'"
		wait_status "$ns" "encap routes to the other CPE" "s['bgp']['installed'] >= 2"
	done
	for ns in "${CPES[@]}"; do
		echo
		summary "$ns"
	done
	echo
	echo "rr: FRR bgpd, vtysh --vty_socket $RUN/rr -c 'show bgp summary' (in netns rr):"
	vtysh "show bgp summary" | grep -E '^(IPv[46] VPN|Neighbor|fd00)' | indent
	echo
	echo "ping over SRv6:"
	ping_over_srv6
	echo
	echo "Next: scripts/lab.sh renumber cpe1   (then: scripts/lab.sh status, scripts/lab.sh down)"
}

# renumber NS moves NS's delegated prefix between two /40s (the WAN address
# and the transit route) and times how long the other CPE takes to use the
# new SIDs and LAN traffic takes to flow again.
renumber() {
	local ns=$1 old new old_net new_net old_loc new_loc routes t0 t1 t2 i
	lab_pid "$ns" srv6cpe >/dev/null || die "srv6cpe is not running in $ns (scripts/lab.sh up)"
	old=$(wan_addr "$ns")
	case $old in
	"$ADDR_A") new=$ADDR_B old_loc=2001:db8:1205: new_loc=2001:db8:4405: ;;
	"$ADDR_B") new=$ADDR_A old_loc=2001:db8:4405: new_loc=2001:db8:1205: ;;
	*) die "$ns has WAN address '$old', expected $ADDR_A or $ADDR_B" ;;
	esac
	# ADDR_A and ADDR_B are ::1 in their /40: the transit routes the /40.
	old_net=${old%%::1/40}::/40
	new_net=${new%%::1/40}::/40
	echo "cpe2's encap routes before:"
	encaps cpe2 | indent
	echo "$ns: renumbering WAN $old -> $new (and the transit route)"
	t0=$(now_ms)
	ip -n "$ns" -6 addr del "$old" dev wan0
	ip -n "$ns" -6 addr add "$new" dev wan0 nodad
	ip -n wan -6 route del "$old_net"
	ip -n wan -6 route add "$new_net" via fd00:0:1::2
	for ((i = 0; ; i++)); do
		routes=$(encaps cpe2)
		if [[ $routes == *"$new_loc"* && $routes != *"$old_loc"* ]]; then
			break
		fi
		((i < 4000)) || die "cpe2 did not move to $new_loc within 20s; see $RUN/cpe2/srv6cpe.log"
		sleep 0.005
	done
	t1=$(now_ms)
	for ((i = 0; ; i++)); do
		if ip netns exec lan1 ping -c 1 -W 0.2 192.168.2.2 >/dev/null 2>&1 &&
			ip netns exec lan1 ping -c 1 -W 0.2 2001:db8:2201::2 >/dev/null 2>&1; then
			break
		fi
		((i < 100)) || die "lan1 -> lan2 did not recover within 20s"
		sleep 0.05
	done
	t2=$(now_ms)
	echo "cpe2's encap routes after:"
	indent <<<"$routes"
	echo "cpe2 on $ns's new SIDs $((t1 - t0)) ms after the address change; lan1 -> lan2 (IPv4 and IPv6) answering again after $((t2 - t0)) ms"
	echo
	echo "ping over SRv6 after renumbering:"
	ping_over_srv6
}

[[ $EUID -eq 0 ]] || die "run as root (network namespaces)"
case ${1:-} in
up) up ;;
down) down ;;
status)
	for ns in "${CPES[@]}"; do
		summary "$ns"
	done
	;;
renumber)
	[[ ${2:-} == cpe1 ]] || die "usage: $0 renumber cpe1"
	renumber "$2"
	;;
*)
	echo "usage: $0 up | down | status | renumber cpe1" >&2
	exit 2
	;;
esac
