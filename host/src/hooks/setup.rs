//! From what the operator asked for (a plugin or script file with its settings, grants and limits)
//! to loaded [`HookFactory`]s, whether the request came from the command line or a config file.

use std::path::PathBuf;

use super::{
    HookError, HookFactory, LuaConfig, LuaScript, PluginEngine, WasmError, WasmLimits, WasmPlugin,
};

/// One plugin or script the operator asked for, not loaded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookSpec {
    /// A WASM component.
    Plugin {
        /// Its file.
        path: PathBuf,
        /// Given to its `configure` at the start of every transfer, in this order.
        settings: Vec<(String, String)>,
        /// What each of its instances may use.
        limits: WasmLimits,
    },
    /// A Lua script.
    Script {
        /// Its file.
        path: PathBuf,
        /// Its settings, grants and limits.
        config: LuaConfig,
    },
}

impl HookSpec {
    /// The file to load.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Plugin { path, .. } | Self::Script { path, .. } => path,
        }
    }

    /// Sets `key` to `value` in its settings, replacing a value it had (the command line's
    /// `--setting` over a config file's).
    pub fn set(&mut self, key: &str, value: &str) {
        match self {
            Self::Plugin { settings, .. } => match settings.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => value.clone_into(v),
                None => settings.push((key.to_owned(), value.to_owned())),
            },
            Self::Script { config, .. } => {
                config.settings.insert(key.to_owned(), value.to_owned());
            }
        }
    }

    /// Reads, compiles and checks it (a plugin is compiled with `engine`, made on first need and
    /// shared by the plugins of one [`load_all`]).
    pub fn load(
        &self,
        engine: &mut Option<PluginEngine>,
    ) -> Result<Box<dyn HookFactory>, LoadError> {
        match self {
            Self::Plugin {
                path,
                settings,
                limits,
            } => {
                let engine = match engine {
                    Some(engine) => engine,
                    None => engine.insert(PluginEngine::shared()?),
                };
                let plugin = WasmPlugin::load(engine, path, settings.clone(), *limits)?;
                Ok(Box::new(plugin))
            }
            Self::Script { path, config } => Ok(Box::new(LuaScript::load(path, config.clone())?)),
        }
    }
}

/// Why a plugin or script could not be loaded; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A plugin: unreadable, not a component, another contract, or failing to describe itself.
    #[error(transparent)]
    Plugin(#[from] WasmError),
    /// A script: unreadable, not valid Lua, or failing at its top level.
    #[error(transparent)]
    Script(#[from] HookError),
}

/// Loads every spec, in order; the first failure stops and says which one.
pub fn load_all(specs: &[HookSpec]) -> Result<Vec<Box<dyn HookFactory>>, LoadError> {
    let mut engine = None;
    specs.iter().map(|spec| spec.load(&mut engine)).collect()
}
