#!/usr/bin/env bash
# Provision a Debian 12 machine (as root) for lblab: the apt packages, Open vSwitch started
# without systemd if it is not running, and a virtualenv at .venv built from the Debian
# Python (so the Debian Mininet imports) with lblab installed into it.
# Idempotent: a second run checks each step and does nothing it does not need to.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${LBLAB_VENV:-$here/.venv}"

log() { printf '[provision] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh: run as root (it installs apt packages and starts Open vSwitch)" >&2
  exit 2
fi

apt_packages=(
  mininet openvswitch-switch haproxy nftables conntrack iperf3 hping3 wrk redis-server
  ethtool iputils-ping iproute2 tcpdump python3-venv python3-pip git chromium nghttp2-client
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's openvswitch-switch and redis-server try to start services through invoke-rc.d;
  # policy-rc.d 101 keeps the package install from starting daemons we start ourselves.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
else
  log "apt packages present"
fi

# Open vSwitch: no systemd here, so start it with ovs-ctl unless both ovsdb-server and
# ovs-vswitchd already run (`ovs-ctl status` checks both; `ovs-vsctl show` needs only ovsdb).
if ! /usr/share/openvswitch/scripts/ovs-ctl status >/dev/null 2>&1; then
  log "starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null
else
  log "Open vSwitch running"
fi

# The virtualenv: the Debian python3 with system site-packages, so `import mininet` works.
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.lblab-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  log "installing lblab into $venv"
  piplog="$venv/pip-install.log"
  if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -e "$here[dev]"; } \
      >"$piplog" 2>&1; then
    tail -30 "$piplog" >&2
    echo "provision.sh: pip install failed (full log: $piplog)" >&2
    exit 1
  fi
  touch "$stamp"
else
  log "virtualenv up to date"
fi
"$venv/bin/python" -c 'import mininet.net, os_ken, lblab' 
log "ready: $venv/bin/lblab"
