//! LUKS2 volumes, for cryptographic erase of a whole encrypted volume: what
//! a block device is (through `cryptsetup`, the reference implementation of
//! LUKS: no hand-written header parser), whether anything holds it, and
//! `luksErase`, which destroys every keyslot (the only copies of the volume
//! key on the device).
//!
//! "In use" is the kernel's answer: a block device opened with `O_EXCL`
//! fails with EBUSY while it is mounted, mapped by device-mapper
//! (`cryptsetup open`) or claimed by another program.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

/// What trace records of a LUKS2 volume.
#[derive(Debug, Clone)]
pub struct Volume {
    /// The block device's number (major:minor as one `st_rdev`).
    pub rdev: u64,
    pub uuid: String,
    /// The keyslots in use (LUKS2 numbers them "0" to "31").
    pub keyslots: Vec<String>,
    /// Bytes on the device.
    pub size: u64,
}

fn cryptsetup(args: &[&str], dev: &Path) -> Result<std::process::Output, String> {
    Command::new("cryptsetup")
        .args(args)
        .arg(dev)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "cryptsetup is not installed (Debian: apt-get install cryptsetup-bin)".to_string()
            } else {
                format!("cannot run cryptsetup: {e}")
            }
        })
}

/// The device must be a block device named directly (never a symlink such
/// as /dev/disk/by-uuid/…, which could be pointed elsewhere).
pub fn block_device(dev: &Path) -> Result<u64, String> {
    let m = std::fs::symlink_metadata(dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    if m.file_type().is_symlink() {
        return Err(format!(
            "{} is a symlink; name the block device itself (decom never follows links)",
            dev.display()
        ));
    }
    if !m.file_type().is_block_device() {
        return Err(format!("{} is not a block device", dev.display()));
    }
    Ok(m.rdev())
}

/// Refuse a device the kernel says is in use (mounted, mapped, claimed).
pub fn not_in_use(dev: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(dev)
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => Err(format!(
            "{} is in use (mounted, opened with cryptsetup open, or claimed by another program); unmount and close it first",
            dev.display()
        )),
        Err(e) => Err(format!("{}: {e}", dev.display())),
    }
}

/// The UUID of the LUKS volume on `dev`, and its keyslots in use.
pub fn header(dev: &Path) -> Result<(String, Vec<String>), String> {
    let uuid = cryptsetup(&["luksUUID"], dev)?;
    if !uuid.status.success() {
        return Err(format!("{} holds no LUKS volume", dev.display()));
    }
    let dump = cryptsetup(&["luksDump", "--dump-json-metadata"], dev)?;
    if !dump.status.success() {
        return Err(format!(
            "{}: not a LUKS2 volume (cryptsetup luksDump --dump-json-metadata: {})",
            dev.display(),
            String::from_utf8_lossy(&dump.stderr).trim()
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&dump.stdout)
        .map_err(|e| format!("{}: unreadable LUKS2 metadata: {e}", dev.display()))?;
    let mut slots: Vec<String> = json["keyslots"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    slots.sort_by_key(|s| s.parse::<u32>().unwrap_or(u32::MAX));
    Ok((
        String::from_utf8_lossy(&uuid.stdout).trim().to_string(),
        slots,
    ))
}

/// Everything trace records of the volume at `dev`.
pub fn inspect(dev: &Path) -> Result<Volume, String> {
    let rdev = block_device(dev)?;
    not_in_use(dev)?;
    let (uuid, keyslots) = header(dev)?;
    let size = {
        use std::io::Seek;
        let mut f = std::fs::File::open(dev).map_err(|e| format!("{}: {e}", dev.display()))?;
        f.seek(std::io::SeekFrom::End(0))
            .map_err(|e| format!("{}: {e}", dev.display()))?
    };
    Ok(Volume {
        rdev,
        uuid,
        keyslots,
        size,
    })
}

/// `cryptsetup luksErase`: destroy every keyslot.
pub fn erase(dev: &Path) -> Result<(), String> {
    let out = cryptsetup(&["luksErase", "--batch-mode"], dev)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cryptsetup luksErase {}: {}",
            dev.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
