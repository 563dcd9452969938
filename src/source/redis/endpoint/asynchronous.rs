//! Async connections to a [`RedisEndpoint`], for the async replay cache: the `redis` crate's
//! multiplexed connection to one server or to the primary the sentinels name, or its async
//! cluster connection.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterConfig;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisResult, Value};

use super::{Kind, RedisEndpoint};

/// An open async connection. Cloning is cheap and shares it: every clone sends over the same
/// multiplexed connection (one server), or the same set of node connections (a cluster).
#[derive(Clone)]
pub(crate) enum AsyncLink {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl RedisEndpoint {
    /// Opens an async connection to the current primary (standalone, Sentinel) or to the
    /// cluster. `connect_timeout` bounds the connect to one server, and in a cluster each node
    /// connect, where `response_timeout` bounds each reply the cluster client waits for. The
    /// caller bounds the whole call: the Sentinel client sets no timeouts of its own.
    pub(crate) async fn connect_async(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<AsyncLink> {
        // Replies are bounded by the caller, for every command alike.
        let single = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(None);
        let link = match &self.kind {
            Kind::Standalone(client) => AsyncLink::Single(
                client
                    .get_multiplexed_async_connection_with_config(&single)
                    .await?,
            ),
            Kind::Sentinel { discovery, .. } => {
                // The sentinels name the primary, which is asked for its role.
                let primary = discovery.primary_async().await?;
                AsyncLink::Single(
                    primary
                        .get_multiplexed_async_connection_with_config(&single)
                        .await?,
                )
            }
            Kind::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                AsyncLink::Cluster(client.get_async_connection_with_config(config).await?)
            }
        };
        Ok(link)
    }
}

impl AsyncLink {
    /// Sends a pipeline and reads its replies; in a cluster, the whole pipeline goes to the node
    /// of its first command's key. An error reply in it is an `Err`.
    pub(crate) async fn send_pipeline(&mut self, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(connection) => pipeline.query_async(connection).await,
            Self::Cluster(connection) => pipeline.query_async(connection).await,
        }
    }

    /// `true` when the connection can be kept after a failed call (`err`, or `None` for a
    /// timeout): a cluster connection reconnects to its nodes and maps the slots again by
    /// itself, unless the error says it cannot. A connection to one server is always dropped,
    /// so that the next call finds the current primary.
    pub(crate) fn heals_after(&self, err: Option<&RedisError>) -> bool {
        match self {
            Self::Single(_) => false,
            Self::Cluster(_) => err.is_none_or(|err| !err.is_unrecoverable_error()),
        }
    }

    /// Sends one command (routed by its key in a cluster) and reads its reply. An error reply
    /// (`READONLY` from a demoted primary, say) is an `Err`, as for the synchronous calls.
    pub(crate) async fn send(&mut self, command: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(connection) => command.query_async(connection).await,
            Self::Cluster(connection) => command.query_async(connection).await,
        }
    }
}
