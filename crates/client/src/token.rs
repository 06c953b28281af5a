//! Verifying a submit token against the submitter's DNS, as a Sigsum log
//! does before rate limiting (`sigsum-protocol.md` §7).
//!
//! The submitter's rate-limit public keys are TXT records at
//! `_sigsum_v1.<domain>`, each 64 hex characters (either case). A token is
//! valid for a domain if one of the first [`MAX_TXT_RECORDS`] records there
//! verifies it for the log's key. As sigsum-go does, the old label
//! `_sigsum_v0.<domain>` is consulted only when `_sigsum_v1.<domain>` does
//! not exist (NXDOMAIN), never when it exists without usable records; the
//! keys found there verify the same v1 token.
//!
//! Only the DNS lookup lives here; the token format and the signature check
//! come from [`cairn_sigsum::token`], and domain normalisation for rate
//! limiting is the log's business.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use cairn_sigsum::PublicKey;
use cairn_sigsum::token::{
    DNS_LABEL, MAX_TXT_RECORDS, SubmitHeader, TokenRejected, validate_domain,
    verify_with_txt_records,
};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};

/// The DNS label of the pre-v1 key records, consulted when
/// `_sigsum_v1.<domain>` does not exist.
pub const DNS_LABEL_V0: &str = "_sigsum_v0";

/// How long one DNS query may take before the resolver gives up on it.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a whole verification (at most two names, each with the
/// resolver's own attempts) may take. A log verifies tokens on the
/// add-leaf path, so a slow domain must not hold a request for long.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(15);

/// Most TXT records of one name that are collected (and counted as
/// ignored beyond [`MAX_TXT_RECORDS`]); a DNS message holds far fewer keys.
const MAX_COLLECTED_RECORDS: usize = 1024;

/// Why a submit token was not accepted for a domain.
///
/// [`is_retryable`](TokenError::is_retryable) separates answers (the
/// domain has no usable key, or no key verifies the token) from failures to
/// get an answer (timeouts, unreachable or failing name servers), which a
/// log reports as a temporary error rather than as a bad token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The domain cannot be turned into a DNS name.
    #[error("invalid domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither `_sigsum_v1.<domain>` nor (if that does not exist)
    /// `_sigsum_v0.<domain>` has a TXT record.
    #[error("no TXT record at {}", .names.join(" or "))]
    NoRecord {
        /// The names looked up, in order.
        names: Vec<String>,
    },
    /// TXT records exist but none of those examined is a hex Ed25519 key.
    #[error(
        "none of the {tried} TXT record(s) examined at {name} is a 64-hex-character public key{}",
        ignored_note(*.ignored)
    )]
    MalformedRecords {
        /// The name whose records were examined.
        name: String,
        /// Records examined (at most [`MAX_TXT_RECORDS`]).
        tried: usize,
        /// Records beyond the limit, never examined.
        ignored: usize,
    },
    /// Keys were found but none verifies the token for this log.
    #[error(
        "no key at {name} verifies the token for this log ({} key(s) tried, {} malformed record(s){})",
        .rejected.tried - .rejected.malformed,
        .rejected.malformed,
        ignored_note(.rejected.ignored)
    )]
    SignatureMismatch {
        /// The name whose records were examined.
        name: String,
        /// What the examined records were.
        rejected: TokenRejected,
    },
    /// The lookup failed without an answer: a network error, a timeout, or
    /// a name server error response.
    #[error("DNS lookup of {name} failed: {message}")]
    Dns {
        /// The name being looked up.
        name: String,
        /// The resolver's description of the failure.
        message: String,
        /// Whether asking again later may succeed (timeouts, network
        /// errors, SERVFAIL), as opposed to a refusal or a malformed
        /// exchange.
        retryable: bool,
    },
    /// The whole verification took longer than its time limit.
    #[error("DNS lookup for {domain} timed out after {after:?}")]
    Timeout {
        /// The domain being verified.
        domain: String,
        /// The time limit.
        after: Duration,
    },
    /// The system resolver configuration (`/etc/resolv.conf`) is unusable.
    #[error("reading the system DNS configuration failed: {0}")]
    SystemConfig(String),
}

fn ignored_note(ignored: usize) -> String {
    if ignored == 0 {
        String::new()
    } else {
        format!("; {ignored} record(s) beyond the first {MAX_TXT_RECORDS} ignored")
    }
}

impl TokenError {
    /// Whether verifying again later may give another result because no
    /// answer was obtained this time.
    pub fn is_retryable(&self) -> bool {
        match self {
            TokenError::Dns { retryable, .. } => *retryable,
            TokenError::Timeout { .. } => true,
            TokenError::InvalidDomain { .. }
            | TokenError::NoRecord { .. }
            | TokenError::MalformedRecords { .. }
            | TokenError::SignatureMismatch { .. }
            | TokenError::SystemConfig(_) => false,
        }
    }

