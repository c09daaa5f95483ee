//! The raftkv node: etcd's v3 gRPC API, the peer transport, the node driver and
//! the `serve` configuration. It drives the consensus core and never decides
//! anything the core decides.

pub mod config;
pub mod etcd_error;
pub mod peer_codec;
pub mod proto;
