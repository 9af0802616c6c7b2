//! Disposing of one local artifact: re-identify it on an open handle, run the
//! profile's passes with read-back verification, rename, truncate, unlink,
//! fsync the directory, and prove the name is gone. Every step is journaled
//! before it is reported, and a resumed run continues from the journal.
//!
//! Everything goes through [`crate::localfs`] handles, so no symlink is ever
//! followed and nothing outside the location's root is reached.

use crate::error::{Error, Result};
use crate::journal::{ArtifactState, Event, Outcome};
use crate::localfs::{Anchor, Identity, Kind, Parent};
use crate::plan::{LocalDir, LocalFile, LocalLink, LocalRoot, relative_to};
use crate::store::Ctx;
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

/// A planned file found and opened, ready for its next step.
struct Opened<'f> {
    id: u32,
    f: &'f LocalFile,
    st: &'f ArtifactState,
    parent: Parent,
    /// Every name it has had: the approved one, then each rename.
    names: Vec<OsString>,
    /// Its name now.
    name: OsString,
    file: std::fs::File,
    display: std::path::PathBuf,
    /// The hash journaled for each pass (older journals), as far as known.
    written: Vec<Option<String>>,
    /// The stream of each pass, as far as known (a journaled seed).
    streams: Vec<Option<super::overwrite::Stream>>,
}

/// Find the file under its name (or the last name journaled), re-identify
/// it and open it: before it is started, everything the plan recorded
/// (and its content with `rehash`); after a crash, what our own writes
/// cannot have changed. `Err(done)` when it is settled already: changed,
/// gone, or unlinked before the crash (then absence is proven here).
fn open<'f>(
    ctx: &Ctx,
    anchor: &Anchor,
    loc: &LocalRoot,
    id: u32,
    f: &'f LocalFile,
    st: &'f ArtifactState,
) -> Result<std::result::Result<Opened<'f>, Done>> {
    let started = st.started.is_some();
    let parent = match open_parent(anchor, loc, &f.path, started) {
        Ok(p) => p,
        Err(done) => return Ok(Err(done)),
    };
    // Where is it now? Under its name, or under the last name we journaled.
    let mut names: Vec<OsString> = vec![parent.name.clone()];
    names.extend(st.renames.iter().map(|(_, to)| OsString::from(to)));
    let mut current: Option<(OsString, Identity)> = None;
    for n in names.iter().rev() {
        // A failed stat is this artifact's failure, not the run's.
        let found = match parent.stat(n) {
            Ok(found) => found,
            Err(e) => return Ok(Err(failed(format!("cannot stat {}: {e}", f.path)))),
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
            // Unlinked before the crash; prove absence.
            return confirm_gone(&parent, &names, f).map(Err);
        }
        if parent.stat(&parent.name).ok().flatten().is_some() {
            return Ok(Err(changed("a different file now has this name")));
        }
        return Ok(Err(if started {
            failed("vanished before its disposal was verified")
        } else {
            changed("no longer exists")
        }));
    };
    // Re-identify: all of it before we start; after a crash our own writes
    // changed mtime/ctime, so device, inode, size and link count.
    // Only the ctime moved (chmod, chown, chattr, an xattr): the content
    // is checked against the approved SHA-256 on the open handle below,
    // and the file goes on if it is the same bytes.
    let metadata_only = now.kind == Kind::File
        && (now.device, now.inode, now.size, now.nlink) == (f.device, f.inode, f.size, f.nlink)
        && now.mtime == f.mtime
        && now.ctime != f.ctime;
    if !started {
        if let Some(d) = describe_change(f, &now)
            && !metadata_only
        {
            return Ok(Err(changed(d)));
        }
    } else {
        // Our own truncate may have run before the crash, once verified.
        let size_ok = now.size == f.size || (now.size == 0 && verified_all(ctx, st));
        if now.kind != Kind::File || !size_ok || now.nlink != f.nlink {
            return Ok(Err(failed("changed during an interrupted run")));
        }
    }
    let file = match open_for_writing(&parent, &name, f, started) {
        Ok(h) => h,
        Err(done) => return Ok(Err(done)),
    };
    // The check that counts: on the open handle, not the name.
    let handle_id = match rustix::fs::fstat(&file) {
        Ok(st) => crate::localfs::identity(&st),
        Err(e) => return Ok(Err(failed(format!("cannot stat {}: {e}", f.path)))),
    };
    if handle_id.device != f.device || handle_id.inode != f.inode || handle_id.kind != Kind::File {
        return Ok(Err(changed(
            "the opened file is not the approved one (swapped while opening)",
        )));
    }
    let display = parent.dir_path.join(&name);
    if !started && (ctx.profile.rehash || metadata_only) {
        let (sha, _) = crate::hash::hash_reader(&file, Some(ctx.cancel), |_| {})
            .map_err(|e| Error::io(&display, e))?;
        if sha != f.sha256 {
            return Ok(Err(changed(format!(
                "content SHA-256 {sha} differs from the approved {}",
                f.sha256
            ))));
        }
    }
    let written = (1..=ctx.profile.passes.len() as u32)
        .map(|n| st.written(n).and_then(|p| p.written_sha256.clone()))
        .collect();
    let streams = ctx
        .profile
        .passes
        .iter()
        .zip(1..)
        .map(|(pass, n)| {
            st.written(n)
                .and_then(|p| super::overwrite::Stream::journaled(*pass, p.seed.as_deref()))
        })
        .collect();
    Ok(Ok(Opened {
        id,
        f,
        st,
        parent,
        names,
        name,
        file,
        display,
        written,
        streams,
    }))
}

