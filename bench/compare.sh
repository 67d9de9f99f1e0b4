#!/usr/bin/env bash
# Side by side: p2phost against magic-wormhole, on this machine, over loopback, same files, same run.
#
# Each tool gets its own servers on 127.0.0.1 (p2p-signal with its STUN responder; the wormhole
# mailbox server and transit relay, installed from PyPI into a venv under the cache dir), then for
# every input the two tools take turns: the sender starts, prints its code, the receiver is started
# with that code and timed until it exits. Peak RSS comes from GNU time on each process; the copy is
# compared byte for byte with the source. Nothing is asserted about speed: failures are reported in
# the table and make the script exit 1.
#
#   bench/compare.sh                               # 256 MiB, 1 GiB and a folder of 1,000 small files
#   COMPARE_SIZES="64MiB" COMPARE_FILES=200 bench/compare.sh
#
# Environment: COMPARE_SIZES (random files, units B KiB MiB GiB; "" for none), COMPARE_FILES (files
# in the folder; 0 for no folder), COMPARE_TIMEOUT (seconds per transfer, default 600),
# COMPARE_CODE_DELAY (seconds from the code to starting the receiver, default 0),
# COMPARE_VENV (where magic-wormhole is installed), CARGO_TARGET_DIR, TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${COMPARE_SIZES-"256MiB 1GiB"}
FOLDER_FILES=${COMPARE_FILES:-1000}
TIMEOUT=${COMPARE_TIMEOUT:-600}
# Seconds between the code appearing and the receiver starting: 0 measures a script handing the
# code over at once; a person typing it takes seconds, which a sender can use (p2phost hashes then).
CODE_DELAY=${COMPARE_CODE_DELAY:-0}
VENV=${COMPARE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/p2phost/compare-venv}
# Pinned so that a run next month measures the same wormhole; change together with the docs.
WORMHOLE_PACKAGES="magic-wormhole==0.24.0 magic-wormhole-mailbox-server==0.8.0 magic-wormhole-transit-relay==0.5.0"
BIN="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/p2phost-compare.XXXXXX")
pids=()       # every background process this script started (servers, senders), for cleanup
failures=0

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*" >&2; }

forget_pid() { # after `wait`: a reaped id may be reused by another process, so cleanup must not kill it
  local keep=() pid
  for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  pids=("${keep[@]}")
}

calc() { awk "BEGIN { printf \"%.6f\", $* }"; } # floating point without bc: awk is in every Debian base

# ---------------------------------------------------------------------------------------------
# Setup

ensure_gnu_time() {
  # %M (peak RSS) needs GNU time, not the shell keyword.
  if [ -x /usr/bin/time ] && /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
    return
  fi
  say "installing GNU time (Debian package 'time')"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
  else
    sudo apt-get install -y -qq time >/dev/null
  fi
}

ensure_wormhole_venv() {
  # A stamp records what was installed, so a changed pin reinstalls and an unchanged one costs nothing.
  if [ -x "$VENV/bin/wormhole" ] && [ "$(cat "$VENV/.compare-stamp" 2>/dev/null)" = "$WORMHOLE_PACKAGES" ]; then
    return
  fi
  say "installing $WORMHOLE_PACKAGES into $VENV"
  python3 -m venv "$VENV" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  # shellcheck disable=SC2086 # the list is meant to split into packages
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $WORMHOLE_PACKAGES
  echo "$WORMHOLE_PACKAGES" >"$VENV/.compare-stamp"
}

build_p2phost() {
  say "building p2phost and p2p-signal (release)"
  cargo build --quiet --release -p p2phost -p p2p-signaling --bins
}

# Starts "$@" in the background with stdout+stderr in LOG and waits until LOG matches PATTERN.
start_server_and_wait() {
  local log=$1 pattern=$2
  shift 2
  "$@" >"$log" 2>&1 </dev/null &
  pids+=($!)
  for _ in $(seq 200); do
    grep -q "$pattern" "$log" 2>/dev/null && return
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start: $*" >&2
  cat "$log" >&2
  exit 1
}

