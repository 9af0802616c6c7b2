//! Fleets: several hosts, one approved plan, one fleet certificate.
//!
//! Each "host" is a process with its own hostname (a UTS namespace) and its
//! own folder bind-mounted at the shared path the manifest names (a mount
//! namespace), through `scripts/as-host.sh`: every host sees its own files
//! at the same path, as on real machines. The S3 location is on moto.

use crate::common::{
    APPROVING, AS_CUSTODIAN, AS_OPERATOR, CUSTODIAN, Env, OPERATOR, Run, bin, random_bytes, signed,
};
use crate::s3::S3Env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Fleet {
    pub s: S3Env,
    pub hosts: Vec<String>,
    pub shared: PathBuf,
}

pub fn as_host_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/as-host.sh")
}

impl Fleet {
    /// Hosts with two model files each under the shared path, and two
    /// object versions under `s3://bucket/m/`.
    pub fn new(hosts: &[&str]) -> Fleet {
        let s = S3Env::new();
        s.create_bucket(true, false);
        s.put("m/a.bin", &random_bytes(100));
        s.put("m/a.bin", &random_bytes(100));
        let shared = s.env.path("srv/models");
        std::fs::create_dir_all(&shared).unwrap();
        for h in hosts {
            s.env.file(
                &format!("hosts/{h}/models/weights-{h}.bin"),
                &random_bytes(4096),
            );
            s.env.file(
                &format!("hosts/{h}/models/cfg/config.json"),
                b"{\"hidden\": 8}",
            );
        }
        s.env.manifest(
            "nist-clear",
            &format!(
                "[[locations]]\nuri = \"{}\"\n[[locations]]\nuri = \"s3://{}/m/\"\n",
                shared.display(),
                s.bucket
            ),
        );
        std::fs::create_dir_all(s.env.path("plans")).unwrap();
        Fleet {
            s,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            shared,
        }
    }

    pub fn env(&self) -> &Env {
        &self.s.env
    }

    pub fn host_dir(&self, h: &str) -> PathBuf {
        self.env().path(&format!("hosts/{h}/models"))
    }

    /// `decom ARGS` as host `h`.
    pub fn on(&self, h: &str, args: &[&str]) -> Run {
        self.on_with(h, args, &[])
    }

    pub fn on_with(&self, h: &str, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut c = Command::new(as_host_script());
        c.current_dir(&self.env().root)
            .env_remove("DECOM_KEY_PASSPHRASE")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DECOM_TEST_ABORT_AFTER_RECORDS")
            .env_remove("DECOM_TEST_FAIL_AFTER_RECORDS");
        self.s.store.env(&mut c);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.arg(h)
            .arg(self.host_dir(h))
            .arg(&self.shared)
            .arg(bin())
            .args(args);
        Run::from(c.output().unwrap())
    }

    /// Every host traces (its hostname is the default --host), then the
    /// plans are merged and the custodian approves the fleet plan.
    pub fn approved(&self) {
        let ep = self.s.store.endpoint.clone();
        let mut parts = Vec::new();
        for h in &self.hosts {
            let out = format!("plans/plan.{h}.json");
            self.on(
                h,
                &["trace", "decom.toml", "-o", &out, "--endpoint-url", &ep],
            )
            .ok();
            parts.push(out);
        }
        let mut args = vec!["plan", "merge"];
        args.extend(parts.iter().map(String::as_str));
        args.extend(["-o", "plan.json"]);
        self.run(&args).ok();
        self.env().approve().ok();
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.s.run(args)
    }

    pub fn execute_args(h: &str, more: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = signed(&["execute", "plan.json", "--host", h], AS_OPERATOR)
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(more.iter().map(|s| s.to_string()));
        a
    }

    pub fn execute(&self, h: &str, more: &[&str]) -> Run {
        self.run_as(h, &Self::execute_args(h, more))
    }

