//! Wire compatibility with the real `etcdctl` (etcd 3.4's command-line client):
//! a small in-memory fixture serves our generated KV, Cluster and Maintenance
//! services on a loopback port, and etcdctl talks to it. If a service path,
//! field number or error string drifted from etcd's, etcdctl would print
//! something else.
//!
//! Needs `etcdctl` on PATH (Debian: `apt-get install etcd-client`), so it is
//! ignored by default: `cargo test -p server --test etcdctl_wire -- --ignored`.
//! Takes about half a second.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;

use clap::Parser;
use server::config::{ServeArgs, ServeConfig};
use server::etcd_error::EtcdError;
use server::proto::etcdserverpb::{
    cluster_server::{Cluster, ClusterServer},
    kv_server::{Kv, KvServer},
    maintenance_server::{Maintenance, MaintenanceServer},
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DefragmentRequest,
    DefragmentResponse, DeleteRangeRequest, DeleteRangeResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, Member, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest,
    MoveLeaderResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
use server::proto::etcdserverpb::{
    lease_server::{Lease, LeaseServer},
    watch_request::RequestUnion,
    watch_server::{Watch, WatchServer},
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, WatchRequest, WatchResponse,
};
use server::proto::mvccpb::{event::EventType, Event, KeyValue};
use tonic::codegen::tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// The id the fixture gives a lease when the client leaves the choice to it.
const FIXTURE_LEASE_ID: i64 = 0x694d_71dd_acfd_a227;

/// The oldest revision the fixture still has; older reads get `Compacted`.
const COMPACTED_REVISION: i64 = 2;

/// Just enough of a key-value store to answer etcdctl: latest values only.
#[derive(Debug)]
struct Fixture {
    config: ServeConfig,
    store: Mutex<Store>,
}

#[derive(Debug, Default)]
struct Store {
    revision: i64,
    keys: BTreeMap<Vec<u8>, KeyValue>,
}

impl Fixture {
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.config.cluster_id(),
            member_id: self.config.member_id(),
            revision,
            raft_term: 2,
        })
    }

    fn member(&self) -> Member {
        Member {
            id: self.config.member_id(),
            name: self.config.name().to_owned(),
            peer_ur_ls: urls(self.config.initial_advertise_peer_urls()),
            client_ur_ls: urls(self.config.advertise_client_urls()),
            is_learner: false,
        }
    }
}

fn urls(urls: &[server::config::Url]) -> Vec<String> {
    urls.iter().map(ToString::to_string).collect()
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        _ => key >= start && key < end,
    }
}

fn unsupported<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not served by the etcdctl fixture"))
}

#[tonic::async_trait]
impl Kv for Fixture {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        let store = self.store.lock().unwrap();
        if request.revision > store.revision {
            return Err(EtcdError::FutureRev.into());
        }
        if request.revision > 0 && request.revision < COMPACTED_REVISION {
            return Err(EtcdError::Compacted.into());
        }
        let kvs: Vec<KeyValue> = store
            .keys
            .values()
            .filter(|kv| in_range(&kv.key, &request.key, &request.range_end))
            .cloned()
            .collect();
        Ok(Response::new(RangeResponse {
            header: self.header(store.revision),
            count: kvs.len() as i64,
            kvs,
            more: false,
        }))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        let mut store = self.store.lock().unwrap();
        store.revision += 1;
        let revision = store.revision;
        let previous = store.keys.get(&request.key).cloned();
        let kv = KeyValue {
            key: request.key.clone(),
            create_revision: previous.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: previous.as_ref().map_or(1, |kv| kv.version + 1),
            value: request.value,
            lease: request.lease,
        };
        store.keys.insert(request.key, kv);
        Ok(Response::new(PutResponse {
            header: self.header(revision),
            prev_kv: previous.filter(|_| request.prev_kv),
        }))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let request = request.into_inner();
        let mut store = self.store.lock().unwrap();
        let doomed: Vec<Vec<u8>> = store
            .keys
            .keys()
            .filter(|key| in_range(key, &request.key, &request.range_end))
            .cloned()
            .collect();
        if !doomed.is_empty() {
            store.revision += 1;
        }
        let prev_kvs: Vec<KeyValue> = doomed
            .iter()
            .filter_map(|key| store.keys.remove(key))
            .collect();
        Ok(Response::new(DeleteRangeResponse {
            header: self.header(store.revision),
            deleted: prev_kvs.len() as i64,
            prev_kvs: if request.prev_kv {
                prev_kvs
            } else {
                Vec::new()
            },
        }))
    }

    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(EtcdError::TooManyOps.into())
    }

    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        unsupported()
    }
}

