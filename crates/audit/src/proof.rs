//! Proofs as JSON, the form `bulkhead audit prove` prints and `bulkhead audit check-proof`
//! reads: hashes in standard base64.
//!
//! ```json
//! {"type":"inclusion","index":2,"tree_size":4,"leaf_hash":"…","root":"…","proof":["…","…"]}
//! {"type":"consistency","first":1,"second":4,"first_root":"…","second_root":"…","proof":["…"]}
//! ```

use crate::merkle::{Hash, ProofError, verify_consistency, verify_inclusion};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// An inclusion or a consistency proof with the values it proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Inclusion {
        index: u64,
        tree_size: u64,
        leaf_hash: Hash,
        root: Hash,
        proof: Vec<Hash>,
    },
    Consistency {
        first: u64,
        second: u64,
        first_root: Hash,
        second_root: Hash,
        proof: Vec<Hash>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Wire {
    Inclusion {
        index: u64,
        tree_size: u64,
        leaf_hash: String,
        root: String,
        proof: Vec<String>,
    },
    Consistency {
        first: u64,
        second: u64,
        first_root: String,
        second_root: String,
        proof: Vec<String>,
    },
}

/// Why a proof file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFormatError {
    #[error("not a proof: {0}")]
    Json(String),
    #[error("{field}: {detail}")]
    Hash { field: String, detail: String },
}

fn hash(field: &str, s: &str) -> Result<Hash, ProofFormatError> {
    let bad = |detail: String| ProofFormatError::Hash {
        field: field.to_string(),
        detail,
    };
    let b = B64.decode(s).map_err(|_| bad("not base64".to_string()))?;
    b.try_into()
        .map_err(|b: Vec<u8>| bad(format!("{} bytes, not 32", b.len())))
}

fn hashes(field: &str, v: &[String]) -> Result<Vec<Hash>, ProofFormatError> {
    v.iter()
        .enumerate()
        .map(|(i, s)| hash(&format!("{field}[{i}]"), s))
        .collect()
}

impl Proof {
    /// Reads a proof from its JSON.
    pub fn parse(s: &str) -> Result<Proof, ProofFormatError> {
        let w: Wire = serde_json::from_str(s).map_err(|e| ProofFormatError::Json(e.to_string()))?;
        Ok(match w {
            Wire::Inclusion {
                index,
                tree_size,
                leaf_hash,
                root,
                proof,
            } => Proof::Inclusion {
                index,
                tree_size,
                leaf_hash: hash("leaf_hash", &leaf_hash)?,
                root: hash("root", &root)?,
                proof: hashes("proof", &proof)?,
            },
            Wire::Consistency {
                first,
                second,
                first_root,
                second_root,
                proof,
            } => Proof::Consistency {
                first,
                second,
                first_root: hash("first_root", &first_root)?,
                second_root: hash("second_root", &second_root)?,
                proof: hashes("proof", &proof)?,
            },
        })
    }

    /// The proof's JSON (pretty-printed, newline at the end).
    pub fn to_json(&self) -> String {
        let enc = |v: &[Hash]| v.iter().map(|h| B64.encode(h)).collect::<Vec<_>>();
        let w = match self {
            Proof::Inclusion {
                index,
                tree_size,
                leaf_hash,
                root,
                proof,
            } => Wire::Inclusion {
                index: *index,
                tree_size: *tree_size,
                leaf_hash: B64.encode(leaf_hash),
                root: B64.encode(root),
                proof: enc(proof),
            },
            Proof::Consistency {
                first,
                second,
                first_root,
                second_root,
                proof,
            } => Wire::Consistency {
                first: *first,
                second: *second,
                first_root: B64.encode(first_root),
                second_root: B64.encode(second_root),
                proof: enc(proof),
            },
        };
        serde_json::to_string_pretty(&w).unwrap_or_default() + "\n"
    }

    /// Checks the proof's arithmetic (RFC 9162 §2.1.3.2 / §2.1.4.2).
    pub fn verify(&self) -> Result<(), ProofError> {
        match self {
            Proof::Inclusion {
                index,
                tree_size,
                leaf_hash,
                root,
                proof,
            } => verify_inclusion(*index, *tree_size, leaf_hash, proof, root),
            Proof::Consistency {
                first,
                second,
                first_root,
                second_root,
                proof,
            } => verify_consistency(*first, *second, first_root, second_root, proof),
        }
    }

    /// The tree size and root the proof ends in (what a checkpoint must sign).
    pub fn tree_head(&self) -> (u64, Hash) {
        match self {
            Proof::Inclusion {
                tree_size, root, ..
            } => (*tree_size, *root),
            Proof::Consistency {
                second,
                second_root,
                ..
            } => (*second, *second_root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Tree, leaf_hash};
    use proptest::prelude::*;

    #[test]
    fn proofs_round_trip_through_json_and_verify() {
        let t = Tree::from_leaves((0..11u8).map(|i| leaf_hash(&[i])).collect());
        let p = Proof::Inclusion {
            index: 5,
            tree_size: 11,
            leaf_hash: t.leaves()[5],
            root: t.root(),
            proof: t.inclusion_proof(5, 11).unwrap(),
        };
        let back = Proof::parse(&p.to_json()).unwrap();
        assert_eq!(back, p);
        assert!(back.verify().is_ok());
        let c = Proof::Consistency {
            first: 3,
            second: 11,
            first_root: t.root_at(3).unwrap(),
            second_root: t.root(),
            proof: t.consistency_proof(3, 11).unwrap(),
        };
        assert_eq!(Proof::parse(&c.to_json()).unwrap(), c);
        assert!(c.verify().is_ok());
        let tampered = c.to_json().replacen("\"first\": 3", "\"first\": 4", 1);
        assert!(Proof::parse(&tampered).unwrap().verify().is_err());
    }

    proptest! {
        #[test]
        fn the_proof_reader_never_panics(s in ".{0,200}", n in any::<u64>(), h in "[A-Za-z0-9+/=]{0,50}") {
            let _ = Proof::parse(&s);
            let j = format!("{{\"type\":\"inclusion\",\"index\":{n},\"tree_size\":{n},\"leaf_hash\":\"{h}\",\"root\":\"{h}\",\"proof\":[\"{h}\"]}}");
            if let Ok(p) = Proof::parse(&j) { let _ = p.verify(); }
        }
    }
}
