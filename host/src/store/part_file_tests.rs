//! Receiving files into a real temporary directory.

use super::super::{PartFiles, is_part_name};
use super::*;

const GROUP: u64 = 1024;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn manifest(data: &[u8]) -> (ChunkGroups, blake3::Hash) {
    ChunkGroups::compute(&mut &data[..], data.len() as u64, GROUP).unwrap_or_else(|e| panic!("{e}"))
}

fn path(p: &str) -> SafePath {
    SafePath::from_peer(p).unwrap_or_else(|e| panic!("{e}"))
}

fn destination(root: &Path) -> Arc<Destination> {
    Destination::open(root).unwrap_or_else(|e| panic!("{e}"))
}

fn open(
    root: &Path,
    name: &str,
    data: &[u8],
    overwrite: bool,
) -> Result<(PartFile, u64), StoreError> {
    let (groups, hash) = manifest(data);
    PartFile::open(
        &destination(root),
        &path(name),
        data.len() as u64,
        groups,
        hash,
        overwrite,
    )
}

fn receive(part: &mut PartFile, data: &[u8], from: u64, piece: usize) {
    for (i, chunk) in data[from as usize..].chunks(piece).enumerate() {
        let offset = from + (i * piece) as u64;
        part.write(offset, chunk).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn receives_into_place_with_no_part_file_left() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, len) in [
        ("empty", 0),
        ("one", 1),
        ("nested/deep/file.bin", 10_000),
        ("exact", 4096),
    ] {
        let data = content(len, 7);
        let (mut part, resume) =
            open(dir.path(), name, &data, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resume, 0);
        receive(&mut part, &data, 0, 333);
        let done = part.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&done).unwrap_or_default(), data, "{name}");
        assert!(
            !done
                .with_file_name(format!("{}.p2phost-part", path(name).file_name()))
                .exists()
        );
    }
}

#[test]
fn resumes_after_the_last_verified_group() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(10_000, 1);
    let (mut part, _) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data[..3500], 0, 500); // cut mid-group: 3 whole groups and a half
    drop(part);

    let (mut part, resume) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resume, 3 * GROUP);
    receive(&mut part, &data, resume, 700);
    let done = part.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read(done).unwrap_or_default(), data);
}

#[test]
fn a_damaged_or_different_part_file_is_redone_from_the_damage() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(8000, 2);
    let (mut part, _) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data[..6000], 0, 1000);
    drop(part);
    // Flip a byte in group 2.
    let part_path = dir.path().join("f.p2phost-part");
    let mut bytes = std::fs::read(&part_path).unwrap_or_default();
    bytes[2 * GROUP as usize + 5] ^= 0xff;
    std::fs::write(&part_path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let (_, resume) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resume, 2 * GROUP);

    // The sender's file changed in between: nothing matches, start over.
    let changed = content(8000, 3);
    let (mut part, resume) =
        open(dir.path(), "f", &changed, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resume, 0);
    receive(&mut part, &changed, 0, 4096);
    assert_eq!(
        std::fs::read(part.finish().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_default(),
        changed
    );
}

#[test]
fn corrupt_data_fails_early_and_leaves_no_final_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(5000, 4);
    let (mut part, _) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = data.clone();
    bad[1500] ^= 1;
    part.write(0, &bad[..1024])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        part.write(1024, &bad[1024..2048]),
        Err(StoreError::Corrupt { group: 1, .. })
    ));
    assert!(!dir.path().join("f").exists());
}

#[test]
fn short_long_and_out_of_order_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(3000, 5);
    let (mut part, _) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        part.write(10, &data[10..20]),
        Err(StoreError::Length { .. })
    ));
    part.write(0, &data[..2000])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        part.write(2000, &[0u8; 2000]),
        Err(StoreError::Length { .. })
    ));
    assert!(matches!(part.finish(), Err(StoreError::Length { .. })));
    assert!(!dir.path().join("f").exists());
}

#[test]
fn never_replaces_a_file_unless_told_to() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = dir.path().join("f");
    std::fs::write(&target, b"original").unwrap_or_else(|e| panic!("{e}"));
    let data = content(100, 6);
    match open(dir.path(), "f", &data, false) {
        Err(e @ StoreError::Exists(_)) => assert!(e.to_string().contains("--overwrite"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&target).unwrap_or_default(), b"original");

    // A file that appears while the transfer runs is not replaced either.
    let (mut part, _) = open(dir.path(), "g", &data, false).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data, 0, 50);
    std::fs::write(dir.path().join("g"), b"late").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(part.finish(), Err(StoreError::Exists(_))));
    assert_eq!(
        std::fs::read(dir.path().join("g")).unwrap_or_default(),
        b"late"
    );

    let (mut part, _) = open(dir.path(), "f", &data, true).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data, 0, 50);
    part.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read(&target).unwrap_or_default(), data);
}