    /// `decom ARGS` as host `h`, with owned arguments.
    pub fn run_as(&self, h: &str, args: &[String]) -> Run {
        self.on(h, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn collect(&self, plan: &str, parts: &[&str]) -> Run {
        let mut a = vec!["collect", plan];
        a.extend(parts);
        a.extend(["-o", "fleet/certificate.json"]);
        a.extend(AS_OPERATOR);
        std::fs::create_dir_all(self.env().path("fleet")).unwrap();
        self.run(&a)
    }

    pub fn fleet_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.env().path("fleet/certificate.json")).unwrap())
            .unwrap()
    }
}

fn part(h: &str) -> String {
    format!("certificate.{h}.json")
}

fn verify(f: &Fleet) -> Run {
    f.run(&[
        "verify",
        "fleet/certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
    ])
}

fn ssh_keygen_verify(env: &Env, file: &str, principal: &str, role: &str) {
    let out = Command::new("ssh-keygen")
        .current_dir(&env.root)
        .args([
            "-Y",
            "verify",
            "-f",
            "keys/allowed_signers",
            "-I",
            principal,
        ])
        .args(["-n", &format!("decom-{role}"), "-s"])
        .arg(format!("{file}.{role}.sig"))
        .stdin(std::fs::File::open(env.path(file)).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen rejects {file}.{role}.sig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn three_hosts_one_plan_one_cosigned_fleet_certificate() {
    let f = Fleet::new(&["h1", "h2", "h3"]);
    // Only h2's weights have a second name outside the locations.
    std::fs::hard_link(
        f.host_dir("h2").join("weights-h2.bin"),
        f.env().path("hosts/h2/elsewhere.bin"),
    )
    .unwrap();
    f.approved();
    let plan = f.env().plan_json();
    assert_eq!(plan["hosts"].as_array().unwrap().len(), 3);
    // A risk of one host's disk names that host; the bucket's does not.
    let risks = f.env().risks("hard-link-outside-locations");
    assert_eq!(risks.len(), 1, "{risks:?}");
    assert!(risks[0].0.starts_with("h2: "), "{risks:?}");
    assert!(
        f.env()
            .risks("s3-logical")
            .iter()
            .all(|r| r.0.starts_with("s3://")),
        "{:?}",
        f.env().risks("s3-logical")
    );
    // The streamed merge writes exactly the bytes the plan type would.
    let bytes = std::fs::read(f.env().plan()).unwrap();
    let parsed = decom::plan::Plan::parse(&bytes, "merged").unwrap();
    assert_eq!(parsed.to_bytes(), bytes);
    // One local location per host, and the S3 location once.
    assert_eq!(plan["locations"].as_array().unwrap().len(), 4);
    let show = f.run(&["show", "plan.json"]);
    show.ok();
    assert!(show.stdout.contains("Hosts (3):"), "{}", show.stdout);
    assert!(
        show.stdout
            .contains("h2: 1 location(s), 3 artifact(s), 2 file(s)"),
        "{}",
        show.stdout
    );

    // A fleet plan without --host is refused, nothing touched.
    let mut whole = f.env().execute_args();
    whole.push("--out".into());
    whole.push("plans".into());
    f.on("h1", &whole.iter().map(String::as_str).collect::<Vec<_>>())
        .code(2)
        .one_line_error("this plan covers 3 hosts (h1, h2, h3)");

    f.execute("h1", &["--s3"]).ok();
    f.execute("h2", &[]).ok();
    f.execute("h3", &[]).ok();
    for h in ["h1", "h2", "h3"] {
        assert!(!f.host_dir(h).join(format!("weights-{h}.bin")).exists());
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.env().path(&part(h))).unwrap()).unwrap();
        assert_eq!(c["status"], "complete", "{h}: {c}");
        assert_eq!(c["part"]["host"], h);
    }
    assert!(f.s.versions("m/").is_empty());

    f.collect("plan.json", &[&part("h1"), &part("h2"), &part("h3")])
        .ok();
    let c = f.fleet_json();
    assert_eq!(c["status"], "complete");
    assert_eq!(c["fleet"]["coverage"]["complete"], true);
    assert_eq!(c["fleet"]["coverage"]["reported"], 3);
    assert_eq!(c["fleet"]["hosts"][0]["part"]["s3"], true);
    assert_eq!(c["totals"]["artifacts"], plan["totals"]["artifacts"]);
    assert!(f.env().path("fleet/parts/certificate.h2.json").exists());

    f.run(&signed(&["cosign", "fleet/certificate.json"], AS_CUSTODIAN))
        .ok();
    let v = verify(&f);
    v.ok();
    assert!(v.stdout.contains("ok   parts: 3 part(s)"), "{}", v.stdout);
    ssh_keygen_verify(f.env(), "fleet/certificate.json", OPERATOR, "operator");
    ssh_keygen_verify(f.env(), "fleet/certificate.json", CUSTODIAN, "custodian");
    ssh_keygen_verify(
        f.env(),
        "fleet/parts/certificate.h3.json",
        OPERATOR,
        "operator",
    );
    // Recheck per host: h2's part, on h2, finds nothing again; a file put
    // back at a disposed path is found.
    let recheck = |h: &str| {
        f.on(
            h,
            &[
                "verify",
                &format!("fleet/parts/{}", part(h)),
                "--allowed-signers",
                "keys/allowed_signers",
                "--recheck",
                "--plan",
                "plan.json",
            ],
        )
    };
    let r = recheck("h2");
    r.ok();
    assert!(
        r.stdout.contains("verified: one host's part"),
        "{}",
        r.stdout
    );
    std::fs::write(f.host_dir("h2").join("weights-h2.bin"), b"back").unwrap();
    let r = recheck("h2");
    r.code(1);
    assert!(
        r.stdout.contains("weights-h2.bin: exists again"),
        "{}",
        r.stdout
    );
    recheck("h3").ok();
    std::fs::remove_file(f.host_dir("h2").join("weights-h2.bin")).unwrap();
    let html = f.run(&[
        "render",
        "fleet/certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
        "--html",
        "fleet/certificate.html",
    ]);
    html.ok();
    let page = std::fs::read_to_string(f.env().path("fleet/certificate.html")).unwrap();
    assert!(
        page.contains("<h2>Hosts (fleet)</h2>"),
        "the page has the host table"
    );
    assert!(
        page.contains("parts/certificate.h3.json"),
        "the page names each part"
    );

    // The archive bundle carries the parts, and its index verifies (it
    // takes the approved plan from beside the certificate).
    for n in ["plan.json", "plan.json.custodian.sig"] {
        std::fs::copy(f.env().path(n), f.env().path(&format!("fleet/{n}"))).unwrap();
    }
    let store = f.env().path("archive");
    let store = store.display().to_string();
    f.run(&[
        "archive",
        "fleet/certificate.json",
        "--to",
        &store,
        "--allowed-signers",
        "keys/allowed_signers",
    ])
    .ok();
    let bundle = std::fs::read_dir(f.env().path("archive/bundles"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let list = Command::new("tar").arg("tf").arg(&bundle).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for h in ["h1", "h2", "h3"] {
        assert!(
            list.contains(&format!("parts/certificate.{h}.json.operator.sig")),
            "{list}"
        );
    }
    f.run(&["archive", "--verify", &store]).ok();

    // A part changed after collect breaks the chain.
    let p2 = f.env().path("fleet/parts/certificate.h2.json");
    let mut bytes = std::fs::read(&p2).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&p2, bytes).unwrap();
    let v = verify(&f);
    v.code(1);
    assert!(v.stdout.contains("FAIL parts: host h2"), "{}", v.stdout);
}

#[test]
fn a_host_that_never_ran_makes_the_fleet_incomplete_and_is_named() {
    let f = Fleet::new(&["h1", "h2", "h3"]);
    f.approved();
    f.execute("h1", &["--s3"]).ok();
    f.execute("h2", &[]).ok();
    let r = f.collect("plan.json", &[&part("h1"), &part("h2")]);
    r.code(1);
    assert!(
        r.stderr.contains("host h3: no part reported"),
        "{}",
        r.stderr
    );
    let c = f.fleet_json();
    assert_eq!(c["status"], "incomplete");
    assert_eq!(c["fleet"]["coverage"]["complete"], false);
    assert!(c["fleet"]["hosts"][2]["part"].is_null());
    // The custodian cannot co-sign it, and verify says which host.
    let v = verify(&f);
    v.code(1);
    assert!(v.stdout.contains("h3: no part"), "{}", v.stdout);
    // h3's files are untouched.
    assert!(f.host_dir("h3").join("weights-h3.bin").exists());

    // collect checks the plan's approval as the plan streams by: one
    // changed byte (a host name) and it refuses, writing nothing.
    let env = f.env();
    let text = std::fs::read_to_string(env.plan()).unwrap();
    std::fs::write(
        env.path("altered.json"),
        text.replacen("\"h3\"", "\"h4\"", 1),
    )
    .unwrap();
    std::fs::copy(
        env.path("plan.json.custodian.sig"),
        env.path("altered.json.custodian.sig"),
    )
    .unwrap();
    std::fs::remove_dir_all(env.path("fleet")).unwrap();
    f.collect("altered.json", &[&part("h1"), &part("h2")])
        .code(2)
        .one_line_error("the plan is not approved");
    assert!(!env.path("fleet/certificate.json").exists());
}

/// Write `cert` as `DIR/certificate.h2.json`, signed as operator with
/// `who`'s key by stock ssh-keygen.
fn forge_part(env: &Env, dir: &str, cert: &serde_json::Value, who: &str) {
    std::fs::create_dir_all(env.path(dir)).unwrap();
    let forged = env.path(&format!("{dir}/certificate.h2.json"));
    std::fs::write(&forged, serde_json::to_vec_pretty(cert).unwrap()).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "decom-operator", "-f"])
        .arg(env.key(who))
        .arg(&forged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(
        env.path(&format!("{dir}/certificate.h2.json.sig")),
        env.path(&format!("{dir}/certificate.h2.json.operator.sig")),
    )
    .unwrap();
}

