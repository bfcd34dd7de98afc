#!/usr/bin/env bash
# Build a real kube-apiserver 1.20.2 offline from Debian's `kubernetes` source package and cache it.
# Why: no kube-apiserver binary exists in Debian or PyPI; the source package vendors every
# dependency, so `make WHAT=cmd/kube-apiserver` builds it with Debian's golang-go (~8 min, 2 cores).
# Prints the path of the cached binary on stdout. Idempotent: a cached binary is reused.
set -euo pipefail
cache=${TOOLFORGECTL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolforgectl}
bin=$cache/kube-apiserver-1.20.2
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
if ! command -v go >/dev/null || ! command -v rsync >/dev/null || ! command -v etcd >/dev/null; then
  apt-get install -y -qq --no-install-recommends golang-go rsync etcd-server >&2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/k8sbuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/etc" "$cache"
# A private deb-src list cloned from the machine's own sources; the system apt config is untouched.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$work/etc/src.sources"
else
  sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$work/etc/src.list"
fi
aptopt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/etc" -o "Dir::State::Lists=$work/lists")
apt-get "${aptopt[@]}" update -qq >&2
(cd "$work" && apt-get "${aptopt[@]}" source --download-only kubernetes >&2)
tar -C "$work" -xzf "$work"/kubernetes_*.orig.tar.gz
src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
(cd "$src" && HOME=$work/home CGO_ENABLED=0 make WHAT=cmd/kube-apiserver >&2)
install -m 0755 "$src/_output/bin/kube-apiserver" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
