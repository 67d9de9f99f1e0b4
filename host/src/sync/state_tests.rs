//! Tests of the state database on real files: the queue's order, replacement and backoff, the
//! index, reopening, damaged values, and crashes of a child process (this test binary run again
//! as [`child`]) in the middle of its writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::*;

const P: &str = "PEER-A";
const Q: &str = "PEER-B";
const CHILD_ENV: &str = "P2PHOST_STATE_TEST_CHILD";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn v(size: u64) -> FileVersion {
    FileVersion {
        size,
        mtime_ns: i128::from(size) * 1_000,
        hash: None,
    }
}

fn entry(size: u64, origin: Origin) -> IndexEntry {
    IndexEntry {
        size,
        mtime_ns: -5,
        hash: [size as u8; 32],
        origin,
    }
}

fn temp_state() -> (tempfile::TempDir, SyncState) {
    let dir = tempfile::tempdir().unwrap();
    let state = SyncState::open(&dir.path().join("state.redb")).unwrap();
    (dir, state)
}

fn enqueue(state: &SyncState, peer: &str, path: &str, version: FileVersion) -> bool {
    state
        .write(|b| b.enqueue(peer, "photos", path, version))
        .unwrap()
}

fn paths(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.path.as_str()).collect()
}

#[test]
fn queue_is_fifo_per_peer_and_complete_removes() {
    let (_dir, state) = temp_state();
    for (peer, path) in [(P, "c"), (Q, "x"), (P, "a"), (P, "b/d")] {
        assert!(enqueue(&state, peer, path, v(1)));
    }
    let jobs = state.pending(P, 10, t0()).unwrap();
    assert_eq!(paths(&jobs), ["c", "a", "b/d"]);
    assert_eq!(jobs[0].peer, P);
    assert_eq!(jobs[0].folder, "photos");
    assert_eq!(jobs[0].version, v(1));
    assert_eq!(jobs[0].attempts, 0);
    assert_eq!(paths(&state.pending(P, 2, t0()).unwrap()), ["c", "a"]);
    assert_eq!(paths(&state.pending(Q, 10, t0()).unwrap()), ["x"]);
    assert!(state.pending("PEER", 10, t0()).unwrap().is_empty());

    assert!(state.write(|b| b.complete(&jobs[0])).unwrap());
    assert!(!state.write(|b| b.complete(&jobs[0])).unwrap());
    assert_eq!(paths(&state.pending(P, 10, t0()).unwrap()), ["a", "b/d"]);
    assert_eq!(state.queue_len().unwrap(), 3);
    assert_eq!(state.queue_len_for(P).unwrap(), 2);
    assert_eq!(state.queue_len_for(Q).unwrap(), 1);
    assert_eq!(state.queue_len_for("PEER").unwrap(), 0);
}

#[test]
fn requeue_replaces_the_version_and_keeps_the_place() {
    let (_dir, state) = temp_state();
    assert!(enqueue(&state, P, "a", v(1)));
    assert!(enqueue(&state, P, "b", v(1)));
    assert!(!enqueue(&state, P, "a", v(2)));
    assert!(!enqueue(&state, P, "a", v(3)));
    let jobs = state.pending(P, 10, t0()).unwrap();
    assert_eq!(paths(&jobs), ["a", "b"]);
    assert_eq!(jobs[0].version, v(3));
    assert_eq!(state.queue_len().unwrap(), 2);
    assert_eq!(state.queue_len_for(P).unwrap(), 2);
}

#[test]
fn completing_an_outdated_version_keeps_the_newer_one() {
    let (_dir, state) = temp_state();
    enqueue(&state, P, "a", v(1));
    let sent = state.pending(P, 1, t0()).unwrap().remove(0);
    // The file changed while `sent` was on its way.
    let newer = FileVersion {
        hash: Some([7; 32]),
        ..v(1)
    };
    enqueue(&state, P, "a", newer);
    assert!(!state.write(|b| b.complete(&sent)).unwrap());
    let jobs = state.pending(P, 10, t0()).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].version, newer);
    assert!(state.write(|b| b.complete(&jobs[0])).unwrap());
    assert_eq!(state.queue_len().unwrap(), 0);
    assert_eq!(state.next_due(P).unwrap(), None);
}

