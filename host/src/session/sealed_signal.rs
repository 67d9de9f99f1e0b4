//! One-off transfers' [`Signal`]: descriptions and candidates sealed under the keys both sides
//! derived from the code, so the signaling server can neither read nor alter them.
//!
//! Each message is sealed on its own: a description is its JSON, a candidate `candidate ` and its
//! JSON, a side that gives up says `abort refused` or `abort failed`.

use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

use super::webrtc_link::{Remote, Signal, parse_candidate, parse_description};
use super::{Channel, SessionError, abort_reason};
use crate::code::{Opener, Sealer, SessionKeys};

/// What a sealed candidate starts with (a description is JSON, so it starts with `{`).
const CANDIDATE_PREFIX: &str = "candidate ";

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

    async fn send_candidate(
        &mut self,
        candidate: &RTCIceCandidateInit,
    ) -> Result<(), SessionError> {
        let json = serde_json::to_vec(candidate)
            .map_err(|e| SessionError::WebRtc(format!("encoding a candidate: {e}")))?;
        let plain = [CANDIDATE_PREFIX.as_bytes(), &json].concat();
        self.channel.send(self.sealer.seal(&plain)?).await
    }

    async fn receive(&mut self) -> Result<Remote, SessionError> {
        let sealed = self.channel.next_untimed().await?;
        let plain = self.opener.open(&sealed)?;
        if let Some(gave_up) = abort_reason(&plain) {
            return Err(gave_up);
        }
        match plain.strip_prefix(CANDIDATE_PREFIX.as_bytes()) {
            Some(json) => Ok(Remote::Candidate(parse_candidate(json)?)),
            None => Ok(Remote::Description(Box::new(parse_description(&plain)?))),
        }
    }

    async fn abort(mut self, error: SessionError) -> SessionError {
        self.channel.abort(&mut self.sealer, error).await
    }

    async fn finish(self) {
        self.channel.close().await;
    }
}
