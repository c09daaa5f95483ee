//! `raftkv serve` as a library call: binds the peer and client listeners,
//! starts the transport and the node, serves the peer service and etcd's
//! client API until told to stop (a member without data first asks its
//! peers, see [`crate::startup`]), then stops in order: client listeners stop
//! accepting while the node hands leadership over, finishes its turn and
//! flushes the state machine; the peer listeners close last. It owns the
//! process's sockets and their lifetime, never a Raft decision.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use crate::api::{self, ApiLimits};
use crate::config::{Scheme, ServeConfig, Url};
use crate::lease::{LeaseOptions, Lessor};
use crate::node::{Node, NodeError, NodeOptions};
use crate::proto::raftkvpb::peer_server::PeerServer;
use crate::startup::{self, StartupError};
use crate::transport::{
    AuthorityFix, PeerService, SenderIdentity, Transport, PEER_MESSAGE_BYTES_MAX,
};

/// How often the serving loop checks that the node thread is still running.
const NODE_CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// How long client connections get to finish in-flight calls at shutdown.
const SERVER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `raftkv serve` could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{url}: https is not supported yet; use http:// URLs")]
    TlsUnsupported { url: String },
    #[error("cannot resolve {url}: {reason}")]
    Resolve { url: String, reason: String },
    #[error("cannot listen on {url}: {source}; is another process using the port?")]
    Listen { url: String, source: std::io::Error },
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("the node stopped by itself; see the log above")]
    NodeStopped,
}

/// Binds every listener before anything starts, so a busy port fails fast.
async fn bind_all(urls: &[Url]) -> Result<Vec<(String, TcpListener)>, ServeError> {
    let mut listeners = Vec::new();
    for url in urls {
        let text = url.to_string();
        if url.scheme() == Scheme::Https {
            return Err(ServeError::TlsUnsupported { url: text });
        }
        let address = socket_address(url)?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Listen {
                url: text.clone(),
                source,
            })?;
        listeners.push((text, listener));
    }
    Ok(listeners)
}

fn socket_address(url: &Url) -> Result<SocketAddr, ServeError> {
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    let ip = if host == "localhost" {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|error| ServeError::Resolve {
            url: url.to_string(),
            reason: format!("{error}"),
        })?
    };
    Ok(SocketAddr::new(ip, url.port()))
}

/// Runs a member until `shutdown` resolves (then stops cleanly and returns
/// `Ok`) or the node fails. Must run inside a multi-threaded tokio runtime.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // Asked before binding: a peer asking this member in turn is refused at
    // once rather than left waiting for an answer that comes only later.
    let config = startup::prepare(config).await?;
    let peer_listeners = bind_all(config.listen_peer_urls()).await?;
    let client_listeners = bind_all(config.listen_client_urls()).await?;
    let peers: Vec<_> = config
        .initial_cluster()
        .iter()
        .filter(|member| member.id != config.member_id())
        .map(|member| {
            (
                member.id,
                member.peer_urls.iter().map(Url::to_string).collect(),
            )
        })
        .collect();
    let identity = SenderIdentity {
        cluster_id: config.cluster_id(),
        member_id: config.member_id(),
        client_urls: config
            .advertise_client_urls()
            .iter()
            .map(Url::to_string)
            .collect(),
    };
    let transport = Transport::start(identity, &peers);
    let options = NodeOptions::from_config(&config);
    let node = tokio::task::spawn_blocking(move || Node::start(options, transport))
        .await
        .map_err(|_| NodeError::Panicked)??;
    let handle = node.handle();
    tracing::info!(
        name = config.name(),
        member = format_args!("{:x}", config.member_id()),
        cluster = format_args!("{:x}", config.cluster_id()),
        data_dir = %config.data_dir().display(),
        "member started"
    );

    // Peer streams never end on their own: the peer listeners run until the
    // node has stopped (a stopping leader still needs them to hand over).
    let mut peer_servers = JoinSet::new();
    for (url, listener) in peer_listeners {
        let service = PeerServer::new(PeerService::new(handle.clone(), config.cluster_id()))
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX);
        let router = tonic::transport::Server::builder().add_service(service);
        tracing::info!(%url, "serving peer traffic");
        peer_servers.spawn(async move {
            let incoming =
                TcpListenerStream::new(listener).map(|accepted| accepted.and_then(without_delay));
            let served = router.serve_with_incoming(incoming).await;
            (url, served)
        });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut client_servers = JoinSet::new();
    let backend = Arc::new(handle);
    let lessor = Lessor::start(Arc::clone(&backend), LeaseOptions::from_config(&config));
    for (url, listener) in client_listeners {
        let routes = api::routes(
            Arc::clone(&backend),
            Arc::clone(&lessor),
            ApiLimits::from_config(&config),
        );
        let router = tonic::transport::Server::builder().add_routes(routes);
        let stop = stopped(stop_rx.clone());
        tracing::info!(%url, "ready to serve client requests");
        client_servers.spawn(async move {
            // etcdctl may send `http://host:port` as the authority; h2 would
            // refuse it (see transport::client_authority).
            let incoming = TcpListenerStream::new(listener)
                .map(|accepted| accepted.and_then(without_delay).map(AuthorityFix::new));
            let served = router.serve_with_incoming_shutdown(incoming, stop).await;
            (url, served)
        });
    }

    let node_failed = wait_for_stop(&node, shutdown).await;
    tracing::info!("stopping: no new requests; finishing the current work");
    let _ = stop_tx.send(true);
    let node_stopped = tokio::task::spawn_blocking(move || node.stop());
    let drained = tokio::time::timeout(SERVER_DRAIN_TIMEOUT, async {
        while let Some(joined) = client_servers.join_next().await {
            if let Ok((url, Err(error))) = joined {
                tracing::warn!(%url, %error, "client listener ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("client connections did not finish in time; closing them");
        client_servers.abort_all();
    }
    node_stopped.await.map_err(|_| NodeError::Panicked)??;
    peer_servers.abort_all();
    if node_failed {
        return Err(ServeError::NodeStopped);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves when `shutdown` does (false) or the node thread ends (true).
async fn wait_for_stop(node: &Node, shutdown: impl Future<Output = ()>) -> bool {
    tokio::pin!(shutdown);
    let mut check = tokio::time::interval(NODE_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = &mut shutdown => return false,
            _ = check.tick() => {
                if node.is_finished() {
                    return true;
                }
            }
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Turns Nagle's algorithm off on an accepted connection, as etcd does: a
/// small response must leave at once, not wait for more bytes to coalesce.
fn without_delay(stream: tokio::net::TcpStream) -> std::io::Result<tokio::net::TcpStream> {
    stream.set_nodelay(true)?;
    Ok(stream)
}
