//! One-off transfers' [`Signal`]: descriptions sealed under the keys both sides derived from the
//! code, so the signaling server can neither read nor alter them.

use webrtc::peer_connection::{RTCSdpType, RTCSessionDescription};

use super::webrtc_link::{Signal, parse_description};
use super::{Channel, SessionError, abort_reason};
use crate::code::{Opener, Sealer, SessionKeys};

/// The room, with the code's keys.
pub(super) struct SealedSignal {
    channel: Channel,
    sealer: Sealer,
    opener: Opener,
}

impl SealedSignal {
    pub(super) fn new(channel: Channel, keys: SessionKeys) -> Self {
        let (sealer, opener) = keys.split();
        Self {
            channel,
            sealer,
            opener,
        }
    }
}

#[async_trait::async_trait]
impl Signal for SealedSignal {
    async fn send_description(
        &mut self,
        description: &RTCSessionDescription,
    ) -> Result<(), SessionError> {
        let json = serde_json::to_vec(description)
            .map_err(|e| SessionError::WebRtc(format!("encoding the description: {e}")))?;
        self.channel.send(self.sealer.seal(&json)?).await
    }

    async fn receive_description(
        &mut self,
        expected: RTCSdpType,
        doing: &'static str,
    ) -> Result<RTCSessionDescription, SessionError> {
        let sealed = self.channel.next(doing).await?;
        let plain = self.opener.open(&sealed)?;
        if let Some(gave_up) = abort_reason(&plain) {
            return Err(gave_up);
        }
        parse_description(&plain, expected)
    }

    async fn aborted(&mut self) -> SessionError {
        self.channel.aborted(&mut self.opener).await
    }

    async fn abort(mut self, error: SessionError) -> SessionError {
        self.channel.abort(&mut self.sealer, error).await
    }

    async fn finish(self) {
        self.channel.close().await;
    }
}
