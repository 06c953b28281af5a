//! The configuration file of a standalone witness (`cairnd witness --config
//! FILE`): a TOML file whose schema, and manual, is [`WitnessFileConfig`].
//!
//! ```toml
//! listen = "0.0.0.0:7380"
//! key_name = "example.org/witness"
//! key_file = "witness.key"          # OpenSSH private key, as sigsum-key writes it
//! state_dir = "state"
//!
//! [[log]]                           # a Sigsum log: its hex Ed25519 public key
//! public_key = "4b3f…64 hex…"
//!
//! [[log]]                           # a Sigsum log: its OpenSSH public key file
//! public_key_file = "logs/example.pub"
//!
//! [[log]]                           # any C2SP log: its vkey (origin = key name)
//! vkey = "example.com/log+1a2b3c4d+AR…"
//!
//! [[log]]                           # a log whose origin is not its key name
//! vkey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
//! origin = "go.sum database tree"
//!
//! [bastion]                         # optional: also serve through a bastion
//! address = "bastion.example.org:443"
//!
//! [http]                            # optional: connection and timeout limits
//! max_connections_per_ip = 16
//! ```
//!
//! [`WitnessSettings::load`] reads the file, checks everything that can be
//! checked before the witness starts (key name, every log key, duplicate
//! origins, limits) and resolves relative paths against the directory that
//! holds the file. Each error names the field it is about; unknown fields
//! are errors, so a misspelt option never silently takes its default.
//! The private key is read by the binary, which also decides whether to
//! generate it.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_sigsum::key::{self, MAX_KEY_FILE_BYTES};
use cairn_sigsum::{KeyHash, SigningKey};
use cairn_tlog::EMPTY_ROOT;
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::note::validate_key_name;
use serde::Deserialize;

use crate::config::{KnownLog, WitnessConfig};
use crate::http::{HttpLimits, MAX_IN_FLIGHT, REQUEST_TIMEOUT};

/// Largest configuration file read, in bytes. This also bounds the number
/// of `[[log]]` entries.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// Largest accepted `max_in_flight`.
pub const MAX_IN_FLIGHT_LIMIT: usize = 65_536;

/// Largest accepted `request_timeout_seconds`: an hour.
pub const MAX_REQUEST_TIMEOUT_SECONDS: u64 = 3600;

/// A standalone witness's configuration file, as written. Relative paths
/// are relative to the directory holding the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessFileConfig {
    /// Address and port to serve HTTP on, e.g. `"0.0.0.0:7380"`. Required.
    /// Port 0 picks a free port; the address actually bound is printed at
    /// start. The witness answers `POST /add-checkpoint` at the root, so
    /// its submission prefix (the URL logs are configured with) is
    /// `http://<this address>`; `/metrics`, `/livez` and `/readyz` are
    /// served on the same address.
    pub listen: SocketAddr,

    /// The witness's signed-note key name, which names it on every
    /// cosignature line and in its vkey, e.g. `"example.org/witness"`.
    /// Required. Must be a valid key name: not empty, no white space, no
    /// `+`. Keep it stable: verifiers compute the key ID from it.
    pub key_name: String,

    /// The witness's Ed25519 private key: an unencrypted OpenSSH private
    /// key file (as `sigsum-key generate` or `cairn key generate` write
    /// it). Required. If the file does not exist the witness refuses to
    /// start, unless started once with `--generate-key`, which creates it
    /// (mode 0600) and its public key `<key_file>.pub`. The key must serve
    /// this witness only: a cosignature does not commit to the key name.
    pub key_file: PathBuf,

    /// Directory of the witness's durable state: the size and root of the
    /// latest checkpoint cosigned for each log, one file per log. Required;
    /// created if missing. Losing it lets the witness be rolled back, so it
    /// belongs on durable storage; only one process may use it at a time.
    pub state_dir: PathBuf,

    /// Most `add-checkpoint` requests served at once; more are answered 503
    /// at once rather than queued. Default 256, at most 65536.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,

    /// Longest time one request may take, body upload included, in
    /// seconds; a slower request is answered 503. Default 30, at most 3600.
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,

    /// The logs this witness cosigns for, one `[[log]]` table each; at
    /// least one. Origins must be distinct.
    #[serde(default, rename = "log")]
    pub logs: Vec<LogEntry>,

    /// Limits of the HTTP listener against hostile clients: header, idle
    /// and request-body timeouts (a body that stalls or trickles is
    /// answered 408), connection caps in total and per client address,
    /// the shutdown grace. Optional; every key has a default, see
    /// [`cairn_http::HttpConfig`]. Keep `max_connections_per_ip ×
    /// http2_max_concurrent_streams` below `max_in_flight`, so that one
    /// client cannot take every request slot.
    #[serde(default)]
    pub http: cairn_http::HttpConfig,

    /// Also serve the witness through a C2SP https-bastion: the witness
    /// dials out to it and logs reach it at
    /// `https://<bastion>/<hex SHA-256 of the witness public key>`, for a
    /// witness that accepts no inbound connections. Optional; `listen` is
    /// served either way.
    #[serde(default)]
    pub bastion: Option<BastionTable>,
}

