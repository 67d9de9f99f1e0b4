#!/usr/bin/env bash
# Side by side: two p2phost daemons against two Syncthing instances, on this machine, over
# loopback, same files, same run. One command:
#
#   bench/compare_sync.sh                                   # 100 files one at a time, then 10,000 at once
#   BENCH_LATENCY_FILES=20 BENCH_BURST_FILES=1000 bench/compare_sync.sh
#   BENCH_SYNCTHING_DELAY=10 bench/compare_sync.sh          # Syncthing's default watcher delay
#
# It installs Syncthing from Debian's packages when it is missing (`syncthing`, 1.19.2 on
# bookworm), then runs the daemon benchmark, host/benches/sync.rs, with Syncthing required: the
# benchmark sets up both tools itself (p2phost: `p2phost init`, a config each, A serving
# signaling; Syncthing: `syncthing generate`, a config.xml each with the other's device id at
# tcp://127.0.0.1:PORT, discovery, relays, NAT, STUN and reporting off, a shared folder with the
# watcher on), times both with the same code, and prints them beside its baselines. See
# docs/BENCHMARKS.md, "Daemon sync". Nothing is asserted about speed.
#
# Environment: everything host/benches/sync.rs reads (BENCH_LATENCY_FILES, BENCH_BURST_FILES,
# BENCH_PHASES, BENCH_SYNCTHING_DELAY), CARGO_TARGET_DIR, TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v syncthing >/dev/null 2>&1; then
  echo "== installing Syncthing (Debian package 'syncthing')" >&2
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq syncthing >/dev/null ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq syncthing >/dev/null; }
fi
# `syncthing generate` and `serve --device-id` (used by the benchmark) came with Syncthing 1.18.
syncthing --version >&2

BENCH_SYNCTHING=1 exec cargo bench --quiet -p p2phost --bench sync
