//! What the synchronous and the async Redis replay caches are built from, and keep: where
//! Redis is, the key prefix, how long entries live, the optional wait for replicas, and the
//! connection timeouts and back-off. Checked in one place for both.

use time::Duration;

use super::replicated::WaitForReplicas;
use crate::error::ConfigError;
use crate::replay::ReplayKey;
use crate::source::redis::RedisEndpoint;
use crate::source::redis::connection::ConnectorConfig;
use crate::source::redis::keys;

/// A builder's settings, as given.
#[derive(Debug)]
pub(in crate::replay) struct Settings {
    pub(in crate::replay) endpoint: RedisEndpoint,
    pub(in crate::replay) lifetime: Duration,
    pub(in crate::replay) wait: Option<WaitForReplicas>,
    pub(in crate::replay) prefix: String,
    pub(in crate::replay) connector: ConnectorConfig,
}

/// The settings once checked, with what follows from them: the entries' `PX`, and the
/// connections' read slack for `WAIT`.
#[derive(Debug)]
pub(in crate::replay) struct Checked {
    pub(in crate::replay) endpoint: RedisEndpoint,
    pub(in crate::replay) lifetime: Duration,
    pub(in crate::replay) lifetime_ms: i64,
    pub(in crate::replay) wait: Option<WaitForReplicas>,
    pub(in crate::replay) prefix: String,
    pub(in crate::replay) connector: ConnectorConfig,
}

impl Settings {
    /// The defaults: prefix `dpop-nonce`, no wait for replicas, the default timeouts.
    pub(in crate::replay) fn new(endpoint: RedisEndpoint, lifetime: Duration) -> Self {
        Self {
            endpoint,
            lifetime,
            wait: None,
            prefix: keys::DEFAULT_PREFIX.to_owned(),
            connector: ConnectorConfig::DEFAULT,
        }
    }

    /// Checks the lifetime, the prefix, the timeouts and back-off, and the replica wait.
    pub(in crate::replay) fn check(self) -> Result<Checked, ConfigError> {
        let lifetime_ms = entry_ttl_ms(self.lifetime)?;
        keys::check_prefix(&self.prefix)?;
        self.connector.validate()?;
        let mut connector = self.connector;
        if let Some(wait) = &self.wait {
            connector.read_slack = wait.check()?;
        }
        Ok(Checked {
            endpoint: self.endpoint,
            lifetime: self.lifetime,
            lifetime_ms,
            wait: self.wait,
            prefix: self.prefix,
            connector,
        })
    }
}

impl Checked {
    /// The Redis key of `key`'s entry: `{prefix}:replay:{hex key}`.
    pub(in crate::replay) fn redis_key(&self, key: &ReplayKey) -> String {
        keys::replay_key(&self.prefix, &key.to_string())
    }
}

/// The `PX` of an entry living `lifetime`, in whole milliseconds rounded up (an entry must never
/// expire before the nonce it protects).
///
/// # Errors
///
/// [`ConfigError`] for a lifetime under one millisecond or too long for Redis.
fn entry_ttl_ms(lifetime: Duration) -> Result<i64, ConfigError> {
    let lifetime_ms = lifetime
        .whole_nanoseconds()
        .saturating_add(999_999)
        .div_euclid(1_000_000);
    let lifetime_ms = i64::try_from(lifetime_ms).unwrap_or(i64::MAX);
    if lifetime < Duration::MILLISECOND {
        return Err(ConfigError::LifetimeTooShort {
            min: Duration::MILLISECOND,
        });
    }
    if lifetime_ms > 1 << 50 {
        return Err(ConfigError::LifetimeTooLong {
            max: Duration::milliseconds(1 << 50),
        });
    }
    Ok(lifetime_ms)
}
