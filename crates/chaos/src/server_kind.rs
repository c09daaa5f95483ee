//! Which server the members run. raftkv takes etcd's flags, so the same
//! suite runs against etcd itself (3.4 or later) to compare the two under
//! one schedule; the only difference on the command line is raftkv's
//! `serve` subcommand.
//!
//! Owns: what goes before the shared flags. Must never: change the flags
//! both take, or a comparison would compare two configurations.

use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerKind {
    #[default]
    Raftkv,
    Etcd,
}

impl ServerKind {
    /// The arguments before the flags.
    pub fn leading_args(self) -> &'static [&'static str] {
        match self {
            ServerKind::Raftkv => &["serve"],
            ServerKind::Etcd => &[],
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::Raftkv => "raftkv",
            ServerKind::Etcd => "etcd",
        })
    }
}
