//! Collector settings for one shard.

use std::time::Duration;

use cairn_roots::Roots;

/// Default time between `GetTreeHeads` polls. New heads normally arrive
/// through the `WatchTreeHeads` stream at once; polling covers a stream
/// that is down.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Default limit on one witness request (connect, send, response body).
pub const DEFAULT_WITNESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time to keep collecting once the quorum holds: none.
pub const DEFAULT_EXTRA_WAIT: Duration = Duration::ZERO;

/// Default age of the newest cosignature on the published head after which
/// the same head is sent to the witnesses again and re-published with their
/// fresh cosignatures.
pub const DEFAULT_RECOSIGN_INTERVAL: Duration = Duration::from_secs(300);

/// How the collector of one shard behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// The shard (Sigsum log) name used in sequencer calls, e.g. `dev`.
    pub shard: String,
    /// Time between polls of the sequencer's tree heads, in addition to
    /// the rounds that the `WatchTreeHeads` stream starts as soon as a new
    /// head is signed. Default 250 ms.
    pub poll_interval: Duration,
    /// Limit on each witness request, from connecting to the end of the
    /// response body; a round makes at most two requests per witness (the
    /// second after a 409). Default 5 s.
    pub witness_timeout: Duration,
    /// How long to keep collecting cosignatures after the quorum holds, so
    /// that the published head carries more than the minimum. Zero (the
    /// default) publishes as soon as the quorum holds.
    pub extra_wait: Duration,
    /// Once the newest cosignature on the published head is this old and
    /// no larger head is signed (an idle or frozen log), the head is sent
    /// to the witnesses again and re-published with the new cosignatures,
    /// so that witnesses keep seeing the log and monitors and verifiers
    /// see that it is still watched — a frozen log's final head most of
    /// all. Default 5 minutes.
    pub recosign_interval: Duration,
    /// Publish a signed head even if the quorum does not hold (with whatever
    /// cosignatures arrived). Default false: no quorum, no publication —
    /// Sigsum verifiers would reject such a head anyway.
    pub fail_open: bool,
    /// PEM text of root certificates trusted for `https` witnesses and
    /// bastions, in addition to the web PKI roots bundled with Cairn (for a
    /// private CA or a self-signed bastion). The host's root store is never
    /// used. Empty (the default): the bundled roots only. Kept as text so
    /// the configuration stays comparable and printable;
    /// [`CollectorConfig::witness_trust`] parses it.
    pub witness_roots: Vec<u8>,
}

impl CollectorConfig {
    /// The defaults for `shard`.
    pub fn new(shard: impl Into<String>) -> Self {
        CollectorConfig {
            shard: shard.into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            witness_timeout: DEFAULT_WITNESS_TIMEOUT,
            extra_wait: DEFAULT_EXTRA_WAIT,
            recosign_interval: DEFAULT_RECOSIGN_INTERVAL,
            fail_open: false,
            witness_roots: Vec::new(),
        }
    }

    /// The roots trusted for witnesses: the bundled web PKI roots plus
    /// [`CollectorConfig::witness_roots`]. Text that is not empty must hold
    /// at least one usable `CERTIFICATE` block, so that a key or a mistyped
    /// file is refused rather than silently trusting nothing more.
    pub fn witness_trust(&self) -> Result<Roots, InvalidRoots> {
        Roots::bundled()
            .with_pem(&self.witness_roots)
            .map_err(|e| InvalidRoots(e.to_string()))
    }
}

/// Why [`CollectorConfig::witness_roots`] is unusable.
#[derive(Debug, thiserror::Error)]
#[error("witness root certificates: {0}")]
pub struct InvalidRoots(String);

#[cfg(test)]
mod tests {
    use super::*;

    fn with_roots(pem: &[u8]) -> CollectorConfig {
        CollectorConfig {
            witness_roots: pem.to_vec(),
            ..CollectorConfig::new("dev")
        }
    }

    #[test]
    fn no_witness_roots_means_the_bundled_roots_only() {
        for pem in [&b""[..], b"\n  \n"] {
            let roots = with_roots(pem).witness_trust().expect("valid");
            assert_eq!(roots.extra(), 0);
            assert!(!roots.certificates().is_empty());
        }
    }

    // Which PEM is accepted is tested in `cairn_roots`; here, that the
    // collector's text reaches it and its errors name the setting.
    #[test]
    fn pem_text_without_a_certificate_is_refused() {
        let key_only = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let broken = "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n";
        for pem in [key_only.as_str(), "not a certificate", broken] {
            let err = with_roots(pem.as_bytes())
                .witness_trust()
                .expect_err("refused");
            assert!(
                err.to_string().starts_with("witness root certificates:"),
                "{err}"
            );
        }
    }
}
