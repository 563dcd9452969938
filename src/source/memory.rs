//! [`InMemoryNonceSource`]: random nonces, current and previous, rotated from the clock.

use std::fmt;

use time::Duration;

use super::engine::{Engine, Policy, Slots, carry_local};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::rotation::Rotation;

/// A nonce source for a single server process: it keeps the current and the previous nonce in
/// memory, each 256 bits from the operating system's CSPRNG.
///
/// # Rotation
///
/// Time is cut into windows of [`Rotation`] length aligned on the UNIX epoch. The nonce made for
/// window `w` is current while `w` runs and previous during `w + 1`; so a nonce is accepted for
/// at least one and at most two intervals. Rotation is *computed*: the first call that reads a
/// time in a later window rotates (under a short write lock, taken only then). There is no
/// thread and no timer, so nothing stalls on a frozen or suspended host, and a process that sat
/// idle for two or more windows drops the previous nonce too.
///
/// If the clock steps back, the source starts the window the clock shows afresh: a new random
/// nonce and no previous one. A nonce of the later window is refused from then on (its clients
/// retry once), and no nonce ever comes back, whatever the clock does.
///
/// # Concurrency
///
/// [`check`](crate::NonceSource::check) and [`issue`](crate::NonceSource::issue) read through a sequence lock
/// built on atomics: no lock is taken and no shared memory is written unless a rotation is due,
/// so checks scale across cores.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceCheck, NonceSource};
/// use time::Duration;
///
/// let clock = Arc::new(ManualClock::at_unix(Duration::ZERO));
/// let source = InMemoryNonceSource::builder()
///     .rotation(Duration::minutes(5))
///     .clock(Arc::clone(&clock))
///     .build()?;
///
/// let first = source.issue();
/// assert_eq!(source.check(first.as_str()), NonceCheck::Current);
///
/// clock.advance(Duration::minutes(5));
/// assert_eq!(source.check(first.as_str()), NonceCheck::Previous);
///
/// clock.advance(Duration::minutes(5));
/// assert_eq!(source.check(first.as_str()), NonceCheck::Unknown);
/// # Ok::<(), dpop_nonce::ConfigError>(())
/// ```
pub struct InMemoryNonceSource<C = SystemClock> {
    engine: Engine<Random, C, 2>,
}

/// The in-memory policy: no shared value, a fresh random one every window.
struct Random;

impl Policy<2> for Random {
    fn fill(&self, latest: &Slots<2>, target: i64, _floor: i64) -> Slots<2> {
        let mut next = Slots::empty(target);
        carry_local(latest, target, true, &mut next);
        next
    }
}

impl InMemoryNonceSource<SystemClock> {
    /// A source on the system clock with the default rotation ([`Rotation::DEFAULT`], 5 minutes).
    pub fn new() -> Self {
        Self::from_parts(SystemClock, Rotation::DEFAULT)
    }

    /// A builder to choose the rotation interval and the clock.
    pub fn builder() -> InMemoryNonceSourceBuilder<SystemClock> {
        InMemoryNonceSourceBuilder {
            clock: SystemClock,
            rotation: Rotation::DEFAULT.interval(),
        }
    }
}

impl Default for InMemoryNonceSource<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> InMemoryNonceSource<C> {
    fn from_parts(clock: C, rotation: Rotation) -> Self {
        Self {
            engine: Engine::new(clock, rotation, Duration::ZERO, Random),
        }
    }

    /// The rotation this source uses.
    pub fn rotation(&self) -> Rotation {
        self.engine.rotation()
    }

    /// The clock this source reads.
    pub fn clock(&self) -> &C {
        self.engine.clock()
    }
}

super::engine::engine_nonce_source!(InMemoryNonceSource);

impl<C: fmt::Debug> fmt::Debug for InMemoryNonceSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryNonceSource")
            .field("engine", &self.engine)
            .finish()
    }
}

/// Builds an [`InMemoryNonceSource`]; see [`InMemoryNonceSource::builder`].
///
/// ```
/// use dpop_nonce::{InMemoryNonceSource, ManualClock};
/// use time::Duration;
///
/// let source = InMemoryNonceSource::builder()
///     .rotation(Duration::seconds(90))
///     .clock(ManualClock::default())
///     .build()?;
/// assert_eq!(source.rotation().interval(), Duration::seconds(90));
/// # Ok::<(), dpop_nonce::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct InMemoryNonceSourceBuilder<C> {
    clock: C,
    rotation: Duration,
}

impl<C: Clock> InMemoryNonceSourceBuilder<C> {
    /// Sets the rotation interval (default 5 minutes; see [`Rotation::DEFAULT`]).
    pub fn rotation(mut self, interval: Duration) -> Self {
        self.rotation = interval;
        self
    }

    /// Sets the clock (default [`SystemClock`]).
    pub fn clock<D: Clock>(self, clock: D) -> InMemoryNonceSourceBuilder<D> {
        InMemoryNonceSourceBuilder {
            clock,
            rotation: self.rotation,
        }
    }

    /// Builds the source and makes its first nonce.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NonPositiveRotation`] or [`ConfigError::RotationTooLong`] for an interval
    /// outside `(0, 100 years]`.
    pub fn build(self) -> Result<InMemoryNonceSource<C>, ConfigError> {
        let rotation = Rotation::new(self.rotation)?;
        Ok(InMemoryNonceSource::from_parts(self.clock, rotation))
    }
}
