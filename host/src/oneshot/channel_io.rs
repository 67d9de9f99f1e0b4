//! The data channel as a frame pipe: a task keeps polling its events (webrtc-rs stalls a channel
//! whose events are not drained) and forwards incoming frames; sends wait while the send buffer is
//! full.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

use super::{Cancel, OneshotError};
use crate::session::Connected;
use crate::transfer::frames::encode_control;
use crate::transfer::{Control, Frame, FrameDecoder};

use super::MAX_FRAME;

/// Frame bytes that may wait between the data channel and this side's work (a slow disk, a burst
/// of small files). Counted in bytes, not frames: once webrtc-rs's own queue of 256 messages
/// fills, the channel stalls for about a second before it resumes (measured: 1,000 small files
/// took 2 s with 32 frames of room, 0.55 s with room for all), so small frames must not fill it.
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// A frame, and its share of [`QUEUE_BYTES`] until it is taken.
type Queued = (Bytes, OwnedSemaphorePermit);

pub(crate) struct FramePipe {
    channel: Arc<dyn DataChannel>,
    state: watch::Receiver<RTCPeerConnectionState>,
    incoming: mpsc::UnboundedReceiver<Queued>,
    decoder: FrameDecoder,
    poller: tokio::task::JoinHandle<()>,
    /// Thrown: every wait ends with [`OneshotError::Cancelled`]; only [`FramePipe::tell_peer`]
    /// still sends.
    cancel: Cancel,
}

