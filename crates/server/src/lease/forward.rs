//! KeepAlive and TimeToLive as calls on the leader's Lease service, over
//! [`crate::to_leader`]'s channels and marker. Owns the calls only; whether
//! to forward and how often to retry is the lessor's.

use tonic::Status;

use super::TimeToLive;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::to_leader::{forwarded_request, LeaderChannels};

/// Lease calls on the leaders seen so far.
#[derive(Debug, Default)]
pub(crate) struct Forwarder {
    leaders: LeaderChannels,
}

impl Forwarder {
    fn client(&self, url: &str) -> Result<LeaseClient<tonic::transport::Channel>, Status> {
        Ok(LeaseClient::new(self.leaders.channel(url)?))
    }

    /// One renewal on the leader: the TTL it answered (0: no such lease).
    pub(crate) async fn keep_alive(&self, url: &str, id: i64) -> Result<i64, Status> {
        let mut client = self.client(url)?;
        let request = forwarded_request(tokio_stream::once(pb::LeaseKeepAliveRequest { id }));
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
        let request = forwarded_request(pb::LeaseTimeToLiveRequest {
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
