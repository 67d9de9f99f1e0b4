//! The watcher on real folders with real inotify, and its settler driven by hand.
//!
//! Waits are generous (a loaded machine delays events); nothing asserts that anything is fast.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};

use notify::Event;
use notify::event::Flag;

use super::*;
use crate::sync::folder_scan::join;

/// Settle time of most tests.
const SETTLE: Duration = Duration::from_millis(300);
/// The longest a test waits for an expected change.
const PATIENCE: Duration = Duration::from_secs(30);

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn globs(patterns: &[&str]) -> Vec<Glob> {
    patterns
        .iter()
        .map(|p| Glob::new(p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect()
}

fn watch(
    root: &Path,
    ignore: &[&str],
    settle: Duration,
) -> (FolderWatcher, mpsc::Receiver<Change>) {
    FolderWatcher::start(vec![(1, root.to_path_buf(), globs(ignore))], settle)
        .unwrap_or_else(|e| panic!("start: {e}"))
}

fn write(root: &Path, rel: &str, contents: &[u8]) {
    let path = join(root, rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
    }
    fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

fn change(path: &str) -> Change {
    Change {
        folder: 1,
        path: path.to_owned(),
    }
}

/// Receives until every path of `expected` came, failing on a change not expected or a repeat.
async fn expect_changes(rx: &mut mpsc::Receiver<Change>, folder: FolderKey, expected: &[String]) {
    let mut missing: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    while !missing.is_empty() {
        let next = tokio::time::timeout(PATIENCE, rx.recv()).await;
        let change = match next {
            Ok(Some(change)) => change,
            Ok(None) => panic!("the watcher stopped; still missing {missing:?}"),
            Err(_) => panic!("no change within {PATIENCE:?}; still missing {missing:?}"),
        };
        assert_eq!(change.folder, folder, "{change:?}");
        assert!(
            seen.insert(change.path.clone()),
            "reported twice: {change:?}"
        );
        assert!(
            missing.remove(change.path.as_str()),
            "not expected: {change:?}"
        );
    }
}

/// What arrives within `period`.
async fn arrivals(rx: &mut mpsc::Receiver<Change>, period: Duration) -> Vec<Change> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + period;
    while let Ok(Some(change)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        got.push(change);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_pieces_is_reported_once_after_it_settles() {
    let dir = tempdir();
    let settle = Duration::from_secs(1);
    let (_watcher, mut rx) = watch(dir.path(), &[], settle);
    let path = dir.path().join("big.bin");
    let mut file = File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    // Pauses shorter than `settle`, pieces spread over longer than `settle`.
    for piece in 0..3u8 {
        if piece > 0 {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        file.write_all(&[piece; 4096])
            .unwrap_or_else(|e| panic!("{e}"));
        file.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    drop(file);
    let last_write = Instant::now();
    expect_changes(&mut rx, 1, &["big.bin".to_owned()]).await;
    assert!(last_write.elapsed() >= settle - Duration::from_millis(50));
    assert_eq!(arrivals(&mut rx, settle * 2).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_file_renamed_into_place_is_reported_under_its_final_name() {
    let dir = tempdir();
    let (_watcher, mut rx) = watch(dir.path(), &[], SETTLE);
    let part = dir.path().join("photo.jpg.p2phost-part");
    let mut file = File::create(&part).unwrap_or_else(|e| panic!("{e}"));
    file.write_all(&[1; 8192]).unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(SETTLE / 3).await;
    file.write_all(&[2; 8192]).unwrap_or_else(|e| panic!("{e}"));
    file.sync_all().unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    fs::rename(&part, dir.path().join("photo.jpg")).unwrap_or_else(|e| panic!("{e}"));
    expect_changes(&mut rx, 1, &["photo.jpg".to_owned()]).await;
    assert_eq!(arrivals(&mut rx, SETTLE * 3).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_and_temporary_files_are_not_reported() {
    let dir = tempdir();
    let root = dir.path();
    let (_watcher, mut rx) = watch(root, &["*.raw", "cache/**", "build"], SETTLE);
    for rel in [
        "a.raw",
        "sub/b.raw",
        "cache/c.txt",
        "cache/deep/d.txt",
        "build/out.o",
        "src/build/out.o",
        "notes.tmp",
        "notes.txt~",
        ".#notes.txt",
        "#notes.txt#",
        ".notes.txt.swp",
        ".notes.txt.swx",
        ".DS_Store",
        "Thumbs.db",
        "received.bin.p2phost-part",
        "download.iso.part",
        ".p2phost/state",
    ] {
        write(root, rel, b"not synced");
    }
    write(root, "sent.txt", b"synced");
    write(
        root,
        "a.sync-conflict-20260501-101500-MFZWI3D.txt",
        b"synced",
    );
    expect_changes(
        &mut rx,
        1,
        &[
            "sent.txt".to_owned(),
            "a.sync-conflict-20260501-101500-MFZWI3D.txt".to_owned(),
        ],
    )
    .await;
    assert_eq!(arrivals(&mut rx, SETTLE * 3).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_a_new_nested_folder_is_reported() {
    let dir = tempdir();
    let root = dir.path();
    let (_watcher, mut rx) = watch(root, &[], SETTLE);
    // inotify watches a new folder only after its creation is read: what is created in it before
    // is missed unless the watcher walks it. Five rounds to give the race its chances.
    for round in 0..5 {
        let deep = root.join(format!("r{round}/a/b/c"));
        fs::create_dir_all(&deep).unwrap_or_else(|e| panic!("{e}"));
        fs::write(deep.join("x"), b"x").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join(format!("r{round}/a/y")), b"y").unwrap_or_else(|e| panic!("{e}"));
        let expected = [format!("r{round}/a/b/c/x"), format!("r{round}/a/y")];
        expect_changes(&mut rx, 1, &expected).await;
    }
    // A folder filled elsewhere and moved in.
    let outside = tempdir();
    write(outside.path(), "album/1.jpg", b"1");
    write(outside.path(), "album/more/2.jpg", b"2");
    fs::rename(outside.path().join("album"), root.join("album")).unwrap_or_else(|e| panic!("{e}"));
    expect_changes(
        &mut rx,
        1,
        &["album/1.jpg".into(), "album/more/2.jpg".into()],
    )
    .await;
    assert_eq!(arrivals(&mut rx, SETTLE * 3).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_files_is_reported_once_each() {
    let dir = tempdir();
    let root = dir.path();
    let (_watcher, mut rx) = watch(root, &[], SETTLE);
    let expected: Vec<String> = (0..500)
        .map(|i| format!("d{}/f{i:03}.txt", i % 5))
        .collect();
    for path in &expected {
        write(root, path, path.as_bytes());
    }
    expect_changes(&mut rx, 1, &expected).await;
    assert_eq!(arrivals(&mut rx, SETTLE * 3).await, []);
}

/// Longer: `cargo test -p p2phost --lib sync::watcher -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 files; run by hand"]
async fn a_burst_of_10000_files_is_reported_once_each() {
    let dir = tempdir();
    let root = dir.path();
    let (_watcher, mut rx) = watch(root, &[], SETTLE);
    let expected: Vec<String> = (0..10_000)
        .map(|i| format!("d{:02}/f{i:05}.txt", i % 50))
        .collect();
    for path in &expected {
        write(root, path, path.as_bytes());
    }
    expect_changes(&mut rx, 1, &expected).await;
    assert_eq!(arrivals(&mut rx, SETTLE * 3).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_not_reported() {
    let dir = tempdir();
    let root = dir.path();
    let outside = tempdir();
    write(outside.path(), "secret.txt", b"secret");
    write(root, "real.txt", b"real");
    let (_watcher, mut rx) = watch(root, &[], SETTLE);
    symlink(root.join("real.txt"), root.join("link.txt")).unwrap_or_else(|e| panic!("{e}"));
    symlink(outside.path(), root.join("linkdir")).unwrap_or_else(|e| panic!("{e}"));
    symlink("/nonexistent", root.join("dangling")).unwrap_or_else(|e| panic!("{e}"));
    write(outside.path(), "new.txt", b"written behind the link");
    write(root, "linkdir/through.txt", b"written through the link");
    write(root, "after.txt", b"after");
    expect_changes(&mut rx, 1, &["after.txt".to_owned()]).await;
    assert_eq!(arrivals(&mut rx, SETTLE * 3).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_folder_reports_its_own_key_and_dropping_stops() {
    let (one, two) = (tempdir(), tempdir());
    let folders = vec![
        (7, one.path().to_path_buf(), Vec::new()),
        (9, two.path().to_path_buf(), globs(&["*.log"])),
    ];
    let (watcher, mut rx) = FolderWatcher::start(folders, SETTLE).unwrap_or_else(|e| panic!("{e}"));
    write(one.path(), "a.log", b"a");
    expect_changes(&mut rx, 7, &["a.log".to_owned()]).await;
    write(two.path(), "b.log", b"ignored here");
    write(two.path(), "b.txt", b"b");
    expect_changes(&mut rx, 9, &["b.txt".to_owned()]).await;
    drop(watcher);
    write(one.path(), "late.txt", b"after the drop");
    let end = tokio::time::timeout(PATIENCE, rx.recv()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[test]
fn start_refuses_a_missing_folder_or_a_file() {
    let dir = tempdir();
    let missing = dir.path().join("missing");
    let started = FolderWatcher::start(vec![(0, missing, Vec::new())], SETTLE);
    assert!(matches!(started, Err(WatchError::Io { .. })), "{started:?}");
    write(dir.path(), "file", b"x");
    let started = FolderWatcher::start(vec![(0, dir.path().join("file"), Vec::new())], SETTLE);
    assert!(
        matches!(started, Err(WatchError::NotAFolder(_))),
        "{started:?}"
    );
}

// The settler by hand: no inotify, no debouncer.

fn settler(root: &Path, options: WatchOptions) -> (Settler, mpsc::Receiver<Change>) {
    let (changes, rx) = mpsc::channel(64);
    let settler = Settler {
        folders: vec![Folder {
            key: 1,
            root: root.to_path_buf(),
            filter: FolderFilter::new(globs(&["*.raw"])),
        }],
        options,
        pending: HashMap::new(),
        next_wake: None,
        snapshot: None,
        reported: HashMap::new(),
        pruned: Instant::now(),
        cancel: Arc::new(AtomicBool::new(false)),
        changes,
    };
    (settler, rx)
}

fn pending_paths(settler: &Settler) -> BTreeSet<&str> {
    settler.pending.keys().map(|(_, p)| p.as_str()).collect()
}

fn event(kind: EventKind, paths: &[&Path]) -> DebouncedEvent {
    let mut event = Event::new(kind);
    for path in paths {
        event = event.add_path(path.to_path_buf());
    }
    DebouncedEvent::new(event, Instant::now())
}

fn set_mtime(path: &Path, ago: Duration) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{e}"));
    file.set_modified(SystemTime::now() - ago)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn events_name_the_file_to_look_at() {
    use notify::event::{DataChange, MetadataKind, RemoveKind};
    let (a, b) = (Path::new("/r/a"), Path::new("/r/b"));
    type Case<'a> = (EventKind, &'a [&'a Path], Option<(&'a Path, Target)>);
    let cases: &[Case<'_>] = &[
        (
            EventKind::Create(CreateKind::File),
            &[a],
            Some((a, Target::File)),
        ),
        (
            EventKind::Create(CreateKind::Folder),
            &[a],
            Some((a, Target::Dir)),
        ),
        (
            EventKind::Create(CreateKind::Any),
            &[a],
            Some((a, Target::Unknown)),
        ),
        (
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            &[a],
            Some((a, Target::File)),
        ),
        (
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            &[a],
            Some((a, Target::File)),
        ),
        (
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &[a],
            Some((a, Target::File)),
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[a, b],
            Some((b, Target::Unknown)),
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            &[b],
            Some((b, Target::Unknown)),
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            &[a],
            None,
        ),
        (
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &[a],
            None,
        ),
        (
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            &[a],
            None,
        ),
        (EventKind::Remove(RemoveKind::File), &[a], None),
        (EventKind::Other, &[a], None),
        (EventKind::Create(CreateKind::File), &[], None),
    ];
    for (kind, paths, expected) in cases {
        let event = event(*kind, paths);
        assert!(target(&event) == *expected, "{kind:?}");
    }
}

#[tokio::test]
async fn the_settler_waits_for_the_mtime_and_drops_what_is_gone() {
    let dir = tempdir();
    let root = dir.path();
    let settle = Duration::from_secs(60);
    let (mut settler, mut rx) = settler(root, WatchOptions::new(settle));
    write(root, "old.txt", b"old");
    set_mtime(&root.join("old.txt"), Duration::from_secs(3600));
    write(root, "fresh.txt", b"written just now");
    write(root, "gone.txt", b"deleted before it settles");
    fs::create_dir(root.join("dir")).unwrap_or_else(|e| panic!("{e}"));
    let past = Instant::now() - settle * 2;
    for rel in ["old.txt", "fresh.txt", "gone.txt", "dir"] {
        settler.touch((0, rel.to_owned()), past);
    }
    fs::remove_file(root.join("gone.txt")).unwrap_or_else(|e| panic!("{e}"));
    let (_keep, mut stop) = oneshot::channel();
    assert!(settler.sweep(&mut stop).await.is_ok());
    assert_eq!(rx.try_recv().ok(), Some(change("old.txt")));
    assert!(rx.try_recv().is_err());
    // Written within `settle`: it waits for the rest of it.
    assert_eq!(pending_paths(&settler), BTreeSet::from(["fresh.txt"]));
    let wake = settler.next_wake.unwrap_or_else(|| panic!("no wake-up"));
    assert!(wake > Instant::now() + settle / 2);
    // With a maximum delay it is reported anyway.
    settler.options.max_delay = Some(settle);
    if let Some(pending) = settler.pending.values_mut().next() {
        pending.first = past;
        pending.deadline = past;
    }
    assert!(settler.sweep(&mut stop).await.is_ok());
    assert_eq!(rx.try_recv().ok(), Some(change("fresh.txt")));
    assert!(settler.pending.is_empty());
}

#[tokio::test]
async fn a_file_unchanged_since_its_report_is_not_reported_again() {
    let dir = tempdir();
    let root = dir.path();
    let settle = Duration::from_millis(10);
    let (mut settler, mut rx) = settler(root, WatchOptions::new(settle));
    let (_keep, mut stop) = oneshot::channel();
    let path = root.join("a.txt");
    write(root, "a.txt", b"one");
    set_mtime(&path, Duration::from_secs(60));
    let mut sweep_after_touch = async |settler: &mut Settler| {
        settler.touch((0, "a.txt".to_owned()), Instant::now() - settle * 2);
        assert!(settler.sweep(&mut stop).await.is_ok());
    };
    sweep_after_touch(&mut settler).await;
    assert_eq!(rx.try_recv().ok(), Some(change("a.txt")));
    // An event that changed nothing, or a walk after lost events.
    sweep_after_touch(&mut settler).await;
    assert!(rx.try_recv().is_err());
    // Modified: reported.
    write(root, "a.txt", b"two");
    set_mtime(&path, Duration::from_secs(30));
    sweep_after_touch(&mut settler).await;
    assert_eq!(rx.try_recv().ok(), Some(change("a.txt")));
    // Its permissions changed (ctime): reported.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
    sweep_after_touch(&mut settler).await;
    assert_eq!(rx.try_recv().ok(), Some(change("a.txt")));
    // Replaced by another file renamed into place, same size and mtime: reported.
    write(root, "a.txt.part", b"two");
    set_mtime(&root.join("a.txt.part"), Duration::from_secs(30));
    fs::rename(root.join("a.txt.part"), &path).unwrap_or_else(|e| panic!("{e}"));
    sweep_after_touch(&mut settler).await;
    assert_eq!(rx.try_recv().ok(), Some(change("a.txt")));
}

#[test]
fn lost_events_and_new_folders_are_walked() {
    let dir = tempdir();
    let root = dir.path();
    let (mut settler, _rx) = settler(root, WatchOptions::new(SETTLE));
    write(root, "a.txt", b"a");
    write(root, "new/b.txt", b"b");
    write(root, "new/c.raw", b"ignored");
    write(root, "new/d.txt.part", b"partial");
    settler.ingest(vec![event(
        EventKind::Create(CreateKind::Folder),
        &[&root.join("new")],
    )]);
    assert_eq!(pending_paths(&settler), BTreeSet::from(["new/b.txt"]));
    let overflow = DebouncedEvent::new(
        Event::new(EventKind::Other).set_flag(Flag::Rescan),
        Instant::now(),
    );
    settler.ingest(vec![overflow]);
    assert_eq!(
        pending_paths(&settler),
        BTreeSet::from(["a.txt", "new/b.txt"])
    );
}

#[test]
fn the_periodic_walk_reports_what_changed_since_the_last() {
    let dir = tempdir();
    let root = dir.path();
    let (mut settler, _rx) = settler(root, WatchOptions::new(SETTLE).rescan_every(SETTLE));
    write(root, "same.txt", b"same");
    write(root, "edited.txt", b"before");
    settler.snapshot = Some(settler.walk_all());
    write(root, "edited.txt", b"after, longer");
    write(root, "new.txt", b"new");
    write(root, "new.raw", b"ignored");
    settler.rescan();
    assert_eq!(
        pending_paths(&settler),
        BTreeSet::from(["edited.txt", "new.txt"])
    );
    settler.pending.clear();
    settler.rescan();
    assert!(settler.pending.is_empty());
}
