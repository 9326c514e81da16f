//! `bulkhead flows parse`, `bulkhead collect` and `bulkhead bench telemetry`.

use anyhow::{Context, Result, bail};
use bulkhead_telemetry::{Flow, Format, Options, Parser, Report, bench, collect, netflow};
use clap::{Subcommand, ValueEnum};
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Auto,
    Hubble,
    Vpc,
    Zeek,
    Netflow,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Auto => Format::Auto,
            FormatArg::Hubble => Format::Hubble,
            FormatArg::Vpc => Format::Vpc,
            FormatArg::Zeek => Format::Zeek,
            FormatArg::Netflow => Format::Netflow,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputArg {
    /// One normalised flow per line as JSON (the report goes to standard error).
    Jsonl,
    /// Only the report: read, parsed, skipped with reasons and the first file:line examples.
    Summary,
}

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// Parse flow telemetry files (plain or gzip) into normalised flows.
    Parse {
        /// Files, read in order (NetFlow/IPFIX payload files share templates, so give templates first).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Input format; auto detects per file from its content.
        #[arg(long, short, value_enum, default_value = "auto")]
        format: FormatArg,
        /// What to print.
        #[arg(long, short, value_enum, default_value = "summary")]
        output: OutputArg,
        /// Zeek: the column that holds a field under another name, e.g. `id.orig_h=src` (repeatable).
        #[arg(long, value_name = "FIELD=COLUMN")]
        zeek_field: Vec<String>,
        /// NetFlow/IPFIX files hold export packets back to back (RFC 5655 IPFIX files), not
        /// one UDP payload each.
        #[arg(long)]
        netflow_stream: bool,
    },
}

/// `bulkhead collect`.
#[derive(clap::Args)]
pub struct CollectArgs {
    /// Listen for NetFlow v5/v9/IPFIX on this UDP address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2055")]
    netflow: SocketAddr,
    /// Stop after this many decoded records.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Write the normalised flows here as JSON lines.
    #[arg(long, value_name = "FILE.jsonl")]
    out: Option<PathBuf>,
}

/// `bulkhead bench telemetry`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which parser to measure.
    #[arg(long, short, value_enum)]
    format: FormatArg,
    /// Records in the generated input.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Runs (each parses the same file; figures are per run).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Directory for the generated file (default: a new temporary directory, removed after).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn parse_renames(v: &[String]) -> Result<Vec<(String, String)>> {
    v.iter()
        .map(|s| match s.split_once('=') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
            _ => bail!("--zeek-field {s:?}: write FIELD=COLUMN, e.g. id.orig_h=src"),
        })
        .collect()
}

fn print_report(r: &Report, to_stderr: bool) -> Result<()> {
    let text = r.to_string();
    if to_stderr {
        eprint!("{text}");
    } else {
        crate::write_output(None, &text)?;
    }
    Ok(())
}

pub fn run_flows(cmd: FlowsCommand) -> Result<bool> {
    let FlowsCommand::Parse {
        files,
        format,
        output,
        zeek_field,
        netflow_stream,
    } = cmd;
    let opts = Options {
        zeek_fields: parse_renames(&zeek_field)?,
        netflow_stream,
        ..Options::default()
    };
    let mut parser = Parser::new(opts);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let jsonl = matches!(output, OutputArg::Jsonl);
    let mut write_err: Option<std::io::Error> = None;
    let mut failed = false;
    for f in &files {
        let mut sink = |flow: Flow| {
            if jsonl && write_err.is_none() {
                let r = serde_json::to_writer(&mut out, &flow)
                    .map_err(std::io::Error::other)
                    .and_then(|_| out.write_all(b"\n"));
                if let Err(e) = r {
                    write_err = Some(e);
                }
            }
        };
        if let Err(e) = parser.parse_path(f, format.into(), &mut sink) {
            eprintln!("error: {e}");
            failed = true;
        }
        if let Some(e) = &write_err {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(!failed);
            }
            bail!("cannot write to standard output: {e}");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write to standard output");
        }
        _ => {}
    }
    drop(out);
    print_report(&parser.finish(), jsonl)?;
    Ok(!failed)
}

