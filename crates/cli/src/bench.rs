//! `bulkhead bench`: synthetic clusters of the standard shape, and measurements of the engine.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Telemetry parser throughput on a generated file, next to `wc -l` on the same file.
    Telemetry(crate::telemetry::BenchArgs),
    /// Ingest throughput: synthetic flows over a synthetic inventory, parse + resolve +
    /// aggregate, then the whole ingest into a store; prints JSON with peak memory.
    Ingest(crate::see_bench::BenchIngestArgs),
    /// Map query time over a store of synthetic edges; prints JSON.
    Map(crate::see_bench::BenchMapArgs),
    /// The intent evaluator: compile a policy over synthetic identities, then decisions per
    /// CPU second on random edges; prints JSON.
    Intent(crate::policy::BenchIntentArgs),
    /// The verifier: invariants checked over synthetic identities and rules; prints JSON with
    /// CPU seconds.
    Verify(crate::verify::BenchVerifyArgs),
    /// The istio compiler: the bank policy plus synthetic rules over synthetic workloads to
    /// AuthorizationPolicies; prints JSON with CPU seconds.
    Istio(crate::istio_bench::BenchIstioArgs),
    /// Brownfield verification: invariants checked against a cluster's Kubernetes policies
    /// (`verify --k8s`); prints JSON with CPU seconds.
    VerifyK8s(crate::verify_k8s::BenchVerifyK8sArgs),
    /// The digital twin: classify synthetic recorded edges under two policies; prints JSON with
    /// CPU time.
    Simulate(crate::simulate::BenchSimulateArgs),
    /// `bulkhead recommend` over a store of synthetic flows: read, recommend, write YAML,
    /// quality report; prints JSON with CPU and wall seconds per phase.
    Recommend(crate::recommend::BenchRecommendArgs),
    /// Host enforcement: apply an nftables ruleset with a large set atomically in a scratch
    /// network namespace (JSON and text input); prints JSON with wall and nft CPU seconds.
    NftApply(crate::nft_bench::NftApplyArgs),
    /// The host agent's reaction to a policy change, until the table is updated and verified.
    Agent(crate::nft_bench::AgentBenchArgs),
    /// Compile one host's nftables ruleset from a large synthetic intent; prints JSON.
    NftCompile(crate::nft_bench::NftCompileArgs),
    /// The compilers: the synthetic intent of `bench intent` compiled per target; prints JSON
    /// with CPU seconds per target.
    Compile(crate::compile::BenchCompileArgs),
    /// Write a deterministic synthetic cluster (the benchmark's standard shape) as Kubernetes
    /// manifests: namespaces.yaml, workloads.yaml (split beyond 5000), netpols.yaml, anps.yaml.
    Generate {
        /// Deployments, each with unique `app` and `tier`/`team`/`env` (and 5 % `pci`) labels.
        #[arg(long, default_value_t = 1000)]
        workloads: usize,
        /// Namespaces, labelled `team` and `env`.
        #[arg(long, default_value_t = 20)]
        namespaces: usize,
        /// NetworkPolicies.
        #[arg(long, default_value_t = 200)]
        policies: usize,
        /// AdminNetworkPolicies (distinct priorities, so at most 1001).
        #[arg(long, default_value_t = 10)]
        anps: usize,
        /// Leave out the BaselineAdminNetworkPolicy `default`.
        #[arg(long)]
        no_banp: bool,
        /// The same seed (and sizes) always gives byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory (created if missing; must be empty unless --force).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write into a non-empty directory, first removing files an earlier run generated there.
        #[arg(long)]
        force: bool,
        /// Write each file as one JSON `List` (as `kubectl get -o json` does) instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Measure the audit log: batched appends (each batch fsynced and signed), verification of
    /// the whole log from disk and from an export, open, and proof generation and verification;
    /// prints JSON.
    Audit {
        /// Entries to append.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Entries per batch (one fsync and one signed checkpoint per batch).
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        /// Inclusion and consistency proofs to time.
        #[arg(long, default_value_t = 1000)]
        proofs: u64,
        /// Where to build the log (a fresh directory is made inside; default: the system's
        /// temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Keep the log afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Measure loading, engine build, full connectivity, single decisions and incremental policy
    /// updates on the manifests under PATH; prints JSON.
    Connectivity {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Single-flow decisions to time.
        #[arg(long, default_value_t = 2000)]
        evals: usize,
        /// Incremental policy updates to time.
        #[arg(long, default_value_t = 60)]
        updates: usize,
        /// Seed for choosing the flows and updates.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also change and remove every AdminNetworkPolicy once (`anp_every`), rather than
        /// only those the sample picks.
        #[arg(long)]
        every_admin: bool,
        /// Do everything after loading this many times, on fresh engines in the same way,
        /// and report each time as the least of the runs (per decision and per update): a
        /// shared machine only adds time.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
    },
    /// Time one policy's update again and again from the same state, put back untimed in
    /// between: a change of its first rule's ports, or with `--remove` its removal. Prints
    /// JSON (each repetition's CPU time, their least and median, the changed pairs).
    Update {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The policy, by name (`anp-0043`).
        #[arg(long)]
        policy: String,
        /// Time its removal rather than a change of its ports.
        #[arg(long)]
        remove: bool,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10000))]
        reps: u32,
        /// Start from the state `bench connectivity --updates 200 --seed SEED` leaves before
        /// its `--every-admin` sweep, rather than from the freshly built engine.
        #[arg(long, value_name = "SEED")]
        after_sample: Option<u64>,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Audit {
            entries,
            batch,
            proofs,
            dir,
            keep,
        } => {
            let figures = audit_bench(entries, batch, proofs, dir.as_deref(), keep)?;
            println!("{}", serde_json::to_string_pretty(&figures)?);
        }
        BenchCommand::Telemetry(a) => crate::telemetry::run_bench(a)?,
        BenchCommand::Ingest(a) => crate::see_bench::run_ingest_bench(a)?,
        BenchCommand::Map(a) => crate::see_bench::run_map_bench(a)?,
        BenchCommand::Intent(a) => crate::policy::run_bench(a)?,
        BenchCommand::NftApply(a) => crate::nft_bench::run_nft_apply(a)?,
        BenchCommand::Agent(a) => crate::nft_bench::run_agent_bench(a)?,
        BenchCommand::NftCompile(a) => crate::nft_bench::run_nft_compile(a)?,
        BenchCommand::Verify(a) => crate::verify::run_bench(a)?,
        BenchCommand::Istio(a) => crate::istio_bench::run(a)?,
        BenchCommand::VerifyK8s(a) => crate::verify_k8s::run_bench(a)?,
        BenchCommand::Simulate(a) => crate::simulate::run_bench(a)?,
        BenchCommand::Recommend(a) => crate::recommend::run_bench(a)?,
        BenchCommand::Compile(a) => crate::compile::run_bench(a)?,
        BenchCommand::Generate {
            workloads,
            namespaces,
            policies,
            anps,
            no_banp,
            seed,
            out,
            force,
            json,
        } => {
            let t = Instant::now();
            let params = bulkhead_synth::Params {
                workloads,
                namespaces,
                policies,
                anps,
                banp: !no_banp,
                seed,
            };
            let mut g = bulkhead_synth::generate(&params)?;
            if json {
                g = to_json(g)?;
            }
            bulkhead_synth::write_dir(&g, &out, force)?;
            eprintln!(
                "wrote {} files ({:.1} MB) to {} in {:.2} s: {workloads} workloads, {namespaces} namespaces, \
                 {policies} NetworkPolicies, {anps} AdminNetworkPolicies{}",
                g.files.len(),
                g.bytes() as f64 / 1e6,
                out.display(),
                t.elapsed().as_secs_f64(),
                if no_banp {
                    ""
                } else {
                    ", 1 BaselineAdminNetworkPolicy"
                }
            );
        }
        BenchCommand::Connectivity {
            path,
            evals,
            updates,
            seed,
            every_admin,
            runs,
        } => {
            if !path.exists() {
                bail!("{}: no such file or directory", path.display());
            }
            let b = bulkhead_analysis::bench::run(
                &path,
                evals,
                updates,
                seed,
                every_admin,
                runs as usize,
            )
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("bench connectivity {}", path.display()))?;
            println!("{}", serde_json::to_string_pretty(&b)?);
        }
        BenchCommand::Update {
            path,
            policy,
            remove,
            reps,
            after_sample,
        } => {
            if !path.exists() {
                bail!("{}: no such file or directory", path.display());
            }
            let b = bulkhead_analysis::bench::one_update(
                &path,
                &policy,
                remove,
                reps as usize,
                after_sample,
            )
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("bench update {}", path.display()))?;
            println!("{}", serde_json::to_string_pretty(&b)?);
        }
    }
    Ok(())
}

