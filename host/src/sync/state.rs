//! The daemon's durable state: the outbox (which files each peer still has to receive) and the
//! index (what each folder's files were when they were last synced), in one redb file in the
//! identity folder (`<identity dir>/state.redb`).
//!
//! Why a database rather than files of our own: the daemon promises that nothing queued is lost
//! across a crash or a restart, and that on start it can tell what changed while it was down. redb
//! commits atomically and durably (copy-on-write B-trees, two commit slots, checksums), so a
//! `kill -9` at any moment leaves the state of the last commit, never half of a change.
//!
//! The contract:
//! - Every change goes through [`SyncState::write`]: one transaction, committed with
//!   [`Durability::Immediate`] (on disk before `write` returns) or not at all if the closure fails.
//!   Changes that belong together go in one `write` (index a local change *and* queue it for its
//!   peers), so that a crash cannot split them, and a burst of files costs one fsync, not one per
//!   change.
//! - Time is an argument (`now`), never read here, so backoff is tested without sleeping.
//! - Calls block on the disk (a `write` waits for an fsync): async code calls them through
//!   `spawn_blocking`. The handle is `Send + Sync`; writes are serialized, reads run beside them.
//! - One process at a time: a second [`SyncState::open`] of the same file, from this process or
//!   another, fails with [`StateError::InUse`].
//! - Peer ids, folder ids and paths are keys joined by NUL bytes, so they may hold any other
//!   character; one that holds a NUL is refused ([`StateError::Nul`]).
//!
//! ```no_run
//! # use std::time::SystemTime;
//! # use p2phost::sync::{FileVersion, IndexEntry, Origin, SyncState};
//! # fn main() -> Result<(), p2phost::sync::StateError> {
//! let state = SyncState::open("/home/me/.local/share/p2phost/state.redb".as_ref())?;
//! let (version, hash) = (FileVersion { size: 5, mtime_ns: 1, hash: None }, [0; 32]);
//! // A local change: remember it and queue it for the folder's peers, in one commit.
//! state.write(|batch| {
//!     batch.record("photos", "2024/a.jpg", &IndexEntry { size: 5, mtime_ns: 1, hash, origin: Origin::Local })?;
//!     batch.enqueue("PEER-ID", "photos", "2024/a.jpg", version)
//! })?;
//! // The sender's loop.
//! for job in state.pending("PEER-ID", 16, SystemTime::now())? {
//!     let sent = true; // … send job.path …
//!     if sent {
//!         state.write(|batch| batch.complete(&job))?; // kept if the file changed meanwhile
//!     } else {
//!         state.write(|batch| batch.retry_later(&job, SystemTime::now()))?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Layout (schema 1): `outbox` maps `peer \0 folder \0 path` to the queued version, its sequence
//! number, attempts and not-before time; `outbox_order` maps `peer \0 sequence` (big-endian) to
//! `folder \0 path`, which gives each peer's queue in the order files were first queued; `index`
//! maps `folder \0 path` to an [`IndexEntry`]; `meta` holds the schema and the next sequence
//! number. Values start with a format byte, so a later p2phost can tell old entries from new.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};

type Bytes = &'static [u8];

const OUTBOX: TableDefinition<'static, Bytes, Bytes> = TableDefinition::new("outbox");
const ORDER: TableDefinition<'static, Bytes, Bytes> = TableDefinition::new("outbox_order");
const INDEX: TableDefinition<'static, Bytes, Bytes> = TableDefinition::new("index");
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

/// The layout of the tables; a file with another one is refused rather than misread.
const SCHEMA: u64 = 1;
/// The first byte of every value.
const FORMAT: u8 = 1;
/// redb's page cache. Its default (1 GiB) is sized for databases far larger than a queue and an
/// index, and the daemon's memory is measured.
const CACHE_BYTES: usize = 16 << 20;

