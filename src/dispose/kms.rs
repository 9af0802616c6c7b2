//! Cryptographic erase of an approved KMS key, after its location's purge.
//! The first run schedules the deletion (with the approved waiting period)
//! and leaves the artifact **pending**; every later `execute --resume` asks
//! KMS again: still pending deletion → pending; gone → the proof is
//! journaled and the artifact disposed (the certificate then records the
//! versions it encrypted as purged by cryptographic erase); anything else
//! (someone cancelled the deletion) → failed, saying so.

use super::Ctx;
use super::lifecycle::outcome;
use crate::error::Result;
use crate::journal::{ArtifactState, Event, Outcome};
use crate::plan::{Artifact, KmsKey};
use crate::s3::{S3, kms};

pub fn key(
    ctx: &Ctx,
    s3: &S3,
    a: &Artifact,
    k: &KmsKey,
    st: &ArtifactState,
    scheduled: bool,
) -> Result<()> {
    if st.started.is_none() {
        ctx.append(Event::Started { ids: vec![a.id] })?;
    }
    let info = match kms::describe_key(s3, &k.key_arn) {
        Ok(i) => i,
        Err(e) => return outcome(ctx, a, Outcome::Failed, e),
    };
    match info {
        None => {
            ctx.append(Event::KmsKeyGone {
                id: a.id,
                key_arn: k.key_arn.clone(),
            })?;
            outcome(ctx, a, Outcome::Disposed, None)
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
            outcome(
                ctx,
                a,
                Outcome::Pending,
                format!("KMS deletes the key on {when}; run execute --resume after that"),
            )
        }
        Some(i) if scheduled => outcome(
            ctx,
            a,
            Outcome::Failed,
            format!(
                "the key's deletion was cancelled: KMS reports it {}, so it and the data it encrypts can still be read",
                i.state
            ),
        ),
        Some(_) => match kms::schedule_deletion(s3, &k.key_arn, k.window_days) {
            Err(e) => outcome(ctx, a, Outcome::Failed, e),
            Ok(when) => {
                ctx.append(Event::KmsDeletionScheduled {
                    id: a.id,
                    key_arn: k.key_arn.clone(),
                    deletion_date: when.clone(),
                })?;
                outcome(
                    ctx,
                    a,
                    Outcome::Pending,
                    format!(
                        "deletion scheduled: KMS deletes the key on {when} ({}-day waiting period); run execute --resume after that",
                        k.window_days
                    ),
                )
            }
        },
    }
}
