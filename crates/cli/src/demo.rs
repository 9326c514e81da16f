//! `bulkhead demo`: Bulkhead's whole job on the reference bank, from an empty store.
//!
//! The demo runs the real commands — the same binary, as child processes — so what it shows is
//! exactly what a user gets from them: simulate the bank (inventory and four telemetry formats),
//! ingest, draw the map, recommend a policy from the first day, verify the worked bank policy's
//! invariants, rehearse a risky change on the recorded traffic, and plan it as CI would. Every
//! step's output is kept in the demo directory; the demo reads the steps' JSON to print a short
//! report.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The worked bank policy (examples/intent/bank), written into the demo directory so that every
/// file:line in the output points at a file the user can open.
const BANK_INTENT: &[(&str, &str)] = &[
    (
        "segments.yaml",
        include_str!("../../../examples/intent/bank/segments.yaml"),
    ),
    (
        "guardrails.yaml",
        include_str!("../../../examples/intent/bank/guardrails.yaml"),
    ),
    (
        "application.yaml",
        include_str!("../../../examples/intent/bank/application.yaml"),
    ),
    (
        "baseline.yaml",
        include_str!("../../../examples/intent/bank/baseline.yaml"),
    ),
    (
        "invariants.yaml",
        include_str!("../../../examples/intent/bank/invariants.yaml"),
    ),
];

/// The telemetry formats the simulator writes; each covers its own part of the bank (Hubble the
/// Kubernetes pods, VPC flow logs the cloud VMs, Zeek the data-centre taps, IPFIX the routers).
const FORMATS: &[&str] = &["hubble", "vpc", "zeek", "netflow"];

const DAY: i64 = 86_400;

/// Marks a directory as the demo's own, so a later run may delete and re-create it.
const MARKER: &str = ".bulkhead-demo";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where everything goes (store, inventory, policies, reports). Re-created if it holds an
    /// earlier demo; refused if it holds anything else.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-demo")]
    pub dir: PathBuf,
    /// Workload instances in the simulated bank.
    #[arg(long, default_value_t = 300)]
    pub workloads: usize,
    /// Simulated days from 2026-10-30; the first trains the recommendation, the rest (the month
    /// end) are held out to test it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=31))]
    pub days: u32,
    /// Traffic multiplier for the simulator (1.0: about 1,300 flows per instance per day).
    #[arg(long, default_value_t = 0.25)]
    pub rate: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One step's name and wall time.
struct Timing {
    name: String,
    secs: f64,
}

struct Runner {
    exe: PathBuf,
    logs: PathBuf,
    timings: Vec<Timing>,
}

impl Runner {
    /// Runs `bulkhead ARGS`, standard output into `out` (or the step's log), standard error into
    /// the step's log. Returns the exit code; codes outside `ok` are an error naming the log.
    fn run(
        &mut self,
        name: &str,
        args: &[OsString],
        out: Option<&Path>,
        ok: &[i32],
    ) -> Result<i32> {
        let t = Instant::now();
        let (stdout_path, stderr_path) = self.log_paths(name, out);
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(create(&stdout_path)?)
            .stderr(create(&stderr_path)?);
        let status = cmd
            .status()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        self.finish(name, t, status.code(), ok, &stderr_path)
    }

    /// Runs `bulkhead PRODUCER | bulkhead CONSUMER`.
    fn pipe(
        &mut self,
        name: &str,
        producer: &[OsString],
        consumer: &[OsString],
        out: &Path,
    ) -> Result<()> {
        let t = Instant::now();
        let (_, stderr_path) = self.log_paths(name, Some(out));
        let producer_err = self.logs.join(format!("{name}.producer.stderr"));
        let mut p = Command::new(&self.exe)
            .args(producer)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(create(&producer_err)?)
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        let pipe = p.stdout.take().context("no pipe from the simulator")?;
        let c = Command::new(&self.exe)
            .args(consumer)
            .stdin(pipe)
            .stdout(create(out)?)
            .stderr(create(&stderr_path)?)
            .status();
        let ps = p.wait().context("waiting for the simulator")?;
        let cs = c.with_context(|| format!("cannot start {}", self.exe.display()))?;
        if !ps.success() {
            bail!(
                "step `{name}`: the simulator failed ({}); see {}",
                ps,
                producer_err.display()
            );
        }
        self.finish(name, t, cs.code(), &[0], &stderr_path)?;
        Ok(())
    }

