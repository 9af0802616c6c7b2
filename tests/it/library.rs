//! The library called directly, as another program would (rustic_core's
//! integration tests do the same): no binary, no terminal, the `Silent`
//! progress. The CLI is the `cli` feature; the library builds without it
//! (`cargo build --lib --no-default-features`).

use crate::common::*;
use decom::manifest::Manifest;
use decom::plan::{Item, Plan, RiskKind};

#[test]
fn trace_through_the_library_writes_a_plan_that_loads() {
    let env = Env::new();
    let weights = env.file("models/m/model.safetensors", &random_bytes(5000));
    env.file("models/m/keys/notes.txt", b"not a key");
    std::os::unix::net::UnixListener::bind(env.path("models/m/daemon.sock")).unwrap();
    let text = format!(
        "profile = \"nist-clear\"\n[model]\nname = \"m\"\nversion = \"1\"\n[[locations]]\nuri = \"{}\"\n",
        env.path("models/m").display()
    );
    let manifest = Manifest::parse(&text, "test").unwrap();
    let resolved = manifest.resolve("0".repeat(64), &env.root).unwrap();
    let out = env.path("plan.json");
    let (plan, sha256) = decom::trace::trace(
        &resolved,
        &Default::default(),
        ("host-a", false),
        &decom::progress::Silent,
        &out,
    )
    .unwrap();
    assert_eq!(plan.host, "host-a");
    let (loaded, bytes) = Plan::load(&out).unwrap();
    assert_eq!(decom::hash::sha256_hex(&bytes), sha256);
    let files: Vec<&str> = loaded
        .artifacts
        .iter()
        .filter_map(|a| match &a.item {
            Item::File(f) => Some(f.path.as_str()),
            _ => None,
        })
        .collect();
    assert!(files.contains(&weights.to_str().unwrap()), "{files:?}");
    assert!(
        loaded
            .residual_risks
            .iter()
            .any(|r| r.kind == RiskKind::SpecialFile && r.subject.ends_with("daemon.sock")),
        "{:?}",
        loaded.residual_risks
    );
}

#[test]
fn a_system_folder_is_refused_by_the_library_too() {
    let text = "profile = \"nist-clear\"\n[model]\nname = \"m\"\nversion = \"1\"\n[[locations]]\nuri = \"/etc\"\n";
    let manifest = Manifest::parse(text, "test").unwrap();
    let e = manifest
        .resolve("0".repeat(64), std::path::Path::new("/"))
        .unwrap_err();
    assert!(matches!(e, decom::Error::Input(_)), "{e}");
    assert!(e.to_string().contains("allow_system"), "{e}");
}
