//! The host's config file (`share.toml`): TOML read with serde, unknown keys refused, and every
//! error located at the line and column of the offending text, so the operator can fix it.
//!
//! It holds the transfer hooks, `[[plugins]]` and `[[scripts]]` (see [`hooks`]), and the daemon's
//! identity, signaling server, trusted peers, watch folders and routing rules (see [`daemon`]).
//! Paths in it are relative to the file's own folder, and `~/` means the home folder. The command
//! line adds to it and overrides it: `--plugin`/`--script` run after the config's hooks,
//! `--setting` replaces a config setting of the same name.

pub mod daemon;
pub mod hooks;
mod location;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use daemon::{FolderEntry, FolderMode, IdentityConfig, PeerEntry, RuleEntry, SignalingConfig};
pub use hooks::HookEntry;
pub use location::Location;

use daemon::{RawFolder, RawIdentity, RawPeer, RawRule, RawSignaling};
use hooks::{RawPlugin, RawScript};

/// A config file, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Where the daemon's certificate, key and state live.
    pub identity: IdentityConfig,
    /// The signaling server.
    pub signaling: SignalingConfig,
    /// The trusted peers.
    pub peers: Vec<PeerEntry>,
    /// The watched folders.
    pub folders: Vec<FolderEntry>,
    /// The routing rules.
    pub rules: Vec<RuleEntry>,
    /// The plugins and scripts, in the order the file lists them.
    pub hooks: Vec<HookEntry>,
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something in it is wrong, at this place.
    #[error("{at}: {message}{snippet}")]
    Invalid {
        /// Where: file, line and column.
        at: Location,
        /// What is wrong, and what would be right.
        message: String,
        /// The offending line with a caret under the column (empty when there is no line).
        snippet: String,
    },
}

/// The file as serde reads it, before paths are resolved and values checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    signaling: RawSignaling,
    #[serde(default)]
    peers: Vec<RawPeer>,
    #[serde(default)]
    folders: Vec<Spanned<RawFolder>>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    plugins: Vec<Spanned<RawPlugin>>,
    #[serde(default)]
    scripts: Vec<Spanned<RawScript>>,
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks `text` as if read from `path`: errors name `path`, relative paths in it are
    /// relative to `path`'s folder.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let source = Source::new(text, path);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |span| span.start);
            source.error(offset, e.message().trim_end().to_owned())
        })?;
        let mut hooks = Vec::with_capacity(raw.plugins.len() + raw.scripts.len());
        for plugin in raw.plugins {
            let start = plugin.span().start;
            hooks.push((start, plugin.into_inner().resolve(&source)?));
        }
        for script in raw.scripts {
            let start = script.span().start;
            hooks.push((start, script.into_inner().resolve(&source)?));
        }
        // Plugins and scripts run in the order the file lists them, even interleaved.
        hooks.sort_by_key(|(start, _)| *start);
        let peers = daemon::peers(&source, raw.peers)?;
        Ok(Self {
            identity: raw.identity.resolve(&source)?,
            signaling: raw.signaling.resolve(&source)?,
            folders: daemon::folders(&source, raw.folders, &peers)?,
            rules: daemon::rules(&source, raw.rules, &peers)?,
            peers,
            hooks: hooks.into_iter().map(|(_, entry)| entry).collect(),
        })
    }
}

/// The text being checked, to turn byte offsets into located errors and relative paths into
/// real ones.
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
    /// The folder relative paths are resolved against.
    base: PathBuf,
}

impl<'a> Source<'a> {
    fn new(text: &'a str, path: &'a Path) -> Self {
        let base = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        // Absolute, so that paths mean the same whatever the working folder becomes (and read
        // well in logs and status); symbolic links are left as written.
        let base = std::path::absolute(&base).unwrap_or(base);
        Self { text, path, base }
    }

    fn locate(&self, offset: usize) -> Location {
        Location::of(self.path, self.text, offset)
    }

    fn error(&self, offset: usize, message: String) -> ConfigError {
        ConfigError::Invalid {
            at: self.locate(offset),
            message,
            snippet: location::snippet(self.text, offset),
        }
    }

    /// A path from the file: `~/` is the home folder, a relative path is relative to the file.
    fn path(&self, text: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let value = text.get_ref();
        if value.is_empty() {
            return Err(self.error(text.span().start, "the path is empty".to_owned()));
        }
        if let Some(rest) = value.strip_prefix("~/") {
            let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
                return Err(self.error(
                    text.span().start,
                    format!("{value:?} starts with ~/ but HOME is not set; write the full path"),
                ));
            };
            return Ok(PathBuf::from(home).join(rest));
        }
        Ok(self.base.join(value))
    }
}
