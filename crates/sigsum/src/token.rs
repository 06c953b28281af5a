//! Submit tokens: the optional proof that a submitter speaks for a domain,
//! used by logs for per-domain rate limiting (`sigsum-protocol.md` §7).
//!
//! The submitter publishes a rate-limit public key as a DNS TXT record at
//! `_sigsum_v1.<domain>` and sends, with add-leaf, the header
//! `sigsum-token: <domain> <hex token>` where the token is an Ed25519
//! signature over `sigsum.org/v1/submit-token\0 || log public key` (the 32
//! key bytes, not the key hash: every implementation signs the key).
//!
//! This module only formats, parses and verifies. DNS lookups and domain
//! normalisation belong to the log server.

use crate::ascii::{ValueError, parse_hex};
use crate::crypto::{NAMESPACE_SUBMIT_TOKEN, PublicKey, Signature, SigningKey, namespaced};

/// HTTP header name (header names are case-insensitive).
pub const HEADER_NAME: &str = "sigsum-token";

/// DNS label prefixed to the submitter's domain for the TXT lookup.
pub const DNS_LABEL: &str = "_sigsum_v1";

/// How many TXT records a log tries at most (sigsum-go's limit; the spec
/// asks logs to support at least 10).
pub const MAX_TXT_RECORDS: usize = 10;

/// The 59 bytes a token signs: `sigsum.org/v1/submit-token\0 || log key`.
pub fn signed_bytes(log_key: &PublicKey) -> Vec<u8> {
    namespaced(NAMESPACE_SUBMIT_TOKEN, &log_key.0)
}

/// A token for the log with public key `log_key`, signed by the
/// submitter's rate-limit key.
pub fn sign(rate_limit_key: &SigningKey, log_key: &PublicKey) -> Signature {
    rate_limit_key.sign_namespaced(NAMESPACE_SUBMIT_TOKEN, &log_key.0)
}

/// Whether `token` is `rate_limit_key`'s valid token for `log_key`.
pub fn verify(rate_limit_key: &PublicKey, log_key: &PublicKey, token: &Signature) -> bool {
    rate_limit_key.verify_namespaced(NAMESPACE_SUBMIT_TOKEN, &log_key.0, token)
}

/// The DNS name holding a domain's rate-limit keys: `_sigsum_v1.<domain>`.
pub fn dns_txt_name(domain: &str) -> String {
    format!("{DNS_LABEL}.{domain}")
}

/// The TXT record value for a rate-limit key: its lowercase hex.
pub fn dns_txt_value(rate_limit_key: &PublicKey) -> String {
    rate_limit_key.to_hex()
}

/// The zone-file line `sigsum-token record` prints for a key:
/// `_sigsum_v1 IN TXT "<hex key>"` (no trailing newline).
pub fn dns_txt_record_line(rate_limit_key: &PublicKey) -> String {
    format!("{DNS_LABEL} IN TXT \"{}\"", dns_txt_value(rate_limit_key))
}

/// Why no TXT record vouched for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no TXT record key verifies the token (records tried: {tried}, not a hex key: {malformed}, ignored beyond the first {MAX_TXT_RECORDS}: {ignored})"
)]
pub struct TokenRejected {
    /// Records examined (at most [`MAX_TXT_RECORDS`]).
    pub tried: usize,
    /// Examined records that are not a 64-hex-character key.
    pub malformed: usize,
    /// Records beyond the limit, never examined.
    pub ignored: usize,
}

/// Checks `token` against the TXT record values found at
/// [`dns_txt_name`]: accepts if any of the first [`MAX_TXT_RECORDS`]
/// records is a hex key (either case) that verifies the token for `log_key`.
/// Malformed records are skipped, as sigsum-go does.
pub fn verify_with_txt_records<S: AsRef<str>>(
    records: &[S],
    log_key: &PublicKey,
    token: &Signature,
) -> Result<(), TokenRejected> {
    let tried = records.len().min(MAX_TXT_RECORDS);
    let mut malformed = 0;
    for record in records.iter().take(MAX_TXT_RECORDS) {
        match parse_hex::<32>(record.as_ref().as_bytes()) {
            Ok(key) => {
                if verify(&PublicKey(key), log_key, token) {
                    return Ok(());
                }
            }
            Err(_) => malformed += 1,
        }
    }
    Err(TokenRejected {
        tried,
        malformed,
        ignored: records.len() - tried,
    })
}