start_p2p_signal() {
  start_server_and_wait "$work/signal.log" '^stun listening on ' \
    "$BIN/p2p-signal" --listen 127.0.0.1:0 --stun 127.0.0.1:0
  SIGNAL_URL=$(sed -n 's/^signaling listening on //p' "$work/signal.log")
  STUN="stun:$(sed -n 's#^stun listening on udp://##p' "$work/signal.log")"
}

start_wormhole_servers() {
  # Port 0 picks a free port; twisted logs the one it got ("… starting on PORT", JSON log lines).
  start_server_and_wait "$work/mailbox.log" 'PrivacyEnhancedSite starting on [0-9]' \
    "$VENV/bin/twist" wormhole-mailbox --port tcp:0:interface=127.0.0.1 --channel-db "$work/mailbox.sqlite"
  start_server_and_wait "$work/relay.log" 'ServerFactory starting on [0-9]' \
    "$VENV/bin/twist" transitrelay --port tcp:0:interface=127.0.0.1
  local mailbox_port relay_port
  mailbox_port=$(grep -o 'PrivacyEnhancedSite starting on [0-9]*' "$work/mailbox.log" | head -n 1 | grep -o '[0-9]*$')
  relay_port=$(grep -o 'ServerFactory starting on [0-9]*' "$work/relay.log" | head -n 1 | grep -o '[0-9]*$')
  WORMHOLE=("$VENV/bin/wormhole" --relay-url "ws://127.0.0.1:$mailbox_port/v1" --transit-helper "tcp:127.0.0.1:$relay_port")
}

# ---------------------------------------------------------------------------------------------
# Inputs

bytes_of() { # 256MiB -> 268435456
  local n=${1%%[A-Za-z]*} unit=${1##*[0-9]}
  case $unit in
    B | "") echo "$n" ;;
    KiB) echo $((n * 1024)) ;;
    MiB) echo $((n * 1024 * 1024)) ;;
    GiB) echo $((n * 1024 * 1024 * 1024)) ;;
    *) echo "unknown unit in $1 (B, KiB, MiB, GiB)" >&2; exit 2 ;;
  esac
}

make_random_file() { # PATH BYTES; random so that nothing gains from compression (wormhole zips folders)
  head -c "$2" /dev/urandom >"$1"
}

make_small_files_folder() { # PATH COUNT: 1-8 KiB each, spread over three levels of folders
  local root=$1 count=$2 i dir
  RANDOM=4242 # same sizes and layout every run
  for ((i = 0; i < count; i++)); do
    dir="$root/d$((i % 8))/e$((i % 5))"
    [ $((i % 3)) -eq 0 ] && dir="$dir/f$((i % 4))"
    mkdir -p "$dir"
    make_random_file "$dir/file-$i.bin" $((1024 + RANDOM % 7169))
  done
}

tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# ---------------------------------------------------------------------------------------------
# One transfer

