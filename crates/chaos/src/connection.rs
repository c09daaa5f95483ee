//! A workload client's connection to the cluster: one lazily connected
//! channel per member, the member it talks to now, and what every answer
//! told it. Each KV call is bounded by a timeout (past it, the outcome is
//! unknown: the member may apply the request all the same), and each answer's
//! header revision is recorded with the member that gave it, for
//! [`crate::revisions`] to check. Like etcd's clients, a client given every
//! member's endpoint fails over to the next member when a call times out or
//! the member says it is unavailable (no leader, stopped, unreachable).
//!
//! Owns: timing calls out, failing over, remembering header revisions and
//! the errors of unanswered calls, and the history's clock. Must never: retry a call by
//! itself (whether a retried write applied twice is the workload's to know),
//! or judge what it records.

use std::future::Future;
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, TxnRequest, TxnResponse,
};
use tonic::transport::Channel;

use crate::revisions::RevisionSeen;

/// How many call errors a client keeps the text of, for the report; the
/// rest are only counted.
pub const CALL_ERRORS_KEPT_MAX: usize = 3;

/// The clock every operation of one history is stamped with: nanoseconds of
/// one monotonic clock since the history began, so call and return times of
/// different clients compare as real time.
#[derive(Clone, Copy, Debug)]
pub struct HistoryClock {
    origin: Instant,
}

impl HistoryClock {
    pub fn start() -> HistoryClock {
        HistoryClock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the history began (saturating after 584 years).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The calls of one client that gave no answer, hence unknown outcomes.
#[derive(Clone, Debug, Default)]
pub struct CallErrors {
    /// Whose calls these are, for the report.
    pub caller: String,
    pub total: u64,
    /// Moves to another member after an unavailable member or a timeout.
    pub failovers: u64,
    /// The first `CALL_ERRORS_KEPT_MAX` of them, as text.
    pub first: Vec<String>,
}

impl CallErrors {
    /// None yet, of `caller`.
    pub fn of(caller: String) -> CallErrors {
        CallErrors {
            caller,
            ..CallErrors::default()
        }
    }
}

/// Why a call gave no answer.
#[derive(Debug)]
pub enum CallError {
    Status(tonic::Status),
    TimedOut(Duration),
}

impl CallError {
    /// Whether the member looks unavailable, so that a client with other
    /// members to ask should move on: no answer in time, etcd's Unavailable
    /// (no leader, leader changed, stopped, connection refused) or
    /// DeadlineExceeded, or a connection that broke under the call (a killed
    /// member's first answer: tonic reports it as Unknown, with the
    /// transport's error as its source).
    pub fn means_unavailable(&self) -> bool {
        match self {
            CallError::TimedOut(_) => true,
            CallError::Status(status) => {
                matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) || broke_in_transport(status)
            }
        }
    }
}

/// Whether `status` stands for a connection that failed under the call
/// rather than an answer from the member.
fn broke_in_transport(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unknown
        && std::error::Error::source(status)
            .is_some_and(|source| source.is::<tonic::transport::Error>())
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(status) => write!(f, "{}: {}", status.code(), status.message()),
            CallError::TimedOut(limit) => write!(f, "no answer within {limit:?}"),
        }
    }
}

/// An answer that carries etcd's response header.
pub trait Headed {
    fn header(&self) -> Option<&ResponseHeader>;
}

impl Headed for RangeResponse {
    fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }
}

impl Headed for PutResponse {
    fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }
}

impl Headed for DeleteRangeResponse {
    fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }
}

impl Headed for TxnResponse {
    fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }
}

/// One client's way to the members.
#[derive(Debug)]
pub struct Connection {
    client_id: u64,
    members: Vec<KvClient<Channel>>,
    current: usize,
    call_timeout: Duration,
    revisions: Vec<RevisionSeen>,
    errors: CallErrors,
}

