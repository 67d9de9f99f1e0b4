//! Lua scripts on real transfers: `p2phost send/receive --script FILE.lua` with real processes,
//! a real signaling server and the example scripts of `scripts/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Exit, Running, Servers, signaling, tree};

const LIMIT: Duration = Duration::from_secs(60);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// `p2phost COMMAND --json --server … --stun … EXTRA…`.
fn start(servers: &Servers, command: &str, extra: &[OsString]) -> Running {
    start_with_env(servers, command, extra, &[])
}

/// [`start`] with these environment variables set too.
fn start_with_env(
    servers: &Servers,
    command: &str,
    extra: &[OsString],
    env: &[(&str, &str)],
) -> Running {
    let mut args: Vec<OsString> = vec![command.into(), "--json".into()];
    for arg in ["--server", &servers.url, "--stun", &servers.stun] {
        args.push(arg.into());
    }
    args.extend(extra.iter().cloned());
    Running::spawn_with_env(&args, env)
}

/// The sender's code, and the events it printed before it (such as `skipped`).
async fn code_of(sender: &mut Running) -> (String, Vec<serde_json::Value>) {
    let mut before = Vec::new();
    loop {
        let event: serde_json::Value = serde_json::from_str(&sender.next_line().await).unwrap();
        if event["event"] == "code" {
            return (event["code"].as_str().unwrap().to_owned(), before);
        }
        before.push(event);
    }
}

