//! Key files, byte-compatible with sigsum-go's `sigsum-key`, `sigsum-verify`
//! and `sigsum-submit` (protocol summary §10), so that users can switch
//! between those tools and Cairn's without touching their files.
//!
//! * Raw hex: 64 hex characters for a public key or key hash (policy files,
//!   the wire). Read case-insensitively, written in lowercase.
//! * OpenSSH public keys: `ssh-ed25519 <base64 blob> [comment]`, optionally
//!   preceded by the option `sigsum-policy="<name>"`; multi-key files hold one
//!   key per line. `sigsum-key` writes the comment `sigsum key`.
//! * OpenSSH private keys: the unencrypted `openssh-key-v1` format of
//!   OpenSSH's `PROTOCOL.key`, holding exactly one Ed25519 key. Written
//!   exactly as `sigsum-key generate` writes them (empty comment, 64-column
//!   base64 lines); read strictly.
//! * The deprecated private key file holding a raw hex seed, still read.
//! * Verifier keys (C2SP signed-note vkeys) for Sigsum logs and witnesses.
//!
//! Pure: the caller reads files and supplies the random check-int.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use cairn_tlog::note::{self, KeyError as NoteKeyError, VerifierKey};

use crate::crypto::{KeyHash, PublicKey, SigningKey};

/// The OpenSSH key type name of Ed25519 keys, the only type Sigsum uses.
pub const SSH_ED25519: &str = "ssh-ed25519";

/// The comment `sigsum-key` puts on the public key lines it writes.
pub const SIGSUM_KEY_COMMENT: &str = "sigsum key";

/// The name of the OpenSSH public-key option that names a Sigsum policy.
pub const POLICY_OPTION: &str = "sigsum-policy";

/// Largest key file the parsers accept, in bytes. Real key files are under
/// 1 KiB; the bound keeps a mistaken path (a disk image, say) from being
/// scanned line by line.
pub const MAX_KEY_FILE_BYTES: usize = 1 << 20;

