//! TURN over TCP and TLS (`turn:HOST:PORT?transport=tcp`, `turns:HOST:PORT`), for networks that
//! drop UDP.
//!
//! webrtc-rs 0.21 talks to TURN servers over UDP only (its relayer skips any other URL with a
//! warning). So each TCP or TLS server gets a small shim here: a UDP socket on 127.0.0.1 that
//! webrtc-rs is given as `turn:127.0.0.1:PORT?transport=udp`. For each local socket of webrtc-rs
//! that writes to it, the shim opens one TCP (or TLS) connection to the real server, and carries
//! every datagram over it as one message, and every message that comes back (split by
//! [`super::turn_framing`]) back to that socket as one datagram. The TURN client, its credentials
//! and its allocation are webrtc-rs's own; the relayed candidate it learns is the real server's.
//!
//! A shim lives as long as its peer connection: [`Relays::follow`] keeps it until the connection
//! is closed (a moment longer, so that the allocation's release gets out) or dropped. When the
//! server cannot be reached (refused, no answer, a TLS certificate that does not verify), the shim
//! answers webrtc-rs's requests with an error, so that it gives up on that server at once, and
//! [`Relays::explain`] puts the cause into the session's error.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rtc::ice::url::{ProtoType, SchemeType, Url};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use webrtc::peer_connection::RTCPeerConnectionState;

use super::turn_framing::{Splitter, error_response, to_stream};
use super::{Connected, SessionError, SessionOptions};

/// How long reaching the TURN server (TCP, then the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write to the TURN server may block before the shim gives up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shim outlives its closed peer connection: the allocation's release goes out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// webrtc-rs's local sockets one shim serves (one per bind address); any more are ignored.
const MAX_SOURCES: usize = 8;
/// Datagrams waiting for the stream (while it connects, or is slow) before more are dropped, as
/// UDP would drop them.
const QUEUE: usize = 256;

/// How to reach one TURN server over a stream.
struct Target {
    /// The URL as the user or the signaling server gave it, for messages.
    url: String,
    /// `HOST:PORT`.
    address: String,
    /// `Some` for `turns:`: the name to verify the certificate against, and the TLS settings.
    tls: Option<(ServerName<'static>, tokio_rustls::TlsConnector)>,
}

/// The first thing that went wrong with a shim's server, shared with its tasks.
type Failure = Arc<Mutex<Option<String>>>;

/// One server's shim; its tasks end when it is dropped.
struct Shim {
    url: String,
    failure: Failure,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The shims of one peer connection's TURN servers.
#[derive(Default)]
pub(super) struct Relays {
    shims: Vec<Shim>,
    /// Each shim's loopback address, as webrtc-rs sees the relay, and the relay's own URL.
    stands_for: Vec<(String, String)>,
}

/// Runs `connect` (which builds the peer connection) with `options`' TCP and TLS TURN servers
/// replaced by shims, and keeps the shims for as long as the connection it returns. On failure,
/// a shim's failure is added to the error.
pub(super) async fn connect_through<F, Fut>(
    options: &SessionOptions,
    connect: F,
) -> Result<Connected, SessionError>
where
    F: FnOnce(SessionOptions) -> Fut,
    Fut: Future<Output = Result<Connected, SessionError>>,
{
    let (relays, options) = Relays::start(options).await;
    match connect(options).await {
        Ok(connected) => {
            for (local, url) in &relays.stands_for {
                connected.relays.rename(local, url);
            }
            relays.follow(connected.state.clone());
            Ok(connected)
        }
        Err(error) => Err(relays.explain(error)),
    }
}

impl Relays {
    /// Starts a shim for each TCP or TLS TURN server of `options`, and returns the options that
    /// point webrtc-rs at them. A URL that cannot be served is left out, its failure kept for
    /// [`Relays::explain`].
    pub(super) async fn start(options: &SessionOptions) -> (Self, SessionOptions) {
        let mut relays = Self::default();
        let mut options = options.clone();
        let Some(turn) = options.turn.as_mut() else {
            return (relays, options);
        };
        let mut urls = Vec::with_capacity(turn.urls.len());
        for url in &turn.urls {
            match shim_target(url, &options.turn_ca) {
                Ok(None) => urls.push(url.clone()),
                Ok(Some(target)) => match Shim::start(target).await {
                    Ok((shim, local)) => {
                        urls.push(format!("turn:{local}?transport=udp"));
                        relays.stands_for.push((local.to_string(), url.clone()));
                        relays.shims.push(shim);
                    }
                    Err(failed) => relays.shims.push(failed),
                },
                Err(cause) => relays.shims.push(Shim::failed(url, cause)),
            }
        }
        turn.urls = urls;
        (relays, options)
    }

    /// Keeps the shims until the peer connection whose state `state` follows is closed or gone.
    pub(super) fn follow(self, mut state: watch::Receiver<RTCPeerConnectionState>) {
        if self.shims.iter().all(|shim| shim.task.is_none()) {
            return;
        }
        tokio::spawn(async move {
            let _ = state
                .wait_for(|s| *s == RTCPeerConnectionState::Closed)
                .await;
            tokio::time::sleep(CLOSE_GRACE).await;
            drop(self);
        });
    }

