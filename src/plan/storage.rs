//! Storage honesty: what kind of filesystem and medium holds an artifact, and
//! therefore what an in-place overwrite can claim. "clear" (NIST SP 800-88)
//! only for a rotational disk under a non-copy-on-write, non-log-structured
//! local filesystem; "logical" sanitization, with the reason, otherwise.

use serde::{Deserialize, Serialize};

/// Filesystem magic numbers (statfs `f_type`), from linux/magic.h.
const MAGICS: &[(u64, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
    (0x794C_7630, "overlay"),
    (0x0102_1994, "tmpfs"),
    (0x6969, "nfs"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x6462_6720, "debugfs"),
    (0x5346_414F, "afs"),
    (0x0000_4D44, "vfat"),
    (0x2011_BAB0, "exfat"),
    (0x5346_544E, "ntfs"),
    (0x3153_464A, "jfs"),
    (0x5265_4973, "reiserfs"),
    (0x2849_6AE4, "squashfs"),
    (0x858_458F6, "ramfs"),
    (0x7461_636F, "ocfs2"),
    (0x0BAD_1DEA, "9p"),
    (0x0027_E0EB, "cgroup"),
    (0xCA45_1A4E, "bcachefs"),
    (0x6E69_6C66, "nilfs2"),
];

/// The name of a filesystem from its statfs magic.
pub fn fs_name(magic: u64) -> String {
    MAGICS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("unknown(0x{magic:x})"))
}

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
pub fn classify(fs_type: &str, rotational: Option<bool>, overwrites: bool) -> Sanitization {
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
    match rotational {
        Some(true) => Sanitization {
            category: Category::Clear,
            reason: format!("in-place overwrite on a rotational disk with {fs_type}"),
        },
        Some(false) => logical("solid-state or virtual disk: wear levelling keeps old blocks"),
        None => logical("backing device unknown: cannot rule out SSD or copy-on-write"),
    }
}

/// Whether the block device `major:minor` is rotational, from sysfs. Looks
/// at the device and, for partitions, at its parent disk.
pub fn rotational(major: u32, minor: u32) -> Option<bool> {
    if major == 0 {
        return None; // anonymous device: tmpfs, overlay, network
    }
    let base = format!("/sys/dev/block/{major}:{minor}");
    for p in [
        format!("{base}/queue/rotational"),
        format!("{base}/../queue/rotational"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&p) {
            return match s.trim() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded statfs values from real machines.
    #[test]
    fn recorded_statfs_values() {
        assert_eq!(fs_name(0xEF53), "ext4");
        assert_eq!(fs_name(0x9123_683E), "btrfs");
        assert_eq!(fs_name(0x0102_1994), "tmpfs");
        assert_eq!(fs_name(0x794C_7630), "overlay");
        assert_eq!(fs_name(0x1234), "unknown(0x1234)");
    }

    #[test]
    fn only_rotational_non_cow_is_clear() {
        assert_eq!(classify("ext4", Some(true), true).category, Category::Clear);
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
            let s = classify(fs, rot, true);
            assert_eq!(s.category, Category::Logical, "{fs} {rot:?}");
            assert!(!s.reason.is_empty());
        }
        assert_eq!(
            classify("ext4", Some(true), false).category,
            Category::Logical
        );
    }
}
