//! Fleets: one approved plan for many hosts.
//!
//! Every host traces the same manifest (`trace --host`, by default the
//! hostname, recorded on each local location); [`merge`] joins the per-host
//! plans into one fleet plan, which the custodian approves once, like any
//! plan. Each host then executes its [`Part`]: its own local locations, and
//! the S3 locations on the one run asked to do them. [`Plan::part`] cuts the
//! approved plan down to that part, keeping the fleet's location indices
//! and artifact ids, so re-identification, journal, resume and certificate
//! are the single-host code. `cert::fleet` checks that every part covers
//! exactly its host and writes the fleet certificate.
//!
//! Host identity lives in two places only: `PlanLocation::host` (which
//! machine's disk a local location is on) and the [`Part`] a run executes.

use super::{Artifact, Item, Plan, PlanLocation, Totals};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What one execute run covers: one host's local locations and, when
/// `s3` is set, every bucket location of the plan (S3 and GCS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub host: String,
    pub s3: bool,
}

impl Part {
    /// Whether a run of this part covers the location.
    pub fn covers(&self, l: &PlanLocation) -> bool {
        if l.store.kind().remote() {
            self.s3
        } else {
            l.host.as_deref() == Some(self.host.as_str())
        }
    }
}

/// One host of a fleet plan: its locations and what they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostTotals {
    pub host: String,
    /// The indices of the host's locations.
    pub locations: Vec<u32>,
    pub totals: Totals,
}

/// A host name decom accepts: letters, digits, `.`, `-` and `_`, not
/// starting with `.` or `-`, at most 253 characters (DNS names and
/// inventory names fit; it becomes part of file names).
pub fn check_host_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host name {name:?} is not usable (letters, digits, '.', '-' and '_', not starting with '.' or '-')"
        ))
    }
}

