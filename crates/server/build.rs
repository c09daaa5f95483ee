//! Compiles the .proto files under proto/ into Rust with protox (a pure-Rust
//! protobuf compiler, so no system protoc is needed) and tonic-prost-build, and
//! keeps the compiled descriptors so the crate can describe its own API.

use std::error::Error;
use std::path::PathBuf;

use prost::Message as _;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "proto/etcd/kv.proto",
    "proto/etcd/auth.proto",
    "proto/etcd/rpc.proto",
    "proto/raftkv/peer.proto",
];
/// File in OUT_DIR holding the encoded `FileDescriptorSet` of every file above.
const DESCRIPTOR_SET_FILE: &str = "raftkv_descriptor_set.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let file_descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join(DESCRIPTOR_SET_FILE),
        file_descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(file_descriptors)?;
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    Ok(())
}
