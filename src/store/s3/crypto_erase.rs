//! Cryptographic erase of an approved KMS key, after its location's purge.
//! The first run schedules the deletion (with the approved waiting period)
//! and leaves the artifact **pending**; every later `execute --resume` asks
//! KMS again: still pending deletion → pending; gone → the proof is
//! journaled and the artifact disposed (the certificate then records the
//! versions it encrypted as purged by cryptographic erase); anything else
//! (someone cancelled the deletion) → failed, saying so.
//!
//! Nothing is scheduled until every planned version under the key is
//! purged (a version kept under retention or a legal hold keeps the key:
//! destroying it would defeat the hold), and until trace's judgement
//! ([`kms::judge`]) holds again now: a key someone started using for other
//! objects since approval is not destroyed.

use crate::error::Result;
use crate::journal::{ArtifactState, Event, Outcome, Replay};
use crate::plan::spool::Spool;
use crate::plan::{Artifact, Item, KmsKey, S3Location};
use crate::store::Ctx;
use crate::store::s3::{S3, kms};
use std::collections::HashMap;

/// What execute asks again, right before scheduling a key's deletion; the
/// bucket is listed and HEADed once for all the location's keys.
pub struct Recheck<'p> {
    /// The plan's versions (of every location).
    spool: &'p Spool,
    loc: &'p S3Location,
    index: u32,
    /// Outcomes after this run's purge.
    outcomes: Replay<'static>,
    names: kms::Names,
    used: Option<(HashMap<String, u64>, Option<String>)>,
}

impl<'p> Recheck<'p> {
    pub fn new(
        spool: &'p Spool,
        (index, loc): (u32, &'p S3Location),
        outcomes: Replay<'static>,
    ) -> Self {
        Recheck {
            spool,
            loc,
            index,
            outcomes,
            names: kms::Names::default(),
            used: None,
        }
    }

    /// Why the key must not be destroyed now (with the outcome to record),
    /// or `None`.
    fn blocked(
        &mut self,
        s3: &S3,
        k: &KmsKey,
        info: &kms::KeyInfo,
    ) -> Result<Option<(Outcome, String)>, String> {
        let named: Vec<&str> = self
            .loc
            .kms_keys
            .iter()
            .filter(|f| f.key_arn == k.key_arn)
            .flat_map(|f| {
                f.named_as
                    .iter()
                    .map(String::as_str)
                    .chain([f.key_arn.as_str()])
            })
            .collect();
        let (mut held, mut left) = (0u64, 0u64);
        for a in self.spool.location(self.index) {
            let a = a.map_err(|e| e.to_string())?;
            let Item::S3Version(v) = &a.item else {
                continue;
            };
            if !v.kms_key_id.as_deref().is_some_and(|n| named.contains(&n)) {
                continue;
            }
            match self.outcomes.outcome(a.id).map(|o| o.0) {
                Some(Outcome::Disposed) => {}
                Some(Outcome::Retained) => held += 1,
                _ => left += 1,
            }
        }
        if held > 0 {
            return Ok(Some((
                Outcome::Retained,
                format!(
                    "not destroyed: it encrypts {held} planned version(s) kept under retention or a legal hold, and destroying it would defeat the hold"
                ),
            )));
        }
        if left > 0 {
            return Ok(Some((
                Outcome::Failed,
                format!(
                    "not scheduled: {left} planned version(s) under it are not purged yet; the key goes only after them (run execute --resume)"
                ),
            )));
        }
        if self.used.is_none() {
            let bucket = &self.loc.bucket;
            let used = kms::keys_in_bucket(s3, bucket, |_| true, &mut self.names)?;
            let default = kms::bucket_default(s3, bucket, &mut self.names)?;
            self.used = Some((used, default));
        }
        let (used, default) = self.used.as_ref().expect("filled above");
        let (aliases, _, grants) = kms::usage(s3, &info.key_id)?;
        let u = kms::Use {
            outside: used.get(&info.arn).copied().unwrap_or(0),
            held: 0,
            grants,
            bucket_default: default.as_deref() == Some(info.arn.as_str()),
            aliases,
        };
        Ok(kms::judge(info, &u, &self.loc.bucket).map(|why| {
            (
                Outcome::Failed,
                format!("no longer dedicated: {why}; not destroyed"),
            )
        }))
    }
}

pub fn key(
    ctx: &Ctx,
    s3: &S3,
    (a, k): (&Artifact, &KmsKey),
    st: &ArtifactState,
    scheduled: bool,
    recheck: &mut Recheck<'_>,
) -> Result<()> {
    if st.started.is_none() {
        ctx.append(Event::Started { ids: vec![a.id] })?;
    }
    let info = match kms::describe_key(s3, &k.key_arn) {
        Ok(i) => i,
        Err(e) => return ctx.outcome(a, Outcome::Failed, e),
    };
    match info {
        None => {
            ctx.append(Event::KmsKeyGone {
                id: a.id,
                key_arn: k.key_arn.clone(),
            })?;
            ctx.outcome(a, Outcome::Disposed, None)
        }
        Some(i) if i.state == "PendingDeletion" => {
            let when = i
                .deletion_date
                .unwrap_or_else(|| "a date KMS did not give".into());
            if !scheduled {
                // Scheduled by someone else since trace: the erase still
                // happens, and the journal says when KMS will do it.
                ctx.append(Event::KmsDeletionScheduled {
                    id: a.id,
                    key_arn: k.key_arn.clone(),
                    deletion_date: when.clone(),
                })?;
            }
            ctx.outcome(
                a,
                Outcome::Pending,
                format!("KMS deletes the key on {when}; run execute --resume after that"),
            )
        }
        Some(i) if scheduled => ctx.outcome(
            a,
            Outcome::Failed,
            format!(
                "the key's deletion was cancelled: KMS reports it {}, so it and the data it encrypts can still be read",
                i.state
            ),
        ),
        Some(i) => match recheck.blocked(s3, k, &i) {
            Err(e) => ctx.outcome(a, Outcome::Failed, e),
            Ok(Some((o, why))) => ctx.outcome(a, o, why),
            Ok(None) => schedule(ctx, s3, a, k),
        },
    }
}

fn schedule(ctx: &Ctx, s3: &S3, a: &Artifact, k: &KmsKey) -> Result<()> {
    match kms::schedule_deletion(s3, &k.key_arn, k.window_days) {
        Err(e) => ctx.outcome(a, Outcome::Failed, e),
        Ok(when) => {
            ctx.append(Event::KmsDeletionScheduled {
                id: a.id,
                key_arn: k.key_arn.clone(),
                deletion_date: when.clone(),
            })?;
            ctx.outcome(
                a,
                Outcome::Pending,
                format!(
                    "deletion scheduled: KMS deletes the key on {when} ({}-day waiting period); run execute --resume after that",
                    k.window_days
                ),
            )
        }
    }
}
