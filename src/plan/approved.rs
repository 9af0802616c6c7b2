//! An approved plan: the only value [`crate::dispose::execute`] accepts.
//!
//! Safety invariant 1 ("nothing is destroyed unless the exact plan bytes
//! carry a valid custodian signature") used to hold because the CLI called
//! things in the right order. It is now held by the type system: the fields
//! of [`Approved`] are private and its only constructor, [`Approved::verify`],
//! checks, in this order,
//!
//! 1. the custodian's signature over the exact bytes read from disk (before
//!    they are parsed, so a changed byte is a failed approval, not a JSON
//!    error), and that the trusted signers file allows that key as custodian;
//! 2. that the bytes are a valid plan ([`Plan::parse`]);
//! 3. that the operator's key may sign as operator for the given principal;
//! 4. the two-person rule ([`crate::sign::two_person`], its one copy);
//! 5. which part of the plan this run does (a fleet plan: one host's
//!    locations, [`super::fleet::choose`]), and
//! 6. that every local location of that part still leads to the root the
//!    custodian approved (no symlink swapped in above it since).
//!
//! Every failure is [`Error::Refused`] or [`Error::Input`]: nothing has been
//! touched yet.

use super::Plan;
use super::fleet::{HostChoice, Part};
use super::spool::{Parked, Spool, Spooled};
use crate::error::{Error, Result};
use crate::manifest::{Target, resolve_uri};
use crate::sign::{self, AllowedSigners, Role, Signer, SigningKey};
use std::path::Path;

/// A plan whose approval, operator and two-person rule have been verified.
///
/// Code outside the library names the type freely:
///
/// ```
/// fn dispose_of(_: &decom::plan::Approved) {}
/// ```
///
/// but cannot assemble one by hand (E0451: private fields):
///
/// ```compile_fail,E0451
/// // Outside this module an `Approved` cannot be assembled by hand:
/// fn forge(
///     plan: decom::plan::Plan,
///     spool: decom::plan::spool::Spool,
///     operator: decom::sign::Signer,
/// ) -> decom::plan::Approved {
///     decom::plan::Approved { plan, spool, sha256: String::new(), file_name: String::new(),
///         approvals: vec![], operator, part: None }
/// }
/// ```
#[derive(Debug)]
pub struct Approved {
    plan: Plan,
    spool: Spool,
    sha256: String,
    file_name: String,
    approvals: Vec<Signer>,
    operator: Signer,
    part: Option<Part>,
}

impl Approved {
    /// Verify everything execute relies on; see the module documentation.
    /// `at` is the time (Unix seconds) at which the signers file must allow
    /// both keys, normally now. `choice` says which host this run is; the
    /// plan kept is that host's part of a fleet plan.
    pub fn verify(
        plan_path: &Path,
        signers: &AllowedSigners,
        operator_key: &SigningKey,
        operator_principal: &str,
        at: i64,
        choice: &HostChoice,
    ) -> Result<Approved> {
        let origin = plan_path.display().to_string();
        let key = (operator_key, operator_principal);
        // A run that names its host holds only its part's artifacts: every
        // other one is parked on disk while the plan is read and checked.
        let (signed, parked, spool) = if choice.host.is_some() {
            let (signed, Parked { parked, spool }) =
                SignedPlan::<Parked>::read(plan_path, signers, key, at, |plan| {
                    plan.validate_with(&origin, plan.artifacts.in_id_order())
                })?
                .with_artifacts(Vec::new());
            signed.plan.check_hosts_of(
                &origin,
                parked.all().map(|a| a.map(std::borrow::Cow::Owned)),
            )?;
            (signed, Some(parked), spool)
        } else {
            let (signed, Spooled { held, spool }) =
                SignedPlan::<Spooled>::read(plan_path, signers, key, at, |plan| {
                    plan.validate_with(
                        &origin,
                        super::spool::in_id_order(&plan.artifacts.held, plan.artifacts.spool.all()),
                    )
                })?
                .with_artifacts(());
            let signed = signed.with_artifacts(held).0;
            signed.plan.check_hosts(&origin)?;
            (signed, None, spool)
        };
        let SignedPlan {
            mut plan,
            sha256,
            file_name,
            approvals,
            operator,
        } = signed;
        if plan.local_only {
            return Err(Error::refused(
                "the plan was traced with --local-only (its S3 locations are left out); execute the merged fleet plan",
            ));
        }
        let part = choice.part_of(&plan)?;
        let (plan, spool) = match &part {
            Some(p) => {
                let mut plan = plan.part(p)?;
                if let Some(parked) = &parked {
                    let kept = plan.locations.iter().map(|l| l.index).collect();
                    plan.artifacts = parked.keep(kept).all().collect::<Result<_>>()?;
                }
                let spool = spool.keep(plan.locations.iter().map(|l| l.index).collect());
                // The part's totals count its spooled items too.
                let mut totals = super::Totals::default();
                for a in super::spool::in_id_order(&plan.artifacts, spool.all()) {
                    totals.add(&a?.item);
                }
                plan.totals = totals;
                (plan, spool)
            }
            None => {
                if let Some(parked) = &parked {
                    plan.artifacts = parked.all().collect::<Result<_>>()?;
                }
                (plan, spool)
            }
        };
        check_locations(&plan)?;
        Ok(Approved {
            sha256,
            file_name,
            plan,
            spool,
            approvals,
            operator,
            part,
        })
    }

    /// The part of a fleet plan this run does (`None`: the whole plan).
    pub fn part(&self) -> Option<&Part> {
        self.part.as_ref()
    }

    /// The plan, holding every artifact but its S3 versions and delete
    /// markers: [`Approved::spool`] reads those from disk.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan's S3 versions and delete markers (of this run's part).
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// SHA-256 of the exact approved bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The plan's file name, as the certificate records it.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The custodians whose signatures over the plan were verified.
    pub fn approvals(&self) -> &[Signer] {
        &self.approvals
    }

