# Sourced by scripts/setup.sh and scripts/install-openstack.sh: the one way they install Debian
# packages and keep the packaged services out of the way (the tests run their own instances).

# apt_install_missing WHO PKG...: install the packages not installed yet (sudo when not root).
apt_install_missing() {
  local who=$1 pkg sudo=""
  shift
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "$who: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# stop_packaged_services SERVICE...: stop those Debian started (where systemd runs them at all).
stop_packaged_services() {
  local svc sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  for svc in "$@"; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
      $sudo systemctl stop "$svc" || true
    fi
  done
}
