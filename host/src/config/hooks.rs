//! `[[plugins]]` and `[[scripts]]`: which WASM plugins and Lua scripts run on every transfer,
//! with their settings, grants and limits.
//!
//! ```toml
//! [[plugins]]
//! path = "plugins/out/compress.wasm"   # relative to this file's folder
//! settings = { level = "fast" }        # strings, numbers or booleans; the plugin gets strings
//! limits = { memory_mib = 64, deadline_ms = 500 }
//!
//! [[scripts]]
//! path = "scripts/route-by-type.lua"
//! settings = { no_extension = "misc" }
//! grants = { move_dirs = ["~/Downloads"], allow_os_time = false }
//! limits = { memory_mib = 16, instructions_per_call = 10_000_000, deadline_ms = 1000 }
//! ```
//!
//! A plugin can be granted nothing: contract `p2phost:plugin@0.1.0` gives plugins no WASI and no
//! import but `log`, so `[[plugins]]` has no `grants`.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::{ConfigError, Location, Source};
use crate::hooks::wasm::TICK;
use crate::hooks::{HookSpec, LuaConfig, LuaGrants, LuaLimits, WasmLimits};

/// One plugin or script from the file, and where the file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEntry {
    /// What to load, and how.
    pub spec: HookSpec,
    /// Where its `path` is written, for errors found when it is loaded.
    pub at: Location,
}

/// The most memory a plugin may be given, in MiB: far beyond any transfer plugin's need.
const PLUGIN_MEMORY_MIB: RangeInclusive<u64> = 2..=4096;
/// Bounds of a plugin call's deadline: at least one epoch tick, at most a minute.
const PLUGIN_DEADLINE_MS: RangeInclusive<u64> = (TICK.as_millis() as u64)..=60_000;
/// Bounds of a script state's memory, in MiB.
const SCRIPT_MEMORY_MIB: RangeInclusive<u64> = 1..=1024;
/// Bounds of a script call's instruction budget.
const SCRIPT_INSTRUCTIONS: RangeInclusive<u64> = 1_000..=10_000_000_000;
/// Bounds of a script call's deadline, as for a plugin's.
const SCRIPT_DEADLINE_MS: RangeInclusive<u64> = PLUGIN_DEADLINE_MS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    path: Spanned<String>,
    #[serde(default)]
    settings: BTreeMap<String, Spanned<Value>>,
    #[serde(default)]
    limits: RawPluginLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPluginLimits {
    memory_mib: Option<Spanned<u64>>,
    deadline_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScript {
    path: Spanned<String>,
    #[serde(default)]
    settings: BTreeMap<String, Spanned<Value>>,
    #[serde(default)]
    grants: RawScriptGrants,
    #[serde(default)]
    limits: RawScriptLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScriptGrants {
    #[serde(default)]
    allow_os_time: bool,
    #[serde(default)]
    move_dirs: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScriptLimits {
    memory_mib: Option<Spanned<u64>>,
    instructions_per_call: Option<Spanned<u64>>,
    deadline_ms: Option<Spanned<u64>>,
}

impl RawPlugin {
    pub(super) fn resolve(self, source: &Source<'_>) -> Result<HookEntry, ConfigError> {
        let mut limits = WasmLimits::default();
        if let Some(mib) = self.limits.memory_mib {
            let mib = within(source, &mib, PLUGIN_MEMORY_MIB, "limits.memory_mib", "MiB")?;
            limits.memory_bytes = mib_to_bytes(mib);
        }
        if let Some(ms) = self.limits.deadline_ms {
            let ms = within(source, &ms, PLUGIN_DEADLINE_MS, "limits.deadline_ms", "ms")?;
            limits.deadline = Duration::from_millis(ms);
        }
        Ok(HookEntry {
            at: source.locate(self.path.span().start),
            spec: HookSpec::Plugin {
                path: source.path(&self.path)?,
                settings: settings(source, self.settings)?.into_iter().collect(),
                limits,
            },
        })
    }
}

impl RawScript {
    pub(super) fn resolve(self, source: &Source<'_>) -> Result<HookEntry, ConfigError> {
        let mut limits = LuaLimits::default();
        if let Some(mib) = self.limits.memory_mib {
            let mib = within(source, &mib, SCRIPT_MEMORY_MIB, "limits.memory_mib", "MiB")?;
            limits.memory_bytes = mib_to_bytes(mib);
        }
        if let Some(count) = self.limits.instructions_per_call {
            limits.instructions_per_call = within(
                source,
                &count,
                SCRIPT_INSTRUCTIONS,
                "limits.instructions_per_call",
                "instructions",
            )?;
        }
        if let Some(ms) = self.limits.deadline_ms {
            let ms = within(source, &ms, SCRIPT_DEADLINE_MS, "limits.deadline_ms", "ms")?;
            limits.deadline = Duration::from_millis(ms);
        }
        let move_dirs = self
            .grants
            .move_dirs
            .iter()
            .map(|dir| source.path(dir))
            .collect::<Result<Vec<_>, _>>()?;
        let config = LuaConfig {
            settings: settings(source, self.settings)?,
            grants: LuaGrants {
                allow_os_time: self.grants.allow_os_time,
                move_dirs,
            },
            limits,
        };
        Ok(HookEntry {
            at: source.locate(self.path.span().start),
            spec: HookSpec::Script {
                path: source.path(&self.path)?,
                config,
            },
        })
    }
}

/// Settings as the hooks see them: strings. Numbers and booleans are written as TOML would.
fn settings(
    source: &Source<'_>,
    raw: BTreeMap<String, Spanned<Value>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    raw.into_iter()
        .map(|(key, value)| {
            let text = match value.get_ref() {
                Value::String(s) => s.clone(),
                Value::Integer(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(source.error(
                        value.span().start,
                        format!(
                            "setting {key:?} is {} {}; a setting is a string, a number or a boolean",
                            article(other.type_str()),
                            other.type_str()
                        ),
                    ));
                }
            };
            Ok((key, text))
        })
        .collect()
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// `value` if it lies in `range`, else an error at it naming the key and the range.
fn within(
    source: &Source<'_>,
    value: &Spanned<u64>,
    range: RangeInclusive<u64>,
    key: &str,
    unit: &str,
) -> Result<u64, ConfigError> {
    let v = *value.get_ref();
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(source.error(
            value.span().start,
            format!(
                "{key} = {v} is out of range: use {} to {} {unit}",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}