    fn log_paths(&self, name: &str, out: Option<&Path>) -> (PathBuf, PathBuf) {
        let stdout = match out {
            Some(p) => p.to_path_buf(),
            None => self.logs.join(format!("{name}.stdout")),
        };
        (stdout, self.logs.join(format!("{name}.stderr")))
    }

    fn finish(
        &mut self,
        name: &str,
        t: Instant,
        code: Option<i32>,
        ok: &[i32],
        stderr: &Path,
    ) -> Result<i32> {
        self.timings.push(Timing {
            name: name.into(),
            secs: t.elapsed().as_secs_f64(),
        });
        match code {
            Some(c) if ok.contains(&c) => Ok(c),
            _ => {
                let tail = std::fs::read_to_string(stderr).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "step `{name}` failed ({}); see {}:\n{}",
                    code.map_or("killed by a signal".into(), |c| format!("exit {c}")),
                    stderr.display(),
                    tail.join("\n")
                )
            }
        }
    }
}

fn create(p: &Path) -> Result<std::fs::File> {
    std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn p(path: &Path) -> OsString {
    path.as_os_str().to_owned()
}

/// Empties the demo directory: a fresh one, an empty one, or one an earlier demo made.
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .peekable();
        if entries.peek().is_some() {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} exists and is not an earlier demo (no {MARKER} in it); give another --dir",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove the earlier demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "Made by `bulkhead demo`; the next run deletes this directory.\n",
    )
    .with_context(|| format!("cannot write into {}", dir.display()))?;
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not the JSON expected", path.display()))
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for k in path {
        v = &v[*k];
    }
    v.as_u64().unwrap_or(0)
}

