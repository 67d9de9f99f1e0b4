//! `p2phost send`: offer files, stream them, wait for the receiver's word that all is stored.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::channel_io::FramePipe;
use super::{CHUNK_SIZE, Cancel, GROUP_SIZE, Observer, OneshotError};
use crate::code::TransferCode;
use crate::hooks::{Admission, FileInfo, HookChain, Outcome, Processed, Side};
use crate::session::{Connected, SenderRendezvous, SessionOptions};
use crate::store::{Scan, ScanError, scan};
use crate::transfer::frames::{chunk_frame, chunk_overhead};
use crate::transfer::{Control, Frame, Manifest, Sender, SenderEvent, TransferError};

/// Where the sender's code comes from.
#[derive(Debug, Clone)]
pub enum CodeChoice {
    /// A fresh code: a nameplate from the server and this many random words.
    Generate {
        /// Words after the nameplate.
        words: usize,
    },
    /// A code the user chose (`--code`).
    Given(TransferCode),
}

/// What a finished send did.
#[derive(Debug, Clone, PartialEq)]
pub struct SendReport {
    /// Files the receiver stored.
    pub files: u64,
    /// File bytes in the offer.
    pub bytes: u64,
    /// File bytes the receiver had already, from an earlier try (resume).
    pub resumed_bytes: u64,
    /// Bytes of file data put on the data channel, as encoded: less than the rest when a plugin
    /// compressed them.
    pub wire_bytes: u64,
    /// Seconds from the receiver's acceptance to its confirmation.
    pub seconds: f64,
    /// Inputs left out (links, special files).
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Sends `inputs` through the `hooks` of this transfer, telling `observer` the code, the
/// verification string and the progress, until done or `cancel` is thrown.
pub async fn send(
    options: SessionOptions,
    inputs: &[PathBuf],
    code: CodeChoice,
    mut hooks: HookChain,
    observer: &mut impl Observer,
    cancel: &Cancel,
) -> Result<SendReport, OneshotError> {
    let found: Scan = scan(inputs)?;
    let (admitted, found) = admit(found, &mut hooks, observer)?;
    // Hashing reads every byte (≈ 0.3 s per GiB here): it runs while the code is shown and the
    // receiver is on its way, not before.
    let mut hashing = hash(found, admitted.offered_encodings.clone());
    // Until the data channel is up, a cancel has no peer to tell, or one that sees this side's
    // signaling connection end.
    let opening = async {
        match code {
            CodeChoice::Generate { words } => SenderRendezvous::open(options, words).await,
            CodeChoice::Given(code) => SenderRendezvous::with_code(options, code).await,
        }
    };
    let rendezvous = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(OneshotError::Cancelled),
        opened = opening => opened?,
    };
    if let Some(why) = rendezvous.on_local_network() {
        observer.lan_mode(why);
    }
    observer.code(rendezvous.code());
    let connecting = rendezvous.connect();
    tokio::pin!(connecting);
    let mut manifest = None;
    let link = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(OneshotError::Cancelled),
            link = &mut connecting => break link?,
            // A read error fails here, before any receiver was connected.
            hashed = &mut hashing, if manifest.is_none() => {
                manifest = Some(offer_ready(hashed, observer)?);
            }
        }
    };
    let manifest = match manifest {
        Some(manifest) => Ok(manifest),
        // A cancel while hashing goes to the peer as the reason there is no offer.
        None => tokio::select! {
            biased;
            () = cancel.cancelled() => Err(OneshotError::Cancelled),
            hashed = hashing => offer_ready(hashed, observer),
        },
    };
    transfer(link, manifest, admitted, hooks, observer, cancel).await
}

/// Sends the files of `found` over `link`, a data channel already open (daemon mode), through
/// the `hooks` of this transfer, until done or `cancel` is thrown.
pub async fn send_over(
    link: Connected,
    found: Scan,
    mut hooks: HookChain,
    observer: &mut impl Observer,
    cancel: &Cancel,
) -> Result<SendReport, OneshotError> {
    let (admitted, found) = admit(found, &mut hooks, observer)?;
    let hashing = hash(found, admitted.offered_encodings.clone());
    let manifest = offer_ready(hashing.await, observer);
    transfer(link, manifest, admitted, hooks, observer, cancel).await
}

