//! etcd's answer to a message too large to decode. tonic refuses such a
//! message with `OutOfRange` and its own wording; etcd's gRPC server answers
//! `ResourceExhausted` "grpc: received message larger than max (N vs. M)".
//! This wrapper rewrites exactly that refusal in a service's answer and
//! passes everything else through untouched; it must never look at bodies.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// tonic's wording of the refusal, around the two sizes.
const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";
const TONIC_MIDDLE: &str = " bytes, the limit is: ";
const TONIC_SUFFIX: &str = " bytes";

/// A gRPC service whose oversized-message refusals read as etcd's.
#[derive(Clone, Debug)]
pub(crate) struct EtcdOversizeStatus<S> {
    inner: S,
}

impl<S> EtcdOversizeStatus<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for EtcdOversizeStatus<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for EtcdOversizeStatus<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            rewrite(response.headers_mut());
            Ok(response)
        })
    }
}

/// Replaces tonic's refusal in a trailers-only answer with etcd's.
fn rewrite(headers: &mut http::HeaderMap) {
    let Some(etcd_status) =
        Status::from_header_map(headers).and_then(|status| etcd_oversize(&status))
    else {
        return;
    };
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    // Both values are plain ASCII, which always makes valid header values.
    let added = etcd_status.add_header(headers);
    debug_assert!(added.is_ok(), "{added:?}");
}

/// etcd's status for tonic's oversized-message refusal; `None` for any other.
fn etcd_oversize(status: &Status) -> Option<Status> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let sizes = status.message().strip_prefix(TONIC_PREFIX)?;
    let (found, limit) = sizes.strip_suffix(TONIC_SUFFIX)?.split_once(TONIC_MIDDLE)?;
    let found: u64 = found.parse().ok()?;
    let limit: u64 = limit.parse().ok()?;
    Some(Status::resource_exhausted(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_refusal_becomes_etcds() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 600010 bytes, the limit is: 534288 bytes",
        );
        let etcd = etcd_oversize(&tonic).expect("recognised");
        assert_eq!(etcd.code(), Code::ResourceExhausted);
        assert_eq!(
            etcd.message(),
            "grpc: received message larger than max (600010 vs. 534288)"
        );
    }

    #[test]
    fn other_statuses_pass_through() {
        for status in [
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision"),
            Status::invalid_argument(
                "Error, decoded message length too large: found 1 bytes, the limit is: 0 bytes",
            ),
            Status::out_of_range("Error, decoded message length too large: found many bytes"),
        ] {
            assert!(etcd_oversize(&status).is_none(), "{status:?}");
        }
    }

    #[test]
    fn rewrite_replaces_the_status_headers_and_keeps_the_rest() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes",
        )
        .add_header(&mut headers)
        .unwrap();
        rewrite(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "grpc: received message larger than max (9 vs. 8)"
        );
        assert_eq!(headers["content-type"], "application/grpc");
    }
}
