//! Runs `nft`, on the host or inside a network namespace (`ip netns exec NS nft …`).

use crate::NftError;
use crate::normal::NormalForm;
use crate::ruleset::TABLE;
use std::io::Write;
use std::process::{Command, Stdio};

/// The `nft` program, optionally in a named network namespace.
#[derive(Clone, Debug, Default)]
pub struct Nft {
    pub netns: Option<String>,
}

/// One named counter as read back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CounterValue {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

impl Nft {
    pub fn host() -> Self {
        Nft { netns: None }
    }

    pub fn in_netns(ns: &str) -> Self {
        Nft {
            netns: Some(ns.to_string()),
        }
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        }
    }

    /// Runs `nft ARGS` with `input` on standard input; its standard output.
    pub fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let mut c = self.command();
        c.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let described = format!(
            "{}nft {}",
            self.netns
                .as_ref()
                .map(|n| format!("ip netns exec {n} "))
                .unwrap_or_default(),
            args.join(" ")
        );
        let mut child = c.spawn().map_err(|source| NftError::Spawn {
            program: described.clone(),
            source,
        })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            // A write error shows as nft's own failure below.
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(|source| NftError::Spawn {
            program: described.clone(),
            source,
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // nft repeats the whole input line under an error; keep the messages short.
            let short: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(6)
                .collect();
            return Err(NftError::Failed {
                command: described,
                code: out.status.code(),
                stderr: short.join(" | "),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies a JSON transaction (`nft -j -f -`): all of it or nothing.
    pub fn apply_json(&self, json: &str) -> Result<(), NftError> {
        self.run(&["-j", "-f", "-"], Some(json)).map(drop)
    }

    /// Applies an nft text transaction (`nft -f -`).
    pub fn apply_text(&self, text: &str) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(text)).map(drop)
    }

    /// Checks a transaction without committing it (`nft -c`).
    pub fn check_json(&self, json: &str) -> Result<(), NftError> {
        self.run(&["-c", "-j", "-f", "-"], Some(json)).map(drop)
    }

    pub fn check_text(&self, text: &str) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], Some(text)).map(drop)
    }

    /// `nft -j list table inet bulkhead`; `None` when the table does not exist.
    pub fn list_table(&self) -> Result<Option<serde_json::Value>, NftError> {
        match self.run(&["-j", "list", "table", "inet", TABLE], None) {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| NftError::Output(e.to_string())),
            Err(NftError::Failed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The table's normal form as the kernel has it (`None`: no table).
    pub fn read_back(&self) -> Result<Option<NormalForm>, NftError> {
        self.list_table()?
            .map(|v| NormalForm::from_json(&v).map_err(NftError::Output))
            .transpose()
    }

    /// The table's named counters (`nft -j list counters table inet bulkhead`).
    pub fn counters(&self) -> Result<Vec<CounterValue>, NftError> {
        let out = self.run(&["-j", "list", "counters", "table", "inet", TABLE], None)?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| NftError::Output(e.to_string()))?;
        let mut res = Vec::new();
        for o in v["nftables"].as_array().into_iter().flatten() {
            if let Some(c) = o.get("counter") {
                res.push(CounterValue {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    packets: c["packets"].as_u64().unwrap_or(0),
                    bytes: c["bytes"].as_u64().unwrap_or(0),
                });
            }
        }
        Ok(res)
    }

    /// Deletes the table (when present).
    pub fn delete_table(&self) -> Result<(), NftError> {
        self.apply_text(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"))
    }
}