/// The files the pre-send hooks let through, and what the transfer needs to know of them.
struct Admitted {
    /// Per file: what its hooks see.
    infos: Vec<FileInfo>,
    /// Per file: its encoding byte (0: plain).
    encodings: Vec<u8>,
    /// The encodings the offer names.
    offered_encodings: Vec<String>,
    total: u64,
    sources: Vec<PathBuf>,
    skipped_inputs: Vec<(PathBuf, &'static str)>,
}

/// Runs the pre-send hooks, before anything is hashed or offered: a rejected file is left out.
fn admit(
    mut found: Scan,
    hooks: &mut HookChain,
    observer: &mut impl Observer,
) -> Result<(Admitted, Scan), OneshotError> {
    for (path, why) in &found.skipped {
        observer.skipped(path, why);
    }
    let mut encodings = Vec::with_capacity(found.files.len());
    let mut admitted = Vec::with_capacity(found.files.len());
    for file in std::mem::take(&mut found.files) {
        let info = file_info(&file.path.to_string(), file.size, Side::Send);
        match super::blocking_io(|| hooks.admit(&info))? {
            Admission::Admit { encoding } => {
                encodings.push(encoding);
                admitted.push(file);
            }
            Admission::Reject { reason } => observer.skipped(&file.source, &reason),
        }
    }
    found.files = admitted;
    let infos: Vec<FileInfo> = found
        .files
        .iter()
        .map(|f| file_info(&f.path.to_string(), f.size, Side::Send))
        .collect();
    let offered_encodings = if encodings.iter().any(|&e| e > 0) {
        hooks.encodings()
    } else {
        Vec::new()
    };
    let admitted = Admitted {
        infos,
        encodings,
        offered_encodings,
        total: found.files.iter().map(|f| f.size).sum(),
        sources: found.files.iter().map(|f| f.source.clone()).collect(),
        skipped_inputs: found.skipped.clone(),
    };
    Ok((admitted, found))
}

/// Hashes the admitted files into the offer, on a blocking thread.
fn hash(
    found: Scan,
    offered_encodings: Vec<String>,
) -> tokio::task::JoinHandle<Result<Manifest, ScanError>> {
    tokio::task::spawn_blocking(move || {
        found.manifest(CHUNK_SIZE, GROUP_SIZE).map(|mut manifest| {
            manifest.encodings = offered_encodings;
            manifest
        })
    })
}

/// The transfer proper, once connected: the offer (or why there is none), every chunk, and the
/// complete hooks.
async fn transfer(
    mut link: Connected,
    manifest: Result<Manifest, OneshotError>,
    admitted: Admitted,
    mut hooks: HookChain,
    observer: &mut impl Observer,
    cancel: &Cancel,
) -> Result<SendReport, OneshotError> {
    observer.connected(&link.verification);
    if let Some(path) = link.path().await {
        observer.path(&path);
    }
    let mut pipe = FramePipe::new(&mut link, cancel);
    let manifest = match manifest {
        Ok(manifest) => manifest,
        Err(error) => {
            pipe.tell_peer(&error).await;
            let _ = link.peer_connection.close().await;
            return Err(error);
        }
    };
    let Admitted {
        infos,
        encodings,
        total,
        sources,
        skipped_inputs,
        ..
    } = admitted;
    let (mut sender, first) = Sender::new(manifest);
    let mut run = Run {
        sender: &mut sender,
        pipe: &mut pipe,
        sources: &sources,
        open: None,
        started: Instant::now(),
        skipped: 0,
        total,
        accepted: false,
        hooks: &mut hooks,
        infos: &infos,
        encodings: &encodings,
        wire: 0,
    };
    let outcome = run.drive(&first, observer).await;
    let started = run.started;
    let wire_bytes = run.wire;
    let resumed_bytes = run.skipped;
    let files = match outcome {
        Ok(files) => files,
        Err(e) => {
            let peer_spoke = matches!(
                e,
                OneshotError::Transfer(
                    TransferError::Peer { .. }
                        | TransferError::Declined(_)
                        | TransferError::Cancelled
                )
            );
            if !peer_spoke {
                pipe.tell_peer(&e).await;
            }
            let _ = link.peer_connection.close().await;
            return Err(e);
        }
    };
    for (info, source) in infos.iter().zip(&sources) {
        let outcome = Outcome::Done {
            local_path: source.display().to_string(),
        };
        for failure in super::blocking_io(|| hooks.complete(info, &outcome)) {
            observer.hook_failed(&failure);
        }
    }
    let report = SendReport {
        files,
        bytes: total,
        resumed_bytes,
        wire_bytes,
        seconds: started.elapsed().as_secs_f64(),
        skipped: skipped_inputs,
    };
    let _ = link.peer_connection.close().await;
    Ok(report)
}

/// The sending loop's state.
struct Run<'a> {
    sender: &'a mut Sender,
    pipe: &'a mut FramePipe,
    sources: &'a [PathBuf],
    open: Option<(u32, File)>,
    /// When the receiver accepted.
    started: Instant,
    /// Bytes the receiver had already (resume).
    skipped: u64,
    total: u64,
    accepted: bool,
    hooks: &'a mut HookChain,
    /// Per file: what its hooks see, and its encoding byte.
    infos: &'a [FileInfo],
    encodings: &'a [u8],
    /// File bytes put on the data channel, as encoded.
    wire: u64,
}

/// How long the sender waits for the receiver once the offer is accepted: the receiver's last
/// step syncs every file, which can take minutes on a slow disk.
const RECEIVER_IDLE_LIMIT: Duration = Duration::from_secs(300);

