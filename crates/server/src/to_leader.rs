//! Requests only the leader can answer, passed on to it by a follower, as
//! etcd does for lease renewals and membership changes. The follower calls
//! the leader's first client URL (one lazily connected channel per URL) and
//! marks the request with [`FORWARDED_METADATA`], so a member that receives
//! one while not leading refuses it instead of passing it on again; the
//! follower tries again until its request timeout, as leadership may be
//! moving. Owns the channels, the marker and the retry loop; what each call
//! asks is its service's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::backend::Backend;
use crate::etcd_error::EtcdError;

/// Metadata key marking a request one member passed to another.
pub const FORWARDED_METADATA: &str = "raftkv-forwarded";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a follower waits between attempts to reach the leader.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Whether `request` came from another member (and must not be passed on).
pub fn is_forwarded<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_METADATA)
}

/// `message` as a request marked forwarded.
pub(crate) fn forwarded_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        FORWARDED_METADATA,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    request
}

/// An answer this member could give itself, or the news that only the
/// leader can.
pub(crate) enum Local<T> {
    Answered(T),
    NotLeader,
}

/// Channels to the client URLs of leaders seen so far.
#[derive(Debug, Default)]
pub(crate) struct LeaderChannels {
    channels: Mutex<HashMap<String, Channel>>,
}

impl LeaderChannels {
    /// The channel to `url`, connected on first use.
    pub(crate) fn channel(&self, url: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|error| Status::internal(format!("raftkv: leader URL {url}: {error}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// Answers `here` when this member leads; otherwise asks the leader with
/// `there`, again while the leader it reached no longer leads or could not
/// be reached, until `timeout` has passed. A `forwarded` request is never
/// passed on: it answers etcd's "not leader".
pub(crate) async fn on_leader<B, T, Here, HereFuture, There, ThereFuture>(
    backend: &B,
    forwarded: bool,
    timeout: Duration,
    here: Here,
    there: There,
) -> Result<T, Status>
where
    B: Backend,
    Here: Fn() -> HereFuture,
    HereFuture: Future<Output = Result<Local<T>, Status>>,
    There: Fn(String) -> ThereFuture,
    ThereFuture: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match here().await? {
            Local::Answered(answer) => return Ok(answer),
            Local::NotLeader if forwarded => return Err(EtcdError::NotLeader.to_status()),
            Local::NotLeader => {}
        }
        let leader_url = leader_client_url(backend);
        if let Some(url) = leader_url.clone() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, there(url.clone())).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(status)) if leader_did_not_take(&status) => {
                    tracing::debug!(%url, %status, "request not answered by the leader")
                }
                Ok(Err(status)) => return Err(status),
                Err(_) => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(match leader_url {
                Some(_) => EtcdError::Timeout.to_status(),
                None => EtcdError::NoLeader.to_status(),
            });
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Whether the leader's answer says it did not take the request, so asking
/// again (the new leader, once known) cannot make it happen twice: the
/// member no longer leads, or the call never reached a server. Any other
/// answer, an etcd refusal included, is the client's.
fn leader_did_not_take(status: &Status) -> bool {
    match EtcdError::from_status(status) {
        Some(error) => matches!(error, EtcdError::NotLeader | EtcdError::NoLeader),
        None => matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ),
    }
}

/// The first client URL of the member this one believes leads, once known
/// (never this member's own).
fn leader_client_url<B: Backend>(backend: &B) -> Option<String> {
    let status = backend.status();
    let leader = status.leader.filter(|&leader| leader != status.member_id)?;
    backend
        .members()
        .into_iter()
        .find(|member| member.id == leader)?
        .client_urls
        .into_iter()
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_moved_leadership_or_an_unreached_leader_is_asked_again() {
        assert!(leader_did_not_take(&EtcdError::NotLeader.to_status()));
        assert!(leader_did_not_take(&EtcdError::NoLeader.to_status()));
        assert!(leader_did_not_take(&Status::unavailable(
            "tcp connect error: Connection refused"
        )));
        assert!(leader_did_not_take(&Status::unknown("transport error")));
        // The leader's own answers: a second try could make the change twice
        // or hide the refusal.
        assert!(!leader_did_not_take(&EtcdError::PeerUrlExist.to_status()));
        assert!(!leader_did_not_take(&EtcdError::Timeout.to_status()));
        assert!(!leader_did_not_take(&EtcdError::LeaderChanged.to_status()));
        assert!(!leader_did_not_take(&Status::internal(
            "raftkv: storage failure"
        )));
    }

    #[test]
    fn a_forwarded_request_is_marked() {
        assert!(is_forwarded(&forwarded_request(())));
        assert!(!is_forwarded(&tonic::Request::new(())));
    }
}
