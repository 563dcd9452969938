//! [`DerivedNonceSourceBuilder`]: the settings of a [`DerivedNonceSource`], checked before it
//! starts.

use std::fmt;

use time::Duration;

use super::keys::Secret;
use super::{Derive, DerivedNonceSource, SECRETS};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::rotation::Rotation;
use crate::source::engine::Engine;

/// Builds a [`DerivedNonceSource`]; see [`DerivedNonceSource::builder`].
///
/// ```
/// use dpop_nonce::derived::DerivedNonceSource;
/// use dpop_nonce::{ManualClock, NonceSource};
/// use time::Duration;
///
/// let (new_secret, old_secret) = ([1u8; 32], [2u8; 32]);
/// let source = DerivedNonceSource::builder("rs")
///     .secret(new_secret) // issues
///     .secret(old_secret) // still verifies
///     .rotation(Duration::minutes(2))
///     .lead(Duration::seconds(3))
///     .clock(ManualClock::default())
///     .build()?;
/// assert_eq!(source.secret_count(), 2);
/// assert_eq!(source.max_nonce_lifetime(), Duration::seconds(243));
/// assert!(!format!("{source:?}").contains("1, 1, 1"));
/// # Ok::<(), dpop_nonce::ConfigError>(())
/// ```
#[must_use]
pub struct DerivedNonceSourceBuilder<C> {
    clock: C,
    label: String,
    secrets: Vec<Secret>,
    rotation: Duration,
    lead: Option<Duration>,
}

impl DerivedNonceSourceBuilder<SystemClock> {
    pub(super) fn new(label: String) -> Self {
        Self {
            clock: SystemClock,
            label,
            secrets: Vec::new(),
            rotation: Rotation::DEFAULT.interval(),
            lead: None,
        }
    }
}

impl<C: Clock> DerivedNonceSourceBuilder<C> {
    /// Adds a secret. The first one added issues nonces; all of them verify. Give at least
    /// [`DerivedNonceSource::MIN_SECRET_LEN`] random bytes, and at most
    /// [`DerivedNonceSource::MAX_SECRETS`] secrets. The builder keeps a copy, wiped on drop.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(Secret::new(secret.as_ref()));
        self
    }

    /// Adds several secrets, in order (see [`secret`](Self::secret)).
    pub fn secrets<S: AsRef<[u8]>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.secrets
            .extend(secrets.into_iter().map(|s| Secret::new(s.as_ref())));
        self
    }

    /// Sets the rotation interval (default 5 minutes; see [`Rotation::DEFAULT`]). Every replica
    /// must use the same.
    pub fn rotation(mut self, interval: Duration) -> Self {
        self.rotation = interval;
        self
    }

    /// Sets the lead: during the last `lead` of a window the next window's nonce is also
    /// accepted, for replicas whose clocks run ahead. Default
    /// [`DerivedNonceSource::DEFAULT_LEAD`]; at most half the rotation interval; zero turns it
    /// off.
    pub fn lead(mut self, lead: Duration) -> Self {
        self.lead = Some(lead);
        self
    }

    /// Sets the clock (default [`SystemClock`]).
    pub fn clock<D: Clock>(self, clock: D) -> DerivedNonceSourceBuilder<D> {
        DerivedNonceSourceBuilder {
            clock,
            label: self.label,
            secrets: self.secrets,
            rotation: self.rotation,
            lead: self.lead,
        }
    }

    /// Checks the configuration, builds the source and derives its first window.
    ///
    /// # Errors
    ///
    /// [`ConfigError`]: no secret, too many, one shorter than
    /// [`DerivedNonceSource::MIN_SECRET_LEN`], an empty or over-long label, a lead out of range,
    /// or a rotation interval outside `(0, 100 years]`.
    pub fn build(self) -> Result<DerivedNonceSource<C>, ConfigError> {
        let rotation = Rotation::new(self.rotation)?;
        if self.secrets.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        if self.secrets.len() > SECRETS {
            return Err(ConfigError::TooManySecrets {
                count: self.secrets.len(),
                max: SECRETS,
            });
        }
        if let Some((index, secret)) = self
            .secrets
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() < DerivedNonceSource::MIN_SECRET_LEN)
        {
            return Err(ConfigError::SecretTooShort {
                index,
                len: secret.len(),
                min: DerivedNonceSource::MIN_SECRET_LEN,
            });
        }
        if self.label.is_empty() || self.label.len() > DerivedNonceSource::MAX_LABEL_LEN {
            return Err(ConfigError::InvalidLabel {
                max: DerivedNonceSource::MAX_LABEL_LEN,
                allowed: "any bytes",
            });
        }
        let half = rotation.interval() / 2;
        let lead = match self.lead {
            None => DerivedNonceSource::DEFAULT_LEAD.min(half),
            Some(lead) if lead.is_negative() || lead > half => {
                return Err(ConfigError::LeadOutOfRange { max: half });
            }
            Some(lead) => lead,
        };
        let policy = Derive {
            label: self.label.into_boxed_str(),
            secrets: self.secrets,
        };
        Ok(DerivedNonceSource {
            engine: Engine::new(self.clock, rotation, lead, policy),
        })
    }
}

impl<C: fmt::Debug> fmt::Debug for DerivedNonceSourceBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedNonceSourceBuilder")
            .field("clock", &self.clock)
            .field("label", &self.label)
            .field("secrets", &self.secrets.len())
            .field("rotation", &self.rotation)
            .field("lead", &self.lead)
            .finish()
    }
}
