#!/usr/bin/env bash
# srv6cpe namespace lab: two CPEs with an SRv6 L3VPN over BGP between them.
#
#   scripts/lab.sh up              build srv6cpe and labctl, create the lab, start the
#                                  controller, FRR and both CPEs; show registrations, SIDs, BGP
#                                  sessions, encap routes, a ping lan1 -> lan2 and the latest
#                                  monitoring report
#   scripts/lab.sh status          show each CPE's SIDs, BGP sessions and encap routes, and
#                                  the controller's view
#   scripts/lab.sh renumber cpe1   move cpe1's delegated prefix to the other /40; time how long
#                                  cpe2 takes to move to the new SIDs, traffic to recover and
#                                  the controller to get the IP change report and tell cpe2
#   scripts/lab.sh loss PATH PCT   drop PCT % (0..100) of the SRv6 packets cpe1 sends into
#                                  PATH's transit (path1 = wan, path2 = alt); 0 removes the rule.
#                                  Shows where cpe1's SRv6 policy steers each service after it
#   scripts/lab.sh down            stop everything and delete what the lab created
#
# Topology (network namespaces):
#
#   [lan1] eth0 -- lan0 [cpe1] wan0 --- cpe1 [wan] cpe2 --- wan0 [cpe2] lan0 -- eth0 [lan2]
#   192.168.1.0/24      2001:db8:1200::1/40   |  |  2001:db8:2200::1/40      192.168.2.0/24
#   2001:db8:1201::/64  fd00:0:1::2/64        rr ctl fd00:0:2::2/64          2001:db8:2201::/64
#                            alt0             |  |            alt0
#                       fd00:1:1::2 --- cpe1 [alt] cpe2 --- fd00:1:2::2
#                                             |  |
#                                        wan0 [rr] fd00:0:ff::2: FRR bgpd -Z, route reflector
#                                                |
#                                           wan0 [ctl] fd00:0:c::2: labctl, the SD-WAN controller
#
# cpe1 and cpe2 run srv6cpe with examples/lab/cpeN.yaml: the delegated prefix
# comes from the global WAN address, locator = prefix + extension 0x5 over
# 48 bits, services vpn4 (End.DT4) and vpn6 (End.DT6) advertised with their
# LAN prefixes over BGP (sessions on the stable fd00:0:N::2 addresses) and
# reflected by FRR (scripts/frr/rr-bgpd.conf). "wan" is the transit: it
# routes each delegated /40 to its CPE and carries the SRv6 packets.
# "ctl" runs labctl (scripts/labctl), the SD-WAN controller of Q.Suppl.79
# clause 8, as both CPEs' ACS: it registers them, configures SRv6 and the
# L3VPN services over CWMP (scripts/labctl/lab.yaml), creates a STAMP
# monitoring task (cpe1 sender, cpe2 reflector) and, when cpe1 reports an
# IP change, tells cpe2 the new address. Its state: $RUN/ctl/state.json.
#
# Two constituent paths cpe1 -> cpe2 (issue 7): "wan" (path1) and "alt"
# (path2) are transits, each with an End SID of its own on a locator routed
# to it (wan 2001:db8:e100::1, alt 2001:db8:e200::1). cpe1 runs the SRv6
# policy of examples/lab/cpe1.yaml: path1 = [wan End, cpe2's SID], path2 =
# [alt End, cpe2's SID], each probed in loopback every 10 ms; services
# conference (DSCP 46, UDP 16384-32767) and crm (TCP 8443) steered to the
# best path by their selectors. cpe2 is the far node of End.TSF
# (srv6.end_tsf: 2001:db8:2205:7f::). In each transit the nftables table
# "inet lab" counts what cpe1 sends (counters srv6, conference = outer DSCP
# EF, crm = outer DSCP AF21: seg6 encap copies the inner traffic class) and
# holds the loss rule of "lab.sh loss" (this kernel has no netem).
# Files live under $SRV6CPE_LAB_DIR (default /run/srv6cpe-lab).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${SRV6CPE_LAB_DIR:-/run/srv6cpe-lab}
BIN=$RUN/bin/srv6cpe
LABCTL=$RUN/bin/labctl
CTL_ADDR=fd00:0:c::2
CTL_STATE=$RUN/ctl/state.json
BGPD=/usr/lib/frr/bgpd
PROTO=198 # dataplane.RouteProtocol (0xc6): every route the agent owns carries it

