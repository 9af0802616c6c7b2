//! `decom verify --recheck`: years later, prove again that nothing the
//! certificate calls disposed exists. Every location of the approved plan is
//! traced afresh with the plan's own manifest (the one trace code path), and
//! each disposed artifact is looked for:
//!
//! - at its path (local files: also an `lstat` of the exact path, whatever
//!   the manifest's filters say) or at its key (S3: any object version there);
//! - by content, in locations that match by hash: any file or object version
//!   whose SHA-256 equals a disposed artifact's.
//!
//! Directories, symlinks and delete markers carry no model data; an empty
//! directory recreated at a disposed path is not a reappearance.

use super::Certificate;
use crate::error::Result;
use crate::journal::Outcome;
use crate::manifest::{MatchMode, Target};
use crate::plan::{Item, Plan, Store};
use crate::progress::Progress;
use crate::trace::Criteria;
use std::collections::{HashMap, HashSet};

/// What came back: one line per reappearance, naming where.
pub fn recheck(
    cert: &Certificate,
    plan: &Plan,
    s3_override: &crate::s3::Settings,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let disposed: HashSet<u32> = cert
        .artifacts
        .iter()
        .filter(|a| a.outcome == Outcome::Disposed)
        .map(|a| a.id)
        .collect();
    let gone: Vec<&Item> = plan
        .artifacts
        .iter()
        .filter(|a| disposed.contains(&a.id))
        .map(|a| &a.item)
        .collect();
    let mut found_again = Vec::new();

    // Exact local paths first: no filter can hide them.
    let mut by_path: HashMap<&str, &str> = HashMap::new();
    let mut by_key: HashMap<(&str, &str), &str> = HashMap::new();
    let mut by_sha: HashMap<&str, String> = HashMap::new();
    // Folders S3 Lifecycle emptied: anything in them again is a reappearance.
    let mut emptied: HashSet<(&str, &str)> = HashSet::new();
    // KMS keys destroyed by cryptographic erase: they must stay gone.
    let mut erased: Vec<&str> = Vec::new();
    for item in &gone {
        match item {
            Item::File(f) => {
                by_path.insert(&f.path, &f.sha256);
                by_sha.insert(&f.sha256, f.path.clone());
                if std::fs::symlink_metadata(&f.path).is_ok() {
                    let same = crate::hash::hash_files(&[f.path.clone().into()])
                        .pop()
                        .and_then(|r| r.ok())
                        .is_some_and(|h| h == f.sha256);
                    found_again.push(format!(
                        "{}: exists again{}",
                        f.path,
                        if same {
                            " with the disposed content"
                        } else {
                            " (other content)"
                        }
                    ));
                }
            }
            Item::S3Version(v) => {
                by_key.insert((&v.bucket, &v.key), &v.version_id);
                if let Some(s) = &v.sha256 {
                    by_sha.insert(s, item.path().into_owned());
                }
            }
            Item::S3Upload(u) => {
                by_key.insert((&u.bucket, &u.key), &u.upload_id);
            }
            Item::S3Lifecycle(l) => {
                emptied.insert((&l.bucket, &l.prefix));
            }
            Item::KmsKey(k) => {
                erased.push(&k.key_arn);
            }
            _ => {}
        }
    }

    let criteria = Criteria::of_plan(plan);
    let settings = plan
        .manifest
        .s3
        .clone()
        .unwrap_or_default()
        .overlay(s3_override);
    let mut client: Option<crate::s3::S3> = None;
    let mut links = crate::trace::local::LinkIndex::default();
    for arn in erased {
        if client.is_none() {
            client = Some(crate::s3::S3::connect(&settings)?);
        }
        let c = client.as_ref().expect("connected above");
        match crate::s3::kms::describe_key(c, arn) {
            Ok(None) => {}
            Ok(Some(k)) => found_again.push(format!(
                "kms:{arn}: the erased KMS key exists again ({}; was its deletion cancelled?)",
                k.state
            )),
            Err(e) => {
                found_again.push(format!("kms:{arn}: cannot check that the key is gone: {e}"))
            }
        }
    }
    for pl in &plan.locations {
        let loc = plan.manifest_location(pl);
        let n = pl.index;
        if let Store::Luks(v) = &pl.store {
            // An erased volume must still have no keyslot (if it is there).
            let dev = std::path::Path::new(&v.device);
            if gone
                .iter()
                .any(|i| matches!(i, Item::LuksKeyslots(l) if l.uuid == v.uuid))
                && crate::localfs::luks::block_device(dev).is_ok()
                && let Ok((uuid, slots)) = crate::localfs::luks::header(dev)
                && uuid == v.uuid
                && !slots.is_empty()
            {
                found_again.push(format!(
                    "{}: the erased LUKS volume {uuid} has keyslot(s) again: {}",
                    pl.uri,
                    slots.join(", ")
                ));
            }
            continue;
        }
        let target = match &pl.store {
            Store::Local(l) => Target::Local(l.root.clone().into()),
            Store::Luks(_) => unreachable!("handled above"),
            Store::S3(s) => Target::S3 {
                bucket: s.bucket.clone(),
                prefix: s.prefix.clone(),
            },
        };
        let items: Vec<Item> = match &target {
            Target::Local(root) => {
                // A location that is gone entirely holds nothing.
                if std::fs::symlink_metadata(root).is_err() {
                    continue;
                }
                let (_, found, _) = crate::trace::local::trace_location(
                    n,
                    loc,
                    root,
                    &criteria,
                    (&mut links, &mut Default::default()),
                    progress,
                )?;
                found
                    .into_iter()
                    .map(crate::trace::local::Found::into_item)
                    .collect()
            }
            Target::Luks(_) => unreachable!("handled above"),
            Target::S3 { bucket, prefix } => {
                if client.is_none() {
                    client = Some(crate::s3::S3::connect(&settings)?);
                }
                let c = client.as_ref().expect("connected above");
                let mut items = Vec::new();
                crate::trace::s3::trace_location(
                    n,
                    loc,
                    (bucket, prefix),
                    &criteria,
                    (c, &settings),
                    progress,
                    &mut |i| {
                        items.push(i);
                        Ok(())
                    },
                )?;
                items
            }
        };
        for item in &items {
            let (here, sha) = match item {
                Item::File(f) => {
                    // Already reported by the exact-path check.
                    if by_path.contains_key(f.path.as_str()) {
                        continue;
                    }
                    (f.path.clone(), Some(f.sha256.as_str()))
                }
                Item::S3Version(v) => {
                    if let Some(old) = by_key.get(&(v.bucket.as_str(), v.key.as_str())) {
                        found_again.push(format!(
                            "{}: the key holds an object again{}",
                            item.path(),
                            if *old == v.version_id {
                                " (the disposed version)"
                            } else {
                                ""
                            }
                        ));
                        continue;
                    }
                    (item.path().into_owned(), v.sha256.as_deref())
                }
                Item::S3Lifecycle(l) => {
                    let n = l.versions + l.delete_markers + l.uploads;
                    if n > 0 && emptied.contains(&(l.bucket.as_str(), l.prefix.as_str())) {
                        found_again.push(format!(
                            "{}: the emptied folder holds {} version(s), {} delete marker(s) and {} upload(s) again",
                            item.path(),
                            l.versions,
                            l.delete_markers,
                            l.uploads
                        ));
                    }
                    continue;
                }
                Item::S3Upload(u) => {
                    if by_key.contains_key(&(u.bucket.as_str(), u.key.as_str())) {
                        found_again.push(format!(
                            "{}: an unfinished upload to a disposed key",
                            item.path()
                        ));
                    }
                    continue;
                }
                _ => continue,
            };
            if loc.match_mode == MatchMode::Hash
                && let Some(s) = sha
                && let Some(orig) = by_sha.get(s)
            {
                found_again.push(format!(
                    "{here}: a copy of disposed {orig} (same SHA-256 {s})"
                ));
            }
        }
    }
    Ok(found_again)
}
