//! The tokio runtime for webrtc-rs, with larger socket buffers on the ICE sockets.
//!
//! webrtc-rs binds each ICE UDP socket itself and hands it to [`Runtime::wrap_udp_socket`]. With
//! the kernel's default 208 KiB receive buffer, loopback bursts overflow it, and every lost SCTP
//! packet then waits out SCTP's 1 s minimum retransmission timeout: throughput collapses to a few
//! MB/s (measured: ../shared/DESIGN.md §9). 4 MiB buffers remove the drops.
//!
//! While a connection is being set up, its timers are also cut short. webrtc-rs 0.21.1's driver
//! queues some packets while it handles an event and sends them only when a timer wakes it: three
//! waits of ~200 ms each (before DTLS, between DTLS and SCTP, before the channel opens) put the
//! first byte ~615 ms after the start; with timers capped at 2 ms it comes after 21–39 ms
//! (docs/BENCHMARKS.md). Once connected the cap is lifted: the same timers pace its close and
//! its send backstop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Socket buffer size asked of the kernel for each ICE UDP socket.
pub(crate) const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The longest timer while the connection is being set up.
const SETUP_TIMER_CAP: Duration = Duration::from_millis(2);

/// [`TokioRuntime`] with tuned UDP socket buffers, and short timers until [`SetupDone::mark`].
#[derive(Debug)]
pub(crate) struct TunedRuntime {
    inner: TokioRuntime,
    setting_up: Arc<AtomicBool>,
}

/// Ends the short-timer phase of a [`TunedRuntime`].
#[derive(Debug, Clone)]
pub(crate) struct SetupDone(Arc<AtomicBool>);

impl SetupDone {
    /// The connection is up (or given up): timers run as asked from now on.
    pub(crate) fn mark(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl TunedRuntime {
    pub(crate) fn new() -> (Self, SetupDone) {
        let setting_up = Arc::new(AtomicBool::new(true));
        let runtime = Self {
            inner: TokioRuntime,
            setting_up: Arc::clone(&setting_up),
        };
        (runtime, SetupDone(setting_up))
    }
}

/// Warns once per process when the kernel grants less than was asked.
static WARNED: AtomicBool = AtomicBool::new(false);

fn tune(socket: &std::net::UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    // Linux reports double what it granted (bookkeeping overhead included).
    let granted = sock.recv_buffer_size().unwrap_or(0) / 2;
    if granted < SOCKET_BUFFER_BYTES && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            granted,
            wanted = SOCKET_BUFFER_BYTES,
            "the kernel capped the UDP receive buffer; transfers may be slow. Raise it with: \
             sysctl -w net.core.rmem_max={SOCKET_BUFFER_BYTES} net.core.wmem_max={SOCKET_BUFFER_BYTES}"
        );
    }
}

impl Runtime for TunedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        tune(&socket);
        self.inner.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if self.setting_up.load(Ordering::Relaxed) {
            return self.inner.sleep(duration.min(SETUP_TIMER_CAP));
        }
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }
}
