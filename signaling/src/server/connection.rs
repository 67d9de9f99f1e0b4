//! One WebSocket connection: a reader that feeds the hub and a writer that drains the send queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite;

use super::state::{AppState, Outbound};
use crate::protocol::{ClientMessage, FrameError, Inbound, Refusal};

/// How long the last frames (an error, a close) get to leave once the connection is ending.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);

/// Frames one inbound frame can cause on its own connection (an error, then a close).
const REPLY_SLOTS: usize = 2;

/// Why the writer stopped.
enum WriterEnd {
    /// It sent a close frame, or its queue was dropped.
    Finished,
    /// A write blocked for `write_timeout_secs`: the client does not read.
    Stalled,
    /// The socket failed.
    Failed,
}

pub(crate) async fn serve_connection(socket: WebSocket, state: Arc<AppState>, peer: SocketAddr) {
    let _live = state.live_task();
    let (mut sink, mut stream) = socket.split();
    let admitted = match state.connect(peer.ip()) {
        Ok(admitted) => admitted,
        Err(refusal) => return refuse(&mut sink, refusal).await,
    };
    let conn = admitted.conn;
    tracing::debug!(%conn, %peer, "connection open");
    let write_timeout = Duration::from_secs(state.limits.write_timeout_secs);
    let mut writer = tokio::spawn(write_loop(
        sink,
        admitted.queue,
        admitted.queued_bytes,
        write_timeout,
    ));
    let mut writer_end = None;
    let max_frame = state.limits.max_frame_bytes;
    let replies = admitted.replies;
    let stop = admitted.stop;

    'reading: loop {
        tokio::select! {
            frame = stream.next() => {
                let inbound = match frame {
                    Some(Ok(Message::Text(text))) => {
                        Inbound::Text(ClientMessage::decode(text.as_str(), max_frame))
                    }
                    Some(Ok(Message::Binary(_))) => Inbound::Binary,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Control,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => match transport_error(e) {
                        Some(inbound) => inbound,
                        None => break,
                    },
                };
                // Room for the replies first: a client that does not read its replies stops
                // being read, rather than filling the server's memory.
                let reserved = tokio::select! {
                    reserved = replies.reserve_many(REPLY_SLOTS) => reserved,
                    () = stop.notified() => break 'reading,
                };
                let Ok(reserved) = reserved else {
                    break;
                };
                if !state.handle(conn, inbound, reserved) {
                    break;
                }
            }
            () = stop.notified() => break,
            end = &mut writer, if writer_end.is_none() => {
                writer_end = Some(end.unwrap_or(WriterEnd::Failed));
                break;
            }
        }
    }

    // Once the hub forgets the connection no sender is left, and the writer ends after what is
    // queued: the last error and close frames get FLUSH_ON_CLOSE to leave, no more.
    drop(replies);
    if writer_end.is_none() && writer.is_finished() {
        writer_end = Some((&mut writer).await.unwrap_or(WriterEnd::Failed));
    }
    match writer_end {
        Some(WriterEnd::Stalled) => state.evict_slow_reader(conn),
        Some(WriterEnd::Finished | WriterEnd::Failed) => state.disconnect(conn),
        None => {
            state.disconnect(conn);
            if timeout(FLUSH_ON_CLOSE, &mut writer).await.is_err() {
                writer.abort();
            }
        }
    }
    tracing::debug!(%conn, "connection closed");
}

/// What a transport error means for the hub: a frame too large or not UTF-8 is the client's
/// fault and gets an error frame; anything else (a reset, a protocol violation) just ends it.
fn transport_error(error: axum::Error) -> Option<Inbound> {
    let error = error.into_inner().downcast::<tungstenite::Error>().ok()?;
    match *error {
        tungstenite::Error::Capacity(_) => Some(Inbound::Oversize),
        tungstenite::Error::Utf8(_) => Some(Inbound::Text(Err(FrameError::Invalid(
            "text frame is not valid UTF-8".into(),
        )))),
        tungstenite::Error::Protocol(e) => Some(Inbound::Text(Err(FrameError::Invalid(format!(
            "WebSocket protocol violation: {e}"
        ))))),
        _ => None,
    }
}

/// Sends a refusal's error frame and a close frame to a connection the hub did not let in.
async fn refuse(sink: &mut SplitSink<WebSocket, Message>, refusal: Refusal) {
    let close = Message::Close(Some(CloseFrame {
        code: refusal.kind.close_code(),
        reason: refusal.kind.as_str().into(),
    }));
    let text = Message::Text(refusal.message.encode().into());
    let _ = timeout(FLUSH_ON_CLOSE, async {
        sink.feed(text).await?;
        sink.send(close).await
    })
    .await;
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    queued_bytes: Arc<AtomicUsize>,
    write_timeout: Duration,
) -> WriterEnd {
    while let Some(item) = queue.recv().await {
        queued_bytes.fetch_sub(item.len(), Ordering::AcqRel);
        let (message, last) = match item {
            Outbound::Text(text) => (Message::Text(text), false),
            Outbound::Close(code, reason) => (
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                true,
            ),
        };
        // Batch frames that are already waiting into one flush.
        let written = if last || queue.is_empty() {
            timeout(write_timeout, sink.send(message)).await
        } else {
            timeout(write_timeout, sink.feed(message)).await
        };
        match written {
            Ok(Ok(())) if last => return WriterEnd::Finished,
            Ok(Ok(())) => {}
            Ok(Err(_)) => return WriterEnd::Failed,
            Err(_) => return WriterEnd::Stalled,
        }
    }
    WriterEnd::Finished
}
