//! [`InMemoryNonceSource`]: random nonces, current and previous, rotated from the clock.

use std::fmt;

use time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::ct;
use crate::error::ConfigError;
use crate::nonce::Nonce;
use crate::rotation::Rotation;
use crate::source::{NonceCheck, NonceSource};
use crate::window_cell::{Slots, WindowCell};

const CURRENT: usize = 0;
const PREVIOUS: usize = 1;

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
/// If the clock steps backwards, the source keeps its nonces and waits for time to reach a later
/// window again: it never goes back to an earlier window, and it never resurrects an old nonce.
///
/// # Concurrency
///
/// [`check`](NonceSource::check) and [`issue`](NonceSource::issue) read through a sequence lock
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
    clock: C,
    cell: WindowCell<2>,
}

impl InMemoryNonceSource<SystemClock> {
    /// A source on the system clock with the default rotation ([`Rotation::DEFAULT`], 5 minutes).
    pub fn new() -> Self {
        Self::with_parts(SystemClock, Rotation::DEFAULT)
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
    /// A source reading `clock` and rotating every `rotation`.
    pub fn with_parts(clock: C, rotation: Rotation) -> Self {
        let window = rotation.window_of(clock.unix_time());
        let mut first = Slots::empty(window);
        first.values[CURRENT] = ct::fresh_packed();
        Self {
            clock,
            cell: WindowCell::new(rotation, Duration::ZERO, first),
        }
    }

    /// The rotation this source uses.
    pub fn rotation(&self) -> Rotation {
        self.cell.rotation()
    }

    /// The longest time one of this source's nonces is accepted: two rotation intervals. Use it
    /// as the lifetime of replay-cache entries (RFC 9449 §11.1).
    pub fn max_nonce_lifetime(&self) -> Duration {
        self.rotation().max_nonce_lifetime()
    }

    /// The clock this source reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The slots for the window the clock is in now, rotating first if that window is later than
    /// the stored one.
    #[inline]
    fn slots_now(&self) -> Slots<2> {
        self.cell.forward_to(self.clock.read(), rotate)
    }
}

/// The slots of window `target`, after `latest`: a fresh current nonce, and `latest`'s current
/// one as the previous when `target` directly follows it.
fn rotate(latest: &Slots<2>, target: i64) -> Slots<2> {
    let mut next = Slots::empty(target);
    next.values[CURRENT] = ct::fresh_packed();
    if latest.window.checked_add(1) == Some(target) {
        next.values[PREVIOUS] = latest.values[CURRENT];
    }
    next
}

impl<C: Clock> NonceSource for InMemoryNonceSource<C> {
    fn issue(&self) -> Nonce {
        // The current slot is never empty, so `unpack` always succeeds; the fallback only keeps
        // this path free of panics.
        ct::unpack(&self.cell.value_now(CURRENT, &self.clock, rotate))
            .unwrap_or_else(Nonce::generate)
    }

    #[inline]
    fn check(&self, claim: &str) -> NonceCheck {
        // The clock first, so that the comparison runs while the clock is being read (see
        // `ClockReading`). A snapshot newer than the reading is fine: it only holds nonces that
        // were issued.
        let now = self.clock.read();
        let Some(claim) = ct::pack(claim.as_bytes()) else {
            return NonceCheck::Unknown;
        };
        let mut compared = self.cell.compare(&claim);
        if now.has_reached(compared.steady_end()) {
            // The window may have ended: rotate if it has, then compare with what is stored.
            self.slots_now();
            compared = self.cell.compare(&claim);
        }
        match compared.hits {
            [true, _] => NonceCheck::Current,
            [false, true] => NonceCheck::Previous,
            [false, false] => NonceCheck::Unknown,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for InMemoryNonceSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored = self.cell.read();
        f.debug_struct("InMemoryNonceSource")
            .field("clock", &self.clock)
            .field("rotation", &self.cell.rotation().interval())
            .field("window", &stored.window)
            .field("has_previous", &!ct::is_empty(&stored.values[PREVIOUS]))
            .finish_non_exhaustive()
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
        Ok(InMemoryNonceSource::with_parts(self.clock, rotation))
    }
}
