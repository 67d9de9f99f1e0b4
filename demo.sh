#!/usr/bin/env bash
# The main job, on one machine: starts the signaling server (WebSocket + embedded STUN), shows two
# peers meeting through it, sends a folder with `p2phost send` / `p2phost receive` and checks that
# the copy is identical, then keeps serving until Ctrl-C.
# `./demo.sh --once` stops after the demonstration.
set -euo pipefail
cd "$(dirname "$0")"

echo "== building (the first build takes a few minutes)"
cargo build --quiet --release -p p2p-signaling --bin p2p-signal --example meet
cargo build --quiet --release -p p2phost --bin p2phost

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

echo "== sending a folder with p2phost"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$log" "$work"' EXIT
mkdir -p "$work/photos/2026/empty" "$work/inbox"
head -c 20000000 /dev/urandom >"$work/photos/big.bin"
for i in $(seq 1 20); do echo "note $i" >"$work/photos/2026/note-$i.txt"; done
"$bin/p2phost" send --server "$url" --stun "stun:$stun" "$work/photos" >"$work/send.out" &
sender=$!
for _ in $(seq 100); do grep -q '^code: ' "$work/send.out" 2>/dev/null && break; sleep 0.1; done
code=$(sed -n 's/^code: //p' "$work/send.out")
echo "sender shows: code: $code"
"$bin/p2phost" receive --server "$url" --stun "stun:$stun" --yes --out "$work/inbox" "$code"
wait $sender
tail -n 1 "$work/send.out"
diff -r "$work/photos" "$work/inbox/photos" && echo "== the copy in $work/inbox is identical"

if [ "${1:-}" = "--once" ]; then
  exit 0
fi
echo "== the server keeps running at $url (metrics: ${url/ws:/http:}/metrics); Ctrl-C stops it"
wait $server