NAMESPACES=(cpe1 cpe2 rr wan alt lan1 lan2 ctl)
CPES=(cpe1 cpe2)
TRANSITS=(wan alt) # path1, path2 of cpe1's SRv6 policy
ADDR_A=2001:db8:1200::1/40 # cpe1, and where renumber moves it back to
ADDR_B=2001:db8:4400::1/40 # where renumber moves cpe1

die() {
	echo "lab: $*" >&2
	exit 1
}

indent() { sed 's/^/    /'; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# lab_pid NS PROG prints the pid of PROG (srv6cpe, bgpd, labctl) this lab started
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
		echo "lab: building srv6cpe, srv6cpectl and labctl"
		(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$RUN/bin/" ./cmd/srv6cpe ./cmd/srv6cpectl ./scripts/labctl)
	elif [[ -x $ROOT/bin/srv6cpe && -x $ROOT/bin/srv6cpectl && -x $ROOT/bin/labctl ]]; then
		cp "$ROOT/bin/srv6cpe" "$ROOT/bin/srv6cpectl" "$ROOT/bin/labctl" "$RUN/bin/"
	else
		die "no Go toolchain and no bin/srv6cpe, bin/srv6cpectl, bin/labctl: build them first"
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
	for ns in "${TRANSITS[@]}"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.seg6_enabled=1
	done
	link rr wan0 wan rr
	addr rr wan0 fd00:0:ff::2/64
	addr wan rr fd00:0:ff::1/64
	ip -n rr -6 route add default via fd00:0:ff::1
	link ctl wan0 wan ctl
	addr ctl wan0 "$CTL_ADDR/64"
	addr wan ctl fd00:0:c::1/64
	ip -n ctl -6 route add default via fd00:0:c::1
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
		# The second uplink, to the alt transit: only its locator is routed
		# there; the policy's path2 starts with alt's End SID.
		link "cpe$i" alt0 alt "cpe$i"
		addr "cpe$i" alt0 "fd00:1:$i::2/64"
		addr alt "cpe$i" "fd00:1:$i::1/64"
		ip netns exec "cpe$i" sysctl -qw net.ipv6.conf.alt0.seg6_enabled=1
		ip -n "cpe$i" -6 route add 2001:db8:e200::/48 via "fd00:1:$i::1"
		ip -n alt -6 route add "2001:db8:${i}200::/40" via "fd00:1:$i::2"
	done
	# Where renumber moves cpe1: alt routes it too.
	ip -n alt -6 route add 2001:db8:4400::/40 via fd00:1:1::2
	transit_sids
}

# transit_sids gives each transit an End SID on a locator of its own and
# the nftables table "inet lab": counters of what cpe1 sends into the
# transit (before any loss) and an empty loss chain for "lab.sh loss".
transit_sids() {
	local ns i
	for i in 1 2; do
		ns=${TRANSITS[i - 1]}
		ip -n "$ns" -6 route add "2001:db8:e${i}00::1/128" encap seg6local action End dev cpe2
		ip -n "$ns" -6 route add unreachable "2001:db8:e${i}00::/48"
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.cpe1.seg6_enabled=1 net.ipv6.conf.cpe2.seg6_enabled=1
		ip netns exec "$ns" nft -f - <<'EOF'
table inet lab {
	counter srv6 {}
	counter conference {}
	counter crm {}
	chain count {
		type filter hook prerouting priority -200; policy accept;
		iifname "cpe1" ip6 nexthdr 43 counter name srv6
		iifname "cpe1" ip6 nexthdr 43 ip6 dscp ef counter name conference
		iifname "cpe1" ip6 nexthdr 43 ip6 dscp af21 counter name crm
	}
	chain loss {
		type filter hook prerouting priority -150; policy accept;
	}
}
EOF
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

# start_ctl starts labctl in ctl, detached, logging to its run dir.
start_ctl() {
	local dir=$RUN/ctl
	mkdir -p "$dir"
	setsid ip netns exec ctl "$LABCTL" --listen "[$CTL_ADDR]:7548" --config "$ROOT/scripts/labctl/lab.yaml" \
		--state "$CTL_STATE" </dev/null >>"$dir/labctl.log" 2>&1 &
	echo $! >"$dir/labctl.pid"
}

# cpe_config NS writes NS's config: the example file plus its identity
# and the controller as its ACS (credentials of scripts/labctl/lab.yaml).
cpe_config() {
	local ns=$1 out=$RUN/$1/srv6cpe.yaml
	{
		cat "$ROOT/examples/lab/$ns.yaml"
		cat <<EOF

# Added by scripts/lab.sh: the lab controller in netns ctl is the ACS, and
# each CPE has its own control socket (/run is shared by the namespaces):
#   srv6cpectl --socket $RUN/$ns/control.sock status
control_socket: $RUN/$ns/control.sock
identity: {manufacturer: srv6cpe-lab, oui: 00A0C9, product_class: SRv6-CPE, serial_number: LAB-${ns^^}}
acs:
  url: http://[$CTL_ADDR]:7548/acs
  username: cpe
  password: cpe-secret
  retry_minimum_wait: 1
  connection_request: {addr: "[::]:7547", path: /cr, username: acs, password: acs-secret}
  reboot_command: [/bin/true]
EOF
	} >"$out"
	echo "$out"
}

# start_cpe NS starts srv6cpe in NS, detached, logging to its run dir.
start_cpe() {
	local ns=$1 dir=$RUN/$1 cfg
	mkdir -p "$dir/state"
	cfg=$(cpe_config "$ns")
	# setsid: the daemon outlives this script and the terminal; it keeps
	# the pid (ip netns exec execs it), so the pid file is the daemon's.
	setsid ip netns exec "$ns" "$BIN" --config "$cfg" --state-dir "$dir/state" \
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
t = s.get('end_tsf')
if t:
    how = "stamped (T2 written)" if t['stamping'] else "plain loopback"
    err = f"; {t['error']}" if t.get('error') else ""
    print(f"  End.TSF SID       {t['sid']} installed as {t['installed']}, {how} at ingress of {', '.join(t['interfaces'])}{err}")
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

# wait_ctl WHAT SECONDS PYEXPR waits up to SECONDS until PYEXPR holds for
# the controller's state.json (as s); returns 1 if it does not.
wait_ctl() {
	local what=$1 secs=$2 expr=$3 i
	for ((i = 0; i < secs * 20; i++)); do
		if [[ -r $CTL_STATE ]] && python3 -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" "$CTL_STATE" 2>/dev/null; then
			return 0
		fi
		lab_pid ctl labctl >/dev/null || die "labctl exited; see $RUN/ctl/labctl.log: $(tail -n 3 "$RUN/ctl/labctl.log")"
		sleep 0.05
	done
	echo "lab: controller: $what not within ${secs}s; see $RUN/ctl/labctl.log" >&2
	return 1
}

# ctl_summary prints the controller's view: registrations, what it
# configured and read back, the monitoring table, the latest report and the
# IP change reports.
ctl_summary() {
	local pid
	pid=$(lab_pid ctl labctl) || {
		echo "ctl: labctl not running"
		return 0
	}
	echo "ctl: labctl pid $pid, ACS http://[$CTL_ADDR]:7548/acs, state $CTL_STATE, log $RUN/ctl/labctl.log"
	[[ -r $CTL_STATE ]] || {
		echo "  no state yet"
		return 0
	}
	python3 - "$CTL_STATE" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("  registrations (Q.Suppl.79 8.1)")
for name, d in sorted(s.get("devices", {}).items()):
    conf = "configured" if d.get("configured") else ("configuration FAILED: " + d["config_error"] if d.get("config_error") else "not configured yet")
    print(f"    {name:<5} {d['device_id']:<26} at {d.get('address', '-'):<18} {d.get('supported_services', '-')}, "
          f"registered {d['registered_at'][11:23]}, {d['informs']} informs, {conf}")
    if d.get("locator"):
        print(f"          prefix {d.get('ipv6_prefix', '-')}, locator {d['locator']}")
    for sid_name, sid in sorted((d.get("sids") or {}).items()):
        print(f"          {sid_name:<6} SID {sid:<22} tunnel {(d.get('tunnel_status') or {}).get(sid_name, '-')}")
for tid, t in sorted(s.get("tasks", {}).items()):
    snd, rfl = t["sender"], t["reflector"]
    print(f"  monitoring task {tid} (8.3 table), every {t['monitor_cycle']}s, {t['updates']} updates sent")
    print(f"    {snd['device']} {snd['role']:<9} local {snd['local_ip']:<18} peer {snd['peer_ip']:<18} ({t['config'].get('sender', 'no answer yet')})")
    print(f"    {rfl['device']} {rfl['role']:<9} local {rfl['local_ip']:<18} peer {rfl['peer_ip']:<18} ({t['config'].get('reflector', 'no answer yet')})")
    r = t.get("last_report")
    if r:
        f = r["fields"]
        bw = f", bandwidth {f['Bandwidth']} Mbit/s" if f.get("Bandwidth") else ""
        print(f"    latest report ({t['reports']} so far), from {r['device']} at {f.get('ReportTimestamp', r['received_at'])}: "
              f"{f.get('LocalIP', '?')} -> {f.get('PeerIP', '?')}: latency {f.get('Latency', '?')} ms, "
              f"jitter {f.get('Jitter', '?')} ms, loss {f.get('PacketLossRate', '?')} %{bw}")
    else:
        print("    no report yet")
for e in s.get("ip_changes") or []:
    upd = f"update to {e['update_to']}: {e.get('update_answer', 'not answered yet')}" if e.get("update_to") else "no update sent"
    prob = f" PROBLEM: {e['problem']}" if e.get("problem") else ""
    print(f"  IP change report from {e['device']} (task {e['task_id']}) at {e['received_at'][11:23]}: {e['old_ip']} -> {e['new_ip']}; {upd}{prob}")
EOF
}

# transit_of PATH prints the transit namespace of path1/path2 (or its name).
transit_of() {
	case $1 in
	path1 | wan) echo wan ;;
	path2 | alt) echo alt ;;
	*) die "unknown path '$1': path1 (transit wan) or path2 (transit alt)" ;;
	esac
}