/// Every location is one of the manifest's, of its kind, once per host
/// (local) or once (S3), and every host has every local location.
pub(super) fn check_locations<A>(plan: &Plan<A>) -> Result<(), String> {
    let mut seen: HashSet<(Option<&str>, &str)> = HashSet::new();
    let mut hosts: BTreeSet<Option<&str>> = BTreeSet::new();
    for (i, loc) in plan.locations.iter().enumerate() {
        let n = i + 1;
        if loc.index as usize != n {
            return Err(format!("location {n} has index {}", loc.index));
        }
        let Some(m) = plan.manifest.locations.iter().find(|m| m.uri == loc.uri) else {
            return Err(format!(
                "location {n} ({}) does not match its manifest (not one of its locations)",
                loc.uri
            ));
        };
        let remote = loc.store.kind().remote();
        if loc.store.kind() != crate::manifest::uri_kind(&m.uri) || loc.match_mode != m.match_mode {
            return Err(format!("location {n} does not match its manifest"));
        }
        if remote && loc.host.is_some() {
            return Err(format!(
                "location {n} is in a remote store but names a host"
            ));
        }
        if let Some(h) = &loc.host {
            check_host_name(h).map_err(|m| format!("location {n}: {m}"))?;
        }
        if !remote {
            hosts.insert(loc.host.as_deref());
        }
        if !seen.insert((loc.host.as_deref(), &loc.uri)) {
            return Err(match &loc.host {
                Some(h) => format!("location {} appears twice for host {h}", loc.uri),
                None => format!("location {} appears twice", loc.uri),
            });
        }
    }
    for m in &plan.manifest.locations {
        if crate::manifest::uri_kind(&m.uri).remote() {
            let here = seen.contains(&(None, m.uri.as_str()));
            if plan.local_only && here {
                return Err(format!(
                    "it is marked local-only but holds remote location {}",
                    m.uri
                ));
            }
            if !here && !plan.local_only {
                return Err(format!("the manifest's location {} is missing", m.uri));
            }
            continue;
        }
        if hosts.is_empty() {
            return Err(format!("the manifest's location {} is missing", m.uri));
        }
        for h in &hosts {
            if !seen.contains(&(*h, m.uri.as_str())) {
                return Err(format!(
                    "the manifest's location {} is missing{}",
                    m.uri,
                    h.map(|h| format!(" for host {h}")).unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

/// A fleet plan's host list agrees with its locations and artifacts.
pub(super) fn check_hosts<'a>(
    plan: &Plan,
    artifacts: impl Iterator<Item = crate::error::Result<std::borrow::Cow<'a, Artifact>>>,
) -> Result<(), String> {
    let named = plan.local_hosts();
    if plan.hosts.is_empty() {
        if named.len() > 1 {
            return Err(format!(
                "its locations are on {} hosts but it has no host list (plans for several hosts are made by decom plan merge)",
                named.len()
            ));
        }
        return Ok(());
    }
    let listed: Vec<&str> = plan.hosts.iter().map(|h| h.host.as_str()).collect();
    if listed != named {
        return Err(format!(
            "its host list ({}) does not match the hosts of its locations ({})",
            listed.join(", "),
            named.join(", ")
        ));
    }
    let mut per_host: HashMap<&str, Totals> = HashMap::new();
    for a in artifacts {
        let a = a.map_err(|e| e.to_string())?;
        if let Some(h) = plan.location(a.location).host.as_deref() {
            per_host.entry(h).or_default().add(&a.item);
        }
    }
    for h in &plan.hosts {
        let locations: Vec<u32> = plan
            .locations
            .iter()
            .filter(|l| l.host.as_deref() == Some(&h.host))
            .map(|l| l.index)
            .collect();
        if locations != h.locations {
            return Err(format!("host {}: its location list is wrong", h.host));
        }
        if per_host.remove(h.host.as_str()).unwrap_or_default() != h.totals {
            return Err(format!("host {}: its totals do not add up", h.host));
        }
    }
    Ok(())
}

impl<A> Plan<A> {
    /// The location with this index. In a whole plan it sits at `index - 1`;
    /// the part of a fleet plan one host executes keeps the fleet's indices.
    pub fn location(&self, index: u32) -> &PlanLocation {
        match self.locations.get(index as usize - 1) {
            Some(l) if l.index == index => l,
            _ => self
                .locations
                .iter()
                .find(|l| l.index == index)
                .expect("artifacts name locations of their plan"),
        }
    }

    /// The hosts of the local locations, in order of first appearance.
    pub fn local_hosts(&self) -> Vec<&str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: Vec<&str> = Vec::new();
        for l in &self.locations {
            if let (false, Some(h)) = (l.store.kind().remote(), l.host.as_deref())
                && seen.insert(h)
            {
                out.push(h);
            }
        }
        out
    }

    /// Whether the plan has bucket locations (S3 or GCS: no host's disk),
    /// which the run with `--s3` executes.
    pub fn has_s3(&self) -> bool {
        self.locations.iter().any(|l| l.store.kind().remote())
    }
}

impl Plan {
    /// The part of this plan that one run executes: the locations `part`
    /// covers and their artifacts, under the fleet's indices and ids.
    pub fn part(&self, part: &Part) -> Result<Plan> {
        let locations: Vec<PlanLocation> = self
            .locations
            .iter()
            .filter(|l| part.covers(l))
            .cloned()
            .collect();
        let local = locations.iter().any(|l| !l.store.kind().remote());
        if !(local || part.s3 && self.has_s3()) {
            return Err(Error::refused(format!(
                "the plan has no locations for host {:?} (its hosts: {}){}",
                part.host,
                list_or_none(&self.local_hosts()),
                if self.has_s3() && !part.s3 {
                    "; --s3 runs its bucket (S3 and GCS) locations"
                } else {
                    ""
                }
            )));
        }
        let kept: HashSet<u32> = locations.iter().map(|l| l.index).collect();
        let artifacts: Vec<Artifact> = self
            .artifacts
            .iter()
            .filter(|a| kept.contains(&a.location))
            .cloned()
            .collect();
        Ok(Plan {
            schema: self.schema.clone(),
            tool: self.tool.clone(),
            created: self.created.clone(),
            host: self.host.clone(),
            model: self.model.clone(),
            manifest_sha256: self.manifest_sha256.clone(),
            manifest: self.manifest.clone(),
            profile: self.profile.clone(),
            components: self.components.clone(),
            components_not_searched: self.components_not_searched.clone(),
            retained: self.retained.clone(),
            locations,
            residual_risks: self.residual_risks.clone(),
            local_only: self.local_only,
            hosts: self
                .hosts
                .iter()
                .filter(|h| h.host == part.host)
                .cloned()
                .collect(),
            totals: Totals::of(&artifacts),
            artifacts,
        })
    }
}

fn list_or_none(hosts: &[&str]) -> String {
    if hosts.is_empty() {
        "none".to_string()
    } else {
        hosts.join(", ")
    }
}

/// How an execute run was asked to pick its part of a plan.
#[derive(Debug, Clone)]
pub struct HostChoice {
    /// `--host NAME`.
    pub host: Option<String>,
    /// `--s3`: this run also does the S3 locations.
    pub s3: bool,
    /// `--override-hostname`: NAME is this machine under another name.
    pub override_hostname: bool,
    /// This machine's hostname.
    pub this_machine: String,
}

impl HostChoice {
    /// No `--host`: the whole plan, on the machine it was traced on.
    pub fn this_machine() -> HostChoice {
        HostChoice {
            host: None,
            s3: false,
            override_hostname: false,
            this_machine: crate::util::hostname(),
        }
    }

    /// The part of `plan` this run does ([`choose`]).
    pub fn part_of(&self, plan: &Plan) -> Result<Option<Part>> {
        choose(
            plan,
            self.host.as_deref(),
            self.s3,
            self.override_hostname,
            &self.this_machine,
        )
    }
}

/// Which part of `plan` an execute run on the machine named `this` does.
/// `None`: the whole plan, as on one machine (a plan whose local locations
/// are all on this host, or on no named host). Refused, before anything is
/// touched: a plan for several hosts without `--host`; a host that is not
/// this machine's name unless `override_hostname`; a host with no
/// locations in the plan.
pub fn choose(
    plan: &Plan,
    host: Option<&str>,
    s3: bool,
    override_hostname: bool,
    this: &str,
) -> Result<Option<Part>> {
    let hosts = plan.local_hosts();
    if let Some(h) = host {
        check_host_name(h).map_err(|m| Error::input(format!("--host: {m}")))?;
    }
    let Some(host) = host else {
        return match hosts.as_slice() {
            [] => Ok(None),
            [h] if *h == this => Ok(None),
            [h] => Err(Error::refused(format!(
                "the plan's local locations are on host {h}, and this machine is {this}: run it there, or pass --host {h} --override-hostname if this machine is {h} under another name"
            ))),
            _ => Err(Error::refused(format!(
                "this plan covers {} hosts ({}): run decom execute --host NAME on each, and add --s3 on the one run that purges its S3 locations",
                hosts.len(),
                hosts.join(", ")
            ))),
        };
    };
    if host != this && !override_hostname {
        return Err(Error::refused(format!(
            "--host {host} is not this machine (its hostname is {this}); pass --override-hostname if this machine is {host} under another name"
        )));
    }
    let part = Part {
        host: host.to_string(),
        s3,
    };
    plan.part(&part)?;
    Ok(Some(part))
}

/// What [`merge`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    pub hosts: Vec<HostTotals>,
    pub s3_locations: usize,
    pub totals: Totals,
    pub sha256: String,
}

/// One part as pass one saw it.
struct Seen {
    path: PathBuf,
    sha256: String,
    /// Old location index → new index, or `None` for an S3 location an
    /// earlier part already brought.
    map: HashMap<u32, Option<u32>>,
}

/// Join per-host plans (each from `decom trace --host`) into one fleet plan
/// at `out`. Parts are read one at a time, twice (checks and locations,
/// then artifacts, written as they come), so memory does not grow with the
/// number of hosts or artifacts. Refused: plans of different models,
/// manifests or profiles, two parts for one host, a part that is already a
/// fleet plan or has no host, and two parts that disagree about one remote
/// location (a bucket folder).
pub fn merge(parts: &[PathBuf], out: &Path) -> Result<Merged> {
    if parts.is_empty() {
        return Err(Error::input("plan merge: no plans to merge"));
    }
    let mut m = Merging::default();
    for path in parts {
        m.add(path)?;
    }
    let risks = m.risks();
    let head = m.head.expect("at least one part");
    // Parts traced with --local-only leave the remote locations to another part.
    for l in &head.manifest.locations {
        if crate::manifest::uri_kind(&l.uri).remote() && !m.locations.iter().any(|p| p.uri == l.uri)
        {
            return Err(Error::input(format!(
                "plan merge: no plan traced {} (every part was traced with --local-only); trace one host without it",
                l.uri
            )));
        }
    }
    let header = Plan {
        created: crate::util::now_rfc3339(),
        tool: super::Tool::this(),
        host: crate::util::hostname(),
        locations: m.locations,
        residual_risks: risks,
        hosts: m.hosts.clone(),
        local_only: false,
        totals: m.totals.clone(),
        artifacts: Vec::new(),
        ..head
    };
    let sha256 = write_merged(out, &header, &m.seen)?;
    Ok(Merged {
        s3_locations: m.remote_seen.len(),
        hosts: m.hosts,
        totals: m.totals,
        sha256,
    })
}

/// Pass one of [`merge`]: what the parts read so far add up to.
#[derive(Default)]
struct Merging {
    /// The first part, without its artifacts: the header's model,
    /// manifest and profile.
    head: Option<Plan>,
    seen: Vec<Seen>,
    locations: Vec<PlanLocation>,
    hosts: Vec<HostTotals>,
    host_of: HashMap<String, PathBuf>,
    /// Remote location → (the part that brought it, digest of what it holds).
    remote_seen: HashMap<String, (PathBuf, String)>,
    /// Each risk and the hosts whose plans name it.
    risks: Vec<(super::Risk, Vec<String>)>,
    risk_at: HashMap<super::Risk, usize>,
    totals: Totals,
}

impl Merging {
    /// Check one part against those before it and take its locations,
    /// totals and risks.
    fn add(&mut self, path: &Path) -> Result<()> {
        let (mut plan, bytes) = Plan::load(path)?;
        let name = path.display();
        if !plan.hosts.is_empty() {
            return Err(Error::input(format!(
                "plan merge: {name} is already a fleet plan; merge the per-host plans"
            )));
        }
        let named = plan.local_hosts();
        let host = match named.as_slice() {
            [h] => h.to_string(),
            [] if plan.locations.iter().any(|l| l.local().is_some()) => {
                return Err(Error::input(format!(
                    "plan merge: {name} names no host on its locations (traced before fleets); trace it again"
                )));
            }
            [] => plan.host.clone(),
            _ => unreachable!("a plan without a host list has one host (validated)"),
        };
        if let Some(other) = self.host_of.insert(host.clone(), path.to_path_buf()) {
            return Err(Error::input(format!(
                "plan merge: two plans for host {host} ({} and {name})",
                other.display()
            )));
        }
        self.check_same(&plan, path)?;
        let mut mine = HostTotals {
            host: host.clone(),
            locations: Vec::new(),
            totals: Totals::default(),
        };
        let map = self.take_locations(&plan, path, &mut mine)?;
        for a in &plan.artifacts {
            if map.get(&a.location).copied().flatten().is_none() {
                continue;
            }
            self.totals.add(&a.item);
            if plan.location(a.location).local().is_some() {
                mine.totals.add(&a.item);
            }
        }
        for r in std::mem::take(&mut plan.residual_risks) {
            let i = *self.risk_at.entry(r.clone()).or_insert_with(|| {
                self.risks.push((r, Vec::new()));
                self.risks.len() - 1
            });
            self.risks[i].1.push(host.clone());
        }
        if !mine.locations.is_empty() {
            self.hosts.push(mine);
        }
        self.seen.push(Seen {
            path: path.to_path_buf(),
            sha256: crate::hash::sha256_hex(&bytes),
            map,
        });
        plan.artifacts = Vec::new();
        self.head.get_or_insert(plan);
        Ok(())
    }

    /// Every host traces the same decom.toml with the same decom.
    fn check_same(&self, plan: &Plan, path: &Path) -> Result<()> {
        let Some(h) = &self.head else { return Ok(()) };
        for (what, a, b) in [
            ("model", json(&h.model), json(&plan.model)),
            (
                "manifest",
                h.manifest_sha256.clone(),
                plan.manifest_sha256.clone(),
            ),
            ("profile", json(&h.profile), json(&plan.profile)),
            ("schema", h.schema.clone(), plan.schema.clone()),
        ] {
            if a != b {
                return Err(Error::input(format!(
                    "plan merge: {} has another {what} than {} (every host traces the same decom.toml)",
                    path.display(),
                    self.seen[0].path.display()
                )));
            }
        }
        Ok(())
    }

    /// Renumber the part's locations into the fleet plan's: each local one
    /// is new; a remote one is taken from the first part that traced it,
    /// and a later part must have seen the same in it.
    fn take_locations(
        &mut self,
        plan: &Plan,
        path: &Path,
        mine: &mut HostTotals,
    ) -> Result<HashMap<u32, Option<u32>>> {
        let mut map = HashMap::new();
        for loc in &plan.locations {
            let new = self.locations.len() as u32 + 1;
            if loc.store.kind().remote() {
                let digest = remote_digest(plan, loc);
                match self.remote_seen.get(&loc.uri) {
                    Some((first, d)) if *d != digest => {
                        return Err(Error::input(format!(
                            "plan merge: {} and {} disagree about {} (traced at different times, or with other store settings); trace every host again",
                            first.display(),
                            path.display(),
                            loc.uri
                        )));
                    }
                    Some(_) => {
                        map.insert(loc.index, None);
                        continue;
                    }
                    None => {
                        self.remote_seen
                            .insert(loc.uri.clone(), (path.to_path_buf(), digest));
                    }
                }
            } else {
                mine.locations.push(new);
            }
            map.insert(loc.index, Some(new));
            let mut l = loc.clone();
            l.index = new;
            self.locations.push(l);
        }
        Ok(map)
    }

    /// A risk about a host's disk that not every host reported names the
    /// hosts, for the custodian; risks of remote stores (one host may have
    /// traced the buckets alone) and risks every host reported stay as
    /// they are.
    fn risks(&mut self) -> Vec<super::Risk> {
        let parts = self.seen.len();
        let mut risks: Vec<super::Risk> = std::mem::take(&mut self.risks)
            .into_iter()
            .map(|(mut r, hosts)| {
                let remote =
                    crate::manifest::uri_kind(&r.subject).remote() || r.subject.starts_with("arn:");
                if hosts.len() < parts && !remote {
                    r.subject = format!("{}: {}", hosts.join(", "), r.subject);
                }
                r
            })
            .collect();
        risks.sort_by(|a, b| {
            (&a.kind, &a.subject, &a.detail).cmp(&(&b.kind, &b.subject, &b.detail))
        });
        risks.dedup();
        risks
    }
}

/// Pass two of [`merge`]: the header, then each part's artifacts read again
/// (and checked unchanged), renumbered as they are written.
fn write_merged(out: &Path, header: &Plan, seen: &[Seen]) -> Result<String> {
    crate::util::write_atomic_with(out, |w| {
        let mut w = super::PlanWriter::start(w, header)?;
        let mut id = 0u32;
        for s in seen {
            let (plan, bytes) = Plan::load(&s.path).map_err(std::io::Error::other)?;
            if crate::hash::sha256_hex(&bytes) != s.sha256 {
                return Err(std::io::Error::other(format!(
                    "{} changed while it was being merged",
                    s.path.display()
                )));
            }
            for a in plan.artifacts {
                let Some(location) = s.map.get(&a.location).copied().flatten() else {
                    continue;
                };
                id += 1;
                w.push(&Artifact {
                    id,
                    location,
                    item: a.item,
                })?;
            }
        }
        w.finish()
    })
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plan types serialize")
}

/// What a part says about one remote location, independent of indices and ids.
fn remote_digest(plan: &Plan, loc: &PlanLocation) -> String {
    let mut l = loc.clone();
    l.index = 0;
    let items: Vec<&Item> = plan
        .artifacts
        .iter()
        .filter(|a| a.location == loc.index)
        .map(|a| &a.item)
        .collect();
    crate::hash::sha256_hex(json(&(l, items)).as_bytes())
}
