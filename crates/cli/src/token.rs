//! `cairn token`: submit tokens for per-domain rate limiting
//! (`sigsum-protocol.md` §7), with the subcommands, options and output of
//! sigsum-go's `sigsum-token`:
//!
//! * `create` prints the hex token (a signature on the log's public key),
//!   or with `--domain` the whole `sigsum-token: DOMAIN TOKEN` header line;
//! * `record` prints the zone-file line `_sigsum_v1 IN TXT "<hex key>"`;
//! * `verify` reads a token or header line and checks it against a given
//!   key and/or the keys the domain publishes in DNS; like sigsum-token it
//!   prints nothing when the token is valid (`-v` says what vouched).
//!
//! The formats and the signature come from `cairn_sigsum::token`; the DNS
//! lookup from `cairn_client::token`.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_client::Signer as _;
use cairn_client::token::{TokenError, TokenVerifier};
use cairn_sigsum::ascii::parse_hex;
use cairn_sigsum::token::{self, HEADER_NAME, SubmitHeader};
use cairn_sigsum::{PublicKey, Signature};
use clap::{Args, Subcommand};

use crate::files::{self, Input};
use crate::key_files::{read_log_key, read_public_key, read_signer};
use crate::verify::{EXIT_INVALID, EXIT_USAGE, EXIT_VALID};

/// Largest token input read by `verify`: a header line is under 400 bytes.
const MAX_TOKEN_INPUT_BYTES: u64 = 4096;

/// The DNS port assumed when `--dns-server` gives only an address.
const DNS_PORT: u16 = 53;

/// `cairn token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a submit token for a log (as sigsum-token create).
    ///
    /// The token is the rate-limit key's signature on the log's public key.
    /// Prints it as 128 hex characters, or with --domain as a complete
    /// `sigsum-token: DOMAIN TOKEN` HTTP header line.
    Create(CreateArgs),
    /// Print a public key as a TXT record in zone-file format (as
    /// sigsum-token record): `_sigsum_v1 IN TXT "<hex key>"`.
    ///
    /// Publish it under the domain named in your tokens, so that the record's
    /// name is `_sigsum_v1.<domain>`.
    Record(RecordArgs),
    /// Verify a submit token (as sigsum-token verify).
    ///
    /// The input is a hex token or a `sigsum-token: DOMAIN TOKEN` header
    /// line. A header's domain (or --domain) is checked in DNS: the token
    /// is valid if one of the first 10 TXT records at `_sigsum_v1.DOMAIN`
    /// (or `_sigsum_v0.DOMAIN` if that name does not exist) is a key that
    /// verifies it. With -k the token is checked against that key too. A
    /// bare token needs --domain or -k.
    ///
    /// Prints nothing if the token is valid (with -v: what vouched for it,
    /// on standard error). Exit status 0 if the token is valid, 1 if it is
    /// not (the message says what failed), 2 on usage, input or DNS errors.
    Verify(VerifyArgs),
}

/// `cairn token create` arguments.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The rate-limit private key that signs the token: an unencrypted
    /// OpenSSH private key (or a deprecated raw hex seed); or an OpenSSH
    /// public key whose private key is in ssh-agent ($SSH_AUTH_SOCK).
    #[arg(short = 'k', long = "signing-key", value_name = "FILE")]
    signing_key: PathBuf,
    /// The log's public key: an OpenSSH public key file (as sigsum-token
    /// -l/--log-key reads it), or a file holding 64 hex characters.
    #[arg(
        short = 'l',
        long = "log-key",
        visible_alias = "log",
        value_name = "FILE"
    )]
    log_key: PathBuf,
    /// Print a complete `sigsum-token: DOMAIN TOKEN` header line for this
    /// domain (without the `_sigsum_v1.` label).
    #[arg(short = 'd', long = "domain", value_name = "DOMAIN")]
    domain: Option<String>,
    /// Output file (default: standard output); replaced atomically.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `cairn token record` arguments.
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The rate-limit public key (OpenSSH public key file).
    #[arg(short = 'k', long = "key", value_name = "FILE")]
    key: PathBuf,
    /// Output file (default: standard output); replaced atomically.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `cairn token verify` arguments.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The token (128 hex characters) or header line; `-` or nothing reads
    /// it from standard input.
    #[arg(value_name = "TOKEN")]
    token: Option<String>,
    /// The log's public key: an OpenSSH public key file (as sigsum-token
    /// -l/--log-key reads it), or a file holding 64 hex characters.
    #[arg(
        short = 'l',
        long = "log-key",
        visible_alias = "log",
        value_name = "FILE"
    )]
    log_key: PathBuf,
    /// Also require that this rate-limit public key (OpenSSH public key
    /// file) verifies the token; no DNS lookup unless a domain is given.
    #[arg(short = 'k', long = "key", value_name = "FILE")]
    key: Option<PathBuf>,
    /// The submitter's domain: looked up for a bare token; for a header,
    /// it must equal the header's domain (ignoring ASCII case).
    #[arg(short = 'd', long = "domain", value_name = "DOMAIN")]
    domain: Option<String>,
    /// Ask this name server (ADDR or ADDR:PORT, default port 53) instead of
    /// the system's resolvers (/etc/resolv.conf).
    #[arg(long = "dns-server", value_name = "ADDR", value_parser = parse_dns_server)]
    dns_server: Option<SocketAddr>,
    /// Print nothing; the result is only the exit status.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
}

