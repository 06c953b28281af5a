//! Signing through ssh-agent, as sigsum-go does when a tool is given a
//! public key file instead of a private key: the private key stays in the
//! agent (or in an HSM behind an agent such as `sigsum-agent`).
//!
//! A client of the two messages of the agent protocol it needs
//! (draft-miller-ssh-agent §4.4, §4.5): `SSH_AGENTC_REQUEST_IDENTITIES`, to
//! fail early and clearly when the key is not in the agent, and
//! `SSH_AGENTC_SIGN_REQUEST` for `ssh-ed25519`. Written here rather than
//! taken from a crate because the maintained clients build on `ssh-key`
//! with RSA, ECDSA and a second Ed25519 implementation, for two messages
//! whose key encoding `cairn_sigsum::key` already has.
//!
//! Each request opens its own connection, so concurrent signers need no
//! lock and a restarted agent is picked up. Every exchange is bounded by a
//! timeout and every answer by [`MAX_MESSAGE_BYTES`].

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64_NO_PAD;
use cairn_sigsum::crypto::hash;
use cairn_sigsum::key::{SSH_ED25519, parse_ssh_public_key_blob, ssh_public_key_blob};
use cairn_sigsum::{PublicKey, Signature};

use crate::signer::{SignError, Signer};

/// The environment variable naming the agent's socket.
pub const SSH_AUTH_SOCK: &str = "SSH_AUTH_SOCK";

/// Largest agent message, either way, without its length prefix: OpenSSH's
/// agent refuses longer requests (`AGENT_MAX_LEN`), and no answer to our
/// two requests is longer unless the agent misbehaves.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Default bound on one exchange (connect, request, answer). Generous
/// because an agent may wait for a touch on a hardware key, or queue
/// behind an HSM; a hung agent must still not hang a submission.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;

/// Bytes of a sign request besides the data: type, key blob string, data
/// length, flags.
const SIGN_REQUEST_OVERHEAD: usize = 1 + 4 + (4 + SSH_ED25519.len() + 4 + 32) + 4 + 4;

/// Longest message [`AgentSigner`] can have signed.
pub const MAX_SIGN_BYTES: usize = MAX_MESSAGE_BYTES - SIGN_REQUEST_OVERHEAD;

/// Why the agent gave no signature (or key list).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `SSH_AUTH_SOCK` is unset or empty.
    #[error(
        "SSH_AUTH_SOCK is not set, so there is no ssh-agent to ask (start one and add the private key with ssh-add)"
    )]
    NoAgent,
    /// The socket could not be reached.
    #[error("connecting to ssh-agent at {}: {source}", path.display())]
    Connect {
        /// The agent's socket.
        path: PathBuf,
        /// What the connect failed with.
        source: io::Error,
    },
    /// Reading or writing failed, or the agent hung up.
    #[error("talking to ssh-agent at {}: {source}", path.display())]
    Io {
        /// The agent's socket.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// No complete answer within the timeout.
    #[error("ssh-agent at {} did not answer within {timeout:?}", path.display())]
    Timeout {
        /// The agent's socket.
        path: PathBuf,
        /// The bound that passed.
        timeout: Duration,
    },
    /// The agent does not hold the key.
    #[error(
        "key {fingerprint} is not in ssh-agent at {} (add its private key with ssh-add; ssh-add -l lists the keys the agent holds)",
        path.display()
    )]
    KeyNotInAgent {
        /// The key's OpenSSH fingerprint, as `ssh-add -l` shows it.
        fingerprint: String,
        /// The agent's socket.
        path: PathBuf,
    },
    /// The agent answered `SSH_AGENT_FAILURE` to a sign request.
    #[error("ssh-agent at {} refused to sign with key {fingerprint}", path.display())]
    Refused {
        /// The key's OpenSSH fingerprint.
        fingerprint: String,
        /// The agent's socket.
        path: PathBuf,
    },
    /// The answer is not what the protocol allows.
    #[error("ssh-agent at {} sent a malformed answer: {what}", path.display())]
    Malformed {
        /// The agent's socket.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The returned signature does not verify with the key.
    #[error(
        "ssh-agent at {} returned a signature that does not verify with key {fingerprint}",
        path.display()
    )]
    BadSignature {
        /// The key's OpenSSH fingerprint.
        fingerprint: String,
        /// The agent's socket.
        path: PathBuf,
    },
    /// The message is longer than the agent accepts.
    #[error(
        "a message of {len} bytes is too long to sign through ssh-agent (at most {MAX_SIGN_BYTES})"
    )]
    TooLong {
        /// The message length.
        len: usize,
    },
}