/// Open the approved file for writing in place. A failure is the
/// artifact's outcome: still the approved file under its name yet not
/// writable (an immutable or append-only attribute, permissions) is a
/// failure that `--resume` tries again; anything else at the name now is
/// a change since approval.
fn open_for_writing(
    parent: &Parent,
    name: &OsStr,
    f: &LocalFile,
    started: bool,
) -> std::result::Result<std::fs::File, Done> {
    parent.open_file(name, true).map_err(|e| {
        let same = matches!(parent.stat(name), Ok(Some(again))
            if again.kind == Kind::File && again.device == f.device && again.inode == f.inode);
        if started || same {
            failed(format!(
                "cannot open it for writing: {e}; nothing was written (an immutable or append-only attribute, `lsattr`, also causes this)"
            ))
        } else {
            changed(e.to_string())
        }
    })
}

/// Make what was written to `files` durable: one fsync for a single file,
/// one `syncfs` of their filesystem for several (they share a device).
fn sync_data(files: &[Opened<'_>]) -> Result<()> {
    match files {
        [] => Ok(()),
        [one] => one.file.sync_all().map_err(|e| Error::io(&one.display, e)),
        [first, ..] => {
            rustix::fs::syncfs(&first.file).map_err(|e| Error::io(&first.display, e.into()))
        }
    }
}

/// Dispose of regular files of one device, all at once, step by step: the
/// started records in one group commit; each pass written to every file,
/// made durable together (one `syncfs`), then its records; every read-back,
/// then their records; the rename records, then the renames; truncate and
/// unlink, one fsync per directory, then the removed records. Each record
/// is on disk before the step that depends on it, so a crash anywhere
/// leaves every file in a state `open` and this function continue from,
/// exactly as for a file disposed of alone (a batch of one). Files
/// continue from their own journaled state (a resumed run).
pub fn files(
    ctx: &Ctx,
    anchor: &Anchor,
    loc: &LocalRoot,
    batch: &[(u32, &LocalFile, &ArtifactState)],
) -> Result<Vec<(u32, Done)>> {
    let mut done: Vec<(u32, Done)> = Vec::new();
    let mut open_files = open_all(ctx, anchor, loc, batch, &mut done)?;
    // Overwrite passes, each file continuing after the ones it journaled.
    for (i, pass) in ctx.profile.passes.clone().iter().enumerate() {
        write_pass(ctx, (i, *pass), &mut open_files)?;
        if ctx.profile.verifies(i) {
            open_files = read_back_pass(ctx, i, open_files, &mut done)?;
        }
    }
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    rename_rounds(ctx, &mut open_files, &mut done)?;
    remove(ctx, open_files, &mut done)?;
    Ok(done)
}

/// Open and re-identify every file of the batch (settling those that
/// cannot be) and journal the started ones in one record.
fn open_all<'f>(
    ctx: &Ctx,
    anchor: &Anchor,
    loc: &LocalRoot,
    batch: &[(u32, &'f LocalFile, &'f ArtifactState)],
    done: &mut Vec<(u32, Done)>,
) -> Result<Vec<Opened<'f>>> {
    let mut open_files: Vec<Opened<'_>> = Vec::new();
    for (id, f, st) in batch {
        match open(ctx, anchor, loc, *id, f, st)? {
            Ok(o) => open_files.push(o),
            Err(d) => done.push((*id, d)),
        }
    }
    ctx.append_all(
        open_files
            .iter()
            .filter(|o| o.st.started.is_none())
            .map(|o| Event::ArtifactStarted { id: o.id })
            .collect(),
    )?;
    Ok(open_files)
}

