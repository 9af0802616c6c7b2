//! The plan: every artifact trace found, with everything execute needs to
//! re-identify it, the resolved profile, the manifest it came from, the
//! bucket facts and the residual risks. The custodian signs the exact bytes
//! of `plan.json`.
//!
//! [`Plan::load`] refuses any plan whose paths are not absolute and
//! normalised, not under one of the plan's locations, or on another device
//! than their location (unless the manifest allows crossing filesystems), and
//! any S3 artifact outside its location's bucket and prefix.
//! This module never touches artifacts.

pub mod approved;
pub mod fleet;
pub mod gcs;
pub mod mlflow;
pub mod spool;
pub mod storage;

pub use approved::{Approved, SignedPlan};
pub use fleet::{HostTotals, Part};
pub use gcs::{GcsFacts, GcsGeneration, GcsLifecycle, GcsLocation};
pub use mlflow::{MlflowAlias, MlflowLocation, MlflowModel, MlflowRun, MlflowVersion};

use crate::error::{Error, Result};
use crate::manifest::{Component, Manifest, MatchMode, Model, NotSearched};
use crate::profile::Profile;
pub use crate::store::s3::spec::Endpoint;
use serde::{Deserialize, Serialize};
use std::path::{Component as PathComponent, Path};
pub use storage::{Category, Sanitization};

pub const PLAN_SCHEMA: &str = "decom.plan/1";
/// The largest plan we load (a plan for millions of artifacts is still far below).
const MAX_PLAN: u64 = 4 << 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    pub fn this() -> Self {
        Tool {
            name: crate::TOOL_NAME.into(),
            version: crate::TOOL_VERSION.into(),
        }
    }
}

/// A plan. `A` is how its artifacts are held: in full (the default, for
/// everything that acts on them), or as [`ArtifactIds`] where only their
/// ids and locations matter and the plan may be huge (`decom collect`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan<A = Vec<Artifact>> {
    pub schema: String,
    pub tool: Tool,
    pub created: String,
    pub host: String,
    pub model: Model,
    pub manifest_sha256: String,
    pub manifest: Manifest,
    pub profile: Profile,
    pub components: Vec<Component>,
    /// Known components with no hash decom matches: never searched for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components_not_searched: Vec<NotSearched>,
    /// The `[[retain]]` files, hashed: kept by policy, never planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<crate::manifest::retain::Retained>,
    pub locations: Vec<PlanLocation>,
    pub residual_risks: Vec<Risk>,
    /// A fleet plan (`decom plan merge`): each host's locations and totals,
    /// in the order of the parts merged. Absent in a one-host plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostTotals>,
    /// `trace --local-only`: the manifest's S3 locations were left to
    /// another host's trace. Such a plan is a part for `plan merge`, never
    /// approved or executed by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_only: bool,
    pub totals: Totals,
    pub artifacts: A,
}

/// A plan's artifacts as (id, location) pairs only, read without the rest.
#[derive(Debug, Clone, Default)]
pub struct ArtifactIds(pub Vec<(u32, u32)>);

impl<'de> Deserialize<'de> for ArtifactIds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct IdLocation {
            id: u32,
            location: u32,
        }
        struct Ids;
        impl<'de> serde::de::Visitor<'de> for Ids {
            type Value = ArtifactIds;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of artifacts")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> std::result::Result<ArtifactIds, S::Error> {
                let mut out = Vec::new();
                while let Some(a) = seq.next_element::<IdLocation>()? {
                    out.push((a.id, a.location));
                }
                Ok(ArtifactIds(out))
            }
        }
        d.deserialize_seq(Ids)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub id: u32,
    pub location: u32,
    #[serde(flatten)]
    pub item: Item,
}

/// An artifact as serde's `flatten` and `kind` tag read it: every field
/// buffered first, in any order.
#[derive(Deserialize)]
struct AnyOrder {
    id: u32,
    location: u32,
    #[serde(flatten)]
    item: Item,
}

impl<'de> Deserialize<'de> for Artifact {
    /// decom writes `id`, `location` and `kind` first: the item's own
    /// fields are then read straight into it, where serde's `flatten` and
    /// tag would buffer every field of every artifact first (about a sixth
    /// of the time execute took to read a plan of 10,000 versions). Any
    /// other order is read the buffered way, with the same result.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::value::MapAccessDeserializer;
        use serde::de::{Error as _, MapAccess, Visitor};
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Artifact;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an artifact")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut m: M,
            ) -> std::result::Result<Artifact, M::Error> {
                // The fields read so far: kept for the buffered read too.
                let mut read = serde_json::Map::new();
                let mut numbers = [0u32; 2];
                for (n, name) in numbers.iter_mut().zip(["id", "location"]) {
                    match m.next_key::<String>()? {
                        Some(k) if k == name => {
                            *n = m.next_value()?;
                            read.insert(k, (*n).into());
                        }
                        other => return any_order(read, other, m),
                    }
                }
                let key = m.next_key::<String>()?;
                if key.as_deref() != Some("kind") {
                    return any_order(read, key, m);
                }
                let kind = m.next_value::<ArtifactKind>()?;
                let [id, location] = numbers;
                let rest = MapAccessDeserializer::new(Rest(m));
                let item = match kind {
                    ArtifactKind::File => Item::File(Deserialize::deserialize(rest)?),
                    ArtifactKind::Symlink => Item::Symlink(Deserialize::deserialize(rest)?),
                    ArtifactKind::Dir => Item::Dir(Deserialize::deserialize(rest)?),
                    ArtifactKind::S3Version => Item::S3Version(Deserialize::deserialize(rest)?),
                    ArtifactKind::S3DeleteMarker => {
                        Item::S3DeleteMarker(Deserialize::deserialize(rest)?)
                    }
                    ArtifactKind::S3Upload => Item::S3Upload(Deserialize::deserialize(rest)?),
                    ArtifactKind::S3Lifecycle => Item::S3Lifecycle(Deserialize::deserialize(rest)?),
                    ArtifactKind::KmsKey => Item::KmsKey(Deserialize::deserialize(rest)?),
                    ArtifactKind::LuksVolume => Item::LuksKeyslots(Deserialize::deserialize(rest)?),
                    ArtifactKind::GcsGeneration => {
                        Item::GcsGeneration(Deserialize::deserialize(rest)?)
                    }
                    ArtifactKind::GcsLifecycle => {
                        Item::GcsLifecycle(Deserialize::deserialize(rest)?)
                    }
                    ArtifactKind::MlflowVersion => {
                        Item::MlflowVersion(Deserialize::deserialize(rest)?)
                    }
                    ArtifactKind::MlflowAlias => Item::MlflowAlias(Deserialize::deserialize(rest)?),
                    ArtifactKind::MlflowRun => Item::MlflowRun(Deserialize::deserialize(rest)?),
                    ArtifactKind::MlflowModel => Item::MlflowModel(Deserialize::deserialize(rest)?),
                };
                Ok(Artifact { id, location, item })
            }
        }
        /// The rest of an artifact after its `kind`, for the kind's struct:
        /// `id`, `location` or `kind` again is refused, as the buffered
        /// read refuses a field named twice (a plan that says two things
        /// could be read one way by decom and another by a reviewer's tool).
        struct Rest<M>(M);
        impl<'de, M: MapAccess<'de>> MapAccess<'de> for Rest<M> {
            type Error = M::Error;
            fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
                &mut self,
                seed: K,
            ) -> std::result::Result<Option<K::Value>, M::Error> {
                use serde::de::IntoDeserializer;
                match self.0.next_key::<String>()? {
                    Some(k) if ["id", "location", "kind"].contains(&k.as_str()) => {
                        Err(M::Error::custom(format_args!("duplicate field `{k}`")))
                    }
                    Some(k) => seed.deserialize(k.into_deserializer()).map(Some),
                    None => Ok(None),
                }
            }
            fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
                &mut self,
                seed: V,
            ) -> std::result::Result<V::Value, M::Error> {
                self.0.next_value_seed(seed)
            }
        }
        /// The fields read so far, the key just read and the rest of the
        /// map, buffered and read as [`AnyOrder`]. A field named twice is
        /// refused, as the derive refuses it.
        fn any_order<'de, M: MapAccess<'de>>(
            mut read: serde_json::Map<String, serde_json::Value>,
            mut key: Option<String>,
            mut m: M,
        ) -> std::result::Result<Artifact, M::Error> {
            while let Some(k) = key {
                let v = m.next_value::<serde_json::Value>()?;
                if read.contains_key(&k) {
                    return Err(M::Error::custom(format_args!("duplicate field `{k}`")));
                }
                read.insert(k, v);
                key = m.next_key()?;
            }
            let a =
                AnyOrder::deserialize(serde_json::Value::Object(read)).map_err(M::Error::custom)?;
            Ok(Artifact {
                id: a.id,
                location: a.location,
                item: a.item,
            })
        }
        d.deserialize_map(Visit)
    }
}