const PRIVATE_KEY_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PRIVATE_KEY_END: &str = "-----END OPENSSH PRIVATE KEY-----";
const AUTH_MAGIC: &[u8] = b"openssh-key-v1\0";
const CIPHER_NONE: &[u8] = b"none";
const KDF_NONE: &[u8] = b"none";
/// The block size of cipher `none`; the private section is padded to it.
const NONE_BLOCK_SIZE: usize = 8;
/// sigsum-go writes private keys through Go's PEM encoder, which wraps at 64
/// columns (ssh-keygen uses 70; both are read).
const PEM_LINE_WIDTH: usize = 64;
/// Longest piece of untrusted input quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// Why a key or key file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Hex key material has the wrong length.
    #[error("expected {expected} hex characters, got {got}")]
    HexLength {
        /// Characters required (64 for keys and key hashes).
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// Hex key material contains a non-hex character.
    #[error("invalid hex character in key")]
    HexCharacter,
    /// Base64 key material does not decode.
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The input is longer than [`MAX_KEY_FILE_BYTES`].
    #[error("key file is {0} bytes, more than the limit of {MAX_KEY_FILE_BYTES}")]
    TooLarge(usize),
    /// An OpenSSH public key line has no key type field.
    #[error("empty public key line")]
    EmptyLine,
    /// The key is not an Ed25519 key (or the first field is not a key type).
    #[error("unsupported key type {0:?}, expected \"ssh-ed25519\"")]
    UnsupportedKeyType(String),
    /// The `ssh-ed25519` field is not followed by a key blob.
    #[error("missing base64 key blob after \"ssh-ed25519\"")]
    MissingKeyBlob,
    /// The decoded public key blob is not `string("ssh-ed25519") string(key)`.
    #[error("malformed ssh-ed25519 key blob: {0}")]
    BadKeyBlob(&'static str),
    /// A `sigsum-policy` option is malformed (quotes, characters, or given
    /// more than once).
    #[error(
        "invalid sigsum-policy option {0:?}: expected sigsum-policy=\"<name>\" without quotes, backslashes, spaces or control characters in the name"
    )]
    BadPolicyOption(String),
    /// A multi-key file holds no key.
    #[error("no public key found")]
    NoKeys,
    /// A multi-key file lists the same key twice.
    #[error("duplicate public key {key} (first on line {first_line})")]
    DuplicateKey {
        /// The repeated key.
        key: PublicKey,
        /// Line of its first occurrence.
        first_line: usize,
    },
    /// Keys of one file name different policies.
    #[error("conflicting policy names found in public keys: {first:?} and {second:?}")]
    ConflictingPolicyNames {
        /// The first policy name found.
        first: String,
        /// A different policy name found later.
        second: String,
    },
    /// A problem on one line of a multi-line file.
    #[error("line {line}: {reason}")]
    AtLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: Box<KeyError>,
    },
    /// No `-----BEGIN OPENSSH PRIVATE KEY-----` line where one must start.
    #[error("not an OpenSSH private key: missing \"{PRIVATE_KEY_BEGIN}\" line")]
    MissingBeginLine,
    /// No `-----END OPENSSH PRIVATE KEY-----` line.
    #[error("truncated OpenSSH private key: missing \"{PRIVATE_KEY_END}\" line")]
    MissingEndLine,
    /// Text other than whitespace after the END line.
    #[error("unexpected text after \"{PRIVATE_KEY_END}\"")]
    TextAfterEnd,
    /// The decoded private key does not start with `openssh-key-v1\0`.
    #[error("not an openssh-key-v1 private key (bad magic)")]
    BadMagic,
    /// The private key is protected by a passphrase; Sigsum tools take only
    /// unencrypted keys (use an agent for protected keys).
    #[error(
        "encrypted private key (cipher {cipher:?}, kdf {kdf:?}) is not supported; remove the passphrase or use ssh-agent"
    )]
    Encrypted {
        /// The cipher name in the file.
        cipher: String,
        /// The KDF name in the file.
        kdf: String,
    },
    /// KDF `none` with non-empty KDF options.
    #[error("kdf \"none\" with {0} bytes of kdf options")]
    KdfOptions(usize),
    /// The file holds a number of keys other than one.
    #[error("private key file holds {0} keys, exactly one is supported")]
    KeyCount(u32),
    /// A field runs past the end of its enclosing data.
    #[error("truncated private key: {0}")]
    Truncated(&'static str),
    /// Bytes follow the last field of a structure.
    #[error("unexpected bytes after {0}")]
    TrailingBytes(&'static str),
    /// The two check-ints differ: the hallmark of a wrong passphrase or a
    /// corrupted file.
    #[error("check-int mismatch ({0:#010x} != {1:#010x}): corrupt or encrypted private key")]
    CheckIntMismatch(u32, u32),
    /// The private section is not a whole number of cipher blocks.
    #[error("private section of {0} bytes is not a multiple of the block size {NONE_BLOCK_SIZE}")]
    BadAlignment(usize),
    /// Padding bytes are not 1, 2, 3, … or longer than a block.
    #[error("invalid padding after the private key")]
    BadPadding,
    /// The Ed25519 private key field is not 64 bytes (seed || public key).
    #[error("ed25519 private key field is {0} bytes, expected 64")]
    PrivateKeyLength(usize),
    /// The public key inside the private section differs from the listed
    /// public key, or from the key the seed derives.
    #[error("private key is inconsistent with its public key")]
    PublicKeyMismatch,
    /// A vkey is malformed or inconsistent (its key ID does not match its
    /// name, type and key), as judged by [`cairn_tlog::note::VerifierKey`].
    #[error("invalid vkey: {0}")]
    Vkey(#[from] NoteKeyError),
    /// A well-formed vkey whose type is neither Ed25519 (0x01) nor
    /// cosignature/v1 (0x04), so it holds no Sigsum key.
    #[error("vkey type {0:#04x} is not an Ed25519 key type (0x01 or 0x04)")]
    VkeyType(u8),
}

// --- Raw hex ---------------------------------------------------------------

/// Parses a public key written as 64 hex characters (either case). No
/// surrounding whitespace is accepted: callers strip line endings.
pub fn parse_public_key_hex(s: &str) -> Result<PublicKey, KeyError> {
    hex32(s.as_bytes()).map(PublicKey)
}

/// Formats a public key as 64 lowercase hex characters.
pub fn format_public_key_hex(key: &PublicKey) -> String {
    key.to_hex()
}

/// Parses a key hash written as 64 hex characters (either case).
pub fn parse_key_hash_hex(s: &str) -> Result<KeyHash, KeyError> {
    hex32(s.as_bytes()).map(KeyHash)
}

/// Decodes exactly 32 bytes from 64 hex characters of either case.
pub(crate) fn hex32(s: &[u8]) -> Result<[u8; 32], KeyError> {
    if s.len() != 64 {
        return Err(KeyError::HexLength {
            expected: 64,
            got: s.len(),
        });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::HexCharacter)?;
    Ok(out)
}

// --- OpenSSH public keys ---------------------------------------------------

/// One parsed OpenSSH public key line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyLine {
    /// The Ed25519 key.
    pub key: PublicKey,
    /// The name in a `sigsum-policy="<name>"` option, if present. Not checked
    /// against the named-policy syntax here: that happens when the name is
    /// looked up (see [`crate::policy::check_policy_name`]), as in sigsum-go,
    /// which accepts e.g. `aa_bb` in the option.
    pub policy_name: Option<String>,
}

/// The SSH wire encoding of an Ed25519 public key:
/// `string("ssh-ed25519") || string(key)`.
pub fn ssh_public_key_blob(key: &PublicKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(4 + SSH_ED25519.len() + 4 + 32);
    put_string(&mut blob, SSH_ED25519.as_bytes());
    put_string(&mut blob, &key.0);
    blob
}

/// Decodes [`ssh_public_key_blob`]'s output, rejecting anything else.
pub fn parse_ssh_public_key_blob(blob: &[u8]) -> Result<PublicKey, KeyError> {
    let mut r = Reader::new(blob);
    let key_type = r
        .string("key type")
        .map_err(|_| KeyError::BadKeyBlob("truncated key type"))?;
    if key_type != SSH_ED25519.as_bytes() {
        return Err(KeyError::UnsupportedKeyType(quote(key_type)));
    }
    let key = r
        .string("key")
        .map_err(|_| KeyError::BadKeyBlob("truncated key"))?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::BadKeyBlob("key is not 32 bytes"))?;
    if !r.is_empty() {
        return Err(KeyError::BadKeyBlob("trailing bytes"));
    }
    Ok(PublicKey(key))
}

