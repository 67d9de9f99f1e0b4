#!/usr/bin/env bash
# The main job, on one machine: starts the signaling server (WebSocket + embedded STUN), shows two
# peers meeting through it and its STUN answer, then keeps serving until Ctrl-C.
# `./demo.sh --once` stops after the demonstration.
set -euo pipefail
cd "$(dirname "$0")"

echo "== building (the first build takes a few minutes)"
cargo build --quiet --release -p p2p-signaling --bin p2p-signal --example meet

bin="${CARGO_TARGET_DIR:-target}/release"
log=$(mktemp)
"$bin/p2p-signal" --listen 127.0.0.1:0 --stun 127.0.0.1:0 >"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
  [ "$(wc -l <"$log")" -ge 2 ] && break
  sleep 0.1
done
cat "$log"
url=$(sed -n 's/^signaling listening on //p' "$log")
stun=$(sed -n 's#^stun listening on udp://##p' "$log")

"$bin/examples/meet" "$url" "$stun"

if [ "${1:-}" = "--once" ]; then
  exit 0
fi
echo "== the server keeps running at $url (metrics: ${url/ws:/http:}/metrics); Ctrl-C stops it"
wait $server
