//! Crash safety: a child process appends in a loop and prints each acknowledged index; it is
//! killed with SIGKILL at a random moment; the log must verify and hold every acknowledged
//! entry. The child is this test binary re-executed with `BULKHEAD_AUDIT_CRASH_CHILD` set.

use bulkhead_audit::{
    AuditLog, Event, KeySource, LogReader, actions, default_trusted_key, verify_dir,
};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "BULKHEAD_AUDIT_CRASH_CHILD";

/// The child: appends batches of 1..=64 events forever, printing `ack N` after each returns.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when re-executed by the test below.
    };
    let mut log = AuditLog::open(
        Path::new(&dir),
        KeySource::DataDirNamed("crash.test/audit".into()),
    )
    .expect("child open");
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    loop {
        let size = 1 + (n * 7919 % 64) as usize;
        let batch: Vec<Event> = (0..size)
            .map(|i| {
                Event::new(
                    "crash-test",
                    actions::ALERT,
                    &format!("object-{n}-{i}"),
                    "crash test",
                )
            })
            .collect();
        let r = log.append_batch(&batch).expect("append");
        writeln!(out, "ack {}", r.end - 1).expect("stdout");
        out.flush().expect("flush");
        n += 1;
    }
}

#[test]
fn kill_9_while_appending_loses_only_unacknowledged_entries() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("data");
    let exe = std::env::current_exe().expect("current exe");
    let mut acked: Option<u64> = None;
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Let it acknowledge a varying number of batches, then kill it mid-stride.
        let wait_for = 5 + round * 13;
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.expect("line");
            if let Some(n) = line.strip_prefix("ack ") {
                acked = Some(n.parse().expect("index"));
                seen += 1;
                if seen == wait_for {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        // Acknowledgements printed before the kill still count.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ack ") {
                acked = Some(n.parse().expect("index"));
            }
        }
        child.wait().expect("wait");
        let last = acked.expect("the child acknowledged something");

        let report = verify_dir(&dir, &default_trusted_key(&dir).expect("trust"), None)
            .unwrap_or_else(|e| panic!("round {round}: verification after kill -9: {e}"));
        let reader = LogReader::open(&dir).expect("reader");
        assert!(
            reader.len() > last,
            "round {round}: acknowledged entry {last} is missing ({} entries)",
            reader.len()
        );
        assert!(report.signed_size > last, "round {round}: {report:?}");
        // Every acknowledged entry reads back in order.
        for (i, e) in reader.entries(0, last + 1).expect("entries") {
            assert_eq!(e.seq, i);
        }
        // The writer opens it again (truncating any torn tail) and signs what is there.
        let log = AuditLog::open(&dir, KeySource::DataDir).expect("reopen");
        assert!(log.len() > last);
        assert_eq!(log.latest().checkpoint.size, log.len());
    }
}