/// Formats `ssh-ed25519 <base64 blob>`, followed by ` <comment>` when a
/// comment is given. No line terminator.
pub fn format_openssh_public_key(key: &PublicKey, comment: Option<&str>) -> String {
    let mut line = format!("{SSH_ED25519} {}", BASE64.encode(ssh_public_key_blob(key)));
    if let Some(c) = comment {
        line.push(' ');
        line.push_str(c);
    }
    line
}

/// The public key file exactly as `sigsum-key generate` and `from-hex`
/// write it: `ssh-ed25519 <base64 blob> sigsum key\n`.
pub fn format_public_key_file(key: &PublicKey) -> String {
    let mut s = format_openssh_public_key(key, Some(SIGSUM_KEY_COMMENT));
    s.push('\n');
    s
}

/// Parses one OpenSSH public key line:
/// `[sigsum-policy="<name>" ]ssh-ed25519 <base64 blob>[ <comment>]`.
///
/// Fields are separated by runs of spaces or tabs; surrounding whitespace
/// and one line ending (`\n` or `\r\n`) are ignored. The comment may be
/// anything. No other OpenSSH option is accepted, and the option at most
/// once. The base64 must be canonical.
pub fn parse_openssh_public_key(line: &[u8]) -> Result<PublicKeyLine, KeyError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|f| !f.is_empty());
    let mut first = fields.next().ok_or(KeyError::EmptyLine)?;
    let mut policy_name = None;
    if first.starts_with(POLICY_OPTION.as_bytes()) {
        policy_name = Some(parse_policy_option(first)?);
        first = fields.next().ok_or(KeyError::MissingKeyBlob)?;
    }
    if first != SSH_ED25519.as_bytes() {
        if first.starts_with(POLICY_OPTION.as_bytes()) {
            // Only reachable with a second option: the first was consumed.
            return Err(KeyError::BadPolicyOption(quote(first)));
        }
        return Err(KeyError::UnsupportedKeyType(quote(first)));
    }
    let blob = fields.next().ok_or(KeyError::MissingKeyBlob)?;
    let key = parse_ssh_public_key_blob(&BASE64.decode(blob)?)?;
    Ok(PublicKeyLine { key, policy_name })
}

/// Parses the option field `sigsum-policy="<name>"` of a public key line and
/// returns the name: one or more printable ASCII characters other than `"`,
/// `'` and `\`. Anything else (missing or single quotes, `==`, spaces,
/// newlines, escapes) is [`KeyError::BadPolicyOption`].
pub fn parse_policy_option(field: &[u8]) -> Result<String, KeyError> {
    let bad = || KeyError::BadPolicyOption(quote(field));
    let name = field
        .strip_prefix(POLICY_OPTION.as_bytes())
        .and_then(|f| f.strip_prefix(b"=\""))
        .and_then(|f| f.strip_suffix(b"\""))
        .ok_or_else(bad)?;
    // Printable ASCII only: the option is quoted the OpenSSH way, so quotes
    // and backslashes would need an escaping sigsum-go does not implement,
    // and no valid policy name holds anything outside [a-z0-9-] anyway.
    let ok = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\'));
    if !ok {
        return Err(bad());
    }
    String::from_utf8(name.to_vec()).map_err(|_| bad())
}

/// A public key file: one OpenSSH public key per line, as `sigsum-verify -k`
/// reads it. Empty lines and lines starting with `#` (after optional
/// whitespace) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyFile {
    entries: Vec<PublicKeyLine>,
}

