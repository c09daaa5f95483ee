//! The replicated member list's file in the data directory: written
//! atomically and durably, so a crash leaves either the old or the new list.

use std::io::Write;
use std::path::{Path, PathBuf};

use node::{MemberList, MembersDecodeError};

const FILE_NAME: &str = "members";

/// Why the list could not be read from or written to the data directory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MembersFileError {
    #[error("cannot {action} the member list file {path}: {source}; check the --data-dir permissions and free space")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the member list file {path} is unreadable: {source}; restore it from a backup of the data directory")]
    Decode {
        path: PathBuf,
        source: MembersDecodeError,
    },
}

/// The list saved in `data_dir`, if one was saved.
pub(crate) fn load(data_dir: &Path) -> Result<Option<MemberList>, MembersFileError> {
    let path = data_dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MembersFileError::Io {
                action: "read",
                path,
                source,
            })
        }
    };
    MemberList::decode(&bytes)
        .map(Some)
        .map_err(|source| MembersFileError::Decode { path, source })
}

/// Writes the list to `data_dir`: a synced temporary file renamed over the
/// old one, then the directory synced.
pub(crate) fn save(data_dir: &Path, list: &MemberList) -> Result<(), MembersFileError> {
    let path = data_dir.join(FILE_NAME);
    let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| MembersFileError::Io {
            action,
            path,
            source,
        }
    };
    {
        let mut file = std::fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(&list.encode())
            .map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io("replace", &path))?;
    std::fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io("sync the directory of", &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::Member;

    #[test]
    fn the_file_round_trips_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let list = MemberList::initial(vec![Member {
            id: 1,
            name: "a".to_string(),
            peer_urls: vec!["http://127.0.0.1:2380".to_string()],
            client_urls: Vec::new(),
            is_learner: false,
        }]);
        save(dir.path(), &list).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(list.clone()));
        let bytes = list.encode();
        std::fs::write(dir.path().join(FILE_NAME), &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(MembersFileError::Decode { .. })
        ));
    }
}
