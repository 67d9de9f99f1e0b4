//! Host bindings generated from the WIT contract in `plugin-api/wit` (world `p2phost:plugin/plugin`).
//!
//! Generated code lives alone here so the lints that hold for hand-written code (docs on every
//! public item) do not apply to it; nothing outside `hooks::wasm` sees these types.

#![allow(missing_docs, unreachable_pub, clippy::use_self)]

wasmtime::component::bindgen!({
    path: "../plugin-api/wit",
    world: "p2phost:plugin/plugin",
});
