#!/usr/bin/env bash
# daemons/ (or $1): the units as a distribution package installs them (programs in /usr/bin),
# rendered from templates/systemd/ for templates/samples/path-mode.yaml. Generated, never edited by
# hand: tests/adapters/test_units.py fails when daemons/ differs from what this script renders.
# A virtualenv install renders its own: `toolforgectl render units --prefix VENV` (docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-daemons}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"${TOOLFORGECTL:-.venv/bin/toolforgectl}" --config templates/samples/path-mode.yaml render units --prefix /usr --out "$out" 2>/dev/null
rm -rf "$dest"
mkdir -p "$dest"
cp "$out"/systemd/system/*.service "$out"/systemd/system/*.socket "$dest"/
cp -r "$out"/systemd/system/nginx.service.d "$out"/sysusers.d "$out"/tmpfiles.d "$dest"/