    /// Whether this is an answer that the token is not valid for the
    /// domain (as opposed to a failure to find out).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            TokenError::NoRecord { .. }
                | TokenError::MalformedRecords { .. }
                | TokenError::SignatureMismatch { .. }
        )
    }
}

/// The TXT records found for a domain's rate-limit keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtRecords {
    /// The name the records are at: `_sigsum_v1.<domain>.`, or
    /// `_sigsum_v0.<domain>.` after the NXDOMAIN fallback.
    pub name: String,
    /// The records in the order the name server sent them, each the
    /// concatenation of its character strings (invalid UTF-8 replaced).
    pub values: Vec<String>,
}

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The name whose TXT record vouched for the token.
    pub name: String,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token verified by a key at {}", self.name)
    }
}

/// Verifies submit tokens by looking up the submitter's keys in DNS.
///
/// Cheap to clone (the resolver is shared, including its cache). Every
/// verification is bounded by the verify timeout; each DNS query by the
/// query timeout. Lookups are for fully qualified names, so the resolver's
/// search domains never apply.
#[derive(Clone)]
pub struct TokenVerifier {
    resolver: TokioResolver,
    verify_timeout: Duration,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("verify_timeout", &self.verify_timeout)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier using the system's resolver configuration
    /// (`/etc/resolv.conf`), with the default timeouts.
    pub fn from_system_config() -> Result<Self, TokenError> {
        let mut builder =
            TokioResolver::builder_tokio().map_err(|e| TokenError::SystemConfig(e.to_string()))?;
        limit_queries(builder.options_mut());
        Ok(Self::with_resolver(
            builder
                .build()
                .map_err(|e| TokenError::SystemConfig(e.to_string()))?,
        ))
    }

    /// A verifier asking only the name server at `addr` (UDP, with TCP for
    /// truncated answers), with the default timeouts. For tests and for
    /// `--dns-server`.
    pub fn with_name_server(addr: SocketAddr) -> Result<Self, TokenError> {
        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
            .into_iter()
            .map(|mut c| {
                c.port = addr.port();
                c
            })
            .collect();
        let server = NameServerConfig::new(addr.ip(), true, connections);
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        limit_queries(builder.options_mut());
        let resolver = builder.build().map_err(|e| TokenError::Dns {
            name: addr.to_string(),
            message: format!("building the resolver failed: {e}"),
            retryable: false,
        })?;
        Ok(Self::with_resolver(resolver))
    }

    fn with_resolver(resolver: TokioResolver) -> Self {
        TokenVerifier {
            resolver,
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
        }
    }

    /// The same verifier with another bound on a whole verification.
    #[must_use]
    pub fn with_verify_timeout(mut self, timeout: Duration) -> Self {
        self.verify_timeout = timeout;
        self
    }

    /// Checks that `header.token` is valid for the log with key `log_key`
    /// according to the keys `header.domain` publishes.
    pub async fn verify(
        &self,
        log_key: &PublicKey,
        header: &SubmitHeader,
    ) -> Result<Verified, TokenError> {
        let records = self.lookup_keys(&header.domain).await?;
        match verify_with_txt_records(&records.values, log_key, &header.token) {
            Ok(()) => Ok(Verified { name: records.name }),
            Err(rejected) if rejected.malformed == rejected.tried => {
                Err(TokenError::MalformedRecords {
                    name: records.name,
                    tried: rejected.tried,
                    ignored: rejected.ignored,
                })
            }
            Err(rejected) => Err(TokenError::SignatureMismatch {
                name: records.name,
                rejected,
            }),
        }
    }

    /// The TXT records holding `domain`'s rate-limit keys: those at
    /// `_sigsum_v1.<domain>`, or at `_sigsum_v0.<domain>` if the former
    /// does not exist. Never empty.
    pub async fn lookup_keys(&self, domain: &str) -> Result<TxtRecords, TokenError> {
        let v1 = txt_name(DNS_LABEL, domain)?;
        let v0 = txt_name(DNS_LABEL_V0, domain)?;
        let lookup = async {
            match self.lookup_txt(&v1).await? {
                Lookup::Found(values) => Ok(TxtRecords {
                    name: v1.to_string(),
                    values,
                }),
                Lookup::NoData => Err(TokenError::NoRecord {
                    names: vec![v1.to_string()],
                }),
                Lookup::NxDomain => match self.lookup_txt(&v0).await? {
                    Lookup::Found(values) => Ok(TxtRecords {
                        name: v0.to_string(),
                        values,
                    }),
                    Lookup::NoData | Lookup::NxDomain => Err(TokenError::NoRecord {
                        names: vec![v1.to_string(), v0.to_string()],
                    }),
                },
            }
        };
        tokio::time::timeout(self.verify_timeout, lookup)
            .await
            .map_err(|_| TokenError::Timeout {
                domain: domain.to_owned(),
                after: self.verify_timeout,
            })?
    }

