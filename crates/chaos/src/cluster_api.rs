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
/// What a member answers to the promotion of a voter: a promotion asked
/// again after its answer was lost had taken effect (a member lists a voter
/// only once the promotion is committed). A removal or an addition has no
/// such answer: "member not found" or "peer URL exists" may come from a
/// member that has not applied the member's addition or removal yet.
const NOT_A_LEARNER: &str = "can only promote a learner member";

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
/// up) until one answers or [`MEMBERSHIP_CHANGE_MAX`] has passed. Every
/// refusal goes to `settled`, which returns the answer when the refusal
/// says an earlier call whose answer was lost took effect (this suite is
/// the only one changing the membership, so only it can have).
async fn on_some_member<T, F, Fut>(
    endpoints: &[String],
    what: &str,
    mut settled: impl FnMut(&tonic::Status) -> Option<T>,
    mut call: F,
) -> Result<T, FaultError>
where
    F: FnMut(ClusterClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + MEMBERSHIP_CHANGE_MAX;
    let mut last_errors = vec![String::from("not reached"); endpoints.len()];
    for (endpoint, last_error) in endpoints.iter().zip(0..).cycle() {
        if Instant::now() >= deadline {
            break;
        }
        match cluster_client(endpoint).await {
            None => last_errors[last_error] = format!("{endpoint}: cannot connect"),
            Some(client) => match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(status)) => {
                    if let Some(answer) = settled(&status) {
                        return Ok(answer);
                    }
                    last_errors[last_error] = format!("{endpoint}: {}", status.message());
                }
                Err(_) => {
                    last_errors[last_error] =
                        format!("{endpoint}: no answer within {CALL_TIMEOUT:?}")
                }
            },
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(FaultError::Membership {
        what: what.to_owned(),
        detail: format!(
            "no member took it within {MEMBERSHIP_CHANGE_MAX:?}; last answers: {}",
            last_errors.join("; ")
        ),
    })
}

/// The id of the member whose peer URL is `peer_url`. A member that has
/// not yet applied the member's addition does not list it; the next is
/// asked then.
pub async fn member_id_with_peer_url(
    endpoints: &[String],
    peer_url: &str,
) -> Result<u64, FaultError> {
    on_some_member(
        endpoints,
        "member list",
        |_| None,
        |mut client| async move {
            let listed: Vec<Member> = client
                .member_list(MemberListRequest {})
                .await?
                .into_inner()
                .members;
            listed
                .iter()
                .find(|member| member.peer_ur_ls.iter().any(|url| url == peer_url))
                .map(|member| member.id)
                .ok_or_else(|| {
                    tonic::Status::not_found(format!("no member has the peer URL {peer_url}"))
                })
        },
    )
    .await
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
        |_| None,
        |mut client| async move {
            client.member_remove(MemberRemoveRequest { id }).await?;
            Ok(())
        },
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
        |_| None,
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
            if learner_not_ready(status) {
                not_ready += 1;
            }
            promotion_took_effect(status).then_some(())
        },
        |mut client| async move {
            client.member_promote(MemberPromoteRequest { id }).await?;
            Ok(())
        },
    )
    .await?;
    Ok(not_ready)
}

/// Whether a promotion was refused as the member is a voter.
fn promotion_took_effect(status: &tonic::Status) -> bool {
    status.message().ends_with(NOT_A_LEARNER)
}

/// Whether a promotion was refused as the learner is still catching up.
fn learner_not_ready(status: &tonic::Status) -> bool {
    status.message().ends_with(LEARNER_NOT_READY)
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    #[test]
    fn only_a_promotion_refused_as_done_counts_as_made() {
        let not_ready = Status::failed_precondition(
            "etcdserver: can only promote a learner member which is in sync with leader",
        );
        let voter = Status::failed_precondition("etcdserver: can only promote a learner member");
        assert!(learner_not_ready(&not_ready) && !promotion_took_effect(&not_ready));
        assert!(promotion_took_effect(&voter) && !learner_not_ready(&voter));
        let no_leader = Status::unavailable("etcdserver: no leader");
        let not_leader = Status::failed_precondition("etcdserver: not leader");
        let not_found = Status::new(Code::NotFound, "etcdserver: member not found");
        for refusal in [no_leader, not_leader, not_found] {
            assert!(
                !promotion_took_effect(&refusal) && !learner_not_ready(&refusal),
                "{refusal:?}"
            );
        }
    }
}
