//! Sending a peer its queue: whenever the peer is in its room and jobs are due, one transfer per
//! folder over a fresh data channel pinned to the peer; jobs leave the queue only once the peer
//! confirmed the files, and a failure waits out a growing backoff (reset when the peer returns).
//! A transfer under way when the peer comes back to its room (it restarted, or reconnected to
//! the server) is dropped at once and sent again, resuming where it was, rather than waited out
//! until its dead connection times out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::Shared;
use crate::identity::PeerId;
use crate::oneshot::{self, Observer};
use crate::session::PairSignaling;
use crate::sync::Job;

/// Files per transfer: a burst is sent in batches, each confirmed before the next.
const BATCH: usize = 1000;
/// Check the queue at least this often, whatever else happens.
const POLL: Duration = Duration::from_secs(30);

/// Serves `peer` until the signaling connection ends (the caller starts again).
pub(super) async fn serve_peer(shared: Arc<Shared>, pair: Arc<PairSignaling>, peer: PeerId) {
    let (Some(mut presence), Some(mut arrivals)) = (pair.presence(&peer), pair.arrivals(&peer))
    else {
        return;
    };
    let name = shared.name(&peer);
    let key = peer.to_string();
    let mut was_online = false;
    loop {
        let online = *presence.borrow_and_update();
        shared.live().set_online(&name, online);
        if online && !was_online {
            tracing::info!(peer = %name, "online");
            // It is back: what waited out a backoff goes now.
            if let Err(e) = shared.state.write(|batch| batch.reset_backoff(&key)) {
                tracing::warn!("cannot reset the backoff: {e}");
            }
        } else if !online && was_online {
            tracing::info!(peer = %name, "offline");
        }
        was_online = online;
        let jobs = if online {
            match shared.state.pending(&key, BATCH, SystemTime::now()) {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!("cannot read the queue: {e}");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        if jobs.is_empty() {
            let due = shared
                .state
                .next_due(&key)
                .ok()
                .flatten()
                .and_then(|due| due.duration_since(SystemTime::now()).ok())
                .unwrap_or(POLL)
                .min(POLL);
            let wake = shared.wake.get(&peer);
            tokio::select! {
                changed = presence.changed() => if changed.is_err() { return },
                () = async { if let Some(w) = wake { w.notified().await } else { std::future::pending().await } } => {}
                () = tokio::time::sleep(due) => {}
            }
            continue;
        }
        for (folder, jobs) in by_folder(jobs) {
            let link = Link {
                pair: &pair,
                peer: &peer,
                arrivals: &mut arrivals,
            };
            send_folder(&shared, link, &name, &folder, jobs).await;
        }
    }
}

/// Jobs grouped by folder, folders in the order their first job was queued.
fn by_folder(jobs: Vec<Job>) -> Vec<(String, Vec<Job>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        if !groups.contains_key(&job.folder) {
            order.push(job.folder.clone());
        }
        groups.entry(job.folder.clone()).or_default().push(job);
    }
    order
        .into_iter()
        .filter_map(|folder| groups.remove(&folder).map(|jobs| (folder, jobs)))
        .collect()
}

/// How a transfer reaches its peer: the pair room, and the peer's arrivals in it.
struct Link<'a> {
    pair: &'a PairSignaling,
    peer: &'a PeerId,
    arrivals: &'a mut watch::Receiver<u64>,
}

/// Why a transfer did not end with the peer's confirmation.
enum NotSent {
    /// The peer came back while the transfer was under way with its previous connection.
    CameBack,
    /// Anything else: the jobs wait out their backoff.
    Failed(String),
}

impl From<String> for NotSent {
    fn from(reason: String) -> Self {
        Self::Failed(reason)
    }
}

