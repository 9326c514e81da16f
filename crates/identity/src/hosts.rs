//! Host inventories: VMs, appliances and legacy hosts that no Kubernetes object describes.
//!
//! YAML (a list, or a map with a `hosts:` list):
//! ```yaml
//! hosts:
//!   - name: ledger-db-1
//!     addresses: [10.20.0.5, 10.20.1.0/24]
//!     labels: {segment: core-ledger, pci: "true"}
//! ```
//! CSV, with a header naming the columns `name`, `addresses` and (optionally) `labels`;
//! addresses separated by `;` or spaces, labels as `key=value` separated by `;`:
//! ```text
//! name,addresses,labels
//! ledger-db-1,10.20.0.5;10.20.1.0/24,segment=core-ledger;pci=true
//! ```
//! Addresses are single IPs or CIDRs. Every problem is reported as `file:line: reason`.

use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

/// One host of an inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// Single addresses are /32 or /128 networks.
    pub addresses: Vec<IpNet>,
    pub labels: BTreeMap<String, String>,
    /// `file:line` of the entry.
    pub origin: String,
}

/// A problem in a host inventory, with its place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct HostError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Parses one address or CIDR (`10.0.0.1`, `10.0.0.0/24`, `fd00::1`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if s.contains('/') {
        s.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("invalid CIDR {s:?}"))
    } else {
        s.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("invalid address {s:?}"))
    }
}

/// Reads a host inventory file; `.csv` files (or content whose first line starts with `name,`)
/// are CSV, everything else YAML (JSON included).
pub fn load_hosts(path: &Path) -> Result<Vec<Host>, Vec<HostError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![HostError {
            file: file.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        }]
    })?;
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        || text.trim_start().starts_with("name,");
    if csv {
        parse_csv(&file, &text)
    } else {
        parse_yaml(&file, &text)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the host has no name".into());
    }
    Ok(())
}