impl Connection {
    /// A client of the members at `endpoints`, talking to `first` at the
    /// start; each channel connects on its first call (a failed connection
    /// is one more unanswered call). A call without an answer within
    /// `call_timeout` is given up.
    ///
    /// # Panics
    ///
    /// When an endpoint is not a URI or `first` is not one of them.
    pub fn new(
        client_id: u64,
        endpoints: &[String],
        first: usize,
        call_timeout: Duration,
    ) -> Connection {
        assert!(first < endpoints.len(), "member {first} is not an endpoint");
        let members = endpoints
            .iter()
            .map(|endpoint| {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .unwrap_or_else(|error| panic!("client endpoint {endpoint}: {error}"))
                    .connect_timeout(call_timeout)
                    .connect_lazy();
                KvClient::new(channel)
            })
            .collect();
        Connection {
            client_id,
            members,
            current: first,
            call_timeout,
            revisions: Vec::new(),
            errors: CallErrors::of(format!("client {client_id}")),
        }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The member the next call goes to.
    pub fn member(&self) -> usize {
        self.current
    }

    pub async fn range(
        &mut self,
        clock: &HistoryClock,
        request: RangeRequest,
    ) -> Result<RangeResponse, CallError> {
        self.call(clock, |mut kv| async move { kv.range(request).await })
            .await
    }

    pub async fn put(
        &mut self,
        clock: &HistoryClock,
        request: PutRequest,
    ) -> Result<PutResponse, CallError> {
        self.call(clock, |mut kv| async move { kv.put(request).await })
            .await
    }

    pub async fn delete_range(
        &mut self,
        clock: &HistoryClock,
        request: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, CallError> {
        self.call(
            clock,
            |mut kv| async move { kv.delete_range(request).await },
        )
        .await
    }

    pub async fn txn(
        &mut self,
        clock: &HistoryClock,
        request: TxnRequest,
    ) -> Result<TxnResponse, CallError> {
        self.call(clock, |mut kv| async move { kv.txn(request).await })
            .await
    }

    /// Moves to the next member, if there is another: the next call goes
    /// there.
    pub fn fail_over(&mut self) {
        if self.members.len() > 1 {
            self.current = (self.current + 1) % self.members.len();
            self.errors.failovers += 1;
        }
    }

    /// Counts an unanswered call, keeping the text of the first few with
    /// `what` the call asked.
    pub fn note_error(&mut self, what: &str, error: &CallError) {
        self.errors.total += 1;
        if self.errors.first.len() < CALL_ERRORS_KEPT_MAX {
            self.errors.first.push(format!("{what}: {error}"));
        }
    }

    pub fn errors(&self) -> &CallErrors {
        &self.errors
    }

    /// What the client saw: every answer's header revision, and its errors.
    pub fn into_record(self) -> (Vec<RevisionSeen>, CallErrors) {
        (self.revisions, self.errors)
    }

    async fn call<Answer, Call, Sent>(
        &mut self,
        clock: &HistoryClock,
        send: Call,
    ) -> Result<Answer, CallError>
    where
        Answer: Headed,
        Call: FnOnce(KvClient<Channel>) -> Sent,
        Sent: Future<Output = Result<tonic::Response<Answer>, tonic::Status>>,
    {
        let member = self.current;
        let sent = send(self.members[member].clone());
        let answer = match tokio::time::timeout(self.call_timeout, sent).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(CallError::Status(status)),
            Err(_elapsed) => Err(CallError::TimedOut(self.call_timeout)),
        };
        match &answer {
            Ok(answer) => {
                if let Some(header) = answer.header() {
                    self.revisions.push(RevisionSeen {
                        client_id: self.client_id,
                        member,
                        revision: header.revision,
                        returned_ns: clock.now_ns(),
                    });
                }
            }
            Err(error) if error.means_unavailable() => self.fail_over(),
            Err(_) => {}
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback addresses where nothing listens: every call is refused
    /// with Unavailable.
    fn nowhere(count: usize) -> Vec<String> {
        (0..count)
            .map(|index| format!("http://127.0.0.1:{}", 9 + index))
            .collect()
    }

    #[tokio::test]
    async fn an_unavailable_member_sends_the_next_call_to_the_next_member() {
        let clock = HistoryClock::start();
        let mut connection = Connection::new(1, &nowhere(3), 2, Duration::from_secs(2));
        for expected_next in [0, 1, 2] {
            let error = connection
                .range(&clock, RangeRequest::default())
                .await
                .expect_err("nothing listens there");
            assert!(error.means_unavailable(), "{error}");
            assert_eq!(connection.member(), expected_next);
        }
        assert_eq!(connection.errors().failovers, 3);
    }

    #[tokio::test]
    async fn a_client_given_one_member_stays_with_it() {
        let clock = HistoryClock::start();
        let mut connection = Connection::new(1, &nowhere(1), 0, Duration::from_secs(2));
        let _ = connection.range(&clock, RangeRequest::default()).await;
        assert_eq!(connection.member(), 0);
        assert_eq!(connection.errors().failovers, 0);
    }

    /// A member that takes one connection, waits for the client's first
    /// bytes (the call is under way), and closes it without answering, as a
    /// member killed under a call does.
    fn member_closing_under_the_call() -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let closer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("the client connects");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            let mut first_bytes = [0u8; 64];
            let _ = std::io::Read::read(&mut stream, &mut first_bytes);
        });
        (endpoint, closer)
    }

    #[tokio::test]
    async fn a_connection_closed_under_a_call_sends_the_next_call_elsewhere() {
        let clock = HistoryClock::start();
        let (closing, closer) = member_closing_under_the_call();
        let endpoints = [closing, nowhere(1).remove(0)];
        let mut connection = Connection::new(1, &endpoints, 0, Duration::from_secs(20));
        let error = connection
            .range(&clock, RangeRequest::default())
            .await
            .expect_err("the member closed the connection");
        assert!(
            matches!(&error, CallError::Status(status) if status.code() != tonic::Code::Unavailable),
            "this case is about errors other than Unavailable, got {error}"
        );
        assert!(error.means_unavailable(), "{error}");
        assert_eq!(connection.member(), 1);
        closer.join().expect("closer thread");
    }

    #[test]
    fn only_timeouts_and_unavailability_call_for_failover() {
        assert!(CallError::TimedOut(Duration::from_secs(1)).means_unavailable());
        assert!(
            CallError::Status(tonic::Status::unavailable("etcdserver: no leader"))
                .means_unavailable()
        );
        assert!(!CallError::Status(tonic::Status::invalid_argument("bad key")).means_unavailable());
        assert!(
            !CallError::Status(tonic::Status::unknown("etcdserver: unknown")).means_unavailable()
        );
    }
}
