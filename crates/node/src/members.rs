//! The replicated member list: who the members are (id, name, peer URLs,
//! learner or voter), changed only by committed configuration-change entries,
//! so every member applies the same list in the same order. Owns the bytes a
//! change entry carries (its context), the bytes of the list as saved, and
//! the rules for applying a change. It never decides whether a change may
//! be made (the core and the Cluster service do) and never panics on bytes
//! read from the log or the disk.
//!
//! The list is its own small state machine with its own applied index, saved
//! by the state machine (atomically, durably) before it records the entry as
//! applied. On restart the core
//! replays every entry after the store's applied index; change entries at or
//! below the list's index are skipped, so a change is applied exactly once
//! whichever of the two files reached the disk first.

use raft::{ConfChange, ConfChangeKind, ConfState, LogIndex, NodeId};

use crate::host::Member;

/// Marks the layout of a change entry's context.
const CONTEXT_VERSION: u8 = 1;
/// Marks the layout of the saved list: version 2 added the removed ids.
const LIST_VERSION: u8 = 2;
/// The layout before removed ids were kept; still read, as holding none.
const LIST_VERSION_WITHOUT_REMOVED: u8 = 1;
/// A name or URL longer than this is refused when decoding.
const TEXT_BYTES_MAX: usize = 4096;
/// More peer URLs than this for one member are refused when decoding.
const URLS_PER_MEMBER_MAX: usize = 64;
/// More members than this in a saved list are refused when decoding.
const MEMBERS_MAX: usize = 1024;
/// More removed ids than this in a saved list are refused when decoding.
const REMOVED_MAX: usize = 1 << 20;

/// What a change entry says about its member besides its id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberContext {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// Why bytes from the log or the list's file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembersDecodeError {
    #[error("member data ends after {offset} bytes, inside a field")]
    Truncated { offset: usize },
    #[error("member data has layout version {found}; this member reads version {expected}")]
    Version { found: u8, expected: u8 },
    #[error("member data has a {what} of {found}, above the limit of {limit}")]
    TooLarge {
        what: &'static str,
        found: usize,
        limit: usize,
    },
    #[error("member data holds text that is not UTF-8 at byte {offset}")]
    NotUtf8 { offset: usize },
    #[error("member data has {extra} bytes after its last field")]
    Trailing { extra: usize },
}

impl MemberContext {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.bytes.push(CONTEXT_VERSION);
        writer.text(&self.name);
        writer.texts(&self.peer_urls);
        writer.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MembersDecodeError> {
        let mut reader = Reader { bytes, offset: 0 };
        reader.version(CONTEXT_VERSION)?;
        let context = MemberContext {
            name: reader.text()?,
            peer_urls: reader.texts()?,
        };
        reader.finish()?;
        Ok(context)
    }
}

/// The member list and the log index of the last change applied to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    pub applied_index: LogIndex,
    pub members: Vec<Member>,
    /// Ids whose removal was applied and that were not added again since,
    /// ascending. A removed member may still run and campaign; the node
    /// ignores its vote requests. Ids merely absent from the list are not
    /// here: a member added by a change this member has not applied yet may
    /// already need its vote.
    pub removed: Vec<NodeId>,
}

impl MemberList {
    /// The members of a new cluster, all voters, before any change.
    pub fn initial(members: Vec<Member>) -> Self {
        Self {
            applied_index: 0,
            members,
            removed: Vec::new(),
        }
    }

    /// Whether `id`'s removal was applied (and it was not added again since).
    pub fn was_removed(&self, id: NodeId) -> bool {
        self.removed.binary_search(&id).is_ok()
    }

    fn mark_removed(&mut self, id: NodeId) {
        if let Err(position) = self.removed.binary_search(&id) {
            self.removed.insert(position, id);
        }
    }

    fn unmark_removed(&mut self, id: NodeId) {
        if let Ok(position) = self.removed.binary_search(&id) {
            self.removed.remove(position);
        }
    }

