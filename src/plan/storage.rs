//! Storage honesty: what kind of filesystem and medium holds an artifact, and
//! therefore what an in-place overwrite can claim. "clear" (NIST SP 800-88)
//! only for a rotational disk under a non-copy-on-write, non-log-structured
//! local filesystem; "logical" sanitization, with the reason, otherwise.
//! The facts come from the kernel through `localfs::media`; this module
//! only decides what they allow a certificate to claim.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// NIST SP 800-88 Clear: overwrite reaches the medium.
    Clear,
    /// The overwrite may not reach the old physical blocks.
    Logical,
    /// Crypto erase (the key is destroyed).
    CryptoErase,
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Category::Clear => "clear",
            Category::Logical => "logical sanitization",
            Category::CryptoErase => "crypto erase",
        })
    }
}

/// What the medium lets an overwrite claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanitization {
    pub category: Category,
    pub reason: String,
}

/// Classify a local file's storage. `overwrites` is false for profiles that
/// only unlink: then nothing is overwritten and the category is logical.
pub fn classify(
    fs_type: &str,
    rotational: Option<bool>,
    virtual_disk: Option<&str>,
    overwrites: bool,
) -> Sanitization {
    let logical = |reason: &str| Sanitization {
        category: Category::Logical,
        reason: reason.into(),
    };
    if !overwrites {
        return logical("no overwrite: unlink only; the data blocks are freed, not cleared");
    }
    let fs_reason = match fs_type {
        "btrfs" | "zfs" | "bcachefs" => {
            Some("copy-on-write filesystem: overwrites go to new blocks")
        }
        "f2fs" | "nilfs2" => Some("log-structured filesystem: overwrites go to new blocks"),
        "xfs" => Some("xfs may share extents with reflinked copies"),
        "overlay" => Some("overlay filesystem: the lower layers keep their copy"),
        "tmpfs" | "ramfs" => Some("memory-backed filesystem: pages may linger in memory or swap"),
        "nfs" | "cifs" | "smb2" | "9p" | "afs" | "fuse" | "ocfs2" => {
            Some("network or userspace filesystem: the server decides where bytes land")
        }
        "squashfs" => Some("compressed read-only filesystem"),
        "ext4" | "vfat" | "exfat" | "ntfs" | "jfs" | "reiserfs" => None,
        _ => Some("unknown filesystem"),
    };
    if let Some(r) = fs_reason {
        return logical(r);
    }
    if let Some(v) = virtual_disk {
        return logical(&format!(
            "logical sanitization: virtual disk, backing store unknown ({v}); whether the overwrite reaches physical media is the hypervisor's or the cloud's to say"
        ));
    }
    match rotational {
        Some(true) => Sanitization {
            category: Category::Clear,
            reason: format!("in-place overwrite on a rotational disk with {fs_type}"),
        },
        Some(false) => logical("solid-state or virtual disk: wear levelling keeps old blocks"),
        None => logical("backing device unknown: cannot rule out SSD or copy-on-write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rotational_non_cow_is_clear() {
        assert_eq!(
            classify("ext4", Some(true), None, true).category,
            Category::Clear
        );
        for (fs, rot) in [
            ("ext4", Some(false)),
            ("ext4", None),
            ("btrfs", Some(true)),
            ("zfs", Some(true)),
            ("f2fs", Some(true)),
            ("xfs", Some(true)),
            ("overlay", Some(true)),
            ("tmpfs", None),
            ("nfs", Some(true)),
            ("unknown(0x1)", Some(true)),
        ] {
            let s = classify(fs, rot, None, true);
            assert_eq!(s.category, Category::Logical, "{fs} {rot:?}");
            assert!(!s.reason.is_empty());
        }
        let v = classify("ext4", Some(true), Some("virtio disk"), true);
        assert_eq!(
            v.category,
            Category::Logical,
            "a virtual disk is never clear"
        );
        assert!(v.reason.contains("virtual disk, backing store unknown"));
        assert_eq!(
            classify("ext4", Some(true), None, false).category,
            Category::Logical
        );
    }
}