/// RFC 3339 of seconds since the epoch.
fn rfc3339_secs(t: i64) -> String {
    bulkhead_core::time::rfc3339(t * 1_000_000_000)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn run(a: DemoArgs) -> Result<()> {
    let report = run_demo(&a)?;
    print!("{report}");
    Ok(())
}

/// Runs the demo; returns the report.
pub fn run_demo(a: &DemoArgs) -> Result<String> {
    if !(a.rate > 0.0 && a.rate <= 10.0) {
        bail!("--rate must be in (0, 10]");
    }
    if a.workloads == 0 || a.workloads > 5_000 {
        bail!("--workloads must be 1..=5000 for the demo (simulate-bank goes further)");
    }
    let started = Instant::now();
    let dir = &a.dir;
    prepare(dir)?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let logs = dir.join("logs");
    let reports = dir.join("reports");
    for d in [&logs, &reports] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut r = Runner {
        exe: std::env::current_exe().context("cannot find the bulkhead executable")?,
        logs,
        timings: Vec::new(),
    };
    let bank = dir.join("bank");
    let store = dir.join("store");
    let inventory = bank.join("inventory");
    let hosts = bank.join("hosts.yaml");
    let seed = a.seed.to_string();
    let workloads = a.workloads.to_string();
    let days = a.days.to_string();
    let rate = a.rate.to_string();
    let start = bulkhead_bank::DEFAULT_START;
    let with_inventory = |v: &mut Vec<OsString>| {
        v.extend([
            "--inventory".into(),
            p(&inventory),
            "--hosts".into(),
            p(&hosts),
        ]);
    };

    // 1. See: the bank's inventory, then each telemetry format streamed into the store.
    let mut sim = os(&["simulate-bank", "--seed", &seed, "--workloads", &workloads]);
    sim.extend(os(&["--days", &days, "--rate", &rate]));
    let mut inv = sim.clone();
    inv.extend([OsString::from("--inventory-only"), "--out".into(), p(&bank)]);
    r.run("simulate-bank", &inv, None, &[0])?;
    let mut ingested = Vec::new();
    for f in FORMATS {
        let mut producer = sim.clone();
        producer.extend(os(&["--attacks", "--stream", f]));
        let mut consumer = os(&["ingest", "-", "--format", f, "--json", "--quiet"]);
        consumer.extend(["--data-dir".into(), p(&store)]);
        with_inventory(&mut consumer);
        let out = reports.join(format!("ingest-{f}.json"));
        r.pipe(&format!("ingest-{f}"), &producer, &consumer, &out)?;
        ingested.push((*f, read_json(&out)?));
    }
    let map_dot = reports.join("map.dot");
    let mut map = os(&["map", "--group-by", "app", "--format", "dot", "--data-dir"]);
    map.push(p(&store));
    r.run("map", &map, Some(&map_dot), &[0])?;
    let map_json = reports.join("map.json");
    map[4] = "json".into();
    r.run("map-json", &map, Some(&map_json), &[0])?;
    let map_v = read_json(&map_json)?;

    // 2. Propose: least-privilege intent from the first day, scored on the rest (the month end).
    let recommended = dir.join("recommended");
    let recommend_json = reports.join("recommend.json");
    let split = rfc3339_secs(start + DAY);
    let mut recommend = os(&["recommend", "--format", "json", "--data-dir"]);
    recommend.push(p(&store));
    with_inventory(&mut recommend);
    recommend.extend(["--out".into(), p(&recommended)]);
    recommend.extend(os(&[
        "--window",
        &format!("..{split}"),
        "--holdout",
        &format!("{split}.."),
        "--reason",
        "bulkhead demo",
    ]));
    r.run("recommend", &recommend, Some(&recommend_json), &[0])?;
    let recommend_v = read_json(&recommend_json)?;

    // 3. Prove: the worked bank policy's invariants, exactly, with the compliance report.
    let intent = dir.join("intent").join("bank");
    std::fs::create_dir_all(&intent)
        .with_context(|| format!("cannot create {}", intent.display()))?;
    for (name, text) in BANK_INTENT {
        let path = intent.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let verify_json = reports.join("verify.json");
    let compliance = reports.join("compliance.md");
    let mut verify = os(&["verify", "--format", "json", "--policy"]);
    verify.push(p(&intent));
    with_inventory(&mut verify);
    verify.extend(["--report".into(), p(&compliance)]);
    r.run("verify", &verify, Some(&verify_json), &[0, 1])?;
    let verify_v = read_json(&verify_json)?;

    // 4. Rehearse a risky change: enforcing the hand-written bank policy on what was recorded.
    let simulate_json = reports.join("simulate.json");
    let mut simulate = os(&["simulate", "--format", "json", "--top", "3", "--policy"]);
    simulate.push(p(&intent));
    simulate.extend(["--data-dir".into(), p(&store)]);
    with_inventory(&mut simulate);
    r.run("simulate", &simulate, Some(&simulate_json), &[0])?;
    let simulate_v = read_json(&simulate_json)?;

    // 5. Plan it as CI would (exit 0 safe, 1 invariant violated, 2 too much blocked, 3 input
    // error); the run records itself in the store's audit log, which is then verified.
    let plan_json = reports.join("plan.json");
    let mut plan = os(&["plan", "--policy"]);
    plan.push(p(&intent));
    plan.extend(["--data-dir".into(), p(&store)]);
    with_inventory(&mut plan);
    let mut plan_sarif = plan.clone();
    plan.extend(os(&["--format", "json", "--reason", "bulkhead demo"]));
    plan.extend(["--out".into(), p(&plan_json)]);
    let plan_code = r.run("plan", &plan, None, &[0, 1, 2, 3])?;
    plan_sarif.extend(os(&["--format", "sarif", "--no-record", "--out"]));
    plan_sarif.push(p(&reports.join("plan.sarif")));
    r.run("plan-sarif", &plan_sarif, None, &[plan_code])?;
    let plan_v = read_json(&plan_json)?;
    let mut audit = os(&["audit", "verify", "--data-dir"]);
    audit.push(p(&store));
    r.run(
        "audit-verify",
        &audit,
        Some(&reports.join("audit-verify.txt")),
        &[0],
    )?;

    let mut s = String::new();
    let secs = started.elapsed().as_secs_f64();
    let _ = writeln!(
        s,
        "Bulkhead demo: the reference bank, {} workload instances, {} days from {} (the last one a month end), seed {}",
        a.workloads,
        a.days,
        &rfc3339_secs(start)[..10],
        a.seed
    );
    let _ = writeln!(s);
    // See.
    let mut flows = 0;
    let mut parts = Vec::new();
    for (f, v) in &ingested {
        let n: u64 = v["files"]
            .as_array()
            .map(|fs| fs.iter().map(|f| num(f, &["flows"])).sum())
            .unwrap_or(0);
        flows += n;
        parts.push(format!("{f} {}", thousands(n)));
    }
    // Flow ends resolved to workloads, Services or hosts; the others are external peers
    // (partner networks, the internet) or unknown addresses.
    let (mut ends, mut outside) = (0u64, 0u64);
    for (_, v) in &ingested {
        for (kind, n) in v["resolution"]["ends"].as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            ends += n;
            if kind == "external" || kind == "unknown" {
                outside += n;
            }
        }
    }
    let nodes = map_v["nodes"].as_array().map_or(0, Vec::len);
    let map_edges = map_v["edges"].as_array().map_or(0, Vec::len);
    let _ = writeln!(
        s,
        "1. See       ingested {} flow records ({}) into {} edge rows",
        thousands(flows),
        parts.join(", "),
        thousands(
            ingested
                .last()
                .map_or(0, |(_, v)| num(v, &["store", "edges"]))
        ),
    );
    let _ = writeln!(
        s,
        "             {:.1} % of {} flow ends resolved to workloads, Services or hosts; the other {} are external peers",
        (ends - outside) as f64 * 100.0 / ends.max(1) as f64,
        thousands(ends),
        thousands(outside)
    );
    let _ = writeln!(
        s,
        "             dependency map by app: {nodes} groups, {map_edges} edges"
    );
    // Propose.
    let rec = &recommend_v["recommended"];
    let naive = &recommend_v["naive"];
    let pct = |v: &Value| v.as_f64().unwrap_or(0.0) * 100.0;
    let _ = writeln!(
        s,
        "2. Propose   {} rules over {} segments from day 1's {} edges (observe mode) cover {:.1} % of its flows;",
        num(rec, &["rules"]),
        num(&recommend_v, &["segments"]),
        thousands(num(&recommend_v, &["edges"])),
        pct(&rec["training"]["covered_flow_share"]),
    );
    let _ = writeln!(
        s,
        "             held out, the later days (month end) would see {:.2} % of flows blocked (one rule per edge: {} rules, {:.2} %);",
        pct(&rec["holdout"]["blocked_flow_share"]),
        thousands(num(naive, &["rules"])),
        pct(&naive["holdout"]["blocked_flow_share"]),
    );
    let _ = writeln!(
        s,
        "             {:.1} % of the workload/port combinations it allows were never observed (one rule per edge: {:.1} %)",
        pct(&rec["over_permissive_share"]),
        pct(&naive["over_permissive_share"]),
    );
    // Prove.
    let holding = num(&verify_v, &["holding"]);
    let violated = num(&verify_v, &["violated"]);
    let _ = writeln!(
        s,
        "3. Prove     the worked bank policy: {holding} of {} invariants hold over every pair and port, {violated} violated",
        holding + violated
    );
    for inv in verify_v["results"].as_array().into_iter().flatten() {
        if inv["status"] != "violated" {
            continue;
        }
        let ex = &inv["examples"][0];
        let last = ex["chain"]
            .as_array()
            .and_then(|c| c.last())
            .map(|c| {
                format!(
                    "{} policy {} {} at {}",
                    c["tier"].as_str().unwrap_or(""),
                    c["policy"].as_str().unwrap_or(""),
                    c["rule"].as_str().unwrap_or(""),
                    short(c["at"].as_str().unwrap_or(""), &dir)
                )
            })
            .unwrap_or_else(|| ex["explanation"].as_str().unwrap_or("").into());
        let _ = writeln!(
            s,
            "               {}: {} -> {} {} {}, allowed by {last}",
            inv["name"].as_str().unwrap_or("?"),
            ex["src"].as_str().unwrap_or("?"),
            ex["dst"].as_str().unwrap_or("?"),
            ex["protocol"].as_str().unwrap_or("?"),
            ex["port"]
        );
    }
    // Rehearse.
    let nb = &simulate_v["classes"]["newly_blocked"];
    let _ = writeln!(
        s,
        "4. Rehearse  enforcing the worked bank policy on the {} recorded edges would newly block {} edges ({} flows)",
        thousands(num(&simulate_v, &["edges"])),
        thousands(num(nb, &["edges"])),
        thousands(num(nb, &["flows"])),
    );
    let mut blocked: Vec<&Value> = simulate_v["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["class"] == "newly-blocked")
        .collect();
    blocked.sort_by_key(|c| std::cmp::Reverse(num(c, &["flows"])));
    for c in blocked.iter().take(3) {
        let rule = &c["rule"];
        let why = if rule.is_null() {
            "default deny of an enforced segment".to_string()
        } else {
            format!(
                "{} {} rules[{}] \"{}\"",
                rule["tier"].as_str().unwrap_or(""),
                rule["policy"].as_str().unwrap_or(""),
                rule["rule"],
                rule["name"].as_str().unwrap_or("")
            )
        };
        let top = &c["top"][0];
        let _ = writeln!(
            s,
            "               {} edges, {} flows by {why}; e.g. {} -> {} {}/{}",
            num(c, &["edges"]),
            thousands(num(c, &["flows"])),
            top["src"].as_str().unwrap_or("?"),
            top["dst"].as_str().unwrap_or("?"),
            top["protocol"].as_str().unwrap_or("?"),
            top["port"]
        );
    }
    let conditions: Vec<&str> = plan_v["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["status"].as_str())
        .collect();
    let _ = writeln!(
        s,
        "5. Plan      bulkhead plan exits {plan_code} ({}); {} findings as JSON and SARIF; recorded in the audit log, which verifies",
        conditions.join(", "),
        plan_v["findings"].as_array().map_or(0, Vec::len)
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Files in {}:", dir.display());
    let _ = writeln!(
        s,
        "  store/                     the flow store (bulkhead map|simulate --data-dir {})",
        store.display()
    );
    let _ = writeln!(
        s,
        "  bank/                      the simulated inventory (inventory/, hosts.yaml)"
    );
    let _ = writeln!(
        s,
        "  recommended/               the proposed policy, each rule with its evidence (bulkhead recommend accept DIR)"
    );
    let _ = writeln!(
        s,
        "  intent/bank/               the worked bank policy that was verified and rehearsed"
    );
    let _ = writeln!(
        s,
        "  reports/map.dot            the dependency map (dot -Tsvg reports/map.dot > map.svg)"
    );
    let _ = writeln!(
        s,
        "  reports/compliance.md      PCI-DSS / GDPR compliance report; reports/*.json every step's full output"
    );
    let _ = writeln!(
        s,
        "  reports/plan.sarif         the plan for code scanning (GitHub, GitLab); reports/plan.json the same as JSON"
    );
    let _ = writeln!(
        s,
        "  logs/                      every step's standard error"
    );
    let steps: Vec<String> = r
        .timings
        .iter()
        .map(|t| format!("{} {:.1}", t.name, t.secs))
        .collect();
    let _ = writeln!(s);
    let _ = writeln!(s, "Took {secs:.1} s (steps, s: {}).", steps.join(", "));
    Ok(s)
}

/// A path inside the demo directory, shown relative to it.
fn short(at: &str, dir: &Path) -> String {
    let d = format!("{}/", dir.display());
    at.strip_prefix(&d).unwrap_or(at).to_string()
}