    /// Applies the change committed at `index`. Changes at or below the
    /// applied index were applied before (a replay after restart) and are
    /// skipped: returns `false` for them and `true` when the list (or only its
    /// index) moved and must be saved. A change that does not fit the list
    /// (the core refused it too, for the same log) changes no member.
    pub fn apply(&mut self, index: LogIndex, change: ConfChange, context: &MemberContext) -> bool {
        if index <= self.applied_index {
            return false;
        }
        self.applied_index = index;
        let position = self.members.iter().position(|m| m.id == change.node_id);
        match (change.kind, position) {
            (ConfChangeKind::AddVoter | ConfChangeKind::AddLearner, None) => {
                self.unmark_removed(change.node_id);
                self.members.push(Member {
                    id: change.node_id,
                    name: context.name.clone(),
                    peer_urls: context.peer_urls.clone(),
                    client_urls: Vec::new(),
                    is_learner: change.kind == ConfChangeKind::AddLearner,
                });
            }
            (ConfChangeKind::PromoteLearner, Some(position)) => {
                self.members[position].is_learner = false;
            }
            (ConfChangeKind::RemoveMember, Some(position)) => {
                self.members.remove(position);
                self.mark_removed(change.node_id);
            }
            _ => {}
        }
        true
    }

    /// Replaces the list by the configuration of a snapshot installed at
    /// `index`: members it names keep what this member knew of them, or are
    /// listed by id alone (as etcd lists a member that has not started).
    /// Members listed before and missing from the snapshot's configuration
    /// were removed by changes the snapshot covers.
    pub fn restore(&mut self, index: LogIndex, conf_state: &ConfState, known: &[Member]) {
        let in_snapshot =
            |id: &NodeId| conf_state.voters.contains(id) || conf_state.learners.contains(id);
        let gone: Vec<NodeId> = self
            .members
            .iter()
            .map(|member| member.id)
            .filter(|id| !in_snapshot(id))
            .collect();
        for id in gone {
            self.mark_removed(id);
        }
        self.removed.retain(|id| !in_snapshot(id));
        let describe = |id: NodeId, is_learner: bool| {
            let known = self
                .members
                .iter()
                .chain(known)
                .find(|member| member.id == id);
            Member {
                is_learner,
                ..known.cloned().unwrap_or(Member {
                    id,
                    name: String::new(),
                    peer_urls: Vec::new(),
                    client_urls: Vec::new(),
                    is_learner,
                })
            }
        };
        let voters = conf_state.voters.iter().map(|&id| describe(id, false));
        let learners = conf_state.learners.iter().map(|&id| describe(id, true));
        self.members = voters.chain(learners).collect();
        self.applied_index = index;
    }

    /// The list as saved, read back by [`MemberList::decode`].
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.bytes.push(LIST_VERSION);
        writer.u64(self.applied_index);
        writer.u64(self.members.len() as u64);
        for member in &self.members {
            writer.u64(member.id);
            writer.bytes.push(u8::from(member.is_learner));
            writer.text(&member.name);
            writer.texts(&member.peer_urls);
        }
        writer.u64(self.removed.len() as u64);
        for &id in &self.removed {
            writer.u64(id);
        }
        writer.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MembersDecodeError> {
        let mut reader = Reader { bytes, offset: 0 };
        let version = reader.version_among(&[LIST_VERSION_WITHOUT_REMOVED, LIST_VERSION])?;
        let applied_index = reader.u64()?;
        let count = reader.count("member count", MEMBERS_MAX)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let id = reader.u64()?;
            let is_learner = reader.byte()? != 0;
            members.push(Member {
                id,
                name: reader.text()?,
                peer_urls: reader.texts()?,
                client_urls: Vec::new(),
                is_learner,
            });
        }
        let mut removed = Vec::new();
        if version == LIST_VERSION {
            let count = reader.count("removed member count", REMOVED_MAX)?;
            for _ in 0..count {
                removed.push(reader.u64()?);
            }
            removed.sort_unstable();
            removed.dedup();
        }
        reader.finish()?;
        Ok(Self {
            applied_index,
            members,
            removed,
        })
    }
}

