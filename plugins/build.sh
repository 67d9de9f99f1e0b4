#!/usr/bin/env bash
# Builds every example plugin to a WASM component: plugins/out/NAME.wasm (or $P2P_PLUGINS_OUT).
#
#   bash plugins/build.sh
#
# 1. The plugins (crates under plugins/, SDK in plugin-api/) are built for wasm32-unknown-unknown:
#    - with rustup's toolchain when `rustup target list --installed` has wasm32-unknown-unknown
#      (`rustup target add wasm32-unknown-unknown` once);
#    - otherwise with Debian's rustc-web, cargo-web, rust-web-src and lld-22, installed here with
#      apt-get when missing (root, or sudo), building std for the target with -Zbuild-std.
# 2. plugins/componentize (a small host-target tool on the wit-component crate) wraps each core
#    module into a component, validates it and checks it targets the p2phost:plugin world.
#
# Environment:
#   P2P_PLUGINS_OUT     where the components go (default: plugins/out)
#   P2P_PLUGINS_TARGET  cargo's target dir (default: ${XDG_CACHE_HOME:-~/.cache}/p2phost/plugins-target,
#                       outside the clone so a fresh clone builds warm)
#   P2P_PLUGINS_TOOLCHAIN  "rustup" or "debian" to force a toolchain (default: pick as above)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${P2P_PLUGINS_OUT:-$here/out}"
target="${P2P_PLUGINS_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/p2phost/plugins-target}"
wasm_target=wasm32-unknown-unknown
plugins=(noop compress scan hostile)

say() { printf 'plugins/build.sh: %s\n' "$*" >&2; }

pick_toolchain() {
    if [[ -n "${P2P_PLUGINS_TOOLCHAIN:-}" ]]; then
        echo "$P2P_PLUGINS_TOOLCHAIN"
    elif command -v rustup >/dev/null 2>&1 \
        && rustup target list --installed 2>/dev/null | grep -qx "$wasm_target"; then
        echo rustup
    else
        echo debian
    fi
}

debian_packages() {
    local missing=() pkg
    for pkg in rustc-web cargo-web rust-web-src lld-22; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no wasm32 toolchain: run 'rustup target add $wasm_target' (or install Debian's ${missing[*]})"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    # `apt-get update` first if the package lists do not know them yet.
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -q
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build_plugins() {
    local toolchain="$1"
    local args=(build --release --target "$wasm_target" --workspace --locked
        --manifest-path "$here/Cargo.toml" --target-dir "$target")
    case "$toolchain" in
        rustup)
            cargo "${args[@]}"
            ;;
        debian)
            debian_packages
            # Debian's rustc, not rustup's from PATH (which would ask for rust-src); std built for
            # the target (Debian ships none); wasm-ld-22 as the linker (no rust-lld here).
            RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
                CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
                /usr/bin/cargo "${args[@]}" -Zbuild-std=std,panic_abort
            ;;
        *)
            say "P2P_PLUGINS_TOOLCHAIN must be rustup or debian, not $toolchain"
            exit 2
            ;;
    esac
}

# The componentize tool runs on this machine: the host toolchain (rustup's cargo if there is one,
# else Debian's).
build_componentize() {
    local cargo=cargo
    command -v cargo >/dev/null 2>&1 || cargo=/usr/bin/cargo
    "$cargo" build --release --locked --manifest-path "$here/componentize/Cargo.toml" \
        --target-dir "$target/host"
}

main() {
    local toolchain
    toolchain="$(pick_toolchain)"
    say "toolchain: $toolchain; target dir: $target"
    mkdir -p "$target"
    build_plugins "$toolchain"
    build_componentize
    local cores=()
    for name in "${plugins[@]}"; do
        cores+=("$target/$wasm_target/release/p2p_plugin_${name}.wasm")
    done
    "$target/host/release/componentize" "$out" "${cores[@]}" >/dev/null
    say "components in $out:"
    for name in "${plugins[@]}"; do
        printf '%s\n' "$out/$name.wasm"
    done
}

main "$@"