/// Why a `sigsum-token` header value is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not exactly two parts separated by one space.
    #[error("expected \"<domain> <hex token>\" separated by one space, got {0} part(s)")]
    PartCount(usize),
    /// The domain part is empty.
    #[error("empty domain")]
    EmptyDomain,
    /// The token is not 128 hex characters.
    #[error("token: {0}")]
    Token(ValueError),
}

/// The value of the `sigsum-token` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitHeader {
    /// The submitter's domain, without the `_sigsum_v1.` label, as sent
    /// (not normalised).
    pub domain: String,
    /// The token.
    pub token: Signature,
}

impl SubmitHeader {
    /// Parses `<domain> <hex token>`: exactly two parts separated by one
    /// space, a non-empty domain and 128 hex characters (either case).
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let parts: Vec<&str> = value.split(' ').collect();
        let [domain, token] = parts.as_slice() else {
            return Err(HeaderError::PartCount(parts.len()));
        };
        if domain.is_empty() {
            return Err(HeaderError::EmptyDomain);
        }
        let token = parse_hex::<64>(token.as_bytes()).map_err(HeaderError::Token)?;
        Ok(SubmitHeader {
            domain: (*domain).to_owned(),
            token: Signature(token),
        })
    }

    /// The header value, `<domain> <lowercase hex token>`.
    pub fn to_header_value(&self) -> String {
        format!("{} {}", self.domain, self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SigningKey, PublicKey) {
        (
            SigningKey::from_seed(&[0x52; 32]),
            SigningKey::from_seed(&[0x4c; 32]).public_key(),
        )
    }

    #[test]
    fn token_signs_the_log_public_key_not_its_hash() {
        let (rl, log) = keys();
        let token = sign(&rl, &log);
        assert_eq!(signed_bytes(&log).len(), 59);
        assert!(verify(&rl.public_key(), &log, &token));
        let hash_as_key = PublicKey(log.key_hash().0);
        assert!(!verify(&rl.public_key(), &hash_as_key, &token));
    }

    #[test]
    fn header_round_trips_with_lowercase_hex() {
        let (rl, log) = keys();
        let h = SubmitHeader {
            domain: "example.org".into(),
            token: sign(&rl, &log),
        };
        let v = h.to_header_value();
        assert_eq!(v, v.to_lowercase());
        assert_eq!(SubmitHeader::parse(&v), Ok(h.clone()));
        assert_eq!(
            SubmitHeader::parse(&v.to_uppercase()).map(|x| x.token),
            Ok(h.token)
        );
    }

    #[test]
    fn header_needs_exactly_two_parts_and_a_domain() {
        let hex = "ab".repeat(64);
        assert_eq!(
            SubmitHeader::parse(&format!(" {hex}")),
            Err(HeaderError::EmptyDomain)
        );
        assert_eq!(
            SubmitHeader::parse(&format!("a.org  {hex}")),
            Err(HeaderError::PartCount(3))
        );
        assert_eq!(SubmitHeader::parse(&hex), Err(HeaderError::PartCount(1)));
        assert!(matches!(
            SubmitHeader::parse(&format!("a.org {hex}a")),
            Err(HeaderError::Token(_))
        ));
    }

    #[test]
    fn txt_records_beyond_the_first_ten_are_ignored() {
        let (rl, log) = keys();
        let token = sign(&rl, &log);
        let good = dns_txt_value(&rl.public_key());
        let mut records = vec!["not a key".to_owned(); 10];
        records.push(good.clone());
        assert_eq!(
            verify_with_txt_records(&records, &log, &token),
            Err(TokenRejected {
                tried: 10,
                malformed: 10,
                ignored: 1
            })
        );
        records.swap(0, 10);
        assert_eq!(verify_with_txt_records(&records, &log, &token), Ok(()));
        assert_eq!(
            verify_with_txt_records(&[good.to_uppercase()], &log, &token),
            Ok(())
        );
    }

    #[test]
    fn record_line_matches_sigsum_token_record() {
        let (rl, _) = keys();
        assert_eq!(
            dns_txt_record_line(&rl.public_key()),
            format!("_sigsum_v1 IN TXT \"{}\"", rl.public_key().to_hex())
        );
        assert_eq!(dns_txt_name("example.org"), "_sigsum_v1.example.org");
    }
}
