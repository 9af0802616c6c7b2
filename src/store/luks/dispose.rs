//! Cryptographic erase of a LUKS2 volume: `cryptsetup luksErase` destroys
//! every keyslot, and with them the only copies of the volume key on the
//! device. Refused before anything is touched when the device is in use or
//! is no longer the approved volume ([`preflight`]); checked again right
//! before the erase; proven by a header that lists no keyslot.

use crate::error::{Error, Result};
use crate::journal::{ArtifactState, Event, Outcome};
use crate::plan::{Artifact, LuksKeyslots, LuksVolume, Plan, Store};
use crate::store::Ctx;
use crate::store::luks::device;
use std::path::Path;

/// The approved volume is still at its device (same device number and
/// UUID) and nothing holds it.
fn same_volume(v: &LuksVolume) -> std::result::Result<(), String> {
    let dev = Path::new(&v.device);
    let rdev = device::block_device(dev)?;
    if rdev != v.rdev {
        return Err(format!(
            "{} is another block device now (device number {rdev}, approved {})",
            v.device, v.rdev
        ));
    }
    device::not_in_use(dev)?;
    let (uuid, _) = device::header(dev)?;
    if uuid != v.uuid {
        return Err(format!(
            "{} holds LUKS volume {uuid} now, not the approved {}",
            v.device, v.uuid
        ));
    }
    Ok(())
}

/// Before the journal opens: every LUKS location not yet erased is its
/// approved volume and not in use (exit 2, nothing touched, otherwise).
pub fn preflight(plan: &Plan, done: impl Fn(u32) -> bool) -> Result<()> {
    for a in &plan.artifacts {
        if done(a.id) {
            continue;
        }
        if let Store::Luks(v) = &plan.location(a.location).store {
            same_volume(v).map_err(|m| Error::refused(format!("luks://{}: {m}", v.device)))?;
        }
    }
    Ok(())
}

pub fn volume(
    ctx: &Ctx,
    a: &Artifact,
    v: &LuksVolume,
    l: &LuksKeyslots,
    st: &ArtifactState,
) -> Result<()> {
    if let Err(m) = same_volume(v) {
        return ctx.outcome(a, Outcome::Failed, m);
    }
    if st.started.is_none() {
        ctx.append(Event::Started { ids: vec![a.id] })?;
    }
    let dev = Path::new(&l.device);
    if let Err(m) = device::erase(dev) {
        return ctx.outcome(a, Outcome::Failed, m);
    }
    match device::header(dev) {
        Ok((_, slots)) if slots.is_empty() => {
            ctx.append(Event::LuksErased {
                id: a.id,
                device: l.device.clone(),
                uuid: l.uuid.clone(),
                keyslots: l.keyslots.clone(),
            })?;
            ctx.outcome(a, Outcome::Disposed, None)
        }
        Ok((_, slots)) => ctx.outcome(
            a,
            Outcome::Failed,
            format!("keyslot(s) {} remain after luksErase", slots.join(", ")),
        ),
        Err(m) => ctx.outcome(
            a,
            Outcome::Failed,
            format!("cannot read the header back: {m}"),
        ),
    }
}
