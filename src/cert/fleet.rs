//! The fleet certificate: one certificate for a plan executed host by host.
//!
//! `decom collect` reads the part certificates that `execute --host` wrote
//! on each host, one at a time, and accepts a part only when its operator's
//! signature matches its exact bytes, it was made from this approved plan
//! (by SHA-256), it is consistent, and it covers exactly its host's
//! locations (and the S3 locations, for the one part run with `--s3`). The
//! fleet certificate references each accepted part by path and SHA-256
//! (copied into `parts/` beside it) and states **coverage**: every host of
//! the plan reported once and the S3 locations were done once, or which
//! host is missing and why a part was rejected. A fleet certificate with
//! incomplete coverage is itself incomplete. `decom verify` checks the
//! whole chain: the fleet certificate's signatures, then every part's.

use super::{Certificate, LocationSummary, Party, Status, Totals};
use crate::error::{Error, Result};
use crate::plan::{ArtifactIds, Part, Plan};
use crate::sign::{self, AllowedSigners, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The folder, beside the fleet certificate, that holds the parts.
pub const PARTS_DIR: &str = "parts";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Every host of the plan, in the plan's order.
    pub hosts: Vec<FleetHost>,
    pub coverage: Coverage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetHost {
    pub host: String,
    /// The host's accepted part; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartRef>,
}

/// A part certificate, as the fleet certificate vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRef {
    /// Relative to the fleet certificate's folder.
    pub file: String,
    pub sha256: String,
    pub id: String,
    pub status: Status,
    /// Whether this part also did the plan's S3 locations.
    pub s3: bool,
    pub operator: Party,
    pub issued: String,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Every host reported exactly once and the S3 locations were done once.
    pub complete: bool,
    pub hosts: u64,
    pub reported: u64,
    /// Every reason coverage is not complete, each naming its host or part.
    pub problems: Vec<String>,
}

/// The fleet certificate's status: incomplete coverage makes it
/// incomplete; otherwise the parts' statuses decide, the worst winning.
pub fn status_of(f: &Fleet) -> Status {
    if !f.coverage.complete {
        return Status::Incomplete;
    }
    let st: Vec<Status> = f
        .hosts
        .iter()
        .filter_map(|h| h.part.as_ref().map(|p| p.status))
        .collect();
    if st.iter().all(|s| *s == Status::NothingFound) {
        Status::NothingFound
    } else if st.contains(&Status::Incomplete) {
        Status::Incomplete
    } else if st.contains(&Status::Pending) {
        Status::Pending
    } else {
        Status::Complete
    }
}

/// Sum of the parts' totals.
fn totals_of(f: &Fleet) -> Totals {
    let mut t = Totals::default();
    for p in f.hosts.iter().filter_map(|h| h.part.as_ref()) {
        add(&mut t, &p.totals);
    }
    t
}

fn add(t: &mut Totals, more: &Totals) {
    t.artifacts += more.artifacts;
    t.bytes += more.bytes;
    for (k, c) in &more.by_outcome {
        let e = t.by_outcome.entry(k.clone()).or_default();
        e.artifacts += c.artifacts;
        e.bytes += c.bytes;
    }
}

/// Internal consistency of a fleet certificate (`Certificate::check`).
pub(super) fn check(cert: &Certificate, f: &Fleet) -> Vec<String> {
    let mut problems = Vec::new();
    if !cert.artifacts.is_empty() {
        problems.push("a fleet certificate lists its artifacts in its parts, not itself".into());
    }
    if totals_of(f) != cert.totals {
        problems.push("totals are not the sum of the parts' totals".into());
    }
    let reported = f.hosts.iter().filter(|h| h.part.is_some()).count() as u64;
    let complete = f.coverage.problems.is_empty() && reported == f.hosts.len() as u64;
    if f.coverage.complete != complete
        || f.coverage.reported != reported
        || f.coverage.hosts != f.hosts.len() as u64
    {
        problems.push("coverage does not follow from the hosts and problems listed".into());
    }
    if status_of(f) != cert.status {
        problems.push(format!(
            "status {:?} does not follow from the parts and coverage",
            cert.status
        ));
    }
    problems
}

/// A part accepted by [`check_part`].
struct Accepted {
    cert: Certificate,
    part: Part,
    bytes: Vec<u8>,
    sig: Vec<u8>,
    operator: Party,
}