/// Why an artifact was planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matched {
    pub how: MatchedBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

/// How an artifact came to be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// Everything under a `match = "all"` location.
    All,
    /// A name matched one of the location's `include` globs.
    Include,
    /// Its SHA-256 is a known component's (`match = "hash"`).
    Hash,
    /// It lies in the model's Hugging Face cache folder (`hf_repo`).
    HfRepo,
    /// The model's Ollama manifest, or a layer it uses (`ollama_model`).
    Ollama,
    /// A PyTorch hub checkpoint the manifest names (`torch_checkpoints`).
    TorchHub,
}

impl std::fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MatchedBy::All => "all",
            MatchedBy::Include => "include",
            MatchedBy::Hash => "hash",
            MatchedBy::HfRepo => "hf-repo",
            MatchedBy::Ollama => "ollama",
            MatchedBy::TorchHub => "torch-hub",
        })
    }
}

/// What a residual risk is about. The plan's and the certificate's words
/// for it are these names in kebab-case; a kind this build does not know
/// (from another version of decom) is kept exactly as written, so older
/// plans and certificates still parse and verify.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RiskKind {
    /// Known components no location could match by content.
    ComponentsNotSearched,
    /// A KMS key that cannot be destroyed as the model's alone.
    CryptoEraseRefused,
    /// decom's own input or evidence, excluded.
    DecomOwnFile,
    /// A location that holds nothing.
    EmptyLocation,
    /// Other names of a planned file under the locations stay.
    HardLinkNotPlanned,
    /// Names of a planned file outside every location.
    HardLinkOutsideLocations,
    /// A LUKS header backup or image still opens the volume.
    LuksHeaderBackup,
    /// A file another process holds open for writing.
    OpenForWriting,
    /// Another model's own store entries, kept.
    OtherModel,
    /// An S3 location larger than one run should take.
    S3LargeLocation,
    /// A folder emptied by S3 Lifecycle, later.
    S3Lifecycle,
    /// Object-store deletion is logical sanitization.
    S3Logical,
    /// Object Lock keeps versions.
    S3ObjectLock,
    /// Replication keeps copies in another bucket.
    S3Replication,
    /// Versions under retention or legal hold.
    S3Retained,
    /// Features the S3 store does not implement.
    S3StoreCapabilities,
    /// S3 versions without a SHA-256.
    S3Unhashed,
    /// A bucket that had versioning keeps old versions.
    S3VersioningHistory,
    /// A bucket with versioning suspended.
    S3VersioningSuspended,
    /// Identical bytes another model needs, kept.
    SharedContent,
    /// Content another model needs, disposed of as approved.
    SharedContentDisposed,
    /// Blocks shared with a reflinked copy or snapshot.
    SharedExtents,
    /// A sparse file written in full.
    SparseFile,
    /// A FIFO, socket or device node, not disposed of.
    SpecialFile,
    /// Store content the model uses outside the location.
    StoreOutsideLocation,
    /// A kept store manifest still naming the retired model.
    StoreReferenceKept,
    /// What could not be read while tracing.
    Unreadable,
    /// A name a plan cannot show unambiguously.
    UnrecordableName,
    /// A GCS folder emptied by the bucket's lifecycle rules, later.
    GcsLifecycle,
    /// Object-store deletion in GCS is logical sanitization.
    GcsLogical,
    /// Generations under a hold or retention.
    GcsRetained,
    /// Deleted generations stay restorable until their hard-delete time,
    /// or whether they do is unknown.
    GcsSoftDelete,
    /// GCS generations not hashed (no SHA-256 to match by).
    GcsUnhashed,
    /// Generations encrypted with a Cloud KMS key (recorded, not erased).
    GcsKmsKey,
    /// MLflow runs deleted but not purged (no backend store given).
    MlflowRunsNotPurged,
    /// A store entry whose references cannot be validated.
    UnvalidatedReference,
    /// A kind this build does not know.
    Other(String),
}

impl RiskKind {
    pub fn as_str(&self) -> &str {
        match self {
            RiskKind::ComponentsNotSearched => "components-not-searched",
            RiskKind::CryptoEraseRefused => "crypto-erase-refused",
            RiskKind::DecomOwnFile => "decom-own-file",
            RiskKind::EmptyLocation => "empty-location",
            RiskKind::HardLinkNotPlanned => "hard-link-not-planned",
            RiskKind::HardLinkOutsideLocations => "hard-link-outside-locations",
            RiskKind::LuksHeaderBackup => "luks-header-backup",
            RiskKind::OpenForWriting => "open-for-writing",
            RiskKind::OtherModel => "other-model",
            RiskKind::S3LargeLocation => "s3-large-location",
            RiskKind::S3Lifecycle => "s3-lifecycle",
            RiskKind::S3Logical => "s3-logical",
            RiskKind::S3ObjectLock => "s3-object-lock",
            RiskKind::S3Replication => "s3-replication",
            RiskKind::S3Retained => "s3-retained",
            RiskKind::S3StoreCapabilities => "s3-store-capabilities",
            RiskKind::S3Unhashed => "s3-unhashed",
            RiskKind::S3VersioningHistory => "s3-versioning-history",
            RiskKind::S3VersioningSuspended => "s3-versioning-suspended",
            RiskKind::SharedContent => "shared-content",
            RiskKind::SharedContentDisposed => "shared-content-disposed",
            RiskKind::SharedExtents => "shared-extents",
            RiskKind::SparseFile => "sparse-file",
            RiskKind::SpecialFile => "special-file",
            RiskKind::StoreOutsideLocation => "store-outside-location",
            RiskKind::StoreReferenceKept => "store-reference-kept",
            RiskKind::Unreadable => "unreadable",
            RiskKind::UnrecordableName => "unrecordable-name",
            RiskKind::UnvalidatedReference => "unvalidated-reference",
            RiskKind::GcsLifecycle => "gcs-lifecycle",
            RiskKind::GcsLogical => "gcs-logical",
            RiskKind::GcsRetained => "gcs-retained",
            RiskKind::GcsSoftDelete => "gcs-soft-delete",
            RiskKind::GcsUnhashed => "gcs-unhashed",
            RiskKind::GcsKmsKey => "gcs-kms-key",
            RiskKind::MlflowRunsNotPurged => "mlflow-runs-not-purged",
            RiskKind::Other(s) => s,
        }
    }
}

