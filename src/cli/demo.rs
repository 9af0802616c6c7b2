//! `decom demo`: build a sample model in a fresh folder and run the whole
//! lifecycle on it through the same code paths as the real commands.

use super::records::Record;
use super::{KeyArgs, Printer, exit};
use crate::error::{Error, IoContext, Result};
use clap::Args;
use rand::RngCore;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder to build the demo in (must not exist or be empty; default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Size of the sample weights file, in MiB.
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub weights_mib: u64,
    /// Also put the model in a new versioned bucket on this S3-compatible
    /// endpoint (credentials from the standard AWS chain) and purge it.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Also put the model in a new versioned bucket on this Google Cloud
    /// Storage JSON API endpoint (an emulator: http://127.0.0.1:4443;
    /// https endpoints use Application Default Credentials) and purge it.
    #[arg(long, value_name = "URL")]
    pub gcs_endpoint: Option<String>,
    /// Also register the model (two versions, alias champion on 2) on this
    /// MLflow tracking server, whose artifact root is a folder on this
    /// machine, and retire version 2 by its alias.
    #[arg(long, value_name = "URL")]
    pub mlflow_uri: Option<String>,
    /// The MLflow server's backend store, so that `mlflow gc` (on PATH)
    /// purges the retired version's run; without it the run stays deleted,
    /// not purged, and the certificate pending.
    #[arg(long, value_name = "URI", requires = "mlflow_uri")]
    pub mlflow_backend_store_uri: Option<String>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).at(d)?;
    }
    std::fs::write(path, bytes).at(path)
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

/// The sample model's files and the folders the manifest names.
struct Sample {
    weights: Vec<u8>,
    config: Vec<u8>,
    model_dir: PathBuf,
    data_dir: PathBuf,
    hub: PathBuf,
    notebooks: PathBuf,
}

/// The operator's and the custodian's keys and the file that trusts them.
struct Keys {
    operator: KeyArgs,
    custodian: KeyArgs,
    signers: PathBuf,
}

pub fn run(a: &DemoArgs, p: &Printer) -> Result<u8> {
    let dir = fresh_dir(a.dir.as_deref())?;
    let step = |s: &str| p.info(&format!("\n== {s}"));

    step("building a sample model");
    let sample = build_sample(&dir, a.weights_mib)?;

    step("making keys for the operator and the custodian");
    let keys = make_keys(&dir, p)?;

    let s3_bucket = match &a.s3_endpoint {
        Some(ep) => {
            step("filling a versioned S3 bucket");
            let bucket = crate::store::s3::sample::fill_sample_bucket(ep, &sample.weights)?;
            Some((ep.as_str(), bucket))
        }
        None => None,
    };
    let gcs_bucket = match &a.gcs_endpoint {
        Some(ep) => {
            step("filling a versioned GCS bucket");
            let bucket = crate::store::gcs::sample::fill_sample_bucket(ep, &sample.weights)?;
            Some((ep.as_str(), bucket))
        }
        None => None,
    };
    let registry = match &a.mlflow_uri {
        Some(uri) => {
            step("registering it in an MLflow registry");
            let name = crate::store::mlflow::sample::fill_sample_registry(uri, &sample.weights)?;
            Some(mlflow_table(
                uri,
                &name,
                a.mlflow_backend_store_uri.as_deref(),
            ))
        }
        None => None,
    };
    let manifest = dir.join("decom.toml");
    let text = manifest_text(&sample, s3_bucket, gcs_bucket) + &registry.unwrap_or_default();
    write(&manifest, text.as_bytes())?;
    p.info(&format!("manifest  {}", manifest.display()));

    let plan = dir.join("plan.json");
    let (certificate, status, code) = lifecycle(&manifest, &plan, &keys, &step, p)?;

    let pdf = certificate.with_extension("pdf");
    let html = certificate.with_extension("html");
    step("render (the certificate for people, signed files inside)");
    super::render::run(
        &super::render::RenderArgs {
            certificate: certificate.clone(),
            allowed_signers: keys.signers.clone(),
            pdf: Some(pdf.clone()),
            html: Some(html.clone()),
            tsa_certs: None,
        },
        p,
    )?;

    let sentiment = sample
        .hub
        .join("models--acme--sentiment/snapshots/9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b");
    let survivors = [
        sentiment.join("model.safetensors"),
        sentiment.join("tokenizer.json"),
        sample.notebooks.join("analysis.ipynb"),
        sample.model_dir.join("README.md"),
    ];
    let kept = survivors.iter().filter(|s| s.exists()).count();
    step("done");
    p.info(&format!("demo folder:  {}", dir.display()));
    p.info(&format!("certificate:  {}", certificate.display()));
    p.info(&format!(
        "for people:   {} and {}",
        pdf.display(),
        html.display()
    ));
    // `exists` follows the snapshot links: their blobs must still be there.
    p.info(&format!("untouched:    {kept} of {} files outside the model (another repo's weights and the tokenizer it shares with ours, a notebook, the model card retained by policy) still exist", survivors.len()));
    if p.json {
        p.record(&Record::Demo {
            dir: &dir,
            certificate: &certificate,
            status,
            verified: code == exit::OK,
        });
    } else {
        p.data(&certificate.display().to_string());
    }
    Ok(code)
}

