//! Member and cluster ids, derived from the bootstrap flags alone so that every
//! member of a new cluster computes the same ids without talking to the others.
//!
//! The construction is etcd's: a member's id is the first 8 bytes (big-endian)
//! of SHA-1 over its sorted peer URLs followed by the cluster token; the
//! cluster's id is the same over the sorted member ids. For the default flags
//! this gives etcd's well-known ids (tested below), but equality with a real
//! etcd cluster is not a promise: etcd writes URLs in its own canonical form,
//! which may differ from [`Url`]'s for unusual input. This module only hashes;
//! it never decides membership.
//!
//! A member added to a running cluster gets a fresh id instead
//! ([`fresh_member_id`]), as etcd's `member add` does: a member replaced on
//! the same peer URLs after its data was wiped forgot the vote it cast in the
//! current term, and under its old id it could vote twice in that term.

use raft::NodeId;
use sha1::{Digest, Sha1};

use super::url::Url;

/// The id of a member whose peer URLs are `peer_urls`, in a cluster bootstrapped
/// with `cluster_token`. Never [`raft::NO_NODE`].
pub fn derive_member_id(peer_urls: &[Url], cluster_token: &str) -> NodeId {
    debug_assert!(!peer_urls.is_empty(), "a member has at least one peer URL");
    let mut sorted: Vec<String> = peer_urls.iter().map(Url::to_string).collect();
    sorted.sort();
    let mut hasher = Sha1::new();
    for url in &sorted {
        hasher.update(url.as_bytes());
    }
    hasher.update(cluster_token.as_bytes());
    non_zero(first_u64(&hasher.finalize()))
}

/// The id of a member added with `peer_urls` to a running cluster: a hash of
/// the URLs, the cluster token and `salt` (the caller's clock, as etcd mixes
/// in the time), rehashed with the next salt until it is none of `taken` (the
/// current members), not the id the URLs alone derive (which the member may
/// have had before), and not [`raft::NO_NODE`]. The caller decides it once and
/// carries it in the configuration change, so every member applies the same id.
pub fn fresh_member_id(
    peer_urls: &[Url],
    cluster_token: &str,
    salt: u64,
    taken: &[NodeId],
) -> NodeId {
    let derived = derive_member_id(peer_urls, cluster_token);
    let mut sorted: Vec<String> = peer_urls.iter().map(Url::to_string).collect();
    sorted.sort();
    let mut salt = salt;
    loop {
        let mut hasher = Sha1::new();
        for url in &sorted {
            hasher.update(url.as_bytes());
        }
        hasher.update(cluster_token.as_bytes());
        hasher.update(salt.to_be_bytes());
        let id = first_u64(&hasher.finalize());
        if id != raft::NO_NODE && id != derived && !taken.contains(&id) {
            return id;
        }
        salt = salt.wrapping_add(1);
    }
}

/// The id of the cluster made of `member_ids`, in any order.
pub fn derive_cluster_id(member_ids: &[NodeId]) -> u64 {
    debug_assert!(!member_ids.is_empty(), "a cluster has at least one member");
    let mut sorted = member_ids.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for id in sorted {
        hasher.update(id.to_be_bytes());
    }
    non_zero(first_u64(&hasher.finalize()))
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Zero means "no node" to the core; a digest that starts with 8 zero bytes
/// (odds 2^-64) takes id 1 instead, the same on every member.
fn non_zero(id: u64) -> u64 {
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::{derive_cluster_id, derive_member_id, fresh_member_id};
    use crate::config::url::Url;

    fn urls(texts: &[&str]) -> Vec<Url> {
        texts.iter().map(|text| Url::parse(text).unwrap()).collect()
    }

    #[test]
    fn default_flags_give_etcds_default_ids() {
        let member = derive_member_id(&urls(&["http://localhost:2380"]), "etcd-cluster");
        assert_eq!(member, 0x8e9e_05c5_2164_694d);
        assert_eq!(derive_cluster_id(&[member]), 0xcdf8_1819_4e3a_8c32);
    }

    #[test]
    fn member_id_ignores_url_order_but_not_token_or_urls() {
        let forward = derive_member_id(&urls(&["http://a:1", "http://b:2"]), "t");
        let backward = derive_member_id(&urls(&["http://b:2", "http://a:1"]), "t");
        assert_eq!(forward, backward);
        assert_ne!(
            forward,
            derive_member_id(&urls(&["http://a:1", "http://b:2"]), "u")
        );
        assert_ne!(forward, derive_member_id(&urls(&["http://a:1"]), "t"));
    }

    #[test]
    fn cluster_id_ignores_member_order() {
        assert_eq!(derive_cluster_id(&[1, 2, 3]), derive_cluster_id(&[3, 1, 2]));
        assert_ne!(derive_cluster_id(&[1, 2, 3]), derive_cluster_id(&[1, 2]));
    }

    #[test]
    fn fresh_member_id_is_not_the_derived_id_and_changes_with_the_salt() {
        let peer_urls = urls(&["http://a:1"]);
        let derived = derive_member_id(&peer_urls, "t");
        let first = fresh_member_id(&peer_urls, "t", 7, &[]);
        let second = fresh_member_id(&peer_urls, "t", 8, &[]);
        assert_ne!(first, derived);
        assert_ne!(first, second);
        assert_ne!(first, raft::NO_NODE);
        assert_eq!(first, fresh_member_id(&peer_urls, "t", 7, &[]));
    }

    #[test]
    fn fresh_member_id_skips_taken_ids() {
        let peer_urls = urls(&["http://a:1"]);
        let first = fresh_member_id(&peer_urls, "t", 7, &[]);
        let next = fresh_member_id(&peer_urls, "t", 8, &[]);
        assert_eq!(fresh_member_id(&peer_urls, "t", 7, &[first]), next);
        let skipped_both = fresh_member_id(&peer_urls, "t", 7, &[first, next]);
        assert_ne!(skipped_both, first);
        assert_ne!(skipped_both, next);
    }
}
