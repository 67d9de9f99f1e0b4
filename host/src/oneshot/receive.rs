//! `p2phost receive`: take the offer, write part files, verify, rename, confirm.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::channel_io::FramePipe;
use super::send::file_info;
use super::{Cancel, Observer, OneshotError};
use crate::code::TransferCode;
use crate::hooks::{Admission, FileInfo, HookChain, Outcome, Side};
use crate::session::{self, Connected, SessionOptions};
use crate::store::{Destination, PartFile, PartFiles, Placed, StoreError};
use crate::transfer::{Control, Frame, Receiver, ReceiverEvent, TransferError, ValidManifest};

fn violation(what: &str) -> OneshotError {
    OneshotError::Transfer(TransferError::Unexpected(what.into()))
}

/// How long the receiver waits for the sender's next frame, once the offer is taken.
const SENDER_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// What a finished receive did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveReport {
    /// Files stored.
    pub files: u64,
    /// File bytes in the offer.
    pub bytes: u64,
    /// File bytes that were on disk already, from an earlier try (resume).
    pub resumed_bytes: u64,
    /// Bytes of file data that came over the data channel, as encoded: less than the rest when
    /// a plugin compressed them.
    pub wire_bytes: u64,
    /// Seconds from acceptance to the last file stored.
    pub seconds: f64,
    /// Where the files are.
    pub paths: Vec<PathBuf>,
}

/// Receives the transfer of `code` into `out` through the `hooks` of this transfer, telling
/// `observer` the verification string and the progress, until done or `cancel` is thrown; the
/// hooks' pre-send and then [`Observer::offer`] decide whether to take the offer.
pub async fn receive(
    options: SessionOptions,
    code: &TransferCode,
    out: &Path,
    overwrite: bool,
    hooks: HookChain,
    observer: &mut impl Observer,
    cancel: &Cancel,
) -> Result<ReceiveReport, OneshotError> {
    let link = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(OneshotError::Cancelled),
        link = session::receive(options, code) => link?,
    };
    receive_over(link, out, overwrite, hooks, observer, cancel).await
}

/// Receives what the peer at the other end of `link`, a data channel already open (daemon mode),
/// sends, into `out`, through the `hooks` of this transfer, until done or `cancel` is thrown.
pub async fn receive_over(
    mut link: Connected,
    out: &Path,
    overwrite: bool,
    hooks: HookChain,
    observer: &mut impl Observer,
    cancel: &Cancel,
) -> Result<ReceiveReport, OneshotError> {
    observer.connected(&link.verification);
    if let Some(path) = link.path().await {
        observer.path(&path);
    }
    let mut pipe = FramePipe::new(&mut link, cancel);
    let (mut receiver, hello) = Receiver::new();
    pipe.send_control(&hello).await?;
    let mut run = Run {
        parts: PartFiles::new(),
        paths: Vec::new(),
        total: 0,
        started: Instant::now(),
        stored: 0,
        offered: false,
        cancel,
        observer,
        out,
        overwrite,
        hooks,
        infos: Vec::new(),
        wire: 0,
        resumed: 0,
    };
    let result = run.drive(&mut receiver, &mut pipe).await;
    if let Err(e) = &result {
        // A decline was said already; the peer's own error needs no answer.
        let peer_spoke = matches!(
            e,
            OneshotError::Transfer(TransferError::Peer { .. } | TransferError::Cancelled)
                | OneshotError::Refused(_)
        );
        if !peer_spoke {
            pipe.tell_peer(e).await;
        }
    }
    let _ = link.peer_connection.close().await;
    result?;
    Ok(ReceiveReport {
        files: run.paths.len() as u64,
        bytes: run.total,
        resumed_bytes: run.resumed,
        wire_bytes: run.wire,
        seconds: run.started.elapsed().as_secs_f64(),
        paths: run.paths,
    })
}

struct Run<'a, O> {
    parts: PartFiles,
    paths: Vec<PathBuf>,
    total: u64,
    started: Instant,
    /// Bytes on disk, resumed ones included.
    stored: u64,
    offered: bool,
    cancel: &'a Cancel,
    observer: &'a mut O,
    out: &'a Path,
    overwrite: bool,
    hooks: HookChain,
    /// What the hooks see of each offered file.
    infos: Vec<FileInfo>,
    /// File bytes that came over the data channel, as encoded.
    wire: u64,
    /// File bytes on disk before the transfer started.
    resumed: u64,
}