# Waits up to TIMEOUT seconds for FILE to match PATTERN while PID lives; prints the first match.
wait_for_code() {
  local file=$1 sed_expr=$2 pid=$3 code
  for _ in $(seq $((TIMEOUT * 20))); do
    code=$(sed -n "$sed_expr" "$file" 2>/dev/null | head -n 1)
    [ -n "$code" ] && { echo "$code"; return; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

same_content() { # SOURCE COPY: a file with cmp, a folder with diff -r
  if [ -d "$1" ]; then diff -r -q "$1" "$2" >/dev/null 2>&1; else cmp -s "$1" "$2"; fi
}

# transfer TOOL LABEL INPUT BYTES: one send/receive, appends a row to the results.
transfer() {
  local tool=$1 label=$2 input=$3 bytes=$4
  local dir="$work/$tool" out="$work/$tool/out" code code_s secs sync_s rc_recv=0 rc_send=0 same=no note=""
  rm -rf "$dir"
  mkdir -p "$out"
  # Write back the previous transfer's dirty pages now, not during this one.
  sync

  local send_cmd recv_cmd code_expr
  case $tool in
    p2phost)
      send_cmd=("$BIN/p2phost" send --json --server "$SIGNAL_URL" --stun "$STUN" "$input")
      code_expr='/"event":"code"/s/.*"code":"\([^"]*\)".*/\1/p'
      ;;
    wormhole)
      send_cmd=("${WORMHOLE[@]}" send --hide-progress --no-qr "$input")
      code_expr='s/^Wormhole code is: \([^ ]*\).*/\1/p'
      ;;
  esac

  # timeout puts the tool in its own process group and kills the group when it fires or is killed.
  local t_send t_code t_recv t_end
  t_send=$(date +%s.%N)
  timeout "$TIMEOUT" /usr/bin/time -f '%M' -o "$dir/send.rss" "${send_cmd[@]}" >"$dir/send.out" 2>&1 </dev/null &
  local sender=$!
  pids+=("$sender")
  if ! code=$(wait_for_code "$dir/send.out" "$code_expr" "$sender"); then
    note="sender showed no code"
    kill "$sender" 2>/dev/null || true
    wait "$sender" || true
  else
    t_code=$(date +%s.%N)
    sleep "$CODE_DELAY"
    t_recv=$(date +%s.%N)
    case $tool in
      p2phost) recv_cmd=("$BIN/p2phost" receive --json --yes --server "$SIGNAL_URL" --stun "$STUN" --out "$out" "$code") ;;
      wormhole) recv_cmd=("${WORMHOLE[@]}" receive --accept-file --hide-progress -o "$out" "$code") ;;
    esac
    # In the background and waited for, so that Ctrl-C or a TERM reaches the trap at once (bash
    # delays traps until a foreground child exits, and timeout's group does not get the Ctrl-C).
    timeout "$TIMEOUT" /usr/bin/time -f '%M' -o "$dir/recv.rss" "${recv_cmd[@]}" >"$dir/recv.out" 2>&1 </dev/null &
    local receiver=$!
    pids+=("$receiver")
    wait "$receiver" || rc_recv=$?
    t_end=$(date +%s.%N)
    forget_pid "$receiver"
    # p2phost syncs each file before it reports done; wormhole leaves the writes in the page cache.
    # Timing a sync right after the receiver shows what that left to write back.
    sync
    sync_s=$(calc "$(date +%s.%N) - $t_end")
    wait "$sender" || rc_send=$?
    code_s=$(calc "$t_code - $t_send")
    secs=$(calc "$t_end - $t_recv")
    if [ "$rc_recv" -ne 0 ] || [ "$rc_send" -ne 0 ]; then
      note="exit status: receiver $rc_recv, sender $rc_send"
    fi
    if same_content "$input" "$out/$(basename "$input")"; then same=yes; fi
  fi
  forget_pid "$sender"
  if [ -n "$note" ] || [ "$same" != yes ]; then
    failures=$((failures + 1))
    {
      echo "!! $label $tool failed: ${note:-the copy differs from the source}"
      echo "-- sender output (last lines):"; tail -n 5 "$dir/send.out" 2>/dev/null || true
      echo "-- receiver output (last lines):"; tail -n 5 "$dir/recv.out" 2>/dev/null || true
    } >&2
  fi
  # Which path wormhole's transit took: direct TCP ("->tcp:") or through the relay ("->relay:").
  local path=""
  [ "$tool" = wormhole ] && path=$(grep -o 'Receiving (->[a-z]*' "$dir/recv.out" 2>/dev/null | sed 's/.*->//' | head -n 1)
  [ "$tool" = p2phost ] && path=webrtc

  R_LABEL+=("$label")
  R_TOOL+=("$tool")
  R_SECS+=("${secs:-}")
  R_MBPS+=("$([ -n "${secs:-}" ] && calc "$bytes / $secs / 1000000" || echo "")")
  R_CODE+=("${code_s:-}")
  R_SYNC+=("${sync_s:-}")
  R_RSS_SEND+=("$(cat "$dir/send.rss" 2>/dev/null | tail -n 1)")
  R_RSS_RECV+=("$(cat "$dir/recv.rss" 2>/dev/null | tail -n 1)")
  R_SAME+=("$same")
  R_PATH+=("${path:-?}")
  # Keep the disk small: a 1 GiB input would otherwise stay around twice.
  rm -rf "$dir"
}

# ---------------------------------------------------------------------------------------------
# Report