/// Where each location's artifacts are, for coverage checks.
struct PlanIndex<'p> {
    plan: &'p Plan<ArtifactIds>,
    hosts: std::collections::HashSet<&'p str>,
    ids: HashMap<u32, Vec<u32>>,
}

impl<'p> PlanIndex<'p> {
    fn new(plan: &'p Plan<ArtifactIds>) -> Self {
        let mut ids: HashMap<u32, Vec<u32>> = HashMap::new();
        for (id, location) in &plan.artifacts.0 {
            ids.entry(*location).or_default().push(*id);
        }
        PlanIndex {
            plan,
            hosts: plan.local_hosts().into_iter().collect(),
            ids,
        }
    }

    /// The locations and artifact ids a run of `part` must cover.
    fn covered(&self, part: &Part) -> (Vec<u32>, Vec<u32>) {
        let locs: Vec<u32> = self
            .plan
            .locations
            .iter()
            .filter(|l| part.covers(l))
            .map(|l| l.index)
            .collect();
        let mut ids: Vec<u32> = locs
            .iter()
            .flat_map(|l| self.ids.get(l).into_iter().flatten().copied())
            .collect();
        ids.sort_unstable();
        (locs, ids)
    }
}

/// Check one part against the approved plan. `Err` says why it is
/// rejected, naming the file (and its host when it has one).
fn check_part(
    idx: &PlanIndex<'_>,
    (plan_sha256, approvals): (&str, &[sign::Signer]),
    path: &Path,
    signers: &AllowedSigners,
) -> Result<Accepted, String> {
    let name = path.display();
    let bytes = crate::util::read_input(path, "part certificate", super::MAX_CERT)
        .map_err(|e| e.to_string())?;
    let cert = Certificate::parse(&bytes, &name.to_string()).map_err(|e| e.to_string())?;
    let at = sign::unix(&cert.issued).map_err(|e| format!("{name}: {e}"))?;
    let sig = sign::read_sig(path, Role::Operator).map_err(|m| format!("{name}: {m}"))?;
    let signer = sign::verify_file(
        path,
        &bytes,
        signers,
        Role::Operator,
        Some(&cert.operator.principal),
        at,
    )
    .map_err(|m| format!("{name}: operator signature: {m}"))?;
    if signer.key_fingerprint != cert.operator.key_fingerprint {
        return Err(format!(
            "{name}: signed by {}, but it names operator key {}",
            signer.key_fingerprint, cert.operator.key_fingerprint
        ));
    }
    sign::two_person(&signer, approvals).map_err(|m| format!("{name}: {m}"))?;
    let Some(of) = &cert.part else {
        return Err(format!(
            "{name}: not a host's part (written by execute without --host)"
        ));
    };
    let host = &of.host;
    if cert.plan.sha256 != plan_sha256 {
        return Err(format!(
            "{name} (host {host}): made from another plan (SHA-256 {}, this plan is {plan_sha256})",
            cert.plan.sha256
        ));
    }
    if cert.fleet.is_some() {
        return Err(format!("{name}: a fleet certificate, not a part"));
    }
    let problems = cert.check();
    if !problems.is_empty() {
        return Err(format!(
            "{name} (host {host}): inconsistent: {}",
            problems.join("; ")
        ));
    }
    let known = idx.hosts.contains(host.as_str());
    if !(known || of.s3 && idx.plan.has_s3()) {
        return Err(format!(
            "{name}: claims host {host}, which the plan does not have"
        ));
    }
    let part = Part {
        host: host.clone(),
        s3: of.s3,
    };
    let (locs, ids) = idx.covered(&part);
    let summarised: Vec<u32> = cert.locations.iter().map(|l| l.index).collect();
    for claimed in of.locations.iter().chain(&summarised) {
        if !locs.contains(claimed) {
            let l = idx
                .plan
                .locations
                .iter()
                .find(|l| l.index == *claimed)
                .map(|l| match &l.host {
                    Some(h) => format!("{} of host {h}", l.uri),
                    None if l.s3().is_some() => format!("{} (S3, not in this part)", l.uri),
                    None => l.uri.clone(),
                })
                .unwrap_or_else(|| "which the plan does not have".to_string());
            return Err(format!(
                "{name} (host {host}): overreaches: claims location {claimed} ({l})"
            ));
        }
    }
    let mut got: Vec<u32> = cert.artifacts.iter().map(|a| a.id).collect();
    got.sort_unstable();
    if of.locations != locs || summarised != locs || got != ids {
        return Err(format!(
            "{name} (host {host}): does not cover exactly its host's locations and artifacts ({} location(s) and {} artifact(s) expected, {} and {} found)",
            locs.len(),
            ids.len(),
            of.locations.len(),
            got.len()
        ));
    }
    let operator = Party {
        principal: signer.principal,
        key_fingerprint: signer.key_fingerprint,
        details: cert.operator.details.clone(),
    };
    Ok(Accepted {
        cert,
        part,
        bytes,
        sig,
        operator,
    })
}