/// How long the first retry waits; each failure doubles it, up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries: a peer that comes back is served within this.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// What went wrong with the state database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Another daemon holds the file.
    #[error(
        "another p2phost run is using {}: stop it first, or give this one another [identity] dir",
        path.display()
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file could not be opened as a database.
    #[error("cannot open the state database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: DatabaseError,
    },
    /// The file was written with another table layout (by a newer p2phost).
    #[error(
        "the state database {} has schema {found}, this p2phost reads schema {SCHEMA}: run the \
         p2phost that wrote it, or move the file away to start with an empty queue",
        path.display()
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The schema the file says it has.
        found: u64,
    },
    /// A read, write or commit failed.
    #[error("the state database failed: {0}")]
    Database(#[from] redb::Error),
    /// A stored value does not decode.
    #[error("unreadable {table} entry {key}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The entry's key, NUL separators shown as `\0`.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A peer id, folder id or path holds a NUL byte, the keys' separator.
    #[error("the {what} {value:?} holds a NUL byte")]
    Nul {
        /// `peer id`, `folder id` or `path`.
        what: &'static str,
        /// The text.
        value: String,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StateError {
            fn from(e: $t) -> Self {
                Self::Database(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A version of a file, as queued: enough to tell whether the file changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i128,
    /// The content hash, when it was computed before queuing.
    pub hash: Option<[u8; 32]>,
}

/// A file a peer is to receive, from [`SyncState::pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Job {
    /// The peer's id.
    pub peer: String,
    /// The folder's id.
    pub folder: String,
    /// The path in the folder, relative, `/`-separated.
    pub path: String,
    /// The version queued when the job was read.
    pub version: FileVersion,
    /// How many times sending it failed.
    pub attempts: u32,
}

/// Where a file's indexed version came from: what no-echo and conflict detection look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A change made in the folder on this host.
    Local,
    /// Received from this peer (its id), which therefore need not be sent it again.
    Peer(String),
}

/// What a file was when it was last synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i128,
    /// The content hash.
    pub hash: [u8; 32],
    /// Who made that version.
    pub origin: Origin,
}

/// The wait after the `attempts`-th failure: 1 s, doubling, at most [`MAX_RETRY`].
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// The open state database. See the [module docs](self).
#[derive(Debug)]
pub struct SyncState {
    db: Database,
    path: PathBuf,
}

impl SyncState {
    /// Opens the database at `path`, creating it if the file is missing or empty.
    ///
    /// Every page is checked against its checksum on open, so a damaged file is an error here
    /// rather than a panic later.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let path = path.to_path_buf();
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|source| match source {
                DatabaseError::DatabaseAlreadyOpen => StateError::InUse { path: path.clone() },
                source => StateError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let state = Self { db, path };
        let found = state.write(|batch| batch.schema())?;
        if found != SCHEMA {
            return Err(StateError::Schema {
                path: state.path,
                found,
            });
        }
        Ok(state)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `change` in one transaction and commits it durably; if `change` fails, nothing of it
    /// is kept.
    pub fn write<T>(
        &self,
        change: impl FnOnce(&mut Batch<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        let result = Batch::open(&tx).and_then(|mut batch| change(&mut batch));
        match result {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(e) => {
                // The change's error is the one to report; an abort that fails leaves the
                // file as it was committed, which is what aborting wants.
                let _ = tx.abort();
                Err(e)
            }
        }
    }

    /// Up to `limit` of `peer`'s jobs that are due at `now`, in the order they were first queued
    /// (a later version of a queued file keeps its place).
    pub fn pending(
        &self,
        peer: &str,
        limit: usize,
        now: SystemTime,
    ) -> Result<Vec<Job>, StateError> {
        let tx = self.db.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        let order = tx.open_table(ORDER)?;
        let now = nanos(now);
        let (lo, hi) = prefix_range(peer);
        let mut jobs = Vec::new();
        for entry in order.range(lo.as_slice()..hi.as_slice())? {
            if jobs.len() >= limit {
                break;
            }
            let (order_key, file) = entry?;
            let key = [&lo, file.value()].concat();
            let Some(queued) = read_queued(&outbox, &key)? else {
                return Err(corrupt(
                    "outbox_order",
                    order_key.value(),
                    "no outbox entry",
                ));
            };
            if queued.not_before_ns <= now {
                let (folder, path) = split_file(file.value())
                    .ok_or_else(|| corrupt("outbox_order", order_key.value(), "bad file key"))?;
                jobs.push(Job {
                    peer: peer.to_owned(),
                    folder,
                    path,
                    version: queued.version,
                    attempts: queued.attempts,
                });
            }
        }
        Ok(jobs)
    }

    /// When `peer`'s next job is due (a time not after now if one is due already), or `None` if
    /// nothing is queued for it.
    pub fn next_due(&self, peer: &str) -> Result<Option<SystemTime>, StateError> {
        let tx = self.db.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        let (lo, hi) = prefix_range(peer);
        let mut first: Option<u64> = None;
        for entry in outbox.range(lo.as_slice()..hi.as_slice())? {
            let (key, value) = entry?;
            let queued =
                decode_queued(value.value()).map_err(|r| corrupt("outbox", key.value(), r))?;
            first = Some(first.map_or(queued.not_before_ns, |t| t.min(queued.not_before_ns)));
        }
        Ok(first.map(from_nanos))
    }

    /// How many files are queued, for all peers together.
    pub fn queue_len(&self) -> Result<u64, StateError> {
        Ok(self.db.begin_read()?.open_table(OUTBOX)?.len()?)
    }

    /// Whether `path` of `folder` waits in `peer`'s queue (a local change not delivered yet).
    pub fn is_queued(&self, peer: &str, folder: &str, path: &str) -> Result<bool, StateError> {
        let tx = self.db.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        Ok(read_queued(&outbox, &join(&[peer, folder, path]))?.is_some())
    }

    /// The job for `path` of `folder` in `peer`'s queue, due or not: its version and how often
    /// sending it failed (conflict resolution asks whether a local change can reach the peer).
    pub fn queued(&self, peer: &str, folder: &str, path: &str) -> Result<Option<Job>, StateError> {
        let tx = self.db.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        Ok(
            read_queued(&outbox, &join(&[peer, folder, path]))?.map(|queued| Job {
                peer: peer.to_owned(),
                folder: folder.to_owned(),
                path: path.to_owned(),
                version: queued.version,
                attempts: queued.attempts,
            }),
        )
    }

    /// How many files are queued for `peer`, due or not.
    pub fn queue_len_for(&self, peer: &str) -> Result<u64, StateError> {
        let tx = self.db.begin_read()?;
        let order = tx.open_table(ORDER)?;
        let (lo, hi) = prefix_range(peer);
        let mut n = 0;
        for entry in order.range(lo.as_slice()..hi.as_slice())? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// What `path` in `folder` was when last synced.
    pub fn recorded(&self, folder: &str, path: &str) -> Result<Option<IndexEntry>, StateError> {
        let tx = self.db.begin_read()?;
        recorded(&tx.open_table(INDEX)?, folder, path)
    }

    /// Every indexed file of `folder`, by path (byte order): what the start-up scan compares
    /// the disk with.
    pub fn recorded_in(&self, folder: &str) -> Result<Vec<(String, IndexEntry)>, StateError> {
        let tx = self.db.begin_read()?;
        let index = tx.open_table(INDEX)?;
        let (lo, hi) = prefix_range(folder);
        let mut entries = Vec::new();
        for entry in index.range(lo.as_slice()..hi.as_slice())? {
            let (key, value) = entry?;
            let key = key.value();
            let path = key
                .get(lo.len()..)
                .and_then(|p| std::str::from_utf8(p).ok())
                .ok_or_else(|| corrupt("index", key, "path is not UTF-8"))?;
            let indexed = decode_index(value.value()).map_err(|r| corrupt("index", key, r))?;
            entries.push((path.to_owned(), indexed));
        }
        Ok(entries)
    }
}

/// The changes of one [`SyncState::write`], applied together or not at all.
#[derive(Debug)]
pub struct Batch<'t> {
    outbox: Table<'t, Bytes, Bytes>,
    order: Table<'t, Bytes, Bytes>,
    index: Table<'t, Bytes, Bytes>,
    meta: Table<'t, &'static str, u64>,
}

impl<'t> Batch<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Self, StateError> {
        Ok(Self {
            outbox: tx.open_table(OUTBOX)?,
            order: tx.open_table(ORDER)?,
            index: tx.open_table(INDEX)?,
            meta: tx.open_table(META)?,
        })
    }

    /// The file's schema, set to ours if it has none yet.
    fn schema(&mut self) -> Result<u64, StateError> {
        if let Some(found) = self.meta.get("schema")? {
            return Ok(found.value());
        }
        self.meta.insert("schema", SCHEMA)?;
        Ok(SCHEMA)
    }

    /// Queues `version` of `path` in `folder` for `peer`. If that file is queued for that peer
    /// already, the new version replaces the old one, keeping its place and its backoff (the
    /// backoff is about the peer being unreachable, which a new version does not change).
    /// Returns whether the file was not queued before.
    pub fn enqueue(
        &mut self,
        peer: &str,
        folder: &str,
        path: &str,
        version: FileVersion,
    ) -> Result<bool, StateError> {
        no_nul("peer id", peer)?;
        no_nul("folder id", folder)?;
        no_nul("path", path)?;
        let key = join(&[peer, folder, path]);
        let (queued, new) = match read_queued(&self.outbox, &key)? {
            Some(old) => (Queued { version, ..old }, false),
            None => {
                let seq = self.next_seq()?;
                let file = join(&[folder, path]);
                self.order
                    .insert(order_key(peer, seq).as_slice(), file.as_slice())?;
                let queued = Queued {
                    seq,
                    version,
                    attempts: 0,
                    not_before_ns: 0,
                };
                (queued, true)
            }
        };
        self.outbox
            .insert(key.as_slice(), encode_queued(&queued).as_slice())?;
        Ok(new)
    }

    /// Takes a sent job off the queue, unless the queue holds another version of the file by
    /// now (it changed during the transfer), which then stays queued. Returns whether it was
    /// taken off.
    pub fn complete(&mut self, job: &Job) -> Result<bool, StateError> {
        let key = join(&[&job.peer, &job.folder, &job.path]);
        match read_queued(&self.outbox, &key)? {
            Some(queued) if queued.version == job.version => {
                self.outbox.remove(key.as_slice())?;
                self.order
                    .remove(order_key(&job.peer, queued.seq).as_slice())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records a failed attempt at the job's file: it is not due again before `now` plus the
    /// [`backoff`] for its number of failures. Applies to whichever version is queued now.
    /// Returns when it is due, or `None` if the file is no longer queued.
    pub fn retry_later(
        &mut self,
        job: &Job,
        now: SystemTime,
    ) -> Result<Option<SystemTime>, StateError> {
        let key = join(&[&job.peer, &job.folder, &job.path]);
        let Some(mut queued) = read_queued(&self.outbox, &key)? else {
            return Ok(None);
        };
        queued.attempts = queued.attempts.saturating_add(1);
        let due = now.checked_add(backoff(queued.attempts)).unwrap_or(now);
        queued.not_before_ns = nanos(due);
        self.outbox
            .insert(key.as_slice(), encode_queued(&queued).as_slice())?;
        Ok(Some(from_nanos(queued.not_before_ns)))
    }

    /// Makes all of `peer`'s jobs due now and forgets their failures: for when the peer comes
    /// back online, so that it need not wait out a backoff of up to [`MAX_RETRY`]. Returns how
    /// many jobs were waiting.
    pub fn reset_backoff(&mut self, peer: &str) -> Result<usize, StateError> {
        let (lo, hi) = prefix_range(peer);
        let mut waiting = Vec::new();
        for entry in self.outbox.range(lo.as_slice()..hi.as_slice())? {
            let (key, value) = entry?;
            let queued =
                decode_queued(value.value()).map_err(|r| corrupt("outbox", key.value(), r))?;
            if queued.attempts != 0 || queued.not_before_ns != 0 {
                waiting.push((key.value().to_vec(), queued));
            }
        }
        for (key, queued) in &waiting {
            let reset = Queued {
                attempts: 0,
                not_before_ns: 0,
                ..*queued
            };
            self.outbox
                .insert(key.as_slice(), encode_queued(&reset).as_slice())?;
        }
        Ok(waiting.len())
    }

    /// Records what `path` in `folder` is now synced as, replacing what was recorded.
    pub fn record(
        &mut self,
        folder: &str,
        path: &str,
        entry: &IndexEntry,
    ) -> Result<(), StateError> {
        no_nul("folder id", folder)?;
        no_nul("path", path)?;
        if let Origin::Peer(peer) = &entry.origin {
            no_nul("peer id", peer)?;
        }
        let key = join(&[folder, path]);
        self.index
            .insert(key.as_slice(), encode_index(entry).as_slice())?;
        Ok(())
    }

    /// Forgets `path` in `folder`. Returns whether it was recorded.
    pub fn forget(&mut self, folder: &str, path: &str) -> Result<bool, StateError> {
        let key = join(&[folder, path]);
        Ok(self.index.remove(key.as_slice())?.is_some())
    }

    /// What `path` in `folder` was when last synced, as this batch sees it: for a decision and
    /// its record in one transaction.
    pub fn recorded(&self, folder: &str, path: &str) -> Result<Option<IndexEntry>, StateError> {
        recorded(&self.index, folder, path)
    }

    fn next_seq(&mut self) -> Result<u64, StateError> {
        let seq = self.meta.get("next_seq")?.map_or(0, |v| v.value());
        self.meta.insert("next_seq", seq.saturating_add(1))?;
        Ok(seq)
    }
}

/// An outbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    /// Its place in the peer's queue (`outbox_order`).
    seq: u64,
    version: FileVersion,
    attempts: u32,
    /// Not sent before this time, nanoseconds since the Unix epoch; 0 when due.
    not_before_ns: u64,
}

fn read_queued(
    table: &impl ReadableTable<Bytes, Bytes>,
    key: &[u8],
) -> Result<Option<Queued>, StateError> {
    match table.get(key)? {
        Some(value) => decode_queued(value.value())
            .map(Some)
            .map_err(|r| corrupt("outbox", key, r)),
        None => Ok(None),
    }
}

fn recorded(
    table: &impl ReadableTable<Bytes, Bytes>,
    folder: &str,
    path: &str,
) -> Result<Option<IndexEntry>, StateError> {
    let key = join(&[folder, path]);
    match table.get(key.as_slice())? {
        Some(value) => decode_index(value.value())
            .map(Some)
            .map_err(|r| corrupt("index", &key, r)),
        None => Ok(None),
    }
}

fn no_nul(what: &'static str, value: &str) -> Result<(), StateError> {
    if value.contains('\0') {
        return Err(StateError::Nul {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn join(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

/// The keys that start with `id \0`: from `id \0` to `id \x01`, exclusive. Exact because an id
/// holds no NUL.
fn prefix_range(id: &str) -> (Vec<u8>, Vec<u8>) {
    let lo = [id.as_bytes(), b"\0"].concat();
    let hi = [id.as_bytes(), b"\x01"].concat();
    (lo, hi)
}

fn order_key(peer: &str, seq: u64) -> Vec<u8> {
    [peer.as_bytes(), b"\0", &seq.to_be_bytes()].concat()
}

/// `folder \0 path` → the two; the folder id holds no NUL, so the first one separates them.
fn split_file(file: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(file).ok()?;
    let (folder, path) = text.split_once('\0')?;
    Some((folder.to_owned(), path.to_owned()))
}

fn corrupt(table: &'static str, key: &[u8], reason: &'static str) -> StateError {
    StateError::Corrupt {
        table,
        key: format!("{:?}", String::from_utf8_lossy(key)),
        reason,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn from_nanos(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn encode_queued(q: &Queued) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 8 + 8 + 16 + 33 + 4 + 8);
    out.push(FORMAT);
    out.extend_from_slice(&q.seq.to_le_bytes());
    out.extend_from_slice(&q.version.size.to_le_bytes());
    out.extend_from_slice(&q.version.mtime_ns.to_le_bytes());
    match q.version.hash {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(&hash);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&q.attempts.to_le_bytes());
    out.extend_from_slice(&q.not_before_ns.to_le_bytes());
    out
}

fn decode_queued(bytes: &[u8]) -> Result<Queued, &'static str> {
    let mut r = Reader::new(bytes)?;
    let seq = r.u64()?;
    let size = r.u64()?;
    let mtime_ns = r.i128()?;
    let hash = match r.u8()? {
        0 => None,
        1 => Some(r.take::<32>()?),
        _ => return Err("bad hash tag"),
    };
    let queued = Queued {
        seq,
        version: FileVersion {
            size,
            mtime_ns,
            hash,
        },
        attempts: r.u32()?,
        not_before_ns: r.u64()?,
    };
    r.end()?;
    Ok(queued)
}

fn encode_index(e: &IndexEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 8 + 16 + 32 + 1 + 64);
    out.push(FORMAT);
    out.extend_from_slice(&e.size.to_le_bytes());
    out.extend_from_slice(&e.mtime_ns.to_le_bytes());
    out.extend_from_slice(&e.hash);
    match &e.origin {
        Origin::Local => out.push(0),
        Origin::Peer(peer) => {
            out.push(1);
            out.extend_from_slice(peer.as_bytes());
        }
    }
    out
}

fn decode_index(bytes: &[u8]) -> Result<IndexEntry, &'static str> {
    let mut r = Reader::new(bytes)?;
    let size = r.u64()?;
    let mtime_ns = r.i128()?;
    let hash = r.take::<32>()?;
    let origin = match r.u8()? {
        0 => {
            r.end()?;
            Origin::Local
        }
        1 => {
            let peer = std::str::from_utf8(r.rest()).map_err(|_| "peer id is not UTF-8")?;
            Origin::Peer(peer.to_owned())
        }
        _ => return Err("bad origin tag"),
    };
    Ok(IndexEntry {
        size,
        mtime_ns,
        hash,
        origin,
    })
}

/// Reads a value's fields in order; every read can fail, none panics.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the format byte.
    fn new(bytes: &'a [u8]) -> Result<Self, &'static str> {
        match bytes.split_first() {
            Some((&FORMAT, rest)) => Ok(Self { bytes: rest }),
            Some(_) => Err("unknown format (written by a newer p2phost?)"),
            None => Err("empty value"),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.bytes.split_first_chunk::<N>().ok_or("truncated")?;
        self.bytes = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        self.take().map(u64::from_le_bytes)
    }

    fn i128(&mut self) -> Result<i128, &'static str> {
        self.take().map(i128::from_le_bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn end(&self) -> Result<(), &'static str> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes")
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