/// Sends a 100,000-byte `data.bin` to a receiver that runs the script `NAME.lua` made of
/// `source`; both sides' exits, and the receiver's `--out` folder.
async fn receive_with_script(
    servers: &Servers,
    dir: &Path,
    name: &str,
    source: &str,
) -> (Exit, Exit, PathBuf) {
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(&script, source).unwrap();
    let file = dir.join("data.bin");
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    let out = dir.join("out");

    let mut sender = start(servers, "send", &[file.into()]);
    let (code, _) = code_of(&mut sender).await;
    let receiver = start(
        servers,
        "receive",
        &[
            "--yes".into(),
            "--script".into(),
            script.into(),
            "--out".into(),
            out.clone().into(),
            code.into(),
        ],
    );
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    (received, sent, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_leaves_out_the_big_file_on_the_sending_side() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(inputs.join("small.txt"), vec![b's'; 1000]).unwrap();
    std::fs::write(inputs.join("big.bin"), vec![b'b'; 200_000]).unwrap();
    let out = dir.path().join("out");

    let mut sender = start(
        &servers,
        "send",
        &[
            "--script".into(),
            script("size-limit.lua").into(),
            "--setting".into(),
            "max_bytes=100000".into(),
            inputs.join("small.txt").into(),
            inputs.join("big.bin").into(),
        ],
    );
    let (code, before) = code_of(&mut sender).await;
    let receiver = start(
        &servers,
        "receive",
        &[
            "--yes".into(),
            "--out".into(),
            out.clone().into(),
            code.into(),
        ],
    );
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(sent.last_event()["files"], 1);
    // Left out before the code was shown, with the script's reason.
    let skipped = before
        .iter()
        .find(|e| e["event"] == "skipped")
        .cloned()
        .unwrap_or_default();
    assert!(
        skipped["path"].as_str().unwrap_or("").ends_with("big.bin")
            && skipped["why"].as_str().unwrap_or("").contains("size-limit"),
        "{before:?}"
    );
    assert_eq!(tree(&out), vec![("small.txt".to_owned(), vec![b's'; 1000])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_error_fails_the_transfer_on_both_sides_with_its_name_and_line() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let (received, sent, out) = receive_with_script(
        &servers,
        dir.path(),
        "broken",
        "p2p.on(\"chunk\", function(file, chunk)\n  local t = nil\n  return t.field\nend)\n",
    )
    .await;
    assert_eq!(received.code, Some(8), "{received:?}");
    assert!(
        received.stderr.contains("broken") && received.stderr.contains("broken.lua:3"),
        "{}",
        received.stderr
    );
    assert_eq!(received.last_event()["kind"], "plugin");
    assert_eq!(sent.code, Some(8), "{sent:?}");
    assert!(sent.stderr.contains("broken.lua:3"), "{}", sent.stderr);
    assert!(
        !out.join("data.bin").exists(),
        "nothing under the final name"
    );
}

/// The line of `stderr` holding `needle`, if any.
fn line_with<'a>(stderr: &'a str, needle: &str) -> Option<&'a str> {
    stderr.lines().find(|line| line.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_logs_one_summary_line_per_file_on_each_side() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    let data = b"notify me when this has arrived\n".repeat(1000);
    std::fs::write(&file, &data).unwrap();
    let out = dir.path().join("out");
    let notify: OsString = script("notify.lua").into();
    // Whatever the caller's RUST_LOG says: the script's lines are at info.
    let env = [("RUST_LOG", "info")];

    let mut sender = start_with_env(
        &servers,
        "send",
        &["--script".into(), notify.clone(), file.clone().into()],
        &env,
    );
    let (code, _) = code_of(&mut sender).await;
    let receiver = start_with_env(
        &servers,
        "receive",
        &[
            "--yes".into(),
            "--script".into(),
            notify,
            "--out".into(),
            out.clone().into(),
            code.into(),
        ],
        &env,
    );
    let received = receiver.exit(LIMIT).await;
    let sent = sender.exit(LIMIT).await;
    assert_eq!(received.code, Some(0), "{received:?}");
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert_eq!(tree(&out), vec![("a.txt".to_owned(), data.clone())]);

    let size = data.len();
    let sent_line = format!("sent a.txt ({size} bytes) at {}", file.display());
    let line = line_with(&sent.stderr, &sent_line)
        .unwrap_or_else(|| panic!("no {sent_line:?} in the sender's log:\n{}", sent.stderr));
    assert!(
        line.contains("INFO") && line.contains("script=notify"),
        "{line}"
    );
    let received_line = format!(
        "received a.txt ({size} bytes) at {}",
        out.join("a.txt").display()
    );
    let line = line_with(&received.stderr, &received_line).unwrap_or_else(|| {
        panic!(
            "no {received_line:?} in the receiver's log:\n{}",
            received.stderr
        )
    });
    assert!(
        line.contains("INFO") && line.contains("script=notify"),
        "{line}"
    );
    // One line per file and side, and each side speaks only of its own side.
    assert_eq!(
        sent.stderr.matches("script=notify").count(),
        1,
        "{}",
        sent.stderr
    );
    assert_eq!(
        received.stderr.matches("script=notify").count(),
        1,
        "{}",
        received.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_in_a_chunk_handler_meets_the_instruction_limit_on_either_side() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let spin = dir.path().join("spin.lua");
    std::fs::write(
        &spin,
        "p2p.on(\"chunk\", function(file, chunk)\n  while true do end\nend)\n",
    )
    .unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![3u8; 300_000]).unwrap();
    let with_spin: Vec<OsString> = vec!["--script".into(), spin.clone().into()];
    // The budget stops it; a debug build on a busy machine may reach the call's deadline first.
    let stopped = |stderr: &str| {
        [
            "spin: spin.lua:2: instruction limit exceeded (10000000 instructions per call)",
            "spin: spin.lua:2: deadline of 1000 ms exceeded",
        ]
        .iter()
        .any(|reason| stderr.contains(reason))
    };

    // On the receiver only: chunks arrive and the first one stops it. On both sides: the sender's
    // handler runs first, on its first chunk, and stops it before anything is sent.
    for (round, on_sender) in [(1, false), (2, true)] {
        let out = dir.path().join(format!("out{round}"));
        let mut send_args = if on_sender { with_spin.clone() } else { vec![] };
        send_args.push(file.clone().into());
        let mut sender = start(&servers, "send", &send_args);
        let (code, _) = code_of(&mut sender).await;
        let started = Instant::now();
        let mut receive_args = with_spin.clone();
        receive_args.extend([
            "--yes".into(),
            "--out".into(),
            out.clone().into(),
            code.into(),
        ]);
        let receiver = start(&servers, "receive", &receive_args);
        let received = receiver.exit(LIMIT).await;
        let sent = sender.exit(LIMIT).await;
        let took = started.elapsed();

        let (stopper, peer) = if on_sender {
            (&sent, &received)
        } else {
            (&received, &sent)
        };
        assert_eq!(stopper.code, Some(8), "round {round}: {stopper:?}");
        assert_eq!(stopper.last_event()["kind"], "plugin", "{stopper:?}");
        assert!(stopped(&stopper.stderr), "{}", stopper.stderr);
        // The peer hears the reason, and reports it as a hook's failure too.
        assert_eq!(peer.code, Some(8), "round {round}: {peer:?}");
        assert_eq!(peer.last_event()["kind"], "plugin", "{peer:?}");
        assert!(stopped(&peer.stderr), "{}", peer.stderr);
        assert!(
            !out.join("data.bin").exists(),
            "round {round}: nothing under the final name"
        );
        // 10 million instructions take well under a second, connecting a few at most: far less
        // than the 30 s a test step may take, or the loop was not stopped by its budget.
        assert!(
            took < Duration::from_secs(20),
            "round {round}: both ended after {took:?}"
        );
    }
}

/// A pattern that backtracks for hours inside one library call (issue 12): it used to hang the
/// receiver (Lua's own matcher runs no instruction the count could stop); the sandbox's matcher
/// charges every step, so the call ends at its budget or deadline and the transfer fails on
/// both sides with the script's name and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_pattern_in_a_chunk_handler_is_stopped_and_named() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let (received, sent, out) = receive_with_script(
        &servers,
        dir.path(),
        "pattern",
        "p2p.on(\"chunk\", function(file, chunk)\n  local found = string.find(string.rep(\"a\", 3000), string.rep(\"a*\", 12) .. \"b\")\nend)\n",
    )
    .await;
    for (side, exit) in [("receiver", &received), ("sender", &sent)] {
        assert_eq!(exit.code, Some(8), "{side}: {exit:?}");
        assert_eq!(exit.last_event()["kind"], "plugin", "{side}: {exit:?}");
        // The budget, or in a slow debug build on a busy machine the deadline, whichever first.
        let stopped = line_with(&exit.stderr, "pattern: pattern.lua:2: ").is_some_and(|l| {
            l.contains("instruction limit exceeded") || l.contains("deadline of 1000 ms exceeded")
        });
        assert!(stopped, "{side}: {}", exit.stderr);
    }
    assert!(
        !out.join("data.bin").exists(),
        "nothing under the final name"
    );
}
