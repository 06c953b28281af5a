//! The strict ASCII `key=value` format of the Sigsum log API and proof files
//! (`sigsum-protocol.md` §2), byte-compatible with sigsum-go's parser.
//!
//! A message is a sequence of lines `key=value\n`. The key is everything
//! before the first `=`; keys must appear in the order the message defines;
//! only the last key of a message may repeat. A value with several fields
//! separates them by exactly one space.
//!
//! Strictness follows sigsum-go (the interop baseline), not the looser
//! sigsum-rs: lines end in LF only (a CR stays part of the value and makes it
//! invalid), an unterminated final line is an error, and so is any unexpected
//! or extra key. Integers are `0|[1-9][0-9]*` up to 2^63−1; binary values are
//! hex of an exact length, accepted in either case and always written in
//! lowercase.
//!
//! Proof files group messages into blocks separated by one empty line; see
//! [`split_blocks`].

use std::fmt;

use crate::crypto::{Hash, KeyHash, PublicKey, Signature};

/// The largest integer on the wire, 2^63−1: sigsum-go parses integers into 63
/// bits, so anything larger would not interoperate.
pub const MAX_INT: u64 = i64::MAX as u64;

/// Longest excerpt of untrusted input quoted in an error message.
const EXCERPT_LEN: usize = 48;

/// Why a single value (one field of a line, or one path argument) is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// An integer field is empty.
    #[error("empty integer")]
    EmptyInteger,
    /// An integer contains something other than the digits 0–9 (this
    /// includes signs and whitespace).
    #[error("integer {0:?} contains a character other than 0-9")]
    NotDecimal(String),
    /// An integer other than `0` starts with `0`.
    #[error("integer {0:?} has a leading zero")]
    LeadingZero(String),
    /// An integer is larger than 2^63−1.
    #[error("integer {0:?} is larger than 2^63-1")]
    IntegerTooLarge(String),
    /// Hex of the wrong length (in characters).
    #[error("expected {expected} hex characters, got {found}")]
    HexLength {
        /// Required number of hex characters (twice the byte length).
        expected: usize,
        /// Number of characters present.
        found: usize,
    },
    /// A character that is not a hex digit.
    #[error("invalid hex character {character:?} at position {position}")]
    HexCharacter {
        /// The offending character (lossily decoded).
        character: char,
        /// Zero-based offset in the value.
        position: usize,
    },
}

/// Why a line, or a message as a whole, is invalid. Carried by [`Error`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The input ended where a line with the key was required.
    #[error("missing line: input ended")]
    MissingLine,
    /// The last line has no terminating LF.
    #[error("line is not terminated by a newline")]
    Unterminated,
    /// The line ends in CR: only LF line endings are accepted.
    #[error("line ends with a carriage return (CRLF line endings are not accepted)")]
    CarriageReturn,
    /// The line has no `=` (this includes an empty line where a key was due).
    #[error("line has no '=': {0:?}")]
    NoEquals(String),
    /// The line has another key than the one required here.
    #[error("unexpected key {found:?}")]
    UnexpectedKey {
        /// The key found on the line (truncated).
        found: String,
    },
    /// A line follows the end of the message.
    #[error("unexpected line after the end of the message: {0:?}")]
    TrailingLine(String),
    /// The value has the wrong number of space-separated fields.
    #[error("expected {expected} space-separated field(s), got {found}")]
    FieldCount {
        /// Required number of fields.
        expected: usize,
        /// Number of fields present (a double space counts an empty field).
        found: usize,
    },
    /// One field is not a valid value.
    #[error("field {field}: {error}")]
    BadValue {
        /// One-based field number within the value.
        field: usize,
        /// What is wrong with it.
        error: ValueError,
    },
    /// The same witness key hash appears on two cosignature lines (rejected
    /// like sigsum-go and proposal 2026-05-29).
    #[error("duplicate cosignature for witness key hash {0}")]
    DuplicateCosignature(KeyHash),
    /// A repeated key occurs more often than allowed.
    #[error("more than {max} lines with this key")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// A proof file with a version other than 1 or 2.
    #[error("unsupported proof version {0} (supported: 1, 2)")]
    UnsupportedVersion(u64),
    /// A proof whose tree head has size 0: an empty tree includes no leaf.
    #[error("tree size 0 cannot include a leaf")]
    EmptyTree,
    /// A proof lacks a block (an empty line and the block after it).
    #[error("missing block: expected an empty line followed by the {0} block")]
    MissingBlock(&'static str),
    /// A proof has more blocks than its tree size allows.
    #[error("unexpected extra block")]
    ExtraBlock,
}