/// Write pass `i` to every file that has not journaled it, make the
/// writes durable together, then journal them.
fn write_pass(
    ctx: &Ctx,
    (i, pass): (usize, crate::profile::Pass),
    open_files: &mut [Opened<'_>],
) -> Result<()> {
    let n = i as u32 + 1;
    let mut records = Vec::new();
    let mut wrote = Vec::new();
    for (k, o) in open_files.iter_mut().enumerate() {
        if (i as u32) < o.st.passes_done() {
            continue;
        }
        let stream = super::overwrite::Stream::new(pass);
        super::overwrite::write_pass(
            &o.file,
            &o.display,
            o.f.size,
            &stream,
            ctx.profile.block_size(),
            false,
            ctx.cancel,
            ctx.progress,
        )?;
        records.push(Event::Pass {
            id: o.id,
            pass: n,
            pattern: pass.to_string(),
            bytes: o.f.size,
            written_sha256: None,
            generator: Some(stream.generator().to_string()),
            seed: stream.seed(),
        });
        o.streams[i] = Some(stream);
        wrote.push(k);
    }
    match wrote.as_slice() {
        [] => {}
        [k] => sync_data(std::slice::from_ref(&open_files[*k]))?,
        _ => sync_data(open_files)?,
    }
    ctx.append_all(records)
}

/// Read pass `i` back from every file and compare it with what was
/// written; the files that disagree are settled as failed, the others
/// returned.
fn read_back_pass<'f>(
    ctx: &Ctx,
    i: usize,
    mut open_files: Vec<Opened<'f>>,
    done: &mut Vec<(u32, Done)>,
) -> Result<Vec<Opened<'f>>> {
    let n = i as u32 + 1;
    let mut records = Vec::new();
    let mut keep = Vec::new();
    for o in open_files.drain(..) {
        if o.st.readback(n).is_some_and(|r| r.ok) && (i as u32) < o.st.passes_done() {
            keep.push(o);
            continue;
        }
        // The stream the pass wrote (from its journaled seed after a
        // crash): every byte is compared with it. A pass journaled
        // without one (an older journal) is judged by its hash.
        let stream = o.streams[i].clone();
        let legacy = o.written[i].clone();
        if stream.is_none() && legacy.is_none() {
            done.push((
                o.id,
                failed(format!(
                    "pass {n} has no recorded stream or hash to verify against"
                )),
            ));
            continue;
        }
        let rb = super::overwrite::read_back(
            &o.file,
            &o.display,
            o.f.size,
            stream.as_ref(),
            ctx.cancel,
            ctx.progress,
        )?;
        let (ok, written) = match (&stream, legacy) {
            (Some(s), _) => match rb.first_difference {
                None => (true, rb.sha256.clone()),
                Some(_) => (false, super::overwrite::stream_sha256(s, o.f.size)),
            },
            (None, Some(w)) => (rb.sha256 == w, w),
            (None, None) => unreachable!("checked above"),
        };
        let readback = rb.sha256.clone();
        records.push(Event::ReadBack {
            id: o.id,
            pass: n,
            written_sha256: written.clone(),
            readback_sha256: readback.clone(),
            ok,
            via: Some(rb.via),
            compared: stream.is_some().then(|| "bytes".to_string()),
        });
        if ok {
            keep.push(o);
        } else {
            done.push((
                o.id,
                failed(format!(
                    "read-back of pass {n} gave {readback}, but {written} was written; file left in place"
                )),
            ));
        }
    }
    ctx.append_all(records)?;
    Ok(keep)
}