impl From<&str> for RiskKind {
    fn from(s: &str) -> Self {
        match s {
            "components-not-searched" => RiskKind::ComponentsNotSearched,
            "crypto-erase-refused" => RiskKind::CryptoEraseRefused,
            "decom-own-file" => RiskKind::DecomOwnFile,
            "empty-location" => RiskKind::EmptyLocation,
            "hard-link-not-planned" => RiskKind::HardLinkNotPlanned,
            "hard-link-outside-locations" => RiskKind::HardLinkOutsideLocations,
            "luks-header-backup" => RiskKind::LuksHeaderBackup,
            "open-for-writing" => RiskKind::OpenForWriting,
            "other-model" => RiskKind::OtherModel,
            "s3-large-location" => RiskKind::S3LargeLocation,
            "s3-lifecycle" => RiskKind::S3Lifecycle,
            "s3-logical" => RiskKind::S3Logical,
            "s3-object-lock" => RiskKind::S3ObjectLock,
            "s3-replication" => RiskKind::S3Replication,
            "s3-retained" => RiskKind::S3Retained,
            "s3-store-capabilities" => RiskKind::S3StoreCapabilities,
            "s3-unhashed" => RiskKind::S3Unhashed,
            "s3-versioning-history" => RiskKind::S3VersioningHistory,
            "s3-versioning-suspended" => RiskKind::S3VersioningSuspended,
            "shared-content" => RiskKind::SharedContent,
            "shared-content-disposed" => RiskKind::SharedContentDisposed,
            "shared-extents" => RiskKind::SharedExtents,
            "sparse-file" => RiskKind::SparseFile,
            "special-file" => RiskKind::SpecialFile,
            "store-outside-location" => RiskKind::StoreOutsideLocation,
            "store-reference-kept" => RiskKind::StoreReferenceKept,
            "unreadable" => RiskKind::Unreadable,
            "unrecordable-name" => RiskKind::UnrecordableName,
            "gcs-lifecycle" => RiskKind::GcsLifecycle,
            "gcs-logical" => RiskKind::GcsLogical,
            "gcs-retained" => RiskKind::GcsRetained,
            "gcs-soft-delete" => RiskKind::GcsSoftDelete,
            "gcs-unhashed" => RiskKind::GcsUnhashed,
            "gcs-kms-key" => RiskKind::GcsKmsKey,
            "mlflow-runs-not-purged" => RiskKind::MlflowRunsNotPurged,
            "unvalidated-reference" => RiskKind::UnvalidatedReference,
            other => RiskKind::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for RiskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Risks sort by their kind's name, as plans always have.
impl Ord for RiskKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for RiskKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for RiskKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RiskKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(RiskKind::from(s.as_ref()))
    }
}

/// Whether a plan may be written at `path`: a file there is replaced only
/// with `force`, and never when it carries a custodian's approval
/// (`PATH.custodian.sig`): an approved plan is evidence, which its
/// certificate finds by hash, and decom never destroys evidence. The one
/// rule for trace and `plan merge`.
pub fn check_replaceable(path: &Path, force: bool) -> crate::error::Result<()> {
    let approval = crate::sign::sig_path(path, crate::sign::Role::Custodian);
    if approval.symlink_metadata().is_ok() {
        return Err(crate::error::Error::refused(format!(
            "{}: the plan there is approved ({}); write the new plan to another file, or move the approved one and its approval away first",
            path.display(),
            approval.display()
        )));
    }
    if path.symlink_metadata().is_ok() && !force {
        return Err(crate::error::Error::refused(format!(
            "{}: already exists; pass --force to replace it",
            path.display()
        )));
    }
    Ok(())
}

/// Something an overwrite or purge cannot reach, shown before anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    pub kind: RiskKind,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanLocation {
    /// 1-based index, referenced by artifacts.
    pub index: u32,
    pub uri: String,
    /// The host whose disk holds a local location (`trace --host`, by
    /// default the machine's hostname). Absent for S3 locations and in
    /// plans from before fleets: those run on whichever machine executes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(rename = "match")]
    pub match_mode: MatchMode,
    #[serde(flatten)]
    pub store: Store,
}

/// Where a location lives, and what execute re-identifies it by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "store", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Local(LocalRoot),
    S3(S3Location),
    /// A LUKS2 volume, disposed of by cryptographic erase.
    Luks(LuksVolume),
    /// A folder of a Google Cloud Storage bucket.
    Gcs(GcsLocation),
    /// A model version in an MLflow registry.
    Mlflow(MlflowLocation),
}

/// A LUKS2 volume as trace found it; execute re-identifies it by device
/// number and UUID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksVolume {
    pub device: String,
    pub rdev: u64,
    pub uuid: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalRoot {
    /// Canonical absolute path of the location's root directory.
    pub root: String,
    pub device: u64,
    pub inode: u64,
    pub fs_type: String,
    pub rotational: Option<bool>,
    pub cross_filesystems: bool,
    /// Why its disk is virtual (backing store unknown), where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_disk: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    /// Which keys the location covers, in words ([`crate::store::s3::spec::Scope::rule`]):
    /// the custodian approves the rule with the prefix. Absent in plans
    /// written before folder semantics; execute applies them to every plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    /// The endpoint trace used; execute uses the same one.
    pub endpoint: Endpoint,
    pub facts: BucketFacts,
    /// With `crypto_erase`: every KMS key that encrypts a planned version,
    /// what trace learnt of it and whether decom may destroy it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kms_keys: Vec<KmsKeyFacts>,
}

/// A KMS key that encrypts planned versions, as trace found it. Only a
/// key with `erase` becomes a `kms-key` artifact; `reason` says why (not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsKeyFacts {
    pub key_arn: String,
    /// How the planned versions name it (ARN, key id or alias).
    pub named_as: Vec<String>,
    /// "CUSTOMER" or "AWS" (DescribeKey's KeyManager).
    pub key_manager: String,
    pub key_state: String,
    pub multi_region: bool,
    pub aliases: Vec<String>,
    pub tags: Vec<String>,
    pub grants: u64,
    /// Planned versions it encrypts.
    pub versions: u64,
    /// Object versions in the bucket, outside the plan, that it encrypts.
    pub used_outside: u64,
    /// Whether the bucket encrypts new objects with it by default.
    pub bucket_default: bool,
    pub erase: bool,
    pub reason: String,
}