#[test]
fn foreign_overreaching_and_duplicate_parts_are_rejected_by_name() {
    let f = Fleet::new(&["h1", "h2"]);
    f.approved();
    f.execute("h1", &["--s3"]).ok();
    f.execute("h2", &[]).ok();
    let env = f.env();

    // A part from another plan: the same hosts merged in another order
    // make another plan (another SHA-256), approved too.
    f.run(&[
        "plan",
        "merge",
        "plans/plan.h2.json",
        "plans/plan.h1.json",
        "-o",
        "other.json",
    ])
    .ok();
    f.run(&signed(&["approve", "other.json"], APPROVING)).ok();
    let r = f.collect("other.json", &[&part("h1"), &part("h2")]);
    r.code(1);
    assert!(
        r.stderr.contains("(host h1): made from another plan"),
        "{}",
        r.stderr
    );

    // A part that claims another host's location, signed by an operator.
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path(&part("h2"))).unwrap()).unwrap();
    let h1_location = env.plan_json()["hosts"][0]["locations"][0].clone();
    c["part"]["locations"]
        .as_array_mut()
        .unwrap()
        .insert(0, h1_location);
    forge_part(env, "forged", &c, "operator");
    let r = f.collect("plan.json", &[&part("h1"), "forged/certificate.h2.json"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("(host h2): overreaches: claims location 1 ("),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("of host h1)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("host h2: no part reported"),
        "{}",
        r.stderr
    );

    // A part the approving custodian signed as its operator (a signers file
    // that lets one key hold both roles): the two-person rule rejects it.
    let signers = std::fs::read_to_string(env.signers()).unwrap();
    env.write_signers(&format!(
        "{signers}{CUSTODIAN} namespaces=\"decom-operator\" {}\n",
        env.public("custodian")
    ));
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path(&part("h2"))).unwrap()).unwrap();
    c["operator"] = c["plan"]["approvals"][0].clone();
    forge_part(env, "self-approved", &c, "custodian");
    let r = f.collect(
        "plan.json",
        &[&part("h1"), "self-approved/certificate.h2.json"],
    );
    r.code(1);
    assert!(r.stderr.contains("two-person rule"), "{}", r.stderr);
    env.write_signers(&signers);

    // Two parts for one host: neither is taken.
    std::fs::create_dir_all(env.path("again")).unwrap();
    for suffix in ["", ".operator.sig"] {
        std::fs::copy(
            env.path(&format!("{}{suffix}", part("h1"))),
            env.path(&format!("again/{}{suffix}", part("h1"))),
        )
        .unwrap();
    }
    let r = f.collect(
        "plan.json",
        &[&part("h1"), &part("h2"), &format!("again/{}", part("h1"))],
    );
    r.code(1);
    assert!(r.stderr.contains("host h1: 2 parts"), "{}", r.stderr);
    let c = f.fleet_json();
    assert!(c["fleet"]["hosts"][0]["part"].is_null(), "{c}");

    // The honest parts together: complete.
    f.collect("plan.json", &[&part("h1"), &part("h2")]).ok();
}

