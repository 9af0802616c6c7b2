//! Disposing of one local artifact: re-identify it on an open handle, run the
//! profile's passes with read-back verification, rename, truncate, unlink,
//! fsync the directory, and prove the name is gone. Every step is journaled
//! before it is reported, and a resumed run continues from the journal.
//!
//! Everything goes through [`crate::localfs`] handles, so no symlink is ever
//! followed and nothing outside the location's root is reached.

use super::Ctx;
use crate::error::{Error, Result};
use crate::journal::{ArtifactState, Event, Outcome};
use crate::localfs::{Anchor, Identity, Kind, Parent};
use crate::plan::{LocalDir, LocalFile, LocalLink, LocalRoot, relative_to};
use std::ffi::{OsStr, OsString};

/// The result of disposing of one artifact: its outcome and why.
pub type Done = (Outcome, Option<String>);

fn changed(why: impl Into<String>) -> Done {
    (Outcome::SkippedChanged, Some(why.into()))
}

fn failed(why: impl Into<String>) -> Done {
    (Outcome::Failed, Some(why.into()))
}

/// Open the artifact's parent directory safely. Errors are outcomes: a parent
/// that is now a symlink or gone means the tree changed since approval.
fn open_parent(
    anchor: &Anchor,
    loc: &LocalRoot,
    path: &str,
    started: bool,
) -> Result<Parent, Done> {
    let rel = relative_to(path, &loc.root).ok_or_else(|| failed("not under its location"))?;
    anchor.parent(rel).map_err(|e| {
        let why = format!("cannot open its directory safely: {e}");
        if started { failed(why) } else { changed(why) }
    })
}