#[test]
fn backoff_doubles_from_one_second_to_five_minutes() {
    let secs: Vec<u64> = [0, 1, 2, 3, 8, 9, 10, 11, u32::MAX]
        .into_iter()
        .map(|n| backoff(n).as_secs())
        .collect();
    assert_eq!(secs, [1, 1, 2, 4, 128, 256, 300, 300, 300]);
}

#[test]
fn a_failed_job_waits_out_its_backoff_in_its_place() {
    let (_dir, state) = temp_state();
    let now = t0();
    enqueue(&state, P, "a", v(1));
    enqueue(&state, P, "b", v(1));
    enqueue(&state, Q, "a", v(1));
    let a = state.pending(P, 1, now).unwrap().remove(0);

    let due = state.write(|b| b.retry_later(&a, now)).unwrap();
    assert_eq!(due, Some(now + Duration::from_secs(1)));
    assert_eq!(paths(&state.pending(P, 10, now).unwrap()), ["b"]);
    let almost = now + Duration::from_millis(999);
    assert_eq!(paths(&state.pending(P, 10, almost).unwrap()), ["b"]);
    // Due again, in its first place, counting the failure.
    let jobs = state.pending(P, 10, now + Duration::from_secs(1)).unwrap();
    assert_eq!(paths(&jobs), ["a", "b"]);
    assert_eq!(jobs[0].attempts, 1);
    // Another peer's copy of the file is not held back.
    assert_eq!(paths(&state.pending(Q, 10, now).unwrap()), ["a"]);

    // `b` is due, so the next due time has passed; without it, `a`'s is next.
    assert!(state.next_due(P).unwrap().unwrap() <= now);
    state.write(|b| b.complete(&jobs[1])).unwrap();
    assert_eq!(state.next_due(P).unwrap(), due);

    // A second failure doubles the wait.
    let later = now + Duration::from_secs(1);
    let due = state.write(|b| b.retry_later(&jobs[0], later)).unwrap();
    assert_eq!(due, Some(later + Duration::from_secs(2)));
    assert!(state.pending(P, 10, later).unwrap().is_empty());
    assert_eq!(state.pending(P, 10, due.unwrap()).unwrap()[0].attempts, 2);

    // The peer is back: everything is due at once.
    assert_eq!(state.write(|b| b.reset_backoff(P)).unwrap(), 1);
    let jobs = state.pending(P, 10, later).unwrap();
    assert_eq!(paths(&jobs), ["a"]);
    assert_eq!(jobs[0].attempts, 0);

    // A file no longer queued has nothing to retry.
    state.write(|b| b.complete(&jobs[0])).unwrap();
    assert_eq!(
        state.write(|b| b.retry_later(&jobs[0], later)).unwrap(),
        None
    );
    assert_eq!(state.next_due(P).unwrap(), None);
}

#[test]
fn index_records_gets_forgets_and_lists_a_folder() {
    let (_dir, state) = temp_state();
    let from_q = entry(2, Origin::Peer(Q.to_owned()));
    state
        .write(|b| {
            b.record("photos", "b/c.jpg", &entry(1, Origin::Local))?;
            b.record("photos", "a\u{1}\n é.jpg", &from_q)?;
            // Folders whose ids are prefixes of each other stay apart.
            b.record("photo", "x", &entry(3, Origin::Local))?;
            b.record("photos2", "y", &entry(4, Origin::Local))?;
            b.record("photos", "b/c.jpg", &entry(5, Origin::Local))
        })
        .unwrap();
    assert_eq!(
        state.recorded("photos", "b/c.jpg").unwrap(),
        Some(entry(5, Origin::Local))
    );
    assert_eq!(
        state.recorded("photos", "a\u{1}\n é.jpg").unwrap(),
        Some(from_q.clone())
    );
    assert_eq!(state.recorded("photos", "x").unwrap(), None);
    assert_eq!(
        state.recorded_in("photos").unwrap(),
        [
            ("a\u{1}\n é.jpg".to_owned(), from_q),
            ("b/c.jpg".to_owned(), entry(5, Origin::Local)),
        ]
    );
    assert_eq!(state.recorded_in("photo").unwrap().len(), 1);
    assert!(state.recorded_in("phot").unwrap().is_empty());

    assert!(state.write(|b| b.forget("photos", "b/c.jpg")).unwrap());
    assert!(!state.write(|b| b.forget("photos", "b/c.jpg")).unwrap());
    assert_eq!(state.recorded("photos", "b/c.jpg").unwrap(), None);
    assert!(state.write(|b| b.recorded("photo", "x")).unwrap().is_some());
}

