//! C2SP https-bastion (<https://c2sp.org/https-bastion>, sigsum-protocol.md
//! §8): lets a witness that accepts no inbound connections still answer
//! `add-checkpoint` synchronously. Production Sigsum logs run a bastion per
//! log that their witnesses dial out to.
//!
//! The protocol, as implemented here:
//!
//! * A backend dials the bastion with TLS 1.3 only, ALPN `bastion/0`, and a
//!   (self-signed) Ed25519 client certificate; it verifies the bastion's
//!   certificate as usual. Then it *serves* HTTP/2 on that connection: the
//!   bastion is the HTTP/2 client. Cairn uses the witness key as the backend
//!   key, as litewitness does (the spec's Appendix A shows the signed
//!   messages are domain-separated).
//! * Clients call `https://<bastion>/<hex SHA-256(backend public key)>/<path>`;
//!   the bastion forwards `/<path>` to that backend with one
//!   `X-Forwarded-For` header. With an allow-list, an unknown key hash is
//!   421 and a known but disconnected backend 503; without one it cannot
//!   tell the two apart and answers 502.
//!
//! Modules:
//! * [`backend`] — [`serve_backend`], [`Backend`]: the witness side, with
//!   reconnects and capped exponential backoff.
//! * [`bastion`] — [`Bastion`]: the proxy, one listener for both roles.
//! * [`config`] — [`BastionFileConfig`], the TOML file of `cairnd bastion`.
//! * [`tls`] — certificates, the backend key check, PEM loading.

pub mod backend;
pub mod bastion;
pub mod config;
pub mod tls;

pub use backend::{
    Backend, BackendConfig, BackendError, BastionConnection, ConnectionEnd, serve_backend,
};
pub use bastion::{Bastion, BastionConfig, BastionError, Limits};
pub use config::{BastionFileConfig, ConfigError, LimitsFile};
pub use tls::{BASTION_ALPN, TlsError, load_certificates, load_private_key};