#[tonic::async_trait]
impl Cluster for Fixture {
    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(EtcdError::MemberBadUrls.into())
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(EtcdError::MemberNotFound.into())
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        unsupported()
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: self.header(self.store.lock().unwrap().revision),
            members: vec![self.member()],
        }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(EtcdError::MemberNotLearner.into())
    }
}

#[tonic::async_trait]
impl Maintenance for Fixture {
    type SnapshotStream = tonic::codegen::BoxStream<SnapshotResponse>;

    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        unsupported()
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let store = self.store.lock().unwrap();
        Ok(Response::new(StatusResponse {
            header: self.header(store.revision),
            version: "3.4.0".to_owned(),
            db_size: 4096,
            leader: self.config.member_id(),
            raft_index: 17,
            raft_term: 2,
            raft_applied_index: 17,
            errors: Vec::new(),
            db_size_in_use: 2048,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        unsupported()
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        unsupported()
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        unsupported()
    }

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        unsupported()
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(EtcdError::BadLeaderTransferee.into())
    }
}

#[tonic::async_trait]
impl Lease for Fixture {
    type LeaseKeepAliveStream = tonic::codegen::BoxStream<LeaseKeepAliveResponse>;

    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(LeaseGrantResponse {
            header: self.header(self.store.lock().unwrap().revision),
            id: if request.id == 0 {
                FIXTURE_LEASE_ID
            } else {
                request.id
            },
            ttl: request.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        _: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        Err(EtcdError::LeaseNotFound.into())
    }

    async fn lease_keep_alive(
        &self,
        _: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        unsupported()
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: self.header(self.store.lock().unwrap().revision),
            id: request.id,
            ttl: 42,
            granted_ttl: 60,
            keys: if request.keys {
                vec![b"leased".to_vec()]
            } else {
                Vec::new()
            },
        }))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Ok(Response::new(LeaseLeasesResponse {
            header: self.header(self.store.lock().unwrap().revision),
            leases: vec![LeaseStatus {
                id: FIXTURE_LEASE_ID,
            }],
        }))
    }
}