/// Bucket-level facts that bear on residual risk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketFacts {
    pub versioning: Versioning,
    pub object_lock: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<String>,
    pub replication_rules: Vec<String>,
    pub lifecycle_rules: Vec<String>,
    /// Features the store says it lacks (HTTP 501 for their calls; Garage:
    /// versioning, object lock, replication): recorded, not guessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<crate::store::s3::spec::Feature>,
}

/// A bucket's versioning status, as S3 reports it. Written as S3's own
/// words ("Enabled", "Suspended") or "Never enabled" when S3 reports none;
/// a status this decom does not know is kept as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Versioning {
    Enabled,
    Suspended,
    #[default]
    NeverEnabled,
    Other(String),
}

impl From<String> for Versioning {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Enabled" => Versioning::Enabled,
            "Suspended" => Versioning::Suspended,
            "Never enabled" => Versioning::NeverEnabled,
            _ => Versioning::Other(s),
        }
    }
}

impl From<Versioning> for String {
    fn from(v: Versioning) -> String {
        v.to_string()
    }
}

impl std::fmt::Display for Versioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Versioning::Enabled => "Enabled",
            Versioning::Suspended => "Suspended",
            Versioning::NeverEnabled => "Never enabled",
            Versioning::Other(s) => s,
        })
    }
}

