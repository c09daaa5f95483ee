//! The Lease service over the wire on a [`LocalBackend`]: grants, attached
//! keys, keepalive streams, TimeToLive, listing, revoking, expiry, and the
//! answers of a member that does not lead. A few seconds (one lease has to
//! expire).

use std::sync::Arc;
use std::time::{Duration, Instant};

use server::api::{routes, ApiLimits};
use server::backend::KvBackend;
use server::lease::{LeaseOptions, Lessor};
use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::lease_client::LeaseClient;
use server::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use server::to_leader::FORWARDED_METADATA;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::Code;

use crate::common::local_backend::LocalBackend;
use crate::{assert_status, run};

/// Short timing, so a lease of the minimum TTL (1 s) expires quickly and a
/// member without a leader gives up quickly.
fn options() -> LeaseOptions {
    LeaseOptions {
        check_interval: Duration::from_millis(10),
        request_timeout: Duration::from_millis(500),
        ..LeaseOptions::for_timing(Duration::from_millis(100), Duration::from_millis(10))
    }
}

/// How long an expired lease may take to be revoked in this test.
const EXPIRY_WAIT_MAX: Duration = Duration::from_secs(10);

struct Served {
    backend: Arc<LocalBackend>,
    lease: LeaseClient<Channel>,
    kv: KvClient<Channel>,
}

async fn serve() -> Served {
    let backend = LocalBackend::in_memory();
    let lessor = Lessor::start(Arc::clone(&backend), options());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes(Arc::clone(&backend), lessor, ApiLimits::default()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Served {
        backend,
        lease: LeaseClient::new(channel.clone()),
        kv: KvClient::new(channel),
    }
}

async fn grant(served: &Served, id: i64, ttl: i64) -> i64 {
    let granted = served
        .lease
        .clone()
        .lease_grant(LeaseGrantRequest { id, ttl })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.error.is_empty());
    granted.id
}

async fn put(served: &Served, key: &str, lease: i64) -> Result<i64, tonic::Status> {
    let response = served
        .kv
        .clone()
        .put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..PutRequest::default()
        })
        .await?;
    Ok(response.into_inner().header.unwrap().revision)
}

async fn exists(served: &Served, key: &str) -> bool {
    let response = served
        .kv
        .clone()
        .range(RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        })
        .await
        .unwrap();
    response.into_inner().count == 1
}

async fn keep_alive_once(served: &Served, id: i64) -> Result<i64, tonic::Status> {
    let mut responses = served
        .lease
        .clone()
        .lease_keep_alive(tokio_stream::once(LeaseKeepAliveRequest { id }))
        .await?
        .into_inner();
    let response = responses.message().await?.expect("one keepalive answer");
    assert_eq!(response.id, id);
    Ok(response.ttl)
}

#[test]
fn grants_choose_ids_raise_short_ttls_and_refuse_bad_input() {
    run(async {
        let served = serve().await;
        let chosen = grant(&served, 0, 0).await;
        assert!(chosen > 0);
        let granted = served
            .lease
            .clone()
            .lease_grant(LeaseGrantRequest { id: 0, ttl: -5 })
            .await
            .unwrap()
            .into_inner();
        assert_ne!(granted.id, chosen, "each grant gets its own id");
        assert_eq!(granted.ttl, options().ttl_seconds_min);
        assert_eq!(grant(&served, 42, 60).await, 42);
        assert_status(
            served
                .lease
                .clone()
                .lease_grant(LeaseGrantRequest { id: 42, ttl: 60 })
                .await,
            Code::FailedPrecondition,
            "etcdserver: lease already exists",
        );
        assert_status(
            served
                .lease
                .clone()
                .lease_grant(LeaseGrantRequest {
                    id: 43,
                    ttl: mvcc::LEASE_TTL_SECONDS_MAX + 1,
                })
                .await,
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        );
        let listed = served
            .lease
            .clone()
            .lease_leases(LeaseLeasesRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut ids: Vec<i64> = listed.leases.iter().map(|lease| lease.id).collect();
        ids.sort_unstable();
        let mut expected = vec![chosen, granted.id, 42];
        expected.sort_unstable();
        assert_eq!(ids, expected);
    });
}

#[test]
fn keys_attach_keepalives_renew_and_a_revoke_deletes_the_keys() {
    run(async {
        let served = serve().await;
        assert_status(
            put(&served, "k", 42).await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        grant(&served, 42, 60).await;
        put(&served, "k", 42).await.unwrap();
        put(&served, "j", 42).await.unwrap();
        let lived = served
            .lease
            .clone()
            .lease_time_to_live(LeaseTimeToLiveRequest { id: 42, keys: true })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((lived.id, lived.granted_ttl), (42, 60));
        assert!((58..=60).contains(&lived.ttl), "{lived:?}");
        assert_eq!(lived.keys, [b"j".to_vec(), b"k".to_vec()]);
        assert_eq!(keep_alive_once(&served, 42).await.unwrap(), 60);
        assert_eq!(keep_alive_once(&served, 99).await.unwrap(), 0);
        let missing = served
            .lease
            .clone()
            .lease_time_to_live(LeaseTimeToLiveRequest { id: 99, keys: true })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((missing.ttl, missing.granted_ttl), (-1, 0));
        let before = served.backend.store().current_revision();
        let revoked = served
            .lease
            .clone()
            .lease_revoke(LeaseRevokeRequest { id: 42 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(revoked.header.unwrap().revision, before + 1);
        assert!(!exists(&served, "k").await && !exists(&served, "j").await);
        assert_status(
            served
                .lease
                .clone()
                .lease_revoke(LeaseRevokeRequest { id: 42 })
                .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
    });
}

#[test]
fn an_expired_lease_is_revoked_with_its_keys() {
    run(async {
        let served = serve().await;
        let id = grant(&served, 0, 1).await;
        let kept = grant(&served, 0, 60).await;
        put(&served, "short", id).await.unwrap();
        put(&served, "long", kept).await.unwrap();
        assert!(exists(&served, "short").await);
        let started = Instant::now();
        while exists(&served, "short").await {
            assert!(
                started.elapsed() < EXPIRY_WAIT_MAX,
                "the key outlived its 1 s lease by far"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(served.backend.store().lease(id).unwrap(), None);
        assert_eq!(keep_alive_once(&served, id).await.unwrap(), 0);
        assert!(exists(&served, "long").await);
    });
}

#[test]
fn a_member_that_does_not_lead_refuses_forwarded_requests_and_finds_no_leader() {
    run(async {
        let served = serve().await;
        let id = grant(&served, 0, 60).await;
        served.backend.set_leader(Some(0x77));
        let mut forwarded = tonic::Request::new(LeaseTimeToLiveRequest { id, keys: false });
        forwarded
            .metadata_mut()
            .insert(FORWARDED_METADATA, "1".parse().unwrap());
        assert_status(
            served.lease.clone().lease_time_to_live(forwarded).await,
            Code::FailedPrecondition,
            "etcdserver: not leader",
        );
        // The leader's client URL is unknown here, so the request cannot be
        // passed on before the request timeout.
        assert_status(
            keep_alive_once(&served, id).await,
            Code::Unavailable,
            "etcdserver: no leader",
        );
    });
}