/// A parse error: where (line number, key) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, key {key:?}: {reason}")]
pub struct Error {
    /// One-based line number in the whole input.
    pub line: usize,
    /// The key the error concerns: the key that was required, or for a
    /// trailing line the key found there. Empty when there is none.
    pub key: String,
    /// What is wrong.
    pub reason: Reason,
}

impl Error {
    /// An error at `line` about `key`.
    pub fn new(line: usize, key: &str, reason: Reason) -> Self {
        Error {
            line,
            key: key.to_owned(),
            reason,
        }
    }
}

/// Quotes at most [`EXCERPT_LEN`] bytes of untrusted input, lossily, so that
/// error messages stay short and printable.
fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.get(..EXCERPT_LEN).unwrap_or(bytes);
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if cut.len() < bytes.len() {
        s.push('…');
    }
    s
}

/// Parses a wire integer: `0|[1-9][0-9]*`, at most 2^63−1.
pub fn parse_int(value: &[u8]) -> Result<u64, ValueError> {
    if value.is_empty() {
        return Err(ValueError::EmptyInteger);
    }
    if !value.iter().all(u8::is_ascii_digit) {
        return Err(ValueError::NotDecimal(excerpt(value)));
    }
    if value.len() > 1 && value.first() == Some(&b'0') {
        return Err(ValueError::LeadingZero(excerpt(value)));
    }
    let mut n: u64 = 0;
    for d in value {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .filter(|n| *n <= MAX_INT)
            .ok_or_else(|| ValueError::IntegerTooLarge(excerpt(value)))?;
    }
    Ok(n)
}