impl PublicKeyFile {
    /// Parses a public key file. Rejects files with no key, duplicate keys,
    /// and any malformed key line (the error names the line).
    ///
    /// Policy names are not required to agree here, because an explicit
    /// `-p`/`-P` overrides them; call [`PublicKeyFile::policy_name`] when the
    /// file's name is to be used.
    pub fn parse(text: &[u8]) -> Result<Self, KeyError> {
        check_size(text)?;
        let mut entries = Vec::new();
        let mut seen: HashMap<PublicKey, usize> = HashMap::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let trimmed = trim_blanks(raw);
            if trimmed.is_empty() || trimmed.starts_with(b"#") {
                continue;
            }
            let entry = parse_openssh_public_key(trimmed).map_err(|e| at_line(line, e))?;
            if let Some(&first_line) = seen.get(&entry.key) {
                return Err(at_line(
                    line,
                    KeyError::DuplicateKey {
                        key: entry.key,
                        first_line,
                    },
                ));
            }
            seen.insert(entry.key, line);
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(PublicKeyFile { entries })
    }

    /// The keys with their policy options, in file order (never empty).
    pub fn entries(&self) -> &[PublicKeyLine] {
        &self.entries
    }

    /// The keys, in file order (never empty).
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.entries.iter().map(|e| &e.key)
    }

    /// The policy named by the file's `sigsum-policy` options: `None` if no
    /// line has one, the name if every line that has one agrees (lines
    /// without the option do not count), and
    /// [`KeyError::ConflictingPolicyNames`] otherwise.
    pub fn policy_name(&self) -> Result<Option<&str>, KeyError> {
        let mut found: Option<&str> = None;
        for name in self.entries.iter().filter_map(|e| e.policy_name.as_deref()) {
            match found {
                None => found = Some(name),
                Some(f) if f == name => {}
                Some(f) => {
                    return Err(KeyError::ConflictingPolicyNames {
                        first: f.to_owned(),
                        second: name.to_owned(),
                    });
                }
            }
        }
        Ok(found)
    }
}

/// Parses a public key file (see [`PublicKeyFile::parse`]) into its keys and
/// their policy options, in file order.
pub fn parse_public_key_file(text: &[u8]) -> Result<Vec<(PublicKey, Option<String>)>, KeyError> {
    Ok(PublicKeyFile::parse(text)?
        .entries
        .into_iter()
        .map(|e| (e.key, e.policy_name))
        .collect())
}

// --- Private keys ----------------------------------------------------------

/// Parses a private key file as sigsum-go reads it: an unencrypted OpenSSH
/// private key, or (deprecated) 64 hex characters of Ed25519 seed with
/// optional surrounding whitespace.
///
/// Keys held by ssh-agent are referenced by a public key file instead; the
/// caller recognises that case with [`parse_openssh_public_key`].
pub fn parse_private_key_file(text: &[u8]) -> Result<SigningKey, KeyError> {
    check_size(text)?;
    let trimmed = text.trim_ascii();
    if trimmed.starts_with(b"-----") {
        parse_openssh_private_key(text)
    } else {
        parse_hex_seed(trimmed)
    }
}

/// Parses the deprecated raw private key: exactly 64 hex characters of seed.
pub fn parse_hex_seed(text: &[u8]) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_seed(&hex32(text)?))
}

/// Parses an unencrypted OpenSSH private key holding one Ed25519 key.
///
/// Accepts any base64 line width (ssh-keygen writes 70 columns, sigsum-go
/// 64) and `\r\n` line endings, and blank lines around the armour. Rejects,
/// with a specific [`KeyError`]: missing armour, bad magic, encryption, more
/// or fewer than one key, other key types, check-int mismatch, misaligned or
/// wrong padding, truncation, trailing bytes, and a seed that does not derive
/// the stated public key.
pub fn parse_openssh_private_key(text: &[u8]) -> Result<SigningKey, KeyError> {
    check_size(text)?;
    let der = decode_armour(text)?;
    parse_openssh_private_key_bytes(&der)
}

/// Strips the PEM-style armour and decodes the base64 body.
fn decode_armour(text: &[u8]) -> Result<Vec<u8>, KeyError> {
    // Trimming also removes the `\r` of `\r\n` line endings.
    let mut lines = text.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
    if lines.find(|l| !l.is_empty()) != Some(PRIVATE_KEY_BEGIN.as_bytes()) {
        return Err(KeyError::MissingBeginLine);
    }
    let mut body = Vec::new();
    loop {
        match lines.next() {
            None => return Err(KeyError::MissingEndLine),
            Some(l) if l == PRIVATE_KEY_END.as_bytes() => break,
            Some(l) => body.extend_from_slice(l),
        }
    }
    if lines.any(|l| !l.is_empty()) {
        return Err(KeyError::TextAfterEnd);
    }
    Ok(BASE64.decode(&body)?)
}

