//! The errors etcd's v3 API returns, with etcd 3.4's exact gRPC status codes
//! and messages. etcd's clients recognise an error by its message (and retry
//! or fail by its code), so these strings are part of the wire contract: never
//! reword one. This module only names and converts errors; it never decides
//! when one applies.

use tonic::{Code, Status};

/// Declares [`EtcdError`] from one table, so the enum, its list of variants,
/// its codes and its messages cannot drift apart.
macro_rules! etcd_errors {
    ($($(#[$doc:meta])* $variant:ident => ($code:ident, $message:literal),)+) => {
        /// An error of etcd's v3 API, as its clients expect to receive it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EtcdError {
            $($(#[$doc])* $variant,)+
        }

        impl EtcdError {
            /// Every variant, in declaration order.
            pub const ALL: &'static [EtcdError] = &[$(EtcdError::$variant,)+];

            /// The gRPC status code etcd returns for this error.
            pub fn code(self) -> Code {
                match self {
                    $(EtcdError::$variant => Code::$code,)+
                }
            }

            /// The status message etcd returns, byte for byte.
            pub fn message(self) -> &'static str {
                match self {
                    $(EtcdError::$variant => $message,)+
                }
            }
        }
    };
}

etcd_errors! {
    /// A request named no key.
    EmptyKey => (InvalidArgument, "etcdserver: key is not provided"),
    KeyNotFound => (InvalidArgument, "etcdserver: key not found"),
    /// A put with `ignore_value` also carried a value.
    ValueProvided => (InvalidArgument, "etcdserver: value is provided"),
    /// A put with `ignore_lease` also carried a lease.
    LeaseProvided => (InvalidArgument, "etcdserver: lease is provided"),
    /// A txn has more operations than `--max-txn-ops`.
    TooManyOps => (InvalidArgument, "etcdserver: too many operations in txn request"),
    /// A txn writes the same key twice in one branch.
    DuplicateKey => (InvalidArgument, "etcdserver: duplicate key given in txn request"),
    /// The requested revision is older than the last compaction.
    Compacted => (OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
    /// The requested revision is newer than the store's.
    FutureRev => (OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
    /// The backend quota is used up; only reads and deletes are served.
    NoSpace => (ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
    LeaseNotFound => (NotFound, "etcdserver: requested lease not found"),
    LeaseExist => (FailedPrecondition, "etcdserver: lease already exists"),
    LeaseTtlTooLarge => (OutOfRange, "etcdserver: too large lease TTL"),
    WatchCanceled => (Cancelled, "etcdserver: watch canceled"),
    MemberExist => (FailedPrecondition, "etcdserver: member ID already exist"),
    PeerUrlExist => (FailedPrecondition, "etcdserver: Peer URLs already exists"),
    /// Removing or adding the member would leave too few started members for a quorum.
    MemberNotEnoughStarted => (FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members"),
    MemberBadUrls => (InvalidArgument, "etcdserver: given member URLs are invalid"),
    MemberNotFound => (NotFound, "etcdserver: member not found"),
    MemberNotLearner => (FailedPrecondition, "etcdserver: can only promote a learner member"),
    LearnerNotReady => (FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"),
    TooManyLearners => (FailedPrecondition, "etcdserver: too many learner members in cluster"),
    ClusterIdMismatch => (FailedPrecondition, "etcdserver: cluster ID mismatch"),
    /// A request is larger than `--max-request-bytes`.
    RequestTooLarge => (InvalidArgument, "etcdserver: request is too large"),
    /// Too many proposals are waiting to be applied.
    TooManyRequests => (ResourceExhausted, "etcdserver: too many requests"),
    RootUserNotExist => (FailedPrecondition, "etcdserver: root user does not exist"),
    RootRoleNotExist => (FailedPrecondition, "etcdserver: root user does not have root role"),
    UserAlreadyExist => (FailedPrecondition, "etcdserver: user name already exists"),
    UserEmpty => (InvalidArgument, "etcdserver: user name is empty"),
    UserNotFound => (FailedPrecondition, "etcdserver: user name not found"),
    RoleAlreadyExist => (FailedPrecondition, "etcdserver: role name already exists"),
    RoleNotFound => (FailedPrecondition, "etcdserver: role name not found"),
    RoleEmpty => (InvalidArgument, "etcdserver: role name is empty"),
    AuthFailed => (InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"),
    PermissionNotGiven => (InvalidArgument, "etcdserver: permission not given"),
    PermissionDenied => (PermissionDenied, "etcdserver: permission denied"),
    RoleNotGranted => (FailedPrecondition, "etcdserver: role is not granted to the user"),
    PermissionNotGranted => (FailedPrecondition, "etcdserver: permission is not granted to the role"),
    AuthNotEnabled => (FailedPrecondition, "etcdserver: authentication is not enabled"),
    InvalidAuthToken => (Unauthenticated, "etcdserver: invalid auth token"),
    InvalidAuthMgmt => (InvalidArgument, "etcdserver: invalid auth management"),
    AuthOldRevision => (InvalidArgument, "etcdserver: revision of auth store is old"),
    /// No leader is known; clients retry on another member.
    NoLeader => (Unavailable, "etcdserver: no leader"),
    /// The request must be served by the leader and this member is not it.
    NotLeader => (FailedPrecondition, "etcdserver: not leader"),
    /// Leadership moved while the request was in flight; its outcome is unknown.
    LeaderChanged => (Unavailable, "etcdserver: leader changed"),
    /// The cluster's version does not support the request yet.
    NotCapable => (Unavailable, "etcdserver: not capable"),
    /// The member is shutting down.
    Stopped => (Unavailable, "etcdserver: server stopped"),
    /// The request was not applied in time; its outcome is unknown.
    Timeout => (Unavailable, "etcdserver: request timed out"),
    TimeoutDueToLeaderFail => (Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"),
    TimeoutDueToConnectionLost => (Unavailable, "etcdserver: request timed out, possibly due to connection lost"),
    TimeoutWaitAppliedIndex => (Unavailable, "etcdserver: request timed out, waiting for the applied index took too long"),
    Unhealthy => (Unavailable, "etcdserver: unhealthy cluster"),
    /// Members' stores disagree; the cluster refuses writes.
    Corrupt => (DataLoss, "etcdserver: corrupt cluster"),
    /// A learner cannot serve this request (only serializable reads and status).
    NotSupportedForLearner => (Unavailable, "etcdserver: rpc not supported for learner"),
    /// A leadership transfer named a member that cannot take over.
    BadLeaderTransferee => (FailedPrecondition, "etcdserver: bad leader transferee"),
}

impl EtcdError {
    /// The gRPC status to send to the client.
    pub fn to_status(self) -> Status {
        Status::new(self.code(), self.message())
    }

    /// Recognises an etcd error in a received status by its message, as etcd's
    /// own clients do; `None` for any other status.
    pub fn from_status(status: &Status) -> Option<EtcdError> {
        Self::ALL
            .iter()
            .copied()
            .find(|error| error.message() == status.message())
    }
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.message())
    }
}

impl std::error::Error for EtcdError {}

impl From<EtcdError> for Status {
    fn from(error: EtcdError) -> Status {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::EtcdError;
    use std::collections::HashSet;
    use tonic::{Code, Status};

    /// One test per variant, each with its expected code and message written
    /// out here rather than read from the table under test.
    macro_rules! expect_status {
        ($($test:ident: $variant:ident => ($code:ident, $message:literal),)+) => {
            $(
                #[test]
                fn $test() {
                    let status = EtcdError::$variant.to_status();
                    assert_eq!(status.code(), Code::$code);
                    assert_eq!(status.message(), $message);
                    assert_eq!(EtcdError::$variant.to_string(), $message);
                }
            )+

            const TESTED: &[EtcdError] = &[$(EtcdError::$variant,)+];
        };
    }

    expect_status! {
        empty_key: EmptyKey => (InvalidArgument, "etcdserver: key is not provided"),
        key_not_found: KeyNotFound => (InvalidArgument, "etcdserver: key not found"),
        value_provided: ValueProvided => (InvalidArgument, "etcdserver: value is provided"),
        lease_provided: LeaseProvided => (InvalidArgument, "etcdserver: lease is provided"),
        too_many_ops: TooManyOps => (InvalidArgument, "etcdserver: too many operations in txn request"),
        duplicate_key: DuplicateKey => (InvalidArgument, "etcdserver: duplicate key given in txn request"),
        compacted: Compacted => (OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
        future_rev: FutureRev => (OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
        no_space: NoSpace => (ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
        lease_not_found: LeaseNotFound => (NotFound, "etcdserver: requested lease not found"),
        lease_exist: LeaseExist => (FailedPrecondition, "etcdserver: lease already exists"),
        lease_ttl_too_large: LeaseTtlTooLarge => (OutOfRange, "etcdserver: too large lease TTL"),
        watch_canceled: WatchCanceled => (Cancelled, "etcdserver: watch canceled"),
        member_exist: MemberExist => (FailedPrecondition, "etcdserver: member ID already exist"),
        peer_url_exist: PeerUrlExist => (FailedPrecondition, "etcdserver: Peer URLs already exists"),
        member_not_enough_started: MemberNotEnoughStarted => (FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members"),
        member_bad_urls: MemberBadUrls => (InvalidArgument, "etcdserver: given member URLs are invalid"),
        member_not_found: MemberNotFound => (NotFound, "etcdserver: member not found"),
        member_not_learner: MemberNotLearner => (FailedPrecondition, "etcdserver: can only promote a learner member"),
        learner_not_ready: LearnerNotReady => (FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"),
        too_many_learners: TooManyLearners => (FailedPrecondition, "etcdserver: too many learner members in cluster"),
        cluster_id_mismatch: ClusterIdMismatch => (FailedPrecondition, "etcdserver: cluster ID mismatch"),
        request_too_large: RequestTooLarge => (InvalidArgument, "etcdserver: request is too large"),
        too_many_requests: TooManyRequests => (ResourceExhausted, "etcdserver: too many requests"),
        root_user_not_exist: RootUserNotExist => (FailedPrecondition, "etcdserver: root user does not exist"),
        root_role_not_exist: RootRoleNotExist => (FailedPrecondition, "etcdserver: root user does not have root role"),
        user_already_exist: UserAlreadyExist => (FailedPrecondition, "etcdserver: user name already exists"),
        user_empty: UserEmpty => (InvalidArgument, "etcdserver: user name is empty"),
        user_not_found: UserNotFound => (FailedPrecondition, "etcdserver: user name not found"),
        role_already_exist: RoleAlreadyExist => (FailedPrecondition, "etcdserver: role name already exists"),
        role_not_found: RoleNotFound => (FailedPrecondition, "etcdserver: role name not found"),
        role_empty: RoleEmpty => (InvalidArgument, "etcdserver: role name is empty"),
        auth_failed: AuthFailed => (InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"),
        permission_not_given: PermissionNotGiven => (InvalidArgument, "etcdserver: permission not given"),
        permission_denied: PermissionDenied => (PermissionDenied, "etcdserver: permission denied"),
        role_not_granted: RoleNotGranted => (FailedPrecondition, "etcdserver: role is not granted to the user"),
        permission_not_granted: PermissionNotGranted => (FailedPrecondition, "etcdserver: permission is not granted to the role"),
        auth_not_enabled: AuthNotEnabled => (FailedPrecondition, "etcdserver: authentication is not enabled"),
        invalid_auth_token: InvalidAuthToken => (Unauthenticated, "etcdserver: invalid auth token"),
        invalid_auth_mgmt: InvalidAuthMgmt => (InvalidArgument, "etcdserver: invalid auth management"),
        auth_old_revision: AuthOldRevision => (InvalidArgument, "etcdserver: revision of auth store is old"),
        no_leader: NoLeader => (Unavailable, "etcdserver: no leader"),
        not_leader: NotLeader => (FailedPrecondition, "etcdserver: not leader"),
        leader_changed: LeaderChanged => (Unavailable, "etcdserver: leader changed"),
        not_capable: NotCapable => (Unavailable, "etcdserver: not capable"),
        stopped: Stopped => (Unavailable, "etcdserver: server stopped"),
        timeout: Timeout => (Unavailable, "etcdserver: request timed out"),
        timeout_due_to_leader_fail: TimeoutDueToLeaderFail => (Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"),
        timeout_due_to_connection_lost: TimeoutDueToConnectionLost => (Unavailable, "etcdserver: request timed out, possibly due to connection lost"),
        timeout_wait_applied_index: TimeoutWaitAppliedIndex => (Unavailable, "etcdserver: request timed out, waiting for the applied index took too long"),
        unhealthy: Unhealthy => (Unavailable, "etcdserver: unhealthy cluster"),
        corrupt: Corrupt => (DataLoss, "etcdserver: corrupt cluster"),
        not_supported_for_learner: NotSupportedForLearner => (Unavailable, "etcdserver: rpc not supported for learner"),
        bad_leader_transferee: BadLeaderTransferee => (FailedPrecondition, "etcdserver: bad leader transferee"),
    }

    #[test]
    fn every_variant_has_its_own_test() {
        let tested: HashSet<EtcdError> = TESTED.iter().copied().collect();
        let missing: Vec<EtcdError> = EtcdError::ALL
            .iter()
            .copied()
            .filter(|error| !tested.contains(error))
            .collect();
        assert!(missing.is_empty(), "variants without a test: {missing:?}");
        assert_eq!(
            TESTED.len(),
            EtcdError::ALL.len(),
            "a variant is tested twice"
        );
    }

    #[test]
    fn messages_are_unique_so_clients_can_recognise_each_error() {
        let messages: HashSet<&str> = EtcdError::ALL.iter().map(|error| error.message()).collect();
        assert_eq!(messages.len(), EtcdError::ALL.len());
    }

    #[test]
    fn from_status_recognises_every_error_by_its_message() {
        for &error in EtcdError::ALL {
            assert_eq!(EtcdError::from_status(&error.to_status()), Some(error));
        }
    }

    #[test]
    fn from_status_rejects_other_statuses() {
        assert_eq!(
            EtcdError::from_status(&Status::unavailable("connection refused")),
            None
        );
        assert_eq!(
            EtcdError::from_status(&Status::unavailable("etcdserver: no leader!")),
            None
        );
    }

    #[test]
    fn converts_into_status() {
        let status: Status = EtcdError::Compacted.into();
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }
}