/// Answers every watch it is asked to create with `created`, then one PUT of
/// the watched key with value `watched`.
#[tonic::async_trait]
impl Watch for Fixture {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut incoming = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let header = self.header(self.store.lock().unwrap().revision);
        tokio::spawn(async move {
            while let Ok(Some(request)) = incoming.message().await {
                let Some(RequestUnion::CreateRequest(create)) = request.request_union else {
                    continue;
                };
                let created = WatchResponse {
                    header,
                    watch_id: 7,
                    created: true,
                    ..WatchResponse::default()
                };
                let event = Event {
                    r#type: EventType::Put as i32,
                    kv: Some(KeyValue {
                        key: create.key,
                        create_revision: 5,
                        mod_revision: 5,
                        version: 1,
                        value: b"watched".to_vec(),
                        lease: 0,
                    }),
                    prev_kv: None,
                };
                let events = WatchResponse {
                    header,
                    watch_id: 7,
                    events: vec![event],
                    ..WatchResponse::default()
                };
                if sender.send(Ok(created)).await.is_err() || sender.send(Ok(events)).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// A fixture server on a free loopback port, for the life of the value.
struct Served {
    endpoint: String,
    /// Runs the server; dropping it stops the server.
    _runtime: tokio::runtime::Runtime,
}

fn serve() -> Served {
    let config = ServeArgs::try_parse_from(["serve"])
        .unwrap()
        .validate()
        .unwrap();
    let fixture = std::sync::Arc::new(Fixture {
        config,
        store: Mutex::new(Store {
            revision: 1,
            ..Store::default()
        }),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::from_arc(fixture.clone()))
            .add_service(ClusterServer::from_arc(fixture.clone()))
            .add_service(MaintenanceServer::from_arc(fixture.clone()))
            .add_service(LeaseServer::from_arc(fixture.clone()))
            .add_service(WatchServer::from_arc(fixture))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Served {
        endpoint,
        _runtime: runtime,
    }
}

/// Runs etcdctl against the fixture; returns (success, stdout, stderr).
fn etcdctl(served: &Served, args: &[&str]) -> (bool, String, String) {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", served.endpoint))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=5s")
        .args(args)
        .output()
        .expect("etcdctl runs; install it with `apt-get install etcd-client`");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(served: &Served, args: &[&str]) -> String {
    let (success, stdout, stderr) = etcdctl(served, args);
    assert!(success, "etcdctl {args:?} failed: {stderr}");
    stdout
}

fn error(served: &Served, args: &[&str]) -> String {
    let (success, stdout, stderr) = etcdctl(served, args);
    assert!(!success, "etcdctl {args:?} succeeded: {stdout}");
    stderr
}

#[test]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
fn etcdctl_reads_writes_and_deletes() {
    let served = serve();
    assert_eq!(ok(&served, &["put", "greeting", "hello"]), "OK\n");
    assert_eq!(ok(&served, &["put", "greeting2", "world"]), "OK\n");
    assert_eq!(ok(&served, &["get", "greeting"]), "greeting\nhello\n");
    assert_eq!(
        ok(&served, &["get", "--prefix", "greet"]),
        "greeting\nhello\ngreeting2\nworld\n"
    );
    let json = ok(&served, &["get", "greeting", "-w", "json"]);
    assert!(
        json.contains("\"cluster_id\":14841639068965178418"),
        "{json}"
    );
    assert!(
        json.contains("\"member_id\":10276657743932975437"),
        "{json}"
    );
    assert!(json.contains("\"mod_revision\":2"), "{json}");
    assert_eq!(
        ok(&served, &["put", "greeting", "hi", "--prev-kv"]),
        "OK\ngreeting\nhello\n"
    );
    assert_eq!(ok(&served, &["del", "--prefix", "greet"]), "2\n");
    assert_eq!(ok(&served, &["get", "greeting"]), "");
}

#[test]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
fn etcdctl_shows_etcd_errors_verbatim() {
    let served = serve();
    ok(&served, &["put", "k", "v"]);
    assert!(error(&served, &["get", "k", "--rev=1"])
        .contains("etcdserver: mvcc: required revision has been compacted"),);
    assert!(error(&served, &["get", "k", "--rev=99"])
        .contains("etcdserver: mvcc: required revision is a future revision"));
    assert!(error(&served, &["member", "remove", "1234"]).contains("etcdserver: member not found"));
}

#[test]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
fn etcdctl_lists_members_and_endpoint_status() {
    let served = serve();
    assert_eq!(
        ok(&served, &["member", "list"]),
        "8e9e05c52164694d, started, default, http://localhost:2380, http://localhost:2379, false\n"
    );
    let status = ok(&served, &["endpoint", "status"]);
    assert!(
        status.contains("8e9e05c52164694d, 3.4.0, 4.1 kB, true, false, 2, 17, 17"),
        "{status}"
    );
}

#[test]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
fn etcdctl_grants_and_inspects_leases() {
    let served = serve();
    assert_eq!(
        ok(&served, &["lease", "grant", "60"]),
        "lease 694d71ddacfda227 granted with TTL(60s)\n"
    );
    assert_eq!(
        ok(
            &served,
            &["lease", "timetolive", "694d71ddacfda227", "--keys"]
        ),
        "lease 694d71ddacfda227 granted with TTL(60s), remaining(42s), attached keys([leased])\n"
    );
    assert_eq!(
        ok(&served, &["lease", "list"]),
        "found 1 leases\n694d71ddacfda227\n"
    );
    assert!(
        error(&served, &["lease", "revoke", "1"]).contains("etcdserver: requested lease not found")
    );
}

/// etcdctl watch runs until stopped: read its first event, then kill it.
#[test]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
fn etcdctl_watch_receives_events() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;

    const EVENT_WAIT: Duration = Duration::from_secs(10);
    let served = serve();
    let mut watcher = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", served.endpoint))
        .args(["watch", "greeting"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("etcdctl runs; install it with `apt-get install etcd-client`");
    let stdout = watcher.stdout.take().unwrap();
    let (lines_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(3) {
            if lines_sender.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let received: Vec<String> = (0..3)
        .map_while(|_| lines.recv_timeout(EVENT_WAIT).ok())
        .collect();
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    assert_eq!(received, ["PUT", "greeting", "watched"]);
}