#[test]
fn execute_on_the_wrong_host_is_refused_and_touches_nothing() {
    let f = Fleet::new(&["h1", "h2"]);
    f.approved();
    let before: Vec<_> = ["h1", "h2"]
        .iter()
        .map(|h| f.env().snapshot(&f.host_dir(h)))
        .collect();
    // h1 asked to be h2.
    f.run_as("h1", &Fleet::execute_args("h2", &[]))
        .code(2)
        .one_line_error("--host h2 is not this machine (its hostname is h1)");
    // A host the plan does not have, even when overridden.
    f.run_as("h1", &Fleet::execute_args("h9", &["--override-hostname"]))
        .code(2)
        .one_line_error("the plan has no locations for host \"h9\" (its hosts: h1, h2)");
    // A host name that would leave the folder.
    f.run_as(
        "h1",
        &Fleet::execute_args("../h1", &["--override-hostname"]),
    )
    .code(2)
    .one_line_error("is not usable");
    let after: Vec<_> = ["h1", "h2"]
        .iter()
        .map(|h| f.env().snapshot(&f.host_dir(h)))
        .collect();
    assert_eq!(before, after);
    assert!(!f.env().path("journal.h1.jsonl").exists());
    assert!(!f.env().path("journal.h2.jsonl").exists());
    assert_eq!(f.s.versions("m/").len(), 2);
}