    /// The operator whose role and key were verified.
    pub fn operator(&self) -> &Signer {
        &self.operator
    }
}

/// Steps 1 to 4 of [`Approved::verify`]: a plan the custodian approved and
/// an operator who may act on it, for work that destroys nothing (`decom
/// collect` signs a fleet certificate on a machine that holds none of the
/// plan's locations). It cannot reach `dispose`: only [`Approved`] can.
#[derive(Debug)]
pub struct SignedPlan<A = Vec<super::Artifact>> {
    pub plan: Plan<A>,
    /// SHA-256 of the exact approved bytes.
    pub sha256: String,
    pub file_name: String,
    pub approvals: Vec<Signer>,
    pub operator: Signer,
}

impl<A> SignedPlan<A> {
    /// The same signed plan holding `artifacts` instead; and what it held.
    fn with_artifacts<B>(self, artifacts: B) -> (SignedPlan<B>, A) {
        let (plan, held) = self.plan.with_artifacts(artifacts);
        let signed = SignedPlan {
            plan,
            sha256: self.sha256,
            file_name: self.file_name,
            approvals: self.approvals,
            operator: self.operator,
        };
        (signed, held)
    }
}

impl SignedPlan<super::ArtifactIds> {
    /// Steps 1 to 4 keeping only the artifacts' ids and locations
    /// (a fleet of a thousand hosts). The structural checks of
    /// [`Plan::validate`] are not repeated: execute ran them on every host.
    pub fn verify_ids(
        plan_path: &Path,
        signers: &AllowedSigners,
        operator_key: &SigningKey,
        operator_principal: &str,
        at: i64,
    ) -> Result<Self> {
        SignedPlan::read(
            plan_path,
            signers,
            (operator_key, operator_principal),
            at,
            |plan| {
                if plan.schema != super::PLAN_SCHEMA {
                    return Err(Error::input(format!(
                        "plan {}: schema {:?} is not {:?}",
                        plan_path.display(),
                        plan.schema,
                        super::PLAN_SCHEMA
                    )));
                }
                Ok(())
            },
        )
    }
}

/// Step 1 and 2 for every reader of an approved plan, never holding its
/// bytes: the custodian's approval is checked as the file streams by, then
/// the plan is parsed from the same open file while it is hashed again; a
/// file whose bytes differ between the two reads is refused. Returns the
/// plan (not yet validated), the SHA-256 of its bytes and the approval.
fn read_approved<A: serde::de::DeserializeOwned>(
    plan_path: &Path,
    signers: &AllowedSigners,
    at: i64,
) -> Result<(Plan<A>, String, Signer)> {
    let file = crate::util::open_input(plan_path, "plan", super::MAX_PLAN)?;
    let (approval, sha256) = sign::verify_file_streamed(
        plan_path,
        super::MAX_PLAN,
        signers,
        Role::Custodian,
        None,
        at,
    )
    .map_err(|m| Error::refused(format!("the plan is not approved: {m}")))?;
    let origin = plan_path.display();
    // The buffer sits outside the hash: the parser reads a byte at a time,
    // the hash sees whole blocks. The parser owns the buffer (std reads a
    // byte from an owned `BufReader` without a call through `Read`: a
    // fifth of the parse) and reads up to the end of the file: only
    // whitespace may follow the plan.
    let mut hashing = crate::hash::Hashing::new(file);
    let plan: Plan<A> =
        serde_json::from_reader(std::io::BufReader::with_capacity(1 << 16, &mut hashing))
            .map_err(|e| Error::input(format!("plan {origin}: not a valid decom plan: {e}")))?;
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| Error::io(plan_path, e))?;
    if hashing.hex() != sha256 {
        return Err(Error::refused(format!(
            "plan {origin} changed while it was read"
        )));
    }
    Ok((plan, sha256, approval))
}

impl<A: serde::de::DeserializeOwned> SignedPlan<A> {
    /// Steps 1 to 4: the custodian's approval ([`read_approved`]), the
    /// structural `check` of the plan read, the operator's key and role,
    /// and the two-person rule.
    fn read(
        plan_path: &Path,
        signers: &AllowedSigners,
        (operator_key, operator_principal): (&SigningKey, &str),
        at: i64,
        check: impl FnOnce(&Plan<A>) -> Result<()>,
    ) -> Result<Self> {
        let (plan, sha256, approval) = read_approved::<A>(plan_path, signers, at)?;
        check(&plan)?;
        let operator = sign::check_allowed(
            signers,
            operator_key,
            operator_principal,
            Role::Operator,
            at,
        )?;
        let approvals = vec![approval];
        sign::two_person(&operator, &approvals).map_err(Error::refused)?;
        Ok(SignedPlan {
            plan,
            sha256,
            file_name: plan_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            approvals,
            operator,
        })
    }
}

/// Each local location's URI must still lead to the root the custodian approved.
fn check_locations(plan: &Plan) -> Result<()> {
    for l in &plan.locations {
        let Some(root) = l.local() else { continue };
        let now = match resolve_uri(&l.uri, Path::new("/")) {
            Ok(Target::Local(p)) => p,
            Ok(_) => return Err(Error::refused(format!("location {} changed kind", l.uri))),
            Err(e) => {
                return Err(Error::refused(format!(
                    "location {} cannot be re-identified: {e}",
                    l.uri
                )));
            }
        };
        if now != Path::new(&root.root) {
            return Err(Error::refused(format!(
                "location {} now resolves to {}, but the plan was approved for {}",
                l.uri,
                now.display(),
                root.root
            )));
        }
    }
    Ok(())
}