/// Runs a `cairn token` subcommand and returns its exit status; `verbose`
/// is the count of `-v`.
pub fn run(cmd: TokenCommand, verbose: u8) -> ExitCode {
    let result = match cmd {
        TokenCommand::Create(args) => create(&args),
        TokenCommand::Record(args) => record(&args),
        TokenCommand::Verify(args) => return verify(&args, verbose),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn token: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let signer = read_signer(&args.signing_key)?.signer;
    let log_key = read_log_key(&Input::Path(args.log_key.clone()))?;
    let token = signer
        .sign(&token::signed_bytes(&log_key))
        .context("signing the token")?;
    let text = match &args.domain {
        None => format!("{token}\n"),
        Some(domain) => {
            let header = SubmitHeader {
                domain: domain.clone(),
                token,
            };
            let value = header.to_header_value();
            // A domain with a space (or an empty one) would make a header
            // no log can parse.
            SubmitHeader::parse(&value).with_context(|| format!("domain {domain:?}"))?;
            format!("{HEADER_NAME}: {value}\n")
        }
    };
    files::write_output(args.output.as_deref(), &text)
}

fn record(args: &RecordArgs) -> anyhow::Result<()> {
    let key = read_public_key(&Input::Path(args.key.clone()))?;
    files::write_output(
        args.output.as_deref(),
        &format!("{}\n", token::dns_txt_record_line(&key)),
    )
}

/// Why `verify` did not say "valid".
enum Outcome {
    Invalid(String),
    Unusable(anyhow::Error),
}

fn verify(args: &VerifyArgs, verbose: u8) -> ExitCode {
    let (code, message) = match check(args) {
        // Silent on success, as sigsum-token verify and `cairn key verify`.
        Ok(confirmation) => (EXIT_VALID, (verbose > 0).then_some(confirmation)),
        Err(Outcome::Invalid(msg)) => (EXIT_INVALID, Some(format!("invalid token: {msg}"))),
        Err(Outcome::Unusable(e)) => (EXIT_USAGE, Some(format!("error: {e:#}"))),
    };
    if let Some(message) = message
        && !args.quiet
    {
        eprintln!("cairn token verify: {message}");
    }
    ExitCode::from(code)
}

/// Checks the token; on success says what vouched for it.
fn check(args: &VerifyArgs) -> Result<String, Outcome> {
    let log_key = read_log_key(&Input::Path(args.log_key.clone())).map_err(Outcome::Unusable)?;
    let input = read_token_input(args.token.as_deref()).map_err(Outcome::Unusable)?;
    let (domain, token) = parse_token_input(&input, args.domain.as_deref())?;
    let mut vouched = Vec::new();
    if let Some(path) = &args.key {
        let key = read_public_key(&Input::Path(path.clone())).map_err(Outcome::Unusable)?;
        if !token::verify(&key, &log_key, &token) {
            return Err(Outcome::Invalid(format!(
                "the key in {} does not verify it for log key hash {}",
                path.display(),
                log_key.key_hash()
            )));
        }
        vouched.push(format!("the key in {}", path.display()));
    }
    match domain {
        Some(domain) => {
            let header = SubmitHeader { domain, token };
            let verified = verify_in_dns(args.dns_server, &log_key, &header)?;
            vouched.push(format!("a key at {}", verified.name));
        }
        None if vouched.is_empty() => {
            return Err(Outcome::Unusable(anyhow::anyhow!(
                "a bare token needs --domain (to look up its keys) or -k (a key to check it with)"
            )));
        }
        None => {}
    }
    Ok(format!("valid: verified by {}", vouched.join(" and ")))
}

fn verify_in_dns(
    dns_server: Option<SocketAddr>,
    log_key: &PublicKey,
    header: &SubmitHeader,
) -> Result<cairn_client::token::Verified, Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Outcome::Unusable)?;
    let result = runtime.block_on(async {
        let verifier = match dns_server {
            Some(addr) => TokenVerifier::with_name_server(addr)?,
            None => TokenVerifier::from_system_config()?,
        };
        verifier.verify(log_key, header).await
    });
    result.map_err(|e: TokenError| {
        let what = format!("domain {}: {e}", header.domain);
        if e.is_rejection() {
            Outcome::Invalid(what)
        } else {
            Outcome::Unusable(anyhow::anyhow!(what))
        }
    })
}

