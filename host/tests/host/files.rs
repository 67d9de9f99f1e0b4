//! What arrives is what was sent: empty, tiny and large files, many small files in nested and empty
//! folders, and file modes; each through real `p2phost` processes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{both_succeeded, last_event, receive_off_thread, send, signaling, tree};

/// `len` bytes that do not compress and differ from file to file (xorshift, seeded).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_tiny_and_64_mib_files_arrive_identical_with_their_modes() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let zero = inputs.join("zero.bin");
    let one = inputs.join("one.bin");
    let big = inputs.join("big.bin");
    std::fs::write(&zero, b"").unwrap();
    std::fs::write(&one, b"\x00").unwrap();
    std::fs::write(&big, random_bytes(64 * 1024 * 1024, 7)).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&one, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = dir.path().join("out");

    let (sender, code) = send(&servers, &[&zero, &one, &big]);
    let received = receive_off_thread(&servers, &out, &code).await;
    let stdout = both_succeeded(&received, sender);
    let done = last_event(&stdout);
    assert_eq!(done["files"], 3);
    assert_eq!(done["bytes"], 64 * 1024 * 1024 + 1);
    assert_eq!(done["wire_bytes"], done["bytes"]);
    assert_eq!(tree(&out), tree(&inputs));
    assert_eq!(
        mode(&out.join("big.bin")),
        0o755,
        "executables stay executable"
    );
    assert_eq!(mode(&out.join("one.bin")), 0o600);
    let receiver_done = last_event(&String::from_utf8_lossy(&received.stdout));
    assert_eq!(receiver_done["event"], "done");
    assert_eq!(receiver_done["files"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_small_files_in_nested_and_empty_folders_arrive_identical() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("project");
    for i in 0..1000u64 {
        let sub = folder.join(format!("d{}/e{}", i % 7, i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        let name = if i % 100 == 0 {
            format!("ünïcødé ✓ {i}.txt")
        } else {
            format!("f{i}.txt")
        };
        std::fs::write(sub.join(name), random_bytes((i % 5000) as usize, i)).unwrap();
    }
    std::fs::create_dir_all(folder.join("empty/and/deeper")).unwrap();
    std::fs::create_dir_all(folder.join("d1/empty too")).unwrap();
    let out = dir.path().join("out");

    let (sender, code) = send(&servers, &[&folder]);
    let received = receive_off_thread(&servers, &out, &code).await;
    let stdout = both_succeeded(&received, sender);
    assert_eq!(last_event(&stdout)["files"], 1000);
    assert_eq!(tree(&out.join("project")), tree(&folder));
}

/// A `NAME.part` of the user's own (a browser's download, notes) is not p2phost's: receiving
/// `NAME` leaves it byte for byte as it was (it used to be truncated and renamed to `NAME`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiving_a_file_leaves_the_users_own_part_file_of_that_name_alone() {
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let sent = dir.path().join("notes.txt");
    std::fs::write(&sent, b"the peer's notes\n").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let users = b"my own half-written notes, not made by p2phost (52B)".to_vec();
    assert_eq!(users.len(), 52);
    std::fs::write(out.join("notes.txt.part"), &users).unwrap();

    let (sender, code) = send(&servers, &[&sent]);
    let received = receive_off_thread(&servers, &out, &code).await;
    both_succeeded(&received, sender);
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"the peer's notes\n"
    );
    assert_eq!(std::fs::read(out.join("notes.txt.part")).unwrap(), users);
    assert_eq!(
        tree(&out).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["notes.txt", "notes.txt.part"]
    );
}

/// A folder of 5,000 files, both sides limited to 256 open files (a common `ulimit -n` is
/// 1,024): the receiver used to open every `.part` file at once and fail with "Too many open
/// files", leaving hundreds of them behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_files_pass_with_256_open_files_on_each_side() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    const LIMIT: u32 = 256;
    let servers = signaling().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("many");
    for i in 0..5000u64 {
        let sub = folder.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i}")),
            random_bytes((i % 300) as usize, i),
        )
        .unwrap();
    }
    let out = dir.path().join("out");

    let mut sender = crate::support::p2phost_with_open_file_limit(LIMIT)
        .args(["send", "--json", "--server", &servers.url, "--stun"])
        .arg(&servers.stun)
        .arg(&folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(sender.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let code = serde_json::from_str::<serde_json::Value>(&first).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let received = tokio::task::spawn_blocking({
        let (servers, out) = (servers.clone(), out.clone());
        move || {
            crate::support::p2phost_with_open_file_limit(LIMIT)
                .args(["receive", "--json", "--yes", "--server", &servers.url])
                .args(["--stun", &servers.stun, "--out"])
                .arg(&out)
                .arg(&code)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let (status, stdout) = crate::support::finish(sender);
    assert!(
        received.status.success(),
        "receiver: {}\nsender: {stdout}",
        String::from_utf8_lossy(&received.stderr)
    );
    assert_eq!(status, 0, "{stdout}");
    assert_eq!(last_event(&stdout)["files"], 5000);
    assert_eq!(tree(&out.join("many")), tree(&folder));
}