/// Parses exactly `N` bytes of hex (either case).
pub fn parse_hex<const N: usize>(value: &[u8]) -> Result<[u8; N], ValueError> {
    if value.len() != 2 * N {
        return Err(ValueError::HexLength {
            expected: 2 * N,
            found: value.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(value, &mut out).map_err(|e| match e {
        hex::FromHexError::InvalidHexCharacter { c, index } => ValueError::HexCharacter {
            character: c,
            position: index,
        },
        // Unreachable after the length check; reported as a length error
        // rather than panicking.
        hex::FromHexError::OddLength | hex::FromHexError::InvalidStringLength => {
            ValueError::HexLength {
                expected: 2 * N,
                found: value.len(),
            }
        }
    })?;
    Ok(out)
}

/// One parsed line: its number, its key and its fields (still raw bytes).
///
/// The accessors convert field `i` (zero-based) and report errors with this
/// line's number and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    number: usize,
    key: &'static str,
    fields: Vec<&'a [u8]>,
}

impl<'a> Line<'a> {
    /// One-based line number.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The key.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The raw fields; their count is the one requested from the parser.
    pub fn fields(&self) -> &[&'a [u8]] {
        &self.fields
    }

    /// An error about this line.
    pub fn error(&self, reason: Reason) -> Error {
        Error::new(self.number, self.key, reason)
    }

    fn field<T>(
        &self,
        i: usize,
        parse: impl FnOnce(&[u8]) -> Result<T, ValueError>,
    ) -> Result<T, Error> {
        let raw = self.fields.get(i).ok_or_else(|| {
            self.error(Reason::FieldCount {
                expected: i + 1,
                found: self.fields.len(),
            })
        })?;
        parse(raw).map_err(|error| {
            self.error(Reason::BadValue {
                field: i + 1,
                error,
            })
        })
    }

    /// Field `i` as a wire integer.
    pub fn int(&self, i: usize) -> Result<u64, Error> {
        self.field(i, parse_int)
    }

    /// Field `i` as `N` bytes of hex.
    pub fn hex<const N: usize>(&self, i: usize) -> Result<[u8; N], Error> {
        self.field(i, parse_hex::<N>)
    }

    /// Field `i` as a 32-byte hash.
    pub fn hash(&self, i: usize) -> Result<Hash, Error> {
        self.hex::<32>(i)
    }

    /// Field `i` as a key hash.
    pub fn key_hash(&self, i: usize) -> Result<KeyHash, Error> {
        self.hex::<32>(i).map(KeyHash)
    }

    /// Field `i` as a 32-byte public key.
    pub fn public_key(&self, i: usize) -> Result<PublicKey, Error> {
        self.hex::<32>(i).map(PublicKey)
    }

    /// Field `i` as a 64-byte signature.
    pub fn signature(&self, i: usize) -> Result<Signature, Error> {
        self.hex::<64>(i).map(Signature)
    }
}

/// Reads the lines of one message (or one block of a proof file) in order.
///
/// Each `next_*` call consumes one line that must carry the given key;
/// [`Parser::finish`] then requires the input to be exhausted. Never panics,
/// whatever the input.
#[derive(Clone, Debug)]
pub struct Parser<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> Parser<'a> {
    /// A parser whose first line is line 1.
    pub fn new(input: &'a [u8]) -> Self {
        Self::starting_at_line(input, 1)
    }

    /// A parser for input that starts at line `first_line` of a larger text
    /// (so that errors in a proof block name the line in the whole file).
    pub fn starting_at_line(input: &'a [u8], first_line: usize) -> Self {
        Parser {
            rest: input,
            line: first_line,
        }
    }

    /// The number of the next line to be read.
    pub fn line_number(&self) -> usize {
        self.line
    }

    /// Whether all input has been consumed.
    pub fn is_at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads the next line, which must be `key=` followed by exactly `count`
    /// fields separated by single spaces.
    pub fn next_line(&mut self, key: &'static str, count: usize) -> Result<Line<'a>, Error> {
        let number = self.line;
        let err = |reason| Error::new(number, key, reason);
        if self.rest.is_empty() {
            return Err(err(Reason::MissingLine));
        }
        let newline = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| err(Reason::Unterminated))?;
        let (content, tail) = self.rest.split_at(newline);
        let (_, rest) = tail.split_at(1);
        let equals = content
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| err(Reason::NoEquals(excerpt(content))))?;
        let (found_key, eq_value) = content.split_at(equals);
        if found_key != key.as_bytes() {
            return Err(err(Reason::UnexpectedKey {
                found: excerpt(found_key),
            }));
        }
        let (_, value) = eq_value.split_at(1);
        if value.last() == Some(&b'\r') {
            return Err(err(Reason::CarriageReturn));
        }
        let fields: Vec<&[u8]> = value.split(|&b| b == b' ').collect();
        if fields.len() != count {
            return Err(err(Reason::FieldCount {
                expected: count,
                found: fields.len(),
            }));
        }
        self.rest = rest;
        self.line += 1;
        Ok(Line {
            number,
            key,
            fields,
        })
    }

    /// Reads a `key=<integer>` line.
    pub fn next_int(&mut self, key: &'static str) -> Result<u64, Error> {
        self.next_line(key, 1)?.int(0)
    }

    /// Reads a `key=<32-byte hex>` line.
    pub fn next_hash(&mut self, key: &'static str) -> Result<Hash, Error> {
        self.next_line(key, 1)?.hash(0)
    }

    /// Reads a `key=<64-byte hex>` line.
    pub fn next_signature(&mut self, key: &'static str) -> Result<Signature, Error> {
        self.next_line(key, 1)?.signature(0)
    }

    /// Reads a `key=<32-byte hex public key>` line.
    pub fn next_public_key(&mut self, key: &'static str) -> Result<PublicKey, Error> {
        self.next_line(key, 1)?.public_key(0)
    }

    /// Reads a `key=<32-byte hex key hash>` line.
    pub fn next_key_hash(&mut self, key: &'static str) -> Result<KeyHash, Error> {
        self.next_line(key, 1)?.key_hash(0)
    }

    /// Reads lines with `key` up to the end of the input (zero or more):
    /// the repeatable last key of a message. Any other key is an error.
    pub fn repeated(&mut self, key: &'static str, count: usize) -> Result<Vec<Line<'a>>, Error> {
        let mut lines = Vec::new();
        while !self.is_at_end() {
            lines.push(self.next_line(key, count)?);
        }
        Ok(lines)
    }

    /// Requires that the input is exhausted.
    pub fn finish(self) -> Result<(), Error> {
        if self.rest.is_empty() {
            return Ok(());
        }
        let content = self.rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let key = content.split(|&b| b == b'=').next().unwrap_or_default();
        Err(Error::new(
            self.line,
            &excerpt(key),
            Reason::TrailingLine(excerpt(content)),
        ))
    }
}

/// One block of a multi-block text: its bytes (each line LF-terminated,
/// without the separating empty line) and the number of its first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    /// One-based number of the block's first line in the whole text.
    pub first_line: usize,
    /// The block's bytes.
    pub bytes: &'a [u8],
}

impl<'a> Block<'a> {
    /// A parser over this block that reports whole-text line numbers.
    pub fn parser(&self) -> Parser<'a> {
        Parser::starting_at_line(self.bytes, self.first_line)
    }
}

