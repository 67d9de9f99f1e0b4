//! `p2phost init` and `p2phost id`: a daemon's config file and identity.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use p2phost::config::Config;
use p2phost::identity::{Identity, IdentityError};

/// `$XDG_CONFIG_HOME/p2phost/share.toml`, or `~/.config/p2phost/share.toml`.
pub(crate) fn default_config_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("p2phost/share.toml"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("HOME is not set: pass --config PATH")?;
    Ok(PathBuf::from(home).join(".config/p2phost/share.toml"))
}

/// `p2phost init`: writes a commented config at `path` (never over an existing file) and
/// creates the identity it names, or keeps the one that is there.
pub(crate) fn init(path: Option<PathBuf>) -> anyhow::Result<()> {
    let default = path.is_none();
    let path = match path {
        Some(path) => path,
        None => default_config_path()?,
    };
    if path.exists() {
        bail!(
            "{} exists already; init never replaces a config (edit it, or pass another --config)",
            path.display()
        );
    }
    // The default config uses the default identity folder; any other keeps its identity beside
    // itself, so two daemons on one machine (or a test) do not share one.
    let identity_dir = if default {
        p2phost::config::daemon::DEFAULT_IDENTITY_DIR.to_owned()
    } else {
        "identity".to_owned()
    };
    let text = template(&identity_dir);
    // Checked like any config before it is written: the template must stay valid.
    let config = Config::from_toml(&text, &path)?;
    let identity = match Identity::create(&config.identity.dir) {
        Ok(identity) => {
            println!("created identity in {}", config.identity.dir.display());
            identity
        }
        Err(IdentityError::Exists(_)) => {
            let identity = Identity::load(&config.identity.dir)?;
            println!("using the identity in {}", config.identity.dir.display());
            identity
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    println!("this host's id: {}", identity.id());
    println!(
        "next: add peers and folders to it, then run: p2phost run --config {}",
        path.display()
    );
    Ok(())
}

/// `p2phost id`: this host's peer id, from the identity the config names.
pub(crate) fn id(path: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match path {
        Some(path) => path,
        None => default_config_path()?,
    };
    let identity = load_identity(&path)?;
    println!("{}", identity.id());
    Ok(())
}

/// The config at `path` and the identity it names.
pub(crate) fn load_identity(path: &Path) -> anyhow::Result<Identity> {
    if !path.exists() {
        bail!(
            "{} does not exist: run `p2phost init --config {}` first",
            path.display(),
            path.display()
        );
    }
    let config = Config::load(path)?;
    Ok(Identity::load(&config.identity.dir)?)
}

/// A commented config with nothing to sync yet.
fn template(identity_dir: &str) -> String {
    format!(
        r#"# p2phost daemon config: `p2phost run --config THIS_FILE`.
# Paths are relative to this file's folder; ~/ is your home. Unknown keys are refused, and a
# mistake is reported as FILE:LINE:COLUMN. A complete example: examples/share.toml.

[identity]
# This host's certificate and key (created by `p2phost init`, mode 0600) and its sync state.
dir = "{identity_dir}"

[signaling]
# The signaling server that introduces the peers (it never sees a file):
url = "ws://127.0.0.1:8787"
# Or run one inside this daemon (with STUN on port 3478), so a LAN needs nothing else:
# serve = "0.0.0.0:8787"

# The peers this host trusts, by the id `p2phost id` prints on each of them:
# [[peers]]
# name = "laptop"
# id = "XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX"

# Folders to keep in sync with some of those peers:
# [[folders]]
# path = "~/Share/photos"
# peers = ["laptop"]
# mode = "send-receive"      # or "send", "receive"
# ignore = ["*.tmp", "cache/**"]

# Routing: files matching a pattern also go to these peers:
# [[rules]]
# match = "*.raw"
# to = ["laptop"]

# Plugins and scripts that run on every transfer (see examples/hooks.toml):
# [[plugins]]
# path = "plugins/out/compress.wasm"
# [[scripts]]
# path = "scripts/notify.lua"
"#
    )
}
