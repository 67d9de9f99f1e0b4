//! A signaling server that tampers: a WebSocket proxy in front of the real server. Each client
//! that connects to it gets its own connection to the real server, every frame is forwarded both
//! ways, and the payloads the server relays (`message` frames, see signaling/PROTOCOL.md) go
//! through a test's [`Tamper`] on their way to the client.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The client a relayed payload is on its way to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Sender,
    Receiver,
}

/// Decides what a client gets in place of the `index`-th payload relayed to it: none, the
/// payload itself, another, or several. In a session, index 0 is the peer's `pake <base64>`
/// message, 1 its sealed key confirmation and 2 its sealed SDP (offer or answer).
pub type Tamper = Box<dyn FnMut(To, usize, String) -> Vec<String> + Send>;

/// A proxy that changes nothing.
pub fn honest() -> Tamper {
    Box::new(|_, _, payload| vec![payload])
}

/// `sealed` with one bit of its ciphertext changed.
pub fn flip_a_bit(sealed: &str) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(sealed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a proxy in front of the signaling server at `upstream`; returns its `ws://` URL.
///
/// The first client to connect is taken for the sender (it takes a nameplate before anyone knows
/// the code), the next for the receiver.
pub async fn start(upstream: &str, tamper: Tamper) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let tamper = Arc::new(Mutex::new(tamper));
    let upstream = upstream.to_owned();
    tokio::spawn(async move {
        let mut connections = 0;
        while let Ok((client, _)) = listener.accept().await {
            let to = if connections == 0 {
                To::Sender
            } else {
                To::Receiver
            };
            connections += 1;
            tokio::spawn(relay(client, upstream.clone(), to, Arc::clone(&tamper)));
        }
    });
    url
}

/// Forwards one client's frames to its own connection to the real server and back, until either
/// side closes; then closes the other, so the server tells the room the client left.
async fn relay(client: TcpStream, upstream: String, to: To, tamper: Arc<Mutex<Tamper>>) {
    let Ok(mut client) = tokio_tungstenite::accept_async(client).await else {
        return;
    };
    let Ok((mut server, _)) = tokio_tungstenite::connect_async(upstream.as_str()).await else {
        return;
    };
    let mut relayed = 0;
    loop {
        tokio::select! {
            frame = client.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if server.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                // tungstenite answers pings by itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => break,
            },
            frame = server.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let frames = deliver(&text, to, &mut relayed, &tamper);
                    for text in frames {
                        if client.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => break,
            },
        }
    }
    let _ = client.close(None).await;
    let _ = server.close(None).await;
}

/// What the client gets for one frame from the server: every frame but `message` as it is, and
/// a `message` as the tamper decides.
fn deliver(text: &str, to: To, relayed: &mut usize, tamper: &Mutex<Tamper>) -> Vec<String> {
    let frame: serde_json::Value = serde_json::from_str(text).unwrap();
    if frame["type"] != "message" {
        return vec![text.to_owned()];
    }
    let payload = frame["payload"].as_str().unwrap().to_owned();
    let index = *relayed;
    *relayed += 1;
    let payloads = (tamper.lock().unwrap())(to, index, payload);
    payloads
        .into_iter()
        .map(|payload| {
            let mut altered = frame.clone();
            altered["payload"] = payload.into();
            altered.to_string()
        })
        .collect()
}
