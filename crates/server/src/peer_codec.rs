//! The bytes of the peer protocol: [`raft::Message`] to and from the
//! `raftkvpb` protobuf schema (`proto/raftkv/peer.proto`). Encoding cannot
//! fail; decoding checks everything the schema cannot express (a body is
//! present, enums are known, ids are not "no node") and names what is wrong.
//! This module only converts; it never frames, sends or interprets messages.

use prost::Message as _;
use raft::{
    AppendResponse, ConfChange, ConfChangeKind, ConfState, Entry, EntryKind, Message, MessageBody,
    NodeId, RejectHint, Snapshot, SnapshotMeta, NO_NODE,
};

use crate::proto::raftkvpb as pb;

/// Why received bytes are not a valid peer message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerCodecError {
    #[error("peer message is not valid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("peer message lacks `{message}.{field}`; the sender speaks another protocol version or the bytes are damaged")]
    MissingField {
        message: &'static str,
        field: &'static str,
    },
    #[error("peer message entry at log index {index} has unknown kind {kind}; the sender may be newer than this member")]
    UnknownEntryKind { index: u64, kind: i32 },
    #[error("peer message has `{field}` = 0, which means no node; member ids start at 1")]
    NoNode { field: &'static str },
}

/// Encodes one message for the wire.
pub fn encode(message: &Message) -> Vec<u8> {
    pb::Message::from(message).encode_to_vec()
}

/// Decodes one message received from a peer.
pub fn decode(bytes: &[u8]) -> Result<Message, PeerCodecError> {
    Message::try_from(pb::Message::decode(bytes)?)
}

/// Encodes many messages for one peer as a single buffer, so they leave in one write.
pub fn encode_batch(messages: &[Message]) -> Vec<u8> {
    pb::MessageBatch {
        messages: messages.iter().map(pb::Message::from).collect(),
    }
    .encode_to_vec()
}

/// Decodes a buffer made by [`encode_batch`]; fails on the first bad message.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Message>, PeerCodecError> {
    pb::MessageBatch::decode(bytes)?
        .messages
        .into_iter()
        .map(Message::try_from)
        .collect()
}

impl From<&Message> for pb::Message {
    fn from(message: &Message) -> pb::Message {
        pb::Message {
            from: message.from,
            to: message.to,
            term: message.term,
            body: Some(body_to_proto(&message.body)),
        }
    }
}

impl TryFrom<pb::Message> for Message {
    type Error = PeerCodecError;

    fn try_from(message: pb::Message) -> Result<Message, PeerCodecError> {
        let from = non_zero_node(message.from, "Message.from")?;
        let to = non_zero_node(message.to, "Message.to")?;
        let body = message.body.ok_or(PeerCodecError::MissingField {
            message: "Message",
            field: "body",
        })?;
        Ok(Message {
            from,
            to,
            term: message.term,
            body: body_from_proto(body)?,
        })
    }
}

fn non_zero_node(id: NodeId, field: &'static str) -> Result<NodeId, PeerCodecError> {
    if id == NO_NODE {
        Err(PeerCodecError::NoNode { field })
    } else {
        Ok(id)
    }
}

fn body_to_proto(body: &MessageBody) -> pb::message::Body {
    use pb::message::Body;
    match body {
        MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
            leadership_transfer,
        } => Body::RequestVote(pb::RequestVote {
            pre_vote: *pre_vote,
            last_log_index: *last_log_index,
            last_log_term: *last_log_term,
            leadership_transfer: *leadership_transfer,
        }),
        MessageBody::RequestVoteResponse { pre_vote, granted } => {
            Body::RequestVoteResponse(pb::RequestVoteResponse {
                pre_vote: *pre_vote,
                granted: *granted,
            })
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => Body::AppendEntries(pb::AppendEntries {
            prev_log_index: *prev_log_index,
            prev_log_term: *prev_log_term,
            entries: entries.iter().map(entry_to_proto).collect(),
            leader_commit: *leader_commit,
        }),
        MessageBody::AppendEntriesResponse(response) => {
            Body::AppendEntriesResponse(append_response_to_proto(response))
        }
        MessageBody::Heartbeat {
            commit,
            read_context,
        } => Body::Heartbeat(pb::Heartbeat {
            commit: *commit,
            read_context: read_context.clone(),
        }),
        MessageBody::HeartbeatResponse { read_context } => {
            Body::HeartbeatResponse(pb::HeartbeatResponse {
                read_context: read_context.clone(),
            })
        }
        MessageBody::InstallSnapshot { snapshot } => Body::InstallSnapshot(pb::InstallSnapshot {
            snapshot: Some(snapshot_to_proto(snapshot)),
        }),
        MessageBody::TimeoutNow => Body::TimeoutNow(pb::TimeoutNow {}),
        MessageBody::ForwardProposal { entries } => Body::ForwardProposal(pb::ForwardProposal {
            entries: entries.clone(),
        }),
        MessageBody::ForwardReadIndex { context } => Body::ForwardReadIndex(pb::ForwardReadIndex {
            context: context.clone(),
        }),
        MessageBody::ReadIndexResponse { context, index } => {
            Body::ReadIndexResponse(pb::ReadIndexResponse {
                context: context.clone(),
                index: *index,
            })
        }
    }
}

