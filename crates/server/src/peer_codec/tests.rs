use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..16)
}

fn entry() -> impl Strategy<Value = Entry> {
    (any::<u64>(), any::<u64>(), entry_kind(), bytes()).prop_map(|(term, index, kind, data)| {
        Entry {
            term,
            index,
            kind,
            data,
        }
    })
}

fn entry_kind() -> impl Strategy<Value = EntryKind> {
    let change_kind = prop_oneof![
        Just(ConfChangeKind::AddVoter),
        Just(ConfChangeKind::AddLearner),
        Just(ConfChangeKind::PromoteLearner),
        Just(ConfChangeKind::RemoveMember),
    ];
    prop_oneof![
        Just(EntryKind::Normal),
        Just(EntryKind::Noop),
        (change_kind, 1..u64::MAX)
            .prop_map(|(kind, node_id)| EntryKind::ConfChange(ConfChange { kind, node_id })),
    ]
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        any::<u64>(),
        any::<u64>(),
        vec(any::<u64>(), 0..5),
        vec(any::<u64>(), 0..3),
        bytes(),
    )
        .prop_map(|(index, term, voters, learners, data)| Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state: ConfState { voters, learners },
            },
            data,
        })
}

fn reject_hint() -> impl Strategy<Value = RejectHint> {
    prop_oneof![
        any::<u64>().prop_map(|last_index| RejectHint::LogTooShort { last_index }),
        (any::<u64>(), any::<u64>()).prop_map(|(conflict_term, first_index)| {
            RejectHint::TermConflict {
                conflict_term,
                first_index,
            }
        }),
    ]
}

fn append_response() -> impl Strategy<Value = AppendResponse> {
    prop_oneof![
        any::<u64>().prop_map(|match_index| AppendResponse::Accepted { match_index }),
        (any::<u64>(), reject_hint()).prop_map(|(rejected_index, hint)| {
            AppendResponse::Rejected {
                rejected_index,
                hint,
            }
        }),
    ]
}

/// Every variant of [`MessageBody`], with `Option` fields both absent and
/// present-but-empty.
fn body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (any::<bool>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(pre_vote, last_log_index, last_log_term, leadership_transfer)| {
                MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    leadership_transfer,
                }
            }
        ),
        (any::<bool>(), any::<bool>())
            .prop_map(|(pre_vote, granted)| MessageBody::RequestVoteResponse { pre_vote, granted }),
        (any::<u64>(), any::<u64>(), vec(entry(), 0..4), any::<u64>()).prop_map(
            |(prev_log_index, prev_log_term, entries, leader_commit)| MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            }
        ),
        append_response().prop_map(MessageBody::AppendEntriesResponse),
        (any::<u64>(), proptest::option::of(bytes())).prop_map(|(commit, read_context)| {
            MessageBody::Heartbeat {
                commit,
                read_context,
            }
        }),
        proptest::option::of(bytes())
            .prop_map(|read_context| MessageBody::HeartbeatResponse { read_context }),
        snapshot().prop_map(|snapshot| MessageBody::InstallSnapshot { snapshot }),
        Just(MessageBody::TimeoutNow),
        vec(bytes(), 0..4).prop_map(|entries| MessageBody::ForwardProposal { entries }),
        bytes().prop_map(|context| MessageBody::ForwardReadIndex { context }),
        (bytes(), any::<u64>())
            .prop_map(|(context, index)| MessageBody::ReadIndexResponse { context, index }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (1..=u64::MAX, 1..=u64::MAX, any::<u64>(), body()).prop_map(|(from, to, term, body)| Message {
        from,
        to,
        term,
        body,
    })
}

proptest! {
    #[test]
    fn every_message_survives_a_round_trip(message in message()) {
        prop_assert_eq!(decode(&encode(&message))?, message);
    }

    #[test]
    fn every_batch_survives_a_round_trip(messages in vec(message(), 0..8)) {
        prop_assert_eq!(decode_batch(&encode_batch(&messages))?, messages);
    }

    /// Garbage never panics, and whatever garbage does decode to re-encodes
    /// to a message that decodes the same way.
    #[test]
    fn garbage_decodes_to_an_error_or_a_consistent_message(garbage in vec(any::<u8>(), 0..64)) {
        if let Ok(message) = decode(&garbage) {
            prop_assert_eq!(decode(&encode(&message))?, message);
        }
        if let Ok(messages) = decode_batch(&garbage) {
            prop_assert_eq!(decode_batch(&encode_batch(&messages))?, messages);
        }
    }

    /// A message cut short never decodes as the original: it is refused, or at
    /// worst decodes as some other message. Protobuf has no end marker, so the
    /// transport's framing must carry each message's length.
    #[test]
    fn truncated_messages_never_decode_as_the_original(message in message(), cut in any::<prop::sample::Index>()) {
        let encoded = encode(&message);
        let length = cut.index(encoded.len());
        match decode(&encoded[..length]) {
            Err(_) => {}
            Ok(decoded) => prop_assert_ne!(decoded, message),
        }
    }
}

fn encode_proto(message: &pb::Message) -> Vec<u8> {
    message.encode_to_vec()
}

fn timeout_now() -> pb::Message {
    pb::Message {
        from: 1,
        to: 2,
        term: 3,
        body: Some(pb::message::Body::TimeoutNow(pb::TimeoutNow {})),
    }
}

