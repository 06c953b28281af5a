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

/// Longest DNS name in its text form (RFC 1035 §2.3.4: 255 octets on the
/// wire, minus the first length octet and the root label).
pub const MAX_DNS_NAME_LEN: usize = 253;

/// Longest label of a DNS name (RFC 1035 §2.3.4).
pub const MAX_DNS_LABEL_LEN: usize = 63;

/// Longest domain a token may name (without a trailing dot): what leaves
/// room for `_sigsum_v1.` in front within [`MAX_DNS_NAME_LEN`]. A longer
/// domain's key record cannot exist, so no token for it can ever verify.
pub const MAX_DOMAIN_LEN: usize = MAX_DNS_NAME_LEN - DNS_LABEL.len() - 1;

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

/// Why a domain cannot be the domain of a submit token.
///
/// Positions and label numbers count from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing but (at most) a trailing dot.
    #[error("empty domain")]
    Empty,
    /// Longer than [`MAX_DOMAIN_LEN`] characters.
    #[error(
        "domain is {len} characters long; at most {MAX_DOMAIN_LEN} leave room for \"{DNS_LABEL}.\" in a DNS name of at most {MAX_DNS_NAME_LEN}"
    )]
    TooLong {
        /// The length, without a trailing dot.
        len: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("label {label} is empty (a leading dot or two dots in a row)")]
    EmptyLabel {
        /// Which label.
        label: usize,
    },
    /// A label longer than [`MAX_DNS_LABEL_LEN`].
    #[error("label {label} is {len} characters long; DNS allows at most {MAX_DNS_LABEL_LEN}")]
    LabelTooLong {
        /// Which label.
        label: usize,
        /// Its length.
        len: usize,
    },
    /// A character other than an ASCII letter, digit, `-`, `_` or `.`.
    #[error(
        "character {found:?} at position {position} is not allowed: use ASCII letters, digits, '-', '_' and '.' (a non-ASCII domain in its xn-- form)"
    )]
    Character {
        /// 1-based character position.
        position: usize,
        /// The character.
        found: char,
    },
    /// A label starting or ending with `-`.
    #[error("label {label} starts or ends with '-'")]
    Hyphen {
        /// Which label.
        label: usize,
    },
    /// Only digits and dots: an IP address, not a domain.
    #[error("domain is all digits and dots (an IP address is not a domain)")]
    Numeric,
}

/// Checks that `domain` can name a submitter, by the rules sigsum-go's DNS
/// lookup (Go's resolver) applies to `_sigsum_v1.<domain>`: ASCII letters,
/// digits, `-` and `_` in dot-separated labels of 1 to
/// [`MAX_DNS_LABEL_LEN`] characters, no label starting or ending with `-`,
/// not all digits, and at most [`MAX_DOMAIN_LEN`] characters. One trailing
/// dot (a fully qualified name) is allowed. Letter case is not judged: DNS
/// names are case-insensitive.
///
/// A log applies this to every `sigsum-token` header, whether or not it
/// looks tokens up in DNS, so the same header gets the same answer either
/// way: a domain failing these rules cannot have a key record that Go's
/// resolver would ever look up.
pub fn validate_domain(domain: &str) -> Result<(), DomainError> {
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    if bare.is_empty() {
        return Err(DomainError::Empty);
    }
    if let Some((i, found)) = bare
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DomainError::Character {
            position: i + 1,
            found,
        });
    }
    // ASCII from here on: bytes are characters. Labels first, so that
    // one overlong label is named as such rather than as a long domain.
    for (i, label) in bare.split('.').enumerate() {
        let label_number = i + 1;
        if label.is_empty() {
            return Err(DomainError::EmptyLabel {
                label: label_number,
            });
        }
        if label.len() > MAX_DNS_LABEL_LEN {
            return Err(DomainError::LabelTooLong {
                label: label_number,
                len: label.len(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen {
                label: label_number,
            });
        }
    }
    if bare.len() > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong { len: bare.len() });
    }
    if bare.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DomainError::Numeric);
    }
    Ok(())
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
    /// The domain part is not a valid domain ([`validate_domain`]).
    #[error("invalid domain {domain:?}: {reason}")]
    Domain {
        /// The domain, cut to its first 64 characters (error bodies must
        /// not grow with the request).
        domain: String,
        /// What is wrong with it.
        reason: DomainError,
    },
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
    /// space, a domain that [`validate_domain`] accepts and 128 hex
    /// characters (either case).
    ///
    /// Stricter than sigsum-go, which takes any non-empty domain here and
    /// only fails later if it looks the domain up: the domain is checked
    /// here so that a log answers the same whether or not it verifies
    /// tokens.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let parts: Vec<&str> = value.split(' ').collect();
        let [domain, token] = parts.as_slice() else {
            return Err(HeaderError::PartCount(parts.len()));
        };
        if domain.is_empty() {
            return Err(HeaderError::EmptyDomain);
        }
        validate_domain(domain).map_err(|reason| HeaderError::Domain {
            domain: domain.chars().take(64).collect(),
            reason,
        })?;
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
    fn domains_follow_dns_lengths_and_go_resolver_characters() {
        let label63 = "a".repeat(63);
        let longest = format!("{label63}.{label63}.{label63}.{}", "b".repeat(50));
        assert_eq!(longest.len(), MAX_DOMAIN_LEN);
        for good in [
            "example.org",
            "example.org.",
            "EXAMPLE.Org",
            "localhost",
            "_under.example.org",
            "xn--rksmrgs-5wao1o.se",
            "a-b.1.org",
            "123.org",
            label63.as_str(),
            longest.as_str(),
        ] {
            assert_eq!(validate_domain(good), Ok(()), "{good}");
        }
        let cases = [
            ("", DomainError::Empty),
            (".", DomainError::Empty),
            ("a..org", DomainError::EmptyLabel { label: 2 }),
            (".example.org", DomainError::EmptyLabel { label: 1 }),
            ("example.org..", DomainError::EmptyLabel { label: 3 }),
            (
                &format!("{}.org", "x".repeat(300)),
                DomainError::LabelTooLong { label: 1, len: 300 },
            ),
            (
                &format!("{label63}a.org"),
                DomainError::LabelTooLong { label: 1, len: 64 },
            ),
            (&format!("{longest}b"), DomainError::TooLong { len: 243 }),
            ("-a.org", DomainError::Hyphen { label: 1 }),
            ("a.org-", DomainError::Hyphen { label: 2 }),
            (
                "ex ample.org",
                DomainError::Character {
                    position: 3,
                    found: ' ',
                },
            ),
            (
                "räksmörgås.se",
                DomainError::Character {
                    position: 2,
                    found: 'ä',
                },
            ),
            (
                "a/b.org",
                DomainError::Character {
                    position: 2,
                    found: '/',
                },
            ),
            ("192.0.2.1", DomainError::Numeric),
        ];
        for (bad, want) in cases {
            assert_eq!(validate_domain(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn header_domains_are_validated_and_quoted_bounded() {
        let hex = "ab".repeat(64);
        let Err(HeaderError::Domain { domain, reason }) =
            SubmitHeader::parse(&format!("a..org {hex}"))
        else {
            panic!("accepted an empty label");
        };
        assert_eq!(
            (domain.as_str(), reason),
            ("a..org", DomainError::EmptyLabel { label: 2 })
        );
        let long = "x".repeat(300);
        let Err(e) = SubmitHeader::parse(&format!("{long} {hex}")) else {
            panic!("accepted a 300-character label");
        };
        let message = e.to_string();
        assert!(message.contains("300 characters"), "{message}");
        assert!(message.len() < 250, "{message}");
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
