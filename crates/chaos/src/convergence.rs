//! After the faults heal: do all members hold the same data? One write
//! fixes a revision every member must reach; then each member's HashKV at
//! that revision (etcd's hash of every key revision up to it) must be the
//! same. A member that never reaches the revision, or whose store differs
//! (a lost, doubled or reordered apply), fails the run.
//!
//! Owns: asking each member for its hash and comparing them. Must never:
//! hash at a revision some member has not applied (it would refuse or,
//! worse, hash less), or wait without bound.

use std::fmt;
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use server::proto::etcdserverpb::{HashKvRequest, PutRequest};
use tonic::transport::Channel;

/// The key written to fix the revision the hashes are taken at.
const MARK_KEY: &[u8] = b"chaos/hashed";
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One member's HashKV answer, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberHash {
    pub member: String,
    pub hash: Result<u32, String>,
}

/// Every member's hash at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashCheck {
    /// `None` when no write could fix a revision in time.
    pub revision: Option<i64>,
    pub hashes: Vec<MemberHash>,
}

impl HashCheck {
    /// Whether every member answered, with the same hash.
    pub fn agrees(&self) -> bool {
        let mut hashes = self.hashes.iter().map(|member| member.hash.as_ref().ok());
        let Some(Some(first)) = hashes.next() else {
            return false;
        };
        self.revision.is_some() && hashes.all(|hash| hash == Some(first))
    }
}

impl fmt::Display for HashCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.revision {
            Some(revision) => write!(f, "HashKV at revision {revision}:")?,
            None => write!(f, "HashKV: no write fixed a revision to hash at")?,
        }
        for member in &self.hashes {
            match &member.hash {
                Ok(hash) => write!(f, " {} {hash:08x}", member.member)?,
                Err(error) => write!(f, " {} ({error})", member.member)?,
            }
        }
        write!(
            f,
            " -> {}",
            if self.agrees() { "equal" } else { "DIFFERENT" }
        )
    }
}

/// Writes through the first member that takes it, then asks every member
/// (`(name, client URL)`) for its HashKV at the write's revision, each
/// retrying until it has applied that far; all within `within`.
pub async fn hash_members(members: &[(String, String)], within: Duration) -> HashCheck {
    let deadline = Instant::now() + within;
    let revision = mark_revision(members, deadline).await;
    let mut hashes = Vec::new();
    for (name, url) in members {
        let hash = match revision {
            Some(revision) => hash_at(url, revision, deadline).await,
            None => Err("not asked".to_owned()),
        };
        hashes.push(MemberHash {
            member: name.clone(),
            hash,
        });
    }
    HashCheck { revision, hashes }
}

async fn channel(url: &str, deadline: Instant) -> Result<Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|error| error.to_string())?;
    let left = deadline.saturating_duration_since(Instant::now());
    endpoint
        .connect_timeout(left)
        .connect()
        .await
        .map_err(|error| error.to_string())
}

async fn mark_revision(members: &[(String, String)], deadline: Instant) -> Option<i64> {
    while Instant::now() < deadline {
        for (_, url) in members {
            let put = async {
                let mut kv = KvClient::new(channel(url, deadline).await.ok()?);
                let request = PutRequest {
                    key: MARK_KEY.to_vec(),
                    value: b"mark".to_vec(),
                    ..PutRequest::default()
                };
                kv.put(request).await.ok()?.into_inner().header
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(Some(header)) = tokio::time::timeout(left, put).await {
                return Some(header.revision);
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    None
}

/// The member's hash at `revision`; a member that has not applied so far
/// refuses with a future-revision error, and is asked again.
async fn hash_at(url: &str, revision: i64, deadline: Instant) -> Result<u32, String> {
    let mut last_error = "no answer".to_owned();
    while Instant::now() < deadline {
        let ask = async {
            let mut maintenance = MaintenanceClient::new(channel(url, deadline).await?);
            maintenance
                .hash_kv(HashKvRequest { revision })
                .await
                .map(|response| response.into_inner().hash)
                .map_err(|status| format!("{}: {}", status.code(), status.message()))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ask).await {
            Ok(Ok(hash)) => return Ok(hash),
            Ok(Err(error)) => last_error = error,
            Err(_elapsed) => last_error = "no answer in time".to_owned(),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hashes: &[Result<u32, &str>]) -> HashCheck {
        HashCheck {
            revision: Some(42),
            hashes: hashes
                .iter()
                .enumerate()
                .map(|(index, hash)| MemberHash {
                    member: format!("m{}", index + 1),
                    hash: hash.map_err(str::to_owned),
                })
                .collect(),
        }
    }

    #[test]
    fn equal_hashes_agree() {
        assert!(check(&[Ok(7), Ok(7), Ok(7)]).agrees());
    }

    #[test]
    fn one_member_with_another_hash_is_a_disagreement() {
        let diverged = check(&[Ok(7), Ok(8), Ok(7)]);
        assert!(!diverged.agrees());
        assert!(diverged.to_string().contains("DIFFERENT"));
    }

    #[test]
    fn a_member_without_an_answer_or_no_revision_is_not_agreement() {
        assert!(!check(&[Ok(7), Err("future revision"), Ok(7)]).agrees());
        assert!(!check(&[Err("down")]).agrees());
        let mut unfixed = check(&[Ok(7), Ok(7)]);
        unfixed.revision = None;
        assert!(!unfixed.agrees());
    }
}
