#!/usr/bin/env bash
# make bench: every benchmark of the project, each printing its figures and,
# where the issue names an anchor, the ratio to that anchor measured in the
# same run. Benchmarks that need root (namespaces, the kernel's routes) say so
# and are skipped without it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n== %s\n' "$*"; }
bench() { go test -run '^$' "$@" | grep -Ev '^(goos|goarch|pkg|cpu|PASS)' || true; }

if [[ $(id -u) -ne 0 ]]; then
	echo "bench: not root: the dataplane, BGP and STAMP benchmarks need network namespaces and are skipped" >&2
fi

section "dataplane: 10,000 IPv4 VPN encap routes, Apply vs ip -batch (goal ratio <= 0.25)"
bench -bench 'BenchmarkEncap10kVsIPBatch|BenchmarkApplyNoChange' -benchtime 10x ./dataplane/

section "cwmp: GetParameterValues of the whole tree; one full session on loopback"
bench -bench 'BenchmarkGPVWholeTree|BenchmarkSession$|BenchmarkSessionTransport' -benchtime 2s ./cwmpclient/

section "bgp: 10,000 VPNv4 routes learned (direct, through FRR), receiver RSS"
bench -bench 'Learn10k|ReceiverRSS' -benchtime 5x ./bgp/
bench -bench 'Peers10k' -benchtime 3x ./bgp/

section "end to end: 10,000 VPNv4 routes from cpe1 via FRR, installed in cpe2's kernel (goal <= 1.5 s; receiver RSS goal <= 40 MB)"
bench -bench BGPInstall10k -benchtime 3x ./cmd/srv6cpe/

section "stamp: reflector throughput vs a C recvmmsg reflector (goal >= 0.95x); RTT floor at 1 kpps over veth, idle and with two CPU hogs (goal p99 <= 40 us)"
SRV6CPE_BENCH=1 go test -count=1 -run '^TestBench' -v ./twamp/ | grep -Ev '^(=== RUN|PASS|ok )' || true
bench -bench 'BenchmarkReflect' -benchmem ./twamp/

section "policy: loss on the active path -> the service's route switched in the kernel, 10 ms probes, N=10 (goal <= 50 ms; BFD 3 x 50 ms = 150 ms)"
SRV6CPE_BENCH=1 go test -count=1 -run '^TestLabPolicySwitchLatency$' -v ./scripts/labctl/ | grep -E '^(policy switch|  median|--- (SKIP|FAIL)|    policy_test)' || true

section "footprint: stripped static arm64 daemon (goal <= 16 MiB); idle and 10k-route RSS are printed by the end-to-end BGP benchmark above (goals <= 20 MB, <= 40 MB)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tags=$(sed -e '/^[#]/d' scripts/buildtags)
for t in arm64 amd64; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$t go build -tags "$tags" -trimpath -ldflags '-s -w' -o "$tmp/srv6cpe-$t" ./cmd/srv6cpe
	size=$(stat -c %s "$tmp/srv6cpe-$t")
	awk -v t="$t" -v s="$size" 'BEGIN { printf "srv6cpe linux/%s: %d bytes = %.2f MiB (%.2f of the 16 MiB goal)\n", t, s, s/1048576, s/16777216 }'
done
# Where the bytes go: the unstripped arm64 daemon's symbols by module (code,
# data, type and string tables; the function tables in .gopclntab, about a
# third of the file, grow with the code alike).
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags "$tags" -trimpath -o "$tmp/srv6cpe-syms" ./cmd/srv6cpe
go tool nm -size "$tmp/srv6cpe-syms" | awk '
	$3 ~ /^[TtRrDd]$/ && $4 != "crypto/internal/fips140/drbg.memory" {
		n = $4; sub(/^(type:\.(eq|hash)\.|go:itab\.\*?|\*?\()/, "", n)
		if (n ~ /^go:func\./) { m = "funcdata (go:func.*)" }
		else {
			last = 0; for (i = 1; i <= length(n); i++) if (substr(n, i, 1) == "/") last = i
			rest = substr(n, last + 1); d = index(rest, "."); if (d == 0) d = length(rest) + 1
			split(substr(n, 1, last) substr(rest, 1, d - 1), p, "/")
			if (p[1] !~ /\./) m = "std"
			else if (p[1] ~ /^(gopkg\.in|go\.uber\.org|google\.golang\.org)$/) m = p[1] "/" p[2]
			else m = p[1] "/" p[2] "/" p[3]
		}
		size[m] += $2; total += $2
	}
	END {
		for (m in size) printf "%8.0f KiB %5.1f %%  %s\n", size[m] / 1024, 100 * size[m] / total, m | "sort -rn | head -16"
	}'