/// The OpenSSH fingerprint of an Ed25519 key, `SHA256:<base64>`, as
/// `ssh-add -l` and `ssh-keygen -l` print it.
pub fn fingerprint(key: &PublicKey) -> String {
    format!(
        "SHA256:{}",
        BASE64_NO_PAD.encode(hash(&ssh_public_key_blob(key)))
    )
}

/// The Ed25519 keys the agent at `socket` holds, in its order. Keys of
/// other types (RSA, ECDSA, certificates) are skipped.
pub fn list_keys(socket: &Path, timeout: Duration) -> Result<Vec<PublicKey>, AgentError> {
    let mut conn = Connection::open(socket, timeout)?;
    let answer = conn.request(&[SSH_AGENTC_REQUEST_IDENTITIES])?;
    let (&kind, body) = answer
        .split_first()
        .ok_or_else(|| conn.malformed("empty"))?;
    if kind != SSH_AGENT_IDENTITIES_ANSWER {
        return Err(conn.malformed(format!(
            "message type {kind} in answer to a key list request"
        )));
    }
    let mut r = Reader(body);
    let count = r
        .u32()
        .ok_or_else(|| conn.malformed("truncated key count"))?;
    let mut keys = Vec::new();
    for _ in 0..count {
        let (Some(blob), Some(_comment)) = (r.string(), r.string()) else {
            return Err(conn.malformed("truncated key list"));
        };
        if let Ok(key) = parse_ssh_public_key_blob(blob) {
            keys.push(key);
        }
    }
    if !r.0.is_empty() {
        return Err(conn.malformed("trailing bytes after the key list"));
    }
    Ok(keys)
}

/// A [`Signer`] whose private key is held by ssh-agent.
#[derive(Clone, Debug)]
pub struct AgentSigner {
    socket: PathBuf,
    key: PublicKey,
    timeout: Duration,
}

impl AgentSigner {
    /// A signer for `key` through the agent named by `SSH_AUTH_SOCK`. Fails
    /// if there is none, it cannot be reached, or it does not hold `key`.
    pub fn from_env(key: PublicKey) -> Result<Self, AgentError> {
        match std::env::var_os(SSH_AUTH_SOCK) {
            Some(s) if !s.is_empty() => Self::connect(PathBuf::from(s), key, DEFAULT_TIMEOUT),
            _ => Err(AgentError::NoAgent),
        }
    }

    /// A signer for `key` through the agent at `socket`, each exchange
    /// bounded by `timeout`. Fails if the agent cannot be reached or does
    /// not hold `key` (checked now, so that a forgotten `ssh-add` is
    /// reported before any work starts).
    pub fn connect(socket: PathBuf, key: PublicKey, timeout: Duration) -> Result<Self, AgentError> {
        if !list_keys(&socket, timeout)?.contains(&key) {
            return Err(AgentError::KeyNotInAgent {
                fingerprint: fingerprint(&key),
                path: socket,
            });
        }
        Ok(AgentSigner {
            socket,
            key,
            timeout,
        })
    }

    /// The agent's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn sign_with_agent(&self, message: &[u8]) -> Result<Signature, AgentError> {
        if message.len() > MAX_SIGN_BYTES {
            return Err(AgentError::TooLong { len: message.len() });
        }
        let mut request = Vec::with_capacity(SIGN_REQUEST_OVERHEAD + message.len());
        request.push(SSH_AGENTC_SIGN_REQUEST);
        put_string(&mut request, &ssh_public_key_blob(&self.key));
        put_string(&mut request, message);
        request.extend_from_slice(&0u32.to_be_bytes()); // flags: none apply to Ed25519
        let mut conn = Connection::open(&self.socket, self.timeout)?;
        let answer = conn.request(&request)?;
        let (&kind, body) = answer
            .split_first()
            .ok_or_else(|| conn.malformed("empty"))?;
        match kind {
            SSH_AGENT_SIGN_RESPONSE => {}
            SSH_AGENT_FAILURE => {
                return Err(AgentError::Refused {
                    fingerprint: fingerprint(&self.key),
                    path: self.socket.clone(),
                });
            }
            other => {
                return Err(
                    conn.malformed(format!("message type {other} in answer to a sign request"))
                );
            }
        }
        let signature = parse_signature(body)
            .ok_or_else(|| conn.malformed("not one ssh-ed25519 signature of 64 bytes"))?;
        // The agent is outside this process: a signature it made with
        // another key, or garbled, must not end up in a log.
        if !self.key.verify(message, &signature) {
            return Err(AgentError::BadSignature {
                fingerprint: fingerprint(&self.key),
                path: self.socket.clone(),
            });
        }
        Ok(signature)
    }
}

