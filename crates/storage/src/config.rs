//! Where a shard's tiles live: [`ObjectStoreConfig`] (a local directory or an
//! S3 bucket, [`S3Config`]) and the [`TileStore`] constructors that open
//! them, [`TileStore::s3`] and [`TileStore::open`].

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_roots::Roots;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::http::HttpBuilder;
use object_store::{Certificate, ClientOptions, RetryConfig};
use serde::Deserialize;

use crate::error::StorageError;
use crate::key::normalise_prefix;
use crate::store::{CheckpointFence, Headers, TileStore, TileStoreOptions};

/// Default [`S3Config::region`].
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Default directory of [`ObjectStoreConfig::Local`] (relative paths are
/// resolved by the embedding role, usually against its data directory).
pub const DEFAULT_LOCAL_DIR: &str = "tiles";

/// Limit on one HTTP request to S3, inside `object_store`. Below
/// [`ATTEMPT_TIMEOUT`](crate::ATTEMPT_TIMEOUT) so that a stuck request is
/// retried by `object_store` before this crate's own attempt is cut off.
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `object_store` keeps retrying one S3 request (at most
/// [`S3_MAX_RETRIES`] times) before the failure reaches this crate's own
/// [retries](crate::RETRY_ATTEMPTS).
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);

/// Most retries of one S3 request inside `object_store`.
pub const S3_MAX_RETRIES: usize = 3;

/// Where a shard's tiles are stored: the part of a role's configuration
/// that the roles embed (TOML: a `[local]`, an `[s3]` or an `[http]` table).
///
/// Default: `local` with `dir = "tiles"` ([`DEFAULT_LOCAL_DIR`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// A local directory ([`TileStore::local`]); the checkpoint write is
    /// fenced by an OS file lock, so it is safe between processes on one
    /// host only.
    Local {
        /// The directory; created if missing. Relative paths are resolved
        /// by the caller of [`TileStore::open`] (it opens them as given,
        /// i.e. against the working directory). Default `tiles`.
        #[serde(default = "default_local_dir")]
        dir: PathBuf,
    },
    /// An S3 bucket or S3-compatible server ([`TileStore::s3`]); the
    /// checkpoint write is a conditional put, safe between hosts.
    S3(S3Config),
    /// A log's tiles as published over HTTP(S) ([`TileStore::http`]):
    /// read-only, for roles that only read (frontend, collector).
    Http(HttpConfig),
}

/// A log's tile URL: the base under which the shards' objects are served
/// (`<url>/<shard prefix>/checkpoint`, `.../tile/...`) by any static web
/// server, CDN or Cairn frontend. Read-only.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The base URL, `http://` or `https://`, e.g.
    /// `https://tiles.example.org/logs/`. Required.
    pub url: String,
    /// PEM file of root certificates trusted for an `https` URL in addition
    /// to the web PKI roots bundled with Cairn (a private CA). The host's
    /// root store is never used. Relative paths are taken relative to the
    /// file this table is in. Default: none (the bundled roots only).
    #[serde(default)]
    pub roots: Option<PathBuf>,
}

impl HttpConfig {
    /// A tile URL with the bundled roots.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            roots: None,
        }
    }
}

fn default_local_dir() -> PathBuf {
    PathBuf::from(DEFAULT_LOCAL_DIR)
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        Self::Local {
            dir: default_local_dir(),
        }
    }
}

/// An S3 bucket (AWS or an S3-compatible server such as MinIO, Ceph RGW or
/// moto) holding shards' tiles, each under `<prefix>/<shard prefix>`.
///
/// The server must support conditional writes (`If-None-Match: *` and
/// `If-Match: <etag>` on PutObject; AWS S3 does since 2024): tiles are
/// created with the former, the checkpoint is updated with the latter, so
/// several writers on different hosts can never overwrite a tile or move
/// the checkpoint back.
///
/// Secrets are never written in the configuration: credentials come from
/// files it names ([`access_key_id_file`](Self::access_key_id_file) and
/// [`secret_access_key_file`](Self::secret_access_key_file), both or
/// neither), else from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and optionally `AWS_SESSION_TOKEN`), else from
/// the EC2 instance metadata service.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Base URL of the S3 server, e.g. `http://127.0.0.1:9000`, for servers
    /// other than AWS. Default: none (AWS, at the endpoint of `region`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket's region (also signed into every request by non-AWS
    /// servers). Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket; it must exist. Required.
    pub bucket: String,
    /// Key prefix in the bucket put before every shard prefix (e.g. `logs`
    /// gives `logs/<shard>/checkpoint`); `/`-separated `[A-Za-z0-9._-]`
    /// segments. Default: none (shards at the bucket root).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Allow a plain-HTTP `endpoint` (a local test server); otherwise only
    /// HTTPS is used. Default `false`.
    #[serde(default)]
    pub allow_http: bool,
    /// Address the bucket as `https://<bucket>.<endpoint>` (virtual-hosted
    /// style) instead of `https://<endpoint>/<bucket>` (path style, which
    /// most S3-compatible servers expect). Default `false` (path style).
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// File holding the access key id (surrounding whitespace ignored).
    /// Set together with `secret_access_key_file`. Default: none
    /// (credentials from the environment).
    #[serde(default)]
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret access key (surrounding whitespace ignored).
    /// Set together with `access_key_id_file`. Default: none.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// PEM file of root certificates trusted for an `https` endpoint in
    /// addition to the web PKI roots bundled with Cairn (a server with a
    /// private CA). The host's root store is never used. Default: none (the
    /// bundled roots only).
    #[serde(default)]
    pub roots: Option<PathBuf>,
}