# counters prints each transit's counters of what cpe1 sent into it.
counters() {
	local ns
	for ns in "${TRANSITS[@]}"; do
		printf '%-4s' "$ns"
		ip netns exec "$ns" nft list counters table inet lab |
			awk '/counter /{n=$2} /packets/{printf "  %s %s packets", n, $2} END{print ""}'
	done
}

# policy_summary shows where cpe1's SRv6 policy steers each service: the
# agent's view (srv6cpectl policy) and the kernel's service tables.
policy_summary() {
	local sock=$RUN/cpe1/control.sock t
	lab_pid cpe1 srv6cpe >/dev/null || {
		echo "cpe1: srv6cpe not running"
		return 0
	}
	echo "cpe1's SRv6 policy ($RUN/bin/srv6cpectl policy --socket $sock):"
	"$RUN/bin/srv6cpectl" policy --socket "$sock" 2>&1 | indent || true
	echo "  kernel: the service tables' encap routes (ip -n cpe1 -6 route show table 3000 / 3001):"
	for t in 3000 3001; do
		ip -n cpe1 -6 route show table "$t" 2>/dev/null | sed "s/^/table $t: /" | indent | indent
	done
	echo "  what cpe1 sent into each transit (nft list counters table inet lab):"
	counters | indent | indent
}

