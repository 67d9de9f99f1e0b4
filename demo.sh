#!/usr/bin/env bash
# The main job, on one machine: starts the signaling server (WebSocket + embedded STUN), shows two
# peers meeting through it, sends a folder with `p2phost send` / `p2phost receive` and checks that
# the copy is identical, sends another through a WASM plugin (compress) and Lua scripts (size-limit,
# notify, route-by-type from a config file), runs two daemons (`p2phost run`) that sync a watched
# folder through the compress plugin and the route-by-type script, then keeps serving until Ctrl-C.
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

echo
echo "== the same with hooks: a WASM plugin and Lua scripts run on every transfer"
echo "   (building the example plugins to WASM: bash plugins/build.sh)"
bash plugins/build.sh >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
plugins="${P2P_PLUGINS_OUT:-$PWD/plugins/out}"
mkdir -p "$work/outbox/reports" "$work/sorted"
for i in $(seq 1 40000); do echo "line $i: the quick brown fox jumps over the lazy dog"; done >"$work/outbox/reports/week.txt"
head -c 300000 /dev/urandom >"$work/outbox/photo.JPG"
head -c 30000000 /dev/urandom >"$work/outbox/disk.iso"
echo "just a readme" >"$work/outbox/README"
# The receiver's hooks come from a config file: the compress plugin (to decode), route-by-type.lua
# with the one grant it needs (moving files inside the receiving folder), then notify.lua, which
# is told where route-by-type put each file.
cat >"$work/receive.toml" <<EOF
[[plugins]]
path = "$plugins/compress.wasm"

[[scripts]]
path = "$PWD/scripts/route-by-type.lua"
grants = { move_dirs = ["sorted"] }

[[scripts]]
path = "$PWD/scripts/notify.lua"
EOF
echo "-- receive.toml:"
sed 's/^/   /' "$work/receive.toml"
echo "-- sender: p2phost send --plugin compress.wasm --script size-limit.lua --setting size-limit.max_bytes=10000000 outbox"
"$bin/p2phost" send --server "$url" --stun "stun:$stun" \
  --plugin "$plugins/compress.wasm" --script scripts/size-limit.lua --setting size-limit.max_bytes=10000000 \
  "$work/outbox" >"$work/send2.out" 2>"$work/send2.err" &
sender=$!
for _ in $(seq 100); do grep -q '^code: ' "$work/send2.out" 2>/dev/null && break; sleep 0.1; done
sed 's/^/   /' "$work/send2.err"
code=$(sed -n 's/^code: //p' "$work/send2.out")
echo "-- receiver: p2phost receive --config receive.toml --yes --out sorted $code"
RUST_LOG="warn,p2phost::hooks=info" "$bin/p2phost" receive --server "$url" --stun "stun:$stun" \
  --config "$work/receive.toml" --yes --out "$work/sorted" "$code" 2>&1 |
  sed -e 's/^.*INFO [a-z0-9_:]*: /log: /' -e 's/^/   /'
wait $sender
sed -n 's/^sent/   sender: sent/p' "$work/send2.out"
echo "-- what arrived, sorted by route-by-type.lua:"
(cd "$work/sorted" && find . -type f | sort | sed 's/^/   /')
cmp "$work/outbox/reports/week.txt" "$work/sorted/txt/week.txt" &&
  cmp "$work/outbox/photo.JPG" "$work/sorted/jpg/photo.JPG" &&
  cmp "$work/outbox/README" "$work/sorted/other/README" &&
  [ ! -e "$work/sorted/iso" ] &&
  echo "== identical copies, sorted by type; disk.iso left out by size-limit.lua; the text went compressed"