    /// `error`, with the cause in front when a TURN server failed and the error is of the kind a
    /// missing relay explains (no path, a timeout).
    pub(super) fn explain(&self, error: SessionError) -> SessionError {
        let explains = matches!(
            error,
            SessionError::WebRtc(_) | SessionError::Timeout(_) | SessionError::PeerFailed
        );
        let failed = self.shims.iter().find_map(|shim| {
            let failure = shim.failure.lock().ok()?.clone()?;
            Some((shim.url.clone(), failure))
        });
        match failed {
            Some((url, cause)) if explains => SessionError::Relay {
                url,
                cause,
                then: Box::new(error),
            },
            _ => error,
        }
    }
}

/// Whether p2phost can use `url` as a TURN relay: `turn:` over UDP or TCP, or `turns:` (TLS over
/// TCP); `Err` says what is wrong with it.
pub fn check_turn_url(url: &str) -> Result<(), String> {
    parse(url).map(|_| ())
}

/// `url` read, with the name to verify a `turns:` server's certificate against.
fn parse(url: &str) -> Result<(Url, Option<ServerName<'static>>), String> {
    if !(url.starts_with("turn:") || url.starts_with("turns:")) {
        return Err("not a turn: or turns: URL".into());
    }
    let parsed = Url::parse_url(url).map_err(|e| format!("not a TURN URL: {e}"))?;
    match (parsed.scheme, parsed.proto) {
        (SchemeType::Turn, ProtoType::Udp | ProtoType::Tcp) => Ok((parsed, None)),
        (SchemeType::Turns, ProtoType::Tcp) => {
            let name = ServerName::try_from(parsed.host.clone())
                .map_err(|e| format!("{:?} is not a host name for TLS: {e}", parsed.host))?;
            Ok((parsed, Some(name)))
        }
        (SchemeType::Turns, _) => {
            Err("TURN over DTLS is not supported; use turns: over TCP (no ?transport)".into())
        }
        _ => Err("not a turn: URL over UDP or TCP".into()),
    }
}

/// The shim target for `url`, or `None` for a URL webrtc-rs serves itself (`turn:` over UDP).
fn shim_target(url: &str, ca: &[CertificateDer<'static>]) -> Result<Option<Target>, String> {
    let (parsed, name) = parse(url)?;
    let tls = match name {
        None if parsed.proto == ProtoType::Udp => return Ok(None),
        None => None,
        Some(name) => Some((name, tls_connector(ca)?)),
    };
    let address = if parsed.host.contains(':') {
        format!("[{}]:{}", parsed.host, parsed.port)
    } else {
        format!("{}:{}", parsed.host, parsed.port)
    };
    Ok(Some(Target {
        url: url.to_owned(),
        address,
        tls,
    }))
}

/// TLS settings for `turns:`: the Mozilla roots the signaling client trusts for `wss://`, or
/// only `ca` when it is given (a private CA, or the server's own self-signed certificate).
fn tls_connector(ca: &[CertificateDer<'static>]) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?;
    let config = if ca.is_empty() {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // A certificate webpki cannot take as a root (most self-signed ones) is still pinned.
        let (_added, _ignored) = roots.add_parsable_certificates(ca.iter().cloned());
        let chain = if roots.is_empty() {
            None
        } else {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| format!("the TURN CA certificates are not usable: {e}"))?;
            Some(verifier)
        };
        let verifier = PinnedOrChain {
            chain,
            pinned: ca.to_vec(),
            provider,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `--turn-ca`'s verifier: a server whose certificate is one of the given ones exactly (a
/// self-signed certificate, which webpki refuses to take as its own CA) passes, signatures
/// checked; any other needs a chain to one of them, as usual.
#[derive(Debug)]
struct PinnedOrChain {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|pinned| pinned == end_entity) {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl Shim {
    /// A shim that could not start: it only carries its failure.
    fn failed(url: &str, cause: String) -> Self {
        tracing::warn!(turn = %url, "TURN server left out: {cause}");
        Self {
            url: url.to_owned(),
            failure: Arc::new(Mutex::new(Some(cause))),
            task: None,
        }
    }

    /// Binds the shim's socket on loopback and starts serving it; its address.
    async fn start(target: Target) -> Result<(Self, SocketAddr), Self> {
        let bound = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .and_then(|socket| Ok((socket.local_addr()?, socket)));
        let (local, socket) = match bound {
            Ok(bound) => bound,
            Err(e) => {
                return Err(Self::failed(
                    &target.url,
                    format!("cannot bind a loopback UDP socket for it: {e}"),
                ));
            }
        };
        let failure = Failure::default();
        let url = target.url.clone();
        tracing::debug!(turn = %url, %local, "TURN over a stream, through a loopback shim");
        let task = tokio::spawn(serve(Arc::new(socket), Arc::new(target), failure.clone()));
        Ok((
            Self {
                url,
                failure,
                task: Some(task),
            },
            local,
        ))
    }
}

/// Reads webrtc-rs's datagrams and hands each to the pipe of the socket it came from.
async fn serve(socket: Arc<UdpSocket>, target: Arc<Target>, failure: Failure) {
    let mut pipes: HashMap<SocketAddr, mpsc::Sender<Bytes>> = HashMap::new();
    // Dropped with this task, which aborts the pipes.
    let mut tasks = JoinSet::new();
    let mut buffer = vec![0; 65_536];
    loop {
        let (len, from) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            // An ICMP error from an earlier send, reported on this socket: nothing to do.
            Err(e) => {
                tracing::trace!("TURN shim socket: {e}");
                continue;
            }
        };
        pipes.retain(|_, pipe| !pipe.is_closed());
        let pipe = match pipes.get(&from) {
            Some(pipe) => pipe,
            None if pipes.len() >= MAX_SOURCES => continue,
            None => {
                let (sender, receiver) = mpsc::channel(QUEUE);
                tasks.spawn(pipe(
                    Arc::clone(&socket),
                    from,
                    Arc::clone(&target),
                    receiver,
                    failure.clone(),
                ));
                pipes.entry(from).or_insert(sender)
            }
        };
        // A full queue drops the datagram, as a congested UDP path would.
        let _ = pipe.try_send(Bytes::copy_from_slice(&buffer[..len]));
    }
}

/// One local socket's stream to the server: connects, then carries messages both ways until the
/// stream ends; from then on answers requests with an error naming the cause.
async fn pipe(
    socket: Arc<UdpSocket>,
    from: SocketAddr,
    target: Arc<Target>,
    mut datagrams: mpsc::Receiver<Bytes>,
    failure: Failure,
) {
    let cause = match connect(&target).await {
        Ok(Stream::Tcp(stream)) => carry(stream, &socket, from, &mut datagrams).await,
        Ok(Stream::Tls(stream)) => carry(*stream, &socket, from, &mut datagrams).await,
        Err(cause) => cause,
    };
    tracing::warn!(turn = %target.url, "TURN server: {cause}");
    if let Ok(mut first) = failure.lock() {
        first.get_or_insert_with(|| cause.clone());
    }
    let reason = format!("{}: {cause}", target.url);
    while let Some(datagram) = datagrams.recv().await {
        if let Some(response) = error_response(&datagram, &reason) {
            let _ = socket.send_to(&response, from).await;
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Reaches the server: TCP, then TLS for `turns:`. `Err` says why not, for the user.
async fn connect(target: &Target) -> Result<Stream, String> {
    let reach = async {
        let tcp = TcpStream::connect(&target.address)
            .await
            .map_err(|e| format!("cannot connect to {} over TCP: {e}", target.address))?;
        let _ = tcp.set_nodelay(true);
        match &target.tls {
            None => Ok(Stream::Tcp(tcp)),
            Some((name, connector)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|tls| Stream::Tls(Box::new(tls)))
                .map_err(|e| tls_error(&e)),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, reach)
        .await
        .map_err(|_| {
            format!(
                "{} did not answer within {} s",
                target.address,
                CONNECT_TIMEOUT.as_secs()
            )
        })?
}

/// A TLS handshake failure, with what to do about a certificate that does not verify.
fn tls_error(error: &std::io::Error) -> String {
    let certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
    if certificate && error.to_string().contains("CaUsedAsEndEntity") {
        format!(
            "TLS: the server's certificate is self-signed ({error}); to trust it, give it with \
             --turn-ca FILE.pem"
        )
    } else if certificate {
        format!(
            "TLS: the server's certificate is not valid: {error} (for a private CA or a \
             self-signed certificate: --turn-ca FILE.pem)"
        )
    } else {
        format!("TLS: {error}")
    }
}

/// Carries datagrams to the stream and messages from it back, until either way fails; why.
async fn carry<S: AsyncRead + AsyncWrite>(
    stream: S,
    socket: &UdpSocket,
    from: SocketAddr,
    datagrams: &mut mpsc::Receiver<Bytes>,
) -> String {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let upstream = async {
        while let Some(datagram) = datagrams.recv().await {
            let framed = match to_stream(&datagram) {
                Ok(framed) => framed,
                Err(e) => {
                    tracing::debug!("TURN shim: a datagram that is not TURN left out: {e}");
                    continue;
                }
            };
            match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&framed)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return format!("the connection failed: {e}"),
                Err(_) => return "the server stopped reading".to_owned(),
            }
        }
        "closed".to_owned()
    };
    let downstream = async {
        let mut splitter = Splitter::default();
        let mut buffer = vec![0; 16 * 1024];
        loop {
            let read = match reader.read(&mut buffer).await {
                Ok(0) => return "the server closed the connection".to_owned(),
                Ok(read) => read,
                Err(e) => return format!("the connection failed: {e}"),
            };
            splitter.push(&buffer[..read]);
            loop {
                match splitter.next_message() {
                    Ok(Some(message)) => {
                        // Lost like any datagram if the local socket is gone.
                        let _ = socket.send_to(&message, from).await;
                    }
                    Ok(None) => break,
                    Err(e) => return format!("the server sent something that is not TURN: {e}"),
                }
            }
        }
    };
    tokio::select! {
        cause = upstream => cause,
        cause = downstream => cause,
    }
}