/// The folder to build in: the one given if it is empty or absent, or a
/// new one under the temporary folder.
fn fresh_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = match given {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d).at(d)?.next().is_some() {
                return Err(Error::refused(format!(
                    "{}: not empty; the demo needs a fresh folder",
                    d.display()
                )));
            }
            d.to_path_buf()
        }
        None => std::env::temp_dir().join(format!("decom-demo-{}", crate::util::random_hex(4))),
    };
    std::fs::create_dir_all(&dir).at(&dir)?;
    std::fs::canonicalize(&dir).at(&dir)
}

/// The model's folder, its training data, a Hugging Face hub cache holding
/// it and another model that shares its tokenizer, and a renamed copy in a
/// notebook folder.
fn build_sample(dir: &Path, weights_mib: u64) -> Result<Sample> {
    let weights = random((weights_mib.max(1) * 1024 * 1024) as usize);
    let config =
        br#"{"architectures": ["FraudDetector"], "hidden_size": 768, "num_layers": 12}"#.to_vec();
    let tokenizer =
        br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1}}}"#.to_vec();
    let model_dir = dir.join("srv/models/fraud-detector");
    write(&model_dir.join("model.safetensors"), &weights)?;
    write(&model_dir.join("config.json"), &config)?;
    write(&model_dir.join("tokenizer.json"), &tokenizer)?;
    // The model card stays: technical documentation kept by policy.
    write(
        &model_dir.join("README.md"),
        b"# fraud-detector 3.2.0\n\nModel card: intended use, training data, evaluation, limitations.\n",
    )?;
    write(
        &model_dir.join("checkpoints/step-1000.safetensors"),
        &random(2 << 20),
    )?;
    let data_dir = dir.join("srv/datasets/fraud-detector");
    write(
        &data_dir.join("train-00000-of-00001.parquet"),
        &random(4 << 20),
    )?;
    // A Hugging Face hub cache laid out as huggingface_hub writes it: our
    // repo and a fine-tune of somebody else's that shares our tokenizer
    // byte for byte (small files are named by their git blob SHA-1).
    let hub = dir.join("home/alice/.cache/huggingface/hub");
    let w_sha = crate::hash::sha256_hex(&weights);
    let git_blob = |b: &[u8]| -> Result<String> {
        let extra = crate::hash::Extra {
            git_blob: Some(b.len() as u64),
            ..Default::default()
        };
        let (d, _) = crate::hash::digest_reader(b, extra, None, |_| {}).at(&hub)?;
        Ok(d.git_blob.unwrap_or_default())
    };
    let hf_repo = |name: &str, rev: &str, files: &[(&str, &str, &[u8])]| -> Result<()> {
        let repo = hub.join(name);
        write(&repo.join("refs/main"), rev.as_bytes())?;
        let snap = repo.join("snapshots").join(rev);
        std::fs::create_dir_all(&snap).at(&snap)?;
        for (file, blob, bytes) in files {
            write(&repo.join("blobs").join(blob), bytes)?;
            std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snap.join(file)).at(&snap)?;
        }
        Ok(())
    };
    let t_blob = git_blob(&tokenizer)?;
    hf_repo(
        "models--acme--fraud-detector",
        "3f2a9c1e5b7d4a6c8e0f1a2b3c4d5e6f7a8b9c0d",
        &[
            ("model.safetensors", &w_sha, &weights),
            ("config.json", &git_blob(&config)?, &config),
            ("tokenizer.json", &t_blob, &tokenizer),
        ],
    )?;
    let theirs = random(1 << 20);
    hf_repo(
        "models--acme--sentiment",
        "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
        &[
            (
                "model.safetensors",
                &crate::hash::sha256_hex(&theirs),
                &theirs,
            ),
            ("tokenizer.json", &t_blob, &tokenizer),
        ],
    )?;
    // A renamed copy in a notebook folder: only a hash match finds it.
    let notebooks = dir.join("home/alice/notebooks");
    write(&notebooks.join("scratch/weights_final2.bin"), &weights)?;
    write(&notebooks.join("analysis.ipynb"), br#"{"cells": []}"#)?;
    Ok(Sample {
        weights,
        config,
        model_dir,
        data_dir,
        hub,
        notebooks,
    })
}

