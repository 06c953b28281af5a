//! The certificate authorities Cairn trusts when it dials out over TLS: to
//! HTTPS witnesses and bastions, S3, tile URLs and logs. [`Roots`] is the
//! web PKI roots compiled into the binary (Mozilla's, from the
//! `webpki-root-certs` crate) plus any extra roots the operator configures
//! for a private CA, and nothing else.
//!
//! The host's root store is never consulted. A log must start, and trust
//! the same authorities, in a minimal container without `/etc/ssl` as on a
//! full distribution: with the HTTP client's default verifier, which loads
//! the platform store, `cairnd dev` failed at start in such an image even
//! though every witness URL was plain `http`. A root store that changes
//! with the host's packages is also one more thing that differs between
//! the replicas of a shard.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Largest extra-roots file read ([`Roots::with_pem_file`]): a bundle of
/// some hundreds of certificates, far more than a private CA needs.
pub const MAX_ROOTS_FILE: u64 = 1 << 20;

/// Why extra roots cannot be used. Always fatal: a role refuses to start
/// rather than silently trust less (or nothing) for a connection the
/// operator configured.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// The roots file could not be read.
    #[error("reading root certificates from {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The roots file is larger than [`MAX_ROOTS_FILE`].
    #[error("root certificates file {path} is larger than {MAX_ROOTS_FILE} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// The PEM text holds no certificate, or one that is malformed or not
    /// usable as a trust anchor.
    #[error("root certificates: {0}")]
    Invalid(String),
}

/// A set of trusted root certificates. Cheap to clone (shared); built once
/// at start and handed to every client that needs it.
#[derive(Clone, Debug)]
pub struct Roots {
    certificates: Arc<Vec<CertificateDer<'static>>>,
    extra: usize,
}

static BUNDLED: LazyLock<Roots> = LazyLock::new(|| Roots {
    certificates: Arc::new(webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec()),
    extra: 0,
});

impl Default for Roots {
    /// [`Roots::bundled`].
    fn default() -> Self {
        Self::bundled()
    }
}

impl Roots {
    /// The web PKI roots compiled into this binary, and no others.
    pub fn bundled() -> Self {
        BUNDLED.clone()
    }