impl PlanLocation {
    /// The structure of location `i` (counting from 0): a normalised root,
    /// a device or a bucket and prefix that match its URI.
    fn check(&self, i: usize) -> std::result::Result<(), String> {
        match &self.store {
            Store::Local(l) => {
                if let Err(m) = check_normalised(&l.root) {
                    return Err(format!("location root {:?}: {m}", l.root));
                }
                if l.root == "/" {
                    return Err("a location root is \"/\"".into());
                }
            }
            Store::Luks(v) => {
                if self.uri.strip_prefix("luks://") != Some(v.device.as_str())
                    || !v.device.starts_with("/dev/")
                    || check_normalised(&v.device).is_err()
                {
                    return Err(format!("location {} does not match its URI", i + 1));
                }
            }
            Store::Mlflow(m) => {
                let (name, version) =
                    crate::store::mlflow::spec::parse_uri(&self.uri).map_err(|e| e.to_string())?;
                if name != m.name || version != m.version {
                    return Err(format!("location {} does not match its URI", i + 1));
                }
            }
            Store::Gcs(g) => {
                let (bucket, prefix) =
                    crate::store::gcs::spec::parse_uri(&self.uri).map_err(|e| e.to_string())?;
                if bucket != g.bucket || prefix != g.prefix {
                    return Err(format!("location {} does not match its URI", i + 1));
                }
                let rule = crate::util::Scope::new(&g.prefix).rule();
                if g.covers != rule {
                    return Err(format!(
                        "location {} says it covers {:?}, but its prefix covers {rule:?}",
                        i + 1,
                        g.covers
                    ));
                }
            }
            Store::S3(s) => {
                let (bucket, prefix) =
                    crate::store::s3::spec::parse_uri(&self.uri).map_err(|e| e.to_string())?;
                if bucket != s.bucket || prefix != s.prefix {
                    return Err(format!("location {} does not match its URI", i + 1));
                }
                let rule = crate::store::s3::spec::Scope::new(&s.prefix).rule();
                if s.covers.as_ref().is_some_and(|c| *c != rule) {
                    return Err(format!(
                        "location {} says it covers {:?}, but its prefix covers {rule:?}",
                        i + 1,
                        s.covers.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Store {
    /// Which store holds the location.
    pub fn kind(&self) -> crate::manifest::StoreKind {
        use crate::manifest::StoreKind;
        match self {
            Store::Local(_) => StoreKind::Local,
            Store::S3(_) => StoreKind::S3,
            Store::Luks(_) => StoreKind::Luks,
            Store::Gcs(_) => StoreKind::Gcs,
            Store::Mlflow(_) => StoreKind::Mlflow,
        }
    }
}

impl PlanLocation {
    pub fn local(&self) -> Option<&LocalRoot> {
        match &self.store {
            Store::Local(l) => Some(l),
            _ => None,
        }
    }
    pub fn s3(&self) -> Option<&S3Location> {
        match &self.store {
            Store::S3(s) => Some(s),
            _ => None,
        }
    }
    pub fn mlflow(&self) -> Option<&MlflowLocation> {
        match &self.store {
            Store::Mlflow(m) => Some(m),
            _ => None,
        }
    }
    pub fn gcs(&self) -> Option<&GcsLocation> {
        match &self.store {
            Store::Gcs(g) => Some(g),
            _ => None,
        }
    }
    /// Filesystem or store, for people.
    pub fn medium(&self) -> String {
        match &self.store {
            Store::Local(l) => format!(
                "{} on {}",
                l.fs_type,
                match (&l.virtual_disk, l.rotational) {
                    (Some(v), _) => format!("a virtual disk ({v})"),
                    (None, Some(true)) => "rotational disk".into(),
                    (None, Some(false)) => "non-rotational disk".into(),
                    (None, None) => "unknown medium".into(),
                }
            ),
            Store::S3(s) => format!("S3 bucket {} (versioning {})", s.bucket, s.facts.versioning),
            Store::Luks(v) => format!("LUKS2 volume {} on block device {}", v.uuid, v.device),
            Store::Gcs(g) => format!(
                "GCS bucket {} (versioning {}, soft delete {})",
                g.bucket,
                if g.facts.versioning { "on" } else { "off" },
                g.facts.soft_delete()
            ),
            Store::Mlflow(m) => format!(
                "MLflow registry at {} ({} version {}; other versions, which stay: {})",
                m.tracking_uri,
                m.name,
                m.version,
                if m.other_versions.is_empty() {
                    "none".to_string()
                } else {
                    m.other_versions.join(", ")
                }
            ),
        }
    }
}

/// The kind of an artifact, as plans and certificates name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    File,
    Symlink,
    Dir,
    S3Version,
    S3DeleteMarker,
    S3Upload,
    S3Lifecycle,
    KmsKey,
    LuksVolume,
    GcsGeneration,
    GcsLifecycle,
    MlflowVersion,
    MlflowAlias,
    MlflowRun,
    MlflowModel,
}

impl ArtifactKind {
    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::File => "file",
            ArtifactKind::Symlink => "symlink",
            ArtifactKind::Dir => "dir",
            ArtifactKind::S3Version => "s3-version",
            ArtifactKind::S3DeleteMarker => "s3-delete-marker",
            ArtifactKind::S3Upload => "s3-upload",
            ArtifactKind::S3Lifecycle => "s3-lifecycle",
            ArtifactKind::KmsKey => "kms-key",
            ArtifactKind::LuksVolume => "luks-volume",
            ArtifactKind::GcsGeneration => "gcs-generation",
            ArtifactKind::GcsLifecycle => "gcs-lifecycle",
            ArtifactKind::MlflowVersion => "mlflow-version",
            ArtifactKind::MlflowAlias => "mlflow-alias",
            ArtifactKind::MlflowRun => "mlflow-run",
            ArtifactKind::MlflowModel => "mlflow-model",
        }
    }

    /// Whether artifacts of this kind hold model data (not just a name).
    pub fn holds_data(self) -> bool {
        matches!(
            self,
            ArtifactKind::File
                | ArtifactKind::S3Version
                | ArtifactKind::S3Lifecycle
                | ArtifactKind::LuksVolume
                | ArtifactKind::GcsGeneration
                | ArtifactKind::GcsLifecycle
        )
    }
}

impl std::fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[allow(clippy::large_enum_variant)]
pub enum Item {
    /// A regular file: overwritten per profile, then unlinked.
    File(LocalFile),
    /// A symbolic link inside a location: removed, never followed.
    Symlink(LocalLink),
    /// A directory left empty once its planned contents are gone.
    Dir(LocalDir),
    /// An S3 object version (the null version too): deleted by version id.
    S3Version(S3Version),
    /// An S3 delete marker: deleted by version id.
    S3DeleteMarker(S3Marker),
    /// An unfinished multipart upload: aborted.
    S3Upload(S3Upload),
    /// A folder emptied by S3 Lifecycle rules that execute installs.
    S3Lifecycle(S3Lifecycle),
    /// A customer-managed KMS key destroyed after the purge (cryptographic
    /// erase): pending until KMS has deleted it.
    KmsKey(KmsKey),
    /// Every keyslot of a LUKS2 volume (cryptographic erase of the volume).
    #[serde(rename = "luks-volume")]
    LuksKeyslots(LuksKeyslots),
    /// A generation of a Google Cloud Storage object: deleted by generation.
    GcsGeneration(GcsGeneration),
    /// A GCS folder emptied by lifecycle rules that execute merges in.
    GcsLifecycle(GcsLifecycle),
    /// An MLflow model version: deleted before its artifacts.
    MlflowVersion(MlflowVersion),
    /// An alias pointing at that version: deleted first.
    MlflowAlias(MlflowAlias),
    /// A run that logged the model: deleted after its artifacts (purged
    /// with `mlflow gc` where the backend store is known).
    MlflowRun(MlflowRun),
    /// The registered model, when it has no other version.
    MlflowModel(MlflowModel),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuksKeyslots {
    pub device: String,
    pub uuid: String,
    /// The keyslots in use at trace ("0" to "31").
    pub keyslots: Vec<String>,
    /// The volume's bytes, unreadable once no keyslot is left.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsKey {
    pub key_arn: String,
    /// The approved waiting period (ScheduleKeyDeletion), 7 to 30 days.
    pub window_days: i32,
    /// Planned versions it encrypts (their replicas and backups under the
    /// same key are covered by the erase too).
    pub versions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalFile {
    pub path: String,
    pub device: u64,
    pub inode: u64,
    pub nlink: u64,
    pub size: u64,
    pub mtime: String,
    pub ctime: String,
    pub sha256: String,
    pub fs_type: String,
    pub rotational: Option<bool>,
    pub sanitization: Sanitization,
    pub matched: Matched,
    /// Other names of this inode found under the locations (hard links).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalLink {
    pub path: String,
    pub device: u64,
    pub inode: u64,
    /// The link's target as stored (never resolved).
    pub target: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalDir {
    pub path: String,
    pub device: u64,
    pub inode: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Version {
    pub bucket: String,
    pub key: String,
    /// The version id, or "null" for the null version.
    pub version_id: String,
    pub is_latest: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where the SHA-256 came from: "s3-checksum" or "streamed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_source: Option<String>,
    /// Where the version's facts came from: its HEAD, or the listing alone
    /// (then encryption is not recorded). Absent in plans from before trace
    /// HEADed only where needed (they HEADed every version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts_from: Option<FactsFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    pub legal_hold: bool,
    pub matched: Matched,
}

/// Where an S3 version's facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactsFrom {
    /// ListObjectVersions: size, ETag, storage class, times.
    Listing,
    /// HeadObject too: encryption, checksum, lock state.
    Head,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub mode: String,
    pub until: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Marker {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Upload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
    pub parts: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub artifacts: u64,
    pub files: u64,
    pub symlinks: u64,
    pub dirs: u64,
    pub s3_versions: u64,
    pub s3_delete_markers: u64,
    pub s3_uploads: u64,
    /// Folders delegated to S3 Lifecycle (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub s3_lifecycle: u64,
    /// KMS keys destroyed by cryptographic erase (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kms_keys: u64,
    /// LUKS2 volumes erased whole (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub luks_volumes: u64,
    /// GCS object generations (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gcs_generations: u64,
    /// GCS folders delegated to lifecycle rules (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gcs_lifecycle: u64,
    /// Model registry entries: versions, aliases, runs (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub registry_entries: u64,
    pub bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A folder whose disposal is delegated to S3 Lifecycle: the exact rules
/// decom installs (the custodian approves them with the plan), and what
/// trace counted in the folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Lifecycle {
    pub bucket: String,
    /// The folder (ends in `/`, or empty for the whole bucket).
    pub prefix: String,
    pub rules: Vec<LifecycleRule>,
    pub versions: u64,
    pub delete_markers: u64,
    pub uploads: u64,
    pub bytes: u64,
    /// IDs of the lifecycle rules the bucket had at trace time.
    pub existing_rules: Vec<String>,
}

/// One S3 lifecycle rule as decom installs it, scoped to a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRule {
    pub id: String,
    pub prefix: String,
    /// Expire current versions this many days after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<i32>,
    /// Remove delete markers that no longer hide any version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired_object_delete_marker: bool,
    /// Delete noncurrent versions this many days after they became noncurrent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<i32>,
    /// Abort unfinished multipart uploads this many days after they began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_days: Option<i32>,
}

impl LifecycleRule {
    /// The rules that empty `prefix`: S3 does not allow expiring current
    /// versions and expired delete markers in one rule, so there are two.
    pub fn for_folder(id: &str, prefix: &str) -> Vec<LifecycleRule> {
        vec![
            LifecycleRule {
                id: id.to_string(),
                prefix: prefix.to_string(),
                expiration_days: Some(1),
                expired_object_delete_marker: false,
                noncurrent_days: Some(1),
                abort_incomplete_days: Some(1),
            },
            LifecycleRule {
                id: format!("{id}-markers"),
                prefix: prefix.to_string(),
                expiration_days: None,
                expired_object_delete_marker: true,
                noncurrent_days: None,
                abort_incomplete_days: None,
            },
        ]
    }

    /// In words, for `show` and the certificate.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.expiration_days {
            parts.push(format!("expire current versions after {d} day(s)"));
        }
        if let Some(d) = self.noncurrent_days {
            parts.push(format!("delete noncurrent versions after {d} day(s)"));
        }
        if self.expired_object_delete_marker {
            parts.push("remove expired delete markers".to_string());
        }
        if let Some(d) = self.abort_incomplete_days {
            parts.push(format!("abort unfinished uploads after {d} day(s)"));
        }
        format!(
            "rule {} on prefix {:?}: {}",
            self.id,
            self.prefix,
            parts.join(", ")
        )
    }
}

impl Item {
    /// The SHA-256 of the content, where trace knows it.
    pub fn sha256(&self) -> Option<&str> {
        match self {
            Item::File(f) => Some(&f.sha256),
            Item::S3Version(v) => v.sha256.as_deref(),
            Item::GcsGeneration(g) => g.sha256.as_deref(),
            _ => None,
        }
    }

    /// A unique, human-readable name: the path, or `s3://bucket/key?versionId=…`.
    pub fn path(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Item::File(f) => f.path.as_str().into(),
            Item::Symlink(l) => l.path.as_str().into(),
            Item::Dir(d) => d.path.as_str().into(),
            Item::S3Version(v) => {
                format!("s3://{}/{}?versionId={}", v.bucket, v.key, v.version_id).into()
            }
            Item::S3DeleteMarker(m) => {
                format!("s3://{}/{}?versionId={}", m.bucket, m.key, m.version_id).into()
            }
            Item::S3Upload(u) => {
                format!("s3://{}/{}?uploadId={}", u.bucket, u.key, u.upload_id).into()
            }
            Item::S3Lifecycle(l) => format!("s3://{}/{} (S3 Lifecycle)", l.bucket, l.prefix).into(),
            Item::KmsKey(k) => format!("kms:{}", k.key_arn).into(),
            Item::LuksKeyslots(l) => format!("luks://{} (UUID {})", l.device, l.uuid).into(),
            Item::GcsGeneration(g) => g.uri().into(),
            Item::GcsLifecycle(l) => {
                format!("gs://{}/{} (lifecycle rules)", l.bucket, l.prefix).into()
            }
            Item::MlflowVersion(v) => format!("mlflow:{}/{}", v.name, v.version).into(),
            Item::MlflowAlias(a) => format!("mlflow:{}@{}", a.name, a.alias).into(),
            Item::MlflowRun(r) => format!("mlflow:runs/{}", r.run_id).into(),
            Item::MlflowModel(m) => format!("mlflow:{}", m.name).into(),
        }
    }
    /// The local path, for local artifacts.
    pub fn local_path(&self) -> Option<&str> {
        match self {
            Item::File(f) => Some(&f.path),
            Item::Symlink(l) => Some(&l.path),
            Item::Dir(d) => Some(&d.path),
            _ => None,
        }
    }
    pub fn device(&self) -> Option<u64> {
        match self {
            Item::File(f) => Some(f.device),
            Item::Symlink(l) => Some(l.device),
            Item::Dir(d) => Some(d.device),
            _ => None,
        }
    }
    /// Bucket and key, for S3 artifacts.
    pub fn s3_key(&self) -> Option<(&str, &str)> {
        match self {
            Item::S3Version(v) => Some((&v.bucket, &v.key)),
            Item::S3DeleteMarker(m) => Some((&m.bucket, &m.key)),
            Item::S3Upload(u) => Some((&u.bucket, &u.key)),
            Item::S3Lifecycle(l) => Some((&l.bucket, &l.prefix)),
            _ => None,
        }
    }
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Item::File(_) => ArtifactKind::File,
            Item::Symlink(_) => ArtifactKind::Symlink,
            Item::Dir(_) => ArtifactKind::Dir,
            Item::S3Version(_) => ArtifactKind::S3Version,
            Item::S3DeleteMarker(_) => ArtifactKind::S3DeleteMarker,
            Item::S3Upload(_) => ArtifactKind::S3Upload,
            Item::S3Lifecycle(_) => ArtifactKind::S3Lifecycle,
            Item::KmsKey(_) => ArtifactKind::KmsKey,
            Item::LuksKeyslots(_) => ArtifactKind::LuksVolume,
            Item::GcsGeneration(_) => ArtifactKind::GcsGeneration,
            Item::GcsLifecycle(_) => ArtifactKind::GcsLifecycle,
            Item::MlflowVersion(_) => ArtifactKind::MlflowVersion,
            Item::MlflowAlias(_) => ArtifactKind::MlflowAlias,
            Item::MlflowRun(_) => ArtifactKind::MlflowRun,
            Item::MlflowModel(_) => ArtifactKind::MlflowModel,
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            Item::File(f) => f.size,
            Item::S3Version(v) => v.size,
            Item::S3Upload(u) => u.bytes,
            Item::S3Lifecycle(l) => l.bytes,
            Item::LuksKeyslots(l) => l.size,
            Item::GcsGeneration(g) => g.size,
            Item::GcsLifecycle(l) => l.bytes,
            _ => 0,
        }
    }
    pub fn is_local(&self) -> bool {
        self.local_path().is_some()
    }
}

impl Totals {
    pub fn of(artifacts: &[Artifact]) -> Self {
        let mut t = Totals::default();
        for a in artifacts {
            t.add(&a.item);
        }
        t
    }

    /// Count one more item.
    pub fn add(&mut self, item: &Item) {
        self.artifacts += 1;
        self.bytes += item.size();
        match item {
            Item::File(_) => self.files += 1,
            Item::Symlink(_) => self.symlinks += 1,
            Item::Dir(_) => self.dirs += 1,
            Item::S3Version(_) => self.s3_versions += 1,
            Item::S3DeleteMarker(_) => self.s3_delete_markers += 1,
            Item::S3Upload(_) => self.s3_uploads += 1,
            Item::S3Lifecycle(_) => self.s3_lifecycle += 1,
            Item::KmsKey(_) => self.kms_keys += 1,
            Item::LuksKeyslots(_) => self.luks_volumes += 1,
            Item::GcsGeneration(_) => self.gcs_generations += 1,
            Item::GcsLifecycle(_) => self.gcs_lifecycle += 1,
            Item::MlflowVersion(_)
            | Item::MlflowAlias(_)
            | Item::MlflowRun(_)
            | Item::MlflowModel(_) => self.registry_entries += 1,
        }
    }
}

impl Plan {
    /// Read a plan file, returning the parsed plan and its exact bytes (the
    /// bytes are what signatures cover; they are never re-serialized).
    pub fn load(path: &Path) -> Result<(Plan, Vec<u8>)> {
        let bytes = crate::util::read_input(path, "plan", MAX_PLAN)?;
        let plan = Self::parse(&bytes, &path.display().to_string())?;
        Ok((plan, bytes))
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<Plan> {
        let plan: Plan = serde_json::from_slice(bytes)
            .map_err(|e| Error::input(format!("plan {origin}: not a valid decom plan: {e}")))?;
        plan.validate(origin)?;
        Ok(plan)
    }

    /// The structural checks of safety invariant 3, done at load time.
    pub fn validate(&self, origin: &str) -> Result<()> {
        self.validate_with(
            origin,
            self.artifacts
                .iter()
                .map(|a| Ok(std::borrow::Cow::Borrowed(a))),
        )?;
        self.check_hosts(origin)
    }

    /// A fleet plan's host list and per-host totals (counted from the
    /// artifacts held: S3 items belong to no host).
    pub fn check_hosts(&self, origin: &str) -> Result<()> {
        let held = self
            .artifacts
            .iter()
            .map(|a| Ok(std::borrow::Cow::Borrowed(a)));
        self.check_hosts_of(origin, held)
    }

    /// [`Plan::check_hosts`] with the artifacts read from elsewhere (a
    /// fleet plan's parked artifacts).
    pub fn check_hosts_of<'a>(
        &self,
        origin: &str,
        artifacts: impl Iterator<Item = Result<std::borrow::Cow<'a, Artifact>>>,
    ) -> Result<()> {
        fleet::check_hosts(self, artifacts).map_err(|m| Error::input(format!("plan {origin}: {m}")))
    }
}

impl<A> Plan<A> {
    /// The same plan holding `artifacts` instead; returns the ones it held.
    pub fn with_artifacts<B>(self, artifacts: B) -> (Plan<B>, A) {
        let Plan {
            schema,
            tool,
            created,
            host,
            model,
            manifest_sha256,
            manifest,
            profile,
            components,
            components_not_searched,
            retained,
            locations,
            residual_risks,
            hosts,
            local_only,
            totals,
            artifacts: old,
        } = self;
        (
            Plan {
                schema,
                tool,
                created,
                host,
                model,
                manifest_sha256,
                manifest,
                profile,
                components,
                components_not_searched,
                retained,
                locations,
                residual_risks,
                hosts,
                local_only,
                totals,
                artifacts,
            },
            old,
        )
    }

    /// [`Plan::validate`] of a plan whose artifacts arrive one at a time
    /// (in id order), never held together.
    pub fn validate_with<'a>(
        &self,
        origin: &str,
        artifacts: impl Iterator<Item = Result<std::borrow::Cow<'a, Artifact>>>,
    ) -> Result<()> {
        let bad = |m: String| Err(Error::input(format!("plan {origin}: {m}")));
        if self.schema != PLAN_SCHEMA {
            return bad(format!("schema {:?} is not {PLAN_SCHEMA:?}", self.schema));
        }
        if let Err(m) = fleet::check_locations(self) {
            return bad(m);
        }
        for (i, loc) in self.locations.iter().enumerate() {
            loc.check(i).or_else(&bad)?;
        }
        let mut totals = Totals::default();
        for (i, a) in artifacts.enumerate() {
            let a = a?;
            totals.add(&a.item);
            if a.id as usize != i + 1 {
                return bad(format!(
                    "artifact ids must be 1, 2, 3, … in order (found {} at position {})",
                    a.id,
                    i + 1
                ));
            }
            let Some(loc) = a
                .location
                .checked_sub(1)
                .and_then(|l| self.locations.get(l as usize))
            else {
                return bad(format!(
                    "artifact {} names location {}, which does not exist",
                    a.id, a.location
                ));
            };
            if let Err(m) = artifact_in(&a, loc) {
                return bad(m);
            }
        }
        if totals != self.totals {
            return bad("its totals do not add up".into());
        }
        Ok(())
    }

    /// The manifest's entry for a plan location (matched by URI: a fleet
    /// plan holds each local location once per host).
    pub fn manifest_location(&self, loc: &PlanLocation) -> &crate::manifest::Location {
        self.manifest
            .locations
            .iter()
            .find(|m| m.uri == loc.uri)
            .expect("validated: every location is one of its manifest's")
    }
}

impl Plan {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::util::to_json_bytes(self)
    }
}

