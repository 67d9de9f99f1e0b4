//! The daemon's tables: `[identity]`, `[signaling]`, `[[peers]]`, `[[folders]]` and `[[rules]]`.
//!
//! ```toml
//! [identity]
//! dir = "~/.local/share/p2phost"      # certificate, key and state
//!
//! [signaling]
//! url = "ws://127.0.0.1:8787"         # a signaling server to use, or
//! serve = "127.0.0.1:8787"            # run one (with STUN) inside the daemon
//!
//! [[peers]]
//! name = "laptop"
//! id = "MFZWI3D-…"                    # `p2phost id` on that machine
//!
//! [[folders]]
//! path = "~/Share/photos"
//! id = "photos"                       # what the peers call it; default: the folder's name
//! peers = ["laptop"]
//! mode = "send-receive"               # "send" | "receive" | "send-receive"
//! ignore = ["*.tmp", "cache/**"]
//!
//! [[rules]]
//! match = "*.raw"
//! to = ["laptop"]
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Location, Source};
use crate::identity::PeerId;
use crate::sync::Glob;

/// Where the daemon keeps its identity and state, when the file does not say.
pub const DEFAULT_IDENTITY_DIR: &str = "~/.local/share/p2phost";

/// `[identity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// The folder of the certificate, its key and the daemon's state (queue, index, control
    /// socket).
    pub dir: PathBuf,
}

/// `[signaling]`: which server introduces the peers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalingConfig {
    /// The server's URL (`ws://` or `wss://`); with `serve` and no `url`, the served one.
    pub url: Option<String>,
    /// Run a signaling server (and its STUN responder) inside the daemon, on this address.
    pub serve: Option<SocketAddr>,
    /// The STUN server; by default the signaling server's host, port 3478.
    pub stun: Option<String>,
}

/// A trusted peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerEntry {
    /// What the config's folders and rules call it.
    pub name: String,
    /// The id of its certificate.
    pub id: PeerId,
}

/// Which way a folder syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderMode {
    /// Local changes go to the peers; nothing is accepted from them.
    Send,
    /// Files from the peers are accepted; local changes stay local.
    Receive,
    /// Both.
    SendReceive,
}

impl FolderMode {
    /// Whether local changes are sent.
    pub fn sends(self) -> bool {
        matches!(self, Self::Send | Self::SendReceive)
    }

    /// Whether the peers' files are accepted.
    pub fn receives(self) -> bool {
        matches!(self, Self::Receive | Self::SendReceive)
    }
}

/// A watched folder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FolderEntry {
    /// The folder.
    pub path: PathBuf,
    /// What the peers call it: files travel tagged with it, and a peer stores them in its folder
    /// of the same id.
    pub id: String,
    /// The peers it syncs with (names from `[[peers]]`).
    pub peers: Vec<String>,
    /// Which way.
    pub mode: FolderMode,
    /// Files not to sync, beyond the built-in `.part` and temporary files.
    pub ignore: Vec<Glob>,
    /// Where the file defines it.
    pub at: Location,
}

/// A routing rule: files matching `pattern`, in any sending folder, also go to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleEntry {
    /// Which files.
    pub pattern: Glob,
    /// To which peers (names from `[[peers]]`).
    pub to: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    dir: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSignaling {
    url: Option<Spanned<String>>,
    serve: Option<Spanned<String>>,
    stun: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    name: Spanned<String>,
    id: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFolder {
    path: Spanned<String>,
    id: Option<Spanned<String>>,
    #[serde(default)]
    peers: Vec<Spanned<String>>,
    mode: Option<Spanned<FolderMode>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    to: Vec<Spanned<String>>,
}

impl RawIdentity {
    pub(super) fn resolve(self, source: &Source<'_>) -> Result<IdentityConfig, ConfigError> {
        let dir = match &self.dir {
            Some(dir) => source.path(dir)?,
            None => source.path(&Spanned::new(0..0, DEFAULT_IDENTITY_DIR.to_owned()))?,
        };
        Ok(IdentityConfig { dir })
    }
}

impl RawSignaling {
    pub(super) fn resolve(self, source: &Source<'_>) -> Result<SignalingConfig, ConfigError> {
        if let Some(url) = &self.url {
            let (scheme, rest) = url.get_ref().split_once("://").unwrap_or(("", ""));
            if !matches!(scheme, "ws" | "wss") || rest.is_empty() {
                return Err(source.error(
                    url.span().start,
                    format!(
                        "url = {:?}: expected a ws:// or wss:// URL, like ws://127.0.0.1:8787",
                        url.get_ref()
                    ),
                ));
            }
        }
        let serve = match &self.serve {
            Some(addr) => Some(addr.get_ref().parse::<SocketAddr>().map_err(|_| {
                source.error(
                    addr.span().start,
                    format!(
                        "serve = {:?}: expected an address and port, like 127.0.0.1:8787 or 0.0.0.0:8787",
                        addr.get_ref()
                    ),
                )
            })?),
            None => None,
        };
        if let Some(stun) = &self.stun
            && !(stun.get_ref().starts_with("stun:") || stun.get_ref().starts_with("stuns:"))
        {
            return Err(source.error(
                stun.span().start,
                format!(
                    "stun = {:?}: expected a stun: URL, like stun:127.0.0.1:3478",
                    stun.get_ref()
                ),
            ));
        }
        Ok(SignalingConfig {
            url: self.url.map(Spanned::into_inner),
            serve,
            stun: self.stun.map(Spanned::into_inner),
        })
    }
}

/// Checks the peers: names usable in folders and rules, ids valid, neither repeated.
pub(super) fn peers(source: &Source<'_>, raw: Vec<RawPeer>) -> Result<Vec<PeerEntry>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut peers = Vec::with_capacity(raw.len());
    for peer in raw {
        let name = &plain_name(source, &peer.name, "peer name")?;
        if !names.insert(name.clone()) {
            return Err(source.error(
                peer.name.span().start,
                format!("a peer named {name:?} is listed already; give each peer its own name"),
            ));
        }
        let id: PeerId =
            peer.id.get_ref().parse().map_err(|e| {
                source.error(peer.id.span().start, format!("id of peer {name:?}: {e}"))
            })?;
        if !ids.insert(id) {
            return Err(source.error(
                peer.id.span().start,
                format!("peer {name:?} has the id of a peer listed before it"),
            ));
        }
        peers.push(PeerEntry {
            name: name.clone(),
            id,
        });
    }
    Ok(peers)
}

/// A name used in labels and logs: 1 to 64 letters, digits, '.', '_' or '-'.
fn plain_name(
    source: &Source<'_>,
    name: &Spanned<String>,
    what: &str,
) -> Result<String, ConfigError> {
    let text = name.get_ref();
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        Ok(text.clone())
    } else {
        Err(source.error(
            name.span().start,
            format!(
                "{what} {text:?}: use 1 to 64 letters, digits, '.', '_' or '-', like \"laptop\""
            ),
        ))
    }
}

