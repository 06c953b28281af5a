//! What a witness is: its cosigner identity, the logs it will cosign for,
//! and the clock that timestamps its cosignatures.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_sigsum::{PublicKey, SigningKey};
use cairn_tlog::note::{KeyError, SIG_TYPE_ED25519, VerifierKey};

/// A log the witness cosigns for: checkpoints whose origin line is `origin`
/// must carry a valid Ed25519 note signature by `key` under `key_name`.
///
/// For Sigsum logs (and C2SP tlog-policy logs) the key name is the origin;
/// Go's checksum database is an example where it is not
/// (`go.sum database tree` signed by `sum.golang.org`).
#[derive(Clone, PartialEq, Eq)]
pub struct KnownLog {
    /// The checkpoint origin (first line of the body) that identifies the log.
    pub origin: String,
    /// The signed-note key name on the log's signature line.
    pub key_name: String,
    /// The log's Ed25519 public key.
    pub key: [u8; 32],
}

impl KnownLog {
    /// A log whose key name equals its origin.
    pub fn new(origin: impl Into<String>, key: [u8; 32]) -> Self {
        let origin = origin.into();
        KnownLog {
            key_name: origin.clone(),
            origin,
            key,
        }
    }

    /// A Sigsum log: origin and key name `sigsum.org/v1/tree/<hex key hash>`.
    pub fn sigsum(key: &PublicKey) -> Self {
        Self::new(cairn_sigsum::tree_head::origin_for_key(key), key.0)
    }

    /// A log from its Ed25519 (type 0x01) vkey, whose name is also the origin.
    /// Fails if the vkey is malformed, inconsistent or of another type.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let vkey = VerifierKey::parse(vkey.trim_ascii())?;
        let key = vkey.ed25519_key(SIG_TYPE_ED25519)?;
        Ok(Self::new(vkey.name(), key))
    }

    /// A log from its Ed25519 (type 0x01) vkey with an origin that differs
    /// from the key name, as Go's checksum database has.
    pub fn from_vkey_with_origin(origin: impl Into<String>, vkey: &str) -> Result<Self, KeyError> {
        let vkey = VerifierKey::parse(vkey.trim_ascii())?;
        let key = vkey.ed25519_key(SIG_TYPE_ED25519)?;
        Ok(KnownLog {
            origin: origin.into(),
            key_name: vkey.name().to_owned(),
            key,
        })
    }
}

impl fmt::Debug for KnownLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownLog")
            .field("origin", &self.origin)
            .field("key_name", &self.key_name)
            .field("key", &hex::encode(self.key))
            .finish()
    }
}

/// A witness's configuration.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    /// The witness's signed-note key name, e.g. `example.com/witness`; it
    /// appears on every cosignature line. Must be a valid key name.
    pub name: String,
    /// The witness's Ed25519 key. It must serve this one cosigner identity
    /// only: the cosigned message does not commit to the name.
    pub key: SigningKey,
    /// The logs the witness cosigns for; origins must be distinct.
    pub logs: Vec<KnownLog>,
}

impl WitnessConfig {
    /// A witness for Sigsum logs given by their public keys.
    pub fn for_sigsum_logs<'a>(
        name: impl Into<String>,
        key: SigningKey,
        log_keys: impl IntoIterator<Item = &'a PublicKey>,
    ) -> Self {
        WitnessConfig {
            name: name.into(),
            key,
            logs: log_keys.into_iter().map(KnownLog::sigsum).collect(),
        }
    }
}

/// The source of cosignature timestamps, in seconds since the POSIX epoch.
///
/// Contract: cheap, non-blocking, callable from any thread. Any
/// `Fn() -> u64 + Send + Sync` closure is a clock, which is how tests fix time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

impl<F: Fn() -> u64 + Send + Sync + 'static> Clock for F {
    fn now(&self) -> u64 {
        self()
    }
}

/// The system's wall clock. A clock set before 1970 reads as 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigsum_log_origin_and_key_name_are_the_key_hash_origin() {
        let key = SigningKey::from_seed(&[7; 32]).public_key();
        let log = KnownLog::sigsum(&key);
        assert_eq!(log.origin, format!("sigsum.org/v1/tree/{}", key.key_hash()));
        assert_eq!(log.key_name, log.origin);
        assert_eq!(log.key, key.0);
    }

    #[test]
    fn vkey_logs_take_their_name_and_may_have_another_origin() {
        let vkey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
        let log = KnownLog::from_vkey(vkey).expect("valid vkey");
        assert_eq!(log.origin, "sum.golang.org");
        let log = KnownLog::from_vkey_with_origin("go.sum database tree", vkey).expect("valid");
        assert_eq!(log.origin, "go.sum database tree");
        assert_eq!(log.key_name, "sum.golang.org");
    }

    #[test]
    fn vkeys_of_other_types_or_with_bad_ids_are_refused() {
        // A cosignature/v1 (type 0x04) key is a witness key, not a log key.
        let witness = "example.org/witness1+d7cea6f8+BMhAafoiFsbtwdUsqDqhHCZ91UQK+lJgkMpD69DKhqnP";
        assert!(KnownLog::from_vkey(witness).is_err());
        let bad_id = "sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
        assert!(KnownLog::from_vkey(bad_id).is_err());
    }

    #[test]
    fn closures_are_clocks() {
        let c = || 1_700_000_000u64;
        assert_eq!(Clock::now(&c), 1_700_000_000);
        assert!(SystemClock.now() > 1_600_000_000);
    }
}
