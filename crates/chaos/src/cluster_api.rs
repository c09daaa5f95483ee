//! The Cluster API calls the membership-changing faults make (a wipe's
//! replacement and the membership fault): list, add, promote and remove,
//! each sent to whichever member takes it, as an etcd client does.
//!
//! Owns: finding a member that answers and retrying within a bound. Must
//! never: wait without a bound, or call a change made that no member
//! acknowledged.

use std::time::{Duration, Instant};

use server::proto::etcdserverpb::cluster_client::ClusterClient;
use server::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
};

use crate::faults::FaultError;

/// How long one membership change may take, retries included.
const MEMBERSHIP_CHANGE_MAX: Duration = Duration::from_secs(30);
/// How long one membership call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// What a member answers to the promotion of a learner still catching up,
/// as etcd says it.
const LEARNER_NOT_READY: &str = "can only promote a learner member which is in sync with leader";

async fn cluster_client(endpoint: &str) -> Option<ClusterClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .ok()?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .ok()?;
    Some(ClusterClient::new(channel))
}

/// Calls `call` on each endpoint in turn (followers may refuse membership
/// changes, an election may be under way, a learner may still be catching
/// up) until one answers or [`MEMBERSHIP_CHANGE_MAX`] has passed; `refused`
/// is told of every refusal.
async fn on_some_member<T, F, Fut>(
    endpoints: &[String],
    what: &str,
    mut refused: impl FnMut(&tonic::Status),
    mut call: F,
) -> Result<T, FaultError>
where
    F: FnMut(ClusterClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + MEMBERSHIP_CHANGE_MAX;
    let mut last_error = String::from("no member reachable");
    for endpoint in endpoints.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(client) = cluster_client(endpoint).await {
            match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(status)) => {
                    refused(&status);
                    last_error = format!("{endpoint}: {}", status.message());
                }
                Err(_) => last_error = format!("{endpoint}: no answer within {CALL_TIMEOUT:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(FaultError::Membership {
        what: what.to_owned(),
        detail: last_error,
    })
}

/// The id of the member whose peer URL is `peer_url`.
pub async fn member_id_with_peer_url(
    endpoints: &[String],
    peer_url: &str,
) -> Result<u64, FaultError> {
    let listed: Vec<Member> = on_some_member(
        endpoints,
        "member list",
        |_| {},
        |mut client| async move {
            Ok(client
                .member_list(MemberListRequest {})
                .await?
                .into_inner()
                .members)
        },
    )
    .await?;
    listed
        .iter()
        .find(|member| member.peer_ur_ls.iter().any(|url| url == peer_url))
        .map(|member| member.id)
        .ok_or_else(|| FaultError::Membership {
            what: "member list".to_owned(),
            detail: format!("no member has the peer URL {peer_url}"),
        })
}

/// Removes the member whose peer URL is `peer_url`; its id.
pub async fn remove_member_with_peer_url(
    endpoints: &[String],
    peer_url: &str,
) -> Result<u64, FaultError> {
    let id = member_id_with_peer_url(endpoints, peer_url).await?;
    on_some_member(
        endpoints,
        "member remove",
        |_| {},
        |mut client| async move { client.member_remove(MemberRemoveRequest { id }).await },
    )
    .await?;
    Ok(id)
}

/// Adds a member with the peer URL `peer_url`, a learner if `is_learner`,
/// else a voter; the id it was given.
pub async fn add_member(
    endpoints: &[String],
    peer_url: &str,
    is_learner: bool,
) -> Result<u64, FaultError> {
    let added = on_some_member(
        endpoints,
        "member add",
        |_| {},
        |mut client| async move {
            client
                .member_add(MemberAddRequest {
                    peer_ur_ls: vec![peer_url.to_owned()],
                    is_learner,
                })
                .await
        },
    )
    .await?;
    added
        .into_inner()
        .member
        .map(|member| member.id)
        .ok_or_else(|| FaultError::Membership {
            what: "member add".to_owned(),
            detail: "the answer names no member".to_owned(),
        })
}

/// Promotes learner `id` to a voter, asking again while the members say it
/// has not caught up with the leader; how many times they said so.
pub async fn promote_member(endpoints: &[String], id: u64) -> Result<u32, FaultError> {
    let mut not_ready = 0;
    on_some_member(
        endpoints,
        "member promote",
        |status| {
            if status.message().contains(LEARNER_NOT_READY) {
                not_ready += 1;
            }
        },
        |mut client| async move { client.member_promote(MemberPromoteRequest { id }).await },
    )
    .await?;
    Ok(not_ready)
}