#[test]
fn refuses_to_write_through_symlinks_or_with_a_bad_manifest() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link"))
        .unwrap_or_else(|e| panic!("{e}"));
    let data = content(10, 0);
    assert!(matches!(
        open(dir.path(), "link/f", &data, false),
        Err(StoreError::Symlink(_))
    ));
    std::os::unix::fs::symlink(outside.path().join("x"), dir.path().join("p.p2phost-part"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        open(dir.path(), "p", &data, false),
        Err(StoreError::Symlink(_))
    ));
    assert_eq!(
        std::fs::read_dir(outside.path())
            .map(|d| d.count())
            .unwrap_or(1),
        0
    );

    let (groups, hash) = manifest(&data);
    let lie = PartFile::open(
        &destination(dir.path()),
        &path("q"),
        5000,
        groups,
        hash,
        false,
    );
    assert!(matches!(
        lie,
        Err(StoreError::Manifest {
            want: 5,
            got: 1,
            ..
        })
    ));
}

#[test]
fn a_file_already_received_whole_is_kept_and_not_resent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(3000, 8);
    std::fs::write(dir.path().join("f"), &data).unwrap_or_else(|e| panic!("{e}"));
    let (part, resume) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resume, 3000);
    assert_eq!(part.finish().ok(), Some(dir.path().join("f")));
    assert_eq!(
        std::fs::read(dir.path().join("f")).unwrap_or_default(),
        data
    );
    // Same name, other content: refused, untouched.
    let other = content(3000, 9);
    assert!(matches!(
        open(dir.path(), "f", &other, false),
        Err(StoreError::Exists(_))
    ));
    assert_eq!(
        std::fs::read(dir.path().join("f")).unwrap_or_default(),
        data
    );
}

/// Whether the filesystem of `dir` keeps user extended attributes (p2phost's mark).
fn keeps_marks(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let file = std::fs::File::create(&probe).unwrap_or_else(|e| panic!("{e}"));
    let kept = super::super::part_name::mark(&file, "probe").unwrap_or(false);
    let _ = std::fs::remove_file(probe);
    kept
}

#[test]
fn a_users_own_part_file_is_never_touched() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let users = b"my own half-written notes, not made by p2phost (52B)".to_vec();
    std::fs::write(dir.path().join("notes.txt.part"), &users).unwrap_or_else(|e| panic!("{e}"));
    // Its content is even a prefix of what arrives: still not ours to resume from.
    let mut data = users.clone();
    data.extend_from_slice(&content(3000, 1));
    for overwrite in [false, true] {
        let _ = std::fs::remove_file(dir.path().join("notes.txt"));
        let (mut part, resume) =
            open(dir.path(), "notes.txt", &data, overwrite).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resume, 0);
        receive(&mut part, &data, 0, 1000);
        part.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read(dir.path().join("notes.txt")).unwrap_or_default(),
            data
        );
        assert_eq!(
            std::fs::read(dir.path().join("notes.txt.part")).unwrap_or_default(),
            users
        );
    }
}

#[test]
fn a_file_with_a_part_files_name_that_is_not_ours_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(5000, 2);
    let theirs = dir.path().join("f.p2phost-part");
    let foreign = data[..2048].to_vec();

    // One that appears after the offer was accepted, before the first byte: not created over.
    let (mut part, _) = open(dir.path(), "f", &data, true).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&theirs, &foreign).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        part.write(0, &data[..100]),
        Err(StoreError::ForeignPart(_))
    ));
    assert_eq!(std::fs::read(&theirs).unwrap_or_default(), foreign);
    assert!(!dir.path().join("f").exists());

    // One there at the offer, without p2phost's mark (where the filesystem keeps marks): not
    // resumed from, cut or renamed, even with overwrite, even though its bytes would match.
    if keeps_marks(dir.path()) {
        for overwrite in [false, true] {
            match open(dir.path(), "f", &data, overwrite) {
                Err(e @ StoreError::ForeignPart(_)) => {
                    let message = e.to_string();
                    assert!(message.contains("f.p2phost-part"), "{message}");
                    assert!(message.contains("not written by p2phost"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(std::fs::read(&theirs).unwrap_or_default(), foreign);
        }
    }

    // A folder or a pipe with that name is not a part file either.
    std::fs::remove_file(&theirs).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(&theirs).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        open(dir.path(), "f", &data, true),
        Err(StoreError::ForeignPart(_))
    ));
    assert!(theirs.is_dir());
}

#[test]
fn our_own_part_file_is_marked_and_resumed_and_the_mark_does_not_stay() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(5000, 3);
    let (mut part, _) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data[..2500], 0, 500);
    drop(part);
    let part_path = dir.path().join("f.p2phost-part");
    let file = std::fs::File::open(&part_path).unwrap_or_else(|e| panic!("{e}"));
    let ours = super::super::part_name::maker(&file, "f").unwrap_or_else(|e| panic!("{e}"));
    assert!(ours != super::super::part_name::Maker::Someone, "{ours:?}");

    let (mut part, resume) = open(dir.path(), "f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resume, 2 * GROUP);
    receive(&mut part, &data, resume, 500);
    let done = part.finish().unwrap_or_else(|e| panic!("{e}"));
    let file = std::fs::File::open(&done).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(
        super::super::part_name::maker(&file, "f").unwrap_or_else(|e| panic!("{e}")),
        super::super::part_name::Maker::Us,
        "the received file still carries the part file's mark"
    );
}

