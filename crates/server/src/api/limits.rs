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

/// What etcd wraps a write in before it measures it against
/// `--max-request-bytes`: its request header, a 64-bit request id with its
/// framing, ahead of the field tag and length that wrap the request itself.
/// The id takes 9 or 10 bytes as a varint depending on the member id; with
/// 10 (14 header bytes) no write passes here that etcd would refuse.
pub const ETCD_REQUEST_HEADER_BYTES: usize = 14;

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

    /// etcd's check before proposing: a write whose encoding, in etcd's
    /// envelope, exceeds `request_bytes_max` is refused without touching the
    /// log.
    pub fn check_request_size<M: Message>(&self, request: &M) -> Result<(), EtcdError> {
        if enveloped_len(request.encoded_len()) > self.request_bytes_max {
            return Err(EtcdError::RequestTooLarge);
        }
        Ok(())
    }
}

/// The size etcd measures for a write of `encoded_len` bytes: its header,
/// one byte of field tag, the length prefix, and the write.
fn enveloped_len(encoded_len: usize) -> usize {
    let length_prefix_len = prost::encoding::encoded_len_varint(encoded_len as u64);
    encoded_len
        .saturating_add(ETCD_REQUEST_HEADER_BYTES + 1)
        .saturating_add(length_prefix_len)
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

    fn put_of_value_bytes(value_bytes: usize) -> PutRequest {
        PutRequest {
            key: b"k".to_vec(),
            value: vec![b'x'; value_bytes],
            ..PutRequest::default()
        }
    }

    #[test]
    fn size_check_refuses_only_requests_above_the_limit_in_etcds_envelope() {
        let request = put_of_value_bytes(100);
        // 3 bytes of key, 2 of value framing, 100 of value; then etcd's header,
        // a field tag and a one-byte length.
        let enveloped = 105 + ETCD_REQUEST_HEADER_BYTES + 1 + 1;
        let exact = ApiLimits {
            request_bytes_max: enveloped,
            ..ApiLimits::default()
        };
        assert_eq!(exact.check_request_size(&request), Ok(()));
        let smaller = ApiLimits {
            request_bytes_max: enveloped - 1,
            ..ApiLimits::default()
        };
        assert_eq!(
            smaller.check_request_size(&request),
            Err(EtcdError::RequestTooLarge)
        );
    }

    #[test]
    fn puts_etcd_takes_whatever_its_member_id_fit_and_ones_it_may_refuse_do_not() {
        let limits = ApiLimits {
            request_bytes_max: 10_000,
            ..ApiLimits::default()
        };
        // For key "k" under 10000 bytes etcd takes a value of 9977 bytes with
        // any member id, and 9978 only when its request id varint is short.
        assert_eq!(
            limits.check_request_size(&put_of_value_bytes(9_977)),
            Ok(())
        );
        assert_eq!(
            limits.check_request_size(&put_of_value_bytes(9_978)),
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
