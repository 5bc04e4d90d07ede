#!/usr/bin/env bash
# Installs everything the test suites need, from package registries only. Idempotent: cheap
# when everything is already there. Caches live outside the repo ($SPATE_CACHE) and are never
# required to exist.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# kcat for its suite; iproute2 for the fault scenarios' network namespaces.
if ! command -v kcat >/dev/null || ! command -v ip >/dev/null; then
  step "apt: kcat iproute2"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq kcat iproute2 >/dev/null
fi

step "pip: compat/python/requirements.txt"
python3 -m pip install -q --disable-pip-version-check -r compat/python/requirements.txt

step "npm: compat/js"
(cd compat/js && npm ci --no-audit --no-fund --loglevel=error)

step "go: compat/go modules"
(cd compat/go && go mod download)

step "maven: compat/java dependencies"
(cd compat/java && mvn -q -B -DskipTests test-compile)

if command -v rustup >/dev/null && rustup toolchain list | grep -q nightly && ! command -v cargo-fuzz >/dev/null; then
  step "cargo: cargo-fuzz"
  cargo install -q --locked cargo-fuzz || echo "cargo-fuzz could not be installed; the fuzz smoke run will be skipped"
fi
