//! Known answers written by other RFC 6962 and C2SP implementations, read from
//! `../shared/testdata/merkle/` (never copied into this repository).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bulkhead_audit::merkle::{
    Tree, empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion,
};
use bulkhead_audit::{Checkpoint, Note, SignedCheckpoint, SigningKey, VerifierKey};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn merkle_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/merkle");
    assert!(
        d.is_dir(),
        "{} is missing: the known-answer tests need ../shared/testdata beside the repository",
        d.display()
    );
    d
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hexes(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(|x| hex(x.as_str().expect("str"))).collect())
        .unwrap_or_default()
}

fn b64s(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| B64.decode(x.as_str().expect("str")).expect("base64"))
                .collect()
        })
        .unwrap_or_default()
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("str")).expect("base64")
}

fn known() -> Value {
    json(&merkle_dir().join("rfc6962_known_answers.json"))
}

fn kat_leaves(k: &Value) -> Vec<[u8; 32]> {
    k["leaf_inputs_hex"]["values"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|v| leaf_hash(&hex(v.as_str().expect("str"))))
        .collect()
}

#[test]
fn tree_heads_and_subtree_hashes_match_rfc6962_known_answers() {
    let k = known();
    assert_eq!(
        empty_root().to_vec(),
        hex(k["empty_tree_root"]["value"].as_str().unwrap())
    );
    let leaves = kat_leaves(&k);
    let tree = Tree::from_leaves(leaves.clone());
    let roots = k["roots_by_tree_size"]["values"].as_object().unwrap();
    assert_eq!(roots.len(), 9);
    for (size, want) in roots {
        let size: u64 = size.parse().unwrap();
        assert_eq!(
            tree.root_at(size).unwrap().to_vec(),
            hex(want.as_str().unwrap()),
            "root of size {size}"
        );
        assert_eq!(
            bulkhead_audit::merkle::root_of(&leaves[..size as usize]).to_vec(),
            hex(want.as_str().unwrap()),
            "root_of size {size}"
        );
    }
    let mut checked = 0;
    for level in k["complete_subtree_node_hashes"]["levels"]
        .as_array()
        .unwrap()
    {
        let l = level["level"].as_u64().unwrap();
        for node in level["nodes"].as_array().unwrap() {
            let j = node["index"].as_u64().unwrap();
            let span = 1u64 << l;
            // A complete subtree's hash, from its own leaves.
            let sub =
                Tree::from_leaves(leaves[(j * span) as usize..((j + 1) * span) as usize].to_vec());
            assert_eq!(
                sub.root().to_vec(),
                hex(node["hash"].as_str().unwrap()),
                "level {l} node {j}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
    // node_hash is what joins them.
    assert_eq!(node_hash(&leaves[0], &leaves[1]), tree.root_at(2).unwrap());
}

#[test]
fn generated_proofs_equal_the_known_proofs() {
    let k = known();
    let tree = Tree::from_leaves(kat_leaves(&k));
    let mut n = 0;
    for section in [
        "upstream_inclusion_proofs",
        "derived_inclusion_proofs_all_sizes_1_to_8",
    ] {
        for v in k[section]["vectors"].as_array().unwrap() {
            let Some(index) = v["leaf_index"].as_u64() else {
                continue; // the upstream placeholder (leaf 0 of size 0)
            };
            let size = v["tree_size"].as_u64().unwrap();
            let proof = hexes(&v["proof"]);
            let got: Vec<Vec<u8>> = tree
                .inclusion_proof(index, size)
                .unwrap()
                .iter()
                .map(|h| h.to_vec())
                .collect();
            assert_eq!(got, proof, "{section}: inclusion of {index} in {size}");
            let leaf = hex(v["leaf_hash"].as_str().unwrap());
            let root = hex(v["root"].as_str().unwrap());
            verify_inclusion(index, size, &leaf, &proof, &root)
                .unwrap_or_else(|e| panic!("{section}: {index} in {size}: {e}"));
            n += 1;
        }
    }
    for section in [
        "upstream_consistency_proofs",
        "derived_consistency_proofs_all_sizes_1_to_8",
    ] {
        for v in k[section]["vectors"].as_array().unwrap() {
            let (m, s) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
            let proof = hexes(&v["proof"]);
            let got: Vec<Vec<u8>> = tree
                .consistency_proof(m, s)
                .unwrap()
                .iter()
                .map(|h| h.to_vec())
                .collect();
            assert_eq!(got, proof, "{section}: consistency {m} -> {s}");
            let (r1, r2) = (
                hex(v["root1"].as_str().unwrap()),
                hex(v["root2"].as_str().unwrap()),
            );
            verify_consistency(m, s, &r1, &r2, &proof)
                .unwrap_or_else(|e| panic!("{section}: {m} -> {s}: {e}"));
            n += 1;
        }
    }
    assert_eq!(n, 5 + 36 + 5 + 36);
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn transparency_dev_inclusion_probes() {
    let files = json_files(&merkle_dir().join("transparency-dev-merkle-testdata/inclusion"));
    assert!(files.len() > 50, "{} inclusion probes", files.len());
    for f in &files {
        let v = json(f);
        let got = verify_inclusion(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &b64(&v["leafHash"]),
            &b64s(&v["proof"]),
            &b64(&v["root"]),
        );
        let want_err = v["wantErr"].as_bool().unwrap();
        assert_eq!(got.is_err(), want_err, "{}: {got:?}", f.display());
    }
}

#[test]
fn transparency_dev_consistency_probes() {
    let files = json_files(&merkle_dir().join("transparency-dev-merkle-testdata/consistency"));
    assert!(files.len() > 50, "{} consistency probes", files.len());
    for f in &files {
        let v = json(f);
        let got = verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
            &b64s(&v["proof"]),
        );
        let want_err = v["wantErr"].as_bool().unwrap();
        assert_eq!(got.is_err(), want_err, "{}: {got:?}", f.display());
    }
}

fn vectors() -> Vec<Value> {
    json(&merkle_dir().join("checkpoint/signed_note_checkpoint_vectors.json"))["vectors"]
        .as_array()
        .unwrap()
        .clone()
}

fn by_id(id: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

#[test]
fn verified_notes_verify_and_key_ids_match() {
    let mut n = 0;
    for v in vectors() {
        if v["ed25519_verified"] != Value::Bool(true) {
            continue;
        }
        let id = v["id"].as_str().unwrap();
        let vkey: VerifierKey = v["vkey"].as_str().unwrap().parse().expect(id);
        assert_eq!(
            vkey.public_key().to_vec(),
            hex(v["public_key_hex"].as_str().unwrap()),
            "{id}"
        );
        assert_eq!(
            format!("{:08x}", vkey.id()),
            v["key_id_hex"].as_str().unwrap(),
            "{id}"
        );
        assert_eq!(
            vkey.to_string(),
            v["vkey"].as_str().unwrap(),
            "{id}: vkey round trip"
        );
        let note = Note::parse(v["note"].as_str().unwrap()).expect(id);
        assert_eq!(note.text, v["text"].as_str().unwrap(), "{id}");
        assert_eq!(
            note.verify(std::slice::from_ref(&vkey)).expect(id).len(),
            1,
            "{id}"
        );
        // One flipped byte of the text breaks it.
        let mut bad = note.clone();
        bad.text = bad.text.replacen('e', "E", 1);
        assert!(
            bad.verify(std::slice::from_ref(&vkey)).is_err(),
            "{id}: tampered text"
        );
        if v["kind"] == "checkpoint" {
            let sc = SignedCheckpoint::parse(v["note"].as_str().unwrap()).expect(id);
            let p = &v["parsed"];
            assert_eq!(sc.checkpoint.origin, p["origin"].as_str().unwrap(), "{id}");
            assert_eq!(sc.checkpoint.size, p["tree_size"].as_u64().unwrap(), "{id}");
            assert_eq!(
                B64.encode(sc.checkpoint.root),
                p["root_hash_b64"].as_str().unwrap(),
                "{id}"
            );
            assert_eq!(
                sc.to_note_text(),
                v["note"].as_str().unwrap(),
                "{id}: re-encoding"
            );
        }
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn parse_only_checkpoints_parse() {
    for id in [
        "c2sp-checkpoint-example",
        "c2sp-cosigned-checkpoint-example",
    ] {
        let v = by_id(id);
        let sc = SignedCheckpoint::parse(v["note"].as_str().unwrap()).expect(id);
        assert_eq!(
            sc.checkpoint.size,
            v["parsed"]["tree_size"].as_u64().unwrap(),
            "{id}"
        );
        let sigs = v["signatures"].as_array().unwrap();
        assert_eq!(sc.note.signatures.len(), sigs.len(), "{id}");
        for (got, want) in sc.note.signatures.iter().zip(sigs) {
            assert_eq!(got.name, want["key_name"].as_str().unwrap(), "{id}");
            assert_eq!(
                format!("{:08x}", got.id),
                want["key_id_hex"].as_str().unwrap(),
                "{id}"
            );
            assert_eq!(
                got.sig.len() + 4,
                want["decoded_len"].as_u64().unwrap() as usize,
                "{id}"
            );
        }
    }
}

#[test]
fn test_keys_rederive_and_sign_the_derived_checkpoints() {
    let keys_v = by_id("formats-test-keys");
    let mut keys = std::collections::HashMap::new();
    for k in keys_v["keys"].as_array().unwrap() {
        let name = k["key_name"].as_str().unwrap();
        let sk = SigningKey::from_secret_text(k["skey"].as_str().unwrap()).expect(name);
        assert_eq!(
            sk.verifier().to_string(),
            k["vkey"].as_str().unwrap(),
            "{name}"
        );
        let seed: [u8; 32] = hex(k["seed_hex"].as_str().unwrap()).try_into().unwrap();
        let from_seed = SigningKey::from_seed(name, &seed).unwrap();
        assert_eq!(
            from_seed.to_secret_text(),
            k["skey"].as_str().unwrap(),
            "{name}"
        );
        keys.insert(name.to_string(), sk);
    }
    let set = by_id("formats-derived-signed-checkpoints");
    let text = set["text"].as_str().unwrap();
    for c in set["cases"].as_array().unwrap() {
        let desc = c["desc"].as_str().unwrap();
        let verifiers: Vec<VerifierKey> = c["verifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| keys[n.as_str().unwrap()].verifier().clone())
            .collect();
        let log = keys["Log"].verifier().clone();
        // As upstream: the log's own signature is required; other known keys count.
        let got = Note::parse(c["note"].as_str().unwrap()).and_then(|n| {
            assert_eq!(n.text, text, "{desc}");
            n.verify(&verifiers)
        });
        let ok = matches!(&got, Ok(v) if v.contains(&&log));
        assert_eq!(!ok, c["want_err"].as_bool().unwrap(), "{desc}: {got:?}");
        if ok {
            assert_eq!(
                got.unwrap().len() as u64,
                c["want_verified_sigs"].as_u64().unwrap(),
                "{desc}"
            );
        }
        // Ed25519 is deterministic: our signature line equals theirs.
        let note = c["note"].as_str().unwrap();
        for line in note.lines().filter(|l| l.starts_with('\u{2014}')) {
            let name = line.split(' ').nth(1).unwrap();
            if let Some(k) = keys.get(name) {
                assert_eq!(k.sign_line(text), format!("{line}\n"), "{desc}: {name}");
            }
        }
    }
}

#[test]
fn checkpoint_bodies_parse_strictly() {
    let v = by_id("formats-checkpoint-body");
    for c in v["cases"].as_array().unwrap() {
        let desc = c["desc"].as_str().unwrap();
        let got = Checkpoint::parse(c["text"].as_str().unwrap());
        // Strict C2SP (32-byte roots, non-empty extension lines) where the vector says so.
        let want_err = c["want_err"].as_bool().unwrap() || c.get("strict_c2sp").is_some();
        assert_eq!(got.is_err(), want_err, "{desc}: {got:?}");
    }
    for c in v["marshal_cases"].as_array().unwrap() {
        // Our checkpoints carry 32-byte roots; the marshalling rule (three lines and a newline)
        // is the same, checked here on the text layout.
        let want = c["want"].as_str().unwrap();
        let expect = format!(
            "{}\n{}\n{}\n",
            c["origin"].as_str().unwrap(),
            c["size"].as_u64().unwrap(),
            c["hash_b64"].as_str().unwrap()
        );
        assert_eq!(expect, want);
    }
    // And a real one round-trips through our types.
    let cp = Checkpoint {
        origin: "go.sum database tree".into(),
        size: 6476701,
        root: B64
            .decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
            .unwrap()
            .try_into()
            .unwrap(),
        extensions: vec![],
    };
    assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    assert_eq!(
        cp.to_text(),
        by_id("sumdb-checkpoint-6476701")["text"].as_str().unwrap()
    );
}