#[test]
fn a_nul_in_a_key_is_refused_and_a_failed_write_keeps_nothing() {
    let (_dir, state) = temp_state();
    let err = state
        .write(|b| {
            b.enqueue(P, "photos", "a", v(1))?;
            b.record("photos", "a", &entry(1, Origin::Local))?;
            b.enqueue(P, "photos", "a\0b", v(1))
        })
        .unwrap_err();
    assert!(
        matches!(&err, StateError::Nul { what: "path", value } if value == "a\0b"),
        "{err:?}"
    );
    assert_eq!(state.queue_len().unwrap(), 0);
    assert_eq!(state.recorded("photos", "a").unwrap(), None);
    for bad in [
        state.write(|b| b.enqueue("P\0", "photos", "a", v(1))),
        state.write(|b| b.enqueue(P, "ph\0tos", "a", v(1))),
    ] {
        assert!(matches!(bad, Err(StateError::Nul { .. })));
    }
    let from_bad_peer = entry(1, Origin::Peer("P\0".to_owned()));
    assert!(matches!(
        state.write(|b| b.record("photos", "a", &from_bad_peer)),
        Err(StateError::Nul {
            what: "peer id",
            ..
        })
    ));
}

#[test]
fn everything_is_there_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    {
        let state = SyncState::open(&file).unwrap();
        enqueue(&state, P, "a", v(1));
        enqueue(&state, P, "b", v(2));
        let b = state.pending(P, 10, t0()).unwrap().remove(1);
        state.write(|batch| batch.retry_later(&b, t0())).unwrap();
        state
            .write(|batch| batch.record("photos", "a", &entry(1, Origin::Peer(Q.to_owned()))))
            .unwrap();
    }
    let state = SyncState::open(&file).unwrap();
    assert_eq!(state.path(), file);
    enqueue(&state, P, "c", v(3));
    let later = t0() + Duration::from_secs(1);
    let jobs = state.pending(P, 10, later).unwrap();
    assert_eq!(paths(&jobs), ["a", "b", "c"]);
    assert_eq!((jobs[1].version, jobs[1].attempts), (v(2), 1));
    assert_eq!(paths(&state.pending(P, 10, t0()).unwrap()), ["a", "c"]);
    assert_eq!(
        state.recorded("photos", "a").unwrap(),
        Some(entry(1, Origin::Peer(Q.to_owned())))
    );
}

