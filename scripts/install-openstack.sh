#!/usr/bin/env bash
# Install the OpenStack control plane of the slow test tier (toolforgectl/lab/openstack.py) and
# cache it. Why its own virtualenv: Keystone, Neutron, Nova, Placement, Glance and Designate pin
# their dependencies (oslo.*, SQLAlchemy, ...) in ways toolforgectl's .venv must not follow.
# The venv's name carries a hash of scripts/openstack/ (the versions and our plugin) and of the
# Python version, so a second run reuses it and a changed pin gets a new one (~550 MB, 1-3 min).
# Also installs, from Debian, the servers the control plane needs: MariaDB, RabbitMQ and BIND.
# Prints the venv's path on stdout. `--print-path` prints it without installing anything.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TOOLFORGECTL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolforgectl}
python=${PYTHON:-python3}
key=$( (cd "$here/openstack" && find . -type f ! -name '*.pyc' ! -path '*.egg-info*' ! -path '*/build/*' \
          | LC_ALL=C sort | xargs sha256sum; "$python" --version) | sha256sum | cut -c1-12)
venv=$cache/openstack-$key
if [ "${1:-}" = "--print-path" ]; then echo "$venv"; exit 0; fi

APT_PACKAGES=(mariadb-server rabbitmq-server bind9 bind9-utils bind9-dnsutils)
# shellcheck source=scripts/lib/apt.sh
. "$here/lib/apt.sh"
apt_install_missing install-openstack "${APT_PACKAGES[@]}"
# Debian may start the packaged services; the test cloud runs its own instances on other ports.
stop_packaged_services mariadb rabbitmq-server named

if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
echo "install-openstack: building $venv (about 1-3 min)" >&2
mkdir -p "$cache"
# Built in place (a venv's scripts name their interpreter by absolute path, so it cannot be moved
# after); `.complete` marks a finished install, so an interrupted one is built again.
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip setuptools >&2
"$venv/bin/python" -m pip install -q -r "$here/openstack/requirements.txt" >&2
"$venv/bin/python" -m pip install -q --no-build-isolation "$here/openstack/plugin" >&2
rm -rf "$here/openstack/plugin/build" "$here/openstack/plugin"/*.egg-info
"$venv/bin/python" -m pip freeze > "$venv/.complete"
echo "$venv"
