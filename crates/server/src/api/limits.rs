//! The request limits the API enforces before a write reaches the log, with
//! etcd's defaults. Owns the numbers and the size check; must never look at
//! what a request means.

use prost::Message;

use crate::config::ServeConfig;
use crate::etcd_error::EtcdError;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 3 * 512 * 1024;

/// etcd's default `--max-txn-ops`.
pub const TXN_OPS_MAX_DEFAULT: usize = 128;

/// What etcd's gRPC server accepts beyond `--max-request-bytes` before it
/// refuses to decode a message at all; between the two, the request decodes
/// and is answered with "request is too large".
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Limits on client requests (etcd's `--max-request-bytes`, `--max-txn-ops`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest encoded write request that may be proposed.
    pub request_bytes_max: usize,
    /// Most compares or operations in one branch of a transaction.
    pub txn_ops_max: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            txn_ops_max: TXN_OPS_MAX_DEFAULT,
        }
    }
}

impl ApiLimits {
    /// The limits `raftkv serve` was configured with. Values beyond the
    /// platform's address space saturate, which only means "no limit".
    pub fn from_config(config: &ServeConfig) -> Self {
        Self {
            request_bytes_max: usize::try_from(config.request_bytes_max()).unwrap_or(usize::MAX),
            txn_ops_max: usize::try_from(config.txn_ops_max()).unwrap_or(usize::MAX),
        }
    }

    /// The largest gRPC message the services decode: the request limit plus
    /// etcd's allowance for gRPC framing.
    pub fn decoding_bytes_max(&self) -> usize {
        self.request_bytes_max.saturating_add(GRPC_OVERHEAD_BYTES)
    }

    /// etcd's check before proposing: a write whose encoding exceeds
    /// `request_bytes_max` is refused without touching the log.
    pub fn check_request_size<M: Message>(&self, request: &M) -> Result<(), EtcdError> {
        if request.encoded_len() > self.request_bytes_max {
            return Err(EtcdError::RequestTooLarge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;

    #[test]
    fn defaults_are_etcds() {
        let limits = ApiLimits::default();
        assert_eq!(limits.request_bytes_max, 1_572_864);
        assert_eq!(limits.txn_ops_max, 128);
        assert_eq!(limits.decoding_bytes_max(), 1_572_864 + 524_288);
    }

    #[test]
    fn size_check_refuses_only_requests_above_the_limit() {
        let request = PutRequest {
            key: b"k".to_vec(),
            value: vec![7; 100],
            ..PutRequest::default()
        };
        let size = request.encoded_len();
        let exact = ApiLimits {
            request_bytes_max: size,
            ..ApiLimits::default()
        };
        assert_eq!(exact.check_request_size(&request), Ok(()));
        let smaller = ApiLimits {
            request_bytes_max: size - 1,
            ..ApiLimits::default()
        };
        assert_eq!(
            smaller.check_request_size(&request),
            Err(EtcdError::RequestTooLarge)
        );
    }

    #[test]
    fn decoding_limit_saturates_instead_of_overflowing() {
        let limits = ApiLimits {
            request_bytes_max: usize::MAX,
            ..ApiLimits::default()
        };
        assert_eq!(limits.decoding_bytes_max(), usize::MAX);
    }

    #[test]
    fn limits_come_from_the_serve_flags() {
        use clap::Parser;
        let config = crate::config::ServeArgs::try_parse_from([
            "serve",
            "--max-request-bytes=4096",
            "--max-txn-ops=7",
        ])
        .expect("flags parse")
        .validate()
        .expect("flags are valid");
        assert_eq!(
            ApiLimits::from_config(&config),
            ApiLimits {
                request_bytes_max: 4096,
                txn_ops_max: 7
            }
        );
    }
}