/// The same manifests, each file as one JSON `List`.
fn to_json(mut g: bulkhead_synth::Generated) -> Result<bulkhead_synth::Generated> {
    for f in &mut g.files {
        // Our own generated text: no document budget needed.
        let options = serde_saphyr::options! { budget: None };
        let items: Vec<serde_json::Value> =
            serde_saphyr::from_multiple_with_options(&f.text, options)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.name))?;
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        f.text = serde_json::to_string(&list)? + "\n";
        f.name = f.name.replace(".yaml", ".json");
    }
    Ok(g)
}

/// Figures of `bench audit`.
fn audit_bench(
    entries: u64,
    batch: u64,
    proofs: u64,
    dir: Option<&std::path::Path>,
    keep: bool,
) -> Result<serde_json::Value> {
    use bulkhead_audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    use bulkhead_audit::{AuditLog, Digest, Event, KeySource, LogReader, actions};
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let base = dir.map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let data = base.join(format!(
        "bulkhead-audit-bench-{}-{nanos}",
        std::process::id()
    ));
    if data.exists() {
        bail!("{} exists", data.display());
    }
    let result = (|| -> Result<serde_json::Value> {
        let mut log = AuditLog::open(&data, KeySource::DataDirNamed("bench.example/audit".into()))?;
        // A realistic event: digests before and after, a path-like object, a ticket.
        let make = |i: u64| {
            let mut e = Event::new(
                "svc-policy-controller",
                actions::POLICY_APPLY,
                &format!("payments/pci-segment@v{i}"),
                &format!("CHG-{:06}", i % 1_000_000),
            );
            e.before = Some(Digest::of(&i.to_le_bytes()));
            e.after = Some(Digest::of(&(i + 1).to_le_bytes()));
            e
        };
        let t = Instant::now();
        let mut done = 0;
        let mut buf = Vec::with_capacity(batch as usize);
        while done < entries {
            buf.clear();
            let n = batch.min(entries - done);
            buf.extend((done..done + n).map(make));
            log.append_batch(&buf)?;
            done += n;
        }
        let append_s = t.elapsed().as_secs_f64();
        let entries_bytes = std::fs::metadata(&log.paths().entries)?.len();
        let trusted = log.verifier().clone();
        drop(log);

        let t = Instant::now();
        let log = AuditLog::open(&data, KeySource::DataDir)?;
        let open_s = t.elapsed().as_secs_f64();
        drop(log);

        let t = Instant::now();
        let rep = bulkhead_audit::verify_dir(&data, &trusted, None)?;
        let verify_dir_s = t.elapsed().as_secs_f64();
        if rep.signed_size != entries {
            bail!(
                "verify saw {} signed entries, not {entries}",
                rep.signed_size
            );
        }

        let reader = LogReader::open(&data)?;
        let export = data.join("export.jsonl");
        let t = Instant::now();
        reader.export(&export)?;
        let export_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        bulkhead_audit::verify_export(&export, &trusted, None)?;
        let verify_export_s = t.elapsed().as_secs_f64();

        // Proofs at random places against the full tree.
        let tree = reader.tree();
        let size = tree.size();
        let root = tree.root();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut inc_max, mut con_max) = (0f64, 0f64);
        let t_all = Instant::now();
        for _ in 0..proofs.min(size) {
            let i = next() % size;
            let t = Instant::now();
            let (bytes, _) = reader.entry(i)?;
            let p = tree.inclusion_proof(i, size)?;
            verify_inclusion(i, size, &leaf_hash(&bytes), &p, &root)?;
            inc_max = inc_max.max(t.elapsed().as_secs_f64());
        }
        let inc_mean = t_all.elapsed().as_secs_f64() / proofs.min(size).max(1) as f64;
        let t_all = Instant::now();
        for _ in 0..proofs.min(size) {
            let m = 1 + next() % size;
            let t = Instant::now();
            let p = tree.consistency_proof(m, size)?;
            verify_consistency(m, size, &tree.root_at(m)?, &root, &p)?;
            con_max = con_max.max(t.elapsed().as_secs_f64());
        }
        let con_mean = t_all.elapsed().as_secs_f64() / proofs.min(size).max(1) as f64;
        Ok(serde_json::json!({
            "entries": entries,
            "batch": batch,
            "entries_file_bytes": entries_bytes,
            "append_seconds": append_s,
            "appends_per_second": entries as f64 / append_s,
            "open_seconds": open_s,
            "verify_data_dir_seconds": verify_dir_s,
            "export_seconds": export_s,
            "verify_export_seconds": verify_export_s,
            "inclusion_proof_read_generate_verify_mean_ms": inc_mean * 1e3,
            "inclusion_proof_max_ms": inc_max * 1e3,
            "consistency_proof_generate_verify_mean_ms": con_mean * 1e3,
            "consistency_proof_max_ms": con_max * 1e3,
        }))
    })();
    if !keep {
        let _ = std::fs::remove_dir_all(&data);
    } else {
        eprintln!("kept the log in {}", data.display());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(out: &std::path::Path, seed: u64, force: bool) -> Result<()> {
        run(BenchCommand::Generate {
            workloads: 120,
            namespaces: 6,
            policies: 24,
            anps: 3,
            no_banp: false,
            seed,
            out: out.to_path_buf(),
            force,
            json: false,
        })
    }

    #[test]
    fn json_and_yaml_forms_load_to_the_same_connectivity() {
        let base =
            std::env::temp_dir().join(format!("bulkhead-cli-bench-json-{}", std::process::id()));
        let (y, j) = (base.join("yaml"), base.join("json"));
        for (dir, json) in [(&y, false), (&j, true)] {
            run(BenchCommand::Generate {
                workloads: 150,
                namespaces: 6,
                policies: 30,
                anps: 4,
                no_banp: false,
                seed: 11,
                out: dir.to_path_buf(),
                force: false,
                json,
            })
            .expect("generate");
        }
        let text = |dir: &std::path::Path| {
            let loaded = bulkhead_k8s::Loaded::from_paths(&[dir]);
            assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
            let engine = bulkhead_core::Engine::new(&loaded.cluster);
            let conns =
                bulkhead_analysis::connectivity(&engine, &bulkhead_analysis::Options::default());
            bulkhead_analysis::render(&conns, bulkhead_analysis::Format::Txt, &engine)
        };
        let (a, b) = (text(&y), text(&j));
        let _ = std::fs::remove_dir_all(&base);
        assert!(a.lines().count() > 100, "a cluster with real connectivity");
        assert_eq!(a, b, "YAML and JSON forms differ");
    }

    #[test]
    fn generate_writes_a_cluster_the_loader_reads() {
        let dir = std::env::temp_dir().join(format!("bulkhead-cli-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&dir, 3, false).expect("generates into a new directory");
        let first = std::fs::read(dir.join("netpols.yaml")).expect("netpols.yaml");
        assert!(
            generate(&dir, 3, false).is_err(),
            "a non-empty directory is refused without --force"
        );
        generate(&dir, 3, true).expect("--force rewrites");
        assert_eq!(
            std::fs::read(dir.join("netpols.yaml")).expect("netpols.yaml"),
            first,
            "the same seed writes the same bytes"
        );
        let loaded = bulkhead_k8s::Loaded::from_paths(&[&dir]);
        assert!(loaded.errors.is_empty(), "errors: {:?}", loaded.errors);
        assert_eq!(loaded.cluster.workloads.len(), 120);
        assert_eq!(loaded.cluster.namespaces.len(), 6);
        assert_eq!(loaded.cluster.policies.len(), 24 + 3 + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