fn describe_change(plan: &LocalFile, now: &Identity) -> Option<String> {
    if now.kind != Kind::File {
        return Some("is no longer a regular file".into());
    }
    let mut diffs = Vec::new();
    if now.device != plan.device || now.inode != plan.inode {
        diffs.push(format!(
            "device/inode {}/{} (approved {}/{})",
            now.device, now.inode, plan.device, plan.inode
        ));
    }
    if now.size != plan.size {
        diffs.push(format!("size {} (approved {})", now.size, plan.size));
    }
    if now.nlink != plan.nlink {
        diffs.push(format!(
            "link count {} (approved {})",
            now.nlink, plan.nlink
        ));
    }
    if now.mtime != plan.mtime {
        diffs.push(format!("mtime {} (approved {})", now.mtime, plan.mtime));
    }
    if now.ctime != plan.ctime {
        diffs.push(format!("ctime {} (approved {})", now.ctime, plan.ctime));
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// Dispose of a regular file.
pub fn file(
    ctx: &Ctx,
    anchor: &Anchor,
    loc: &LocalRoot,
    id: u32,
    f: &LocalFile,
    st: &ArtifactState,
) -> Result<Done> {
    let started = st.started.is_some();
    let parent = match open_parent(anchor, loc, &f.path, started) {
        Ok(p) => p,
        Err(done) => return Ok(done),
    };
    // Where is it now? Under its name, or under the last name we journaled.
    let mut names: Vec<OsString> = vec![parent.name.clone()];
    names.extend(st.renames.iter().map(|(_, to)| OsString::from(to)));
    let mut current: Option<(OsString, Identity)> = None;
    for n in names.iter().rev() {
        // A failed stat is this artifact's failure, not the run's.
        let found = match parent.stat(n) {
            Ok(found) => found,
            Err(e) => return Ok(failed(format!("cannot stat {}: {e}", f.path))),
        };
        if let Some(idn) = found
            && idn.device == f.device
            && idn.inode == f.inode
        {
            current = Some((n.clone(), idn));
            break;
        }
    }
    let Some((name, now)) = current else {
        if st.removed || (started && verified_all(ctx, st)) {
            // Unlinked before the crash; prove absence below.
            return confirm_gone(ctx, &parent, &names, id, f);
        }
        if parent.stat(&parent.name).ok().flatten().is_some() {
            return Ok(changed("a different file now has this name"));
        }
        return Ok(if started {
            failed("vanished before its disposal was verified")
        } else {
            changed("no longer exists")
        });
    };
    // Re-identify: all of it before we start; after a crash our own writes
    // changed mtime/ctime, so device, inode, size and link count.
    if !started {
        if let Some(d) = describe_change(f, &now) {
            return Ok(changed(d));
        }
    } else {
        // Our own truncate may have run before the crash, once verified.
        let size_ok = now.size == f.size || (now.size == 0 && verified_all(ctx, st));
        if now.kind != Kind::File || !size_ok || now.nlink != f.nlink {
            return Ok(failed("changed during an interrupted run"));
        }
    }
    let file = match parent.open_file(&name, true) {
        Ok(h) => h,
        Err(e) => {
            return Ok(if started {
                failed(e.to_string())
            } else {
                changed(e.to_string())
            });
        }
    };
    // The check that counts: on the open handle, not the name.
    let handle_id = match rustix::fs::fstat(&file) {
        Ok(st) => crate::localfs::identity(&st),
        Err(e) => return Ok(failed(format!("cannot stat {}: {e}", f.path))),
    };
    if handle_id.device != f.device || handle_id.inode != f.inode || handle_id.kind != Kind::File {
        return Ok(changed(
            "the opened file is not the approved one (swapped while opening)",
        ));
    }
    let display = parent.dir_path.join(&name);
    if !started {
        if ctx.profile.rehash {
            let (sha, _) = crate::hash::hash_reader(&file, Some(ctx.cancel), |_| {})
                .map_err(|e| Error::io(&display, e))?;
            if sha != f.sha256 {
                return Ok(changed(format!(
                    "content SHA-256 {sha} differs from the approved {}",
                    f.sha256
                )));
            }
        }
        ctx.append(Event::ArtifactStarted { id })?;
    }

    // Overwrite passes, continuing after the ones already journaled.
    let passes = ctx.profile.passes.clone();
    let first = st.passes_done() as usize;
    for (i, pass) in passes.iter().enumerate() {
        let n = i as u32 + 1;
        let verify = ctx.profile.verifies(i);
        let written = if i < first {
            st.written(n).and_then(|p| p.written_sha256.clone())
        } else {
            let w = super::overwrite::write_pass(
                &file,
                &display,
                f.size,
                *pass,
                ctx.profile.block_size(),
                verify,
                ctx.cancel,
                ctx.progress,
            )?;
            ctx.append(Event::Pass {
                id,
                pass: n,
                pattern: pass.to_string(),
                bytes: f.size,
                written_sha256: w.clone(),
            })?;
            w
        };
        if verify {
            if i < first && st.readback(n).is_some_and(|r| r.ok) {
                continue;
            }
            let Some(written) = written else {
                return Ok(failed(format!(
                    "pass {n} has no recorded hash to verify against"
                )));
            };
            let (readback, via) =
                super::overwrite::read_back(&file, &display, f.size, ctx.cancel, ctx.progress)?;
            let ok = readback == written;
            ctx.append(Event::ReadBack {
                id,
                pass: n,
                written_sha256: written.clone(),
                readback_sha256: readback.clone(),
                ok,
                via: Some(via),
            })?;
            if !ok {
                return Ok(failed(format!(
                    "read-back of pass {n} gave {readback}, but {written} was written; file left in place"
                )));
            }
        }
    }
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }

    // Rename to random names, truncate, unlink, fsync the directory.
    let mut cur = name;
    let done_renames = st.renames.len() as u32;
    for _ in done_renames..ctx.profile.renames {
        let to = OsString::from(crate::util::random_hex(8));
        ctx.append(Event::Renaming {
            id,
            from: cur.to_string_lossy().into_owned(),
            to: to.to_string_lossy().into_owned(),
        })?;
        if let Err(e) = parent.rename(&cur, &to) {
            return Ok(failed(format!("rename failed: {e}")));
        }
        cur = to;
    }
    if let Err(e) = file.set_len(0).and_then(|_| file.sync_all()) {
        return Ok(failed(format!("truncate failed: {e}")));
    }
    drop(file);
    if let Err(e) = parent.unlink(&cur) {
        return Ok(failed(format!("unlink failed: {e}")));
    }
    parent.sync()?;
    ctx.append(Event::Removed { id })?;
    names.push(cur);
    confirm_gone(ctx, &parent, &names, id, f)
}

/// Are all verified passes of the profile recorded as verified?
fn verified_all(ctx: &Ctx, st: &ArtifactState) -> bool {
    (0..ctx.profile.passes.len())
        .all(|i| !ctx.profile.verifies(i) || st.readback(i as u32 + 1).is_some_and(|r| r.ok))
        && st.passes_done() as usize == ctx.profile.passes.len()
}

/// Absence proof: none of the names the file had holds its inode.
fn confirm_gone(
    ctx: &Ctx,
    parent: &Parent,
    names: &[OsString],
    id: u32,
    f: &LocalFile,
) -> Result<Done> {
    for n in names {
        if let Some(idn) = parent.stat(n)?
            && idn.device == f.device
            && idn.inode == f.inode
        {
            return Ok(failed(format!(
                "still present as {}",
                parent.dir_path.join(n).display()
            )));
        }
    }
    let _ = (ctx, id);
    Ok((Outcome::Disposed, None))
}

/// Remove a symbolic link (never following it).
pub fn symlink(
    ctx: &Ctx,
    anchor: &Anchor,
    loc: &LocalRoot,
    id: u32,
    l: &LocalLink,
    st: &ArtifactState,
) -> Result<Done> {
    let started = st.started.is_some();
    let parent = match open_parent(anchor, loc, &l.path, started) {
        Ok(p) => p,
        Err(done) => return Ok(done),
    };
    let name = parent.name.clone();
    match parent.stat(&name)? {
        None if started => return Ok((Outcome::Disposed, None)),
        None => return Ok(changed("no longer exists")),
        Some(now) => {
            if now.kind != Kind::Symlink || now.device != l.device || now.inode != l.inode {
                return Ok(changed("is no longer the approved symbolic link"));
            }
            if parent.readlink(&name)? != OsStr::new(&l.target) {
                return Ok(changed("points somewhere else than when approved"));
            }
        }
    }
    if !started {
        ctx.append(Event::ArtifactStarted { id })?;
    }
    if let Err(e) = parent.unlink(&name) {
        return Ok(failed(format!("unlink failed: {e}")));
    }
    parent.sync()?;
    ctx.append(Event::Removed { id })?;
    Ok(match parent.stat(&name)? {
        Some(_) => failed("still present after unlink"),
        None => (Outcome::Disposed, None),
    })
}

/// Remove a directory that the plan expects to be empty by now.
pub fn dir(
    ctx: &Ctx,
    anchor: &Anchor,
    loc: &LocalRoot,
    id: u32,
    d: &LocalDir,
    st: &ArtifactState,
) -> Result<Done> {
    let started = st.started.is_some();
    let parent = match open_parent(anchor, loc, &d.path, started) {
        Ok(p) => p,
        Err(done) => return Ok(done),
    };
    let name = parent.name.clone();
    match parent.stat(&name)? {
        None if started => return Ok((Outcome::Disposed, None)),
        None => return Ok(changed("no longer exists")),
        Some(now) if now.kind != Kind::Dir || now.device != d.device || now.inode != d.inode => {
            return Ok(changed("is no longer the approved directory"));
        }
        Some(_) => {}
    }
    if !started {
        ctx.append(Event::ArtifactStarted { id })?;
    }
    if let Err(e) = parent.rmdir(&name) {
        return Ok(failed(format!(
            "not removed: {e} (it holds something outside the plan, or a planned artifact that was not disposed)"
        )));
    }
    parent.sync()?;
    ctx.append(Event::Removed { id })?;
    Ok(match parent.stat(&name)? {
        Some(_) => failed("still present after rmdir"),
        None => (Outcome::Disposed, None),
    })
}
