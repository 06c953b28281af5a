//! Shared test fixtures: a private CA with a certificate for 127.0.0.1, the
//! derived Sigsum scenario's witness, its add-checkpoint requests, and the
//! collector's client trusting the CA.

#![allow(dead_code)] // each test file uses a different subset

use std::sync::Arc;
use std::time::Duration;

use cairn_collector::{WitnessClient, WitnessError, add_checkpoint_url};
use cairn_roots::Roots;
use cairn_sigsum::{PublicKey, SigningKey};
use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::cosignature::cosignature_from_witness_response;
use cairn_witness::{AddCheckpointRequest, KnownLog, Witness, WitnessConfig, WitnessState};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// A private CA and a server certificate it issued for `127.0.0.1` and
/// `localhost`.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Cairn test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("params")
                .signed_by(&leaf_key, &ca)
                .expect("leaf");
        Pki {
            ca: ca.der().clone(),
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        }
    }

    /// The collector's witness client, trusting this CA.
    pub fn witness_client(&self) -> WitnessClient {
        let roots = Roots::bundled()
            .with_certificates(vec![self.ca.clone()])
            .expect("CA is a usable root");
        WitnessClient::with_roots(Duration::from_secs(10), &roots).expect("client")
    }
}

/// The derived deterministic Sigsum scenario (testdata/vectors/derived).
pub struct Scenario {
    json: Value,
}

impl Scenario {
    pub fn load() -> Scenario {
        Scenario {
            json: cairn_testvectors::json("derived/sigsum-v1-deterministic.json"),
        }
    }

    fn str(&self, ptr: &str) -> &str {
        self.json
            .pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("vector field {ptr}"))
    }

    /// witness1's signing key; also its bastion backend key.
    pub fn witness_key(&self) -> SigningKey {
        SigningKey::from_seed(&cairn_testvectors::unhex32(
            self.str("/keys/witness1/seed_hex"),
        ))
    }

    /// witness1 with state in `dir`, cosigning the scenario's log.
    pub fn witness(&self, dir: &std::path::Path) -> Arc<Witness> {
        let log = KnownLog::sigsum(&PublicKey(cairn_testvectors::unhex32(
            self.str("/keys/log/public_key_hex"),
        )));
        let config = WitnessConfig {
            name: self.str("/keys/witness1/note_key_name").to_owned(),
            key: self.witness_key(),
            logs: vec![log],
        };
        let state = WitnessState::open(dir).expect("state dir");
        Arc::new(Witness::new(config, state, || 1_700_000_000).expect("witness"))
    }

    /// Request body `i`: 0→4, 4→7, 7→7.
    pub fn request(&self, i: usize) -> Vec<u8> {
        self.str(&format!("/add_checkpoint_requests/{i}/request_body"))
            .as_bytes()
            .to_vec()
    }
}

/// Sends request body `body` to the witness at submission prefix `prefix`
/// with the collector's client; on 200 checks the cosignature is `witness`'s
/// on the request's checkpoint.
pub async fn add_checkpoint(
    client: &WitnessClient,
    prefix: &str,
    witness: &PublicKey,
    body: &[u8],
) -> Result<(), WitnessError> {
    let req = AddCheckpointRequest::parse(body).expect("request");
    let url = add_checkpoint_url(prefix).expect("url");
    let response = client
        .add_checkpoint(&url, req.old_size, &req.proof, req.note)
        .await?;
    let signed = SignedCheckpoint::parse(req.note).expect("note");
    cosignature_from_witness_response(&witness.0, signed.checkpoint(), &response)
        .expect("a valid cosignature");
    Ok(())
}

/// The rustls server configuration for the PKI's certificate.
pub fn server_tls(pki: &Pki, alpn: &[&[u8]]) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(pki.chain.clone(), pki.key.clone_key())
    .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}