/// Rename to random names, round by round: each name journaled before it
/// is taken.
fn rename_rounds(
    ctx: &Ctx,
    open_files: &mut Vec<Opened<'_>>,
    done: &mut Vec<(u32, Done)>,
) -> Result<()> {
    for round in 0..ctx.profile.renames as usize {
        let mut moves = Vec::new();
        for (k, o) in open_files.iter().enumerate() {
            if o.st.renames.len() > round {
                continue;
            }
            let to = OsString::from(crate::util::random_hex(8));
            moves.push((k, to));
        }
        ctx.append_all(
            moves
                .iter()
                .map(|(k, to)| Event::Renaming {
                    id: open_files[*k].id,
                    from: open_files[*k].name.to_string_lossy().into_owned(),
                    to: to.to_string_lossy().into_owned(),
                })
                .collect(),
        )?;
        let mut failed_at = Vec::new();
        for (k, to) in moves {
            let o = &mut open_files[k];
            if let Err(why) = rename_own(o, &to) {
                failed_at.push((k, why));
                continue;
            }
            o.names.push(to.clone());
            o.name = to;
        }
        settle(open_files, failed_at, done);
    }
    Ok(())
}

/// Truncate, durable together; unlink; one fsync per directory; then the
/// removed records, and the absence of every name each file had.
fn remove(ctx: &Ctx, mut open_files: Vec<Opened<'_>>, done: &mut Vec<(u32, Done)>) -> Result<()> {
    let mut failed_at = Vec::new();
    for (k, o) in open_files.iter().enumerate() {
        if let Err(e) = o.file.set_len(0) {
            failed_at.push((k, format!("truncate failed: {e}")));
        }
    }
    settle(&mut open_files, failed_at, done);
    if let Err(e) = sync_data(&open_files) {
        let failed_at = (0..open_files.len())
            .map(|k| (k, format!("truncate failed: {e}")))
            .collect();
        settle(&mut open_files, failed_at, done);
    }
    let mut failed_at = Vec::new();
    for (k, o) in open_files.iter().enumerate() {
        if let Err(why) = unlink_own(o) {
            failed_at.push((k, why));
        }
    }
    settle(&mut open_files, failed_at, done);
    let mut synced = std::collections::HashSet::new();
    for o in &open_files {
        if synced.insert(o.parent.dir_path.clone()) {
            o.parent.sync()?;
        }
    }
    ctx.append_all(
        open_files
            .iter()
            .map(|o| Event::Removed { id: o.id })
            .collect(),
    )?;
    for o in open_files {
        let gone = match confirm_gone(&o.parent, &o.names, o.f)? {
            (Outcome::Disposed, _) => names_left(&o).map_or_else(
                failed,
                |left| match left {
                    Some(n) => failed(format!(
                        "its inode still has {n} name(s) on the filesystem after the unlink (a name swapped or linked while disposing)"
                    )),
                    None => (Outcome::Disposed, None),
                },
            ),
            other => other,
        };
        done.push((o.id, gone));
    }
    Ok(())
}

/// Whether the open handle is the entry `name` holds now (same device and
/// inode, still a regular file). The check before and after every rename
/// and unlink: a name swapped for another entry is never acted on as ours.
fn holds_own(o: &Opened<'_>, name: &OsStr) -> Result<(), String> {
    match o.parent.stat(name) {
        Ok(Some(now))
            if now.kind == Kind::File && now.device == o.f.device && now.inode == o.f.inode =>
        {
            Ok(())
        }
        Ok(Some(_)) => Err(format!(
            "{} is no longer the approved file (its name was swapped while disposing); the overwrite was verified on the file decom held open, but its removal is not claimed",
            o.parent.dir_path.join(name).display()
        )),
        Ok(None) => Err(format!(
            "{} vanished while disposing (renamed or removed by someone else); the overwrite was verified on the file decom held open, but its removal is not claimed",
            o.parent.dir_path.join(name).display()
        )),
        Err(e) => Err(format!("cannot stat it: {e}")),
    }
}

