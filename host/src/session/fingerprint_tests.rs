//! The DTLS fingerprint is what ties the data channel to the sealed SDP: a peer whose certificate
//! does not match the fingerprint it announced must be dropped before a data channel opens.
//!
//! A signaling server cannot swap fingerprints (the SDP travels sealed), so this drives two peer
//! connections in one process and changes the answer's fingerprint by hand, as a server that could
//! read and rewrite the SDP would.

use std::time::Duration;

use super::*;

/// With the right fingerprint the channel opens in well under a second on loopback; the wrong one
/// is given this long to (not) open.
const PATIENCE: Duration = Duration::from_secs(5);

fn loopback() -> SessionOptions {
    SessionOptions {
        bind: vec!["127.0.0.1:0".into()],
        step_timeout: PATIENCE,
        ..SessionOptions::default()
    }
}

/// `sdp` announcing another certificate: the first hex digit of each fingerprint changed.
fn another_fingerprint(sdp: &str) -> String {
    const PREFIX: &str = "a=fingerprint:sha-256 ";
    let mut changed = 0;
    let lines: Vec<String> = sdp
        .lines()
        .map(|line| match line.strip_prefix(PREFIX) {
            Some(hex) => {
                changed += 1;
                let other = if hex.starts_with('0') { '1' } else { '0' };
                format!("{PREFIX}{other}{}", &hex[1..])
            }
            None => line.to_owned(),
        })
        .collect();
    assert!(changed > 0, "no sha-256 fingerprint in {sdp}");
    lines.join("\r\n") + "\r\n"
}

fn must<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn with_sdp(description: &RTCSessionDescription, sdp: String) -> RTCSessionDescription {
    serde_json::from_value(serde_json::json!({
        "type": description.sdp_type.to_string(),
        "sdp": sdp,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An offer and answer exchanged in process, the answer passed through `rewrite` on its way.
/// Returns how opening the offerer's data channel ended, and whether the answerer got a channel.
async fn connect_with_answer(
    rewrite: impl FnOnce(&str) -> String,
) -> (Result<(), SessionError>, bool) {
    let options = loopback();
    let mut offerer = must("offerer", build(&options).await);
    let mut answerer = must("answerer", build(&options).await);
    let (a, b) = (
        Arc::clone(&offerer.peer_connection),
        Arc::clone(&answerer.peer_connection),
    );
    let data = must("data channel", a.create_data_channel(LABEL, None).await);
    let offer = must("offer", a.create_offer(None).await);
    must("local offer", a.set_local_description(offer.clone()).await);
    must("remote offer", b.set_remote_description(offer).await);
    let answer = must("answer", b.create_answer(None).await);
    must(
        "local answer",
        b.set_local_description(answer.clone()).await,
    );
    must(
        "remote answer",
        a.set_remote_description(with_sdp(&answer, rewrite(&answer.sdp)))
            .await,
    );
    // Bound to loopback with no STUN server, each side has one candidate: its host's.
    let offerer_candidate = first_candidate(&mut offerer).await;
    let answerer_candidate = first_candidate(&mut answerer).await;
    must(
        "offerer's candidate",
        b.add_ice_candidate(offerer_candidate).await,
    );
    must(
        "answerer's candidate",
        a.add_ice_candidate(answerer_candidate).await,
    );
    let opened = opened(&data).await;
    let answerer_got_a_channel = answerer.channels.try_recv().is_ok();
    let _ = a.close().await;
    let _ = b.close().await;
    (opened, answerer_got_a_channel)
}

async fn first_candidate(link: &mut Link) -> RTCIceCandidateInit {
    tokio::time::timeout(PATIENCE, link.candidates.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no local candidate"))
}

/// Whether `data` opens within [`PATIENCE`].
async fn opened(data: &Arc<dyn DataChannel>) -> Result<(), SessionError> {
    let open = async {
        loop {
            match data.poll().await {
                Some(DataChannelEvent::OnOpen) => return Ok(()),
                Some(DataChannelEvent::OnClose) | None => {
                    return Err(SessionError::WebRtc("closed before opening".into()));
                }
                Some(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, open)
        .await
        .map_err(|_| SessionError::Timeout("opening the data channel"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_announced_certificate_connects() {
    // Shows the harness works, so the refusal below comes from the fingerprint alone.
    let (opened, _) = connect_with_answer(str::to_owned).await;
    assert!(opened.is_ok(), "{opened:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_match_the_fingerprint_is_dropped() {
    let (opened, answerer_got_a_channel) = connect_with_answer(another_fingerprint).await;
    // webrtc-rs 0.21 refuses the certificate during the DTLS handshake but only logs the error
    // ("handle_read error"): the connection stays "connecting" and nothing reports a failure, so
    // the refusal shows as a channel that never opens, on either side.
    assert!(
        matches!(
            opened,
            Err(SessionError::Timeout(_) | SessionError::WebRtc(_))
        ),
        "{opened:?}"
    );
    assert!(!answerer_got_a_channel);
}

/// `sdp` with each fingerprint line written so that a reader of `a=fingerprint:` lines misses it
/// (`a= fingerprint:`, which webrtc-rs's SDP parser trims to the same attribute), followed by a
/// line for `shown`'s certificate.
fn hidden_behind(sdp: &str, shown: &crate::identity::PeerId) -> String {
    const PREFIX: &str = "a=fingerprint:";
    let hex: Vec<String> = shown.sha256().iter().map(|b| format!("{b:02X}")).collect();
    let lines: Vec<String> = sdp
        .lines()
        .map(|line| match line.strip_prefix(PREFIX) {
            Some(real) => format!("a= fingerprint:{real}\r\n{PREFIX}sha-256 {}", hex.join(":")),
            None => line.to_owned(),
        })
        .collect();
    lines.join("\r\n") + "\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_the_parser_sees_is_one_the_pinning_sees() {
    let pinned = crate::identity::PeerId::of_certificate(b"the trusted peer");
    let mut checked = None;
    let (opened, _) = connect_with_answer(|sdp| {
        let crafted = hidden_behind(sdp, &pinned);
        checked = Some(super::super::trusted::check_fingerprints(&crafted, &pinned));
        crafted
    })
    .await;
    // webrtc-rs goes by the first fingerprint of each section, the one written `a= fingerprint:`:
    // the channel opens to a certificate that is not the pinned peer's. So the pinning must read
    // the fingerprints as the parser does, and refuse this description.
    assert!(opened.is_ok(), "{opened:?}");
    assert!(
        matches!(checked, Some(Err(SessionError::WrongPeer(_)))),
        "the pinning passed a description whose certificate is not the peer's: {checked:?}"
    );
}
