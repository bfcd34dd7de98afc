#!/usr/bin/env bash
# Install what toolforgectl and its tests need on a Debian machine, then the package into .venv.
# Idempotent and quiet when everything is already there. Uses sudo when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-pip make openssl
  redis-server
  nginx libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-resty-lrucache lua-nginx-redis
  # lua-resty-dns (host-name backends, lua/urlproxy/resolver.lua); dnsmasq: the DNS server of its
  # tests and of the lab (the records of the lab cloud's Designate, lab/dnsserver.py), run unprivileged
  lua-nginx-dns dnsmasq-base
  lua-check lua-cjson wrk valgrind
  # the Lua unit tests (tests/lua/unit/), and a CPU load to run the tests under
  lua5.1 lua-rex-pcre2 stress-ng
  etcd-server
  # sshd for the remote adapter's tests and the lab's hosts (its own instances; the system's is untouched)
  openssh-server openssh-client
  # systemd-analyze (verify, security), systemd-sysusers and systemd-tmpfiles judge the rendered
  # units (tests/adapters/test_units.py); a container image may lack them
  systemd
)
VENV=${VENV:-.venv}

# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
apt_install_missing setup "${APT_PACKAGES[@]}"
# Debian starts the packaged services; toolforgectl runs its own instances, so stop those.
stop_packaged_services nginx redis-server etcd

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >&2
"$VENV/bin/python" -m pip install -q -e '.[dev]' >&2
echo "setup: ready ($VENV/bin/toolforgectl)" >&2