fn default_region() -> String {
    DEFAULT_S3_REGION.to_owned()
}

impl S3Config {
    /// A configuration for `bucket` with every other field at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            region: default_region(),
            bucket: bucket.into(),
            prefix: None,
            allow_http: false,
            virtual_hosted_style: false,
            access_key_id_file: None,
            secret_access_key_file: None,
            roots: None,
        }
    }

    /// The normalised key prefix of the shard `shard_prefix` in the bucket:
    /// [`prefix`](Self::prefix), then `shard_prefix`. Fails with
    /// [`StorageError::InvalidKey`] like [`TileStore::new`].
    pub fn shard_prefix(&self, shard_prefix: &str) -> Result<String, StorageError> {
        let shard = normalise_prefix(shard_prefix)?;
        let base = normalise_prefix(self.prefix.as_deref().unwrap_or(""))?;
        let joined = match (base.is_empty(), shard.is_empty()) {
            (true, _) => shard,
            (false, true) => base,
            (false, false) => format!("{base}/{shard}"),
        };
        // Re-checked: the two together may exceed the length limit.
        normalise_prefix(&joined)
    }

    /// The static credentials to sign with, if any: from the files the
    /// configuration names, else from `env` (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). `None` leaves
    /// `object_store` to ask the instance metadata service. Fails with
    /// [`StorageError::InvalidConfig`] if only one of a pair is set or a
    /// value is empty, [`StorageError::CredentialFile`] if a file cannot be
    /// read.
    pub(crate) fn credentials(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, StorageError> {
        match (&self.access_key_id_file, &self.secret_access_key_file) {
            (Some(id), Some(secret)) => {
                return Ok(Some(Credentials {
                    access_key_id: read_secret(id)?,
                    secret_access_key: read_secret(secret)?,
                    session_token: None,
                }));
            }
            (None, None) => {}
            _ => {
                return Err(StorageError::InvalidConfig {
                    reason: "access_key_id_file and secret_access_key_file must be set together"
                        .into(),
                });
            }
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            })),
            (None, None) => Ok(None),
            _ => Err(StorageError::InvalidConfig {
                reason: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into(),
            }),
        }
    }

    /// The `object_store` builder for this bucket, signing with
    /// `credentials`, with conditional puts enabled and `object_store`'s own
    /// timeouts and retries bounded ([`S3_REQUEST_TIMEOUT`],
    /// [`S3_MAX_RETRIES`], [`S3_RETRY_TIMEOUT`]).
    fn builder(&self, credentials: Option<Credentials>, roots: &Roots) -> AmazonS3Builder {
        let retry = RetryConfig {
            max_retries: S3_MAX_RETRIES,
            retry_timeout: S3_RETRY_TIMEOUT,
            ..RetryConfig::default()
        };
        // Client options first: `with_allow_http` edits them.
        let mut builder = AmazonS3Builder::new()
            .with_client_options(client_options(roots).with_timeout(S3_REQUEST_TIMEOUT))
            .with_retry(retry)
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_allow_http(self.allow_http)
            .with_virtual_hosted_style_request(self.virtual_hosted_style)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(c) = credentials {
            builder = builder
                .with_access_key_id(c.access_key_id)
                .with_secret_access_key(c.secret_access_key);
            if let Some(token) = c.session_token {
                builder = builder.with_token(token);
            }
        }
        builder
    }
}

/// Static S3 credentials.
pub(crate) struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// `object_store` client options that trust exactly `roots`: never the
/// host's root store, which `object_store` would otherwise load when the
/// client is built (and fail to, in a container without one).
pub fn client_options(roots: &Roots) -> ClientOptions {
    roots
        .certificates()
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .fold(
            ClientOptions::new().with_no_system_certificates(true),
            ClientOptions::with_root_certificate,
        )
}

