//! `bulkhead quarantine` and `bulkhead release`: the isolation overlay of one workload or host,
//! written into the policy directory as intent resources (`bulkhead_intent::quarantine`), and
//! recorded in the audit log.
//!
//! Exit codes: 0 done; 1 refused (unknown workload, not exact, already quarantined, not
//! quarantined, the result does not lint clean); 3 input error (unreadable policy or inventory,
//! the audit log cannot be written).

use crate::policy::{inventory_identities, lint_paths};
use anyhow::{Context, Result, bail};
use bulkhead_audit::Digest;
use bulkhead_intent::load::{load_paths_at, now_secs};
use bulkhead_intent::quarantine::{self as q, Info, Request, Subject};
use bulkhead_intent::{Diagnostic, Severity};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct QuarantineArgs {
    /// `namespace/name` of a Kubernetes workload (of --inventory) or a host name (of --hosts).
    #[arg(value_name = "WORKLOAD", required_unless_present = "list")]
    workload: Option<String>,
    /// The policy directory: the quarantine is written to DIR/quarantine/<name>.yaml.
    #[arg(long, value_name = "DIR", required = true)]
    policy: PathBuf,
    /// Kubernetes manifests (files or directories) holding the workload.
    #[arg(long, value_name = "PATH")]
    inventory: Vec<PathBuf>,
    /// Host inventory files holding the host.
    #[arg(long, value_name = "FILE")]
    hosts: Vec<PathBuf>,
    /// A segment that keeps access to and from the workload (forensics, management); repeat for
    /// more. Segments labelled `bulkhead.dev/access: management|forensics` always keep it.
    #[arg(long = "allow-to", value_name = "SEGMENT")]
    allow_to: Vec<String>,
    /// Release by itself after this long: 30m, 4h, 2d, 1w.
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
    /// Why (recorded in the files and the audit log).
    #[arg(long, value_name = "TEXT", required_unless_present = "list")]
    reason: Option<String>,
    /// List the policy's quarantines, active and expired (expired ones are released: their
    /// files are removed and `quarantine.expire` recorded).
    #[arg(long, conflicts_with_all = ["workload", "reason", "allow_to", "expires"])]
    list: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: ListFormat,
    /// The data directory holding the audit log.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    data_dir: PathBuf,
    /// Do not record in the audit log.
    #[arg(long)]
    no_record: bool,
}

#[derive(Args)]
pub struct ReleaseArgs {
    /// `namespace/name` or host name of the quarantined workload.
    #[arg(value_name = "WORKLOAD")]
    workload: String,
    /// The policy directory.
    #[arg(long, value_name = "DIR", required = true)]
    policy: PathBuf,
    /// Why (recorded in the audit log).
    #[arg(long, value_name = "TEXT", required = true)]
    reason: String,
    /// The data directory holding the audit log.
    #[arg(long, value_name = "DIR", default_value = "./bulkhead-data")]
    data_dir: PathBuf,
    /// Do not record in the audit log.
    #[arg(long)]
    no_record: bool,
}

/// A refusal (exit 1) rather than an input error (exit 3).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn exit(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Refused>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(3)
            }
        }
    }
}

pub fn run(a: QuarantineArgs) -> ExitCode {
    exit(if a.list { list(&a) } else { add(&a) })
}

pub fn run_release(a: ReleaseArgs) -> ExitCode {
    exit(release(&a))
}

fn record(
    data_dir: &Path,
    no_record: bool,
    action: &str,
    object: &str,
    reason: &str,
    before: Option<Digest>,
    after: Option<Digest>,
) -> Result<Option<u64>> {
    if no_record {
        return Ok(None);
    }
    if !data_dir.is_dir() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    }
    crate::audit::record_change(data_dir, action, object, reason, before, after).map(Some)
}

fn load_errors(diags: &[Diagnostic]) -> Option<String> {
    let errs: Vec<String> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    (!errs.is_empty()).then(|| errs.join("\n"))
}

/// The quarantines of the policy (expired ones included), reading the directory.
fn read_all(policy: &Path) -> Result<Vec<Info>> {
    anyhow::ensure!(
        policy.is_dir(),
        "{}: no such policy directory",
        policy.display()
    );
    let loaded = load_paths_at(&[policy], None);
    if let Some(e) = load_errors(&loaded.diagnostics) {
        bail!("the policy has errors; fix them first:\n{e}");
    }
    Ok(q::list(&loaded.intent))
}

