//! `--config FILE.toml` on real transfers: the file's `[[plugins]]` and `[[scripts]]` run with
//! their settings and grants, and a bad file is refused at its line and column before anything
//! connects.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plugins_cli::{component, transfer};
use crate::support::{Running, signaling, tree};

const LIMIT: Duration = Duration::from_secs(60);

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
        .display()
        .to_string()
}

/// Writes `text` to `dir/share.toml` and returns `--config dir/share.toml`.
fn config(dir: &Path, text: &str) -> Vec<OsString> {
    let path = dir.join("share.toml");
    std::fs::write(&path, text).unwrap();
    vec!["--config".into(), path.into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_files_plugin_and_scripts_run_in_order_with_their_grants() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(inputs.join("docs")).unwrap();
    let notes = b"route me by my extension, please\n".repeat(20_000);
    std::fs::write(inputs.join("docs/notes.txt"), &notes).unwrap();
    std::fs::write(inputs.join("photo.JPG"), b"jpeg").unwrap();
    std::fs::write(inputs.join("README"), b"readme").unwrap();
    // The grant is relative to the config file's folder, as the receiving folder is here.
    let compress = component("compress").display().to_string();
    let receive_config = config(
        dir.path(),
        &format!(
            "[[plugins]]\npath = {compress:?}\n\n\
             [[scripts]]\npath = {notify:?}\n\n\
             [[scripts]]\npath = {route:?}\nsettings = {{ no_extension = \"misc\" }}\n\
             grants = {{ move_dirs = [\"out\"] }}\n",
            notify = script("notify.lua"),
            route = script("route-by-type.lua"),
        ),
    );
    let out = dir.path().join("out");

    let (sent, received) = transfer(
        &servers,
        vec!["--plugin".into(), compress.into()],
        &[&inputs],
        &out,
        receive_config,
    )
    .await;
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    // Compressed on the wire: the config's plugin decoded what the sender's encoded.
    let done = received.last_event();
    assert!(
        done["wire_bytes"].as_u64().unwrap() < done["bytes"].as_u64().unwrap() / 2,
        "{done}"
    );
    // route-by-type moved each file into its extension's folder inside the granted folder.
    let files: Vec<(String, Vec<u8>)> = tree(&out)
        .into_iter()
        .filter(|(name, _)| !name.ends_with('/'))
        .collect();
    assert_eq!(
        files,
        vec![
            ("jpg/photo.JPG".to_owned(), b"jpeg".to_vec()),
            ("misc/README".to_owned(), b"readme".to_vec()),
            ("txt/notes.txt".to_owned(), notes),
        ]
    );
    // notify ran before route-by-type, as listed: it saw the file where it was received.
    assert!(
        !received.stdout.contains("hook_failed"),
        "{}",
        received.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_outside_the_granted_folder_is_refused_and_the_file_stays() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"stay where you are").unwrap();
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let receive_config = config(
        dir.path(),
        &format!(
            "[[scripts]]\npath = {route:?}\ngrants = {{ move_dirs = [\"elsewhere\"] }}\n",
            route = script("route-by-type.lua"),
        ),
    );
    let out = dir.path().join("out");

    let (sent, received) = transfer(&servers, vec![], &[&file], &out, receive_config).await;
    // A complete hook's failure is reported, not fatal: the file was received and verified.
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(
        tree(&out),
        vec![("a.txt".to_owned(), b"stay where you are".to_vec())]
    );
    let failed = received
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "hook_failed")
        .unwrap_or_else(|| panic!("no hook_failed event: {}", received.stdout));
    let message = failed["message"].as_str().unwrap_or("");
    assert!(
        message.contains("route-by-type") && message.contains("not inside a granted directory"),
        "{message}"
    );
}