/// The bundled roots plus those in `file`, if any.
fn read_roots(file: Option<&FsPath>) -> Result<Roots, StorageError> {
    let roots = Roots::bundled();
    match file {
        None => Ok(roots),
        Some(path) => roots
            .with_pem_file(path)
            .map_err(|e| StorageError::InvalidConfig {
                reason: e.to_string(),
            }),
    }
}

/// The trimmed contents of the secret file `path`, which must not be empty.
fn read_secret(path: &FsPath) -> Result<String, StorageError> {
    let text = std::fs::read_to_string(path).map_err(|source| StorageError::CredentialFile {
        path: path.display().to_string(),
        source,
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(StorageError::InvalidConfig {
            reason: format!("credential file {} is empty", path.display()),
        });
    }
    Ok(value.to_owned())
}

impl TileStore {
    /// A store for the shard `shard_prefix` in the S3 bucket `config`
    /// describes, under `<config.prefix>/<shard_prefix>`.
    ///
    /// Tiles are written with `If-None-Match: *` and the checkpoint with
    /// `If-Match` on the ETag read (`object_store`'s
    /// `S3ConditionalPut::ETagMatch`), so several writers, on any hosts,
    /// keep the create-only and never-shrinks guarantees of
    /// [`TileStore::new`].
    ///
    /// Reads credential files and the environment, but performs no network
    /// IO: a missing bucket or bad credentials show on the first request
    /// (as [`StorageError::Backend`]). Fails with
    /// [`StorageError::InvalidKey`] for a bad prefix,
    /// [`StorageError::InvalidConfig`] or [`StorageError::CredentialFile`]
    /// for unusable credentials, and [`StorageError::Backend`] if
    /// `object_store` refuses the configuration (e.g. a malformed endpoint).
    pub fn s3(
        config: &S3Config,
        shard_prefix: &str,
        options: TileStoreOptions,
    ) -> Result<Self, StorageError> {
        let prefix = config.shard_prefix(shard_prefix)?;
        let credentials = config.credentials(|name| std::env::var(name).ok())?;
        let roots = read_roots(config.roots.as_deref())?;
        let s3 = config
            .builder(credentials, &roots)
            .build()
            .map_err(|source| StorageError::Backend {
                op: "open",
                path: format!("s3 bucket {}", config.bucket),
                source,
            })?;
        Ok(Self::build(
            Arc::new(s3),
            prefix,
            &options,
            CheckpointFence::Conditional,
            Headers::Stored,
        ))
    }

    /// A read-only store of the shard `shard_prefix` as published under
    /// `config.url` (objects at `<url>/<shard_prefix>/checkpoint` and so on),
    /// read with plain GETs — from a static web server, a CDN or a Cairn
    /// frontend. Every read is verified as for any store; every write is
    /// refused with [`StorageError::ReadOnly`].
    ///
    /// Each request is limited to [`S3_REQUEST_TIMEOUT`] and retried as for
    /// S3. HTTPS trusts the web PKI roots bundled with Cairn plus
    /// [`HttpConfig::roots`]. Reads only that file; fails with [`StorageError::InvalidConfig`] for a URL
    /// that is not `http(s)://`, and [`StorageError::InvalidKey`] for a bad
    /// prefix.
    pub fn http(
        config: &HttpConfig,
        shard_prefix: &str,
        options: TileStoreOptions,
    ) -> Result<Self, StorageError> {
        let prefix = normalise_prefix(shard_prefix)?;
        let url = config.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(StorageError::InvalidConfig {
                reason: format!("tile URL {url:?} is not an http:// or https:// URL"),
            });
        }
        let retry = RetryConfig {
            max_retries: S3_MAX_RETRIES,
            retry_timeout: S3_RETRY_TIMEOUT,
            ..RetryConfig::default()
        };
        let roots = read_roots(config.roots.as_deref())?;
        let store = HttpBuilder::new()
            .with_url(url)
            .with_client_options(
                client_options(&roots)
                    .with_timeout(S3_REQUEST_TIMEOUT)
                    .with_allow_http(true),
            )
            .with_retry(retry)
            .build()
            .map_err(|source| StorageError::Backend {
                op: "open",
                path: url.to_owned(),
                source,
            })?;
        Ok(Self::build(
            Arc::new(store),
            prefix,
            &options,
            CheckpointFence::ReadOnly,
            Headers::NotStored,
        ))
    }

    /// The store `config` describes for the shard `shard_prefix`:
    /// [`TileStore::local_with_options`], [`TileStore::s3`] or
    /// [`TileStore::http`], with their errors.
    pub fn open(
        config: &ObjectStoreConfig,
        shard_prefix: &str,
        options: TileStoreOptions,
    ) -> Result<Self, StorageError> {
        match config {
            ObjectStoreConfig::Local { dir } => {
                Self::local_with_options(dir, shard_prefix, options)
            }
            ObjectStoreConfig::S3(s3) => Self::s3(s3, shard_prefix, options),
            ObjectStoreConfig::Http(http) => Self::http(http, shard_prefix, options),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn environment_credentials_need_both_halves() {
        let config = S3Config::new("b");
        let c = config
            .credentials(env(&[
                ("AWS_ACCESS_KEY_ID", "id"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_SESSION_TOKEN", "token"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                c.access_key_id.as_str(),
                c.secret_access_key.as_str(),
                c.session_token.as_deref()
            ),
            ("id", "secret", Some("token"))
        );
        assert!(config.credentials(env(&[])).unwrap().is_none());
        let err = config
            .credentials(env(&[("AWS_ACCESS_KEY_ID", "id")]))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::InvalidConfig { .. }), "{err:?}");
    }

    #[test]
    fn credential_files_win_over_the_environment_and_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), "file-id\n").unwrap();
        std::fs::write(dir.path().join("secret"), "  file-secret\n").unwrap();
        let mut config = S3Config::new("b");
        config.access_key_id_file = Some(dir.path().join("id"));
        config.secret_access_key_file = Some(dir.path().join("secret"));
        let c = config
            .credentials(env(&[
                ("AWS_ACCESS_KEY_ID", "env-id"),
                ("AWS_SECRET_ACCESS_KEY", "env-secret"),
                ("AWS_SESSION_TOKEN", "env-token"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(c.access_key_id, "file-id");
        assert_eq!(c.secret_access_key, "file-secret");
        assert_eq!(c.session_token, None);

        // One file alone, a missing file and an empty file are refused.
        config.secret_access_key_file = None;
        let err = config.credentials(env(&[])).err().unwrap();
        assert!(matches!(err, StorageError::InvalidConfig { .. }), "{err:?}");
        config.secret_access_key_file = Some(dir.path().join("missing"));
        let err = config.credentials(env(&[])).err().unwrap();
        assert!(
            matches!(err, StorageError::CredentialFile { .. }),
            "{err:?}"
        );
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        config.secret_access_key_file = Some(dir.path().join("empty"));
        let err = config.credentials(env(&[])).err().unwrap();
        assert!(matches!(err, StorageError::InvalidConfig { .. }), "{err:?}");
    }

    #[test]
    fn toml_configs_take_defaults_and_refuse_unknown_fields_and_inline_secrets() {
        let config: ObjectStoreConfig = toml::from_str("[s3]\nbucket = \"b\"\n").unwrap();
        assert_eq!(config, ObjectStoreConfig::S3(S3Config::new("b")));
        let config: ObjectStoreConfig = toml::from_str("[local]\n").unwrap();
        assert_eq!(config, ObjectStoreConfig::default());
        let config: ObjectStoreConfig = toml::from_str("[local]\ndir = \"/srv/t\"\n").unwrap();
        assert_eq!(
            config,
            ObjectStoreConfig::Local {
                dir: "/srv/t".into()
            }
        );
        for bad in [
            "[s3]\nbucket = \"b\"\nsecret_access_key = \"inline\"\n",
            "[s3]\nbucket = \"b\"\nregoin = \"eu-west-1\"\n",
            "[s3]\nregion = \"eu-west-1\"\n",
            "[gcs]\nbucket = \"b\"\n",
            "[local]\ndir = \"x\"\n[s3]\nbucket = \"b\"\n",
            "[http]\n",
            "[http]\nurl = \"http://x/\"\nbucket = \"b\"\n",
        ] {
            assert!(
                toml::from_str::<ObjectStoreConfig>(bad).is_err(),
                "accepted: {bad}"
            );
        }
    }

    #[test]
    fn a_tile_url_is_read_only_and_must_be_http() {
        let config: ObjectStoreConfig =
            toml::from_str("[http]\nurl = \"http://127.0.0.1:1/logs/\"\n").unwrap();
        let store = TileStore::open(&config, "dev", TileStoreOptions::default()).unwrap();
        assert!(store.is_read_only());
        for url in ["ftp://x/", "/srv/tiles", ""] {
            let http = HttpConfig::new(url);
            let err = TileStore::http(&http, "dev", TileStoreOptions::default()).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidConfig { .. }),
                "{url}: {err:?}"
            );
        }
    }

    #[test]
    fn the_bucket_prefix_goes_before_the_shard_prefix() {
        let mut config = S3Config::new("b");
        assert_eq!(config.shard_prefix("/dev/").unwrap(), "dev");
        config.prefix = Some("logs/prod/".into());
        assert_eq!(config.shard_prefix("dev").unwrap(), "logs/prod/dev");
        assert_eq!(config.shard_prefix("").unwrap(), "logs/prod");
        config.prefix = Some("../x".into());
        let err = config.shard_prefix("dev").unwrap_err();
        assert!(matches!(err, StorageError::InvalidKey { .. }), "{err:?}");
    }
}