/// Writes a plan whose artifacts arrive one at a time, byte for byte what
/// [`Plan::to_bytes`] writes for the whole plan: the header (every field
/// but the artifacts, which come last; its totals must already count
/// them), then each artifact. Memory holds one artifact, not the plan.
pub struct PlanWriter<'w> {
    w: crate::hash::Hashing<&'w mut dyn std::io::Write>,
    written: u32,
}

impl<'w> PlanWriter<'w> {
    /// Write `header` (whose artifacts are empty) up to its artifacts.
    pub fn start(w: &'w mut dyn std::io::Write, header: &Plan) -> std::io::Result<Self> {
        debug_assert!(header.artifacts.is_empty());
        let text = String::from_utf8(header.to_bytes()).expect("JSON is UTF-8");
        let open = text
            .strip_suffix("  \"artifacts\": []\n}\n")
            .expect("artifacts are the plan's last field");
        let mut w = crate::hash::Hashing::new(w);
        std::io::Write::write_all(&mut w, open.as_bytes())?;
        Ok(PlanWriter { w, written: 0 })
    }

    /// Write the next artifact (its id is the caller's).
    pub fn push(&mut self, a: &Artifact) -> std::io::Result<()> {
        use std::io::Write;
        self.written += 1;
        self.w.write_all(if self.written == 1 {
            b"  \"artifacts\": [\n"
        } else {
            b",\n"
        })?;
        let text = serde_json::to_string_pretty(a).expect("artifacts serialize");
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                self.w.write_all(b"\n")?;
            }
            self.w.write_all(b"    ")?;
            self.w.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// Close the plan; the SHA-256 of everything written.
    pub fn finish(mut self) -> std::io::Result<String> {
        use std::io::Write;
        self.w.write_all(if self.written == 0 {
            b"  \"artifacts\": []\n}\n"
        } else {
            b"\n  ]\n}\n"
        })?;
        Ok(self.w.hex())
    }
}

