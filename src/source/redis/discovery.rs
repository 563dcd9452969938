//! [`Discovery`]: one `redis` crate [`SentinelClient`], shared by the synchronous connections
//! and the async ones of every clone of a [`RedisEndpoint`](super::RedisEndpoint).
//!
//! Asking the sentinels for the primary needs the client mutably, and may take long (the
//! Sentinel client sets no timeouts of its own). So no lock is held while it runs: a caller
//! takes the client out of its slot under a short lock, asks the sentinels, and puts it back
//! when done, or when its future is dropped (a timeout). A caller that finds the slot empty
//! waits for the client to come back, within its own time bound: a thread sleeps in short
//! steps, up to the wait it was given; a task sleeps on the runtime. Discovery runs only when
//! a connection is opened, so two callers rarely meet.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::sentinel::SentinelClient;
use redis::{Client, ErrorKind, RedisError, RedisResult};

/// How long a caller that found the client lent out sleeps before it looks again.
const LENT_OUT_POLL: Duration = Duration::from_millis(2);

/// The shared Sentinel client: in its slot, or lent out to a discovery.
pub(crate) struct Discovery {
    slot: Mutex<Option<SentinelClient>>,
}

impl Discovery {
    pub(crate) fn new(client: SentinelClient) -> Self {
        Self {
            slot: Mutex::new(Some(client)),
        }
    }

    /// A client for the current primary, asked of the sentinels on this thread. Waits at most
    /// `wait` for a client lent out to another discovery.
    pub(crate) fn primary(&self, wait: Duration) -> RedisResult<Client> {
        let deadline = Instant::now() + wait;
        let mut loan = loop {
            if let Some(loan) = self.lend() {
                break loan;
            }
            if Instant::now() >= deadline {
                return Err(lent_out());
            }
            std::thread::sleep(LENT_OUT_POLL);
        };
        loan.client
            .as_mut()
            .map_or_else(|| Err(lent_out()), SentinelClient::get_client)
    }

    /// A client for the current primary, asked of the sentinels without blocking the runtime.
    /// Unbounded in itself: the caller puts a `tokio::time::timeout` around it.
    #[cfg(feature = "tokio")]
    pub(crate) async fn primary_async(&self) -> RedisResult<Client> {
        let mut loan = loop {
            if let Some(loan) = self.lend() {
                break loan;
            }
            tokio::time::sleep(LENT_OUT_POLL).await;
        };
        match loan.client.as_mut() {
            Some(client) => client.async_get_client().await,
            None => Err(lent_out()),
        }
    }

    /// The client, taken out of its slot; `None` while another caller has it.
    fn lend(&self) -> Option<Loan<'_>> {
        let client = self.slot.lock().take()?;
        Some(Loan {
            home: self,
            client: Some(client),
        })
    }
}

/// The client taken out of its slot; put back on drop, whatever ended the discovery.
struct Loan<'a> {
    home: &'a Discovery,
    client: Option<SentinelClient>,
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            *self.home.slot.lock() = Some(client);
        }
    }
}

fn lent_out() -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "the Sentinel client is busy finding the primary for another connection",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::sentinel::SentinelServerType;

    fn discovery_at(sentinel: String) -> Discovery {
        let client = SentinelClient::build(
            vec![sentinel],
            "mymaster".to_owned(),
            None,
            SentinelServerType::Master,
        )
        .expect("an address");
        Discovery::new(client)
    }

    /// Nothing listens on port 1.
    fn discovery() -> Discovery {
        discovery_at("redis://127.0.0.1:1".to_owned())
    }

    /// A "sentinel" that accepts connections and never answers, and a discovery that asks it.
    #[cfg(feature = "tokio")]
    fn silent_sentinel() -> (std::net::TcpListener, Discovery) {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = format!("redis://{}", silent.local_addr().expect("an address"));
        (silent, discovery_at(address))
    }

    #[test]
    fn a_lent_client_comes_back_when_the_loan_ends() {
        let discovery = discovery();
        let loan = discovery.lend().expect("the client is home");
        assert!(discovery.lend().is_none(), "one loan at a time");
        let started = Instant::now();
        let err = discovery
            .primary(Duration::from_millis(20))
            .expect_err("no client to ask with");
        assert!(err.to_string().contains("busy"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(20));
        drop(loan);
        assert!(discovery.lend().is_some(), "back in its slot");
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn a_cancelled_discovery_puts_the_client_back() {
        let (_silent, discovery) = silent_sentinel();
        let asking =
            tokio::time::timeout(Duration::from_millis(50), discovery.primary_async()).await;
        assert!(asking.is_err(), "the silent sentinel held the discovery");
        assert!(discovery.lend().is_some(), "the client is back in its slot");
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn a_hung_sync_discovery_does_not_block_an_async_one() {
        let (silent, discovery) = silent_sentinel();
        let discovery = std::sync::Arc::new(discovery);
        let hung = {
            let discovery = std::sync::Arc::clone(&discovery);
            std::thread::spawn(move || discovery.primary(Duration::from_secs(5)))
        };
        while discovery.slot.lock().is_some() {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The sync discovery has the client and waits on the silent sentinel. An async
        // discovery on a runtime must stay cancellable by its timeout.
        let (done, outcome) = std::sync::mpsc::channel();
        let asker = {
            let discovery = std::sync::Arc::clone(&discovery);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a runtime");
                let asked = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_millis(50), discovery.primary_async()).await
                });
                let _ = done.send(asked.is_err());
            })
        };
        let timed_out = outcome.recv_timeout(Duration::from_secs(3));
        // Ends the hung discovery: its pending connection is reset.
        drop(silent);
        assert_eq!(timed_out, Ok(true), "the async discovery was blocked");
        asker.join().expect("the asking thread");
        let hung = hung.join().expect("the hung thread");
        assert!(hung.is_err(), "no primary from a silent sentinel");
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn an_async_discovery_waits_for_a_lent_client() {
        let discovery = discovery();
        let loan = discovery.lend().expect("the client is home");
        let waiting =
            tokio::time::timeout(Duration::from_millis(20), discovery.primary_async()).await;
        assert!(waiting.is_err(), "waited for the lent client");
        drop(loan);
        // Nothing listens on port 1: the discovery fails, and the client is home again.
        assert!(discovery.primary_async().await.is_err());
        assert!(discovery.lend().is_some());
    }
}