/// What `collect` needs.
pub struct CollectInputs<'a> {
    pub plan: &'a crate::plan::approved::SignedPlan<ArtifactIds>,
    pub parts: &'a [PathBuf],
    /// Where the fleet certificate goes; the parts are copied into
    /// `parts/` beside it.
    pub certificate: &'a Path,
    pub signers: &'a AllowedSigners,
    pub operator: Party,
}

/// Check every part and build the fleet certificate (not yet written or
/// signed). Parts are read one at a time; each accepted part is copied
/// (with its operator signature) into `parts/` beside the certificate.
pub fn collect(inp: CollectInputs<'_>) -> Result<Certificate> {
    let plan = &inp.plan.plan;
    let mut g = Gathered::default();
    g.read_parts(&inp)?;
    g.drop_doubled_hosts(plan);
    let mut locations = std::mem::take(&mut g.locations);
    locations.sort_by_key(|l| l.index);
    let (started, finished) = (g.started.take(), g.finished.take());
    let mut methods = super::standards::Methods::default();
    g.methods_of.values().for_each(|rows| methods.merge(rows));
    let fleet = g.fleet(plan);
    let now = crate::util::now_rfc3339();
    let custodian = Party::custodians(&inp.plan.approvals, plan.manifest.custodian.as_ref());
    let nist = fleet_nist(
        plan,
        g.nist.take(),
        (&g.methods, &g.performers),
        &inp.operator,
        &custodian,
    );
    Ok(Certificate {
        schema: super::CERT_SCHEMA.into(),
        id: format!("decom-{}", crate::util::random_hex(16)),
        status: status_of(&fleet),
        tool: crate::plan::Tool::this(),
        host: crate::util::hostname(),
        issued: now.clone(),
        started: started.unwrap_or_else(|| now.clone()),
        finished: finished.unwrap_or(now),
        model: plan.model.clone(),
        components: plan.components.clone(),
        plan: super::PlanRef {
            file: inp.plan.file_name.clone(),
            sha256: inp.plan.sha256.clone(),
            created: plan.created.clone(),
            manifest_sha256: plan.manifest_sha256.clone(),
            profile: plan.profile.clone(),
            approvals: inp
                .plan
                .approvals
                .iter()
                .map(|s| Party::new(s, Default::default()))
                .collect(),
        },
        operator: inp.operator,
        custodian,
        nist_sp_800_88: nist,
        sanitization: methods.rows(),
        standards: super::standards::references(),
        retained: plan
            .retained
            .iter()
            .map(|r| {
                super::RetainedRecord::unchecked(
                    r,
                    "not looked at by the collection; verify --recheck on its host looks",
                )
            })
            .collect(),
        residual_risks: plan.residual_risks.clone(),
        part: None,
        totals: totals_of(&fleet),
        fleet: Some(fleet),
        locations,
        artifacts: Vec::new(),
    })
}

/// What the parts read so far add up to.
#[derive(Default)]
struct Gathered {
    problems: Vec<String>,
    by_host: BTreeMap<String, Vec<PathBuf>>,
    accepted: HashMap<String, PartRef>,
    locations: Vec<LocationSummary>,
    nist: Option<super::Nist>,
    started: Option<String>,
    finished: Option<String>,
    methods: Vec<String>,
    performers: Vec<String>,
    /// The hosts whose parts purged the remote locations.
    s3_by: Vec<String>,
    /// Each accepted part's sanitization rows, by host.
    methods_of: HashMap<String, Vec<super::standards::Sanitized>>,
}