/// The token argument, or standard input for `-` or no argument.
fn read_token_input(arg: Option<&str>) -> anyhow::Result<String> {
    match arg {
        Some(t) if t != "-" => Ok(t.to_owned()),
        _ => {
            let mut buf = String::new();
            std::io::stdin()
                .lock()
                .take(MAX_TOKEN_INPUT_BYTES + 1)
                .read_to_string(&mut buf)
                .context("reading the token from standard input")?;
            if buf.len() as u64 > MAX_TOKEN_INPUT_BYTES {
                bail!("token input is larger than {MAX_TOKEN_INPUT_BYTES} bytes");
            }
            Ok(buf)
        }
    }
}

/// The domain to look up (if any) and the token, from a bare hex token or
/// a `sigsum-token: DOMAIN TOKEN` line (as sigsum-token verify reads
/// them: a colon means a header line, whose name is case-insensitive).
fn parse_token_input(
    input: &str,
    domain_arg: Option<&str>,
) -> Result<(Option<String>, Signature), Outcome> {
    let Some((name, value)) = input.split_once(':') else {
        let token = parse_hex::<64>(input.trim().as_bytes())
            .map_err(|e| Outcome::Unusable(anyhow::anyhow!("token: {e}")))?;
        return Ok((domain_arg.map(str::to_owned), Signature(token)));
    };
    if !name.trim().eq_ignore_ascii_case(HEADER_NAME) {
        return Err(Outcome::Unusable(anyhow::anyhow!(
            "expected a bare hex token or a {HEADER_NAME}: header line, got a {:?} header",
            name.trim()
        )));
    }
    let value = value
        .trim_start_matches([' ', '\t'])
        .trim_end_matches(['\r', '\n']);
    let header = SubmitHeader::parse(value)
        .map_err(|e| Outcome::Unusable(anyhow::anyhow!("{HEADER_NAME} header: {e}")))?;
    if let Some(d) = domain_arg
        && !d.eq_ignore_ascii_case(&header.domain)
    {
        return Err(Outcome::Invalid(format!(
            "the header names domain {:?}, not {d:?}",
            header.domain
        )));
    }
    Ok((Some(header.domain), header.token))
}

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, DNS_PORT)))
        .map_err(|_| format!("expected ADDR or ADDR:PORT (e.g. 127.0.0.1:5353), got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;

    fn token() -> Signature {
        token::sign(
            &SigningKey::from_seed(&[0x52; 32]),
            &SigningKey::from_seed(&[0x4c; 32]).public_key(),
        )
    }

    fn parsed(input: &str, domain: Option<&str>) -> (Option<String>, Signature) {
        match parse_token_input(input, domain) {
            Ok(v) => v,
            Err(Outcome::Invalid(m)) => panic!("invalid: {m}"),
            Err(Outcome::Unusable(e)) => panic!("unusable: {e:#}"),
        }
    }

    #[test]
    fn header_lines_are_read_as_sigsum_token_verify_reads_them() {
        let t = token();
        let line = format!("Sigsum-Token:\t example.org {t}\r\n");
        assert_eq!(parsed(&line, None), (Some("example.org".into()), t));
        assert_eq!(
            parsed(&line, Some("EXAMPLE.org")),
            (Some("example.org".into()), t)
        );
        assert!(matches!(
            parse_token_input(&line, Some("other.org")),
            Err(Outcome::Invalid(_))
        ));
        assert!(matches!(
            parse_token_input(&format!("x-token: example.org {t}"), None),
            Err(Outcome::Unusable(_))
        ));
    }

    #[test]
    fn bare_tokens_take_the_domain_from_the_option() {
        let t = token();
        let upper = format!("  {}\n", t.to_string().to_uppercase());
        assert_eq!(parsed(&upper, None), (None, t));
        assert_eq!(parsed(&upper, Some("a.org")), (Some("a.org".into()), t));
        assert!(matches!(
            parse_token_input("abcd", None),
            Err(Outcome::Unusable(_))
        ));
    }

    #[test]
    fn dns_servers_default_to_port_53() {
        assert_eq!(
            parse_dns_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert!(parse_dns_server("localhost").is_err());
    }
}
