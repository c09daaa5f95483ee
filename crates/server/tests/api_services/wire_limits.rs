//! The message size limits on the wire, through [`server::api::routes`] on a
//! loopback port: etcd's "request is too large" between `request_bytes_max`
//! and the gRPC allowance, etcd's gRPC refusal to decode beyond it.

use std::sync::Arc;

use server::api::{routes, ApiLimits};
use server::lease::{LeaseOptions, Lessor};
use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::{PutRequest, RangeRequest};
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;

use crate::common::local_backend::LocalBackend;
use crate::run;

const REQUEST_BYTES_MAX: usize = 1024;

#[test]
fn writes_are_refused_by_size_and_huge_messages_are_not_decoded() {
    run(async {
        let backend = LocalBackend::in_memory();
        let limits = ApiLimits {
            request_bytes_max: REQUEST_BYTES_MAX,
            ..ApiLimits::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(routes(
                    Arc::clone(&backend),
                    Lessor::start(Arc::clone(&backend), LeaseOptions::default()),
                    limits,
                ))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let mut client = KvClient::connect(format!("http://{address}"))
            .await
            .unwrap()
            .max_encoding_message_size(usize::MAX);
        let put = |bytes: usize| PutRequest {
            key: b"k".to_vec(),
            value: vec![b'x'; bytes],
            ..PutRequest::default()
        };
        client.put(put(REQUEST_BYTES_MAX / 2)).await.unwrap();
        let too_large = client.put(put(REQUEST_BYTES_MAX * 2)).await.unwrap_err();
        assert_eq!(
            (too_large.code(), too_large.message()),
            (Code::InvalidArgument, "etcdserver: request is too large")
        );
        let huge = put(limits.decoding_bytes_max());
        let huge_bytes = prost::Message::encoded_len(&huge);
        let beyond_decoding = client.put(huge).await.unwrap_err();
        let expected = format!(
            "grpc: received message larger than max ({huge_bytes} vs. {})",
            limits.decoding_bytes_max()
        );
        assert_eq!(
            (beyond_decoding.code(), beyond_decoding.message()),
            (Code::ResourceExhausted, expected.as_str())
        );
        assert_eq!(backend.proposals(), 1, "neither large put was proposed");
        let read = client
            .range(RangeRequest {
                key: b"k".to_vec(),
                ..RangeRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.kvs[0].value.len(), REQUEST_BYTES_MAX / 2);
    });
}
