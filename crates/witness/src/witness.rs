//! The witness itself: checks an `add-checkpoint` request against the
//! allow-list and the durable state, and cosigns.
//!
//! Check order and statuses (C2SP tlog-witness, main branch; see
//! sigsum-protocol.md §8):
//!
//! | check | status |
//! |---|---|
//! | body larger than [`MAX_BODY_BYTES`] | 413 |
//! | malformed framing, note or checkpoint; extension lines in a Sigsum checkpoint | 400 |
//! | origin not on the allow-list | 404 |
//! | no valid signature by the log's key (or a bad one under its name and key ID) | 403 |
//! | old size above the checkpoint size | 400 |
//! | old size ≠ the size last cosigned | 409, body `<size>\n`, `text/x.tlog.size` |
//! | proof lines with old 0 or old = size; size 0 with root ≠ SHA-256(""); same size, other root; proof does not verify | 422 |
//! | otherwise: persist (size, root), then cosign | 200 |
//!
//! A checkpoint whose origin is a Sigsum log's (`sigsum.org/v1/tree/…`)
//! must have no extension lines: Sigsum logs never write them, and
//! sigsum-go's witness refuses them while parsing, with 400, before it
//! looks at the origin (so an unknown Sigsum origin with extension lines is
//! a 400 here too, not a 404). Other logs' checkpoints may carry them.
//!
//! Proof lines where the proof must be empty are a 422 as in the current
//! C2SP spec (sigsum-go answers 400), checked after the old size: a client
//! with a stale old size learns the right one from the 409 first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use cairn_sigsum::PublicKey;
use cairn_sigsum::tree_head::ORIGIN_PREFIX;
use cairn_tlog::EMPTY_ROOT;
use cairn_tlog::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use cairn_tlog::cosignature::{CosignatureError, Cosigner};
use cairn_tlog::note::{
    Ed25519NoteVerifier, KeyError, KeyNameError, Note, NoteError, NoteVerifier, VerifierKey,
};
use cairn_tlog::proof::{ProofError, verify_consistency};

use crate::config::{Clock, SystemClock, WitnessConfig};
use crate::request::{AddCheckpointRequest, MAX_BODY_BYTES, RequestError};
use crate::state::{CosignedState, StateError, WitnessState};

/// Why a [`Witness`] could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The witness name is not a valid signed-note key name.
    #[error("invalid witness name: {0}")]
    Name(#[from] KeyNameError),
    /// A log's key name or key is invalid.
    #[error("log {origin:?}: {source}")]
    LogKey {
        /// The log's origin.
        origin: String,
        /// What is wrong.
        source: KeyError,
    },
    /// A log origin is empty or holds a control character.
    #[error("log origin {0:?} is not a valid checkpoint origin")]
    Origin(String),
    /// Two logs share an origin.
    #[error("log origin {0:?} is listed twice")]
    DuplicateOrigin(String),
}