/// Splits a text into blocks separated by one empty line, as sigsum-go reads
/// proof files: every `\n\n` ends a block (keeping the first `\n`).
///
/// Never yields fewer than one block. Stray empty lines are not skipped: they
/// start a block with an empty line (which no message accepts), and a
/// trailing empty line yields a final empty block, so callers that check the
/// block count and parse each block reject both.
pub fn split_blocks(text: &[u8]) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    let mut first_line = 1;
    loop {
        let separator = rest.windows(2).position(|w| w == b"\n\n");
        match separator {
            Some(i) => {
                let (block, tail) = rest.split_at(i + 1);
                blocks.push(Block {
                    first_line,
                    bytes: block,
                });
                // The block's lines plus the empty separator line.
                first_line += block.iter().filter(|&&b| b == b'\n').count() + 1;
                let (_, after) = tail.split_at(1);
                rest = after;
            }
            None => {
                blocks.push(Block {
                    first_line,
                    bytes: rest,
                });
                return blocks;
            }
        }
    }
}

/// A field of a line being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'b> {
    /// A decimal integer.
    Int(u64),
    /// Bytes written as lowercase hex.
    Hex(&'b [u8]),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Hex(b) => f.write_str(&hex::encode(b)),
        }
    }
}

/// Builds a message as `key=value\n` lines with lowercase hex.
///
/// Keys come from this crate's message definitions and must not contain `=`
/// or a newline. Integers are written as given; callers keep them ≤ 2^63−1
/// (every size, index and timestamp in a log is), or the output will not
/// parse.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=<values separated by single spaces>\n`.
    pub fn line(&mut self, key: &str, values: &[Value<'_>]) -> &mut Self {
        debug_assert!(!key.contains(['=', '\n']), "invalid key {key:?}");
        self.out.push_str(key);
        self.out.push('=');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(' ');
            }
            // Writing to a String cannot fail.
            let _ = fmt::Write::write_fmt(&mut self.out, format_args!("{v}"));
        }
        self.out.push('\n');
        self
    }

    /// Appends `key=<decimal>\n`.
    pub fn int(&mut self, key: &str, value: u64) -> &mut Self {
        self.line(key, &[Value::Int(value)])
    }

    /// Appends `key=<lowercase hex>\n`.
    pub fn hex(&mut self, key: &str, bytes: &[u8]) -> &mut Self {
        self.line(key, &[Value::Hex(bytes)])
    }

    /// Appends an empty line (the block separator of proof files).
    pub fn empty_line(&mut self) -> &mut Self {
        self.out.push('\n');
        self
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// The finished text.
    pub fn into_string(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_the_sigsum_go_grammar() {
        assert_eq!(parse_int(b"0"), Ok(0));
        assert_eq!(parse_int(b"1285"), Ok(1285));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(MAX_INT));
        assert!(matches!(
            parse_int(b"9223372036854775808"),
            Err(ValueError::IntegerTooLarge(_))
        ));
        assert!(matches!(
            parse_int(b"99999999999999999999999"),
            Err(ValueError::IntegerTooLarge(_))
        ));
        assert!(matches!(parse_int(b"01"), Err(ValueError::LeadingZero(_))));
        assert!(matches!(parse_int(b"00"), Err(ValueError::LeadingZero(_))));
        assert!(matches!(parse_int(b"+1"), Err(ValueError::NotDecimal(_))));
        assert!(matches!(parse_int(b"-1"), Err(ValueError::NotDecimal(_))));
        assert!(matches!(parse_int(b"1 "), Err(ValueError::NotDecimal(_))));
        assert!(matches!(parse_int(b"1_0"), Err(ValueError::NotDecimal(_))));
        assert_eq!(parse_int(b""), Err(ValueError::EmptyInteger));
    }

    #[test]
    fn hex_is_case_insensitive_with_exact_length() {
        assert_eq!(parse_hex::<2>(b"aBcD"), Ok([0xab, 0xcd]));
        assert_eq!(
            parse_hex::<2>(b"abc"),
            Err(ValueError::HexLength {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            parse_hex::<2>(b"abcdef"),
            Err(ValueError::HexLength {
                expected: 4,
                found: 6
            })
        );
        assert_eq!(
            parse_hex::<2>(b"abcg"),
            Err(ValueError::HexCharacter {
                character: 'g',
                position: 3
            })
        );
    }

    #[test]
    fn parser_reads_keys_in_order_and_requires_the_end() {
        let mut p = Parser::new(b"size=4\nroot_hash=00\n");
        assert_eq!(p.next_int("size"), Ok(4));
        let line = p.next_line("root_hash", 1).unwrap();
        assert_eq!(line.number(), 2);
        assert_eq!(line.fields(), &[b"00".as_slice()]);
        p.finish().unwrap();
    }

    #[test]
    fn key_is_the_text_before_the_first_equals_sign() {
        let mut p = Parser::new(b"size=4=5\n");
        let e = p.next_int("size").unwrap_err();
        assert!(matches!(
            e.reason,
            Reason::BadValue {
                field: 1,
                error: ValueError::NotDecimal(_)
            }
        ));
    }

    #[test]
    fn unexpected_key_names_both_keys_and_the_line() {
        let mut p = Parser::new(b"size=4\nsignature=00\n");
        p.next_int("size").unwrap();
        let e = p.next_hash("root_hash").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.key, "root_hash");
        assert_eq!(
            e.reason,
            Reason::UnexpectedKey {
                found: "signature".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 2, key \"root_hash\": unexpected key \"signature\""
        );
    }

    #[test]
    fn crlf_line_endings_are_rejected() {
        let e = Parser::new(b"size=4\r\n").next_int("size").unwrap_err();
        assert_eq!(e.reason, Reason::CarriageReturn);
    }

    #[test]
    fn unterminated_final_line_is_rejected() {
        let e = Parser::new(b"size=4").next_int("size").unwrap_err();
        assert_eq!(e.reason, Reason::Unterminated);
    }

    #[test]
    fn missing_line_and_trailing_line_are_errors() {
        let e = Parser::new(b"").next_int("size").unwrap_err();
        assert_eq!(e.reason, Reason::MissingLine);
        let mut p = Parser::new(b"size=4\nextra=1\n");
        p.next_int("size").unwrap();
        let e = p.finish().unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "extra"));
        assert!(matches!(e.reason, Reason::TrailingLine(_)));
    }

    #[test]
    fn fields_are_separated_by_exactly_one_space() {
        let mut p = Parser::new(b"leaf=a b\n");
        assert_eq!(p.clone().next_line("leaf", 2).unwrap().fields().len(), 2);
        let e = Parser::new(b"leaf=a  b\n")
            .next_line("leaf", 2)
            .unwrap_err();
        assert_eq!(
            e.reason,
            Reason::FieldCount {
                expected: 2,
                found: 3
            }
        );
        let e = p.next_line("leaf", 3).unwrap_err();
        assert_eq!(
            e.reason,
            Reason::FieldCount {
                expected: 3,
                found: 2
            }
        );
    }

    #[test]
    fn empty_line_where_a_key_is_due_is_an_error() {
        let e = Parser::new(b"\n").next_int("size").unwrap_err();
        assert!(matches!(e.reason, Reason::NoEquals(_)));
    }

    #[test]
    fn repeated_key_reads_until_the_end_and_rejects_other_keys() {
        let mut p = Parser::new(b"n=1\nn=2\n");
        assert_eq!(p.repeated("n", 1).unwrap().len(), 2);
        assert!(p.is_at_end());
        let e = Parser::new(b"n=1\nm=2\n").repeated("n", 1).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Parser::new(b"").repeated("n", 1).unwrap().is_empty());
    }

    #[test]
    fn blocks_split_on_one_empty_line_with_file_line_numbers() {
        let blocks = split_blocks(b"a=1\nb=2\n\nc=3\n\nd=4\n");
        assert_eq!(
            blocks,
            vec![
                Block {
                    first_line: 1,
                    bytes: b"a=1\nb=2\n"
                },
                Block {
                    first_line: 4,
                    bytes: b"c=3\n"
                },
                Block {
                    first_line: 6,
                    bytes: b"d=4\n"
                },
            ]
        );
        let e = blocks[1].parser().next_int("x").unwrap_err();
        assert_eq!(e.line, 4);
    }

    #[test]
    fn extra_empty_lines_are_not_swallowed_by_block_splitting() {
        let blocks = split_blocks(b"a=1\n\n\nb=2\n");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].bytes, b"\nb=2\n");
        let trailing = split_blocks(b"a=1\n\n");
        assert_eq!(trailing.len(), 2);
        assert_eq!(trailing[1].bytes, b"");
        assert_eq!(split_blocks(b"").len(), 1);
    }

    #[test]
    fn writer_emits_lowercase_hex_and_single_spaces() {
        let mut w = Writer::new();
        w.int("size", 7)
            .hex("root_hash", &[0xAB, 0x01])
            .empty_line()
            .line("c", &[Value::Hex(&[0xFF]), Value::Int(0)]);
        assert_eq!(w.into_string(), "size=7\nroot_hash=ab01\n\nc=ff 0\n");
    }

    #[test]
    fn error_excerpts_of_untrusted_input_are_bounded() {
        let long = [b'x'; 1000];
        let mut input = long.to_vec();
        input.extend_from_slice(b"\n");
        let e = Parser::new(&input).next_int("size").unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }
}
