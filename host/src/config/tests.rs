use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Config, ConfigError};
use crate::hooks::HookSpec;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/p2p/share.toml"))
}

/// The error's `FILE:LINE:COL` and message, or a panic saying the text was accepted.
fn error(text: &str) -> (String, String) {
    match parse(text) {
        Ok(config) => panic!("accepted {text:?} as {config:?}"),
        Err(ConfigError::Invalid { at, message, .. }) => (at.to_string(), message),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Checks that `text` is refused at a place ending in `at` with a message holding `message`.
fn expect_error(text: &str, at: &str, message: &str) {
    let (found_at, found_message) = error(text);
    assert!(
        found_at.ends_with(at),
        "{text:?}: error at {found_at}, expected {at} ({found_message})"
    );
    assert!(
        found_message.contains(message),
        "{text:?}: message {found_message:?} lacks {message:?}"
    );
}

#[test]
fn an_empty_file_has_no_hooks() {
    let config = parse("").unwrap_or_else(|e| panic!("{e}"));
    assert!(config.hooks.is_empty());
}

#[test]
fn hooks_keep_the_files_order_and_paths_resolve_against_its_folder() {
    let text = r#"
[[scripts]]
path = "scripts/first.lua"

[[plugins]]
path = "/opt/second.wasm"

[[scripts]]
path = "third.lua"
"#;
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let paths: Vec<_> = config
        .hooks
        .iter()
        .map(|h| h.spec.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("/etc/p2p/scripts/first.lua"),
            PathBuf::from("/opt/second.wasm"),
            PathBuf::from("/etc/p2p/third.lua"),
        ]
    );
    assert_eq!(config.hooks[1].at.to_string(), "/etc/p2p/share.toml:6:8");
}

#[test]
fn settings_grants_and_limits_reach_the_specs() {
    let text = r#"
[[plugins]]
path = "c.wasm"
settings = { level = 3, fast = true, name = "x", ratio = 0.5 }
limits = { memory_mib = 8, deadline_ms = 250 }

[[scripts]]
path = "r.lua"
settings = { no_extension = "misc" }
grants = { move_dirs = ["inbox", "/srv/in"], allow_os_time = true }
limits = { memory_mib = 2, instructions_per_call = 5000, deadline_ms = 300 }
"#;
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let HookSpec::Plugin {
        settings, limits, ..
    } = &config.hooks[0].spec
    else {
        panic!("not a plugin: {:?}", config.hooks[0]);
    };
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("fast", "true"),
            ("level", "3"),
            ("name", "x"),
            ("ratio", "0.5")
        ]
    );
    assert_eq!(limits.memory_bytes, 8 << 20);
    assert_eq!(limits.deadline, Duration::from_millis(250));

    let HookSpec::Script { config: lua, .. } = &config.hooks[1].spec else {
        panic!("not a script: {:?}", config.hooks[1]);
    };
    assert_eq!(
        lua.settings.get("no_extension").map(String::as_str),
        Some("misc")
    );
    assert_eq!(
        lua.grants.move_dirs,
        [PathBuf::from("/etc/p2p/inbox"), PathBuf::from("/srv/in")]
    );
    assert!(lua.grants.allow_os_time);
    assert_eq!(lua.limits.memory_bytes, 2 << 20);
    assert_eq!(lua.limits.instructions_per_call, 5000);
    assert_eq!(lua.limits.deadline, Duration::from_millis(300));
}

#[test]
fn a_tilde_path_is_in_the_home_folder() {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return;
    };
    let config = parse("[[scripts]]\npath = \"~/s/x.lua\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.hooks[0].spec.path(),
        Path::new(&home).join("s/x.lua")
    );
}

#[test]
fn the_command_line_setting_replaces_the_files() {
    let text = "[[plugins]]\npath = \"c.wasm\"\nsettings = { a = \"1\", b = \"2\" }\n";
    let mut config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    config.hooks[0].spec.set("b", "9");
    config.hooks[0].spec.set("c", "3");
    let HookSpec::Plugin { settings, .. } = &config.hooks[0].spec else {
        panic!("not a plugin");
    };
    assert_eq!(
        settings,
        &[
            ("a".into(), "1".into()),
            ("b".into(), "9".into()),
            ("c".into(), "3".into())
        ]
    );
}