async fn send_folder(
    shared: &Arc<Shared>,
    link: Link<'_>,
    name: &str,
    folder: &str,
    jobs: Vec<Job>,
) {
    let Some(index) = shared.router.folder_index(folder) else {
        // The folder left the config: its queue goes with it.
        let _ = shared.state.write(|batch| {
            for job in &jobs {
                batch.complete(job)?;
            }
            Ok(())
        });
        return;
    };
    let root = shared.config.folders[index].path.clone();
    let paths: Vec<String> = jobs.iter().map(|j| j.path.clone()).collect();
    let in_flight = shared.in_flight(name, folder, jobs.len());
    let outcome = send(shared, link, folder, root, paths).await;
    drop(in_flight);
    match outcome {
        Ok(report) => {
            tracing::info!(
                peer = %name, folder, files = report.files, bytes = report.bytes,
                seconds = format_args!("{:.2}", report.seconds), "sent"
            );
            if let Err(e) = shared.state.write(|batch| {
                for job in &jobs {
                    batch.complete(job)?;
                }
                Ok(())
            }) {
                tracing::warn!("sent, but cannot take the files off the queue: {e}");
            }
        }
        Err(NotSent::CameBack) => {
            // Not the files' fault: they stay due, and go again at once.
            tracing::info!(
                peer = %name, folder, files = jobs.len(),
                "the peer came back: the transfer with its previous connection is dropped, and \
                 sent again"
            );
        }
        Err(NotSent::Failed(e)) => {
            let now = SystemTime::now();
            let due = shared.state.write(|batch| {
                let mut due = None;
                for job in &jobs {
                    due = due.or(batch.retry_later(job, now)?);
                }
                Ok(due)
            });
            let wait = due
                .ok()
                .flatten()
                .and_then(|d| d.duration_since(now).ok())
                .unwrap_or_default();
            tracing::warn!(
                peer = %name, folder, files = jobs.len(),
                "not sent: {e}; trying again in {:.0} s", wait.as_secs_f64()
            );
        }
    }
}

async fn send(
    shared: &Arc<Shared>,
    link: Link<'_>,
    folder: &str,
    root: std::path::PathBuf,
    paths: Vec<String>,
) -> Result<oneshot::SendReport, NotSent> {
    let found = tokio::task::spawn_blocking(move || crate::store::scan_within(&root, &paths))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let hooks = shared.hooks_off_thread().await?;
    // The connection is to the peer as it is now: arrivals until here are none of its business.
    link.arrivals.borrow_and_update();
    let label = format!("{}{folder}", super::inbox::LABEL_PREFIX);
    let connecting = link.pair.connect(link.peer, &label);
    // A peer that comes back while this side waits for its answer (its previous connection to
    // the server died with the offer) is offered again at once, not after the step timeout.
    let connected = tokio::select! {
        connected = connecting => connected.map_err(|e| e.to_string())?,
        () = came_back(&mut *link.arrivals) => return Err(NotSent::CameBack),
    };
    shared.note_path(link.peer, &connected).await;
    let peer_connection = Arc::clone(&connected.peer_connection);
    let came_back = came_back(&mut *link.arrivals);
    let mut observer = Logged;
    tokio::select! {
        sent = oneshot::send_over(connected, found, hooks, &mut observer, &shared.stopping) => {
            sent.map_err(|e| NotSent::Failed(e.to_string()))
        }
        () = came_back => {
            let _ = peer_connection.close().await;
            Err(NotSent::CameBack)
        }
    }
}

/// Resolves when the peer joins its room again (a restart, or a new connection to the server);
/// never if the signaling connection ends: a transfer goes on as long as its own link does.
async fn came_back(arrivals: &mut tokio::sync::watch::Receiver<u64>) {
    if arrivals.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Reports what a daemon transfer says along the way through the log.
pub(super) struct Logged;

impl Observer for Logged {
    fn skipped(&mut self, path: &std::path::Path, why: &str) {
        tracing::info!(path = %path.display(), "left out: {why}");
    }

    fn hook_failed(&mut self, error: &crate::hooks::HookError) {
        tracing::warn!("{error}");
    }
}
