//! `[[retain]]`: records kept deliberately. Never planned, approved with
//! the plan by their SHA-256, listed in the certificate as retained by
//! policy, and checked by `verify --recheck` until their end date.

use crate::common::*;

const CARD: &[u8] = b"# m\nModel card: intended use, evaluation, limitations.\n";

/// A model folder whose model card is retained; `exclude` is the
/// location's exclude line (empty: none), `until` the end date.
fn model_with_card(env: &Env, exclude: &str, until: &str) {
    env.file("models/m/model.safetensors", &random_bytes(50_000));
    env.file("models/m/README.md", CARD);
    env.manifest(
        "nist-clear",
        &format!(
            "[[locations]]\nuri = \"{dir}\"\n{exclude}\n[[retain]]\nuri = \"{dir}/README.md\"\nwhat = \"model card\"\nreason = \"EU AI Act Art. 18: technical documentation, 10 years\"\nuntil = \"{until}\"\nowner = \"Risk Analytics\"\n",
            dir = env.path("models/m").display()
        ),
    );
}

#[test]
fn a_retained_model_card_stays_is_certified_as_retained_and_rechecked_until_its_end_date() {
    let env = Env::new();
    model_with_card(&env, "exclude = [\"README.md\"]", "2099-12-31");
    env.trace().ok();
    let plan = env.plan_json();
    let r = &plan["retained"][0];
    assert_eq!(r["what"], "model card");
    assert_eq!(r["sha256"], sha256_file(&env.path("models/m/README.md")));
    assert_eq!(r["size"], CARD.len());
    assert!(!env.planned_paths().iter().any(|p| p.ends_with("README.md")));
    env.approve().ok();
    env.execute().ok();
    env.cosign().ok();
    assert_eq!(std::fs::read(env.path("models/m/README.md")).unwrap(), CARD);
    assert!(!env.path("models/m/model.safetensors").exists());
    let c = env.cert_json();
    assert_eq!(c["status"], "complete");
    let kept = &c["retained"][0];
    assert_eq!(
        kept["record"]["reason"],
        "EU AI Act Art. 18: technical documentation, 10 years"
    );
    assert_eq!(kept["record"]["until"], "2099-12-31");
    assert_eq!(kept["unchanged"], true, "{kept}");
    // The sanitization table adds up the disposed file, in the terms of
    // its medium: Clear only where the file's own category says clear.
    let file = c["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "file")
        .unwrap()
        .clone();
    let rows = c["sanitization"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["artifacts"], 1);
    assert_eq!(rows[0]["bytes"], file["size"]);
    let want = match file["sanitization"]["category"].as_str().unwrap() {
        "clear" => "Clear",
        _ => "none: logical sanitization",
    };
    assert_eq!(rows[0]["method"], want, "{rows:?}");
    // Never a residual risk, never an artifact.
    assert!(!c["residual_risks"].to_string().contains("README.md"));
    assert!(!c["artifacts"].to_string().contains("README.md"));
    let r = env.recheck();
    r.ok();
    assert!(r.stdout.contains("ok   retained records:"), "{}", r.stdout);
    assert!(r.stdout.contains("present and unchanged"), "{}", r.stdout);

    // Edited before its end date: the recheck fails and says so.
    std::fs::write(env.path("models/m/README.md"), b"rewritten").unwrap();
    let r = env.recheck();
    r.code(1);
    assert!(r.stdout.contains("FAIL retained records:"), "{}", r.stdout);
    assert!(r.stdout.contains("has changed"), "{}", r.stdout);
    // Gone before its end date: likewise.
    std::fs::remove_file(env.path("models/m/README.md")).unwrap();
    let r = env.recheck();
    r.code(1);
    assert!(r.stdout.contains("is no longer there"), "{}", r.stdout);
}

#[test]
fn after_its_end_date_a_retained_record_is_not_looked_at() {
    let env = Env::new();
    model_with_card(&env, "exclude = [\"README.md\"]", "2020-01-31");
    env.trace().ok();
    env.approve().ok();
    env.execute().ok();
    env.cosign().ok();
    std::fs::remove_file(env.path("models/m/README.md")).unwrap();
    let r = env.recheck();
    r.ok();
    assert!(
        r.stdout
            .contains("retention ended on 2020-01-31, not looked at"),
        "{}",
        r.stdout
    );
}

/// A location that covers a retained file without excluding it, a bad end
/// date, a link, a folder and a bucket: each a one-line input error, exit
/// 2, no plan written and nothing touched.
#[test]
fn retain_entries_a_location_would_plan_or_that_name_no_file_are_refused() {
    let env = Env::new();
    model_with_card(&env, "", "2099-12-31");
    let before = env.snapshot(&env.path("models"));
    env.trace()
        .code(2)
        .one_line_error("covers it; add \"README.md\" to that location's exclude");
    assert!(!env.plan().exists());
    std::os::unix::fs::symlink(env.path("models/m/README.md"), env.path("card-link.md")).unwrap();
    env.file("docs/report.pdf", b"%PDF");
    let dir = env.path("models/m").display().to_string();
    for (retain, needle) in [
        (
            format!("uri = \"{dir}/README.md\"\nuntil = \"31.12.2099\""),
            "is not a date of the form YYYY-MM-DD",
        ),
        (
            format!(
                "uri = \"{}\"\nuntil = \"2099-12-31\"",
                env.path("card-link.md").display()
            ),
            "is a symbolic link",
        ),
        (
            format!(
                "uri = \"{}\"\nuntil = \"2099-12-31\"",
                env.path("docs").display()
            ),
            "is not a regular file",
        ),
        (
            "uri = \"s3://bucket/card.md\"\nuntil = \"2099-12-31\"".to_string(),
            "only local files can be retained",
        ),
    ] {
        env.manifest(
            "nist-clear",
            &format!(
                "[[locations]]\nuri = \"{dir}\"\nexclude = [\"README.md\"]\n[[retain]]\n{retain}\nwhat = \"model card\"\nreason = \"policy\"\nowner = \"me\"\n"
            ),
        );
        env.trace().code(2).one_line_error(needle);
        assert!(!env.plan().exists());
    }
    assert_eq!(env.snapshot(&env.path("models")), before, "nothing touched");
}
