#!/usr/bin/env bash
# Connection setup when a STUN or TURN server never answers (a firewall that drops UDP to it, a
# server that is down), measured as a user meets it: `p2phost receive` of one file, exec to exit,
# beside the same transfer with a STUN server that answers, in the same run.
#
# Before trickle ICE each side waited for candidate gathering to give up on the silent server
# (~20 s). Give an older build as SETUP_BEFORE to print its figures next to this one's.
#
#   bench/setup_time.sh                                   # this tree's release build
#   SETUP_BEFORE=/tmp/p2phost-old SETUP_RUNS=5 bench/setup_time.sh
#
# Environment: SETUP_RUNS (transfers per case, default 3), SETUP_SIZE (bytes, default 32 MiB),
# SETUP_BEFORE (another p2phost binary), CARGO_TARGET_DIR, TMPDIR. Nothing is asserted about speed.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${SETUP_RUNS:-3}
SIZE=${SETUP_SIZE:-33554432}
BIN="${CARGO_TARGET_DIR:-target}/release"

echo "== building release binaries" >&2
cargo build --release --locked -p p2phost -p p2p-signaling >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/p2phost-setup.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

head -c "$SIZE" /dev/urandom >"$work/file.bin"
port=$(free_port)
stun_port=$(free_port)
"$BIN/p2p-signal" --listen "127.0.0.1:$port" --stun "127.0.0.1:$stun_port" >"$work/signal.log" 2>&1 &
pids+=($!)
# A UDP socket that reads everything and answers nothing.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    s.recvfrom(2048)
' >"$work/silent.port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/silent.port" ] && break; sleep 0.1; done
silent=$(cat "$work/silent.port")
server="ws://127.0.0.1:$port"

# One transfer with BINARY and the ICE flags after it; prints the receive's seconds.
transfer() {
  local binary=$1; shift
  local out="$work/out" code="" sender started ended
  rm -rf "$out"; mkdir "$out"
  "$binary" send --json --server "$server" "$@" "$work/file.bin" >"$work/send.out" 2>"$work/send.err" &
  sender=$!
  for _ in $(seq 100); do
    code=$(grep -o '"code":"[^"]*"' "$work/send.out" 2>/dev/null | cut -d'"' -f4 || true)
    [ -n "$code" ] && break
    sleep 0.05
  done
  started=$(date +%s.%N)
  timeout 120 "$binary" receive --yes --server "$server" "$@" --out "$out" "$code" >/dev/null 2>"$work/recv.err" || {
    echo "failed: $(cat "$work/recv.err")" >&2; kill "$sender" 2>/dev/null; wait "$sender" 2>/dev/null; echo "fail"; return; }
  ended=$(date +%s.%N)
  wait "$sender" || true
  cmp -s "$work/file.bin" "$out/file.bin" || { echo "fail"; return; }
  awk "BEGIN { printf \"%.2f\", $ended - $started }"
}

row() { # NAME BINARY FLAGS…
  local name=$1 binary=$2; shift 2
  local times=() t
  for _ in $(seq "$RUNS"); do times+=("$(transfer "$binary" "$@")"); done
  printf '%-44s %s\n' "$name" "${times[*]}"
}

echo "setup time: receive of $SIZE bytes on loopback, exec to exit, seconds per run ($RUNS runs)"
for build in "this build:$BIN/p2phost" ${SETUP_BEFORE:+"before:$SETUP_BEFORE"}; do
  label=${build%%:*}; binary=${build#*:}
  row "$label, STUN answers" "$binary" --stun "stun:127.0.0.1:$stun_port"
  row "$label, STUN silent" "$binary" --stun "stun:127.0.0.1:$silent"
  row "$label, STUN answers, TURN silent" "$binary" --stun "stun:127.0.0.1:$stun_port" \
    --turn "turn:127.0.0.1:$silent" --turn-user u --turn-pass p
done