impl Gathered {
    /// Check each part; copy the first good one of each host into
    /// `parts/` and take what it reports.
    fn read_parts(&mut self, inp: &CollectInputs<'_>) -> Result<()> {
        let idx = PlanIndex::new(&inp.plan.plan);
        let dir = super::files::RunFiles::of_certificate(inp.certificate)
            .folder()
            .to_path_buf();
        let parts_dir = dir.join(PARTS_DIR);
        for path in inp.parts {
            let a = match check_part(
                &idx,
                (&inp.plan.sha256, &inp.plan.approvals),
                path,
                inp.signers,
            ) {
                Ok(a) => a,
                Err(why) => {
                    self.problems.push(format!("rejected: {why}"));
                    continue;
                }
            };
            let host = a.part.host.clone();
            self.by_host
                .entry(host.clone())
                .or_default()
                .push(path.clone());
            if self.by_host[&host].len() > 1 {
                continue;
            }
            std::fs::create_dir_all(&parts_dir).map_err(|e| Error::io(&parts_dir, e))?;
            let file = format!("{PARTS_DIR}/certificate.{host}.json");
            let dest = dir.join(&file);
            let same = dest
                .canonicalize()
                .ok()
                .is_some_and(|d| path.canonicalize().ok() == Some(d));
            if !same {
                crate::util::write_atomic_unsynced(&dest, &a.bytes)?;
                crate::util::write_atomic_unsynced(&sign::sig_path(&dest, Role::Operator), &a.sig)?;
            }
            self.take(a, host, file);
        }
        // The copies, durable at once before the certificate names them.
        if parts_dir.is_dir() {
            crate::util::sync_filesystem(&parts_dir)?;
        }
        Ok(())
    }

    /// An accepted part's methods, times, locations and reference.
    fn take(&mut self, a: Accepted, host: String, file: String) {
        if a.part.s3 {
            self.s3_by.push(host.clone());
        }
        for (list, v) in [
            (&mut self.methods, &a.cert.nist_sp_800_88.method_type),
            (&mut self.performers, &a.cert.nist_sp_800_88.performer),
        ] {
            if !list.contains(v) {
                list.push(v.clone());
            }
        }
        if self.started.as_ref().is_none_or(|s| a.cert.started < *s) {
            self.started = Some(a.cert.started.clone());
        }
        if self.finished.as_ref().is_none_or(|f| a.cert.finished > *f) {
            self.finished = Some(a.cert.finished.clone());
        }
        self.nist
            .get_or_insert_with(|| a.cert.nist_sp_800_88.clone());
        self.locations.extend(a.cert.locations.iter().cloned());
        self.accepted.insert(
            host,
            PartRef {
                file,
                sha256: crate::hash::sha256_hex(&a.bytes),
                id: a.cert.id.clone(),
                status: a.cert.status,
                s3: a.part.s3,
                operator: a.operator,
                issued: a.cert.issued.clone(),
                totals: a.cert.totals.clone(),
            },
        );
    }

    /// Two parts for one host: neither is trusted over the other.
    fn drop_doubled_hosts(&mut self, plan: &Plan<ArtifactIds>) {
        for (host, paths) in &self.by_host {
            if paths.len() < 2 {
                continue;
            }
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            self.problems.push(format!(
                "host {host}: {} parts ({}); keep only the one from its last run",
                paths.len(),
                names.join(", ")
            ));
            self.methods_of.remove(host);
            if let Some(p) = self.accepted.remove(host) {
                let part = Part {
                    host: host.clone(),
                    s3: p.s3,
                };
                self.locations
                    .retain(|l| !part.covers(plan.location(l.index)));
                self.s3_by.retain(|h| h != host);
            }
        }
    }

    /// The plan's hosts with their parts, and whether every host and the
    /// remote locations were reported once.
    fn fleet(&mut self, plan: &Plan<ArtifactIds>) -> Fleet {
        let mut hosts: Vec<FleetHost> = Vec::new();
        for h in plan.local_hosts() {
            let part = self.accepted.remove(h);
            if part.is_none() && self.by_host.get(h).is_none_or(|p| p.len() == 1) {
                self.problems
                    .push(format!("host {h}: no part reported (did it run?)"));
            }
            hosts.push(FleetHost {
                host: h.to_string(),
                part,
            });
        }
        // A part for S3 alone, from a host with no local locations.
        for (h, part) in self.accepted.drain() {
            hosts.push(FleetHost {
                host: h,
                part: Some(part),
            });
        }
        if plan.has_s3() {
            match self.s3_by.len() {
                1 => {}
                0 => self.problems.push(
                    "S3 locations: no part did them (run execute --host NAME --s3 on one host)"
                        .into(),
                ),
                _ => self.problems.push(format!(
                    "S3 locations: done by {} parts ({}); only one run may purge them",
                    self.s3_by.len(),
                    self.s3_by.join(", ")
                )),
            }
        }
        let reported = hosts.iter().filter(|h| h.part.is_some()).count() as u64;
        let problems = std::mem::take(&mut self.problems);
        Fleet {
            coverage: Coverage {
                complete: problems.is_empty() && reported == hosts.len() as u64,
                hosts: hosts.len() as u64,
                reported,
                problems,
            },
            hosts,
        }
    }
}