/// `[bastion]`: the https-bastion a witness connects to. The witness key is
/// also the key it presents to the bastion (as litewitness does), so the
/// bastion routes by the hash of the key that logs already know.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BastionTable {
    /// The bastion's `host:port` (`[v6]:port` for IPv6), e.g.
    /// `"bastion.example.org:443"`. Required.
    pub address: String,

    /// The name the bastion's certificate must carry, if not the host of
    /// `address` (e.g. when `address` is an IP address). It is also the
    /// host of the URL printed for logs.
    pub server_name: Option<String>,

    /// A PEM file of root certificates trusted for the bastion in addition
    /// to the Mozilla roots, for a bastion with a private CA or a
    /// self-signed certificate. Optional; relative to the config file's
    /// directory (in [`WitnessSettings`] it is already resolved).
    pub roots: Option<PathBuf>,
}

impl BastionTable {
    /// The host and port of `address`, without IPv6 brackets.
    fn host_port(&self) -> Result<(&str, u16), String> {
        let (host, port) = self.address.rsplit_once(':').ok_or("expected host:port")?;
        let port = port
            .parse::<u16>()
            .map_err(|_| "the port is not a number from 0 to 65535")?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        Ok((host, port))
    }

    /// The submission prefix logs use to reach a witness with public key
    /// hash `key_hash` through this (checked) bastion:
    /// `https://<server_name or host>[:port]/<key_hash>` (no port for 443).
    pub fn witness_url(&self, key_hash: &KeyHash) -> String {
        let (host, port) = self.host_port().unwrap_or((self.address.as_str(), 443));
        let host = self.server_name.as_deref().unwrap_or(host);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port = if port == 443 {
            String::new()
        } else {
            format!(":{port}")
        };
        format!("https://{host}{port}/{}", key_hash.to_hex())
    }
}

fn default_max_in_flight() -> usize {
    MAX_IN_FLIGHT
}

fn default_request_timeout_seconds() -> u64 {
    REQUEST_TIMEOUT.as_secs()
}

/// One `[[log]]` table: a log the witness cosigns for, given by exactly one
/// of `public_key`, `public_key_file` or `vkey`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// A Sigsum log's Ed25519 public key as 64 hex characters (as in a
    /// Sigsum policy's `log` line). Its origin, and the key name on its
    /// checkpoint signatures, is `sigsum.org/v1/tree/<hex key hash>`.
    pub public_key: Option<String>,

    /// A file holding one Sigsum log's OpenSSH public key
    /// (`ssh-ed25519 AAAA…`, as `sigsum-key` writes `<key>.pub`). Origin as
    /// for `public_key`.
    pub public_key_file: Option<PathBuf>,

    /// A C2SP signed-note vkey of type Ed25519 (`<name>+<key ID>+<base64>`),
    /// as `sigsum-key to-vkey` prints it. The origin is the key name unless
    /// `origin` says otherwise.
    pub vkey: Option<String>,

    /// The checkpoint origin of a `vkey` log whose origin differs from its
    /// key name (Go's checksum database: `go.sum database tree`). Only
    /// allowed with `vkey`. Default: the vkey's name.
    pub origin: Option<String>,
}