/// Why an `add-checkpoint` request was not cosigned. [`status`] gives the
/// HTTP status; `Display` is the human-readable reason for the body.
///
/// [`status`]: AddCheckpointError::status
#[derive(Debug, thiserror::Error)]
pub enum AddCheckpointError {
    /// 413: the body exceeds [`MAX_BODY_BYTES`].
    #[error("request body is {len} bytes; the limit is {MAX_BODY_BYTES}")]
    TooLarge {
        /// Body length.
        len: usize,
    },
    /// 400: the request framing is malformed.
    #[error("malformed request: {0}")]
    Request(#[from] RequestError),
    /// 400: the signed note is malformed.
    #[error("malformed checkpoint note: {0}")]
    Note(NoteError),
    /// 400: the note text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// 400: a checkpoint with a Sigsum origin has extension lines.
    #[error(
        "malformed checkpoint: a Sigsum checkpoint (origin {ORIGIN_PREFIX}…) has no extension lines between the root hash and the empty line, got {count}"
    )]
    SigsumExtensionLines {
        /// How many extension lines there are.
        count: usize,
    },
    /// 404: no log with this origin is configured.
    #[error("unknown log: origin {0:?} is not on this witness's list")]
    UnknownLog(String),
    /// 403: no valid signature by the log's key.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// 400: the old size is larger than the checkpoint's size.
    #[error("malformed request: old size {old} is larger than the checkpoint size {size}")]
    OldSizeAboveSize {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// 422: proof lines were sent where the proof must be empty.
    #[error("the consistency proof from {old} to {size} must be empty, got {len} lines")]
    UnexpectedProof {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
        /// Number of proof lines.
        len: usize,
    },
    /// 409: the old size is not the size last cosigned for this origin.
    #[error("old size does not match the latest cosigned size {stored}")]
    Conflict {
        /// The size last cosigned (0 if never).
        stored: u64,
    },
    /// 422: a size-0 checkpoint whose root is not SHA-256("").
    #[error("checkpoint of size 0 has a root other than the empty tree's")]
    EmptyTreeRoot,
    /// 422: the checkpoint is not consistent with the one last cosigned.
    #[error("consistency proof does not verify: {0}")]
    Inconsistent(ProofError),
    /// 500: the durable state could not be read or written.
    #[error("witness state unavailable: {0}")]
    State(#[from] StateError),
    /// 500: the cosignature could not be made.
    #[error("cannot cosign: {0}")]
    Cosign(#[from] CosignatureError),
}

impl AddCheckpointError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        use AddCheckpointError as E;
        match self {
            E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::Request(_)
            | E::Note(_)
            | E::Checkpoint(_)
            | E::SigsumExtensionLines { .. }
            | E::OldSizeAboveSize { .. } => StatusCode::BAD_REQUEST,
            E::UnknownLog(_) => StatusCode::NOT_FOUND,
            E::InvalidSignature(_) => StatusCode::FORBIDDEN,
            E::Conflict { .. } => StatusCode::CONFLICT,
            E::UnexpectedProof { .. } | E::EmptyTreeRoot | E::Inconsistent(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            E::State(_) | E::Cosign(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A C2SP tlog-witness for a fixed set of logs.
///
/// Concurrency: any number of [`Witness::add_checkpoint`] calls may run at
/// once; those for one origin are serialized by the state's origin lock, so
/// two requests from the same old size never both succeed.
pub struct Witness {
    cosigner: Cosigner,
    /// Keyed by origin.
    logs: HashMap<String, Ed25519NoteVerifier>,
    state: Arc<WitnessState>,
    clock: Box<dyn Clock>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("cosigner", &self.cosigner)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .field("state", &self.state.dir())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness with the given configuration, state directory and clock.
    pub fn new(
        config: WitnessConfig,
        state: WitnessState,
        clock: impl Clock,
    ) -> Result<Self, SetupError> {
        let cosigner = Cosigner::new(&config.name, &config.key.seed())?;
        let mut logs = HashMap::new();
        for log in config.logs {
            if Checkpoint::new(log.origin.as_str(), 0, EMPTY_ROOT)
                .validate()
                .is_err()
            {
                return Err(SetupError::Origin(log.origin));
            }
            let verifier = Ed25519NoteVerifier::new(&log.key_name, &log.key).map_err(|source| {
                SetupError::LogKey {
                    origin: log.origin.clone(),
                    source,
                }
            })?;
            if logs.insert(log.origin.clone(), verifier).is_some() {
                return Err(SetupError::DuplicateOrigin(log.origin));
            }
        }
        Ok(Witness {
            cosigner,
            logs,
            state: Arc::new(state),
            clock: Box::new(clock),
        })
    }

    /// A witness that timestamps with the system clock.
    pub fn with_system_clock(
        config: WitnessConfig,
        state: WitnessState,
    ) -> Result<Self, SetupError> {
        Self::new(config, state, SystemClock)
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        self.cosigner.name()
    }

    /// The witness's public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.cosigner.public_key())
    }

    /// The witness's `cosignature/v1` (type 0x04) vkey.
    pub fn vkey(&self) -> VerifierKey {
        self.cosigner.vkey()
    }

    /// Handles one `add-checkpoint` request body (see the module docs for
    /// the checks). On success returns the response body: one cosignature
    /// line `— <name> <base64>\n`, sent only after the new state is durable.
    ///
    /// Cancel-safe: dropping the future never leaves state half-updated or
    /// lets another request for the origin in during a write.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddCheckpointError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(AddCheckpointError::TooLarge { len: body.len() });
        }
        let req = AddCheckpointRequest::parse(body)?;
        let signed = self.open_note(req.note)?;
        let cp = signed.checkpoint();
        let (old, size) = (req.old_size, cp.size);
        if old > size {
            return Err(AddCheckpointError::OldSizeAboveSize { old, size });
        }

        let mut lock = self.state.lock_origin(&cp.origin).await?;
        let current = lock.current().await?;
        let stored = current.map_or(0, |s| s.size);
        if old != stored {
            tracing::debug!(origin = %cp.origin, old, stored, "add-checkpoint: old size conflict");
            return Err(AddCheckpointError::Conflict { stored });
        }
        if (old == 0 || old == size) && !req.proof.is_empty() {
            return Err(AddCheckpointError::UnexpectedProof {
                old,
                size,
                len: req.proof.len(),
            });
        }
        if size == 0 && cp.root != EMPTY_ROOT {
            return Err(AddCheckpointError::EmptyTreeRoot);
        }
        let old_root = current.map_or(EMPTY_ROOT, |s| s.root);
        if let Err(e) = verify_consistency(old, size, &req.proof, &old_root, &cp.root) {
            // A validly signed, inconsistent checkpoint may be evidence of
            // log misbehaviour: keep it in the log (C2SP allows this).
            tracing::warn!(
                origin = %cp.origin, old, size, error = %e,
                note = %String::from_utf8_lossy(req.note),
                "add-checkpoint: signed checkpoint is not consistent with the cosigned state"
            );
            return Err(AddCheckpointError::Inconsistent(e));
        }
        // Sign before persisting so that a signing failure changes nothing;
        // reply only after persisting so no cosignature outlives a crash
        // that forgot it.
        let line = self.cosigner.note_signature(cp, self.clock.now())?;
        let new = CosignedState {
            size,
            root: cp.root,
        };
        if current != Some(new) {
            lock.update(new).await?;
        }
        tracing::info!(origin = %cp.origin, old, size, "add-checkpoint: cosigned");
        Ok(format!("{}\n", line.to_line()))
    }

    /// Parses the note and checks it is a checkpoint of a known log, signed
    /// by that log's key.
    fn open_note(&self, note: &[u8]) -> Result<SignedCheckpoint, AddCheckpointError> {
        let signed = match Note::parse(note) {
            Ok(n) => SignedCheckpoint::from_note(n)?,
            Err(e @ NoteError::SignatureLine { .. }) => {
                // A signature line we cannot decode is not a valid
                // signature (Go decodes non-canonical base64 and then fails
                // to verify, so interop peers answer 403 too) — but an
                // unknown origin still comes first.
                let checkpoint = checkpoint_text(note).and_then(|t| Checkpoint::parse(t).ok());
                if let Some(cp) = &checkpoint {
                    check_sigsum_rules(cp)?;
                }
                return Err(match checkpoint.map(|c| c.origin) {
                    Some(o) if !self.logs.contains_key(&o) => AddCheckpointError::UnknownLog(o),
                    _ => AddCheckpointError::InvalidSignature(e.to_string()),
                });
            }
            Err(e) => return Err(AddCheckpointError::Note(e)),
        };
        check_sigsum_rules(signed.checkpoint())?;
        let origin = &signed.checkpoint().origin;
        let verifier = self
            .logs
            .get(origin)
            .ok_or_else(|| AddCheckpointError::UnknownLog(origin.clone()))?;
        signed
            .verify(&[verifier as &dyn NoteVerifier])
            .map_err(|e| {
                AddCheckpointError::InvalidSignature(format!(
                    "{e} (log key {}+{})",
                    verifier.name(),
                    hex::encode(verifier.key_id())
                ))
            })?;
        Ok(signed)
    }
}

/// What a checkpoint with a Sigsum origin must be beyond a checkpoint:
/// without extension lines (sigsum-go's witness refuses them with 400).
fn check_sigsum_rules(cp: &Checkpoint) -> Result<(), AddCheckpointError> {
    if cp.origin.starts_with(ORIGIN_PREFIX) && !cp.extensions.is_empty() {
        return Err(AddCheckpointError::SigsumExtensionLines {
            count: cp.extensions.len(),
        });
    }
    Ok(())
}

/// The text of a note (up to and including the newline before the last
/// blank line), for when the signature lines do not parse.
fn checkpoint_text(note: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(note).ok()?;
    let split = s.rfind("\n\n")?;
    s.get(..=split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;
    use cairn_tlog::cosignature::cosignature_from_witness_response;
    use cairn_tlog::note::Ed25519NoteSigner;

    const LOG_SEED: [u8; 32] = [0x4c; 32];

    fn log() -> (Ed25519NoteSigner, String) {
        let key = SigningKey::from_seed(&LOG_SEED).public_key();
        let origin = cairn_sigsum::tree_head::origin_for_key(&key);
        (
            Ed25519NoteSigner::new(&origin, &LOG_SEED).expect("name"),
            origin,
        )
    }

    fn witness(dir: &std::path::Path) -> Witness {
        let log_key = SigningKey::from_seed(&LOG_SEED).public_key();
        let config = WitnessConfig::for_sigsum_logs(
            "example.org/w",
            SigningKey::from_seed(&[0x57; 32]),
            [&log_key],
        );
        Witness::new(config, WitnessState::open(dir).expect("state"), || 1000u64).expect("setup")
    }

    fn leaf(i: u8) -> cairn_tlog::Hash {
        cairn_tlog::leaf_hash(&[i])
    }

    fn request(old: u64, proof: &[cairn_tlog::Hash], size: u64) -> (Vec<u8>, Checkpoint) {
        let leaves: Vec<_> = (0..size).map(|i| leaf(i as u8)).collect();
        let root = root_of(&leaves);
        let (signer, origin) = log();
        let cp = Checkpoint::new(origin, size, root);
        let note = signer.sign_note(&cp.to_body()).expect("note").to_bytes();
        let body = AddCheckpointRequest {
            old_size: old,
            proof: proof.to_vec(),
            note: &note,
        }
        .encode();
        (body, cp)
    }

    fn root_of(leaves: &[cairn_tlog::Hash]) -> cairn_tlog::Hash {
        let mut c = cairn_tlog::compact::CompactRange::new();
        for l in leaves {
            c.append(*l).expect("append");
        }
        c.root()
    }

    fn proof(old: u64, new: u64) -> Vec<cairn_tlog::Hash> {
        let leaves: Vec<_> = (0..new).map(|i| leaf(i as u8)).collect();
        cairn_tlog::proof::consistency_proof(old, new, |n| {
            let r = n.leaf_range().expect("range");
            let slice = leaves
                .get(r.start as usize..r.end as usize)
                .expect("in tree");
            Ok::<_, ()>(root_of(slice))
        })
        .expect("proof")
    }

    #[tokio::test]
    async fn cosigns_a_consistent_sequence_and_remembers_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = witness(dir.path());
        let (body, cp) = request(0, &[], 3);
        let resp = w.add_checkpoint(&body).await.expect("200");
        let cosig = cosignature_from_witness_response(&w.public_key().0, &cp, resp.as_bytes())
            .expect("valid cosignature");
        assert_eq!(cosig.timestamp, 1000);
        let (body, _) = request(3, &proof(3, 7), 7);
        w.add_checkpoint(&body).await.expect("200");
        // Replaying the same size with the right old size cosigns again.
        let (body, _) = request(7, &[], 7);
        w.add_checkpoint(&body).await.expect("200");
        let (body, _) = request(3, &proof(3, 8), 8);
        let err = w.add_checkpoint(&body).await.expect_err("409");
        assert!(matches!(err, AddCheckpointError::Conflict { stored: 7 }));
    }

    #[tokio::test]
    async fn statuses_follow_the_tlog_witness_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = witness(dir.path());
        let status = |r: Result<String, AddCheckpointError>| match r {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status(),
        };
        let (body, _) = request(4, &[], 3);
        assert_eq!(
            status(w.add_checkpoint(&body).await),
            StatusCode::BAD_REQUEST
        );
        // A proof where it must be empty: 422 (current C2SP).
        let (body, _) = request(0, &[[0; 32]], 3);
        assert_eq!(
            status(w.add_checkpoint(&body).await),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(w.add_checkpoint(b"old 0\n\nnot a note").await),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(w.add_checkpoint(&vec![b'x'; MAX_BODY_BYTES + 1]).await),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // Size 0 with the empty root is fine, with another root it is not.
        let (body, _) = request(0, &[], 0);
        assert_eq!(status(w.add_checkpoint(&body).await), StatusCode::OK);
        let (signer, origin) = log();
        let bad_empty = Checkpoint::new(origin.as_str(), 0, [1; 32]);
        let note = signer.sign_note(&bad_empty.to_body()).expect("note");
        let body = [b"old 0\n\n".as_slice(), &note.to_bytes()].concat();
        assert_eq!(
            status(w.add_checkpoint(&body).await),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // A note signed by another key under the log's name is refused.
        let other = Ed25519NoteSigner::new(&origin, &[1; 32]).expect("name");
        let cp = Checkpoint::new(origin.as_str(), 1, leaf(0));
        let note = other.sign_note(&cp.to_body()).expect("note");
        let body = [b"old 0\n\n".as_slice(), &note.to_bytes()].concat();
        assert_eq!(status(w.add_checkpoint(&body).await), StatusCode::FORBIDDEN);
        // A stale old size learns the stored size (409) before its proof
        // lines are judged; with the right old size they are a 422.
        let (body, _) = request(0, &[], 3);
        assert_eq!(status(w.add_checkpoint(&body).await), StatusCode::OK);
        let (body, _) = request(0, &[[0; 32]], 3);
        assert_eq!(status(w.add_checkpoint(&body).await), StatusCode::CONFLICT);
        let (body, _) = request(3, &[[0; 32]], 3);
        assert_eq!(
            status(w.add_checkpoint(&body).await),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    /// `cp` with `extensions`, signed by `signer`, as an add-checkpoint
    /// body from old size 0.
    fn with_extensions(
        signer: &Ed25519NoteSigner,
        mut cp: Checkpoint,
        extensions: &[&str],
    ) -> Vec<u8> {
        cp.extensions = extensions.iter().map(|&e| e.to_owned()).collect();
        let note = signer.sign_note(&cp.to_body()).expect("note").to_bytes();
        AddCheckpointRequest {
            old_size: 0,
            proof: Vec::new(),
            note: &note,
        }
        .encode()
    }

    #[tokio::test]
    async fn a_sigsum_checkpoint_with_extension_lines_is_400_even_for_an_unknown_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = witness(dir.path());
        let (signer, origin) = log();
        let cp = Checkpoint::new(origin.as_str(), 1, leaf(0));
        let body = with_extensions(&signer, cp.clone(), &["ext"]);
        let err = w.add_checkpoint(&body).await.expect_err("extension line");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("got 1"), "{err}");
        // Nothing was remembered: the same checkpoint without the line is
        // cosigned from old size 0.
        let body = with_extensions(&signer, cp, &[]);
        w.add_checkpoint(&body).await.expect("200");

        // A Sigsum origin the witness does not know: the extension lines
        // are judged first, as sigsum-go parses before it looks up logs.
        let other_key = SigningKey::from_seed(&[0x33; 32]).public_key();
        let other_origin = cairn_sigsum::tree_head::origin_for_key(&other_key);
        let other = Ed25519NoteSigner::new(&other_origin, &[0x33; 32]).expect("name");
        let cp = Checkpoint::new(other_origin.as_str(), 1, leaf(0));
        let err = w
            .add_checkpoint(&with_extensions(&other, cp.clone(), &["a", "b"]))
            .await
            .expect_err("extension lines");
        assert!(
            matches!(err, AddCheckpointError::SigsumExtensionLines { count: 2 }),
            "{err}"
        );
        let err = w
            .add_checkpoint(&with_extensions(&other, cp, &[]))
            .await
            .expect_err("unknown log");
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_sigsum_checkpoint_with_extension_lines_and_a_bad_signature_line_is_400() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = witness(dir.path());
        let (_, origin) = log();
        let body = format!(
            "old 0\n\n{origin}\n1\n{}\next\n\n\u{2014} {origin} not!base64\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, leaf(0))
        );
        let err = w.add_checkpoint(body.as_bytes()).await.expect_err("400");
        assert!(
            matches!(err, AddCheckpointError::SigsumExtensionLines { count: 1 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn other_logs_checkpoints_may_have_extension_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seed = [0x44; 32];
        let signer = Ed25519NoteSigner::new("example.org/log", &seed).expect("name");
        let key = SigningKey::from_seed(&seed).public_key();
        let config = WitnessConfig {
            name: "example.org/w".to_owned(),
            key: SigningKey::from_seed(&[0x57; 32]),
            logs: vec![crate::config::KnownLog::new("example.org/log", key.0)],
        };
        let w = Witness::new(
            config,
            WitnessState::open(dir.path()).expect("state"),
            || 1u64,
        )
        .expect("setup");
        let cp = Checkpoint::new("example.org/log", 1, leaf(0));
        let body = with_extensions(&signer, cp, &["ext one", "ext two"]);
        w.add_checkpoint(&body).await.expect("200");
    }

    #[test]
    fn duplicate_or_invalid_logs_are_setup_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_seed(&LOG_SEED).public_key();
        let config =
            WitnessConfig::for_sigsum_logs("w", SigningKey::from_seed(&[1; 32]), [&key, &key]);
        let state = WitnessState::open(dir.path()).expect("state");
        assert!(matches!(
            Witness::new(config, state, || 0u64),
            Err(SetupError::DuplicateOrigin(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            WitnessConfig::for_sigsum_logs("bad name", SigningKey::from_seed(&[1; 32]), [&key]);
        let state = WitnessState::open(dir.path()).expect("state");
        assert!(matches!(
            Witness::new(config, state, || 0u64),
            Err(SetupError::Name(_))
        ));
    }
}
