//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, verifier keys (`vkey`),
//! and tlog checkpoints (c2sp.org/tlog-checkpoint).

use crate::merkle::Hash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// Signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;
/// The most signature lines a note may carry (the spec asks verifiers to accept at least 16).
const MAX_SIGNATURES: usize = 100;

/// Why a key, note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    Key(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    #[error("no signature by a known key (signed by: {0})")]
    NoKnownSignature(String),
    #[error("the signature of known key {0} does not verify")]
    BadSignature(String),
}

/// The key ID: the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A key name: non-empty, no Unicode whitespace, no `+`.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::Key(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

/// An Ed25519 verifier key with its note name: `name+hexid+base64(0x01 || key)` as text.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    pub fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(VerifierKey {
            name: name.to_string(),
            id: key_id(name, key.as_bytes()),
            key,
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn id(&self) -> u32 {
        self.id
    }
    pub fn public_key(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Verifies a raw Ed25519 signature over `msg`.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.key
            .verify_strict(msg, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = vec![ED25519];
        b.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(b))
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, NoteError> {
        let s = s.trim();
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key(
                "a verifier key is name+keyid+base64 (e.g. example.com/log+530d903a+Aekye…)".into(),
            ));
        };
        check_name(name)?;
        let id = parse_hex_id(hex)?;
        let raw = B64
            .decode(b64)
            .map_err(|e| NoteError::Key(format!("key is not base64: {e}")))?;
        let (Some(&ED25519), Ok(pk)) = (
            raw.first(),
            <[u8; 32]>::try_from(raw.get(1..).unwrap_or(&[])),
        ) else {
            return Err(NoteError::Key(
                "only Ed25519 keys (type 0x01, 32 bytes) are supported".into(),
            ));
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .map_err(|_| NoteError::Key("not a valid Ed25519 public key".into()))?;
        let v = VerifierKey::new(name, key)?;
        if v.id != id {
            return Err(NoteError::Key(format!(
                "key id {hex} does not match the key (expected {:08x})",
                v.id
            )));
        }
        Ok(v)
    }
}

fn parse_hex_id(hex: &str) -> Result<u32, NoteError> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::Key(format!(
            "key id {hex:?} is not 8 hex digits"
        )));
    }
    u32::from_str_radix(hex, 16).map_err(|e| NoteError::Key(e.to_string()))
}

/// An Ed25519 signing key with its note name. Its `Debug` never shows the secret; its text form
/// (`PRIVATE+KEY+name+hexid+base64(0x01 || seed)`, Go's note format) is only for the key file.
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
    verifier: VerifierKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, secret hidden)", self.verifier)
    }
}

impl SigningKey {
    /// A key from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let verifier = VerifierKey::new(name, key.verifying_key())?;
        Ok(SigningKey {
            name: name.to_string(),
            key,
            verifier,
        })
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| NoteError::Key(format!("no randomness from the system: {e}")))?;
        Self::from_seed(name, &seed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The private key file's text. Never print or log it.
    pub fn to_secret_text(&self) -> String {
        let mut b = vec![ED25519];
        b.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.verifier.id,
            B64.encode(b)
        )
    }

    /// Reads `PRIVATE+KEY+name+hexid+base64(0x01 || seed)`. Errors never quote the input.
    pub fn from_secret_text(s: &str) -> Result<Self, NoteError> {
        let rest = s
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::Key("a private key starts with PRIVATE+KEY+".into()))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key(
                "a private key is PRIVATE+KEY+name+keyid+base64".into(),
            ));
        };
        let id = parse_hex_id(hex)?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::Key("private key is not base64".into()))?;
        let (Some(&ED25519), Ok(seed)) = (
            raw.first(),
            <[u8; 32]>::try_from(raw.get(1..).unwrap_or(&[])),
        ) else {
            return Err(NoteError::Key(
                "only Ed25519 private keys (type 0x01, 32-byte seed) are supported".into(),
            ));
        };
        let k = Self::from_seed(name, &seed)?;
        if k.verifier.id != id {
            return Err(NoteError::Key(
                "private key id does not match the key".into(),
            ));
        }
        Ok(k)
    }

    /// One signature line: `— name base64(keyid || sig)\n`.
    pub fn sign_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut b = self.verifier.id.to_be_bytes().to_vec();
        b.extend_from_slice(&sig.to_bytes());
        format!("\u{2014} {} {}\n", self.name, B64.encode(b))
    }
}