#[test]
fn a_crash_on_one_host_resumes_while_the_others_finish() {
    let f = Fleet::new(&["h1", "h2", "h3"]);
    f.approved();
    let a = Fleet::execute_args("h2", &[]);
    let r = f.on_with(
        "h2",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("DECOM_TEST_ABORT_AFTER_RECORDS", "4")],
    );
    assert_ne!(r.code, 0, "the hook stops the run: {}", r.stderr);
    assert!(!f.env().path(&part("h2")).exists());
    f.execute("h1", &["--s3"]).ok();
    f.execute("h3", &[]).ok();
    f.collect("plan.json", &[&part("h1"), &part("h3")]).code(1);
    f.execute("h2", &["--resume"]).ok();
    assert!(!f.host_dir("h2").join("weights-h2.bin").exists());
    f.collect("plan.json", &[&part("h1"), &part("h2"), &part("h3")])
        .ok();
    assert_eq!(f.fleet_json()["status"], "complete");
}

#[test]
fn merge_refuses_parts_that_do_not_belong_together() {
    let f = Fleet::new(&["h1", "h2"]);
    let ep = f.s.store.endpoint.clone();
    for h in ["h1", "h2"] {
        f.on(
            h,
            &[
                "trace",
                "decom.toml",
                "-o",
                &format!("plans/plan.{h}.json"),
                "--endpoint-url",
                &ep,
            ],
        )
        .ok();
    }
    let env = f.env();
    f.run(&[
        "plan",
        "merge",
        "plans/plan.h1.json",
        "plans/plan.h1.json",
        "-o",
        "plan.json",
    ])
    .code(2)
    .one_line_error("two plans for host h1");
    // Another view of the same S3 location (a version more, traced later).
    let mut p: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("plans/plan.h2.json")).unwrap()).unwrap();
    let arts = p["artifacts"].as_array_mut().unwrap();
    let s3 = arts.iter_mut().find(|a| a["kind"] == "s3-version").unwrap();
    s3["etag"] = "\"0000\"".into();
    // Merge h1's plan with a changed h2 plan: refused with `why`.
    let refused = |p: &serde_json::Value, why: &str| {
        std::fs::write(
            env.path("plans/changed.json"),
            serde_json::to_vec_pretty(p).unwrap(),
        )
        .unwrap();
        f.run(&[
            "plan",
            "merge",
            "plans/plan.h1.json",
            "plans/changed.json",
            "-o",
            "plan.json",
        ])
        .code(2)
        .one_line_error(why);
    };
    refused(&p, "disagree about s3://");
    p["manifest_sha256"] = "00".repeat(32).into();
    refused(&p, "has another manifest");
    assert!(!env.path("plan.json").exists());
    // The good pair merges, and the fleet plan is an ordinary plan.
    f.run(&[
        "plan",
        "merge",
        "plans/plan.h1.json",
        "plans/plan.h2.json",
        "-o",
        "plan.json",
    ])
    .ok();
    env.approve().ok();
}