#[test]
fn nothing_is_created_before_the_first_byte() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(3000, 4);
    let (mut part, _) = open(dir.path(), "a/b/f", &data, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(1),
        0
    );
    part.write(0, &data[..10]).unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.path().join("a/b/f.p2phost-part").is_file());
    // Peers cannot offer a part file's name.
    assert!(is_part_name("f.p2phost-part"));
    assert!(SafePath::from_peer("a/f.p2phost-part").is_err());
}

#[test]
fn a_link_swapped_in_during_the_transfer_redirects_nothing() {
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = parent.path().join("out");
    let outside = parent.path().join("outside");
    std::fs::create_dir(&outside).unwrap_or_else(|e| panic!("{e}"));
    let data = content(5000, 5);
    for close_first in [false, true] {
        let _ = std::fs::remove_dir_all(&out);
        let (mut part, _) = open(&out, "sub/f", &data, true).unwrap_or_else(|e| panic!("{e}"));
        receive(&mut part, &data[..2000], 0, 1000);
        std::fs::rename(out.join("sub"), out.join("moved")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("../outside", out.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        if close_first {
            // Opened again for the next bytes: the way is walked again, through the link: refused.
            part.close();
            assert!(matches!(
                part.write(2000, &data[2000..3000]),
                Err(StoreError::Symlink(_))
            ));
        } else {
            // Still open: the bytes, and the rename, go to the folder it was opened in, wherever
            // that folder is now, never through the link.
            receive(&mut part, &data, 2000, 1000);
            let done = part.finish().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(done, out.join("sub/f"), "the name it was offered under");
            assert_eq!(std::fs::read(out.join("moved/f")).unwrap_or_default(), data);
        }
        assert_eq!(
            std::fs::read_dir(&outside).map(|d| d.count()).unwrap_or(1),
            0
        );
        std::fs::remove_file(out.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_part_file_replaced_while_closed_is_not_written_to() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(5000, 6);
    let (mut part, _) = open(dir.path(), "f", &data, true).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data[..2000], 0, 1000);
    part.close();
    let other = dir.path().join("other");
    std::fs::write(&other, b"someone else's").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&other, dir.path().join("f.p2phost-part")).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        part.write(2000, &data[2000..3000]),
        Err(StoreError::Replaced(_))
    ));
    assert_eq!(
        std::fs::read(dir.path().join("f.p2phost-part")).unwrap_or_default(),
        b"someone else's"
    );
}

#[test]
fn only_a_few_part_files_are_open_at_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dest = destination(dir.path());
    let files: Vec<Vec<u8>> = (0..40u8)
        .map(|i| content(3000 + usize::from(i), i))
        .collect();
    let mut parts = PartFiles::new();
    for (i, data) in files.iter().enumerate() {
        let (groups, hash) = manifest(data);
        let name = path(&format!("d{}/f{i}", i % 3));
        let (part, resume) = PartFile::open(&dest, &name, data.len() as u64, groups, hash, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resume, 0);
        parts.push(part);
    }
    assert_eq!(parts.open_count(), 0);
    // Interleaved, as no honest sender does: each file is closed and opened again many times.
    for offset in (0..3100).step_by(500) {
        for (i, data) in files.iter().enumerate() {
            let end = data.len().min(offset + 500);
            if offset < end {
                let part = parts.get_mut(i).unwrap_or_else(|| panic!("file {i}"));
                part.write(offset as u64, &data[offset..end])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            assert!(parts.open_count() <= super::super::MAX_OPEN_PARTS);
        }
    }
    for (i, data) in files.iter().enumerate() {
        let part = parts.take(i).unwrap_or_else(|| panic!("file {i}"));
        let done = part.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(done).unwrap_or_default(), *data);
    }
    assert!(parts.take(0).is_none() && parts.get_mut(0).is_none());
    assert!(parts.get_mut(40).is_none());
}

#[test]
fn finishing_over_a_file_keeps_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = content(5000, 3);
    let (mut part, _) = open(dir.path(), "x.bin", &data, true).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &data, 0, 700);
    let placed = part
        .finish_keeping_replaced()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placed.replaced, None);
    assert_eq!(placed.received.len(), 5000);
    // A newer version arrives while the user's own is under the name.
    std::fs::write(dir.path().join("x.bin"), b"the user's").unwrap_or_else(|e| panic!("{e}"));
    let newer = content(3000, 9);
    let (mut part, _) = open(dir.path(), "x.bin", &newer, true).unwrap_or_else(|e| panic!("{e}"));
    receive(&mut part, &newer, 0, 700);
    let placed = part
        .finish_keeping_replaced()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read(&placed.path).unwrap_or_default(), newer);
    let replaced = placed
        .replaced
        .unwrap_or_else(|| panic!("nothing replaced"));
    assert_eq!(std::fs::read(replaced).unwrap_or_default(), b"the user's");
}
