//! [`Refresher`]: a tokio task that keeps a [`RedisNonceSource`] filled, so that its request
//! path never calls Redis.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::builder::RedisNonceSourceBuilder;
use super::source::RedisNonceSource;
use crate::clock::Clock;
use crate::error::ConfigError;

/// The shortest period a refresher runs at: 10 ms.
const MIN_EVERY: Duration = Duration::milliseconds(10);

impl<C: Clock + 'static> RedisNonceSourceBuilder<C> {
    /// Builds the source for an async server: a background task on `runtime` keeps its values
    /// fetched, and its request path never calls Redis. Returns the source in an [`Arc`] (the
    /// task holds only a weak reference) and the task's [`Refresher`] handle.
    ///
    /// Makes no Redis call here, and needs no Redis to succeed: the first refresh starts at
    /// once on the runtime's blocking pool. Until it has fetched the current window's value
    /// (one round trip), and whenever Redis fails, the source hands out its local fallback, as
    /// described under "When Redis is down" in [`RedisNonceSource`]. A replica behind a
    /// round-robin load balancer should start on the shared value, not on a fallback that the
    /// other replicas do not know: call [`RedisNonceSource::refresh`] once before it takes traffic
    /// (it blocks the calling thread, bounded by the connection timeouts).
    ///
    /// The task calls [`RedisNonceSource::refresh`] (bounded by the connection timeouts) on
    /// the blocking pool (`spawn_blocking`) every [`refresh_every`](Self::refresh_every), and
    /// stops on its own once the source is dropped. Pass `&Handle::current()` from inside the
    /// runtime, or the handle of a runtime kept elsewhere.
    ///
    /// ```no_run
    /// use dpop_nonce::NonceSource;
    /// use dpop_nonce::redis::RedisNonceSource;
    ///
    /// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://10.0.0.5:6379")?;
    /// let (source, refresher) = RedisNonceSource::builder(client, "rs")
    ///     .build_with_refresher(&tokio::runtime::Handle::current())?;
    /// // Request handlers share `source`; `issue` and `check` never wait for Redis.
    /// let nonce = source.issue();
    /// # let _ = (nonce, refresher);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a setting out of range, as [`build_with_fallback`](Self::build_with_fallback).
    pub fn build_with_refresher(
        self,
        runtime: &Handle,
    ) -> Result<(Arc<RedisNonceSource<C>>, Refresher), ConfigError> {
        let requested = self.refresh_every;
        let source = Arc::new(self.assemble()?);
        let every = effective_every(requested, source.lead(), source.rotation().interval());
        Ok((
            Arc::clone(&source),
            Refresher::spawn(&source, runtime, every),
        ))
    }
}

/// The period a refresher runs at: the one asked for, but at most the lead (so that a run
/// falls in the last lead of every window), or a quarter of the interval when the lead is
/// zero, and at least [`MIN_EVERY`].
fn effective_every(requested: Duration, lead: Duration, interval: Duration) -> Duration {
    let ceiling = if lead.is_positive() {
        lead
    } else {
        interval / 4
    };
    requested.min(ceiling).max(MIN_EVERY)
}

/// The handle of the background task started by
/// [`build_with_refresher`](RedisNonceSourceBuilder::build_with_refresher).
///
/// While the task runs, the source's request path ([`issue`](crate::NonceSource::issue),
/// [`check`](crate::NonceSource::check)) makes no Redis call: no fetch, no prefetch, no
/// re-read. The task does all of them through [`RedisNonceSource::refresh`], on the runtime's
/// blocking pool, every [`every`](Self::every). A current window whose value the task has not
/// fetched yet (Redis is slow or down across a window change) is served from the local
/// fallback at once, and the task moves the source back to the shared value as soon as Redis
/// answers.
///
/// The task stops on its own once the source is dropped (it holds only a weak reference and
/// checks it before each run), when [`stop`](Self::stop) is called, or when its runtime shuts
/// down. Dropping this handle does **not** stop it. Once the task has stopped while the source
/// lives on, the source goes back to making its own bounded Redis calls on the request path,
/// as a source built with [`build`](RedisNonceSourceBuilder::build) does, so it never stays
/// on its fallback for good.
#[must_use = "the refresher runs until the source is dropped; keep the handle to stop it earlier"]
pub struct Refresher {
    task: JoinHandle<()>,
    every: Duration,
}

impl Refresher {
    /// Starts the task: from now on, the request path of `source` stays off the network.
    fn spawn<C: Clock + 'static>(
        source: &Arc<RedisNonceSource<C>>,
        runtime: &Handle,
        every: Duration,
    ) -> Self {
        source.set_background(true);
        let weak = Arc::downgrade(source);
        // Made here, not in the task: a task stopped before it first ran still drops it.
        let foreground = Foreground(weak.clone());
        let task = runtime.spawn(run(weak, every, foreground));
        Self { task, every }
    }

    /// How often the task refreshes the source.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Stops the task. A refresh already under way finishes on the blocking pool; the source
    /// goes back to making its own bounded Redis calls on the request path.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// `true` once the task has stopped (the source was dropped, [`stop`](Self::stop) was
    /// called, or the runtime shut down).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("every", &self.every)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The task: a refresh per tick, on the blocking pool, while the source lives.
///
/// However the task ends (the source dropped, an abort, the runtime shutting down), dropping
/// `_foreground` hands a source still in use its own Redis calls back.
async fn run<C: Clock + 'static>(
    source: Weak<RedisNonceSource<C>>,
    every: Duration,
    _foreground: Foreground<C>,
) {
    let period = std::time::Duration::try_from(every).unwrap_or(std::time::Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(strong) = source.upgrade() else {
            return;
        };
        // A failed refresh is recorded in the source's health; the next tick tries again.
        let refresh = tokio::task::spawn_blocking(move || {
            let _ = strong.refresh();
        });
        if refresh.await.is_err() {
            // The blocking pool is shutting down (or the refresh panicked): nothing more to do.
            return;
        }
    }
}

/// On drop, hands the request path its own Redis calls back, if the source still lives.
struct Foreground<C: Clock>(Weak<RedisNonceSource<C>>);

impl<C: Clock> Drop for Foreground<C> {
    fn drop(&mut self) {
        if let Some(source) = self.0.upgrade() {
            source.set_background(false);
        }
    }
}

impl<C: Clock> RedisNonceSource<C> {
    /// `true` while a [`Refresher`] keeps this source filled, so that its request path makes
    /// no Redis call. Does not call Redis.
    pub fn is_refreshed_in_background(&self) -> bool {
        self.engine.policy().in_background()
    }

    fn set_background(&self, on: bool) {
        self.engine.policy().background.store(on, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_stays_within_the_lead() {
        let second = Duration::SECOND;
        assert_eq!(
            effective_every(second, Duration::seconds(5), Duration::minutes(5)),
            second
        );
        assert_eq!(
            effective_every(second, Duration::milliseconds(250), second),
            Duration::milliseconds(250)
        );
        assert_eq!(
            effective_every(second, Duration::ZERO, second),
            Duration::milliseconds(250)
        );
        assert_eq!(
            effective_every(Duration::ZERO, second, Duration::minutes(1)),
            MIN_EVERY
        );
        assert_eq!(
            effective_every(-second, second, Duration::minutes(1)),
            MIN_EVERY
        );
    }
}
