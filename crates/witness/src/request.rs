//! The `add-checkpoint` request body (C2SP tlog-witness), framing only:
//!
//! ```text
//! old <decimal size>\n
//! <base64 hash>\n            (0..=63 consistency proof lines)
//! \n
//! <signed note>              (checkpoint body, blank line, signature lines)
//! ```
//!
//! Parsing here checks the old-size line and the proof lines and hands back
//! the note bytes untouched: whether the note is well-formed, known and
//! signed decides between 400, 403 and 404, which only the witness can tell.
//! Encoding is the client half, used by the collector, so both sides share
//! one definition of the format.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cairn_tlog::Hash;
use cairn_tlog::proof::MAX_PROOF_HASHES;

/// Largest request body the witness accepts, in bytes. A Sigsum request is
/// under 3 KiB (63 proof lines of 45 bytes, a checkpoint and a few
/// signatures); the cap bounds the work a hostile client can cause.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a request body is malformed (HTTP 400). Lines count from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The first line is not `old <size>` with a canonical decimal size.
    #[error(
        "line 1: expected \"old <size>\" with a decimal size without leading zeros, at most 2^63-1"
    )]
    OldLine,
    /// A proof line is not canonical padded base64 of exactly 32 bytes.
    #[error("line {line}: consistency proof line is not the base64 encoding of a 32-byte hash")]
    ProofLine {
        /// The offending line.
        line: usize,
    },
    /// More than [`MAX_PROOF_HASHES`] proof lines.
    #[error("more than {MAX_PROOF_HASHES} consistency proof lines")]
    TooManyProofLines,
    /// The body ends before the empty line that precedes the checkpoint.
    #[error("missing the empty line between the consistency proof and the checkpoint")]
    MissingSeparator,
    /// Nothing follows the empty line.
    #[error("missing the signed checkpoint after the empty line")]
    MissingCheckpoint,
}

/// A framed `add-checkpoint` request: old size, proof, and the signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest<'a> {
    /// The size the client believes the witness last cosigned (0 if unknown).
    pub old_size: u64,
    /// RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, not yet parsed.
    pub note: &'a [u8],
}

impl<'a> AddCheckpointRequest<'a> {
    /// Parses the framing of a request body. Does not look at the note
    /// beyond requiring it to be non-empty; does not apply
    /// [`MAX_BODY_BYTES`] (the HTTP layer does, before buffering).
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        let (first, mut rest) = split_line(body).ok_or(RequestError::OldLine)?;
        let old_size = first
            .strip_prefix(b"old ")
            .and_then(|n| cairn_sigsum::ascii::parse_int(n).ok())
            .ok_or(RequestError::OldLine)?;
        let mut proof = Vec::new();
        let mut line = 1;
        loop {
            line += 1;
            let (l, tail) = split_line(rest).ok_or(RequestError::MissingSeparator)?;
            rest = tail;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(RequestError::TooManyProofLines);
            }
            let hash = STANDARD
                .decode(l)
                .ok()
                .and_then(|h| Hash::try_from(h.as_slice()).ok())
                .ok_or(RequestError::ProofLine { line })?;
            proof.push(hash);
        }
        if rest.is_empty() {
            return Err(RequestError::MissingCheckpoint);
        }
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            note: rest,
        })
    }

    /// The request body: the exact inverse of [`AddCheckpointRequest::parse`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for h in &self.proof {
            out.extend_from_slice(STANDARD.encode(h).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(self.note);
        out
    }
}

/// Splits off the first `\n`-terminated line (without its newline).
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b'\n')?;
    Some((b.get(..i)?, b.get(i + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &[u8] =
        b"o\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\xe2\x80\x94 o AAAA\n";

    #[test]
    fn request_round_trips_through_encode() {
        let req = AddCheckpointRequest {
            old_size: 3,
            proof: vec![[1; 32], [2; 32]],
            note: NOTE,
        };
        let body = req.encode();
        assert!(body.starts_with(b"old 3\nAQEB"));
        assert_eq!(AddCheckpointRequest::parse(&body), Ok(req));
    }

    #[test]
    fn empty_proof_is_old_line_then_blank_line() {
        let mut body = b"old 0\n\n".to_vec();
        body.extend_from_slice(NOTE);
        let req = AddCheckpointRequest::parse(&body).expect("parses");
        assert_eq!((req.old_size, req.proof.len(), req.note), (0, 0, NOTE));
    }

    #[test]
    fn old_line_must_be_canonical() {
        for bad in [
            &b"old 01\n\nx"[..],
            b"old -1\n\nx",
            b"old  1\n\nx",
            b"old\n\nx",
            b"Old 1\n\nx",
            b"old 9223372036854775808\n\nx",
            b"old 1",
            b"old 1\r\n\nx",
        ] {
            assert_eq!(
                AddCheckpointRequest::parse(bad),
                Err(RequestError::OldLine),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn proof_lines_must_be_32_byte_canonical_base64() {
        let short = b"old 1\nKgAA\n\nx";
        assert_eq!(
            AddCheckpointRequest::parse(short),
            Err(RequestError::ProofLine { line: 2 })
        );
        // Non-zero trailing bits: not canonical.
        let sloppy = b"old 1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n\nx";
        assert_eq!(
            AddCheckpointRequest::parse(sloppy),
            Err(RequestError::ProofLine { line: 2 })
        );
    }

    #[test]
    fn at_most_63_proof_lines() {
        let line = "KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let ok = format!("old 1\n{}\nx", line.repeat(63));
        assert_eq!(
            AddCheckpointRequest::parse(ok.as_bytes()).map(|r| r.proof.len()),
            Ok(63)
        );
        let too_many = format!("old 1\n{}\nx", line.repeat(64));
        assert_eq!(
            AddCheckpointRequest::parse(too_many.as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
    }

    #[test]
    fn missing_separator_or_checkpoint_is_malformed() {
        assert_eq!(
            AddCheckpointRequest::parse(b"old 0\n"),
            Err(RequestError::MissingSeparator)
        );
        assert_eq!(
            AddCheckpointRequest::parse(b"old 0\n\n"),
            Err(RequestError::MissingCheckpoint)
        );
    }
}