mib() { [ -n "$1" ] && printf '%.1f MiB' "$(calc "$1 / 1024")" || printf -- '-'; }
num() { [ -n "$1" ] && printf "%.${2}f" "$1" || printf -- '-'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && printf '%.2fx' "$(calc "$1 / $2")" || printf -- '-'; }

print_table() {
  local i j
  printf '%-16s %-9s %8s %9s %8s %8s %11s %11s %10s %7s\n' \
    input tool seconds 'MB/s' '+sync s' 'to code' 'RSS send' 'RSS recv' identical path
  for ((i = 0; i < ${#R_TOOL[@]}; i++)); do
    printf '%-16s %-9s %8s %9s %8s %8s %11s %11s %10s %7s\n' "${R_LABEL[i]}" "${R_TOOL[i]}" \
      "$(num "${R_SECS[i]}" 2)" "$(num "${R_MBPS[i]}" 1)" "$(num "${R_SYNC[i]}" 2)" "$(num "${R_CODE[i]}" 2)" \
      "$(mib "${R_RSS_SEND[i]}")" "$(mib "${R_RSS_RECV[i]}")" "${R_SAME[i]}" "${R_PATH[i]}"
    # After the wormhole row of an input, the ratio p2phost / wormhole for the same input.
    if [ "${R_TOOL[i]}" = wormhole ] && [ "$i" -gt 0 ] && [ "${R_TOOL[i - 1]}" = p2phost ]; then
      j=$((i - 1))
      printf '%-16s %-9s %8s %9s %8s %8s %11s %11s\n' "${R_LABEL[i]}" 'p2p/wh' \
        "$(ratio "${R_SECS[j]}" "${R_SECS[i]}")" "$(ratio "${R_MBPS[j]}" "${R_MBPS[i]}")" '' \
        "$(ratio "${R_CODE[j]}" "${R_CODE[i]}")" \
        "$(ratio "${R_RSS_SEND[j]}" "${R_RSS_SEND[i]}")" "$(ratio "${R_RSS_RECV[j]}" "${R_RSS_RECV[i]}")"
    fi
  done
}

# ---------------------------------------------------------------------------------------------

main() {
  R_LABEL=() R_TOOL=() R_SECS=() R_MBPS=() R_CODE=() R_SYNC=() R_RSS_SEND=() R_RSS_RECV=() R_SAME=() R_PATH=()
  ensure_gnu_time
  ensure_wormhole_venv
  build_p2phost
  start_p2p_signal
  start_wormhole_servers

  say "making the inputs in $work/in"
  mkdir -p "$work/in"
  local inputs=() labels=() size
  for size in $SIZES; do
    make_random_file "$work/in/random-$size.bin" "$(bytes_of "$size")"
    inputs+=("$work/in/random-$size.bin")
    labels+=("$size file")
  done
  if [ "$FOLDER_FILES" -gt 0 ]; then
    make_small_files_folder "$work/in/small-files" "$FOLDER_FILES"
    inputs+=("$work/in/small-files")
    labels+=("$FOLDER_FILES small files")
  fi

  local i input label bytes
  for ((i = 0; i < ${#inputs[@]}; i++)); do
    input=${inputs[i]} label=${labels[i]}
    bytes=$(tree_bytes "$input")
    say "$label ($bytes bytes): p2phost"
    transfer p2phost "$label" "$input" "$bytes"
    say "$label ($bytes bytes): magic-wormhole"
    transfer wormhole "$label" "$input" "$bytes"
  done

  # The build is of the working tree: say when it differs from the commit named.
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
  [ -n "$(git status --porcelain -- host signaling Cargo.toml Cargo.lock 2>/dev/null)" ] && commit="$commit + uncommitted changes"
  echo
  echo "p2phost vs magic-wormhole on loopback, $(date -u +%Y-%m-%d), commit $commit," \
    "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), receiver started ${CODE_DELAY} s after the code"
  echo "p2phost $("$BIN/p2phost" --version | cut -d' ' -f2), magic-wormhole $("$VENV/bin/wormhole" --version 2>&1 | grep -o '[0-9][0-9.]*' | head -n 1)"
  print_table
  if [ "$failures" -gt 0 ]; then
    echo "$failures transfer(s) failed (see the messages above)"
    exit 1
  fi
}

main "$@"
