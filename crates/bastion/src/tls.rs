//! TLS pieces shared by both sides: the backend's self-signed Ed25519
//! certificate, the bastion's check of it, and PEM loading.
//!
//! Both sides use rustls with the aws-lc-rs provider, which reqwest already
//! builds for the collector, so the process carries one crypto backend.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, RwLock};

use cairn_sigsum::{KeyHash, PublicKey, SigningKey};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

/// The ALPN protocol a backend offers to the bastion (C2SP https-bastion).
pub const BASTION_ALPN: &[u8] = b"bastion/0";

/// RFC 8410 §10.3: the DER of an Ed25519 `OneAsymmetricKey` (PKCS#8 v1) is
/// this fixed prefix followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// RFC 8410 §4: the DER of an Ed25519 `SubjectPublicKeyInfo` is this fixed
/// prefix followed by the 32-byte public key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why certificates or keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable item.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rcgen could not make the backend certificate.
    #[error("cannot make the backend certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration (e.g. a key that does not match).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider both sides use.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate in a PEM file, in order (leaf first for a chain).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The PKCS#8 encoding of `key`, as rustls and rcgen take private keys.
fn pkcs8(key: &SigningKey) -> PrivatePkcs8KeyDer<'static> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&key.seed());
    PrivatePkcs8KeyDer::from(der)
}

/// A self-signed client certificate for `key` and the matching private key,
/// as the spec's Appendix B makes one: the bastion only looks at the public
/// key, so the certificate carries no names and rcgen's default validity.
pub(crate) fn backend_certificate(
    key: &SigningKey,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let der = pkcs8(key);
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Bastion backend");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key_pair)?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(der)))
}

/// The Ed25519 public key of a certificate, or `None` for other key types.
pub(crate) fn ed25519_key(cert: &CertificateDer<'_>) -> Option<PublicKey> {
    let parsed = ParsedCertificate::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let key = spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX)?;
    Some(PublicKey(key.try_into().ok()?))
}

/// Which backends may connect: `None` admits any Ed25519 key. Shared between
/// the TLS verifier and the router so that changing it affects both.
pub(crate) type AllowList = Arc<RwLock<Option<HashSet<KeyHash>>>>;

/// Accepts a backend's client certificate if it holds an Ed25519 key whose
/// hash is on the allow-list. The chain is not checked: the spec lets the
/// certificate be self-signed, and the TLS 1.3 `CertificateVerify` signature
/// (checked below) is what proves the backend holds the key.
#[derive(Debug)]
pub(crate) struct BackendKeyVerifier {
    pub(crate) allowed: AllowList,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for BackendKeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = ed25519_key(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        let allowed = self.allowed.read().unwrap_or_else(|e| e.into_inner());
        match &*allowed {
            Some(set) if !set.contains(&key.key_hash()) => {
                tracing::info!(backend = %key.key_hash(), "refused a backend not on the allow-list");
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
            _ => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Backend connections are TLS 1.3 only: client certificates are sent
        // in the clear before 1.3.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_certificate_carries_the_signing_key() {
        let key = SigningKey::from_seed(&[7; 32]);
        let (cert, _) = backend_certificate(&key).expect("certificate");
        assert_eq!(ed25519_key(&cert), Some(key.public_key()));
    }

    #[test]
    fn a_non_ed25519_certificate_has_no_backend_key() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["x.example".to_owned()])
            .expect("params")
            .self_signed(&p256)
            .expect("cert");
        assert_eq!(ed25519_key(cert.der()), None);
    }
}