impl FramePipe {
    /// A pipe over `link`'s channel; its early messages come out first.
    pub(crate) fn new(link: &mut Connected, cancel: &Cancel) -> Self {
        let (frames, incoming) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(QUEUE_BYTES));
        let channel = Arc::clone(&link.channel);
        let polled = Arc::clone(&channel);
        let early = std::mem::take(&mut link.early_messages);
        let poller = tokio::spawn(async move {
            let queue = |message: Bytes| {
                let frames = frames.clone();
                let room = Arc::clone(&room);
                async move {
                    // A message larger than the whole budget waits for all of it.
                    let share = u32::try_from(message.len().min(QUEUE_BYTES)).unwrap_or(u32::MAX);
                    let Ok(permit) = room.acquire_many_owned(share).await else {
                        return false;
                    };
                    frames.send((message, permit)).is_ok()
                }
            };
            for message in early {
                if !queue(message).await {
                    return;
                }
            }
            while let Some(event) = polled.poll().await {
                let delivered = match event {
                    DataChannelEvent::OnMessage(message) => queue(message.data.freeze()).await,
                    DataChannelEvent::OnClose => false,
                    _ => true,
                };
                if !delivered {
                    break;
                }
            }
        });
        Self {
            channel,
            state: link.state.clone(),
            incoming,
            decoder: FrameDecoder::default(),
            poller,
            cancel: cancel.clone(),
        }
    }

    /// Sends raw frame bytes; waits while the send buffer is full, unless the peer goes away or
    /// the transfer is cancelled.
    pub(crate) async fn send_frame(&self, frame: BytesMut) -> Result<(), OneshotError> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(OneshotError::Cancelled),
            sent = self.send_regardless(frame) => sent,
        }
    }

    /// [`FramePipe::send_frame`] even once cancelled: for the last word to the peer.
    async fn send_regardless(&self, frame: BytesMut) -> Result<(), OneshotError> {
        let mut state = self.state.clone();
        tokio::select! {
            sent = self.channel.send(frame) => {
                sent.map_err(|e| OneshotError::Channel(format!("send failed: {e}")))
            }
            gone = peer_gone(&mut state) => Err(gone),
        }
    }

    pub(crate) async fn send_control(&self, message: &Control) -> Result<(), OneshotError> {
        for frame in encode_control(message, MAX_FRAME) {
            self.send_frame(BytesMut::from(&frame[..])).await?;
        }
        Ok(())
    }

    /// Tells the peer why this side gives up, and waits (a little) for it to leave: the peer
    /// should read why, not just see the connection drop.
    pub(crate) async fn tell_peer(&self, error: &OneshotError) {
        let message = Control::Error {
            kind: error.kind().into(),
            message: error.for_peer(),
        };
        for frame in encode_control(&message, MAX_FRAME) {
            if self
                .send_regardless(BytesMut::from(&frame[..]))
                .await
                .is_err()
            {
                return;
            }
        }
        self.flush(std::time::Duration::from_secs(2)).await;
    }

    /// The next whole frame from the peer.
    pub(crate) async fn next(&mut self) -> Result<Frame, OneshotError> {
        let mut state = self.state.clone();
        loop {
            // A peer that vanished without closing the channel is noticed through the connection
            // state; frames that arrived before are still read first.
            let bytes = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(OneshotError::Cancelled),
                queued = self.incoming.recv() => queued.map(|(bytes, _room)| bytes).ok_or_else(|| {
                    OneshotError::Channel("the peer closed the connection".into())
                })?,
                gone = peer_gone(&mut state) => return Err(gone),
            };
            if let Some(frame) = self
                .decoder
                .decode_bytes(bytes)
                .map_err(|e| OneshotError::Transfer(e.into()))?
            {
                return Ok(frame);
            }
        }
    }

    /// [`FramePipe::next`], failing if the peer sends nothing for `idle`: a peer that is still
    /// connected but silent must not hold a transfer forever.
    pub(crate) async fn next_within(
        &mut self,
        idle: std::time::Duration,
    ) -> Result<Frame, OneshotError> {
        tokio::time::timeout(idle, self.next()).await.map_err(|_| {
            OneshotError::Channel(format!(
                "the peer sent nothing for {} s while a transfer was under way",
                idle.as_secs()
            ))
        })?
    }

    /// The next whole frame if one has arrived, without waiting.
    pub(crate) fn try_next(&mut self) -> Result<Option<Frame>, OneshotError> {
        if self.cancel.is_cancelled() {
            return Err(OneshotError::Cancelled);
        }
        while let Ok((bytes, _room)) = self.incoming.try_recv() {
            if let Some(frame) = self
                .decoder
                .decode_bytes(bytes)
                .map_err(|e| OneshotError::Transfer(e.into()))?
            {
                return Ok(Some(frame));
            }
        }
        Ok(None)
    }

    /// Waits until what was sent has left, as far as the channel tells (bounded by `timeout`).
    pub(crate) async fn flush(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, async {
            while self.channel.outstanding_bytes().await.unwrap_or(0) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// Resolves once the connection is disconnected, failed or closed.
async fn peer_gone(state: &mut watch::Receiver<RTCPeerConnectionState>) -> OneshotError {
    use RTCPeerConnectionState::{Closed, Connected, Disconnected, Failed};
    loop {
        let seen = match state
            .wait_for(|s| matches!(s, Disconnected | Failed | Closed))
            .await
        {
            Ok(s) => *s,
            Err(_) => return OneshotError::Channel("the connection ended".into()),
        };
        if seen != Disconnected {
            return OneshotError::Channel(format!("the peer went away (connection {seen})"));
        }
        // Disconnected can pass (a Wi-Fi blip, a roaming laptop): give it a while to come back.
        let back = tokio::time::timeout(
            DISCONNECTED_GRACE,
            state.wait_for(|s| matches!(s, Connected | Failed | Closed)),
        )
        .await;
        match back {
            Ok(Ok(s)) if *s == Connected => continue,
            Ok(Ok(s)) => {
                return OneshotError::Channel(format!("the peer went away (connection {})", *s));
            }
            Ok(Err(_)) => return OneshotError::Channel("the connection ended".into()),
            Err(_) => {
                return OneshotError::Channel(format!(
                    "the peer went away (disconnected for {} s)",
                    DISCONNECTED_GRACE.as_secs()
                ));
            }
        }
    }
}

/// How long a disconnected peer connection may take to come back before the transfer fails.
const DISCONNECTED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for FramePipe {
    fn drop(&mut self) {
        self.poller.abort();
    }
}
