//! Where downloaded media lives: one file per content hash under the media directory, written
//! atomically, readable by the service and its group.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::shared_dirs::{MEDIA_FILE_MODE, MEDIA_MODE};

/// The file name for content with this SHA-256: the hash in hex plus an extension from the MIME
/// type. Naming by content makes a repeated download land on the same file, and keeps names
/// chosen by senders (which may contain `..` or `/`) out of the filesystem entirely.
pub fn file_name(sha256: &[u8], mime_type: Option<&str>) -> String {
    let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{}", extension(mime_type.unwrap_or_default()))
}

fn extension(mime_type: &str) -> &'static str {
    let essence = mime_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" | "audio/aac" => "m4a",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// An earlier download at `path`, if its content still hashes to `sha256` (a damaged or
/// half-written copy is not reused).
pub async fn verified_copy(
    path: &Path,
    sha256: &[u8],
    mime_type: Option<String>,
) -> Option<super::DownloadedMedia> {
    use sha2::{Digest, Sha256};
    let existing = tokio::fs::read(path).await.ok()?;
    (Sha256::digest(&existing).as_slice() == sha256).then(|| super::DownloadedMedia {
        path: path.to_path_buf(),
        mime_type,
        size_bytes: existing.len() as u64,
        reused: true,
    })
}

/// Writes `bytes` to `path` (which must be inside `dir`) through a temporary file and a rename,
/// so a reader never sees half a file. The directory is created if missing, and the file is
/// readable by the service's group (see [`crate::shared_dirs`]).
pub async fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.parent() != Some(dir) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not directly inside {}",
                path.display(),
                dir.display()
            ),
        ));
    }
    let dir = dir.to_path_buf();
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(MEDIA_MODE))?;
        }
        let temp = path.with_extension("partial");
        std::fs::write(&temp, &bytes)?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(MEDIA_FILE_MODE))?;
        std::fs::rename(&temp, &path)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_hash_and_type() {
        assert_eq!(file_name(&[0xab, 0x01], Some("image/jpeg")), "ab01.jpg");
        assert_eq!(file_name(&[0xff], Some("audio/ogg; codecs=opus")), "ff.ogg");
        assert_eq!(file_name(&[0x00], None), "00.bin");
    }

    #[tokio::test]
    async fn files_are_for_the_group_and_confined() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        let path = media.join("ab.jpg");
        write_new(&media, &path, b"bytes").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, MEDIA_FILE_MODE);
        let dir_mode = std::fs::metadata(&media).unwrap().permissions().mode() & 0o7777;
        assert_eq!(dir_mode, MEDIA_MODE);
        let escape = media.join("../escape.jpg");
        assert!(write_new(&media, &escape, b"x").await.is_err());
    }
}
