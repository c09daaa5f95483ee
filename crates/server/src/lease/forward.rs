//! KeepAlive and TimeToLive passed from a follower to the leader over the
//! leader's etcd client URL, with one lazily connected channel per URL. Each
//! request is marked with [`FORWARDED_METADATA`], so a member that receives
//! one while not leading refuses it instead of passing it on again. Owns the
//! calls only; whether to forward and how often to retry is the lessor's.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use super::TimeToLive;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_client::LeaseClient;

/// Metadata key marking a lease request one member passed to another.
pub const FORWARDED_METADATA: &str = "raftkv-lease-forwarded";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Channels to the client URLs of leaders seen so far.
#[derive(Debug, Default)]
pub(crate) struct Forwarder {
    channels: Mutex<HashMap<String, Channel>>,
}

fn forwarded<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        FORWARDED_METADATA,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    request
}

impl Forwarder {
    fn client(&self, url: &str) -> Result<LeaseClient<Channel>, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(url) {
            return Ok(LeaseClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|error| Status::internal(format!("raftkv: leader URL {url}: {error}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Ok(LeaseClient::new(channel))
    }

    /// One renewal on the leader: the TTL it answered (0: no such lease).
    pub(crate) async fn keep_alive(&self, url: &str, id: i64) -> Result<i64, Status> {
        let mut client = self.client(url)?;
        let request = forwarded(tokio_stream::once(pb::LeaseKeepAliveRequest { id }));
        let mut responses = client.lease_keep_alive(request).await?.into_inner();
        match responses.message().await? {
            Some(response) => Ok(response.ttl),
            None => Err(Status::unavailable(
                "raftkv: the leader closed the keepalive stream without an answer",
            )),
        }
    }

    /// The lease as the leader sees it; `None` when it does not exist.
    pub(crate) async fn time_to_live(
        &self,
        url: &str,
        id: i64,
        with_keys: bool,
    ) -> Result<Option<TimeToLive>, Status> {
        let mut client = self.client(url)?;
        let request = forwarded(pb::LeaseTimeToLiveRequest {
            id,
            keys: with_keys,
        });
        let response = client.lease_time_to_live(request).await?.into_inner();
        Ok(
            (response.ttl != -1 || response.granted_ttl != 0).then_some(TimeToLive {
                remaining_seconds: response.ttl,
                granted_ttl_seconds: response.granted_ttl,
                keys: response.keys,
            }),
        )
    }
}
