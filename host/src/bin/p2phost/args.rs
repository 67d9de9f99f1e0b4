//! The command line, as clap reads it, and its checks beyond clap's.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use p2phost::code::{DEFAULT_WORDS, MAX_WORDS, TransferCode};
use p2phost::session::{SessionOptions, TurnServer, check_turn_url};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// End-to-end encrypted peer-to-peer file transfer.
#[derive(Debug, Parser)]
#[command(name = "p2phost", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// Signaling server URL.
    #[arg(long, env = "P2PHOST_SERVER", default_value = crate::DEFAULT_SERVER)]
    pub(crate) server: String,
    /// STUN server, like stun:HOST:3478 [default: the signaling server's host, port 3478].
    #[arg(long)]
    pub(crate) stun: Option<String>,
    /// TURN relay for when no direct path works, like turn:HOST:3478, or over TCP
    /// turn:HOST:3478?transport=tcp, or over TLS turns:HOST:5349 (needs --turn-user and
    /// --turn-pass); repeatable, all with the same credentials. Without it, the relays the
    /// signaling server hands out, if any.
    #[arg(long, value_name = "URL", requires_all = ["turn_user", "turn_pass"])]
    pub(crate) turn: Vec<String>,
    /// TURN user name.
    #[arg(long, requires = "turn")]
    pub(crate) turn_user: Option<String>,
    /// TURN password.
    // No `requires = "turn"`: a password exported in the environment must not break commands
    // that do not use TURN.
    #[arg(long, env = "P2PHOST_TURN_PASS", hide_env_values = true)]
    pub(crate) turn_pass: Option<String>,
    /// PEM file of the certificates to trust for turns: relays instead of the usual public roots:
    /// a private CA, or the relay's own self-signed certificate.
    #[arg(long, value_name = "FILE.pem")]
    pub(crate) turn_ca: Option<PathBuf>,
    /// Use only a TURN relay (from --turn or the signaling server): this side's addresses stay
    /// hidden from the other (which needs --relay-only too to hide its own), and no STUN server
    /// is asked.
    #[arg(long)]
    pub(crate) relay_only: bool,
    /// Never fall back to LAN mode when the signaling server cannot be reached (by default the
    /// sender then serves signaling itself and announces it on the local network over mDNS, and
    /// the receiver looks for it there)
    #[arg(long)]
    pub(crate) no_lan: bool,
    /// A config file whose [[plugins]] and [[scripts]] run on this transfer, in its order,
    /// before those of --plugin and --script.
    #[arg(long, value_name = "FILE.toml")]
    pub(crate) config: Option<PathBuf>,
    /// A WASM plugin (component) to run on this transfer's hooks; repeatable. Plugins run before
    /// scripts, each in the order given.
    #[arg(long = "plugin", value_name = "FILE.wasm")]
    pub(crate) plugins: Vec<PathBuf>,
    /// A Lua script to run on this transfer's hooks; repeatable.
    #[arg(long = "script", value_name = "FILE.lua")]
    pub(crate) scripts: Vec<PathBuf>,
    /// A setting for the plugins and scripts, over the config file's; repeatable. KEY=VALUE is
    /// for all of them, NAME.KEY=VALUE for the one named NAME (its file stem), such as
    /// size-limit.max_bytes=1000000.
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = setting)]
    pub(crate) settings: Vec<(String, String)>,
    /// Print newline-delimited JSON events on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print nothing but errors (and the code, which the receiver needs).
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Show a verification string once connected; it is the same on both sides unless someone is
    /// in the middle.
    #[arg(long)]
    pub(crate) verify: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Offer files and folders; prints a code for the receiver.
    Send {
        #[command(flatten)]
        common: Common,
        /// Words in the code (more words, harder to guess).
        #[arg(long, default_value_t = DEFAULT_WORDS as u16, conflicts_with = "code",
              value_parser = clap::value_parser!(u16).range(DEFAULT_WORDS as i64..=MAX_WORDS as i64))]
        words: u16,
        /// Use this code instead of a fresh one, like 7-guitar-orbit (the receiver may already
        /// be waiting with it). The words come from the same list as generated codes.
        #[arg(long)]
        code: Option<String>,
        /// Files and folders to send.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write a commented daemon config and create this host's identity (certificate and key).
    Init {
        /// Where to write the config [default: ~/.config/p2phost/share.toml]. Refuses to
        /// replace an existing file.
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
    },
    /// Run the daemon: keep the config's folders in sync with its trusted peers, until Ctrl-C.
    Run {
        /// The daemon config [default: ~/.config/p2phost/share.toml].
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// The signaling server to use, over the config's [signaling] url.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// The STUN server, over the config's [signaling] stun, like stun:HOST:3478.
        #[arg(long, value_name = "URL")]
        stun: Option<String>,
    },
    /// Ask the running daemon what it is doing: peers online, folders, queue, transfers.
    Status {
        /// The daemon config [default: ~/.config/p2phost/share.toml].
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print this host's peer id, for the other hosts' [[peers]] tables.
    Id {
        /// The daemon config naming the identity [default: ~/.config/p2phost/share.toml].
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Receive what a code offers.
    Receive {
        #[command(flatten)]
        common: Common,
        /// Folder to receive into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Replace files that exist already.
        #[arg(long)]
        overwrite: bool,
        /// Accept the offer without asking.
        #[arg(long)]
        yes: bool,
        /// The code the sender shows, like 7-guitar-orbit.
        code: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PluginAction {
    /// Print what a plugin says about itself, and check it against this p2phost's contract.
    Inspect {
        /// The plugin, a WASM component.
        path: PathBuf,
    },
}

impl Common {
    /// How to reach the peer, from the flags; `Err` says which flag is wrong and how.
    pub(crate) fn session_options(&self) -> Result<SessionOptions, String> {
        let (scheme, rest) = self.server.split_once("://").unwrap_or(("", ""));
        if !matches!(scheme, "ws" | "wss") || rest.is_empty() {
            return Err(format!(
                "--server {:?}: expected a ws:// or wss:// URL, like ws://127.0.0.1:8787",
                self.server
            ));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let stun = match &self.stun {
            Some(url) if !(url.starts_with("stun:") || url.starts_with("stuns:")) => {
                return Err(format!(
                    "--stun {url:?}: expected a stun: URL, like stun:{host}:3478"
                ));
            }
            Some(url) => url.clone(),
            None => format!("stun:{host}:3478"),
        };
        for url in &self.turn {
            check_turn_url(url).map_err(|e| {
                format!("--turn {url:?}: {e}; expected a URL like turn:{host}:3478, turn:{host}:3478?transport=tcp or turns:{host}:5349")
            })?;
        }
        let turn = match (&self.turn_user, &self.turn_pass) {
            (Some(username), Some(password)) if !self.turn.is_empty() => Some(TurnServer {
                urls: self.turn.clone(),
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let turn_ca = match &self.turn_ca {
            Some(path) => load_ca(path)?,
            None => Vec::new(),
        };
        Ok(SessionOptions {
            signaling_url: self.server.clone(),
            ice_servers: if self.relay_only {
                Vec::new()
            } else {
                vec![stun]
            },
            turn,
            relay_only: self.relay_only,
            turn_ca,
            bind: vec!["0.0.0.0:0".into()],
            step_timeout: Duration::from_secs(30),
            identity: None,
            lan: !self.no_lan,
        })
    }
}

/// The certificates of a `--turn-ca` PEM file.
fn load_ca(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--turn-ca {}: cannot read it: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--turn-ca {}: not PEM certificates: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "--turn-ca {}: no CERTIFICATE in it; give the CA's certificate in PEM",
            path.display()
        ));
    }
    Ok(certificates)
}

/// A code the user typed for `send --code`: same rules as the receiver's, and at least the default
/// number of words, so a chosen code is no easier to guess than a generated one.
pub(crate) fn chosen_code(text: &str) -> Result<TransferCode, String> {
    let code = TransferCode::parse(text).map_err(|e| format!("--code: {e}"))?;
    if code.words() < DEFAULT_WORDS {
        return Err(format!(
            "--code: fewer than {DEFAULT_WORDS} words are too easy to guess; use {DEFAULT_WORDS} or more, like 7-guitar-orbit"
        ));
    }
    Ok(code)
}

/// `KEY=VALUE`, for `--setting`.
fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "{text:?}: expected KEY=VALUE, like max_bytes=1000000"
        )),
    }
}