# loss PATH PERCENT drops PERCENT % of the SRv6 packets cpe1 sends into
# PATH's transit (numgen random: this kernel has no netem), replacing any
# earlier loss rule there in one nft transaction; 0 removes it.
loss() {
	local ns pct=$2 t0
	ns=$(transit_of "$1")
	if ! [[ $pct =~ ^[0-9]+$ ]] || ((pct > 100)); then
		die "loss: PERCENT must be 0..100, got '$pct'"
	fi
	netns_exists "$ns" || die "no lab: namespace $ns does not exist (scripts/lab.sh up)"
	t0=$(date +%T.%3N)
	if ((pct == 0)); then
		ip netns exec "$ns" nft flush chain inet lab loss
		echo "lab: $1 ($ns): loss rule removed at $t0"
	else
		# numgen's 0..99 is never < 100: total loss is an unconditional drop.
		local sample="numgen random mod 100 < $pct"
		((pct < 100)) || sample=""
		ip netns exec "$ns" nft -f - <<EOF
flush chain inet lab loss
add rule inet lab loss iifname "cpe1" ip6 nexthdr 43 $sample counter drop
EOF
		echo "lab: $1 ($ns): dropping $pct % of cpe1's SRv6 packets from $t0"
	fi
	sleep 0.5 # let the policy react before showing it
	policy_summary
}