/// Signs `text` (which must end with a newline) with each key, in order.
pub fn sign_note(text: &str, keys: &[&SigningKey]) -> String {
    let mut out = String::with_capacity(text.len() + 1 + 120 * keys.len());
    out.push_str(text);
    out.push('\n');
    for k in keys {
        out.push_str(&k.sign_line(text));
    }
    out
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: u32,
    /// The signature bytes after the key id.
    pub sig: Vec<u8>,
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending with its newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note: text, one empty line, signature lines (split at the last empty
    /// line). Only LF is allowed as a control character.
    pub fn parse(s: &str) -> Result<Note, NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_string());
        if let Some(c) = s.chars().find(|&c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed(format!(
                "control character U+{:04X} in the note",
                c as u32
            )));
        }
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| bad("no empty line between the text and the signatures"))?;
        let text = &s[..split + 1];
        let sigs = &s[split + 2..];
        if sigs.is_empty() {
            return Err(bad("no signature lines"));
        }
        if !sigs.ends_with('\n') {
            return Err(bad("the last signature line does not end with a newline"));
        }
        let mut signatures = Vec::new();
        for (i, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(bad("too many signature lines"));
            }
            let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
                NoteError::Malformed(format!(
                    "signature line {} does not start with \"\u{2014} \"",
                    i + 1
                ))
            })?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| {
                NoteError::Malformed(format!("signature line {} has no signature", i + 1))
            })?;
            if check_name(name).is_err() {
                return Err(NoteError::Malformed(format!(
                    "signature line {}: bad key name",
                    i + 1
                )));
            }
            let raw = B64.decode(b64).map_err(|_| {
                NoteError::Malformed(format!("signature line {}: not base64", i + 1))
            })?;
            if raw.len() < 5 {
                return Err(NoteError::Malformed(format!(
                    "signature line {}: too short",
                    i + 1
                )));
            }
            signatures.push(NoteSignature {
                name: name.to_string(),
                id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                sig: raw[4..].to_vec(),
            });
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// Verifies the signatures of known keys (same name and id). Unknown signatures are
    /// ignored; a known key whose signature fails rejects the note; at least one known key must
    /// verify. Returns the distinct keys that verified, in `keys` order.
    pub fn verify<'k>(&self, keys: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, NoteError> {
        let mut ok: Vec<&VerifierKey> = Vec::new();
        for s in &self.signatures {
            let Some(k) = keys.iter().find(|k| k.name == s.name && k.id == s.id) else {
                continue;
            };
            if !k.verify(self.text.as_bytes(), &s.sig) {
                return Err(NoteError::BadSignature(format!("{}+{:08x}", k.name, k.id)));
            }
            if !ok.contains(&k) {
                ok.push(k);
            }
        }
        if ok.is_empty() {
            return Err(NoteError::NoKnownSignature(self.signers()));
        }
        ok.sort_by_key(|k| keys.iter().position(|x| x == *k));
        Ok(ok)
    }

    /// `name+id` of every signature line, for messages.
    pub fn signers(&self) -> String {
        let v: Vec<String> = self
            .signatures
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.id))
            .collect();
        if v.is_empty() {
            "nobody".into()
        } else {
            v.join(", ")
        }
    }
}

