//! What the benchmarks share: the signaling server they run in-process, and the files they move.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// A signaling server with its STUN responder on loopback, served by the current runtime:
/// `(ws URL, stun: URL)`.
pub(crate) async fn start_signaling() -> (String, String) {
    let mut config = p2p_signaling::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    config.stun.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = p2p_signaling::SignalingServer::bind(&config).await.unwrap();
    let addresses = (
        server.url(),
        format!("stun:{}", server.stun_addr().unwrap()),
    );
    tokio::spawn(server.run(std::future::pending()));
    addresses
}

/// `1 GiB`, `256 MiB`, `512 B`.
pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b.is_multiple_of(1 << 30) => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{b} B"),
    }
}

/// xorshift64*, the generator of the benchmarks' files.
pub(crate) fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Bytes no compressor or cache trick could shortcut, written and synced.
pub(crate) fn write_random_file(path: &Path, size: u64) {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ size;
    let mut left = size;
    while left > 0 {
        let word = next(&mut state).to_le_bytes();
        let n = left.min(8) as usize;
        file.write_all(&word[..n]).unwrap();
        left -= n as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

pub(crate) fn blake3_of(path: &Path) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut hasher).unwrap();
    hasher.finalize()
}
