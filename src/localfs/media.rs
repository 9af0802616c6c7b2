//! What the kernel says about the storage under a file: the filesystem's
//! name from its statfs magic, and whether the block device is rotational
//! (sysfs). `plan::storage` turns these facts into a sanitization category.

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

/// Why the block device `major:minor` is a virtual disk, whose backing
/// store (an image file, a volume on a hypervisor's or a cloud's storage)
/// decom cannot see: `None` when nothing says so. What a guest's kernel
/// calls `rotational` says nothing of the real medium.
pub fn virtual_disk(major: u32, minor: u32) -> Option<String> {
    if major == 0 {
        return None;
    }
    if major == 7 {
        return Some("loop device: a file on another filesystem".into());
    }
    let base = format!("/sys/dev/block/{major}:{minor}");
    let real = std::fs::canonicalize(&base).ok()?;
    let path = real.to_string_lossy().to_lowercase();
    for (needle, what) in [
        ("/virtio", "virtio disk"),
        ("vmbus", "Hyper-V disk"),
        ("/xen", "Xen disk"),
        ("/vbd-", "Xen disk"),
    ] {
        if path.contains(needle) {
            return Some(what.into());
        }
    }
    // A partition's disk is the folder above it.
    for dev in [real.join("device"), real.join("../device")] {
        let field = |f: &str| std::fs::read_to_string(dev.join(f)).unwrap_or_default();
        let said = format!("{} {}", field("vendor"), field("model"));
        for needle in [
            "QEMU",
            "VMware",
            "VBOX",
            "Msft",
            "Virtual",
            "Amazon Elastic Block Store",
            "PersistentDisk",
            "Google",
        ] {
            if said.contains(needle) {
                return Some(format!(
                    "virtual disk ({})",
                    said.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    let dmi =
        |f: &str| std::fs::read_to_string(format!("/sys/class/dmi/id/{f}")).unwrap_or_default();
    let machine = format!(
        "{} {}",
        dmi("sys_vendor").trim(),
        dmi("product_name").trim()
    );
    for needle in [
        "QEMU",
        "KVM",
        "VMware",
        "Xen",
        "VirtualBox",
        "Virtual Machine",
        "Amazon EC2",
        "Google Compute Engine",
    ] {
        if machine.contains(needle) {
            return Some(format!("disk of a virtual machine ({})", machine.trim()));
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
}