/// Parses the binary `openssh-key-v1` structure (PROTOCOL.key §1 and §3).
fn parse_openssh_private_key_bytes(der: &[u8]) -> Result<SigningKey, KeyError> {
    let rest = der.strip_prefix(AUTH_MAGIC).ok_or(KeyError::BadMagic)?;
    let mut r = Reader::new(rest);
    let cipher = r.string("cipher name")?;
    let kdf = r.string("kdf name")?;
    if cipher != CIPHER_NONE || kdf != KDF_NONE {
        return Err(KeyError::Encrypted {
            cipher: quote(cipher),
            kdf: quote(kdf),
        });
    }
    let kdf_options = r.string("kdf options")?;
    if !kdf_options.is_empty() {
        return Err(KeyError::KdfOptions(kdf_options.len()));
    }
    let count = r.u32("number of keys")?;
    if count != 1 {
        return Err(KeyError::KeyCount(count));
    }
    let public = parse_ssh_public_key_blob(r.string("public key")?)?;
    let private = r.string("private section")?;
    if !r.is_empty() {
        return Err(KeyError::TrailingBytes("the private section"));
    }
    if private.len() % NONE_BLOCK_SIZE != 0 {
        return Err(KeyError::BadAlignment(private.len()));
    }

    let mut p = Reader::new(private);
    let check1 = p.u32("check-int")?;
    let check2 = p.u32("check-int")?;
    if check1 != check2 {
        return Err(KeyError::CheckIntMismatch(check1, check2));
    }
    let key_type = p.string("private key type")?;
    if key_type != SSH_ED25519.as_bytes() {
        return Err(KeyError::UnsupportedKeyType(quote(key_type)));
    }
    let inner_public = p.string("private section public key")?;
    let secret = p.string("private key")?;
    let _comment = p.string("comment")?;
    let padding = p.rest();
    // The padding fills up to the next block boundary: 0 to 7 bytes, valued
    // 1, 2, 3, … (PROTOCOL.key §3).
    let padding_ok = padding.len() < NONE_BLOCK_SIZE
        && padding
            .iter()
            .zip(1u8..)
            .all(|(&byte, expected)| byte == expected);
    if !padding_ok {
        return Err(KeyError::BadPadding);
    }

    if inner_public != public.0 {
        return Err(KeyError::PublicKeyMismatch);
    }
    let (seed, secret_public) = secret
        .split_first_chunk::<32>()
        .filter(|(_, rest)| rest.len() == 32)
        .ok_or(KeyError::PrivateKeyLength(secret.len()))?;
    let signer = SigningKey::from_seed(seed);
    if secret_public != public.0 || signer.public_key() != public {
        return Err(KeyError::PublicKeyMismatch);
    }
    Ok(signer)
}

/// Writes an unencrypted OpenSSH private key file byte-for-byte as
/// `sigsum-key generate` does: one Ed25519 key, empty comment, base64 body in
/// 64-column lines, `\n` line endings.
///
/// `check_int` is the random 32-bit value OpenSSH repeats twice to detect a
/// wrong passphrase; the caller supplies it from its random source (this
/// crate has none). Its value does not matter for unencrypted keys.
pub fn write_openssh_private_key(key: &SigningKey, check_int: u32) -> String {
    let public = key.public_key();
    let blob = ssh_public_key_blob(&public);

    let mut private = Vec::with_capacity(160);
    private.extend_from_slice(&check_int.to_be_bytes());
    private.extend_from_slice(&check_int.to_be_bytes());
    put_string(&mut private, SSH_ED25519.as_bytes());
    put_string(&mut private, &public.0);
    let mut secret = [0u8; 64];
    let (seed_half, public_half) = secret.split_at_mut(32);
    seed_half.copy_from_slice(&key.seed());
    public_half.copy_from_slice(&public.0);
    put_string(&mut private, &secret);
    put_string(&mut private, b"");
    let mut pad = 1u8;
    while private.len() % NONE_BLOCK_SIZE != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut der = Vec::with_capacity(256);
    der.extend_from_slice(AUTH_MAGIC);
    put_string(&mut der, CIPHER_NONE);
    put_string(&mut der, KDF_NONE);
    put_string(&mut der, b"");
    der.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut der, &blob);
    put_string(&mut der, &private);

    let body = BASE64.encode(&der);
    let mut out = String::with_capacity(body.len() + body.len() / PEM_LINE_WIDTH + 80);
    out.push_str(PRIVATE_KEY_BEGIN);
    out.push('\n');
    // Base64 output is ASCII, so every byte index is a char boundary.
    for chunk in body.as_bytes().chunks(PEM_LINE_WIDTH) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(PRIVATE_KEY_END);
    out.push('\n');
    out
}

// --- Verifier keys (C2SP signed-note vkeys) --------------------------------

/// The vkey signature type of a log's checkpoint signatures (Ed25519).
pub const VKEY_TYPE_LOG: u8 = note::SIG_TYPE_ED25519;
/// The vkey signature type of a witness's `cosignature/v1` signatures.
pub const VKEY_TYPE_WITNESS: u8 = note::SIG_TYPE_COSIGNATURE_V1;

/// The checkpoint origin (and log vkey name) of the log with this key:
/// `sigsum.org/v1/tree/<lowercase hex key hash>`.
pub fn log_origin(key: &PublicKey) -> String {
    format!("sigsum.org/v1/tree/{}", key.key_hash())
}