    async fn lookup_txt(&self, name: &Name) -> Result<Lookup, TokenError> {
        match self.resolver.txt_lookup(name.clone()).await {
            Ok(lookup) => {
                let values: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => Some(txt_value(&txt.txt_data)),
                        _ => None,
                    })
                    .take(MAX_COLLECTED_RECORDS)
                    .collect();
                // Answers may be only a CNAME chain's other records.
                Ok(if values.is_empty() {
                    Lookup::NoData
                } else {
                    Lookup::Found(values)
                })
            }
            Err(e) if e.is_nx_domain() => Ok(Lookup::NxDomain),
            Err(e) if e.is_no_records_found() => Ok(Lookup::NoData),
            Err(e) => Err(TokenError::Dns {
                name: name.to_string(),
                retryable: is_retryable(&e),
                message: e.to_string(),
            }),
        }
    }
}

/// What one TXT lookup found.
enum Lookup {
    Found(Vec<String>),
    /// The name exists without TXT records.
    NoData,
    /// The name does not exist.
    NxDomain,
}

/// One query attempt per name server, each bounded: the caller's overall
/// timeout is what matters, and retries inside it only delay the answer.
fn limit_queries(opts: &mut hickory_resolver::config::ResolverOpts) {
    opts.timeout = DEFAULT_QUERY_TIMEOUT;
    opts.attempts = 1;
}

/// `<label>.<domain>.` as a fully qualified name. A trailing dot on the
/// domain is accepted; non-ASCII domains are converted to their A-labels,
/// and the result must pass [`validate_domain`], the check a log applies to
/// every `sigsum-token` header.
fn txt_name(label: &str, domain: &str) -> Result<Name, TokenError> {
    let invalid = |reason: String| TokenError::InvalidDomain {
        domain: domain.to_owned(),
        reason,
    };
    let ascii = if domain.is_ascii() {
        domain.to_owned()
    } else {
        Name::from_utf8(domain)
            .map_err(|e| invalid(e.to_string()))?
            .to_ascii()
    };
    validate_domain(&ascii).map_err(|e| invalid(e.to_string()))?;
    let bare = ascii.strip_suffix('.').unwrap_or(&ascii);
    let mut name =
        Name::from_utf8(format!("{label}.{bare}")).map_err(|e| invalid(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

/// A TXT record's value: its character strings concatenated, as Go's
/// `net.LookupTXT` (and so sigsum-go) returns it.
fn txt_value(strings: &[Box<[u8]>]) -> String {
    let bytes: Vec<u8> = strings.iter().flat_map(|s| s.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Timeouts, transport failures and SERVFAIL may go away; a refusal, a
/// malformed exchange or another error code is the server's answer.
fn is_retryable(e: &NetError) -> bool {
    match e {
        NetError::Timeout | NetError::Busy | NetError::NoConnections | NetError::Io(_) => true,
        NetError::Dns(DnsError::ResponseCode(code)) => *code == ResponseCode::ServFail,
        _ => e.is_connection_closed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_names_are_fully_qualified_and_reject_empty_labels() {
        let n = txt_name(DNS_LABEL, "example.org").unwrap();
        assert_eq!(n.to_string(), "_sigsum_v1.example.org.");
        assert_eq!(
            txt_name(DNS_LABEL, "example.org.").unwrap().to_string(),
            "_sigsum_v1.example.org."
        );
        let long_label = format!("{}.org", "x".repeat(300));
        for bad in [
            "",
            ".",
            ".example.org",
            "a..org",
            "ex ample.org",
            "a\tb",
            &long_label,
            "räks..se",
        ] {
            assert!(
                matches!(
                    txt_name(DNS_LABEL, bad),
                    Err(TokenError::InvalidDomain { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn non_ascii_domains_are_looked_up_by_their_a_label() {
        let n = txt_name(DNS_LABEL, "räksmörgås.se").unwrap();
        assert_eq!(n.to_ascii(), "_sigsum_v1.xn--rksmrgs-5wao1o.se.");
    }

    #[test]
    fn record_character_strings_are_concatenated() {
        let parts: Vec<Box<[u8]>> = vec![b"ab".to_vec().into(), b"cd".to_vec().into()];
        assert_eq!(txt_value(&parts), "abcd");
    }

    #[test]
    fn answers_are_not_retryable_but_failures_to_get_one_may_be() {
        assert!(is_retryable(&NetError::Timeout));
        assert!(is_retryable(&NetError::Dns(DnsError::ResponseCode(
            ResponseCode::ServFail
        ))));
        assert!(!is_retryable(&NetError::Dns(DnsError::ResponseCode(
            ResponseCode::Refused
        ))));
        let no_record = TokenError::NoRecord {
            names: vec!["_sigsum_v1.example.org.".into()],
        };
        assert!(!no_record.is_retryable());
        assert!(no_record.is_rejection());
        let timeout = TokenError::Timeout {
            domain: "example.org".into(),
            after: DEFAULT_VERIFY_TIMEOUT,
        };
        assert!(timeout.is_retryable());
        assert!(!timeout.is_rejection());
    }
}