/// A checked configuration: everything `cairnd witness` needs but the
/// private key.
#[derive(Clone, Debug)]
pub struct WitnessSettings {
    /// Where to serve HTTP.
    pub listen: SocketAddr,
    /// The witness's signed-note key name (valid).
    pub key_name: String,
    /// The private key file, resolved against the config file's directory.
    pub key_file: PathBuf,
    /// The state directory, resolved against the config file's directory.
    pub state_dir: PathBuf,
    /// Request limits for [`crate::http::router_with_limits`].
    pub limits: HttpLimits,
    /// The logs, in file order, with distinct origins.
    pub logs: Vec<KnownLog>,
    /// The HTTP listener's limits (checked), for `cairn_http::Server`.
    pub http: cairn_http::HttpConfig,
    /// The bastion to serve through as well, if any (`roots` resolved).
    pub bastion: Option<BastionTable>,
}

/// Why a configuration file was refused. `Display` names the field (and,
/// for syntax errors, the line).
#[derive(Debug, thiserror::Error)]
pub enum FileConfigError {
    /// The file (or a file it names) could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_FILE_BYTES`].
    #[error("{path} is larger than {MAX_CONFIG_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not TOML, an unknown or missing field, or a value of the wrong type;
    /// toml's message quotes the line and names the field.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A field's value is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `key_name` or `[[log]] #2 public_key` (entries
        /// count from 1 in file order).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl FileConfigError {
    fn invalid(field: impl Into<String>, reason: impl ToString) -> Self {
        FileConfigError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl WitnessSettings {
    /// Reads and checks the configuration file at `path` (see
    /// [`WitnessSettings::from_toml_str`]); relative paths in it are
    /// relative to its directory.
    pub fn load(path: &Path) -> Result<Self, FileConfigError> {
        let text = read_bounded(path, MAX_CONFIG_FILE_BYTES)?;
        let text = String::from_utf8(text)
            .map_err(|_| FileConfigError::invalid(path.display().to_string(), "not UTF-8 text"))?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Self::from_toml_str(&text, base_dir)
    }

    /// Parses and checks a configuration: the key name, the limits, every
    /// log (reading `public_key_file`s, relative to `base_dir`), and that
    /// origins are distinct and at least one log is listed. Does not touch
    /// the key file or the state directory.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Self, FileConfigError> {
        let file: WitnessFileConfig = toml::from_str(text)?;
        validate_key_name(&file.key_name).map_err(|e| FileConfigError::invalid("key_name", e))?;
        for (field, path) in [("key_file", &file.key_file), ("state_dir", &file.state_dir)] {
            if path.as_os_str().is_empty() {
                return Err(FileConfigError::invalid(field, "must not be empty"));
            }
        }
        if !(1..=MAX_IN_FLIGHT_LIMIT).contains(&file.max_in_flight) {
            return Err(FileConfigError::invalid(
                "max_in_flight",
                format!("must be between 1 and {MAX_IN_FLIGHT_LIMIT}"),
            ));
        }
        if !(1..=MAX_REQUEST_TIMEOUT_SECONDS).contains(&file.request_timeout_seconds) {
            return Err(FileConfigError::invalid(
                "request_timeout_seconds",
                format!("must be between 1 and {MAX_REQUEST_TIMEOUT_SECONDS}"),
            ));
        }
        file.http.validate().map_err(|e| match e {
            cairn_http::ConfigError::BadSetting { field, reason } => {
                FileConfigError::invalid(format!("http.{field}"), reason)
            }
            other => FileConfigError::invalid("http", other),
        })?;
        if file.logs.is_empty() {
            return Err(FileConfigError::invalid(
                "log",
                "no [[log]] entries: a witness must cosign for at least one log",
            ));
        }
        let mut logs = Vec::with_capacity(file.logs.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, entry) in file.logs.iter().enumerate() {
            let n = i + 1;
            let log = entry.known_log(n, base_dir)?;
            if let Some(first) = seen.insert(log.origin.clone(), n) {
                return Err(FileConfigError::invalid(
                    format!("[[log]] #{n}"),
                    format!(
                        "origin {:?} is also the origin of [[log]] #{first}; each log is listed once",
                        log.origin
                    ),
                ));
            }
            logs.push(log);
        }
        let bastion = file.bastion.map(|b| b.checked(base_dir)).transpose()?;
        Ok(WitnessSettings {
            listen: file.listen,
            key_name: file.key_name,
            key_file: base_dir.join(file.key_file),
            state_dir: base_dir.join(file.state_dir),
            limits: HttpLimits {
                max_in_flight: file.max_in_flight,
                request_timeout: Duration::from_secs(file.request_timeout_seconds),
            },
            logs,
            http: file.http,
            bastion,
        })
    }

    /// The witness configuration with its private key.
    pub fn witness_config(&self, key: SigningKey) -> WitnessConfig {
        WitnessConfig {
            name: self.key_name.clone(),
            key,
            logs: self.logs.clone(),
        }
    }
}

impl BastionTable {
    /// Checks the address and server name, and resolves `roots`.
    fn checked(self, base_dir: &Path) -> Result<BastionTable, FileConfigError> {
        self.host_port()
            .map_err(|reason| FileConfigError::invalid("bastion.address", reason))?;
        if self
            .server_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(FileConfigError::invalid(
                "bastion.server_name",
                "must not be empty",
            ));
        }
        if self
            .roots
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(FileConfigError::invalid(
                "bastion.roots",
                "must not be empty",
            ));
        }
        Ok(BastionTable {
            roots: self.roots.map(|p| base_dir.join(p)),
            ..self
        })
    }
}

