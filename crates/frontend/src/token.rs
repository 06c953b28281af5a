//! Verifying add-leaf's `sigsum-token` header against the submitter's DNS
//! (`sigsum-protocol.md` §7), with a bounded cache of tokens that verified.
//!
//! A submitter sends the same token with every leaf, so without the cache
//! a busy submitter would cost one DNS lookup per leaf. Only successes are
//! cached: a rejected token is looked up again next time, so a submitter
//! who fixes their TXT record is not refused for the cache's lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::token::{TokenError, TokenVerifier};
use cairn_sigsum::PublicKey;
use cairn_sigsum::token::{HEADER_NAME, SubmitHeader};

use crate::error::ApiError;

/// How long a verified (domain, token) pair is trusted without asking DNS
/// again: a key removed from DNS keeps working at most this long.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Most verified (domain, token) pairs remembered per shard; beyond it the
/// entry closest to expiry is dropped, so memory stays bounded whatever
/// submitters send.
pub const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Verified tokens with the time each stops being trusted.
#[derive(Debug)]
struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<(String, [u8; 64]), Instant>,
}

impl TokenCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        TokenCache {
            ttl,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// Whether `header` verified less than the TTL before `now`.
    fn contains(&self, header: &SubmitHeader, now: Instant) -> bool {
        self.entries
            .get(&key(header))
            .is_some_and(|&expires| now < expires)
    }

    /// Remembers that `header` verified at `now`.
    fn insert(&mut self, header: &SubmitHeader, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, &mut expires| now < expires);
        }
        // Still full: every entry is live, so drop the one nearest expiry.
        // A linear scan, but only when full of distinct valid tokens, each
        // of which cost a DNS lookup to get in.
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key(header), now + self.ttl);
    }
}

fn key(header: &SubmitHeader) -> (String, [u8; 64]) {
    (header.domain.clone(), header.token.0)
}

/// One shard's token check: the shared verifier, its time limit here, and
/// this shard's cache (a token is only valid for one log key, so caches are
/// not shared).
#[derive(Debug)]
pub(crate) struct TokenCheck {
    verifier: Arc<TokenVerifier>,
    timeout: Duration,
    cache: Mutex<TokenCache>,
}

impl TokenCheck {
    pub(crate) fn new(verifier: Arc<TokenVerifier>, timeout: Duration) -> Self {
        TokenCheck {
            verifier,
            timeout,
            cache: Mutex::new(TokenCache::new(TOKEN_CACHE_TTL, TOKEN_CACHE_ENTRIES)),
        }
    }

    /// Checks `header` for the log `log_key`: a cached success, or a DNS
    /// lookup. A DNS answer that the token is not valid (or a domain that
    /// cannot be looked up) is the submitter's mistake: 400, naming the
    /// domain and why. A failure to get an answer (SERVFAIL, unreachable
    /// name server, or none within the time limit, whatever the verifier's
    /// own, longer limit) says nothing about the token: 503, so the client
    /// retries rather than giving up on a leaf it may submit.
    pub(crate) async fn check(
        &self,
        log_key: &PublicKey,
        header: &SubmitHeader,
    ) -> Result<(), ApiError> {
        if self.lock().contains(header, Instant::now()) {
            return Ok(());
        }
        let verified = tokio::time::timeout(self.timeout, self.verifier.verify(log_key, header))
            .await
            .unwrap_or_else(|_| {
                Err(TokenError::Timeout {
                    domain: header.domain.clone(),
                    after: self.timeout,
                })
            });
        match verified {
            Ok(verified) => {
                tracing::debug!(domain = %header.domain, "{verified}");
                self.lock().insert(header, Instant::now());
                Ok(())
            }
            Err(e) => Err(refusal(&header.domain, &e)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        // The cache holds no invariant a panicking holder could break.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn refusal(domain: &str, e: &TokenError) -> ApiError {
    if e.is_retryable() {
        ApiError::Unavailable(format!(
            "could not verify the {HEADER_NAME} of domain {domain:?}, retry later: {e}"
        ))
    } else {
        ApiError::BadRequest(format!(
            "the {HEADER_NAME} of domain {domain:?} is not valid for this log: {e}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use cairn_sigsum::Signature;

    use super::*;

    fn header(domain: &str, byte: u8) -> SubmitHeader {
        SubmitHeader {
            domain: domain.to_owned(),
            token: Signature([byte; 64]),
        }
    }

    #[test]
    fn a_verified_token_is_trusted_until_its_ttl_ends() {
        let mut cache = TokenCache::new(Duration::from_secs(300), 10);
        let t0 = Instant::now();
        let h = header("example.org", 1);
        assert!(!cache.contains(&h, t0));
        cache.insert(&h, t0);
        assert!(cache.contains(&h, t0 + Duration::from_secs(299)));
        assert!(!cache.contains(&h, t0 + Duration::from_secs(300)));
    }

    #[test]
    fn entries_are_keyed_by_domain_and_token() {
        let mut cache = TokenCache::new(Duration::from_secs(300), 10);
        let t0 = Instant::now();
        cache.insert(&header("example.org", 1), t0);
        assert!(!cache.contains(&header("example.org", 2), t0));
        assert!(!cache.contains(&header("example.net", 1), t0));
    }

    #[test]
    fn a_full_cache_drops_expired_then_the_oldest_entry() {
        let ttl = Duration::from_secs(300);
        let mut cache = TokenCache::new(ttl, 2);
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        cache.insert(&header("a", 1), t0);
        cache.insert(&header("b", 2), t0 + second);
        cache.insert(&header("c", 3), t0 + 2 * second);
        assert_eq!(cache.entries.len(), 2);
        assert!(!cache.contains(&header("a", 1), t0 + 2 * second));
        assert!(cache.contains(&header("b", 2), t0 + 2 * second));
        assert!(cache.contains(&header("c", 3), t0 + 2 * second));
        // Both expired by now: pruning makes room without evicting "d".
        let later = t0 + ttl + 2 * second;
        cache.insert(&header("d", 4), later);
        cache.insert(&header("e", 5), later);
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.contains(&header("d", 4), later));
        assert!(cache.contains(&header("e", 5), later));
    }
}