fn body_from_proto(body: pb::message::Body) -> Result<MessageBody, PeerCodecError> {
    use pb::message::Body;
    Ok(match body {
        Body::RequestVote(vote) => MessageBody::RequestVote {
            pre_vote: vote.pre_vote,
            last_log_index: vote.last_log_index,
            last_log_term: vote.last_log_term,
            leadership_transfer: vote.leadership_transfer,
        },
        Body::RequestVoteResponse(response) => MessageBody::RequestVoteResponse {
            pre_vote: response.pre_vote,
            granted: response.granted,
        },
        Body::AppendEntries(append) => MessageBody::AppendEntries {
            prev_log_index: append.prev_log_index,
            prev_log_term: append.prev_log_term,
            entries: append
                .entries
                .into_iter()
                .map(entry_from_proto)
                .collect::<Result<_, _>>()?,
            leader_commit: append.leader_commit,
        },
        Body::AppendEntriesResponse(response) => {
            MessageBody::AppendEntriesResponse(append_response_from_proto(response)?)
        }
        Body::Heartbeat(heartbeat) => MessageBody::Heartbeat {
            commit: heartbeat.commit,
            read_context: heartbeat.read_context,
        },
        Body::HeartbeatResponse(response) => MessageBody::HeartbeatResponse {
            read_context: response.read_context,
        },
        Body::InstallSnapshot(install) => {
            let snapshot = install.snapshot.ok_or(PeerCodecError::MissingField {
                message: "InstallSnapshot",
                field: "snapshot",
            })?;
            MessageBody::InstallSnapshot {
                snapshot: snapshot_from_proto(snapshot)?,
            }
        }
        Body::TimeoutNow(pb::TimeoutNow {}) => MessageBody::TimeoutNow,
        Body::ForwardProposal(proposal) => MessageBody::ForwardProposal {
            entries: proposal.entries,
        },
        Body::ForwardReadIndex(read) => MessageBody::ForwardReadIndex {
            context: read.context,
        },
        Body::ReadIndexResponse(response) => MessageBody::ReadIndexResponse {
            context: response.context,
            index: response.index,
        },
    })
}

