//! The accept loop: TCP (and TLS) connections served as HTTP/1.1 by hyper until they upgrade to a
//! WebSocket. Before the upgrade a connection counts against its address's and the server's pending
//! bounds, and must send its request headers within a deadline, so idle sockets and slow TLS
//! handshakes cannot pile up; after it, the hub's bounds apply.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_rustls::TlsAcceptor;
use tower::Service;

use super::ServerError;
use super::state::AppState;
use crate::config::TlsConfig;
use crate::protocol::ErrorKind;
use crate::protocol::hub::address_group;

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client gets to send a request's headers (also between keep-alive requests).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in their TLS handshake or HTTP phase at once, across all addresses.
const MAX_PENDING: usize = 1024;

/// The client's address, as the WebSocket handler sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) SocketAddr);

/// Counts pre-upgrade connections per address.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Holds one pending slot (global and per address) until dropped.
struct PendingSlot {
    _permit: OwnedSemaphorePermit,
    per_ip: PerIp,
    ip: IpAddr,
}

impl PendingSlot {
    fn take(pending: &Arc<Semaphore>, per_ip: &PerIp, ip: IpAddr, limit: usize) -> Option<Self> {
        let permit = Arc::clone(pending).try_acquire_owned().ok()?;
        let mut counts = per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            _permit: permit,
            per_ip: Arc::clone(per_ip),
            ip,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut counts = self
            .per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `stop` fires, serving each with `app`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    state: Arc<AppState>,
    mut stop: oneshot::Receiver<()>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let per_ip = PerIp::default();
    let limit = state.limits.max_connections_per_ip;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: back off so it does not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => return,
        };
        let group = address_group(peer.ip());
        let Some(slot) = PendingSlot::take(&pending, &per_ip, group, limit) else {
            // Dropping the socket refuses it; the client sees a reset.
            state.metrics.reject(ErrorKind::TooManyConnections);
            tracing::debug!(%peer, "refused before the handshake: too many pending connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            tls.clone(),
            app.clone(),
            slot,
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    slot: PendingSlot,
) {
    match tls {
        None => serve_http(stream, peer, app, slot).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_http(tls, peer, app, slot).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection; returns when it closes or upgrades to a WebSocket.
async fn serve_http<Io>(io: Io, peer: SocketAddr, app: Router, slot: PendingSlot)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(peer)));
        app.clone().call(request)
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
    // The WebSocket, if any, lives on in its own task, under the hub's bounds.
    drop(slot);
}

/// Reads the PEM certificate chain and key into a rustls server config (ring provider, HTTP/1.1).
pub(crate) fn load_tls(tls: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let bad = |path: &std::path::Path, what: String| ServerError::Tls {
        path: path.to_owned(),
        message: what,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&tls.cert, "no CERTIFICATE block in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad(&tls.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                &tls.key,
                format!("certificate and key do not fit together: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