echo
echo "== the daemon: two hosts keep a folder in sync on their own (examples/demo-a.toml, demo-b.toml)"
d="$work/daemons"
"$bin/p2phost" init --config "$d/a/share.toml" >/dev/null
"$bin/p2phost" init --config "$d/b/share.toml" >/dev/null
id_a=$("$bin/p2phost" id --config "$d/a/share.toml")
id_b=$("$bin/p2phost" id --config "$d/b/share.toml")
echo "   host A: $id_a (serves signaling, sends its drop/ folder through compress.wasm)"
echo "   host B: $id_b (receives into sorted/, route-by-type.lua sorts by extension)"
fill() { sed -e "s#@ROOT@/plugins/out#$plugins#" -e "s#@ROOT@#$PWD#" -e "s#@A_ID@#$id_a#" \
  -e "s#@B_ID@#$id_b#" -e "s#@URL@#${daemon_url:-}#" -e "s#@STUN@#${daemon_stun:-}#" "$1"; }
fill examples/demo-a.toml >"$d/a/share.toml"
RUST_LOG="warn,p2phost=info" "$bin/p2phost" run --config "$d/a/share.toml" 2>"$d/a.log" &
daemon_a=$!
trap 'kill $server $daemon_a ${daemon_b:-} 2>/dev/null; wait $server 2>/dev/null; rm -rf "$log" "$work"' EXIT
for _ in $(seq 100); do grep -q 'serving signaling' "$d/a.log" && break; sleep 0.1; done
daemon_url=$(sed -n 's/.*serving signaling and STUN url=\([^ ]*\) .*/\1/p' "$d/a.log")
daemon_stun=$(sed -n 's/.*serving signaling and STUN url=[^ ]* stun=\([^ ]*\).*/\1/p' "$d/a.log")
fill examples/demo-b.toml >"$d/b/share.toml"
RUST_LOG="warn,p2phost=info" "$bin/p2phost" run --config "$d/b/share.toml" 2>"$d/b.log" &
daemon_b=$!
for _ in $(seq 100); do grep -q 'online' "$d/a.log" && grep -q 'online' "$d/b.log" && break; sleep 0.1; done
echo "-- both online; dropping three files into A's drop/ folder"
mkdir -p "$d/a/drop/notes"
for i in $(seq 1 20000); do echo "entry $i: the daemon syncs this on its own"; done >"$d/a/drop/notes/journal.txt"
head -c 200000 /dev/urandom >"$d/a/drop/cat.JPG"
echo "no extension here" >"$d/a/drop/README"
for _ in $(seq 300); do
  [ -f "$d/b/sorted/txt/journal.txt" ] && [ -f "$d/b/sorted/jpg/cat.JPG" ] && [ -f "$d/b/sorted/other/README" ] && break
  sleep 0.1
done
sleep 0.5
echo "-- what the daemons said:"
sed -e 's/^[^ ]* *INFO [a-z0-9_:]*: /   A: /' -e 's/^[^ ]* *WARN [a-z0-9_:]*: /   A: warning: /' "$d/a.log"
sed -e 's/^[^ ]* *INFO [a-z0-9_:]*: /   B: /' -e 's/^[^ ]* *WARN [a-z0-9_:]*: /   B: warning: /' "$d/b.log"
echo "-- p2phost status on B:"
"$bin/p2phost" status --config "$d/b/share.toml" | sed 's/^/   /'
echo "-- what B's folder holds now:"
(cd "$d/b/sorted" && find . -type f | sort | sed 's/^/   /')
cmp "$d/a/drop/notes/journal.txt" "$d/b/sorted/txt/journal.txt" &&
  cmp "$d/a/drop/cat.JPG" "$d/b/sorted/jpg/cat.JPG" &&
  cmp "$d/a/drop/README" "$d/b/sorted/other/README" &&
  echo "== synced by the daemons, identical, sorted by route-by-type.lua on B"
kill -TERM "$daemon_a" "$daemon_b"
wait "$daemon_a" "$daemon_b" 2>/dev/null || true

if [ "${1:-}" = "--once" ]; then
  exit 0
fi
echo "== the server keeps running at $url (metrics: ${url/ws:/http:}/metrics); Ctrl-C stops it"
wait $server