fn append_response_to_proto(response: &AppendResponse) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as Outcome;
    use pb::rejected::Hint;
    let result = match response {
        AppendResponse::Accepted { match_index } => Outcome::Accepted(pb::Accepted {
            match_index: *match_index,
        }),
        AppendResponse::Rejected {
            rejected_index,
            hint,
        } => Outcome::Rejected(pb::Rejected {
            rejected_index: *rejected_index,
            hint: Some(match hint {
                RejectHint::LogTooShort { last_index } => Hint::LogTooShort(pb::LogTooShort {
                    last_index: *last_index,
                }),
                RejectHint::TermConflict {
                    conflict_term,
                    first_index,
                } => Hint::TermConflict(pb::TermConflict {
                    conflict_term: *conflict_term,
                    first_index: *first_index,
                }),
            }),
        }),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

fn append_response_from_proto(
    response: pb::AppendEntriesResponse,
) -> Result<AppendResponse, PeerCodecError> {
    use pb::append_entries_response::Result as Outcome;
    use pb::rejected::Hint;
    let result = response.result.ok_or(PeerCodecError::MissingField {
        message: "AppendEntriesResponse",
        field: "result",
    })?;
    Ok(match result {
        Outcome::Accepted(accepted) => AppendResponse::Accepted {
            match_index: accepted.match_index,
        },
        Outcome::Rejected(rejected) => {
            let hint = match rejected.hint.ok_or(PeerCodecError::MissingField {
                message: "Rejected",
                field: "hint",
            })? {
                Hint::LogTooShort(short) => RejectHint::LogTooShort {
                    last_index: short.last_index,
                },
                Hint::TermConflict(conflict) => RejectHint::TermConflict {
                    conflict_term: conflict.conflict_term,
                    first_index: conflict.first_index,
                },
            };
            AppendResponse::Rejected {
                rejected_index: rejected.rejected_index,
                hint,
            }
        }
    })
}

fn entry_to_proto(entry: &Entry) -> pb::Entry {
    let (kind, conf_change_node_id) = match entry.kind {
        EntryKind::Normal => (pb::EntryKind::Normal, NO_NODE),
        EntryKind::Noop => (pb::EntryKind::Noop, NO_NODE),
        EntryKind::ConfChange(change) => {
            let kind = match change.kind {
                ConfChangeKind::AddVoter => pb::EntryKind::AddVoter,
                ConfChangeKind::AddLearner => pb::EntryKind::AddLearner,
                ConfChangeKind::PromoteLearner => pb::EntryKind::PromoteLearner,
                ConfChangeKind::RemoveMember => pb::EntryKind::RemoveMember,
            };
            (kind, change.node_id)
        }
    };
    pb::Entry {
        term: entry.term,
        index: entry.index,
        kind: kind as i32,
        data: entry.data.clone(),
        conf_change_node_id,
    }
}

fn entry_from_proto(entry: pb::Entry) -> Result<Entry, PeerCodecError> {
    let change_kind = match pb::EntryKind::try_from(entry.kind) {
        Ok(pb::EntryKind::Normal) => None,
        Ok(pb::EntryKind::Noop) => None,
        Ok(pb::EntryKind::AddVoter) => Some(ConfChangeKind::AddVoter),
        Ok(pb::EntryKind::AddLearner) => Some(ConfChangeKind::AddLearner),
        Ok(pb::EntryKind::PromoteLearner) => Some(ConfChangeKind::PromoteLearner),
        Ok(pb::EntryKind::RemoveMember) => Some(ConfChangeKind::RemoveMember),
        Err(_) => {
            return Err(PeerCodecError::UnknownEntryKind {
                index: entry.index,
                kind: entry.kind,
            })
        }
    };
    let kind = match change_kind {
        Some(kind) => {
            let node_id = non_zero_node(entry.conf_change_node_id, "Entry.conf_change_node_id")?;
            EntryKind::ConfChange(ConfChange { kind, node_id })
        }
        None if entry.kind == pb::EntryKind::Noop as i32 => EntryKind::Noop,
        None => EntryKind::Normal,
    };
    Ok(Entry {
        term: entry.term,
        index: entry.index,
        kind,
        data: entry.data,
    })
}

fn snapshot_to_proto(snapshot: &Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        meta: Some(pb::SnapshotMeta {
            index: snapshot.meta.index,
            term: snapshot.meta.term,
            conf_state: Some(pb::ConfState {
                voters: snapshot.meta.conf_state.voters.clone(),
                learners: snapshot.meta.conf_state.learners.clone(),
            }),
        }),
        data: snapshot.data.clone(),
    }
}

fn snapshot_from_proto(snapshot: pb::Snapshot) -> Result<Snapshot, PeerCodecError> {
    let meta = snapshot.meta.ok_or(PeerCodecError::MissingField {
        message: "Snapshot",
        field: "meta",
    })?;
    let conf_state = meta.conf_state.ok_or(PeerCodecError::MissingField {
        message: "SnapshotMeta",
        field: "conf_state",
    })?;
    Ok(Snapshot {
        meta: SnapshotMeta {
            index: meta.index,
            term: meta.term,
            conf_state: ConfState {
                voters: conf_state.voters,
                learners: conf_state.learners,
            },
        },
        data: snapshot.data,
    })
}

#[cfg(test)]
mod tests;