/// `p2phost receive --json --yes --config … CODE` against a server that is not there: a config
/// error must come before any connection attempt.
async fn receive_with_config(dir: &Path, text: &str) -> crate::support::Exit {
    let mut args: Vec<OsString> = vec![
        "receive".into(),
        "--json".into(),
        "--yes".into(),
        "--server".into(),
        "ws://127.0.0.1:9".into(),
        "--out".into(),
        dir.join("out").into(),
    ];
    args.extend(config(dir, text));
    args.push("1-kiwi-sardonic".into());
    Running::spawn(&args).exit(LIMIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_at_its_line_and_column_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let exit = receive_with_config(
        dir.path(),
        "# hooks\n[[scripts]]\npath = \"x.lua\"\n[scripts.limits]\nmemory_mib = 0\n",
    )
    .await;
    assert_eq!(exit.code, Some(2), "{exit:?}");
    let error = exit.last_event();
    assert_eq!(error["event"], "error", "{error}");
    assert_eq!(error["kind"], "config", "{error}");
    let expected = format!(
        "{}:5:14: limits.memory_mib = 0 is out of range",
        dir.path().join("share.toml").display()
    );
    let message = error["message"].as_str().unwrap_or("");
    assert!(message.starts_with(&expected), "{message}");
    // On the terminal: the line, and a caret under the column.
    assert!(
        exit.stderr
            .ends_with("\n    | memory_mib = 0\n    |              ^\n"),
        "{}",
        exit.stderr
    );
    assert!(!dir.path().join("out").exists(), "nothing created");

    let exit = receive_with_config(dir.path(), "[[plugins]]\npth = \"x.wasm\"\n").await;
    assert_eq!(exit.code, Some(2), "{exit:?}");
    let message = exit.last_event()["message"].to_string();
    assert!(
        message.contains("share.toml:2:1: unknown field `pth`, expected"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_the_config_names_but_that_is_missing_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let exit = receive_with_config(
        dir.path(),
        "\n[[plugins]]\npath = \"plugins/missing.wasm\"\n",
    )
    .await;
    assert_eq!(exit.code, Some(8), "{exit:?}");
    let error = exit.last_event();
    assert_eq!(error["kind"], "plugin", "{error}");
    let missing: PathBuf = dir.path().join("plugins/missing.wasm");
    let expected = format!(
        "{}:3:8: cannot read plugin {}",
        dir.path().join("share.toml").display(),
        missing.display()
    );
    let message = error["message"].as_str().unwrap_or("");
    assert!(message.starts_with(&expected), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_setting_reaches_only_the_script_it_names() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.txt");
    let big = dir.path().join("big.txt");
    std::fs::write(&small, b"small\n".repeat(1000)).unwrap();
    std::fs::write(&big, b"big\n".repeat(100_000)).unwrap();
    let compress = component("compress");
    let out = dir.path().join("out");
    // compress.wasm refuses settings it does not know: max_bytes must reach size-limit only.
    let send_extra: Vec<OsString> = vec![
        "--plugin".into(),
        compress.clone().into(),
        "--script".into(),
        script("size-limit.lua").into(),
        "--setting".into(),
        "size-limit.max_bytes=100000".into(),
    ];
    let (sent, received) = transfer(
        &servers,
        send_extra,
        &[&small, &big],
        &out,
        vec!["--plugin".into(), compress.into()],
    )
    .await;
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(
        tree(&out),
        vec![("small.txt".to_owned(), b"small\n".repeat(1000))]
    );

    // Unscoped, the same setting reaches the plugin too, which says what it knows.
    let mut args: Vec<OsString> = vec![
        "send".into(),
        "--json".into(),
        "--server".into(),
        servers.url.clone().into(),
        "--plugin".into(),
        component("compress").into(),
        "--setting".into(),
        "max_bytes=100000".into(),
    ];
    args.push(small.into());
    let refused = Running::spawn(&args).exit(LIMIT).await;
    assert_eq!(refused.code, Some(8), "{refused:?}");
    let message = refused.last_event()["message"].to_string();
    assert!(
        message.contains("compress") && message.contains("unknown setting \\\"max_bytes\\\""),
        "{message}"
    );
}

#[test]
fn the_example_config_loads_with_the_example_plugins_and_scripts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hooks.toml");
    let config = p2phost::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let specs: Vec<_> = config.hooks.into_iter().map(|entry| entry.spec).collect();
    assert_eq!(specs.len(), 4);
    // Loading compiles the plugin and runs each script's top level: the settings are accepted.
    let loaded = p2phost::hooks::load_all(&specs).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = loaded.iter().map(|h| h.describe().name.as_str()).collect();
    assert_eq!(names, ["compress", "size-limit", "notify", "route-by-type"]);
}

#[test]
fn the_example_daemon_config_reads_as_documented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/share.toml");
    let config = p2phost::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["laptop", "nas"]);
    let folders: Vec<&str> = config.folders.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(folders, ["photos", "inbox"]);
    assert!(config.rules[0].pattern.matches("2026/shot.raw"));
    assert_eq!(config.hooks.len(), 2);
    assert_eq!(
        config.signaling.url.as_deref(),
        Some("ws://192.168.1.10:8787")
    );
}