#[test]
fn wire_layout_is_pinned() {
    let message = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::TimeoutNow,
    };
    // 1: from, 2: to, 3: term, 11: timeout_now (empty).
    assert_eq!(encode(&message), [0x08, 1, 0x10, 2, 0x18, 3, 0x5a, 0]);
    let vote = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::RequestVoteResponse {
            pre_vote: true,
            granted: true,
        },
    };
    // 5: request_vote_response { 1: pre_vote, 2: granted }.
    assert_eq!(
        encode(&vote),
        [0x08, 1, 0x10, 2, 0x18, 3, 0x2a, 4, 0x08, 1, 0x10, 1]
    );
}

#[test]
fn an_empty_read_context_differs_from_none() {
    let with = |read_context| Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::Heartbeat {
            commit: 4,
            read_context,
        },
    };
    assert_eq!(
        decode(&encode(&with(Some(Vec::new())))),
        Ok(with(Some(Vec::new())))
    );
    assert_eq!(decode(&encode(&with(None))), Ok(with(None)));
    assert_ne!(encode(&with(Some(Vec::new()))), encode(&with(None)));
}

#[test]
fn refuses_bytes_that_are_not_protobuf() {
    assert!(matches!(
        decode(&[0x0a, 0xff, 0xff]),
        Err(PeerCodecError::Protobuf(_))
    ));
    assert!(matches!(
        decode_batch(&[0x0a, 5, 0x08]),
        Err(PeerCodecError::Protobuf(_))
    ));
}

#[test]
fn refuses_a_message_without_body() {
    let mut message = timeout_now();
    message.body = None;
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::MissingField {
            message: "Message",
            field: "body"
        })
    );
}

#[test]
fn refuses_no_node_as_sender_or_receiver() {
    let mut message = timeout_now();
    message.from = 0;
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::NoNode {
            field: "Message.from"
        })
    );
    let mut message = timeout_now();
    message.to = 0;
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::NoNode {
            field: "Message.to"
        })
    );
}

#[test]
fn refuses_an_unknown_entry_kind() {
    let mut message = timeout_now();
    message.body = Some(pb::message::Body::AppendEntries(pb::AppendEntries {
        entries: vec![pb::Entry {
            term: 1,
            index: 7,
            kind: 9,
            data: Vec::new(),
            conf_change_node_id: 0,
        }],
        ..pb::AppendEntries::default()
    }));
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::UnknownEntryKind { index: 7, kind: 9 })
    );
}

#[test]
fn refuses_a_conf_change_entry_without_its_member() {
    let mut message = timeout_now();
    message.body = Some(pb::message::Body::AppendEntries(pb::AppendEntries {
        entries: vec![pb::Entry {
            term: 1,
            index: 7,
            kind: pb::EntryKind::RemoveMember as i32,
            data: Vec::new(),
            conf_change_node_id: 0,
        }],
        ..pb::AppendEntries::default()
    }));
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::NoNode {
            field: "Entry.conf_change_node_id"
        })
    );
}

#[test]
fn refuses_an_append_response_without_result_or_hint() {
    let mut message = timeout_now();
    message.body = Some(pb::message::Body::AppendEntriesResponse(
        pb::AppendEntriesResponse { result: None },
    ));
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::MissingField {
            message: "AppendEntriesResponse",
            field: "result"
        })
    );
    message.body = Some(pb::message::Body::AppendEntriesResponse(
        pb::AppendEntriesResponse {
            result: Some(pb::append_entries_response::Result::Rejected(
                pb::Rejected {
                    rejected_index: 5,
                    hint: None,
                },
            )),
        },
    ));
    assert_eq!(
        decode(&encode_proto(&message)),
        Err(PeerCodecError::MissingField {
            message: "Rejected",
            field: "hint"
        })
    );
}

#[test]
fn refuses_a_snapshot_without_its_parts() {
    let install = |snapshot| {
        let mut message = timeout_now();
        message.body = Some(pb::message::Body::InstallSnapshot(pb::InstallSnapshot {
            snapshot,
        }));
        decode(&encode_proto(&message))
    };
    assert_eq!(
        install(None),
        Err(PeerCodecError::MissingField {
            message: "InstallSnapshot",
            field: "snapshot"
        })
    );
    assert_eq!(
        install(Some(pb::Snapshot {
            meta: None,
            data: Vec::new()
        })),
        Err(PeerCodecError::MissingField {
            message: "Snapshot",
            field: "meta"
        })
    );
    assert_eq!(
        install(Some(pb::Snapshot {
            meta: Some(pb::SnapshotMeta {
                index: 1,
                term: 1,
                conf_state: None
            }),
            data: Vec::new()
        })),
        Err(PeerCodecError::MissingField {
            message: "SnapshotMeta",
            field: "conf_state"
        })
    );
}

#[test]
fn a_batch_fails_on_its_first_bad_message() {
    let mut bad = timeout_now();
    bad.from = 0;
    let batch = pb::MessageBatch {
        messages: vec![timeout_now(), bad],
    };
    assert_eq!(
        decode_batch(&batch.encode_to_vec()),
        Err(PeerCodecError::NoNode {
            field: "Message.from"
        })
    );
}