#[test]
fn errors_point_at_line_and_column() {
    let cases: &[(&str, &str, &str)] = &[
        // An unknown key, a typo of `path`.
        (
            "[[plugins]]\npth = \"x.wasm\"\n",
            "share.toml:2:1",
            "unknown field `pth`",
        ),
        // An unknown top-level table.
        (
            "[plugin]\npath = \"x\"\n",
            "share.toml:1:2",
            "unknown field `plugin`",
        ),
        // A missing path.
        (
            "[[scripts]]\nsettings = {}\n",
            "share.toml:1:1",
            "missing field `path`",
        ),
        // A wrong type.
        (
            "[[scripts]]\npath = 5\n",
            "share.toml:2:8",
            "expected a string",
        ),
        // A table as a setting.
        (
            "[[scripts]]\npath = \"s.lua\"\nsettings = { max = { a = 1 } }\n",
            "share.toml:3:20",
            "setting \"max\" is a table",
        ),
        // A date as a setting.
        (
            "[[scripts]]\npath = \"s.lua\"\nsettings = { when = 2026-01-01 }\n",
            "share.toml:3:21",
            "setting \"when\" is a datetime",
        ),
        // Limits out of range, and a negative one.
        (
            "[[plugins]]\npath = \"p.wasm\"\nlimits = { memory_mib = 1 }\n",
            "share.toml:3:25",
            "limits.memory_mib = 1 is out of range: use 2 to 4096 MiB",
        ),
        (
            "[[plugins]]\npath = \"p.wasm\"\nlimits = { deadline_ms = 0 }\n",
            "share.toml:3:26",
            "limits.deadline_ms = 0 is out of range",
        ),
        (
            "[[scripts]]\npath = \"s.lua\"\nlimits = { deadline_ms = 60001 }\n",
            "share.toml:3:26",
            "limits.deadline_ms = 60001 is out of range",
        ),
        (
            "[[scripts]]\npath = \"s.lua\"\n[scripts.limits]\ninstructions_per_call = -1\n",
            "share.toml:4:25",
            "invalid value: integer `-1`",
        ),
        // Plugins can be granted nothing.
        (
            "[[plugins]]\npath = \"p.wasm\"\ngrants = { move_dirs = [\"x\"] }\n",
            "share.toml:3:1",
            "unknown field `grants`",
        ),
        // An unknown grant.
        (
            "[[scripts]]\npath = \"s.lua\"\ngrants = { io = true }\n",
            "share.toml:3:12",
            "unknown field `io`",
        ),
        // An empty path.
        (
            "[[scripts]]\npath = \"\"\n",
            "share.toml:2:8",
            "the path is empty",
        ),
        // Not TOML at all.
        ("[[scripts]\n", "share.toml:1:11", "unclosed array table"),
        // A character before the error is counted as one column, whatever its bytes.
        (
            "[[scripts]]\npath = \"é.lua\"\nsettings = { \"ü\" = [1] }\n",
            "share.toml:3:20",
            "setting \"ü\" is an array",
        ),
    ];
    for (text, at, message) in cases {
        expect_error(text, at, message);
    }
}

#[test]
fn the_error_shows_the_line_with_a_caret() {
    let err = parse("[[plugins]]\npath = \"p.wasm\"\nlimits = { memory_mib = 1 }\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        "/etc/p2p/share.toml:3:25: limits.memory_mib = 1 is out of range: use 2 to 4096 MiB\n    \
         | limits = { memory_mib = 1 }\n    |                         ^"
    );
}

#[test]
fn a_missing_file_says_which() {
    let err = Config::load(Path::new("/nonexistent/share.toml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("cannot read config file /nonexistent/share.toml:"),
        "{err}"
    );
}

fn peer_id(seed: u8) -> crate::identity::PeerId {
    crate::identity::PeerId::of_certificate(&[seed; 100])
}

#[test]
fn the_daemon_tables_are_read_and_checked() {
    let (laptop, nas) = (peer_id(1), peer_id(2));
    let text = format!(
        r#"
[identity]
dir = "state"

[signaling]
serve = "127.0.0.1:8787"
stun = "stun:127.0.0.1:3478"

[[peers]]
name = "laptop"
id = "{laptop}"

[[peers]]
name = "nas"
id = "{}"

[[folders]]
path = "photos"
peers = ["laptop", "nas"]
mode = "send"
ignore = ["*.tmp", "cache/**"]

[[folders]]
path = "/srv/inbox"
peers = ["nas"]

[[rules]]
match = "*.raw"
to = ["nas"]
"#,
        nas.to_string().to_lowercase()
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.identity.dir, PathBuf::from("/etc/p2p/state"));
    assert_eq!(
        config.signaling.serve,
        Some("127.0.0.1:8787".parse().unwrap_or_else(|e| panic!("{e}")))
    );
    assert_eq!(config.signaling.url, None);
    assert_eq!(config.peers.len(), 2);
    assert_eq!(
        (config.peers[0].name.as_str(), config.peers[0].id),
        ("laptop", laptop)
    );
    assert_eq!(config.peers[1].id, nas);
    let photos = &config.folders[0];
    assert_eq!(photos.path, PathBuf::from("/etc/p2p/photos"));
    assert_eq!(photos.mode, super::FolderMode::Send);
    assert!(photos.ignore[0].matches("x/a.tmp") && photos.ignore[1].matches("cache/a/b"));
    assert_eq!(config.folders[1].mode, super::FolderMode::SendReceive);
    assert!(config.rules[0].pattern.matches("a/b.raw"));
    assert_eq!(config.rules[0].to, ["nas"]);
}

#[test]
fn the_identity_folder_defaults_to_the_users_data_folder() {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return;
    };
    let config = parse("").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.identity.dir,
        Path::new(&home).join(".local/share/p2phost")
    );
}