down() {
	local ns pid i prog
	for ns in "${NAMESPACES[@]}"; do
		for prog in srv6cpe bgpd labctl; do
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
	start_ctl
	wait_ctl "start" 5 "True" || die "labctl did not start"
	for ns in "${CPES[@]}"; do
		start_cpe "$ns"
	done
	for ns in "${CPES[@]}"; do
		wait_status "$ns" "SIDs applied" "s['state'] == 'applied'"
		wait_status "$ns" "BGP session established" "s.get('bgp') and s['bgp']['peers'] and s['bgp']['peers'][0]['state'] == 'established'"
		wait_status "$ns" "encap routes to the other CPE" "s['bgp']['installed'] >= 2"
	done
	wait_ctl "both CPEs registered and configured" 20 \
		"all(s['devices'].get(n, {}).get('configured') and s['devices'][n].get('sids') for n in ('cpe1', 'cpe2'))" ||
		{
			ctl_summary
			die "the controller did not configure both CPEs"
		}
	wait_ctl "the monitoring task answered by both CPEs" 20 \
		"s['tasks'] and all(t['config'].get('sender') and t['config'].get('reflector') for t in s['tasks'].values())" ||
		{
			ctl_summary
			die "the monitoring task was not set up"
		}
	for ns in "${CPES[@]}"; do
		echo
		summary "$ns"
	done
	echo
	policy_summary
	echo
	echo "rr: FRR bgpd, vtysh --vty_socket $RUN/rr -c 'show bgp summary' (in netns rr):"
	vtysh "show bgp summary" | grep -E '^(IPv[46] VPN|Neighbor|fd00)' | indent
	echo
	echo "ping over SRv6:"
	ping_over_srv6
	echo
	# The first report comes one MonitorCycle after the task starts.
	wait_ctl "a monitoring report" 15 "any(t.get('last_report') for t in s['tasks'].values())" || true
	ctl_summary
	echo
	echo "Next: scripts/lab.sh loss path1 100, scripts/lab.sh loss path1 0, scripts/lab.sh renumber cpe1   (then: scripts/lab.sh status, scripts/lab.sh down)"
	echo "Ask a CPE: $RUN/bin/srv6cpectl --socket $RUN/cpe1/control.sock status   (sid, routes, bgp, cwmp, stamp, paths)"
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
	echo
	# Q.Suppl.79 8.3 steps 5-8: cpe1 reports the change, the controller
	# updates its table and re-targets cpe2's end of the task.
	if wait_ctl "the IP change report and cpe2's answer to the update" 20 \
		"any(e['new_ip'] == '${new%/*}' and e.get('update_answer_at') for e in s['ip_changes'])"; then
		python3 - "$CTL_STATE" "${new%/*}" "$t0" <<'EOF'
import datetime, json, re, sys
s, new, t0 = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
def ms(ts):
    ts = re.sub(r"(\.\d{6})\d*", r"\1", ts).replace("Z", "+00:00")
    return round(datetime.datetime.fromisoformat(ts).timestamp() * 1000) - t0
e = [e for e in s["ip_changes"] if e["new_ip"] == new][-1]
print(f"controller: IP change report from {e['device']} (task {e['task_id']}, {e['old_ip']} -> {e['new_ip']}) "
      f"received {ms(e['received_at'])} ms after the address change")
print(f"controller: Stats_Monitor_Update_Req to {e['update_to']} sent at {ms(e['update_sent_at'])} ms, "
      f"answered at {ms(e['update_answer_at'])} ms: {e['update_answer']}")
EOF
	fi
	ctl_summary
}

[[ $EUID -eq 0 ]] || die "run as root (network namespaces)"
case ${1:-} in
up) up ;;
down) down ;;
status)
	for ns in "${CPES[@]}"; do
		summary "$ns"
	done
	policy_summary
	ctl_summary
	;;
renumber)
	[[ ${2:-} == cpe1 ]] || die "usage: $0 renumber cpe1"
	renumber "$2"
	;;
loss)
	[[ $# -eq 3 ]] || die "usage: $0 loss path1|path2 PERCENT"
	loss "$2" "$3"
	;;
*)
	echo "usage: $0 up | down | status | renumber cpe1 | loss path1|path2 PERCENT" >&2
	exit 2
	;;
esac