/// The Appendix G fields for the fleet: the first part's, with every
/// part's methods and performers, the custodian as validator and every
/// location as the media.
fn fleet_nist(
    plan: &Plan<ArtifactIds>,
    first: Option<super::Nist>,
    (methods, performers): (&[String], &[String]),
    operator: &Party,
    custodian: &Party,
) -> super::Nist {
    let mut nist = first
        .unwrap_or_else(|| super::nist_fields(plan, &super::Tally::default(), operator, custodian));
    if !methods.is_empty() {
        nist.method_type = methods.join("; ");
        nist.performer = performers.join("; ");
    }
    nist.validator = custodian.principal.clone();
    nist.media = plan
        .locations
        .iter()
        .map(|l| match &l.host {
            Some(h) => format!("{h}:{} ({})", l.uri, l.medium()),
            None => format!("{} ({})", l.uri, l.medium()),
        })
        .collect::<Vec<_>>()
        .join("; ");
    nist
}

/// `verify` of a fleet certificate: every accepted part is at its path
/// with its SHA-256, signed by its operator, made from the same plan, for
/// its host, and says what the fleet certificate says of it; and coverage
/// is complete. One part is read at a time.
pub fn verify_parts(
    cert_path: &Path,
    cert: &Certificate,
    signers: &AllowedSigners,
) -> Result<String, String> {
    let Some(f) = &cert.fleet else {
        return Ok("not a fleet certificate".into());
    };
    let dir = super::files::RunFiles::of_certificate(cert_path)
        .folder()
        .to_path_buf();
    let mut checked = 0;
    for h in &f.hosts {
        let Some(p) = &h.part else { continue };
        let path = dir.join(&p.file);
        if Path::new(&p.file)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "host {}: part path {:?} leaves the certificate's folder",
                h.host, p.file
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "host {}: cannot read its part {} ({e}); keep the {PARTS_DIR}/ folder with the fleet certificate",
                h.host,
                path.display()
            )
        })?;
        let sha = crate::hash::sha256_hex(&bytes);
        if sha != p.sha256 {
            return Err(format!(
                "host {}: {} has SHA-256 {sha}, but the fleet certificate vouches for {}",
                h.host,
                path.display(),
                p.sha256
            ));
        }
        let part =
            Certificate::parse(&bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
        let at = sign::unix(&part.issued).map_err(|e| e.to_string())?;
        let signer = sign::verify_file(
            &path,
            &bytes,
            signers,
            Role::Operator,
            Some(&p.operator.principal),
            at,
        )
        .map_err(|m| format!("host {}: part signature: {m}", h.host))?;
        let approvers: Vec<sign::Signer> = cert.plan.approvals.iter().map(Party::signer).collect();
        sign::two_person(&signer, &approvers).map_err(|m| format!("host {}: {m}", h.host))?;
        let of = part.part.as_ref();
        if signer.key_fingerprint != p.operator.key_fingerprint
            || part.plan.sha256 != cert.plan.sha256
            || of.map(|o| o.host.as_str()) != Some(h.host.as_str())
            || of.map(|o| o.s3) != Some(p.s3)
            || part.status != p.status
            || part.totals != p.totals
            || part.id != p.id
        {
            return Err(format!(
                "host {}: {} does not match what the fleet certificate says of it",
                h.host,
                path.display()
            ));
        }
        let problems = part.check();
        if !problems.is_empty() {
            return Err(format!(
                "host {}: part inconsistent: {}",
                h.host,
                problems.join("; ")
            ));
        }
        checked += 1;
    }
    if !f.coverage.complete {
        return Err(format!(
            "coverage incomplete ({} of {} host(s) reported): {}",
            f.coverage.reported,
            f.coverage.hosts,
            f.coverage.problems.join("; ")
        ));
    }
    Ok(format!(
        "{checked} part(s), one per host, each signed by its operator over its exact bytes and made from this plan"
    ))
}