#[test]
fn daemon_mistakes_point_at_line_and_column() {
    let id = peer_id(1).to_string();
    let mut typo = id.clone();
    typo.replace_range(0..1, if id.starts_with('B') { "C" } else { "B" });
    let peer = format!("[[peers]]\nname = \"laptop\"\nid = \"{id}\"\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("[[peers]]\nname = \"laptop\"\nid = \"{typo}\"\n"),
            "share.toml:3:6",
            "id of peer \"laptop\": group 1 of the peer id has a typo",
        ),
        (
            "[[peers]]\nname = \"my laptop\"\nid = \"x\"\n".to_owned(),
            "share.toml:2:8",
            "peer name \"my laptop\"",
        ),
        (
            format!(
                "{peer}[[peers]]\nname = \"laptop\"\nid = \"{}\"\n",
                peer_id(2)
            ),
            "share.toml:5:8",
            "a peer named \"laptop\" is listed already",
        ),
        (
            format!("{peer}[[peers]]\nname = \"again\"\nid = \"{id}\"\n"),
            "share.toml:6:6",
            "has the id of a peer listed before it",
        ),
        (
            format!("{peer}[[folders]]\npath = \"a\"\npeers = [\"laptop\", \"nas\"]\n"),
            "share.toml:6:20",
            "this folder names peer \"nas\", which no [[peers]] table defines (defined: laptop)",
        ),
        (
            "[[folders]]\npath = \"a\"\nmode = \"both\"\n".to_owned(),
            "share.toml:3:8",
            "unknown variant `both`, expected one of `send`, `receive`, `send-receive`",
        ),
        (
            "[[folders]]\npath = \"a\"\n[[folders]]\npath = \"a/b\"\n".to_owned(),
            "share.toml:4:8",
            "overlaps the folder at /etc/p2p/share.toml:1:1",
        ),
        (
            "[[folders]]\npath = \"a\"\nignore = [\"x**\"]\n".to_owned(),
            "share.toml:3:11",
            "pattern \"x**\": `**` must be a whole path component",
        ),
        (
            format!("{peer}[[rules]]\nmatch = \"*.raw\"\nto = [\"nas\"]\n"),
            "share.toml:6:7",
            "this rule names peer \"nas\"",
        ),
        (
            "[[rules]]\nto = []\n".to_owned(),
            "share.toml:1:1",
            "missing field `match`",
        ),
        (
            "[signaling]\nserve = \"localhost\"\n".to_owned(),
            "share.toml:2:9",
            "serve = \"localhost\": expected an address and port",
        ),
        (
            "[signaling]\nurl = \"http://x\"\n".to_owned(),
            "share.toml:2:7",
            "expected a ws:// or wss:// URL",
        ),
        (
            "[signaling]\nstun = \"x:1\"\n".to_owned(),
            "share.toml:2:8",
            "expected a stun: URL",
        ),
        (
            "[identity]\ndirectory = \"x\"\n".to_owned(),
            "share.toml:2:1",
            "unknown field `directory`, expected `dir`",
        ),
    ];
    for (text, at, message) in &cases {
        expect_error(text, at, message);
    }
}

#[test]
fn a_folder_is_known_to_peers_by_its_id_its_name_by_default() {
    let text = "[[folders]]\npath = \"/data/photos\"\n[[folders]]\npath = \"/x/docs\"\nid = \"work-docs\"\n";
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.folders[0].id, "photos");
    assert_eq!(config.folders[1].id, "work-docs");

    let (at, message) =
        error("[[folders]]\npath = \"/a/photos\"\n[[folders]]\npath = \"/b/photos\"\n");
    assert!(at.ends_with("share.toml:4:8"), "{at}");
    assert!(
        message.contains("folder id \"photos\" is taken by the folder at /etc/p2p/share.toml:1:1"),
        "{message}"
    );
    let (at, message) = error("[[folders]]\npath = \"/a\"\nid = \"my photos\"\n");
    assert!(at.ends_with("share.toml:3:6"), "{at}");
    assert!(message.contains("folder id \"my photos\""), "{message}");
    let (at, message) = error("[[folders]]\npath = \"/a/my photos\"\n");
    assert!(at.ends_with("share.toml:2:8"), "{at}");
    assert!(message.contains("add id = "), "{message}");
}