pub fn run_collect(a: CollectArgs) -> Result<()> {
    let socket =
        UdpSocket::bind(a.netflow).with_context(|| format!("cannot bind UDP {}", a.netflow))?;
    eprintln!(
        "Listening for NetFlow/IPFIX on udp {}.",
        socket.local_addr()?
    );
    let limits = collect::Limits {
        records: a.count,
        packets: None,
        duration: a.duration.map(Duration::from_secs_f64),
    };
    let mut out = match &a.out {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let mut report = Report::default();
    let mut write_err = None;
    collect::collect(
        &socket,
        limits,
        &mut report,
        &mut |_, rec: netflow::Record| {
            if let (Some(w), Some(f)) = (out.as_mut(), rec.flow.as_ref())
                && write_err.is_none()
                && let Err(e) = serde_json::to_writer(&mut *w, f)
                    .map_err(std::io::Error::other)
                    .and_then(|_| w.write_all(b"\n"))
            {
                write_err = Some(e);
            }
        },
    )
    .context("receiving")?;
    if let Some(e) = write_err {
        bail!("cannot write flows: {e}");
    }
    if let Some(mut w) = out {
        w.flush().context("cannot write flows")?;
    }
    print_report(&report, false)
}

/// This process's CPU time (user + system) in seconds, from /proc (Linux; clock ticks of
/// 1/100 s, the kernel's USER_HZ on every common platform). `None` elsewhere.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, whole line).
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn wc_l(path: &std::path::Path) -> Result<(u64, f64)> {
    let t = Instant::now();
    let out = std::process::Command::new("wc")
        .arg("-l")
        .arg(path)
        .output()
        .context("cannot run wc -l")?;
    let secs = t.elapsed().as_secs_f64();
    let n = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((n, secs))
}

pub fn run_bench(a: BenchArgs) -> Result<()> {
    let format: Format = a.format.into();
    if format == Format::Auto {
        bail!("--format: name one format");
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("bulkhead-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let path = dir.join(format!("bench-{format}.dat"));
    let t = Instant::now();
    bench::generate(format, a.records, &path).context("cannot write the bench input")?;
    let size = std::fs::metadata(&path)?.len();
    eprintln!(
        "Generated {} {format} records, {:.1} MB, in {:.1} s: {}",
        a.records,
        size as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        path.display()
    );
    let mut runs = Vec::new();
    for run in 1..=a.runs {
        let cpu0 = cpu_secs();
        let m = bench::measure(&path, format)?;
        let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
        let (lines, wc) = wc_l(&path)?;
        let rate = m.read as f64 / m.secs;
        let mut line = serde_json::json!({
            "format": format.to_string(),
            "run": run,
            "records": m.read,
            "flows": m.flows,
            "bytes": size,
            "parse_s": m.secs,
            "records_per_s": rate.round(),
            "mb_per_s": (size as f64 / 1e6 / m.secs * 10.0).round() / 10.0,
            "wc_l_s": wc,
            "wc_lines": lines,
            "share_of_wc_l": (wc / m.secs * 1000.0).round() / 1000.0,
        });
        if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
            line["cpu_s"] = cpu.into();
            line["records_per_cpu_s"] = (m.read as f64 / cpu).round().into();
        }
        if format == Format::Hubble {
            // The serde path the scanner falls back to, on the same file in the same run.
            let opts = bulkhead_telemetry::Options {
                hubble_serde: true,
                ..Default::default()
            };
            let cpu0 = cpu_secs();
            let m = bench::measure_with(&path, format, opts)?;
            let cpu = cpu_secs().zip(cpu0).map(|(b, a)| b - a);
            line["serde_parse_s"] = m.secs.into();
            line["serde_records_per_s"] = (m.read as f64 / m.secs).round().into();
            if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
                line["serde_records_per_cpu_s"] = (m.read as f64 / cpu).round().into();
            }
        }
        if format == Format::Netflow {
            let bytes = std::fs::read(&path)?;
            let mut p = netflow_parser::NetflowParser::default();
            let t = Instant::now();
            let (n, err) = bench::netflow_parser_records(&mut p, &bytes);
            let s = t.elapsed().as_secs_f64();
            line["netflow_parser_records"] = n.into();
            line["netflow_parser_s"] = s.into();
            line["netflow_parser_records_per_s"] = (n as f64 / s).round().into();
            if let Some(e) = err {
                line["netflow_parser_error"] = e.into();
            }
        }
        println!("{line}");
        runs.push(rate);
    }
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    runs.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (runs.first(), runs.last()) {
        eprintln!(
            "{format}: {lo:.0}–{hi:.0} records/s over {} run(s)",
            runs.len()
        );
    }
    Ok(())
}