impl Run<'_> {
    /// Sends the offer and every chunk; `Ok(files)` once the receiver confirmed it stored them.
    async fn drive(
        &mut self,
        first: &[Control],
        observer: &mut impl Observer,
    ) -> Result<u64, OneshotError> {
        for message in first {
            self.pipe.send_control(message).await?;
        }
        loop {
            // What the receiver sent so far, without waiting.
            if let Some(frame) = self.pipe.try_next()? {
                if let Some(files) = self.on_frame(frame, observer)? {
                    return Ok(files);
                }
                continue;
            }
            if let Some(plan) = self.sender.next_chunk() {
                let mut frame = read_chunk(
                    self.sources,
                    &mut self.open,
                    plan.file,
                    plan.offset,
                    plan.len,
                )?;
                if !self.hooks.is_empty() {
                    frame = self.through_hooks(frame, plan.file, plan.offset)?;
                }
                self.wire += (frame.len() - chunk_overhead()) as u64;
                self.pipe.send_frame(frame).await?;
                observer.progress(self.skipped + self.sender.planned_bytes());
            } else if let Some(done) = self.sender.done() {
                self.pipe.send_control(&done).await?;
            } else {
                // Nothing to send until the receiver answers. Before it accepts, a person may be
                // reading the offer: no limit. After the done, only its last checks are left.
                let frame = if self.accepted {
                    self.pipe.next_within(RECEIVER_IDLE_LIMIT).await?
                } else {
                    self.pipe.next().await?
                };
                if let Some(files) = self.on_frame(frame, observer)? {
                    return Ok(files);
                }
            }
        }
    }

    /// A chunk frame after the chunk hooks: inspected, and encoded if its file is. A chunk that
    /// stays plain goes out in the frame it was read into (its header says encoding 0 already).
    fn through_hooks(
        &mut self,
        frame: BytesMut,
        file: u32,
        offset: u64,
    ) -> Result<BytesMut, OneshotError> {
        let index = file as usize;
        let (Some(info), Some(&encoding)) = (self.infos.get(index), self.encodings.get(index))
        else {
            return Err(OneshotError::Internal(format!(
                "no hooks' view of file {file}"
            )));
        };
        let data = &frame[chunk_overhead()..];
        let hooks = &mut *self.hooks;
        match super::blocking_io(|| hooks.send_chunk(info, offset, data, encoding))? {
            Processed::Plain => Ok(frame),
            Processed::Encoded { data, encoding } => {
                let mut encoded = chunk_frame(file, offset, encoding, data.len());
                encoded.extend_from_slice(&data);
                Ok(encoded)
            }
        }
    }

    /// Feeds a frame to the sender; `Some(files)` once the receiver confirmed everything.
    fn on_frame(
        &mut self,
        frame: Frame,
        observer: &mut impl Observer,
    ) -> Result<Option<u64>, TransferError> {
        match self.sender.handle(frame)? {
            SenderEvent::Accepted { skipped } => {
                self.accepted = true;
                self.started = Instant::now();
                self.skipped = skipped;
                observer.started(self.total, skipped);
                Ok(None)
            }
            SenderEvent::Completed { files, .. } => Ok(Some(files)),
            _ => Ok(None),
        }
    }
}

/// What the hooks see of a file.
pub(crate) fn file_info(path: &str, size: u64, side: Side) -> FileInfo {
    FileInfo {
        path: path.to_owned(),
        size,
        side,
    }
}

/// The finished hashing task's manifest, told to the observer.
fn offer_ready(
    hashed: Result<Result<Manifest, ScanError>, tokio::task::JoinError>,
    observer: &mut impl Observer,
) -> Result<Manifest, OneshotError> {
    match hashed {
        Ok(Ok(manifest)) => {
            observer.offer_ready(
                manifest.files.len(),
                manifest.files.iter().map(|f| f.size).sum(),
            );
            Ok(manifest)
        }
        Ok(Err(e)) => Err(OneshotError::Scan(e)),
        Err(_) => Err(OneshotError::Internal("the hashing task failed".into())),
    }
}

/// A chunk frame with `len` bytes of `file` from `offset`, read straight into the frame.
fn read_chunk(
    sources: &[PathBuf],
    open: &mut Option<(u32, File)>,
    file: u32,
    offset: u64,
    len: usize,
) -> Result<BytesMut, OneshotError> {
    let path = sources
        .get(file as usize)
        .ok_or_else(|| OneshotError::Internal(format!("no file {file}")))?;
    let io = |source| crate::store::ScanError::Io {
        path: path.clone(),
        source,
    };
    if open.as_ref().is_none_or(|(index, _)| *index != file) {
        *open = Some((file, crate::store::open_no_follow(path).map_err(io)?));
    }
    let Some((_, handle)) = open.as_mut() else {
        return Err(OneshotError::Internal("file handle lost".into()));
    };
    let mut frame = chunk_frame(file, offset, 0, len);
    let header = frame.len();
    frame.resize(header + len, 0);
    handle.seek(SeekFrom::Start(offset)).map_err(io)?;
    // A file that shrank since it was hashed fails here; one that changed fails the receiver's
    // hash check.
    handle.read_exact(&mut frame[header..]).map_err(io)?;
    Ok(frame)
}