/// Splits one CSV line into fields (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true
            }
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// Parses CSV text (see the module docs).
pub fn parse_csv(file: &str, text: &str) -> Result<Vec<Host>, Vec<HostError>> {
    let mut errors = Vec::new();
    let mut hosts = Vec::new();
    let err = |line: usize, reason: String| HostError {
        file: file.to_string(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        return Err(vec![err(1, "empty host inventory".into())]);
    };
    let header: Vec<String> = match csv_fields(header) {
        Ok(h) => h.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
        Err(e) => return Err(vec![err(hline, e)]),
    };
    let col = |n: &str| header.iter().position(|h| h == n);
    let (Some(cname), Some(caddr)) = (col("name"), col("addresses")) else {
        return Err(vec![err(
            hline,
            format!(
                "the header must name the columns name and addresses (and optionally labels), found {header:?}"
            ),
        )]);
    };
    let clabels = col("labels");
    for (no, line) in lines {
        let r = (|| -> Result<Host, String> {
            let f = csv_fields(line)?;
            if f.len() != header.len() {
                return Err(format!(
                    "{} fields where the header has {}",
                    f.len(),
                    header.len()
                ));
            }
            let name = f[cname].trim().to_string();
            check_name(&name)?;
            let addresses = f[caddr]
                .split([';', ' '])
                .filter(|s| !s.trim().is_empty())
                .map(parse_net)
                .collect::<Result<Vec<_>, _>>()?;
            if addresses.is_empty() {
                return Err(format!("host {name} has no addresses"));
            }
            let mut labels = BTreeMap::new();
            if let Some(c) = clabels {
                for kv in f[c].split(';').filter(|s| !s.trim().is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| format!("label {kv:?} is not key=value"))?;
                    labels.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            Ok(Host {
                name,
                addresses,
                labels,
                origin: format!("{file}:{no}"),
            })
        })();
        match r {
            Ok(h) => hosts.push(h),
            Err(reason) => errors.push(err(no, reason)),
        }
    }
    if errors.is_empty() {
        Ok(hosts)
    } else {
        Err(errors)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlHost {
    name: serde_saphyr::Spanned<String>,
    #[serde(default)]
    addresses: Vec<serde_saphyr::Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum YamlFile {
    List(Vec<YamlHost>),
    Map { hosts: Vec<YamlHost> },
}

/// Parses YAML (or JSON) text (see the module docs).
pub fn parse_yaml(file: &str, text: &str) -> Result<Vec<Host>, Vec<HostError>> {
    let err = |line: usize, reason: String| HostError {
        file: file.to_string(),
        line,
        reason,
    };
    // Untagged enums lose saphyr's locations; try the two shapes one after the other.
    let parsed: Result<Vec<YamlHost>, serde_saphyr::Error> =
        if text.trim_start().starts_with('[') || text.trim_start().starts_with("- ") {
            serde_saphyr::from_str(text)
        } else {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Wrapped {
                hosts: Vec<YamlHost>,
            }
            serde_saphyr::from_str::<Wrapped>(text).map(|w| w.hosts)
        };
    let entries = match parsed {
        Ok(e) => e,
        Err(e) => {
            // Fall back to the other shape before giving up.
            if let Ok(YamlFile::List(v) | YamlFile::Map { hosts: v }) =
                serde_saphyr::from_str::<YamlFile>(text)
            {
                v
            } else {
                let msg = e.to_string();
                let line = yaml_error_line(&msg).unwrap_or(1);
                return Err(vec![err(line, first_line(&msg).to_string())]);
            }
        }
    };
    let mut errors = Vec::new();
    let mut hosts = Vec::new();
    for h in entries {
        let line = h.name.referenced.line() as usize;
        if let Err(e) = check_name(&h.name.value) {
            errors.push(err(line, e));
            continue;
        }
        let mut addresses = Vec::new();
        for a in &h.addresses {
            match parse_net(&a.value) {
                Ok(n) => addresses.push(n),
                Err(e) => errors.push(err(
                    a.referenced.line() as usize,
                    format!("host {}: {e}", h.name.value),
                )),
            }
        }
        if h.addresses.is_empty() {
            errors.push(err(line, format!("host {} has no addresses", h.name.value)));
            continue;
        }
        hosts.push(Host {
            name: h.name.value,
            addresses,
            labels: h.labels,
            origin: format!("{file}:{line}"),
        });
    }
    if errors.is_empty() {
        Ok(hosts)
    } else {
        Err(errors)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Saphyr's messages carry `line N`; take it when present.
fn yaml_error_line(msg: &str) -> Option<usize> {
    let i = msg.find("line ")?;
    msg[i + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_and_errors() {
        let ok = "name,addresses,labels\nledger-db,\"10.20.0.5;10.20.1.0/24\",segment=core-ledger;pci=true\n";
        let h = parse_csv("h.csv", ok).unwrap();
        assert_eq!(h[0].addresses.len(), 2);
        assert_eq!(h[0].labels["pci"], "true");
        assert_eq!(h[0].origin, "h.csv:2");
        let bad = "name,addresses\n\na,10.0.0.1\nb,10.0.0.300\nc,\n";
        let e = parse_csv("h.csv", bad).unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].to_string(), "h.csv:4: invalid address \"10.0.0.300\"");
        assert_eq!(e[1].to_string(), "h.csv:5: host c has no addresses");
    }

    #[test]
    fn yaml_shapes_and_errors() {
        let y = "hosts:\n  - name: a\n    addresses: [10.0.0.1, 10.1.0.0/16]\n    labels: {segment: x}\n";
        let h = parse_yaml("h.yaml", y).unwrap();
        assert_eq!(h[0].origin, "h.yaml:2");
        let l =
            "- name: a\n  addresses:\n    - 10.0.0.1\n- name: b\n  addresses:\n    - 10.0.0.0/33\n";
        let e = parse_yaml("h.yaml", l).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 6, "{}", e[0]);
        assert!(e[0].reason.contains("invalid CIDR"), "{}", e[0]);
        let e = parse_yaml("h.yaml", "hosts:\n  - name: a\n    adresses: [1]\n").unwrap_err();
        assert!(e[0].line >= 2, "{}", e[0]);
    }
}