/// The vkey `sigsum-key to-vkey` writes for a log key: name = the log's
/// origin, type 0x01. `Display` gives `<origin>+<key ID>+<base64>`.
///
/// Fails only if the note module rejected the origin as a key name, which it
/// never does; the `Result` keeps that judgement in one place.
pub fn log_vkey(key: &PublicKey) -> Result<VerifierKey, KeyError> {
    Ok(VerifierKey::new(&log_origin(key), VKEY_TYPE_LOG, &key.0)?)
}

/// The vkey `sigsum-key to-vkey -t cosignature/v1 -n <name>` writes for a
/// witness key: type 0x04 under `name`. Fails if `name` is not a valid
/// signed-note key name (empty, `+`, white space or control characters).
pub fn witness_vkey(name: &str, key: &PublicKey) -> Result<VerifierKey, KeyError> {
    Ok(VerifierKey::new(name, VKEY_TYPE_WITNESS, &key.0)?)
}

/// Parses a vkey holding a Sigsum (Ed25519) key, as `sigsum-key from-vkey`
/// does: any valid name, type 0x01 or 0x04, and a key ID consistent with
/// name, type and key. Surrounding whitespace (a file's line ending) is
/// ignored. Returns the vkey (for its name and type) and the key.
pub fn parse_vkey(s: &str) -> Result<(VerifierKey, PublicKey), KeyError> {
    let vkey = VerifierKey::parse(s.trim_ascii())?;
    let t = vkey.sig_type();
    if t != VKEY_TYPE_LOG && t != VKEY_TYPE_WITNESS {
        return Err(KeyError::VkeyType(t));
    }
    let key = vkey.ed25519_key(t)?;
    Ok((vkey, PublicKey(key)))
}

// --- Helpers ---------------------------------------------------------------

/// Reads SSH wire primitives (RFC 4251 §5) without panicking on short input.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, KeyError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<4>()
            .ok_or(KeyError::Truncated(what))?;
        self.buf = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string(&mut self, what: &'static str) -> Result<&'a [u8], KeyError> {
        let len = usize::try_from(self.u32(what)?).map_err(|_| KeyError::Truncated(what))?;
        if len > self.buf.len() {
            return Err(KeyError::Truncated(what));
        }
        let (s, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Every string written here is a few dozen bytes.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
}

fn check_size(text: &[u8]) -> Result<(), KeyError> {
    if text.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyError::TooLarge(text.len()));
    }
    Ok(())
}