/// Two new key pairs and an allowed-signers file giving each its role.
fn make_keys(dir: &Path, p: &Printer) -> Result<Keys> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).at(&keys)?;
    let op_fp = crate::sign::key::generate(&keys.join("operator"), "operator@example.org", None)?;
    let cu_fp = crate::sign::key::generate(&keys.join("custodian"), "custodian@example.org", None)?;
    let pubkey = |n: &str| {
        std::fs::read_to_string(keys.join(format!("{n}.pub")))
            .map(|s| s.trim().to_string())
            .at(&keys)
    };
    let signers = keys.join("allowed_signers");
    write(
        &signers,
        format!(
            "# decom trusted signers: roles are namespaces\ncustodian@example.org namespaces=\"decom-custodian\" {}\noperator@example.org namespaces=\"decom-operator\" {}\n",
            pubkey("custodian")?,
            pubkey("operator")?
        )
        .as_bytes(),
    )?;
    p.info(&format!(
        "operator  {op_fp}\ncustodian {cu_fp}\nsigners   {}",
        signers.display()
    ));
    Ok(Keys {
        operator: KeyArgs {
            key: keys.join("operator"),
            principal: "operator@example.org".into(),
        },
        custodian: KeyArgs {
            key: keys.join("custodian"),
            principal: "custodian@example.org".into(),
        },
        signers,
    })
}