#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        self.u64(text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn texts(&mut self, texts: &[String]) {
        self.u64(texts.len() as u64);
        for text in texts {
            self.text(text);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize) -> Result<&[u8], MembersDecodeError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(MembersDecodeError::Truncated {
                offset: self.bytes.len(),
            })?;
        let taken = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, MembersDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn version(&mut self, expected: u8) -> Result<(), MembersDecodeError> {
        self.version_among(&[expected]).map(drop)
    }

    /// Reads a layout version that is one of `known` (the newest last).
    fn version_among(&mut self, known: &[u8]) -> Result<u8, MembersDecodeError> {
        let found = self.byte()?;
        if known.contains(&found) {
            Ok(found)
        } else {
            Err(MembersDecodeError::Version {
                found,
                expected: known.last().copied().unwrap_or_default(),
            })
        }
    }

    fn u64(&mut self) -> Result<u64, MembersDecodeError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    fn count(&mut self, what: &'static str, limit: usize) -> Result<usize, MembersDecodeError> {
        let found = self.u64()?;
        match usize::try_from(found) {
            Ok(count) if count <= limit => Ok(count),
            _ => Err(MembersDecodeError::TooLarge {
                what,
                found: usize::try_from(found).unwrap_or(usize::MAX),
                limit,
            }),
        }
    }

    fn text(&mut self) -> Result<String, MembersDecodeError> {
        let length = self.count("text length", TEXT_BYTES_MAX)?;
        let start = self.offset;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| MembersDecodeError::NotUtf8 { offset: start })
    }

    fn texts(&mut self) -> Result<Vec<String>, MembersDecodeError> {
        let count = self.count("URL count", URLS_PER_MEMBER_MAX)?;
        (0..count).map(|_| self.text()).collect()
    }

    fn finish(&self) -> Result<(), MembersDecodeError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            extra => Err(MembersDecodeError::Trailing { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(name: &str) -> MemberContext {
        MemberContext {
            name: name.to_string(),
            peer_urls: vec![format!("http://127.0.0.1:1{}", name.len())],
        }
    }

    fn voter(id: NodeId, name: &str) -> Member {
        Member {
            id,
            name: name.to_string(),
            peer_urls: context(name).peer_urls,
            client_urls: Vec::new(),
            is_learner: false,
        }
    }

    fn change(kind: ConfChangeKind, node_id: NodeId) -> ConfChange {
        ConfChange { kind, node_id }
    }

    #[test]
    fn context_round_trips_and_every_cut_is_an_error() {
        let original = MemberContext {
            name: "infra4".to_string(),
            peer_urls: vec!["http://a:1".to_string(), "http://b:2".to_string()],
        };
        let bytes = original.encode();
        assert_eq!(MemberContext::decode(&bytes), Ok(original));
        for length in 0..bytes.len() {
            assert!(
                MemberContext::decode(&bytes[..length]).is_err(),
                "a context cut to {length} bytes decoded"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            MemberContext::decode(&longer),
            Err(MembersDecodeError::Trailing { extra: 1 })
        );
        let mut other_version = bytes;
        other_version[0] = CONTEXT_VERSION + 1;
        assert!(matches!(
            MemberContext::decode(&other_version),
            Err(MembersDecodeError::Version { .. })
        ));
    }

    #[test]
    fn hostile_lengths_and_text_are_errors() {
        let mut huge = vec![CONTEXT_VERSION];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            MemberContext::decode(&huge),
            Err(MembersDecodeError::TooLarge { .. })
        ));
        let mut not_utf8 = vec![CONTEXT_VERSION];
        not_utf8.extend_from_slice(&1u64.to_le_bytes());
        not_utf8.push(0xff);
        not_utf8.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            MemberContext::decode(&not_utf8),
            Err(MembersDecodeError::NotUtf8 { offset: 9 })
        );
    }

    #[test]
    fn changes_add_promote_and_remove_once_each() {
        let mut list = MemberList::initial(vec![voter(1, "a"), voter(2, "b")]);
        assert!(list.apply(5, change(ConfChangeKind::AddLearner, 4), &context("d")));
        let added = list.members.iter().find(|m| m.id == 4).unwrap();
        assert!(added.is_learner);
        assert_eq!(added.name, "d");
        assert_eq!(added.peer_urls, context("d").peer_urls);
        assert!(
            !list.apply(5, change(ConfChangeKind::RemoveMember, 4), &context("")),
            "a replayed index is skipped"
        );
        assert!(list.apply(6, change(ConfChangeKind::PromoteLearner, 4), &context("")));
        assert!(!list.members.iter().find(|m| m.id == 4).unwrap().is_learner);
        assert!(list.apply(7, change(ConfChangeKind::RemoveMember, 1), &context("")));
        let ids: Vec<NodeId> = list.members.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![2, 4]);
        assert_eq!(list.applied_index, 7);
    }

    #[test]
    fn a_change_that_does_not_fit_only_moves_the_index() {
        let mut list = MemberList::initial(vec![voter(1, "a")]);
        let before = list.members.clone();
        list.apply(3, change(ConfChangeKind::AddVoter, 1), &context("again"));
        list.apply(4, change(ConfChangeKind::RemoveMember, 9), &context(""));
        list.apply(5, change(ConfChangeKind::PromoteLearner, 1), &context(""));
        assert_eq!(list.members, before);
        assert_eq!(list.applied_index, 5);
    }

    #[test]
    fn a_snapshot_keeps_what_is_known_and_lists_the_rest_by_id() {
        let mut list = MemberList::initial(vec![voter(1, "a"), voter(2, "b")]);
        let conf_state = ConfState {
            voters: vec![1, 3],
            learners: vec![7],
        };
        list.restore(40, &conf_state, &[voter(3, "c")]);
        assert_eq!(list.applied_index, 40);
        let names: Vec<(&str, bool)> = list
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.is_learner))
            .collect();
        assert_eq!(names, vec![("a", false), ("c", false), ("", true)]);
        assert_eq!(list.members[2].id, 7);
    }

    #[test]
    fn the_saved_bytes_round_trip_and_a_cut_is_an_error() {
        let mut list = MemberList::initial(vec![voter(1, "a"), voter(3, "c")]);
        list.apply(9, change(ConfChangeKind::AddLearner, 2), &context("b"));
        list.apply(10, change(ConfChangeKind::RemoveMember, 3), &context(""));
        let bytes = list.encode();
        assert_eq!(MemberList::decode(&bytes), Ok(list));
        for length in 0..bytes.len() {
            assert!(
                MemberList::decode(&bytes[..length]).is_err(),
                "a list cut to {length} bytes decoded"
            );
        }
    }

    #[test]
    fn removals_are_remembered_until_the_id_is_added_again() {
        let mut list = MemberList::initial(vec![voter(1, "a"), voter(2, "b")]);
        assert!(!list.was_removed(9), "an id never listed is not removed");
        list.apply(3, change(ConfChangeKind::RemoveMember, 2), &context(""));
        assert!(list.was_removed(2));
        list.apply(4, change(ConfChangeKind::AddVoter, 2), &context("b"));
        assert!(!list.was_removed(2), "added again");
        list.apply(5, change(ConfChangeKind::RemoveMember, 9), &context(""));
        assert!(!list.was_removed(9), "a removal that changed no member");
    }

    #[test]
    fn a_snapshot_marks_members_it_no_longer_names_as_removed() {
        let mut list = MemberList::initial(vec![voter(1, "a"), voter(2, "b"), voter(4, "d")]);
        list.apply(5, change(ConfChangeKind::RemoveMember, 4), &context(""));
        let conf_state = ConfState {
            voters: vec![1, 4],
            learners: vec![],
        };
        list.restore(40, &conf_state, &[]);
        assert!(list.was_removed(2), "listed before, gone from the snapshot");
        assert!(!list.was_removed(4), "added again within the snapshot");
        assert!(!list.was_removed(1));
    }

    #[test]
    fn a_list_saved_before_removals_were_kept_reads_as_none_removed() {
        let list = MemberList::initial(vec![voter(1, "a")]);
        let mut bytes = list.encode();
        bytes[0] = LIST_VERSION_WITHOUT_REMOVED;
        bytes.truncate(bytes.len() - 8);
        assert_eq!(MemberList::decode(&bytes), Ok(list));
    }
}