fn trim_blanks(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

fn at_line(line: usize, reason: KeyError) -> KeyError {
    KeyError::AtLine {
        line,
        reason: Box::new(reason),
    }
}

/// Untrusted bytes for an error message: lossy UTF-8, at most
/// [`MAX_QUOTED`] characters.
fn quote(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() <= MAX_QUOTED {
        s.into_owned()
    } else {
        let mut t: String = s.chars().take(MAX_QUOTED).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDFMuCrItf6Qzxi/GQr6R1m4B3lwn5kfc28ETV4TvLym";

    fn key() -> PublicKey {
        parse_openssh_public_key(KEY_LINE.as_bytes()).unwrap().key
    }

    #[test]
    fn hex_keys_are_read_in_either_case_and_written_lowercase() {
        let k = parse_public_key_hex(&"AB".repeat(32)).unwrap();
        assert_eq!(format_public_key_hex(&k), "ab".repeat(32));
        assert_eq!(
            parse_public_key_hex(&"ab".repeat(31)),
            Err(KeyError::HexLength {
                expected: 64,
                got: 62
            })
        );
        assert_eq!(
            parse_public_key_hex(&format!("{}zz", "ab".repeat(31))),
            Err(KeyError::HexCharacter)
        );
        assert!(parse_key_hash_hex(&format!(" {}", "ab".repeat(32))).is_err());
    }

    #[test]
    fn public_key_line_round_trips_with_and_without_comment() {
        let k = key();
        assert_eq!(format_openssh_public_key(&k, None), KEY_LINE);
        let with = format_public_key_file(&k);
        assert_eq!(with, format!("{KEY_LINE} sigsum key\n"));
        assert_eq!(parse_openssh_public_key(with.as_bytes()).unwrap().key, k);
    }

    #[test]
    fn other_key_types_and_extra_options_are_rejected() {
        let rsa = KEY_LINE.replace("ssh-ed25519", "ssh-rsa");
        assert!(matches!(
            parse_openssh_public_key(rsa.as_bytes()),
            Err(KeyError::UnsupportedKeyType(_))
        ));
        let restrict = format!("restrict {KEY_LINE}");
        assert!(parse_openssh_public_key(restrict.as_bytes()).is_err());
        let empty_name = format!("sigsum-policy=\"\" {KEY_LINE}");
        assert!(matches!(
            parse_openssh_public_key(empty_name.as_bytes()),
            Err(KeyError::BadPolicyOption(_))
        ));
    }

    #[test]
    fn key_blob_must_be_exactly_type_and_32_bytes() {
        let mut blob = ssh_public_key_blob(&key());
        assert_eq!(parse_ssh_public_key_blob(&blob), Ok(key()));
        blob.push(0);
        assert_eq!(
            parse_ssh_public_key_blob(&blob),
            Err(KeyError::BadKeyBlob("trailing bytes"))
        );
    }

    #[test]
    fn key_file_skips_comments_and_blank_lines_and_rejects_duplicates() {
        let other = format_openssh_public_key(&SigningKey::from_seed(&[7; 32]).public_key(), None);
        let text = format!("# keys\n\n  {KEY_LINE} a\r\n\t{other}\n");
        let f = PublicKeyFile::parse(text.as_bytes()).unwrap();
        assert_eq!(f.entries().len(), 2);
        assert_eq!(f.policy_name(), Ok(None));

        let dup = format!("{KEY_LINE}\n#\n{KEY_LINE} again\n");
        assert_eq!(
            PublicKeyFile::parse(dup.as_bytes()),
            Err(KeyError::AtLine {
                line: 3,
                reason: Box::new(KeyError::DuplicateKey {
                    key: key(),
                    first_line: 1
                })
            })
        );
        assert_eq!(PublicKeyFile::parse(b"# none\n\n"), Err(KeyError::NoKeys));
    }

    #[test]
    fn policy_names_in_a_key_file_must_agree_when_present() {
        let other = format_openssh_public_key(&SigningKey::from_seed(&[7; 32]).public_key(), None);
        let agree = format!("sigsum-policy=\"p1\" {KEY_LINE}\n{other}\n");
        let f = PublicKeyFile::parse(agree.as_bytes()).unwrap();
        assert_eq!(f.policy_name(), Ok(Some("p1")));
        let conflict = format!("sigsum-policy=\"p1\" {KEY_LINE}\nsigsum-policy=\"p2\" {other}\n");
        let f = PublicKeyFile::parse(conflict.as_bytes()).unwrap();
        assert!(matches!(
            f.policy_name(),
            Err(KeyError::ConflictingPolicyNames { .. })
        ));
    }

    #[test]
    fn private_key_round_trips_for_any_check_int() {
        let k = SigningKey::from_seed(&[9; 32]);
        for ci in [0, 1, 0xdead_beef, u32::MAX] {
            let text = write_openssh_private_key(&k, ci);
            let back = parse_private_key_file(text.as_bytes()).unwrap();
            assert_eq!(back.seed(), k.seed());
        }
    }

    /// Rebuilds a private key file around a modified binary structure.
    fn rearmour(der: &[u8]) -> String {
        format!(
            "{PRIVATE_KEY_BEGIN}\n{}\n{PRIVATE_KEY_END}\n",
            BASE64.encode(der)
        )
    }

    fn good_der() -> Vec<u8> {
        let text = write_openssh_private_key(&SigningKey::from_seed(&[9; 32]), 0x0102_0304);
        decode_armour(text.as_bytes()).unwrap()
    }

    /// Offset of the private section's first check-int in [`good_der`].
    fn private_offset(der: &[u8]) -> usize {
        // magic, "none", "none", "", count, string(51-byte blob), length.
        let off = AUTH_MAGIC.len() + 8 + 8 + 4 + 4 + 4 + 51 + 4;
        assert_eq!(der.get(off..off + 4), Some(&[1u8, 2, 3, 4][..]));
        off
    }

    #[test]
    fn mismatched_check_ints_are_rejected() {
        let mut der = good_der();
        let off = private_offset(&der);
        der[off + 4] ^= 1;
        assert_eq!(
            parse_der(&der).unwrap_err(),
            KeyError::CheckIntMismatch(0x0102_0304, 0x0002_0304)
        );
    }

    /// Rebuilds the binary structure from its parts, so a test can change one.
    fn build_der(cipher: &[u8], kdf: &[u8], count: u32, private: &[u8]) -> Vec<u8> {
        let mut der = AUTH_MAGIC.to_vec();
        put_string(&mut der, cipher);
        put_string(&mut der, kdf);
        put_string(&mut der, b"");
        der.extend_from_slice(&count.to_be_bytes());
        put_string(
            &mut der,
            &ssh_public_key_blob(&SigningKey::from_seed(&[9; 32]).public_key()),
        );
        put_string(&mut der, private);
        der
    }

    fn good_private_section() -> Vec<u8> {
        let der = good_der();
        let off = private_offset(&der);
        der[off..].to_vec()
    }

    fn parse_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        parse_openssh_private_key(rearmour(der).as_bytes())
    }

    #[test]
    fn encrypted_private_keys_are_rejected_as_encrypted() {
        let der = build_der(b"aes256-ctr", b"bcrypt", 1, &good_private_section());
        assert_eq!(
            parse_der(&der).unwrap_err(),
            KeyError::Encrypted {
                cipher: "aes256-ctr".into(),
                kdf: "bcrypt".into()
            }
        );
    }

    #[test]
    fn files_with_zero_or_two_keys_are_rejected() {
        for n in [0, 2] {
            let der = build_der(b"none", b"none", n, &good_private_section());
            assert_eq!(parse_der(&der).unwrap_err(), KeyError::KeyCount(n));
        }
    }

    #[test]
    fn wrong_padding_is_rejected() {
        let mut private = good_private_section();
        let last = private.len() - 1;
        private[last] = 9;
        let der = build_der(b"none", b"none", 1, &private);
        assert_eq!(parse_der(&der).unwrap_err(), KeyError::BadPadding);

        // A whole extra block of padding is not minimal.
        let mut private = good_private_section();
        let pad_len = usize::from(*private.last().unwrap());
        private.extend((pad_len as u8 + 1..).take(8));
        let der = build_der(b"none", b"none", 1, &private);
        assert_eq!(parse_der(&der).unwrap_err(), KeyError::BadPadding);
    }

    #[test]
    fn misaligned_private_section_is_rejected() {
        let mut private = good_private_section();
        private.pop();
        let der = build_der(b"none", b"none", 1, &private);
        assert!(matches!(
            parse_der(&der).unwrap_err(),
            KeyError::BadAlignment(_)
        ));
    }

    #[test]
    fn every_truncation_of_a_private_key_is_an_error() {
        let der = good_der();
        for len in 0..der.len() {
            assert!(
                parse_der(&der[..len]).is_err(),
                "truncated to {len} bytes accepted"
            );
        }
    }

    #[test]
    fn seed_that_does_not_derive_the_public_key_is_rejected() {
        let mut der = good_der();
        let off = private_offset(&der);
        // check-ints, string(type), string(pub), length of the secret.
        let seed_at = off + 8 + 4 + 11 + 4 + 32 + 4;
        der[seed_at] ^= 0xff;
        assert_eq!(parse_der(&der).unwrap_err(), KeyError::PublicKeyMismatch);
    }

    #[test]
    fn armour_problems_are_named() {
        let text = write_openssh_private_key(&SigningKey::from_seed(&[9; 32]), 7);
        assert_eq!(
            parse_openssh_private_key(b"hello").unwrap_err(),
            KeyError::MissingBeginLine
        );
        let no_end = text.replace(PRIVATE_KEY_END, "");
        assert_eq!(
            parse_openssh_private_key(no_end.as_bytes()).unwrap_err(),
            KeyError::MissingEndLine
        );
        let trailing = format!("{text}junk\n");
        assert_eq!(
            parse_openssh_private_key(trailing.as_bytes()).unwrap_err(),
            KeyError::TextAfterEnd
        );
        let mut bad_magic = good_der();
        bad_magic[0] = b'O';
        assert_eq!(parse_der(&bad_magic).unwrap_err(), KeyError::BadMagic);
        let crlf = text.replace('\n', "\r\n");
        assert!(parse_openssh_private_key(crlf.as_bytes()).is_ok());
    }

    #[test]
    fn log_vkey_is_named_by_origin_and_round_trips() {
        let k = key();
        let v = log_vkey(&k).unwrap();
        assert_eq!(v.name(), log_origin(&k));
        assert_eq!(v.sig_type(), 0x01);
        let (back, back_key) = parse_vkey(&format!("{v}\n")).unwrap();
        assert_eq!((back, back_key), (v, k));
    }

    #[test]
    fn witness_vkey_needs_a_valid_name_and_has_type_4() {
        let k = key();
        let v = witness_vkey("example.org/w", &k).unwrap();
        assert_eq!(v.sig_type(), 0x04);
        assert!(v.to_string().starts_with("example.org/w+"));
        assert!(witness_vkey("", &k).is_err());
        assert!(witness_vkey("a+b", &k).is_err());
        assert!(witness_vkey("a b", &k).is_err());
    }

    #[test]
    fn vkey_with_inconsistent_key_id_is_rejected() {
        let v = log_vkey(&key()).unwrap().to_string();
        let (name, rest) = v.split_once('+').unwrap();
        let (_, b64) = rest.split_once('+').unwrap();
        let bad = format!("{name}+00000000+{b64}");
        assert!(matches!(
            parse_vkey(&bad),
            Err(KeyError::Vkey(NoteKeyError::KeyIdMismatch { .. }))
        ));
    }

    #[test]
    fn raw_hex_seed_files_are_still_read() {
        let k = parse_private_key_file(format!("{:064x}\n", 1).as_bytes()).unwrap();
        assert_eq!(
            k.public_key().to_hex(),
            "4cb5abf6ad79fbf5abbccafcc269d85cd2651ed4b885b5869f241aedf0a5ba29"
        );
        assert!(parse_private_key_file(b"0123").is_err());
    }
}
