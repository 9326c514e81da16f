//! What a parsing session read, parsed and skipped, and why.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// How many `file:line: reason` examples are kept per skip reason.
pub const MAX_EXAMPLES: usize = 5;

/// Records skipped for one reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// How many.
    pub count: u64,
    /// The first few, as `file:line: detail`.
    pub examples: Vec<String>,
}

/// The counts of a parsing session. Every record read is either parsed into a flow, skipped
/// with a reason, or (NetFlow/IPFIX) a record that carries no flow (options data, records
/// without addresses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The inputs, in the order read; [`bulkhead_core::flow::FlowOrigin::source`] indexes this.
    pub sources: Vec<String>,
    /// Records read: non-empty, non-header lines for line formats; decoded data records
    /// (flow and options data) for NetFlow/IPFIX.
    pub read: u64,
    /// Flows produced.
    pub parsed: u64,
    /// Records skipped, by reason (for NetFlow/IPFIX, malformed packets: their records cannot be
    /// counted).
    pub skipped: BTreeMap<String, Skip>,
    /// Informational counts that are not errors (e.g. VPC records whose `pkt-srcaddr` differs
    /// from `srcaddr`, Zeek timestamps that are masked).
    pub notes: BTreeMap<String, u64>,
    /// NetFlow v9 / IPFIX: data sets that arrived before their template (their records cannot
    /// be counted without the template, so this counts sets) — dropped, as exporters resend.
    pub sets_before_template: u64,
    /// NetFlow/IPFIX details.
    pub netflow: NetflowStats,
}

/// NetFlow/IPFIX counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NetflowStats {
    /// Export packets (messages) decoded.
    pub packets: u64,
    /// Templates and options templates learnt (including re-sent ones).
    pub templates: u64,
    /// Data records decoded with a (non-options) template.
    pub data_records: u64,
    /// Options data records decoded (exporter statistics, sampling, interface names, …).
    pub options_records: u64,
    /// Data records without source and destination addresses (no flow made).
    pub records_without_addresses: u64,
    /// Template ids whose data arrived before the template, with how many sets.
    pub missing_templates: BTreeMap<u16, u64>,
}

impl Report {
    pub(crate) fn add_source(&mut self, name: String) -> u32 {
        self.sources.push(name);
        (self.sources.len() - 1) as u32
    }

    /// Counts a skipped record, keeping the first few examples with `file:line`.
    pub fn skip(&mut self, source: u32, line: u64, reason: &str, detail: impl fmt::Display) {
        let s = match self.skipped.get_mut(reason) {
            Some(s) => s,
            None => self.skipped.entry(reason.to_string()).or_default(),
        };
        s.count += 1;
        if s.examples.len() < MAX_EXAMPLES {
            let file = self
                .sources
                .get(source as usize)
                .map(String::as_str)
                .unwrap_or("?");
            s.examples.push(format!("{file}:{line}: {detail}"));
        }
    }

    /// Counts an informational note.
    pub fn note(&mut self, what: &str) {
        match self.notes.get_mut(what) {
            Some(n) => *n += 1,
            None => {
                self.notes.insert(what.to_string(), 1);
            }
        }
    }

    /// Total records skipped.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().map(|s| s.count).sum()
    }

    /// Folds another session's report into this one (sources appended).
    pub fn merge(&mut self, other: Report) {
        self.sources.extend(other.sources);
        self.read += other.read;
        self.parsed += other.parsed;
        for (k, v) in other.skipped {
            let s = self.skipped.entry(k).or_default();
            s.count += v.count;
            for e in v.examples {
                if s.examples.len() < MAX_EXAMPLES {
                    s.examples.push(e);
                }
            }
        }
        for (k, v) in other.notes {
            *self.notes.entry(k).or_default() += v;
        }
        self.sets_before_template += other.sets_before_template;
        let (a, b) = (&mut self.netflow, other.netflow);
        a.packets += b.packets;
        a.templates += b.templates;
        a.data_records += b.data_records;
        a.options_records += b.options_records;
        a.records_without_addresses += b.records_without_addresses;
        for (k, v) in b.missing_templates {
            *a.missing_templates.entry(k).or_default() += v;
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "read {} records from {} input(s): {} flows, {} skipped",
            self.read,
            self.sources.len(),
            self.parsed,
            self.skipped_total()
        )?;
        for (reason, s) in &self.skipped {
            writeln!(f, "  skipped {}: {reason}", s.count)?;
            for e in &s.examples {
                writeln!(f, "    {e}")?;
            }
        }
        for (what, n) in &self.notes {
            writeln!(f, "  note {n}: {what}")?;
        }
        let n = &self.netflow;
        if n.packets > 0 {
            writeln!(
                f,
                "  netflow: {} packets, {} templates, {} data records, {} options records, {} records without addresses",
                n.packets,
                n.templates,
                n.data_records,
                n.options_records,
                n.records_without_addresses
            )?;
        }
        if self.sets_before_template > 0 {
            let ids: Vec<String> = n
                .missing_templates
                .iter()
                .map(|(id, c)| format!("{id} ({c})"))
                .collect();
            writeln!(
                f,
                "  {} data set(s) arrived before their template and were dropped: template ids {}",
                self.sets_before_template,
                ids.join(", ")
            )?;
        }
        Ok(())
    }
}
