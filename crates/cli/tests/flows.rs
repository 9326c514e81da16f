//! `bulkhead flows parse` and `bulkhead bench telemetry` end to end: both output formats
//! (golden files), exit codes, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run bulkhead")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Compares with a golden file; `BULKHEAD_UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BULKHEAD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with BULKHEAD_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(got, want, "{} differs", path.display());
}

const TD: &str = "../shared/testdata/telemetry";

#[test]
fn flows_parse_outputs_match_their_golden_files() {
    assert!(
        repo().join(TD).is_dir(),
        "test data missing: ../shared/testdata/telemetry"
    );
    let vpc = format!("{TD}/aws-vpc-flow-logs/awsdocs_default-v2.log");
    let hubble = format!("{TD}/hubble/cilium-docs_export-rst_dropped-flows.jsonl");
    let o = bulkhead(&["flows", "parse", &vpc, &hubble]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    golden("flows-summary.txt", &text(&o.stdout));
    let o = bulkhead(&["flows", "parse", "-o", "jsonl", &vpc, &hubble]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 5 + 2);
    golden("flows-vpc-hubble.jsonl", &text(&o.stdout));
    // The report goes to standard error with jsonl.
    assert!(text(&o.stderr).contains("read 9 records from 2 input(s): 7 flows, 2 skipped"));
}

#[test]
fn netflow_payloads_in_order_and_zeek_renames() {
    let p = format!("{TD}/netflow-ipfix/payloads");
    let o = bulkhead(&[
        "flows",
        "parse",
        &format!("{p}/ipfix_test_netscaler_data.dat"),
        &format!("{p}/ipfix_test_netscaler_tpl.dat"),
        &format!("{p}/ipfix_test_netscaler_data.dat"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    // cases.json: 3 records once the templates are in; the data sent before them is counted.
    assert!(
        out.starts_with("read 3 records from 3 input(s): 3 flows"),
        "{out}"
    );
    assert!(
        out.contains("data set(s) arrived before their template and were dropped"),
        "{out}"
    );
    let z = format!(
        "{TD}/zeek/testing/btest/Baseline/scripts.base.frameworks.logging.field-name-map/conn.log"
    );
    let o = bulkhead(&[
        "flows",
        "parse",
        "--zeek-field",
        "id.orig_h=src",
        "--zeek-field",
        "id.orig_p=src_port",
        "--zeek-field",
        "id.resp_h=dst",
        "--zeek-field",
        "id.resp_p=dst_port",
        &z,
    ]);
    assert!(text(&o.stdout).starts_with("read 34 records from 1 input(s): 34 flows, 0 skipped"));
    let o = bulkhead(&["flows", "parse", "--zeek-field", "nonsense", &z]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("FIELD=COLUMN"));
}

#[test]
fn unreadable_input_fails_with_the_file_named() {
    let o = bulkhead(&["flows", "parse", "no-such-file.log"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no-such-file.log"),
        "{}",
        text(&o.stderr)
    );
    // A binary payload read as VPC text.
    let p = format!("{TD}/netflow-ipfix/payloads/ipfix.dat");
    let o = bulkhead(&["flows", "parse", "-f", "vpc", &p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("binary content"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bench_telemetry_reports_rates_and_the_wc_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    for f in ["hubble", "vpc", "zeek", "netflow"] {
        let o = bulkhead(&[
            "bench",
            "telemetry",
            "-f",
            f,
            "--records",
            "2000",
            "--runs",
            "1",
            "--dir",
            d,
        ]);
        assert!(o.status.success(), "{f}: {}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).expect("json");
        assert_eq!(v["records"], 2000, "{f}: {v}");
        assert_eq!(v["flows"], 2000, "{f}: {v}");
        assert!(
            v["share_of_wc_l"].is_number() && v["records_per_s"].is_number(),
            "{v}"
        );
    }
}
