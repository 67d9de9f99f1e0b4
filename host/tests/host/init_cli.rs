//! `p2phost init` and `p2phost id`: a daemon's config and identity, as a user makes them.

use std::process::Command;

use crate::support::BIN;

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("p2phost runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn init_makes_a_config_and_an_identity_that_id_prints_and_never_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(&["init", "--config", "a/share.toml"], dir.path());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let said = stdout
        .lines()
        .find_map(|l| l.strip_prefix("this host's id: "))
        .unwrap_or_else(|| panic!("no id in {stdout}"))
        .to_owned();
    let id: p2phost::identity::PeerId = said.parse().unwrap();

    let (code, printed, stderr) = run(&["id", "--config", "a/share.toml"], dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed.trim(), id.to_string());

    // The config parses, and names the identity beside it, which is private.
    let config = p2phost::config::Config::load(&dir.path().join("a/share.toml")).unwrap();
    assert_eq!(config.identity.dir, dir.path().join("a/identity"));
    let loaded = p2phost::identity::Identity::load(&config.identity.dir).unwrap();
    assert_eq!(loaded.id(), id);

    // A second init refuses, and changes nothing.
    let before = std::fs::read(dir.path().join("a/share.toml")).unwrap();
    let (code, _, stderr) = run(&["init", "--config", "a/share.toml"], dir.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("a/share.toml")).unwrap(),
        before
    );
    let (_, printed, _) = run(&["id", "--config", "a/share.toml"], dir.path());
    assert_eq!(printed.trim(), id.to_string());

    // Another config is another host.
    let (code, stdout, _) = run(&["init", "--config", "b/share.toml"], dir.path());
    assert_eq!(code, 0);
    assert!(!stdout.contains(&id.to_string()), "{stdout}");
}

#[test]
fn init_and_id_default_to_the_users_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(&["init"], dir.path());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let home = dir.path().join("home");
    assert!(home.join(".config/p2phost/share.toml").is_file());
    assert!(home.join(".local/share/p2phost/identity.pem").is_file());
    let (code, printed, _) = run(&["id"], dir.path());
    assert_eq!(code, 0);
    assert!(stdout.contains(printed.trim()), "{stdout} vs {printed}");
}

#[test]
fn id_without_a_config_or_with_a_bad_one_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&["id", "--config", "none.toml"], dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("run `p2phost init --config none.toml` first"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("bad.toml"), "[identity]\ndri = \"x\"\n").unwrap();
    let (code, _, stderr) = run(&["id", "--config", "bad.toml"], dir.path());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.toml:2:1: unknown field `dri`"),
        "{stderr}"
    );

    // A config whose identity folder is empty: init was not run for it.
    std::fs::write(
        dir.path().join("lost.toml"),
        "[identity]\ndir = \"nowhere\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["id", "--config", "lost.toml"], dir.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("run `p2phost init`"), "{stderr}");
}