impl<O: Observer> Run<'_, O> {
    async fn drive(
        &mut self,
        receiver: &mut Receiver,
        pipe: &mut FramePipe,
    ) -> Result<(), OneshotError> {
        loop {
            // Once the offer is taken the sender always has something to send: chunks, its done.
            // Before, it may still be hashing its files, which takes as long as reading them.
            let frame = if self.offered {
                pipe.next_within(SENDER_IDLE_LIMIT).await?
            } else {
                pipe.next().await?
            };
            let frame = self.decode(frame)?;
            let mut pending: std::collections::VecDeque<ReceiverEvent> =
                receiver.handle(frame)?.into();
            while let Some(event) = pending.pop_front() {
                match event {
                    ReceiverEvent::Offer(manifest) => {
                        if std::mem::replace(&mut self.offered, true) {
                            return Err(violation("a second offer"));
                        }
                        self.infos = manifest
                            .files
                            .iter()
                            .map(|f| file_info(&f.path.to_string(), f.size, Side::Receive))
                            .collect();
                        let verdict = match self.hooks_verdict(&manifest)? {
                            Some(refusal) => Err(refusal),
                            None => self.observer.offer(&manifest),
                        };
                        if verdict.is_err() && self.cancel.is_cancelled() {
                            // Stopped while the offer was shown: the peer hears "cancelled".
                            return Err(OneshotError::Cancelled);
                        }
                        if let Err(reason) = verdict {
                            pipe.send_control(&receiver.decline(reason.clone())).await?;
                            pipe.flush(Duration::from_secs(2)).await;
                            return Err(OneshotError::Refused(reason));
                        }
                        let (accept, whole) = self.accept(receiver, &manifest)?;
                        pipe.send_control(&accept).await?;
                        pending.extend(whole);
                    }
                    ReceiverEvent::Data { file, offset, data } => {
                        let part = self.part(file)?;
                        part.write(offset, &data)?;
                        self.stored += data.len() as u64;
                        self.observer.progress(self.stored);
                    }
                    ReceiverEvent::FileComplete(file) => {
                        let part = self
                            .parts
                            .take(file)
                            .ok_or_else(|| violation(&format!("file {file} completed twice")))?;
                        // Verifies, syncs and renames: the slow part on a real disk.
                        let path = if self.overwrite {
                            let placed = super::blocking_io(|| part.finish_keeping_replaced())?;
                            self.placed(file, placed)?
                        } else {
                            super::blocking_io(|| part.finish())?
                        };
                        if let Some(info) = self.infos.get(file) {
                            let outcome = Outcome::Done {
                                local_path: path.display().to_string(),
                            };
                            let hooks = &mut self.hooks;
                            for failure in super::blocking_io(|| hooks.complete(info, &outcome)) {
                                self.observer.hook_failed(&failure);
                            }
                        }
                        self.paths.push(path);
                    }
                    ReceiverEvent::Finished => {
                        pipe.send_control(&receiver.received()).await?;
                        pipe.flush(Duration::from_secs(5)).await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The hooks' say on an offer: a missing decoder or a rejected file refuses it whole.
    fn hooks_verdict(&mut self, manifest: &ValidManifest) -> Result<Option<String>, OneshotError> {
        if let Err(missing) = self.hooks.check_decoders(&manifest.encodings) {
            return Ok(Some(missing));
        }
        for info in &self.infos {
            let hooks = &mut self.hooks;
            if let Admission::Reject { reason } = super::blocking_io(|| hooks.admit(info))? {
                return Ok(Some(format!("{}: {reason}", info.path)));
            }
        }
        Ok(None)
    }

    /// A chunk as the chunk hooks leave it: decoded, and inspected.
    fn decode(&mut self, frame: Frame) -> Result<Frame, OneshotError> {
        let Frame::Chunk(mut chunk) = frame else {
            return Ok(frame);
        };
        self.wire += chunk.data.len() as u64;
        if self.hooks.is_empty() && chunk.encoding == 0 {
            return Ok(Frame::Chunk(chunk));
        }
        // Before the offer there is nothing to run hooks for: the protocol refuses the chunk.
        let Some(info) = self.infos.get(chunk.file as usize) else {
            return Ok(Frame::Chunk(chunk));
        };
        let hooks = &mut self.hooks;
        let data: &[u8] = &chunk.data;
        let plain =
            super::blocking_io(|| hooks.receive_chunk(info, chunk.offset, data, chunk.encoding))?;
        // A plain chunk keeps its buffer; a decoded one gets the decoder's.
        if let Cow::Owned(decoded) = plain {
            chunk.data = decoded.into();
        }
        chunk.encoding = 0;
        Ok(Frame::Chunk(chunk))
    }

    /// Lets the observer look at what a file replaced (and keep it), then deletes the rest;
    /// where the received file is.
    fn placed(&mut self, file: usize, placed: Placed) -> Result<PathBuf, OneshotError> {
        let observer = &mut self.observer;
        let verdict = super::blocking_io(|| observer.placed(file, &placed));
        let Some(replaced) = placed.replaced else {
            return verdict.map_err(OneshotError::Internal);
        };
        let path = match verdict {
            Ok(path) => path,
            Err(reason) => {
                return Err(OneshotError::Store(StoreError::Io {
                    path: replaced,
                    source: std::io::Error::other(format!(
                        "the version this file replaced is kept here: {reason}"
                    )),
                }));
            }
        };
        match std::fs::remove_file(&replaced) {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
            Err(source) => Err(OneshotError::Store(StoreError::Io {
                path: replaced,
                source,
            })),
        }
    }

    fn part(&mut self, file: usize) -> Result<&mut PartFile, OneshotError> {
        self.parts
            .get_mut(file)
            .ok_or_else(|| violation(&format!("data for file {file}, which is not open")))
    }

    /// Creates the offer's folders inside `out` (never through a link), checks each file's part
    /// file for what can be resumed (closing it again: see [`PartFiles`]) and answers with the
    /// resume offsets.
    fn accept(
        &mut self,
        receiver: &mut Receiver,
        manifest: &ValidManifest,
    ) -> Result<(Control, Vec<ReceiverEvent>), OneshotError> {
        // Before anything is created: an offer that cannot fit is refused whole.
        crate::store::check_space(self.out, manifest.files.iter().map(|f| (&f.path, f.size)))?;
        let destination = Destination::open(self.out)?;
        for dir in &manifest.dirs {
            destination.make_dir(dir)?;
        }
        let mut offsets = Vec::with_capacity(manifest.files.len());
        for file in &manifest.files {
            let (part, offset) = PartFile::open(
                &destination,
                &file.path,
                file.size,
                file.groups.clone(),
                file.hash,
                self.overwrite,
            )?;
            self.parts.push(part.with_mode(file.mode));
            offsets.push(offset);
        }
        self.total = manifest.total_bytes;
        self.stored = offsets.iter().sum();
        self.resumed = self.stored;
        self.observer.started(self.total, self.stored);
        self.started = Instant::now();
        Ok(receiver.accept(offsets)?)
    }
}
