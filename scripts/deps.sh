#!/usr/bin/env bash
# Installs what the build, the tests and the lab need on a fresh Debian machine,
# and only what is missing: Debian packages (as root, with apt-get) and the Go
# modules. Safe to run again: it does nothing when everything is there.
set -euo pipefail

# Debian package -> a file it installs (how we tell it is present).
declare -A want=(
	[iproute2]=/usr/sbin/ip
	[frr]=/usr/lib/frr/bgpd
	[tshark]=/usr/bin/tshark
	[libxml2-utils]=/usr/bin/xmllint
	[python3-scapy]=/usr/lib/python3/dist-packages/scapy/__init__.py
	[nftables]=/usr/sbin/nft
	[shellcheck]=/usr/bin/shellcheck
	[curl]=/usr/bin/curl
	[tcpdump]=/usr/bin/tcpdump
	[gcc]=/usr/bin/gcc
	[ethtool]=/usr/sbin/ethtool
)

missing=()
for pkg in "${!want[@]}"; do
	[[ -e "${want[$pkg]}" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# FRR is a test peer here, not a service of this machine: keep the packaged
# daemons from starting on their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet frr 2>/dev/null; then
	systemctl stop frr || true
fi

command -v go >/dev/null || { echo "deps: Go is not installed (need Go >= 1.25)" >&2; exit 1; }
go mod download