/// Removes the file of a quarantine, checking it holds nothing else.
fn remove_file(info: &Info) -> Result<Digest> {
    let path = PathBuf::from(&info.loc.file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let loaded = bulkhead_intent::load_str(&info.loc.file, &text);
    let i = &loaded.intent;
    let own =
        |m: &bulkhead_intent::Meta| m.annotations.get(q::ANN_QUARANTINE) == Some(&info.target);
    if !(i.segments.iter().all(|s| own(&s.meta))
        && i.policies.iter().all(|p| own(&p.meta))
        && i.invariants.is_empty())
    {
        bail!(Refused(format!(
            "{}: holds resources other than the quarantine of {}; remove them by hand",
            path.display(),
            info.target
        )));
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(Digest::of(text.as_bytes()))
}

/// Releases the expired quarantines found (their files removed, `quarantine.expire` recorded).
fn expire(all: &[Info], now: i64, data_dir: &Path, no_record: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in all.iter().filter(|i| i.is_expired(now)) {
        let before = remove_file(i)?;
        let reason = format!(
            "expired at {} (quarantined for: {})",
            i.expires.as_deref().unwrap_or("?"),
            i.reason
        );
        record(
            data_dir,
            no_record,
            q::AUDIT_EXPIRE,
            &i.target,
            &reason,
            Some(before),
            None,
        )?;
        out.push(format!(
            "released by itself: {} (expired {})",
            i.target,
            i.expires.as_deref().unwrap_or("?")
        ));
    }
    Ok(out)
}

fn add(a: &QuarantineArgs) -> Result<()> {
    let target = a.workload.clone().unwrap_or_default();
    let reason = a.reason.clone().unwrap_or_default();
    let now = now_secs();
    let expires = match &a.expires {
        Some(d) => Some(now + q::parse_duration(d).map_err(|e| Refused(e.to_string()))?),
        None => None,
    };
    let all = read_all(&a.policy)?;
    for line in expire(&all, now, &a.data_dir, a.no_record)? {
        eprintln!("{line}");
    }
    anyhow::ensure!(
        !a.inventory.is_empty() || !a.hosts.is_empty(),
        "the workload is looked up in an inventory: give --inventory (Kubernetes manifests) or --hosts"
    );
    let ids = inventory_identities(&a.inventory, &a.hosts)?;
    let loaded = load_paths_at(&[&a.policy], Some(now));
    let subject = Subject::find(&target, &ids).map_err(|e| Refused(e.to_string()))?;
    let req = Request {
        subject,
        allow_to: a.allow_to.clone(),
        reason: reason.clone(),
        who: crate::audit::env_actor().unwrap_or_else(|| "bulkhead".into()),
        created: now,
        expires,
    };
    let r = q::render(&loaded.intent, &ids, &req).map_err(|e| Refused(e.to_string()))?;
    let path = a.policy.join(&r.path);
    if path.exists() {
        bail!(Refused(format!(
            "{}: already exists; `bulkhead release {target}` first",
            path.display()
        )));
    }
    let dir = a.policy.join(q::DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, &r.yaml).with_context(|| format!("writing {}", path.display()))?;
    // The policy with the quarantine must lint clean; else nothing is left behind.
    let linted = lint_paths(std::slice::from_ref(&a.policy), Some(ids));
    let errs: Vec<String> = linted
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if !errs.is_empty() {
        let _ = std::fs::remove_file(&path);
        bail!(Refused(format!(
            "the policy with the quarantine does not lint clean (nothing written):\n{}",
            errs.join("\n")
        )));
    }
    let object = target.clone();
    let idx = record(
        &a.data_dir,
        a.no_record,
        q::AUDIT_ADD,
        &object,
        &reason,
        None,
        Some(Digest::of(r.yaml.as_bytes())),
    )
    .inspect_err(|_| {
        // Unrecorded changes are not left in force.
        let _ = std::fs::remove_file(&path);
    })?;
    println!("quarantined {target}: wrote {}", path.display());
    if r.access.is_empty() {
        println!(
            "  access kept: none (no --allow-to, no segment labelled {}: management|forensics)",
            q::ACCESS_LABEL
        );
    } else {
        println!("  access kept (both directions): {}", r.access.join(", "));
    }
    if !r.also.is_empty() {
        println!(
            "  also isolated (its own ReplicaSets and pods): {}",
            r.also.join(", ")
        );
    }
    if let Some(e) = expires {
        println!(
            "  expires: {}",
            bulkhead_core::time::rfc3339(e.saturating_mul(1_000_000_000))
        );
    }
    if let Some(i) = idx {
        println!("  recorded: audit entry {i} ({})", q::AUDIT_ADD);
    }
    println!("  compile and apply the policy to enforce it (the host agent applies it at once)");
    Ok(())
}

fn list(a: &QuarantineArgs) -> Result<()> {
    let now = now_secs();
    let all = read_all(&a.policy)?;
    let released = expire(&all, now, &a.data_dir, a.no_record)?;
    match a.format {
        ListFormat::Json => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|i| {
                    let mut v = serde_json::to_value(i).unwrap_or_default();
                    v["state"] = if i.is_expired(now) {
                        "expired".into()
                    } else {
                        "active".into()
                    };
                    v["file"] = i.loc.file.clone().into();
                    v
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "quarantines": rows }))?
            );
        }
        ListFormat::Text => {
            if all.is_empty() {
                println!("no quarantines in {}", a.policy.display());
            }
            for i in &all {
                let state = if i.is_expired(now) {
                    "expired (released by itself now)"
                } else {
                    "active"
                };
                println!(
                    "{}  {state}  by {} at {}  expires {}  reason: {}",
                    i.target,
                    i.who,
                    i.created,
                    i.expires.as_deref().unwrap_or("never"),
                    i.reason
                );
            }
            for r in released {
                eprintln!("{r}");
            }
        }
    }
    Ok(())
}

fn release(a: &ReleaseArgs) -> Result<()> {
    let all = read_all(&a.policy)?;
    let Some(info) = all.iter().find(|i| i.target == a.workload) else {
        let names: Vec<&str> = all.iter().map(|i| i.target.as_str()).collect();
        bail!(Refused(format!(
            "{}: not quarantined in {} (quarantined: {})",
            a.workload,
            a.policy.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let before = remove_file(info)?;
    let idx = record(
        &a.data_dir,
        a.no_record,
        q::AUDIT_RELEASE,
        &info.target,
        &a.reason,
        Some(before),
        None,
    )?;
    println!("released {}: removed {}", info.target, info.loc.file);
    if let Some(i) = idx {
        println!("  recorded: audit entry {i} ({})", q::AUDIT_RELEASE);
    }
    Ok(())
}
