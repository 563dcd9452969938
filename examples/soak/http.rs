//! The simulated load balancer: every request goes to the next replica in turn, over HTTP/1.1
//! connections that each client keeps open, one per replica.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::http::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest wait for one request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The replicas behind one public origin, in round-robin order.
pub struct Balancer {
    replicas: Vec<SocketAddr>,
    next: AtomicUsize,
    /// Requests sent, through [`Balancer::pick`] or not.
    pub sent: AtomicU64,
}

impl Balancer {
    pub fn new(replicas: Vec<SocketAddr>) -> Self {
        Self {
            replicas,
            next: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// The replica for the next request: each request goes to the one after the last.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.replicas.len()
    }

    /// A replica other than `index` (itself when there is only one), varied by `salt`.
    pub fn other_than(&self, index: usize, salt: usize) -> usize {
        let n = self.replicas.len();
        if n < 2 {
            return index;
        }
        (index + 1 + salt % (n - 1)) % n
    }
}

/// A response, read in full.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The OAuth error code: the JSON body's `error`, else the `DPoP` challenge's, else none.
    pub fn error_code(&self) -> String {
        let from_body = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|json| json.get("error")?.as_str().map(str::to_owned));
        if let Some(code) = from_body {
            return code;
        }
        self.challenge_param("error")
            .unwrap_or_else(|| "-".to_owned())
    }

    /// The `error_description`: the JSON body's, else the `DPoP` challenge's, else empty.
    pub fn error_description(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|json| json.get("error_description")?.as_str().map(str::to_owned))
            .or_else(|| self.challenge_param("error_description"))
            .unwrap_or_default()
    }

    /// A quoted parameter of the `WWW-Authenticate` challenge (no escapes: the server's values
    /// have none).
    fn challenge_param(&self, name: &str) -> Option<String> {
        let value = self.headers.get("www-authenticate")?.to_str().ok()?;
        let pattern = format!("{name}=\"");
        value
            .match_indices(&pattern)
            // Not the tail of a longer name (`error=` inside `error_description=`).
            .find(|(at, _)| {
                value[..*at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| c == ' ' || c == ',')
            })
            .and_then(|(at, _)| value[at + pattern.len()..].split('"').next())
            .map(str::to_owned)
    }
}

/// One client's connections, one per replica, opened on first use and again after a failure.
pub struct Connections {
    senders: Vec<Option<SendRequest<Full<Bytes>>>>,
}

impl Connections {
    pub fn new(balancer: &Balancer) -> Self {
        Self {
            senders: (0..balancer.len()).map(|_| None).collect(),
        }
    }

    /// Sends `request` to replica `index` and reads the whole response; an error message on a
    /// connection failure or after [`REQUEST_TIMEOUT`].
    pub async fn send(
        &mut self,
        balancer: &Balancer,
        index: usize,
        request: Request<Full<Bytes>>,
    ) -> Result<Reply, String> {
        balancer.sent.fetch_add(1, Ordering::Relaxed);
        let addr = balancer.replicas[index];
        let slot = &mut self.senders[index];
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(slot, addr, request)).await;
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(message)) => {
                *slot = None;
                Err(message)
            }
            Err(_) => {
                *slot = None;
                Err("timeout".to_owned())
            }
        }
    }
}

async fn exchange(
    slot: &mut Option<SendRequest<Full<Bytes>>>,
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    if slot.as_ref().is_none_or(SendRequest::is_closed) {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|_| "connect".to_owned())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "handshake".to_owned())?;
        tokio::spawn(connection);
        *slot = Some(sender);
    }
    let Some(sender) = slot.as_mut() else {
        return Err("no connection".to_owned());
    };
    sender.ready().await.map_err(|_| "connection".to_owned())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| "send".to_owned())?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| "body".to_owned())?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
