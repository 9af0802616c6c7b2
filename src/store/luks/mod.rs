//! LUKS2 volumes, erased whole by destroying their keyslots.

pub mod device;
pub mod dispose;

use super::{Disposing, Kind, Place, Preflight, Rechecking, Store, Tracing};
use crate::error::{Error, Result};
use crate::journal::{self, Event};
use crate::manifest::Target;
use crate::plan::{Item, PlanLocation, Risk, RiskKind};
use std::collections::HashSet;

/// The LUKS store: whole volumes on this host's block devices.
pub struct Luks;

impl Store for Luks {
    fn kind(&self) -> Kind {
        Kind::Luks
    }

    fn trace(&mut self, t: &mut Tracing<'_>, at: Place<'_>) -> Result<(PlanLocation, Vec<Risk>)> {
        let Target::Luks(dev) = at.target else {
            return Err(Error::input(format!("{}: not a LUKS location", at.loc.uri)));
        };
        let (pl, items, risks) = location(at.n, at.loc, dev)?;
        for item in items {
            t.hold(at.n, item);
        }
        Ok((pl, risks))
    }

    fn preflight(&mut self, p: &Preflight<'_>) -> Result<()> {
        // A volume already erased (on resume) needs no check.
        let mut erased = HashSet::new();
        if p.resume {
            let _ = journal::scan(p.journal, |r| {
                if let Event::LuksErased { id, .. } = r.event {
                    erased.insert(id);
                }
            });
        }
        dispose::preflight(p.plan, |id| erased.contains(&id))
    }

    fn dispose(&mut self, d: &Disposing<'_, '_>) -> Result<()> {
        for a in d.undecided(|i| matches!(i, Item::LuksKeyslots(_))) {
            let (Item::LuksKeyslots(l), crate::plan::Store::Luks(v)) =
                (&a.item, &d.plan.location(a.location).store)
            else {
                continue;
            };
            dispose::volume(d.ctx, a, v, l, &d.state(a.id))?;
        }
        Ok(())
    }

    fn recheck(&mut self, r: &mut Rechecking<'_>) -> Result<()> {
        // An erased volume must still have no keyslot (if it is there).
        for (pl, _) in r.locations(Kind::Luks) {
            let crate::plan::Store::Luks(v) = &pl.store else {
                continue;
            };
            let dev = std::path::Path::new(&v.device);
            if r.gone
                .iter()
                .any(|i| matches!(i, Item::LuksKeyslots(l) if l.uuid == v.uuid))
                && device::block_device(dev).is_ok()
                && let Ok((uuid, slots)) = device::header(dev)
                && uuid == v.uuid
                && !slots.is_empty()
            {
                r.found_again.push(format!(
                    "{}: the erased LUKS volume {uuid} has keyslot(s) again: {}",
                    pl.uri,
                    slots.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// A `luks://` location: the whole LUKS2 volume, one artifact (its
/// keyslots), disposed of by cryptographic erase. Refused when the device
/// is in use (mounted, mapped, claimed) or holds no LUKS2 volume.
fn location(
    index: u32,
    loc: &crate::manifest::Location,
    dev: &std::path::Path,
) -> Result<(crate::plan::PlanLocation, Vec<crate::plan::Item>, Vec<Risk>)> {
    use crate::plan::{Item, LuksKeyslots, LuksVolume, PlanLocation, Store};
    let v = device::inspect(dev)
        .map_err(|m| crate::error::Error::input(format!("location {}: {m}", loc.uri)))?;
    if loc.match_mode == crate::manifest::MatchMode::Hash
        || !loc.include.is_empty()
        || !loc.exclude.is_empty()
    {
        return Err(crate::error::Error::input(format!(
            "location {}: a LUKS volume is erased whole; it takes no match = \"hash\", include or exclude",
            loc.uri
        )));
    }
    let device = dev.display().to_string();
    let risks = vec![Risk {
        kind: RiskKind::LuksHeaderBackup,
        subject: loc.uri.clone(),
        detail: format!(
            "luksErase destroys the {} keyslot(s) on the device; a LUKS header backup (cryptsetup luksHeaderBackup) or an image of the volume made earlier still opens it with an old passphrase: find and destroy those too",
            v.keyslots.len()
        ),
    }];
    let pl = PlanLocation {
        index,
        uri: loc.uri.clone(),
        host: None,
        match_mode: loc.match_mode,
        store: Store::Luks(LuksVolume {
            device: device.clone(),
            rdev: v.rdev,
            uuid: v.uuid.clone(),
            size: v.size,
        }),
    };
    let item = Item::LuksKeyslots(LuksKeyslots {
        device,
        uuid: v.uuid,
        keyslots: v.keyslots,
        size: v.size,
    });
    Ok((pl, vec![item], risks))
}