impl LogEntry {
    /// The log this entry describes; `n` is its 1-based position, for errors.
    fn known_log(&self, n: usize, base_dir: &Path) -> Result<KnownLog, FileConfigError> {
        let field = |name: &str| format!("[[log]] #{n} {name}");
        let given: Vec<&str> = [
            ("public_key", self.public_key.is_some()),
            ("public_key_file", self.public_key_file.is_some()),
            ("vkey", self.vkey.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if given.len() != 1 {
            return Err(FileConfigError::invalid(
                format!("[[log]] #{n}"),
                format!(
                    "needs exactly one of public_key, public_key_file or vkey, found {}",
                    if given.is_empty() {
                        "none".to_owned()
                    } else {
                        given.join(" and ")
                    }
                ),
            ));
        }
        if self.origin.is_some() && self.vkey.is_none() {
            return Err(FileConfigError::invalid(
                field("origin"),
                "only allowed with vkey: a Sigsum log's origin is derived from its key",
            ));
        }
        let log = if let Some(hex) = &self.public_key {
            let key = key::parse_public_key_hex(hex.trim_ascii())
                .map_err(|e| FileConfigError::invalid(field("public_key"), e))?;
            KnownLog::sigsum(&key)
        } else if let Some(path) = &self.public_key_file {
            let path = base_dir.join(path);
            let text = read_bounded(&path, MAX_KEY_FILE_BYTES as u64)?;
            let keys = key::parse_public_key_file(&text).map_err(|e| {
                FileConfigError::invalid(
                    field("public_key_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            let [(key, _)] = keys.as_slice() else {
                return Err(FileConfigError::invalid(
                    field("public_key_file"),
                    format!(
                        "{} holds {} keys; list each log in its own [[log]]",
                        path.display(),
                        keys.len()
                    ),
                ));
            };
            KnownLog::sigsum(key)
        } else {
            let vkey = self.vkey.as_deref().unwrap_or_default();
            match &self.origin {
                Some(origin) => KnownLog::from_vkey_with_origin(origin.as_str(), vkey),
                None => KnownLog::from_vkey(vkey),
            }
            .map_err(|e| FileConfigError::invalid(field("vkey"), e))?
        };
        // The witness would refuse such an origin too, but without saying
        // which entry it came from.
        Checkpoint::new(log.origin.as_str(), 0, EMPTY_ROOT)
            .validate()
            .map_err(|e| FileConfigError::invalid(field("origin"), e))?;
        Ok(log)
    }
}

/// Reads a whole file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileConfigError> {
    let read_err = |source| FileConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > limit {
        return Err(FileConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::PublicKey;

    const GO_SUMDB_VKEY: &str =
        "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

    fn log_key(seed: u8) -> PublicKey {
        SigningKey::from_seed(&[seed; 32]).public_key()
    }

    fn config(logs: &str) -> String {
        format!(
            "listen = \"127.0.0.1:7380\"\n\
             key_name = \"example.org/witness\"\n\
             key_file = \"witness.key\"\n\
             state_dir = \"state\"\n\
             {logs}"
        )
    }

    fn parse(text: &str) -> Result<WitnessSettings, FileConfigError> {
        WitnessSettings::from_toml_str(text, Path::new("/etc/cairn"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn every_kind_of_log_entry_is_read_with_defaults_and_resolved_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file_key = log_key(2);
        std::fs::write(
            dir.path().join("log.pub"),
            key::format_public_key_file(&file_key),
        )
        .expect("write");
        let text = config(&format!(
            "[[log]]\npublic_key = \"{}\"\n\
             [[log]]\npublic_key_file = \"log.pub\"\n\
             [[log]]\nvkey = \"{GO_SUMDB_VKEY}\"\norigin = \"go.sum database tree\"\n",
            log_key(1).to_hex()
        ));
        let s = WitnessSettings::from_toml_str(&text, dir.path()).expect("valid");
        assert_eq!(s.listen, "127.0.0.1:7380".parse().expect("addr"));
        assert_eq!(s.key_name, "example.org/witness");
        assert_eq!(s.key_file, dir.path().join("witness.key"));
        assert_eq!(s.state_dir, dir.path().join("state"));
        assert_eq!(s.limits, HttpLimits::default());
        assert_eq!(s.http, cairn_http::HttpConfig::default());
        assert_eq!(
            s.logs,
            vec![
                KnownLog::sigsum(&log_key(1)),
                KnownLog::sigsum(&file_key),
                KnownLog::from_vkey_with_origin("go.sum database tree", GO_SUMDB_VKEY)
                    .expect("vkey"),
            ]
        );
        let w = s.witness_config(SigningKey::from_seed(&[9; 32]));
        assert_eq!((w.name.as_str(), w.logs.len()), ("example.org/witness", 3));
    }

    #[test]
    fn absolute_paths_and_limits_are_taken_as_given() {
        let text = "listen = \"[::1]:0\"\nkey_name = \"w\"\nkey_file = \"/keys/w.key\"\n\
                    state_dir = \"/var/lib/w\"\nmax_in_flight = 8\nrequest_timeout_seconds = 5\n\
                    [[log]]\nvkey = \"sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8\"\n";
        let s = parse(text).expect("valid");
        assert_eq!(s.key_file, Path::new("/keys/w.key"));
        assert_eq!(s.state_dir, Path::new("/var/lib/w"));
        assert_eq!(
            s.limits,
            HttpLimits {
                max_in_flight: 8,
                request_timeout: Duration::from_secs(5)
            }
        );
        assert_eq!(s.logs[0].origin, "sum.golang.org");
    }

    #[test]
    fn the_http_table_sets_listener_limits_and_bad_ones_are_named() {
        let log = format!("[[log]]\npublic_key = \"{}\"\n", log_key(1).to_hex());
        let s = parse(&config(&format!(
            "{log}[http]\nmax_connections_per_ip = 16\nbody_stall_timeout_ms = 2000\n"
        )))
        .expect("valid");
        assert_eq!(s.http.max_connections_per_ip, 16);
        assert_eq!(s.http.body_stall_timeout_ms, 2000);
        assert_eq!(s.http.max_connections, cairn_http::DEFAULT_MAX_CONNECTIONS);
        let err = error(&config(&format!("{log}[http]\nmax_connections = 0\n")));
        assert!(err.contains("http.max_connections"), "{err}");
        let err = error(&config(&format!("{log}[http]\nmax_conections = 5\n")));
        assert!(err.contains("unknown field `max_conections`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = error(&format!("{}cosign_all = true\n", config("")));
        assert!(err.contains("unknown field `cosign_all`"), "{err}");
        let err = error(&config(&format!(
            "[[log]]\npublic_key = \"{}\"\nurl = \"http://log\"\n",
            log_key(1).to_hex()
        )));
        assert!(err.contains("unknown field `url`"), "{err}");
    }

    #[test]
    fn missing_required_fields_are_refused_by_name() {
        let err = error("listen = \"127.0.0.1:1\"\nkey_name = \"w\"\nstate_dir = \"s\"\n");
        assert!(err.contains("missing field `key_file`"), "{err}");
    }

    #[test]
    fn an_empty_log_list_is_refused() {
        let err = error(&config(""));
        assert!(err.starts_with("log: no [[log]] entries"), "{err}");
    }

    #[test]
    fn duplicate_origins_are_refused_naming_both_entries() {
        let key = log_key(1);
        // The same log once by hex and once by its vkey: one origin.
        let vkey = key::log_vkey(&key).expect("vkey");
        let err = error(&config(&format!(
            "[[log]]\npublic_key = \"{}\"\n[[log]]\nvkey = \"{vkey}\"\n",
            key.to_hex()
        )));
        assert!(err.starts_with("[[log]] #2: origin"), "{err}");
        assert!(err.contains("also the origin of [[log]] #1"), "{err}");
    }

    #[test]
    fn bad_log_keys_are_refused_naming_the_entry_and_field() {
        let err = error(&config("[[log]]\npublic_key = \"abcd\"\n"));
        assert!(
            err.starts_with("[[log]] #1 public_key: expected 64 hex"),
            "{err}"
        );
        // A witness (cosignature/v1) vkey is not a log key.
        let err = error(&config(
            "[[log]]\nvkey = \"example.org/witness1+d7cea6f8+BMhAafoiFsbtwdUsqDqhHCZ91UQK+lJgkMpD69DKhqnP\"\n",
        ));
        assert!(err.starts_with("[[log]] #1 vkey:"), "{err}");
        let err = error(&config(
            "[[log]]\npublic_key_file = \"/nonexistent/log.pub\"\n",
        ));
        assert!(err.contains("/nonexistent/log.pub"), "{err}");
    }

    #[test]
    fn a_public_key_file_must_hold_exactly_one_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let two = format!(
            "{}{}",
            key::format_public_key_file(&log_key(1)),
            key::format_public_key_file(&log_key(2))
        );
        std::fs::write(dir.path().join("two.pub"), two).expect("write");
        let text = config("[[log]]\npublic_key_file = \"two.pub\"\n");
        let err = WitnessSettings::from_toml_str(&text, dir.path())
            .expect_err("two keys")
            .to_string();
        assert!(err.starts_with("[[log]] #1 public_key_file:"), "{err}");
        assert!(err.contains("holds 2 keys"), "{err}");
    }

    #[test]
    fn each_log_names_exactly_one_key_and_origin_only_with_a_vkey() {
        let err = error(&config("[[log]]\n"));
        assert!(err.contains("[[log]] #1: needs exactly one of"), "{err}");
        let err = error(&config(&format!(
            "[[log]]\npublic_key = \"{}\"\nvkey = \"{GO_SUMDB_VKEY}\"\n",
            log_key(1).to_hex()
        )));
        assert!(err.contains("found public_key and vkey"), "{err}");
        let err = error(&config(&format!(
            "[[log]]\npublic_key = \"{}\"\norigin = \"o\"\n",
            log_key(1).to_hex()
        )));
        assert!(
            err.starts_with("[[log]] #1 origin: only allowed with vkey"),
            "{err}"
        );
        let err = error(&config(&format!(
            "[[log]]\nvkey = \"{GO_SUMDB_VKEY}\"\norigin = \"\"\n"
        )));
        assert!(err.starts_with("[[log]] #1 origin:"), "{err}");
    }

    #[test]
    fn bad_key_names_and_limits_are_refused_by_name() {
        let logs = format!("[[log]]\nvkey = \"{GO_SUMDB_VKEY}\"\n");
        let err = error(&config(&logs).replace("example.org/witness", "bad name"));
        assert!(
            err.starts_with("key_name: key name contains white space"),
            "{err}"
        );
        let err = error(&format!("max_in_flight = 0\n{}", config(&logs)));
        assert!(err.starts_with("max_in_flight: must be between"), "{err}");
        let err = error(&format!(
            "request_timeout_seconds = 86400\n{}",
            config(&logs)
        ));
        assert!(err.starts_with("request_timeout_seconds:"), "{err}");
        let err = error(&config(&logs).replace("127.0.0.1:7380", "localhost"));
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn loading_resolves_paths_against_the_config_files_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("witness.toml");
        std::fs::write(
            &path,
            config(&format!("[[log]]\nvkey = \"{GO_SUMDB_VKEY}\"\n")),
        )
        .expect("write");
        let s = WitnessSettings::load(&path).expect("valid");
        assert_eq!(s.key_file, dir.path().join("witness.key"));
        let err = WitnessSettings::load(&dir.path().join("missing.toml"))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }

    fn with_bastion(table: &str) -> String {
        format!(
            "{}[bastion]\n{table}",
            config(&format!("[[log]]\nvkey = \"{GO_SUMDB_VKEY}\"\n"))
        )
    }

    #[test]
    fn without_a_bastion_table_the_witness_serves_only_on_listen() {
        let s = parse(&config(&format!("[[log]]\nvkey = \"{GO_SUMDB_VKEY}\"\n"))).expect("valid");
        assert_eq!(s.bastion, None);
    }

    #[test]
    fn a_bastion_table_is_read_with_roots_resolved() {
        let s = parse(&with_bastion(
            "address = \"192.0.2.7:8443\"\nserver_name = \"bastion.example.org\"\nroots = \"ca.pem\"\n",
        ))
        .expect("valid");
        assert_eq!(
            s.bastion,
            Some(BastionTable {
                address: "192.0.2.7:8443".into(),
                server_name: Some("bastion.example.org".into()),
                roots: Some(PathBuf::from("/etc/cairn/ca.pem")),
            })
        );
        let s = parse(&with_bastion(
            "address = \"b.example:443\"\nroots = \"/pki/ca.pem\"\n",
        ))
        .expect("valid");
        let b = s.bastion.expect("bastion");
        assert_eq!(
            (b.server_name, b.roots),
            (None, Some(PathBuf::from("/pki/ca.pem")))
        );
    }

    #[test]
    fn the_witness_url_names_the_bastion_and_the_key_hash() {
        let hash = log_key(5).key_hash();
        let table = |address: &str, server_name: Option<&str>| BastionTable {
            address: address.into(),
            server_name: server_name.map(Into::into),
            roots: None,
        };
        let hex = hash.to_hex();
        assert_eq!(
            table("bastion.example.org:443", None).witness_url(&hash),
            format!("https://bastion.example.org/{hex}")
        );
        assert_eq!(
            table("localhost:8443", None).witness_url(&hash),
            format!("https://localhost:8443/{hex}")
        );
        assert_eq!(
            table("192.0.2.7:443", Some("b.example")).witness_url(&hash),
            format!("https://b.example/{hex}")
        );
        assert_eq!(
            table("[2001:db8::1]:8443", None).witness_url(&hash),
            format!("https://[2001:db8::1]:8443/{hex}")
        );
    }

    #[test]
    fn bad_bastion_tables_are_refused_by_field() {
        for (table, field) in [
            (
                "address = \"bastion.example.org\"\n",
                "bastion.address: expected host:port",
            ),
            ("address = \":443\"\n", "bastion.address: the host is empty"),
            ("address = \"b:https\"\n", "bastion.address: the port"),
            (
                "address = \"b:443\"\nserver_name = \" \"\n",
                "bastion.server_name:",
            ),
            ("address = \"b:443\"\nroots = \"\"\n", "bastion.roots:"),
        ] {
            let err = error(&with_bastion(table));
            assert!(err.starts_with(field), "{table}: {err}");
        }
        let err = error(&with_bastion("address = \"b:443\"\nca = \"x\"\n"));
        assert!(err.contains("unknown field `ca`"), "{err}");
        let err = error(&with_bastion("server_name = \"b\"\n"));
        assert!(err.contains("missing field `address`"), "{err}");
    }

    #[test]
    fn oversized_config_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.toml");
        let padding = "#".repeat(MAX_CONFIG_FILE_BYTES as usize + 1);
        std::fs::write(&path, padding).expect("write");
        assert!(matches!(
            WitnessSettings::load(&path),
            Err(FileConfigError::TooLarge { .. })
        ));
    }
}
