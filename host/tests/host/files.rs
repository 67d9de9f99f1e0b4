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
