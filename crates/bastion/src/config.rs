//! The TOML configuration of a bastion process (`cairnd bastion --config`).
//!
//! ```toml
//! listen = "0.0.0.0:443"
//! certificate = "/etc/cairn/bastion/fullchain.pem"
//! private_key = "/etc/cairn/bastion/key.pem"
//! # Omit to admit any Ed25519 backend (then 502 for every unroutable hash).
//! allowed_backends = ["<64 lowercase hex digits: SHA-256 of the witness key>"]
//!
//! [limits]
//! request_timeout_seconds = 30
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_sigsum::KeyHash;
use serde::Deserialize;

use crate::bastion::{BastionConfig, Limits};
use crate::tls::{TlsError, load_certificates, load_private_key};

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this structure.
    #[error("invalid bastion configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or malformed.
    #[error("invalid bastion configuration: {0}")]
    Invalid(String),
    /// The certificate or key file is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The bastion's configuration file. Paths are used as written by this
/// type; `cairnd bastion` resolves relative ones against the directory of
/// the configuration file before use, as its other roles do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BastionFileConfig {
    /// Address for clients and backends alike, e.g. `"0.0.0.0:443"`.
    pub listen: SocketAddr,
    /// PEM file with the TLS certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM file with the leaf's private key.
    pub private_key: PathBuf,
    /// Lowercase hex SHA-256 hashes of the backends' Ed25519 public keys.
    /// Absent: any backend may connect, and the bastion answers 502 for
    /// every hash it cannot route (the spec's rule when it cannot tell an
    /// unknown key from a disconnected one). Present: 421 for hashes not
    /// listed, 503 for listed backends that are not connected.
    #[serde(default)]
    pub allowed_backends: Option<Vec<String>>,
    /// Size, time and connection limits; every field has a default.
    #[serde(default)]
    pub limits: LimitsFile,
}

/// `[limits]`: the file form of [`Limits`], with units in the names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    /// Largest forwarded request body. Default 65536.
    pub max_request_body_bytes: usize,
    /// Largest relayed response body. Default 65536.
    pub max_response_body_bytes: usize,
    /// Limit on one proxied request. Default 30.
    pub request_timeout_seconds: u64,
    /// Limit on a TLS handshake. Default 10.
    pub handshake_timeout_seconds: u64,
    /// Open connections, clients and backends together. Default 1024.
    pub max_connections: usize,
    /// HTTP/2 ping interval towards backends. Default 15.
    pub keepalive_seconds: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        let d = Limits::default();
        LimitsFile {
            max_request_body_bytes: d.max_request_body,
            max_response_body_bytes: d.max_response_body,
            request_timeout_seconds: d.request_timeout.as_secs(),
            handshake_timeout_seconds: d.handshake_timeout.as_secs(),
            max_connections: d.max_connections,
            keepalive_seconds: d.keepalive.as_secs(),
        }
    }
}

impl LimitsFile {
    /// The limits, refusing zeros (which would make the bastion useless).
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let fields = [
            ("max_request_body_bytes", self.max_request_body_bytes as u64),
            (
                "max_response_body_bytes",
                self.max_response_body_bytes as u64,
            ),
            ("request_timeout_seconds", self.request_timeout_seconds),
            ("handshake_timeout_seconds", self.handshake_timeout_seconds),
            ("max_connections", self.max_connections as u64),
            ("keepalive_seconds", self.keepalive_seconds),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("limits.{name} must not be 0")));
        }
        Ok(Limits {
            max_request_body: self.max_request_body_bytes,
            max_response_body: self.max_response_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_seconds),
            max_connections: self.max_connections,
            keepalive: Duration::from_secs(self.keepalive_seconds),
        })
    }
}

impl BastionFileConfig {
    /// Reads and parses `path` (no certificate is loaded yet).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses TOML text and validates the allow-list and limits.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: BastionFileConfig = toml::from_str(text)?;
        config.allowed_backends()?;
        config.limits.limits()?;
        Ok(config)
    }

    /// The allow-list as key hashes; each must be 64 lowercase hex digits,
    /// the form clients put in URLs.
    pub fn allowed_backends(&self) -> Result<Option<HashSet<KeyHash>>, ConfigError> {
        let Some(list) = &self.allowed_backends else {
            return Ok(None);
        };
        list.iter()
            .map(|hex| {
                let lowercase = hex.bytes().all(|b| !b.is_ascii_uppercase());
                cairn_sigsum::key::parse_key_hash_hex(hex)
                    .ok()
                    .filter(|_| lowercase)
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "allowed_backends: {hex:?} is not 64 lowercase hex digits"
                        ))
                    })
            })
            .collect::<Result<HashSet<_>, _>>()
            .map(Some)
    }

    /// Loads the certificate and key files and builds a [`BastionConfig`].
    pub fn bastion_config(&self) -> Result<BastionConfig, ConfigError> {
        Ok(BastionConfig {
            certificate_chain: load_certificates(&self.certificate)?,
            private_key: load_private_key(&self.private_key)?,
            allowed_backends: self.allowed_backends()?,
            limits: self.limits.limits()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "5c0ef8e4bc97e3b5f3cb4e0bd7e3a25ef1c4b1e3b1f3fb7e0c9a1d3e2f4a5b6c";

    #[test]
    fn a_minimal_file_gets_the_default_limits_and_no_allow_list() {
        let c = BastionFileConfig::parse(
            "listen = \"127.0.0.1:8443\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\n",
        )
        .expect("valid");
        assert_eq!(c.allowed_backends().expect("valid"), None);
        assert_eq!(
            c.limits.limits().expect("valid").request_timeout,
            Limits::default().request_timeout
        );
    }

    #[test]
    fn the_allow_list_takes_lowercase_key_hashes_only() {
        let file = |hash: &str| {
            format!(
                "listen = \"127.0.0.1:8443\"\ncertificate = \"c\"\nprivate_key = \"k\"\nallowed_backends = [\"{hash}\"]\n"
            )
        };
        let c = BastionFileConfig::parse(&file(HASH)).expect("valid");
        let allowed = c.allowed_backends().expect("valid").expect("a list");
        assert!(allowed.iter().any(|h| h.to_hex() == HASH));
        for bad in [HASH.to_uppercase(), HASH[2..].to_owned()] {
            assert!(
                matches!(
                    BastionFileConfig::parse(&file(&bad)),
                    Err(ConfigError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_zero_limits_are_refused() {
        let base = "listen = \"127.0.0.1:8443\"\ncertificate = \"c\"\nprivate_key = \"k\"\n";
        assert!(matches!(
            BastionFileConfig::parse(&format!("{base}backends = []\n")),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            BastionFileConfig::parse(&format!("{base}[limits]\nmax_connections = 0\n")),
            Err(ConfigError::Invalid(_))
        ));
    }
}