/// Peer names in a folder or rule must be configured peers.
fn known_peers(
    source: &Source<'_>,
    names: &[Spanned<String>],
    peers: &[PeerEntry],
    whose: &str,
) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .map(|name| {
            if peers.iter().any(|p| &p.name == name.get_ref()) {
                Ok(name.get_ref().clone())
            } else {
                let known: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
                Err(source.error(
                    name.span().start,
                    format!(
                        "{whose} names peer {:?}, which no [[peers]] table defines (defined: {})",
                        name.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
        })
        .collect()
}

fn glob(source: &Source<'_>, text: &Spanned<String>) -> Result<Glob, ConfigError> {
    Glob::new(text.get_ref()).map_err(|e| {
        source.error(
            text.span().start,
            format!("pattern {:?}: {e}", text.get_ref()),
        )
    })
}

/// Checks the folders: paths resolved, not repeated or nested, peers known.
pub(super) fn folders(
    source: &Source<'_>,
    raw: Vec<Spanned<RawFolder>>,
    peers: &[PeerEntry],
) -> Result<Vec<FolderEntry>, ConfigError> {
    let mut folders: Vec<FolderEntry> = Vec::with_capacity(raw.len());
    for folder in raw {
        let at = source.locate(folder.span().start);
        let folder = folder.into_inner();
        let path = source.path(&folder.path)?;
        if let Some(other) = folders
            .iter()
            .find(|f| f.path.starts_with(&path) || path.starts_with(&f.path))
        {
            return Err(source.error(
                folder.path.span().start,
                format!(
                    "{} overlaps the folder at {} ({}); a file may belong to one folder only",
                    path.display(),
                    other.at,
                    other.path.display()
                ),
            ));
        }
        let id = match &folder.id {
            Some(id) => plain_name(source, id, "folder id")?,
            None => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                plain_name(source, &Spanned::new(folder.path.span(), name), "folder id")
                    .map_err(|_| {
                        source.error(
                            folder.path.span().start,
                            format!(
                                "{} has no name usable as a folder id: add id = \"…\" (letters, digits, '.', '_' or '-')",
                                path.display()
                            ),
                        )
                    })?
            }
        };
        if let Some(other) = folders.iter().find(|f| f.id == id) {
            let at = folder
                .id
                .as_ref()
                .map_or(folder.path.span().start, |i| i.span().start);
            return Err(source.error(
                at,
                format!(
                    "folder id {id:?} is taken by the folder at {}; give this one another id = \"…\"",
                    other.at
                ),
            ));
        }
        let names = known_peers(source, &folder.peers, peers, "this folder")?;
        let ignore = folder
            .ignore
            .iter()
            .map(|pattern| glob(source, pattern))
            .collect::<Result<_, _>>()?;
        folders.push(FolderEntry {
            path,
            id,
            peers: names,
            mode: folder
                .mode
                .map_or(FolderMode::SendReceive, Spanned::into_inner),
            ignore,
            at,
        });
    }
    Ok(folders)
}

/// Checks the rules: patterns valid, peers known.
pub(super) fn rules(
    source: &Source<'_>,
    raw: Vec<RawRule>,
    peers: &[PeerEntry],
) -> Result<Vec<RuleEntry>, ConfigError> {
    raw.into_iter()
        .map(|rule| {
            Ok(RuleEntry {
                pattern: glob(source, &rule.pattern)?,
                to: known_peers(source, &rule.to, peers, "this rule")?,
            })
        })
        .collect()
}