#[test]
fn a_damaged_value_is_an_error_naming_its_key() {
    let (_dir, state) = temp_state();
    enqueue(&state, P, "a", v(1));
    let put = |table: TableDefinition<'static, Bytes, Bytes>, key: &[u8], value: &[u8]| {
        let tx = state.db.begin_write().unwrap();
        tx.open_table(table).unwrap().insert(key, value).unwrap();
        tx.commit().unwrap();
    };
    let cases: [(&[u8], &str); 4] = [
        (b"", "empty value"),
        (&[FORMAT, 1, 2], "truncated"),
        (&[FORMAT + 1, 0], "unknown format"),
        (&[0xff; 200], "unknown format"),
    ];
    for (value, reason) in cases {
        put(OUTBOX, b"PEER-A\0photos\0a", value);
        let err = state.pending(P, 10, t0()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(r#""PEER-A\0photos\0a""#), "{text}");
        assert!(text.contains("outbox") && text.contains(reason), "{text}");
        assert!(state.next_due(P).is_err());
        assert!(state.write(|b| b.enqueue(P, "photos", "a", v(1))).is_err());

        put(INDEX, b"photos\0a", value);
        let text = state.recorded("photos", "a").unwrap_err().to_string();
        assert!(text.contains(r#"index entry "photos\0a""#), "{text}");
        assert!(state.recorded_in("photos").is_err());
    }
    // An order entry without its outbox entry.
    put(ORDER, &order_key(P, 99), b"photos\0gone");
    put(OUTBOX, b"PEER-A\0photos\0a", &encode_queued(&queued(0)));
    let text = state.pending(P, 10, t0()).unwrap_err().to_string();
    assert!(text.contains("no outbox entry"), "{text}");
}

fn queued(seq: u64) -> Queued {
    Queued {
        seq,
        version: v(1),
        attempts: 0,
        not_before_ns: 0,
    }
}

#[test]
fn values_round_trip() {
    let q = Queued {
        seq: u64::MAX,
        version: FileVersion {
            size: 1 << 40,
            mtime_ns: -1,
            hash: Some([9; 32]),
        },
        attempts: 3,
        not_before_ns: 12,
    };
    assert_eq!(decode_queued(&encode_queued(&q)), Ok(q));
    let mut long = encode_queued(&q);
    long.push(0);
    assert_eq!(decode_queued(&long), Err("trailing bytes"));
    for origin in [Origin::Local, Origin::Peer("MFZWI3D-é".to_owned())] {
        let e = entry(8, origin);
        assert_eq!(decode_index(&encode_index(&e)), Ok(e));
    }
}

#[test]
fn a_file_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    {
        let state = SyncState::open(&file).unwrap();
        let tx = state.db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("schema", 99).unwrap();
        tx.commit().unwrap();
    }
    let err = SyncState::open(&file).unwrap_err();
    assert!(
        matches!(err, StateError::Schema { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    std::fs::write(&file, vec![0x5a; 10_000]).unwrap();
    let err = SyncState::open(&file).unwrap_err();
    assert!(matches!(err, StateError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("state.redb"), "{err}");
}

#[test]
fn a_second_open_while_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    let first = SyncState::open(&file).unwrap();
    let err = SyncState::open(&file).unwrap_err();
    assert!(matches!(err, StateError::InUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("another p2phost run is using "), "{text}");
    assert!(text.contains("state.redb"), "{text}");
    drop(first);
    SyncState::open(&file).unwrap();
}

/// Runs this test binary again as [`child`], doing `task` on the database `file`.
fn spawn_child(task: &str, file: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sync::state::tests::child",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{task}:{}", file.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads the child's lines until one holds `child> WORD`; returns the rest of that line. (The
/// test harness writes on the same lines: `test … ... child> open`.)
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, word: &str) -> String {
    let marker = format!("child> {word}");
    for line in lines {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once(&marker) {
            return rest.trim().to_owned();
        }
    }
    panic!("the child ended before printing {marker:?}");
}

#[test]
fn another_process_using_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    let mut child = spawn_child("hold", &file);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for(&mut lines, "open");
    let err = SyncState::open(&file).unwrap_err();
    assert!(matches!(err, StateError::InUse { .. }), "{err:?}");
    drop(child.stdin.take()); // the child exits at the end of its input
    assert!(child.wait().unwrap().success());
    SyncState::open(&file).unwrap();
}

/// The jobs and index entries the crash children write: file `i` is `f{i:04}`, queued and
/// recorded in the same transaction, ten files a transaction.
fn crash_batch(b: &mut Batch<'_>, from: u64, count: u64) -> Result<(), StateError> {
    for i in from..from + count {
        let path = format!("f{i:04}");
        b.enqueue(P, "photos", &path, v(i))?;
        b.record("photos", &path, &entry(i, Origin::Local))?;
    }
    Ok(())
}

/// Checks that `file` holds exactly files `0..n` for some `n`, queued in order and indexed;
/// returns `n`.
fn consistent_prefix(file: &Path) -> u64 {
    let state = SyncState::open(file).unwrap();
    let n = state.queue_len().unwrap();
    let jobs = state.pending(P, usize::MAX, t0()).unwrap();
    let index = state.recorded_in("photos").unwrap();
    assert_eq!(jobs.len() as u64, n);
    assert_eq!(index.len() as u64, n);
    for (i, (job, (path, entry_))) in (0..).zip(jobs.iter().zip(&index)) {
        assert_eq!(job.path, format!("f{i:04}"));
        assert_eq!(job.version, v(i));
        assert_eq!(path, &job.path);
        assert_eq!(entry_, &entry(i, Origin::Local));
    }
    // Still writable, and the queue goes on after the last committed file.
    enqueue(&state, P, "after", v(0));
    assert_eq!(
        state
            .pending(P, usize::MAX, t0())
            .unwrap()
            .last()
            .unwrap()
            .path,
        "after"
    );
    n
}

#[test]
fn an_abort_in_the_middle_of_a_write_keeps_every_commit_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    let mut child = spawn_child("abort", &file);
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child should have aborted");
    assert_eq!(consistent_prefix(&file), 500);
}

#[test]
fn a_kill_9_during_a_stream_of_writes_leaves_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    let mut child = spawn_child("stream", &file);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut committed = 0;
    while committed < 300 {
        committed = wait_for(&mut lines, "committed").parse().unwrap();
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let n = consistent_prefix(&file);
    assert!(
        n >= committed && n.is_multiple_of(10),
        "{n} files after {committed} committed"
    );
    assert!(n < STREAM_FILES, "the kill came after the last write");
}

/// How many files the `stream` child writes if it is not killed first: far more than it writes
/// before its parent has read 300 of its lines.
const STREAM_FILES: u64 = 200_000;

/// Not a test: the child process of the tests above, run with `P2PHOST_STATE_TEST_CHILD` set to
/// `TASK:FILE`. `hold` opens the file and keeps it open until its input ends; `abort` commits 500
/// files and aborts the process halfway through the next write; `stream` commits files ten at a
/// time, printing the count after each commit, until it is killed.
#[test]
#[ignore = "the child process of the crash tests"]
fn child() {
    let Ok(task) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (task, file) = task.split_once(':').unwrap();
    let state = SyncState::open(Path::new(file)).unwrap();
    let mut out = std::io::stdout();
    match task {
        "hold" => {
            writeln!(out, "child> open").unwrap();
            out.flush().unwrap();
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
        }
        "abort" => {
            for from in (0..500).step_by(10) {
                state.write(|b| crash_batch(b, from, 10)).unwrap();
            }
            let _ = state.write(|b| -> Result<(), StateError> {
                crash_batch(b, 500, 5)?;
                std::process::abort()
            });
        }
        "stream" => {
            for from in (0..STREAM_FILES).step_by(10) {
                state.write(|b| crash_batch(b, from, 10)).unwrap();
                writeln!(out, "child> committed {}", from + 10).unwrap();
                out.flush().unwrap();
            }
        }
        _ => panic!("unknown task {task}"),
    }
}

#[test]
fn is_queued_says_whether_a_peer_still_waits_for_a_file() {
    let (_dir, state) = temp_state();
    assert!(!state.is_queued(P, "photos", "a").unwrap());
    enqueue(&state, P, "a", v(1));
    assert!(state.is_queued(P, "photos", "a").unwrap());
    assert!(!state.is_queued(Q, "photos", "a").unwrap());
    assert!(!state.is_queued(P, "other", "a").unwrap());
    let job = state.pending(P, 1, t0()).unwrap().remove(0);
    state.write(|b| b.complete(&job)).unwrap();
    assert!(!state.is_queued(P, "photos", "a").unwrap());
}

#[test]
fn queued_gives_the_job_with_its_failures() {
    let (_dir, state) = temp_state();
    assert_eq!(state.queued(P, "photos", "a").unwrap(), None);
    enqueue(&state, P, "a", v(1));
    let job = state.queued(P, "photos", "a").unwrap().unwrap();
    assert_eq!((job.version, job.attempts), (v(1), 0));
    state.write(|b| b.retry_later(&job, t0())).unwrap();
    enqueue(&state, P, "a", v(2));
    let job = state.queued(P, "photos", "a").unwrap().unwrap();
    assert_eq!(
        (job.path.as_str(), job.version, job.attempts),
        ("a", v(2), 1)
    );
    assert_eq!(state.queued(Q, "photos", "a").unwrap(), None);
}