impl Signer for AgentSigner {
    fn public_key(&self) -> PublicKey {
        self.key
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        Ok(self.sign_with_agent(message)?)
    }
}

/// `string("ssh-ed25519") || string(signature)`, wrapped in one string.
fn parse_signature(body: &[u8]) -> Option<Signature> {
    let mut outer = Reader(body);
    let blob = outer.string()?;
    if !outer.0.is_empty() {
        return None;
    }
    let mut r = Reader(blob);
    if r.string()? != SSH_ED25519.as_bytes() {
        return None;
    }
    let sig: [u8; 64] = r.string()?.try_into().ok()?;
    r.0.is_empty().then_some(Signature(sig))
}

/// One connection, for one request and its answer, all before `deadline`.
struct Connection<'a> {
    stream: UnixStream,
    path: &'a Path,
    timeout: Duration,
    deadline: Instant,
}

impl<'a> Connection<'a> {
    fn open(path: &'a Path, timeout: Duration) -> Result<Self, AgentError> {
        let deadline = Instant::now() + timeout;
        // Unix-socket connects complete or fail at once (no handshake), so
        // the deadline only needs to bound the exchange that follows.
        let stream = UnixStream::connect(path).map_err(|source| AgentError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Connection {
            stream,
            path,
            timeout,
            deadline,
        })
    }

