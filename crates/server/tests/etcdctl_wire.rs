//! Wire compatibility of the generated Lease and Watch services with the real
//! `etcdctl` (etcd 3.4's command-line client): a small fixture answers on a
//! loopback port with canned leases and events, and etcdctl talks to it. If a
//! service path, field number or error string drifted from etcd's, etcdctl
//! would print something else. (KV, Watch, Maintenance and Cluster are served for
//! real by `server::api`; `etcdctl_compat.rs` compares them with real etcd.)
//!
//! Needs `etcdctl` on PATH (`apt-get install etcd-client`); without it each
//! test says so and passes, except under CI (`CI=true`), where it fails.
//! Takes about half a second.

mod common;

use std::process::Command;

use clap::Parser;
use server::config::{ServeArgs, ServeConfig};
use server::etcd_error::EtcdError;
use server::proto::etcdserverpb::{
    lease_server::{Lease, LeaseServer},
    watch_request::RequestUnion,
    watch_server::{Watch, WatchServer},
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader, WatchRequest, WatchResponse,
};
use server::proto::mvccpb::{event::EventType, Event, KeyValue};
use tonic::codegen::tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// The id the fixture gives a lease when the client leaves the choice to it.
const FIXTURE_LEASE_ID: i64 = 0x694d_71dd_acfd_a227;

/// The revision every fixture answer reports.
const FIXTURE_REVISION: i64 = 1;

/// Canned answers under the identity of a default `raftkv serve`.
#[derive(Debug)]
struct Fixture {
    config: ServeConfig,
}

impl Fixture {
    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.config.cluster_id(),
            member_id: self.config.member_id(),
            revision: FIXTURE_REVISION,
            raft_term: 2,
        })
    }
}

fn unsupported<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not served by the etcdctl fixture"))
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
            header: self.header(),
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
            header: self.header(),
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
            header: self.header(),
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
        let header = self.header();
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
    let fixture = std::sync::Arc::new(Fixture { config });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    runtime.spawn(
        tonic::transport::Server::builder()
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
fn etcdctl_grants_and_inspects_leases() {
    if !common::tools::present(&["etcdctl"]) {
        return;
    }
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
fn etcdctl_watch_receives_events() {
    if !common::tools::present(&["etcdctl"]) {
        return;
    }
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