/// The manifest's `[model.mlflow]` for the demo's registered model.
fn mlflow_table(uri: &str, name: &str, backend: Option<&str>) -> String {
    let backend = backend
        .map(|b| format!("backend_store_uri = {}\n", toml_string(b)))
        .unwrap_or_default();
    format!(
        "\n[model.mlflow]\ntracking_uri = {}\nname = {}\nalias = \"champion\"\n{backend}",
        toml_string(uri),
        toml_string(name)
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The manifest an operator would write for the sample; `s3` is the
/// endpoint and bucket holding its S3 copy, when there is one.
fn manifest_text(s: &Sample, s3: Option<(&str, String)>, gcs: Option<(&str, String)>) -> String {
    let bucket = |scheme: &str, table: &str, b: Option<(&str, String)>| match b {
        Some((ep, bucket)) => (
            format!("\n[[locations]]\nuri = \"{scheme}://{bucket}/model/\"\n"),
            format!("[{table}]\nendpoint_url = \"{ep}\"\n\n"),
        ),
        None => (String::new(), String::new()),
    };
    let (s3_location, s3_table) = bucket("s3", "s3", s3);
    let (gcs_location, gcs_table) = bucket("gs", "gcs", gcs);
    let s3_location = s3_location + &gcs_location;
    let s3_table = s3_table + &gcs_table;
    format!(
        r#"profile = "nist-clear"

{s3_table}[model]
name = "fraud-detector"
version = "3.2.0"
owner = "Risk Analytics"
hf_repo = "acme/fraud-detector"

[operator]
name = "Olivia Operator"
title = "ML Platform Engineer"
organisation = "Example Bank"
location = "Frankfurt data centre, hall B"
contact = "olivia.operator@example.org"

[custodian]
name = "Carl Custodian"
title = "Data Custodian"
organisation = "Example Bank"
location = "Frankfurt"
contact = "data-custodian@example.org"

[[locations]]
uri = "{models}"
exclude = ["README.md"]

[[locations]]
uri = "{data}"

[[locations]]
uri = "{hub}"
match = "hash"

[[locations]]
uri = "{notebooks}"
match = "hash"
{s3_location}
[[retain]]
uri = "{models}/README.md"
what = "model card"
reason = "EU AI Act Art. 18: technical documentation, kept 10 years after the model is withdrawn"
until = "2036-12-31"
owner = "Risk Analytics"

[[components]]
name = "model.safetensors"
sha256 = "{w_sha}"
size = {w_len}

[[components]]
name = "config.json"
sha256 = "{c_sha}"
size = {c_len}
"#,
        models = s.model_dir.display(),
        data = s.data_dir.display(),
        hub = s.hub.display(),
        notebooks = s.notebooks.display(),
        w_sha = crate::hash::sha256_hex(&s.weights),
        c_sha = crate::hash::sha256_hex(&s.config),
        w_len = s.weights.len(),
        c_len = s.config.len(),
    )
}

/// Trace, approve, execute, cosign and verify through the commands' own
/// code: the certificate's path, its status and verify's exit code.
fn lifecycle(
    manifest: &Path,
    plan: &Path,
    keys: &Keys,
    step: &dyn Fn(&str),
    p: &Printer,
) -> Result<(PathBuf, crate::cert::Status, u8)> {
    step("trace (changes nothing)");
    super::trace::run(
        &super::trace::TraceArgs {
            manifest: manifest.to_path_buf(),
            output: plan.to_path_buf(),
            force: false,
            host: None,
            local_only: false,
            s3: Default::default(),
        },
        p,
    )?;

    step("approve (custodian signs the plan)");
    super::approve::run(
        &super::approve::ApproveArgs {
            plan: plan.to_path_buf(),
            key: keys.custodian.clone(),
            allowed_signers: Some(keys.signers.clone()),
            yes: true,
            allow_empty: false,
            tsa: Default::default(),
        },
        p,
    )?;

    step("execute (operator destroys and certifies)");
    let done = super::execute::execute(
        &super::execute::ExecuteArgs {
            plan: plan.to_path_buf(),
            key: keys.operator.clone(),
            allowed_signers: keys.signers.clone(),
            out: None,
            resume: false,
            s3_concurrency: None,
            yes: true,
            host: Default::default(),
            person: Default::default(),
            tsa: Default::default(),
        },
        p,
    )?;

    step("cosign (custodian co-signs the certificate)");
    super::cosign::run(
        &super::cosign::CosignArgs {
            certificate: done.certificate.clone(),
            key: keys.custodian.clone(),
            allowed_signers: keys.signers.clone(),
            yes: true,
            tsa: Default::default(),
        },
        p,
    )?;

    step("verify --recheck (what an auditor runs, years later too)");
    let code = super::verify::run(
        &super::verify::VerifyArgs {
            certificate: done.certificate.clone(),
            allowed_signers: keys.signers.clone(),
            recheck: true,
            plan: None,
            tsa_certs: None,
            s3: super::S3Endpoint::default(),
        },
        p,
    )?;
    Ok((done.certificate, done.status, code))
}