pub use crate::util::check_normalised;

/// `path` relative to `root` (both normalised absolute), if strictly under it.
pub fn relative_to<'a>(path: &'a str, root: &str) -> Option<&'a Path> {
    let rel = Path::new(path).strip_prefix(root).ok()?;
    if rel.as_os_str().is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, PathComponent::Normal(_)))
    {
        return None;
    }
    Some(rel)
}

/// Whether an artifact is one its location can hold: a local path under
/// the root on its device, an S3 key or GCS name under the prefix, the
/// registry entry's own items, the volume, an erasable KMS key.
fn artifact_in(a: &Artifact, loc: &PlanLocation) -> std::result::Result<(), String> {
    match (&loc.store, a.item.local_path(), a.item.s3_key()) {
        (Store::Local(root), Some(path), _) => {
            if let Err(m) = check_normalised(path) {
                return Err(format!("artifact {} path {path:?}: {m}", a.id));
            }
            if relative_to(path, &root.root).is_none() {
                return Err(format!(
                    "artifact {} path {path:?} is not under its location {}",
                    a.id, root.root
                ));
            }
            let dev = a.item.device().expect("local items have devices");
            if !root.cross_filesystems && dev != root.device {
                return Err(format!(
                    "artifact {} {path:?} is on device {dev} but its location is on device {} and may not cross filesystems",
                    a.id, root.device
                ));
            }
        }
        (Store::Gcs(g), _, _) => {
            let scope = crate::util::Scope::new(&g.prefix);
            let ok = match &a.item {
                Item::GcsGeneration(x) => x.bucket == g.bucket && scope.contains(&x.name),
                Item::GcsLifecycle(l) => {
                    l.bucket == g.bucket
                        && (l.prefix == g.prefix || l.prefix == format!("{}/", g.prefix))
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "artifact {} {} is not in its location gs://{}/{}",
                    a.id,
                    a.item.path(),
                    g.bucket,
                    g.prefix
                ));
            }
        }
        (Store::Mlflow(m), _, _) => {
            let ok = match &a.item {
                Item::MlflowVersion(v) => v.name == m.name && v.version == m.version,
                Item::MlflowAlias(x) => x.name == m.name && x.version == m.version,
                Item::MlflowModel(x) => x.name == m.name,
                Item::MlflowRun(_) => true,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "artifact {} {} is not of its registry entry {}/{}",
                    a.id,
                    a.item.path(),
                    m.name,
                    m.version
                ));
            }
        }
        (Store::Luks(v), _, _) => match &a.item {
            Item::LuksKeyslots(l) if l.device == v.device && l.uuid == v.uuid => {}
            _ => {
                return Err(format!(
                    "artifact {} is not the LUKS volume of its location",
                    a.id
                ));
            }
        },
        (Store::S3(s), _, None) if matches!(a.item, Item::KmsKey(_)) => {
            let Item::KmsKey(k) = &a.item else {
                unreachable!()
            };
            if !s.kms_keys.iter().any(|f| f.erase && f.key_arn == k.key_arn) {
                return Err(format!(
                    "artifact {} destroys KMS key {}, which its location does not name as erasable",
                    a.id, k.key_arn
                ));
            }
            if !crate::manifest::CRYPTO_ERASE_DAYS.contains(&k.window_days) {
                return Err(format!(
                    "artifact {}: a KMS deletion window of {} days (7 to 30)",
                    a.id, k.window_days
                ));
            }
        }
        (Store::S3(s), _, Some((bucket, key))) => {
            if bucket != s.bucket || !crate::store::s3::spec::Scope::new(&s.prefix).contains(key) {
                return Err(format!(
                    "artifact {} s3://{bucket}/{key} is not under its location {}",
                    a.id, loc.uri
                ));
            }
        }
        _ => return Err(format!("artifact {} is not of its location's kind", a.id)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn risk_kinds_keep_their_words_and_an_unknown_one_is_kept_as_written() {
        for k in [
            "shared-content",
            "s3-object-lock",
            "decom-own-file",
            "unreadable",
        ] {
            let v: RiskKind = serde_json::from_str(&format!("{k:?}")).unwrap();
            assert!(!matches!(v, RiskKind::Other(_)), "{k} is known");
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("{k:?}"));
        }
        let v: RiskKind = serde_json::from_str("\"from-a-newer-decom\"").unwrap();
        assert_eq!(v, RiskKind::Other("from-a-newer-decom".into()));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"from-a-newer-decom\"");
        assert!(
            RiskKind::S3Lifecycle < RiskKind::SharedContent,
            "sorted by name"
        );
    }
    use super::*;

    #[test]
    fn normalised_paths() {
        assert!(check_normalised("/srv/models/a.bin").is_ok());
        for bad in [
            "srv/a",
            "/srv/../etc/passwd",
            "/srv/./a",
            "/srv//a",
            "/srv/a/",
            "/srv/a\nb",
        ] {
            assert!(check_normalised(bad).is_err(), "{bad}");
        }
    }

    /// The direct read of an artifact and serde's buffered one agree, in
    /// decom's field order and in any other; an unknown kind is refused.
    #[test]
    fn artifacts_read_in_any_field_order() {
        let written = r#"[
            {"id": 1, "location": 1, "kind": "s3-version", "bucket": "b", "key": "m/a.bin",
             "version_id": "v1", "is_latest": true, "size": 3, "etag": "\"e\"",
             "last_modified": "2026-01-01T00:00:00Z", "legal_hold": false,
             "matched": {"how": "all"}},
            {"id": 2, "location": 1, "kind": "s3-delete-marker", "bucket": "b", "key": "m/b",
             "version_id": "v2", "is_latest": true, "last_modified": "2026-01-01T00:00:00Z"}
        ]"#;
        let direct: Vec<Artifact> = serde_json::from_str(written).unwrap();
        let mut shuffled: Vec<serde_json::Value> = serde_json::from_str(written).unwrap();
        for a in &mut shuffled {
            let o = a.as_object_mut().unwrap();
            let location = o.remove("location").unwrap();
            o.insert("location".into(), location);
        }
        // serde_json's map is ordered by key: `bucket` now comes first.
        let buffered: Vec<Artifact> =
            serde_json::from_str(&serde_json::to_string(&shuffled).unwrap()).unwrap();
        let text = |a: &Vec<Artifact>| serde_json::to_string(a).unwrap();
        assert_eq!(text(&direct), text(&buffered));
        // What decom writes is what the direct read expects.
        assert!(
            text(&direct).starts_with(r#"[{"id":1,"location":1,"kind":"s3-version","#),
            "{}",
            text(&direct)
        );
        assert!(matches!(direct[0].item, Item::S3Version(ref v) if v.etag == "\"e\""));
        assert!(matches!(direct[1].item, Item::S3DeleteMarker(ref m) if m.key == "m/b"));
        assert_eq!((direct[1].id, direct[1].location), (2, 1));

        // A field named twice is refused by both reads, as the derive
        // refuses it: after `kind` (direct), and in any order (buffered).
        for twice in [
            r#"{"id": 2, "location": 1, "kind": "s3-delete-marker", "bucket": "b", "key": "m/b",
                "version_id": "v2", "is_latest": true, "last_modified": "x", "location": 2}"#,
            r#"{"id": 2, "location": 1, "kind": "s3-delete-marker", "bucket": "b", "key": "m/b",
                "version_id": "v2", "is_latest": true, "last_modified": "x", "kind": "file"}"#,
            r#"{"id": 2, "location": 1, "kind": "s3-delete-marker", "bucket": "b", "key": "m/b",
                "version_id": "v2", "is_latest": true, "last_modified": "x", "key": "m/c"}"#,
            r#"{"kind": "s3-delete-marker", "id": 2, "location": 1, "bucket": "b", "key": "m/b",
                "version_id": "v2", "is_latest": true, "last_modified": "x", "key": "m/c"}"#,
            r#"{"location": 1, "id": 2, "kind": "s3-delete-marker", "bucket": "b", "key": "m/b",
                "version_id": "v2", "is_latest": true, "last_modified": "x", "id": 3}"#,
        ] {
            let e = serde_json::from_str::<Artifact>(twice).unwrap_err();
            assert!(e.to_string().contains("duplicate field"), "{e}");
        }

        let unknown = r#"{"id": 1, "location": 1, "kind": "s3-bucket"}"#;
        let e = serde_json::from_str::<Artifact>(unknown).unwrap_err();
        assert!(e.to_string().contains("s3-bucket"), "{e}");
    }

    /// Every kind [`Item`] knows is an [`ArtifactKind`], which the direct
    /// read goes by (the derive's own error lists them).
    #[test]
    fn the_direct_read_knows_every_kind() {
        let e = serde_json::from_str::<Item>(r#"{"kind": "none"}"#).unwrap_err();
        let e = e.to_string();
        let listed = e.split("expected one of ").nth(1).expect(&e);
        let kinds: Vec<&str> = listed
            .split(", ")
            .map(|k| k.trim_start_matches('`').split('`').next().unwrap())
            .collect();
        assert!(kinds.len() >= 9, "{kinds:?}");
        for k in kinds {
            assert!(
                serde_json::from_str::<ArtifactKind>(&format!("{k:?}")).is_ok(),
                "{k}"
            );
        }
    }

    #[test]
    fn relative_to_needs_strictly_under() {
        assert_eq!(relative_to("/srv/m/a", "/srv/m"), Some(Path::new("a")));
        assert_eq!(relative_to("/srv/m", "/srv/m"), None);
        assert_eq!(relative_to("/srv/mx/a", "/srv/m"), None);
        assert_eq!(relative_to("/etc/passwd", "/srv/m"), None);
    }
}