/// The fleet through the shipped Ansible playbooks (ansible-core from the
/// project's virtualenv): each inventory host runs decom as itself
/// (`scripts/as-host.sh` in its `decom` command), the controller merges
/// and collects.
struct Ansible<'a> {
    f: &'a Fleet,
    inventory: PathBuf,
}

impl<'a> Ansible<'a> {
    fn new(f: &'a Fleet) -> Ansible<'a> {
        let env = f.env();
        let python = crate::common::venv().join("bin/python");
        let mut inv = String::from("[decom_fleet]\n");
        for h in &f.hosts {
            inv.push_str(&format!(
                "{h} decom=\"{} {h} {} {} {}\" decom_workdir={}\n",
                as_host_script().display(),
                f.host_dir(h).display(),
                f.shared.display(),
                bin().display(),
                env.path(&format!("work/{h}")).display()
            ));
        }
        inv.push_str(&format!(
            "[decom_fleet:vars]\nansible_connection=local\nansible_python_interpreter={0}\n[controller]\nlocalhost ansible_connection=local ansible_python_interpreter={0}\n",
            python.display()
        ));
        let inventory = env.file("inventory.ini", inv.as_bytes());
        // The manifest names the S3 endpoint: the hosts trace on their own.
        let m = std::fs::read_to_string(env.path("decom.toml")).unwrap();
        std::fs::write(
            env.path("decom.toml"),
            format!("{m}[s3]\nendpoint_url = \"{}\"\n", f.s.store.endpoint),
        )
        .unwrap();
        Ansible { f, inventory }
    }

    fn playbook(&self, book: &str, vars: &[(&str, String)], more: &[&str]) -> Run {
        let env = self.f.env();
        let mut c = Command::new(crate::common::venv().join("bin/ansible-playbook"));
        c.current_dir(&env.root)
            .env("ANSIBLE_HOME", env.path(".ansible"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env_remove("DECOM_TEST_ABORT_AFTER_RECORDS")
            .arg("-i")
            .arg(&self.inventory)
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("deploy/ansible")
                    .join(book),
            );
        self.f.s.store.env(&mut c);
        for (k, v) in vars {
            c.arg("-e").arg(format!("{k}={v}"));
        }
        c.args(more);
        Run::from(c.output().unwrap())
    }

    fn run_fleet(&self, more: &[&str]) -> Run {
        let env = self.f.env();
        let out = env.path("fleet").display().to_string();
        self.playbook(
            "trace.yml",
            &[
                ("decom_s3_host", "h1".into()),
                (
                    "decom_manifest",
                    env.path("decom.toml").display().to_string(),
                ),
                ("decom_out", out.clone()),
                ("decom_controller_decom", bin().display().to_string()),
            ],
            &[],
        )
        .ok();
        // The custodian reviews and approves the fleet plan once.
        env.run(&signed(&["approve", "fleet/plan.json"], APPROVING))
            .ok();
        self.playbook(
            "execute.yml",
            &[
                (
                    "decom_plan",
                    env.path("fleet/plan.json").display().to_string(),
                ),
                ("decom_s3_host", "h1".into()),
                ("decom_operator", OPERATOR.into()),
                ("decom_key", env.key("operator").display().to_string()),
                ("decom_allowed_signers", env.signers().display().to_string()),
                ("decom_out", out),
                ("decom_controller_decom", bin().display().to_string()),
            ],
            more,
        )
    }
}

#[test]
fn ansible_playbooks_take_three_hosts_to_one_cosigned_fleet_certificate() {
    let f = Fleet::new(&["h1", "h2", "h3"]);
    let a = Ansible::new(&f);
    a.run_fleet(&[]).ok();
    // Only h1 listed the bucket; h2 and h3 traced with --local-only.
    for (h, local_only) in [("h1", false), ("h2", true), ("h3", true)] {
        let p: serde_json::Value = serde_json::from_slice(
            &std::fs::read(f.env().path(&format!("fleet/plans/plan.{h}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            p["local_only"].as_bool().unwrap_or(false),
            local_only,
            "{h}"
        );
    }
    let c = f.fleet_json();
    assert_eq!(c["status"], "complete", "{c}");
    assert_eq!(c["fleet"]["coverage"]["reported"], 3);
    for h in ["h1", "h2", "h3"] {
        assert!(!f.host_dir(h).join(format!("weights-{h}.bin")).exists());
    }
    assert!(f.s.versions("m/").is_empty());
    f.run(&signed(&["cosign", "fleet/certificate.json"], AS_CUSTODIAN))
        .ok();
    verify(&f).ok();
    ssh_keygen_verify(f.env(), "fleet/certificate.json", OPERATOR, "operator");
    ssh_keygen_verify(f.env(), "fleet/certificate.json", CUSTODIAN, "custodian");
}

#[test]
fn ansible_run_where_one_host_never_ran_ends_incomplete_naming_it() {
    let f = Fleet::new(&["h1", "h2", "h3"]);
    let a = Ansible::new(&f);
    let r = a.run_fleet(&["--limit", "h1,h2,localhost"]);
    assert_ne!(
        r.code, 0,
        "the playbook fails on an incomplete fleet:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("host h3: no part reported"),
        "{}",
        r.stdout
    );
    let c = f.fleet_json();
    assert_eq!(c["status"], "incomplete");
    assert!(f.host_dir("h3").join("weights-h3.bin").exists());
}

/// The README's Slurm recipe on a real one-node Slurm cluster (Debian's
/// slurm-wlm, started by scripts/slurm.sh): each task executes the fleet
/// plan as the node it runs on, then collect joins the parts.
#[test]
fn slurm_srun_runs_the_fleet_recipe_on_a_one_node_cluster() {
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "no Slurm cluster: run scripts/test.sh, which starts a one-node cluster (scripts/slurm.sh start){}",
        std::env::var("DECOM_TEST_SLURM_ERROR")
            .map(|e| format!("; it said:\n{e}"))
            .unwrap_or_default()
    );
    let env = Env::new();
    env.file("models/m/weights.bin", &random_bytes(8192));
    env.manifest_all("nist-clear", "models/m");
    let node = String::from_utf8(Command::new("hostname").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    std::fs::create_dir_all(env.path("plans")).unwrap();
    let part_plan = format!("plans/plan.{node}.json");
    env.run(&["trace", "decom.toml", "-o", &part_plan]).ok();
    env.run(&["plan", "merge", &part_plan, "-o", "plan.json"])
        .ok();
    env.approve().ok();
    let out = Command::new("srun")
        .current_dir(&env.root)
        .args(["--nodes=1", "--ntasks-per-node=1", "sh", "-c"])
        .arg(format!(
            "{} execute plan.json --host \"$(hostname)\" --key keys/operator --principal {OPERATOR} --allowed-signers keys/allowed_signers --yes",
            bin().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "srun: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!env.path("models/m/weights.bin").exists());
    std::fs::create_dir_all(env.path("fleet")).unwrap();
    let p = part(&node);
    env.run(&signed(
        &["collect", "plan.json", &p, "-o", "fleet/certificate.json"],
        AS_OPERATOR,
    ))
    .ok();
    env.run(&signed(&["cosign", "fleet/certificate.json"], AS_CUSTODIAN))
        .ok();
    env.run(&[
        "verify",
        "fleet/certificate.json",
        "--allowed-signers",
        "keys/allowed_signers",
    ])
    .ok();
}
