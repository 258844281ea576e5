//! The two directories the service shares with the members of its group (`whatsapp-mcp`):
//! the outbox, where they drop files for `send_file` to send, and the media directory, where
//! they open what `download_media` fetched. Under systemd the state directory is 0710, so a
//! member can pass through it to these two by name but list or open nothing else in it (the
//! archive and the session are 0600).
//!
//! Only the directories at their default places inside the data directory are managed here:
//! created when missing, and given their modes at every start (an upgrade from a version that
//! made them 0700 included). An outbox or media directory configured elsewhere is the
//! administrator's, and left as it is.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;

/// Members of the group may add and remove files. No setgid bit: the unit's
/// `RestrictSUIDSGID=` refuses it, so a file dropped here keeps its maker's group and must be
/// readable by others (the usual 0644) for the service to send it.
pub const OUTBOX_MODE: u32 = 0o770;
/// Members of the group may read; only the service writes, and what it writes has its own
/// group, `whatsapp-mcp`. Files in it are [`MEDIA_FILE_MODE`].
pub const MEDIA_MODE: u32 = 0o750;
/// A downloaded file: the service writes it, the group reads it.
pub const MEDIA_FILE_MODE: u32 = 0o640;

/// Creates the outbox and the media directory where they are the data directory's own, and
/// sets their modes. A failure is logged and not fatal: the tools then say what is wrong with
/// the directory when they need it.
pub fn prepare(data_dir: &Path, outbox: &Path, media: &Path) {
    for (dir, mode, what) in [
        (outbox, OUTBOX_MODE, "outbox"),
        (media, MEDIA_MODE, "media"),
    ] {
        if dir.parent() != Some(data_dir) || !data_dir.is_dir() {
            continue;
        }
        if let Err(err) = ensure(dir, mode) {
            tracing::warn!(
                directory = %dir.display(),
                error = %err,
                "cannot prepare the {what} directory for the group whatsapp-mcp"
            );
        }
    }
}

/// `dir` exists as a directory with `mode` (changing the mode of one that is not the service's
/// fails, and is logged).
fn ensure(dir: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    // Not followed if it is a link: a link here is left alone.
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other("it is not a directory"));
    }
    if meta.mode() & 0o7777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn the_default_directories_get_their_modes_and_others_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let (outbox, media) = (data.join("outbox"), data.join("media"));
        // A media directory an earlier version made private.
        std::fs::create_dir(&media).unwrap();
        std::fs::set_permissions(&media, std::fs::Permissions::from_mode(0o700)).unwrap();
        prepare(&data, &outbox, &media);
        assert_eq!(mode(&outbox), OUTBOX_MODE);
        assert_eq!(mode(&media), MEDIA_MODE);

        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        let missing = dir.path().join("not-made");
        prepare(&data, &elsewhere, &missing);
        assert_eq!(mode(&elsewhere), 0o700);
        assert!(!missing.exists());
    }

    #[test]
    fn a_file_where_the_outbox_belongs_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        std::fs::write(&outbox, b"x").unwrap();
        std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o600)).unwrap();
        prepare(dir.path(), &outbox, &dir.path().join("media"));
        assert_eq!(mode(&outbox), 0o600);
        assert_eq!(mode(&dir.path().join("media")), MEDIA_MODE);
    }
}