    /// These roots plus every certificate in the PEM text `pem` (a bundle of
    /// `CERTIFICATE` blocks; other blocks are ignored). Text that is empty
    /// or only whitespace adds nothing. Otherwise it must hold at least one
    /// certificate, and each must be usable as a trust anchor, so that a
    /// key file or a mistyped path is refused rather than trusted as
    /// nothing.
    pub fn with_pem(&self, pem: &[u8]) -> Result<Self, RootsError> {
        if pem.iter().all(u8::is_ascii_whitespace) {
            return Ok(self.clone());
        }
        let certificates = CertificateDer::pem_slice_iter(pem)
            .enumerate()
            .map(|(i, item)| {
                item.map_err(|e| {
                    RootsError::Invalid(format!("certificate {} is not valid PEM: {e}", i + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if certificates.is_empty() {
            return Err(RootsError::Invalid(
                "no CERTIFICATE block in the PEM text".into(),
            ));
        }
        self.with_certificates(certificates)
    }

    /// These roots plus `added` (DER), each of which must be usable as a
    /// trust anchor.
    pub fn with_certificates(
        &self,
        added: Vec<CertificateDer<'static>>,
    ) -> Result<Self, RootsError> {
        for (i, cert) in added.iter().enumerate() {
            // The same check the TLS stack makes when it loads the root,
            // done now so that a bad root fails at start, not at the first
            // connection.
            RootCertStore::empty().add(cert.clone()).map_err(|e| {
                RootsError::Invalid(format!("certificate {} is not a usable root: {e}", i + 1))
            })?;
        }
        let mut certificates = Vec::with_capacity(self.certificates.len() + added.len());
        certificates.extend(self.certificates.iter().cloned());
        let extra = self.extra + added.len();
        certificates.extend(added);
        Ok(Roots {
            certificates: Arc::new(certificates),
            extra,
        })
    }

    /// [`Roots::with_pem`] of the contents of `path`, which may be at most
    /// [`MAX_ROOTS_FILE`] bytes.
    pub fn with_pem_file(&self, path: &Path) -> Result<Self, RootsError> {
        let read = |source| RootsError::Read {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_ROOTS_FILE {
            return Err(RootsError::TooLarge {
                path: path.display().to_string(),
            });
        }
        let pem = std::fs::read(path).map_err(read)?;
        self.with_pem(&pem).map_err(|e| match e {
            RootsError::Invalid(reason) => {
                RootsError::Invalid(format!("{}: {reason}", path.display()))
            }
            other => other,
        })
    }

    /// How many certificates were added to the bundled ones.
    pub fn extra(&self) -> usize {
        self.extra
    }

    /// Every trusted root, bundled first.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }

    /// The roots as a rustls store, for connections made without an HTTP
    /// client (the bastion's backend).
    pub fn rustls_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        // Extra roots were checked in `with_pem`; the bundled ones are
        // checked by this crate's tests, so nothing is dropped here.
        store.add_parsable_certificates(self.certificates.iter().cloned());
        store
    }

    /// The roots as `reqwest` certificates.
    pub fn reqwest_certificates(&self) -> Vec<reqwest::Certificate> {
        self.certificates
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect()
    }

    /// A `reqwest` client builder that trusts exactly these roots (and not
    /// the host's store, which `reqwest` would otherwise load at build).
    pub fn reqwest_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_certs_only(self.reqwest_certificates())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate")
            .pem()
    }

    #[test]
    fn every_bundled_root_is_usable_by_rustls() {
        let roots = Roots::bundled();
        assert!(
            roots.certificates().len() > 100,
            "the web PKI has >100 roots"
        );
        assert_eq!(roots.rustls_store().len(), roots.certificates().len());
        assert_eq!(
            roots.reqwest_certificates().len(),
            roots.certificates().len()
        );
        assert_eq!(roots.extra(), 0);
    }

    #[test]
    fn a_client_builds_without_the_hosts_root_store() {
        // With the platform verifier this fails where /etc/ssl is absent;
        // with explicit roots it never looks there.
        Roots::bundled()
            .reqwest_builder()
            .build()
            .expect("client builds from the bundled roots alone");
    }

    #[test]
    fn extra_roots_are_added_to_the_bundled_ones() {
        let bundle = format!("{}{}", certificate_pem("a.test"), certificate_pem("b.test"));
        let bundled = Roots::bundled();
        let roots = bundled.with_pem(bundle.as_bytes()).expect("valid");
        assert_eq!(roots.extra(), 2);
        assert_eq!(roots.certificates().len(), bundled.certificates().len() + 2);
        assert_eq!(roots.rustls_store().len(), roots.certificates().len());
        assert_eq!(bundled.extra(), 0, "the bundled set is not changed");
    }

    #[test]
    fn whitespace_adds_nothing() {
        for pem in [&b""[..], b"\n  \n"] {
            let roots = Roots::bundled().with_pem(pem).expect("valid");
            assert_eq!(roots.extra(), 0);
        }
    }

    #[test]
    fn pem_without_a_usable_certificate_is_refused() {
        let key_only = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let broken = "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n";
        let not_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        for pem in [key_only.as_str(), "not a certificate", broken, not_der] {
            let err = Roots::bundled()
                .with_pem(pem.as_bytes())
                .expect_err("refused");
            assert!(matches!(err, RootsError::Invalid(_)), "{pem}: {err}");
        }
    }

    #[test]
    fn a_roots_file_is_read_checked_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, certificate_pem("ca.test")).expect("write");
        let roots = Roots::bundled().with_pem_file(&good).expect("valid");
        assert_eq!(roots.extra(), 1);

        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "hello").expect("write");
        let err = Roots::bundled().with_pem_file(&bad).expect_err("refused");
        assert!(err.to_string().contains("bad.pem"), "{err}");

        let missing = dir.path().join("missing.pem");
        let err = Roots::bundled()
            .with_pem_file(&missing)
            .expect_err("refused");
        assert!(matches!(err, RootsError::Read { .. }), "{err}");

        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b' '; MAX_ROOTS_FILE as usize + 1]).expect("write");
        let err = Roots::bundled().with_pem_file(&big).expect_err("refused");
        assert!(matches!(err, RootsError::TooLarge { .. }), "{err}");
    }
}