    /// Sends `payload` (type byte and contents) and returns the answer's.
    fn request(&mut self, payload: &[u8]) -> Result<Vec<u8>, AgentError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|_| payload.len() <= MAX_MESSAGE_BYTES)
            .ok_or(AgentError::TooLong { len: payload.len() })?;
        let mut framed = Vec::with_capacity(4 + payload.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(payload);
        self.write_all(&framed)?;
        let mut len = [0u8; 4];
        self.read_exact(&mut len)?;
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len == 0 || len > MAX_MESSAGE_BYTES {
            return Err(self.malformed(format!(
                "answer length {len} (expected 1 to {MAX_MESSAGE_BYTES})"
            )));
        }
        let mut answer = vec![0u8; len];
        self.read_exact(&mut answer)?;
        Ok(answer)
    }

    fn remaining(&self) -> Result<Duration, AgentError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        Ok(left)
    }

    fn write_all(&mut self, mut buf: &[u8]) -> Result<(), AgentError> {
        while !buf.is_empty() {
            let left = self.remaining()?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| self.io(e))?;
            match self.stream.write(buf) {
                Ok(0) => return Err(self.io(io::ErrorKind::WriteZero.into())),
                Ok(n) => buf = buf.get(n..).unwrap_or_default(),
                Err(e) => self.retry_or_fail(e)?,
            }
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes; read timeouts are reset before
    /// each read so that a slow trickle still ends at the deadline.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), AgentError> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = self.remaining()?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io(e))?;
            match self.stream.read(buf.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => {
                    return Err(self.io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the agent closed the connection before answering",
                    )));
                }
                Ok(n) => filled += n,
                Err(e) => self.retry_or_fail(e)?,
            }
        }
        Ok(())
    }

    fn retry_or_fail(&self, e: io::Error) -> Result<(), AgentError> {
        match e.kind() {
            io::ErrorKind::Interrupted => Ok(()),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Err(self.timed_out()),
            _ => Err(self.io(e)),
        }
    }

    fn timed_out(&self) -> AgentError {
        AgentError::Timeout {
            path: self.path.to_owned(),
            timeout: self.timeout,
        }
    }

    fn io(&self, source: io::Error) -> AgentError {
        AgentError::Io {
            path: self.path.to_owned(),
            source,
        }
    }

    fn malformed(&self, what: impl Into<String>) -> AgentError {
        AgentError::Malformed {
            path: self.path.to_owned(),
            what: what.into(),
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Callers bound `s` by MAX_MESSAGE_BYTES, far below u32::MAX.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads SSH wire fields from untrusted bytes; `None` when truncated.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*n))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    use cairn_sigsum::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[0x53; 32])
    }

    /// A fake agent on a fresh socket that answers each connection with
    /// the next of `answers` (raw bytes, length prefix included) after
    /// reading one request; `None` answers nothing and holds the
    /// connection open until the client gives up.
    fn fake_agent(answers: Vec<Option<Vec<u8>>>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            for answer in answers {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut len = [0u8; 4];
                s.read_exact(&mut len).unwrap();
                let mut req = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut req).unwrap();
                match answer {
                    Some(bytes) => s.write_all(&bytes).unwrap(),
                    // Wait for the client to hang up.
                    None => while s.read(&mut [0u8; 64]).is_ok_and(|n| n > 0) {},
                }
            }
        });
        (dir, path)
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn identities(keys: &[&PublicKey]) -> Vec<u8> {
        let mut p = vec![SSH_AGENT_IDENTITIES_ANSWER];
        p.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        for k in keys {
            put_string(&mut p, &ssh_public_key_blob(k));
            put_string(&mut p, b"comment");
        }
        framed(&p)
    }

    fn sign_response(sig: &[u8]) -> Vec<u8> {
        let mut blob = Vec::new();
        put_string(&mut blob, SSH_ED25519.as_bytes());
        put_string(&mut blob, sig);
        let mut p = vec![SSH_AGENT_SIGN_RESPONSE];
        put_string(&mut p, &blob);
        framed(&p)
    }

    fn signer_with(answers_after_list: Vec<Option<Vec<u8>>>) -> (tempfile::TempDir, AgentSigner) {
        let pk = key().public_key();
        let mut answers = vec![Some(identities(&[&pk]))];
        answers.extend(answers_after_list);
        let (dir, path) = fake_agent(answers);
        let signer = AgentSigner::connect(path, pk, Duration::from_secs(5)).unwrap();
        (dir, signer)
    }

    #[test]
    fn a_valid_agent_signature_is_returned() {
        let sig = key().sign(b"msg");
        let (_dir, signer) = signer_with(vec![Some(sign_response(&sig.0))]);
        assert_eq!(Signer::sign(&signer, b"msg").unwrap(), sig);
    }

    #[test]
    fn a_key_the_agent_does_not_list_is_refused_up_front() {
        let other = SigningKey::from_seed(&[1; 32]).public_key();
        let (_dir, path) = fake_agent(vec![Some(identities(&[&other]))]);
        let e = AgentSigner::connect(path, key().public_key(), DEFAULT_TIMEOUT).unwrap_err();
        assert!(matches!(e, AgentError::KeyNotInAgent { .. }), "{e}");
        assert!(e.to_string().contains(&fingerprint(&key().public_key())));
    }

    #[test]
    fn agent_failure_answer_is_a_refusal() {
        let (_dir, signer) = signer_with(vec![Some(framed(&[SSH_AGENT_FAILURE]))]);
        let e = signer.sign_with_agent(b"msg").unwrap_err();
        assert!(matches!(e, AgentError::Refused { .. }), "{e}");
    }

    #[test]
    fn a_signature_that_does_not_verify_is_rejected() {
        let wrong = key().sign(b"another message");
        let (_dir, signer) = signer_with(vec![Some(sign_response(&wrong.0))]);
        let e = signer.sign_with_agent(b"msg").unwrap_err();
        assert!(matches!(e, AgentError::BadSignature { .. }), "{e}");
    }

    #[test]
    fn oversized_and_truncated_answers_are_malformed() {
        let huge = ((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec();
        let short_sig = sign_response(&[0u8; 63]);
        let (_dir, signer) = signer_with(vec![Some(huge), Some(short_sig)]);
        for _ in 0..2 {
            let e = signer.sign_with_agent(b"msg").unwrap_err();
            assert!(matches!(e, AgentError::Malformed { .. }), "{e}");
        }
    }

    #[test]
    fn a_silent_agent_times_out() {
        let pk = key().public_key();
        let (_dir, path) = fake_agent(vec![Some(identities(&[&pk])), None]);
        let signer = AgentSigner::connect(path, pk, Duration::from_millis(200)).unwrap();
        let e = signer.sign_with_agent(b"msg").unwrap_err();
        assert!(matches!(e, AgentError::Timeout { .. }), "{e}");
    }

    #[test]
    fn messages_beyond_the_agent_limit_are_not_sent() {
        let (_dir, signer) = signer_with(vec![]);
        let e = signer
            .sign_with_agent(&vec![0u8; MAX_SIGN_BYTES + 1])
            .unwrap_err();
        assert!(matches!(e, AgentError::TooLong { .. }), "{e}");
    }

    #[test]
    fn fingerprint_is_what_ssh_keygen_prints() {
        // `ssh-keygen -lf` on the derived vectors' submitter key (seed 53…).
        assert_eq!(
            fingerprint(&key().public_key()),
            "SHA256:mBODinvekimp6s56yFYJBncFaABf7lyvm5R6H1mCfe4"
        );
    }
}