/// Rename the file to `to` only if its name still holds it, and check
/// after the rename that `to` does. If what moved was not ours (swapped
/// between the check and the rename), it is put back where it was.
fn rename_own(o: &Opened<'_>, to: &OsStr) -> Result<(), String> {
    holds_own(o, &o.name)?;
    o.parent
        .rename(&o.name, to)
        .map_err(|e| format!("rename failed: {e}"))?;
    holds_own(o, to).inspect_err(|_| {
        let _ = o.parent.rename(to, &o.name);
    })
}

/// The number of names the open file's inode has, from the handle itself.
fn handle_links(o: &Opened<'_>) -> Result<u64, String> {
    rustix::fs::fstat(&o.file)
        .map(|st| crate::localfs::identity(&st).nlink)
        .map_err(|e| format!("cannot stat it: {e}"))
}

/// Unlink the file's name only if it still holds the file, and check on
/// the handle that the inode lost exactly that name: unlinking an entry
/// swapped in between the check and the unlink leaves the handle's link
/// count as it was, and fails.
fn unlink_own(o: &Opened<'_>) -> Result<(), String> {
    holds_own(o, &o.name)?;
    let before = handle_links(o)?;
    o.parent
        .unlink(&o.name)
        .map_err(|e| format!("unlink failed: {e}"))?;
    let after = handle_links(o)?;
    if after + 1 != before && !(links_unreliable(o) && unlinked_by_name(o)) {
        return Err(format!(
            "the entry unlinked was not the approved file (swapped while disposing): its inode had {before} name(s) and has {after}"
        ));
    }
    Ok(())
}

/// Network and userspace filesystems whose link count on an open handle
/// says nothing of the unlink: an NFS client renames an open file it
/// unlinks to `.nfsXXXX` until it is closed, so the handle keeps its
/// name. There the name check before and after is what decides.
fn links_unreliable(o: &Opened<'_>) -> bool {
    matches!(
        o.f.fs_type.as_str(),
        "nfs" | "nfs4" | "cifs" | "smb2" | "9p" | "afs" | "fuse"
    )
}

/// The name no longer holds the open file (gone, or something else).
fn unlinked_by_name(o: &Opened<'_>) -> bool {
    holds_own(o, &o.name).is_err()
}

/// After the unlink, how many names the inode keeps beyond the other
/// names the plan knows of (other hard links it records): `None` when it
/// is gone from every directory.
fn names_left(o: &Opened<'_>) -> Result<Option<u64>, String> {
    if links_unreliable(o) {
        // Judged by the names (confirm_gone) alone.
        return Ok(None);
    }
    let now = handle_links(o)?;
    let expected = o.f.nlink.saturating_sub(1);
    Ok((now > expected || (o.f.nlink <= 1 && now > 0)).then_some(now))
}

/// Take the files that failed a step out of the batch, with their reasons.
fn settle(
    open_files: &mut Vec<Opened<'_>>,
    failed_at: Vec<(usize, String)>,
    done: &mut Vec<(u32, Done)>,
) {
    for (k, why) in failed_at.into_iter().rev() {
        let o = open_files.remove(k);
        done.push((o.id, failed(why)));
    }
}

/// Are all verified passes of the profile recorded as verified?
fn verified_all(ctx: &Ctx, st: &ArtifactState) -> bool {
    (0..ctx.profile.passes.len())
        .all(|i| !ctx.profile.verifies(i) || st.readback(i as u32 + 1).is_some_and(|r| r.ok))
        && st.passes_done() as usize == ctx.profile.passes.len()
}

/// Absence proof: none of the names the file had holds its inode.
fn confirm_gone(parent: &Parent, names: &[OsString], f: &LocalFile) -> Result<Done> {
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