/// A tlog checkpoint body: origin, tree size, root hash, extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n` and any extension lines.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint body strictly (c2sp.org/tlog-checkpoint): non-empty origin, decimal
    /// size without leading zeros, a base64 root of exactly 32 bytes, non-empty extension lines,
    /// every line ending with a newline.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: String| NoteError::Checkpoint(m);
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end with a newline".into()))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(bad(format!(
                "{} lines; a checkpoint has origin, size and root hash lines",
                lines.len()
            )));
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(bad("line 1: empty origin".into()));
        }
        let sz = lines[1];
        if sz.is_empty()
            || !sz.bytes().all(|b| b.is_ascii_digit())
            || (sz.len() > 1 && sz.starts_with('0'))
        {
            return Err(bad(format!(
                "line 2: tree size {sz:?} is not a decimal number"
            )));
        }
        let size: u64 = sz
            .parse()
            .map_err(|_| bad(format!("line 2: tree size {sz:?} does not fit in 64 bits")))?;
        let root = B64
            .decode(lines[2])
            .map_err(|_| bad("line 3: root hash is not base64".into()))?;
        let root: Hash = root
            .try_into()
            .map_err(|r: Vec<u8>| bad(format!("line 3: root hash is {} bytes, not 32", r.len())))?;
        let mut extensions = Vec::new();
        for (i, l) in lines[3..].iter().enumerate() {
            if l.is_empty() {
                return Err(bad(format!("line {}: empty extension line", i + 4)));
            }
            extensions.push(l.to_string());
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

/// A checkpoint in a signed note, parsed but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub note: Note,
    pub checkpoint: Checkpoint,
}

impl SignedCheckpoint {
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let note = Note::parse(s)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        Ok(SignedCheckpoint { note, checkpoint })
    }

    /// The note as text.
    pub fn to_note_text(&self) -> String {
        let mut s = self.note.text.clone();
        s.push('\n');
        for sig in &self.note.signatures {
            let mut b = sig.id.to_be_bytes().to_vec();
            b.extend_from_slice(&sig.sig);
            s.push_str(&format!("\u{2014} {} {}\n", sig.name, B64.encode(b)));
        }
        s
    }

    /// Signs a checkpoint with each key.
    pub fn sign(checkpoint: Checkpoint, keys: &[&SigningKey]) -> Self {
        let text = sign_note(&checkpoint.to_text(), keys);
        // Our own output always parses; fall back to an unsigned note rather than panic.
        Note::parse(&text)
            .map(|note| SignedCheckpoint {
                note,
                checkpoint: checkpoint.clone(),
            })
            .unwrap_or_else(|_| SignedCheckpoint {
                note: Note {
                    text: checkpoint.to_text(),
                    signatures: Vec::new(),
                },
                checkpoint,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sign_then_verify_round_trip() {
        let k = SigningKey::from_seed("example.com/log", &[7; 32]).unwrap();
        let other = SigningKey::from_seed("example.com/log", &[8; 32]).unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 3,
            root: [9; 32],
            extensions: vec![],
        };
        let sc = SignedCheckpoint::sign(cp.clone(), &[&k]);
        let text = sc.to_note_text();
        let back = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(back.checkpoint, cp);
        assert!(back.note.verify(&[k.verifier().clone()]).is_ok());
        assert!(matches!(
            back.note.verify(&[other.verifier().clone()]),
            Err(NoteError::NoKnownSignature(_))
        ));
        let vk: VerifierKey = k.verifier().to_string().parse().unwrap();
        assert_eq!(&vk, k.verifier());
        let sk = SigningKey::from_secret_text(&k.to_secret_text()).unwrap();
        assert_eq!(sk.verifier(), k.verifier());
        assert!(!format!("{k:?}").contains(&k.to_secret_text()));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,300}") {
            let _ = Note::parse(&s);
            let _ = Checkpoint::parse(&s);
            let _ = SignedCheckpoint::parse(&s);
            let _ = s.parse::<VerifierKey>();
            let _ = SigningKey::from_secret_text(&s);
        }
        #[test]
        fn note_like_inputs_never_panic(a in "[a-z0-9/]{0,12}", n in "[0-9-]{0,22}", r in "[A-Za-z0-9+/=]{0,50}", sig in "[A-Za-z0-9+/=]{0,100}") {
            let s = format!("{a}\n{n}\n{r}\n\n\u{2014} {a} {sig}\n");
            let _ = SignedCheckpoint::parse(&s);
        }
    }
}
