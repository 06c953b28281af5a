//! The state-machine snapshot file: its format, a writer that streams it out
//! in bounded chunks, and a reader that validates it while streaming it in.
//!
//! # Format, version 1
//!
//! All integers are big-endian.
//!
//! ```text
//! header   MAGIC "CAIRNSNP" (8 bytes) ‖ version u32 (= 1)
//! section  0x01 ‖ name length u8 ‖ column family name
//! record   0x02 ‖ key length u16 ‖ key ‖ value length u32 ‖ value
//! end      0xFF ‖ record count u64 ‖ SHA-256 (32 bytes) of every byte before it
//! ```
//!
//! A file is the header, then one section per column family of
//! [`SECTION_ORDER`], each exactly once and in that order, each followed by
//! its records in strictly increasing key order, then the end frame and
//! nothing after it. Keys are at most [`MAX_KEY_BYTES`] bytes and values at
//! most [`MAX_VALUE_BYTES`], so a damaged length never makes the reader
//! allocate more than that. The state record (`sm_meta`) comes first so that
//! an installer knows the state it is installing before the bulk of the
//! records arrives (see [`crate::state_machine`]).
//!
//! The reader refuses anything else — another magic or version, an unknown,
//! repeated or out-of-order column family, a record outside a section, keys
//! out of order, a truncated file, trailing bytes, a wrong record count or
//! checksum — with a [`FormatError`]; it never yields the end frame of a
//! file that does not check out completely. Change the format only together
//! with [`VERSION`].

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::log_store::{CF_LEAF_INDEX, CF_LEAVES, CF_ROOTS, CF_SM_META};

/// The first 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"CAIRNSNP";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// The column families of a snapshot, in file order: the small state record
/// first, the leaves last.
pub const SECTION_ORDER: [&str; 4] = [CF_SM_META, CF_ROOTS, CF_LEAF_INDEX, CF_LEAVES];
/// Longest key of a record (the crate's keys are at most 32 bytes).
pub const MAX_KEY_BYTES: usize = 64;
/// Longest value of a record (leaves are 128 bytes, the state record a few
/// KiB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

const TAG_SECTION: u8 = 0x01;
const TAG_RECORD: u8 = 0x02;
const TAG_END: u8 = 0xFF;

/// Why a snapshot file was refused (or could not be written).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading or writing the file failed.
    #[error("snapshot file IO: {0}")]
    Io(#[source] io::Error),
    /// The file ends before its end frame.
    #[error("snapshot file is truncated")]
    Truncated,
    /// The file does not start with [`MAGIC`].
    #[error("not a cairn snapshot file (bad magic)")]
    BadMagic,
    /// The file has a version this build does not read.
    #[error("snapshot format version {0}, this build reads {VERSION}")]
    Version(u32),
    /// A frame tag that is not a section, record or end.
    #[error("unknown frame tag {0:#04x}")]
    UnknownTag(u8),
    /// A section names a column family that is not part of a snapshot.
    #[error("unknown column family {0:?}")]
    UnknownColumnFamily(String),
    /// Sections out of [`SECTION_ORDER`], repeated, or missing at the end.
    #[error("column family section {found:?} where {expected:?} belongs")]
    SectionOrder {
        /// The section (or `end`) found.
        found: String,
        /// The section that belongs there.
        expected: String,
    },
    /// A record before the first section.
    #[error("record outside a column family section")]
    RecordOutsideSection,
    /// A key not above the previous key of its section.
    #[error("keys out of order in column family {0:?}")]
    KeyOrder(&'static str),
    /// A key or value above its bound.
    #[error("record of {key} + {value} bytes exceeds the bounds")]
    RecordTooLarge {
        /// Key length.
        key: usize,
        /// Value length.
        value: usize,
    },
    /// The end frame's record count differs from the records read.
    #[error("end frame counts {claimed} records, the file has {actual}")]
    RecordCount {
        /// Count in the end frame.
        claimed: u64,
        /// Records read.
        actual: u64,
    },
    /// The content does not hash to the end frame's checksum.
    #[error("snapshot file checksum mismatch")]
    Checksum,
    /// Bytes after the end frame.
    #[error("bytes after the end of the snapshot")]
    TrailingBytes,
}

fn io_err(e: io::Error) -> FormatError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FormatError::Truncated
    } else {
        FormatError::Io(e)
    }
}

/// What a [`SnapshotWriter`] did: evidence that it streamed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Bytes of the file.
    pub bytes: u64,
    /// Records written.
    pub records: u64,
    /// Writes to the underlying file (each one buffered chunk).
    pub chunks: u64,
    /// Largest chunk written, in bytes: at most the chunk bound, unless one
    /// record alone is larger.
    pub largest_chunk: usize,
}

/// Writes a snapshot file frame by frame, buffering at most about
/// `chunk_bytes` (plus one record) before each write to `out`.
///
/// The writer enforces the format's rules (section order, key order,
/// bounds), so it never produces a file the reader refuses.
pub struct SnapshotWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    chunk_bytes: usize,
    hasher: Sha256,
    stats: WriteStats,
    /// Index in [`SECTION_ORDER`] of the next section to begin.
    next_section: usize,
    current: Option<&'static str>,
    last_key: Option<Vec<u8>>,
}

impl<W: Write> std::fmt::Debug for SnapshotWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("section", &self.current)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SnapshotWriter<W> {
    /// A writer to `out` that flushes every `chunk_bytes` (at least 1); the
    /// header is the first thing written.
    pub fn new(out: W, chunk_bytes: usize) -> Self {
        let chunk_bytes = chunk_bytes.max(1);
        let mut w = SnapshotWriter {
            out,
            buf: Vec::with_capacity(chunk_bytes.min(MAX_VALUE_BYTES)),
            chunk_bytes,
            hasher: Sha256::new(),
            stats: WriteStats::default(),
            next_section: 0,
            current: None,
            last_key: None,
        };
        w.buf.extend_from_slice(&MAGIC);
        w.buf.extend_from_slice(&VERSION.to_be_bytes());
        w
    }

    /// Starts the section of `name`, which must be the next of
    /// [`SECTION_ORDER`].
    pub fn begin_section(&mut self, name: &'static str) -> Result<(), FormatError> {
        let expected = SECTION_ORDER.get(self.next_section).copied();
        if expected != Some(name) {
            return Err(FormatError::SectionOrder {
                found: name.to_string(),
                expected: expected.unwrap_or("end").to_string(),
            });
        }
        self.next_section += 1;
        self.current = Some(name);
        self.last_key = None;
        self.reserve(2 + name.len())?;
        self.buf.push(TAG_SECTION);
        // Names are short constants.
        self.buf.push(name.len() as u8);
        self.buf.extend_from_slice(name.as_bytes());
        Ok(())
    }

    /// Appends a record to the current section; keys must increase.
    pub fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let Some(section) = self.current else {
            return Err(FormatError::RecordOutsideSection);
        };
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(FormatError::RecordTooLarge {
                key: key.len(),
                value: value.len(),
            });
        }
        if self.last_key.as_deref().is_some_and(|last| key <= last) {
            return Err(FormatError::KeyOrder(section));
        }
        self.reserve(7 + key.len() + value.len())?;
        self.buf.push(TAG_RECORD);
        self.buf
            .extend_from_slice(&(key.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(key);
        self.buf
            .extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(value);
        match &mut self.last_key {
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        self.stats.records += 1;
        Ok(())
    }

    /// Writes the end frame and flushes; every section must have been
    /// begun. Returns the output (not synced) and the statistics.
    pub fn finish(mut self) -> Result<(W, WriteStats), FormatError> {
        if let Some(missing) = SECTION_ORDER.get(self.next_section) {
            return Err(FormatError::SectionOrder {
                found: "end".to_string(),
                expected: missing.to_string(),
            });
        }
        self.reserve(9)?;
        self.buf.push(TAG_END);
        self.buf
            .extend_from_slice(&self.stats.records.to_be_bytes());
        self.flush_chunk()?;
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        self.buf.extend_from_slice(&digest);
        self.flush_chunk()?;
        self.out.flush().map_err(FormatError::Io)?;
        Ok((self.out, self.stats))
    }

    /// Flushes the buffer first if `more` bytes would take it past the bound.
    fn reserve(&mut self, more: usize) -> Result<(), FormatError> {
        if !self.buf.is_empty() && self.buf.len() + more > self.chunk_bytes {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.buf);
        self.out.write_all(&self.buf).map_err(FormatError::Io)?;
        self.stats.chunks += 1;
        self.stats.bytes += self.buf.len() as u64;
        self.stats.largest_chunk = self.stats.largest_chunk.max(self.buf.len());
        self.buf.clear();
        Ok(())
    }
}

/// One frame read from a snapshot file; records borrow the reader's buffers.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The start of the section of a column family.
    Section(&'static str),
    /// A record of the current section.
    Record {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// The end: every byte of the file checked out.
    End,
}

/// Reads and validates a snapshot file frame by frame, holding at most one
/// record in memory (wrap files in a `BufReader`).
pub struct SnapshotReader<R: Read> {
    inner: R,
    hasher: Sha256,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Whether `key` holds the previous key of the current section.
    have_key: bool,
    next_section: usize,
    current: Option<&'static str>,
    records: u64,
    done: bool,
}

impl<R: Read> std::fmt::Debug for SnapshotReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("section", &self.current)
            .field("records", &self.records)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the header.
    pub fn new(inner: R) -> Result<Self, FormatError> {
        let mut r = SnapshotReader {
            inner,
            hasher: Sha256::new(),
            key: Vec::with_capacity(MAX_KEY_BYTES),
            value: Vec::new(),
            have_key: false,
            next_section: 0,
            current: None,
            records: 0,
            done: false,
        };
        let mut header = [0u8; 12];
        r.read_hashed(&mut header)?;
        if header[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(FormatError::Version(version));
        }
        Ok(r)
    }

    /// The next frame. After [`Frame::End`] (or any error) there is nothing
    /// more to read.
    pub fn next_frame(&mut self) -> Result<Frame<'_>, FormatError> {
        if self.done {
            return Ok(Frame::End);
        }
        let mut tag = [0u8; 1];
        self.read_hashed(&mut tag)?;
        match tag[0] {
            TAG_SECTION => {
                let mut len = [0u8; 1];
                self.read_hashed(&mut len)?;
                let mut name = vec![0u8; usize::from(len[0])];
                self.read_hashed(&mut name)?;
                let name = String::from_utf8_lossy(&name).into_owned();
                let Some(&known) = SECTION_ORDER.iter().find(|n| **n == name) else {
                    return Err(FormatError::UnknownColumnFamily(name));
                };
                let expected = SECTION_ORDER.get(self.next_section).copied();
                if expected != Some(known) {
                    return Err(FormatError::SectionOrder {
                        found: name,
                        expected: expected.unwrap_or("end").to_string(),
                    });
                }
                self.next_section += 1;
                self.current = Some(known);
                self.have_key = false;
                Ok(Frame::Section(known))
            }
            TAG_RECORD => {
                let Some(section) = self.current else {
                    return Err(FormatError::RecordOutsideSection);
                };
                let mut len = [0u8; 2];
                self.read_hashed(&mut len)?;
                let key_len = usize::from(u16::from_be_bytes(len));
                if key_len > MAX_KEY_BYTES {
                    return Err(FormatError::RecordTooLarge {
                        key: key_len,
                        value: 0,
                    });
                }
                let mut key = [0u8; MAX_KEY_BYTES];
                let key = &mut key[..key_len];
                self.read_hashed(key)?;
                if self.have_key && *key <= *self.key {
                    return Err(FormatError::KeyOrder(section));
                }
                let mut len = [0u8; 4];
                self.read_hashed(&mut len)?;
                let value_len = u32::from_be_bytes(len) as usize;
                if value_len > MAX_VALUE_BYTES {
                    return Err(FormatError::RecordTooLarge {
                        key: key_len,
                        value: value_len,
                    });
                }
                self.key.clear();
                self.key.extend_from_slice(key);
                self.have_key = true;
                self.value.resize(value_len, 0);
                let mut value = std::mem::take(&mut self.value);
                let read = self.read_hashed(&mut value);
                self.value = value;
                read?;
                self.records += 1;
                Ok(Frame::Record {
                    key: &self.key,
                    value: &self.value,
                })
            }
            TAG_END => {
                if let Some(missing) = SECTION_ORDER.get(self.next_section) {
                    return Err(FormatError::SectionOrder {
                        found: "end".to_string(),
                        expected: missing.to_string(),
                    });
                }
                let mut count = [0u8; 8];
                self.read_hashed(&mut count)?;
                let claimed = u64::from_be_bytes(count);
                let digest: [u8; 32] = self.hasher.clone().finalize().into();
                let mut stored = [0u8; 32];
                self.inner.read_exact(&mut stored).map_err(io_err)?;
                if stored != digest {
                    return Err(FormatError::Checksum);
                }
                if claimed != self.records {
                    return Err(FormatError::RecordCount {
                        claimed,
                        actual: self.records,
                    });
                }
                let mut extra = [0u8; 1];
                loop {
                    match self.inner.read(&mut extra) {
                        Ok(0) => break,
                        Ok(_) => return Err(FormatError::TrailingBytes),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(FormatError::Io(e)),
                    }
                }
                self.done = true;
                Ok(Frame::End)
            }
            other => Err(FormatError::UnknownTag(other)),
        }
    }

    fn read_hashed(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        self.inner.read_exact(buf).map_err(io_err)?;
        self.hasher.update(&*buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid file: every section, a few records.
    fn sample(chunk: usize) -> (Vec<u8>, WriteStats) {
        let mut w = SnapshotWriter::new(Vec::new(), chunk);
        w.begin_section(CF_SM_META).unwrap();
        w.record(b"state", &[1, 2, 3]).unwrap();
        w.begin_section(CF_ROOTS).unwrap();
        w.record(&1u64.to_be_bytes(), &[7; 32]).unwrap();
        w.begin_section(CF_LEAF_INDEX).unwrap();
        w.begin_section(CF_LEAVES).unwrap();
        for i in 0..40u64 {
            w.record(&i.to_be_bytes(), &[i as u8; 128]).unwrap();
        }
        w.finish().unwrap()
    }

    /// Reads `bytes` to the end, returning the records per section.
    fn read_all(bytes: &[u8]) -> Result<Vec<(&'static str, usize)>, FormatError> {
        let mut r = SnapshotReader::new(bytes)?;
        let mut out: Vec<(&'static str, usize)> = Vec::new();
        loop {
            match r.next_frame()? {
                Frame::Section(name) => out.push((name, 0)),
                Frame::Record { .. } => out.last_mut().expect("section").1 += 1,
                Frame::End => return Ok(out),
            }
        }
    }

    /// Re-writes a raw file body (after the header) with a valid end frame.
    fn with_end(body: &[u8], records: u64) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes.push(TAG_END);
        bytes.extend_from_slice(&records.to_be_bytes());
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        bytes.extend_from_slice(&digest);
        bytes
    }

    fn section(name: &str) -> Vec<u8> {
        let mut b = vec![TAG_SECTION, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b
    }

    fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = vec![TAG_RECORD];
        b.extend_from_slice(&(key.len() as u16).to_be_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        b.extend_from_slice(value);
        b
    }

    #[test]
    fn a_written_file_reads_back_section_by_section() {
        let (bytes, stats) = sample(1 << 20);
        assert_eq!(stats.bytes, bytes.len() as u64);
        assert_eq!(stats.records, 42);
        assert_eq!(
            read_all(&bytes).unwrap(),
            vec![
                (CF_SM_META, 1),
                (CF_ROOTS, 1),
                (CF_LEAF_INDEX, 0),
                (CF_LEAVES, 40)
            ]
        );
    }

    #[test]
    fn the_writer_never_buffers_more_than_its_chunk_bound() {
        let (bytes, stats) = sample(512);
        assert!(bytes.len() > 4 * 512, "{} bytes", bytes.len());
        assert!(stats.largest_chunk <= 512, "{stats:?}");
        assert!(stats.chunks as usize >= bytes.len() / 512, "{stats:?}");
        // Same content whatever the chunking.
        assert_eq!(bytes, sample(1 << 20).0);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let (bytes, _) = sample(1 << 20);
        for len in 0..bytes.len() {
            assert!(
                read_all(&bytes[..len]).is_err(),
                "a file cut at {len} of {} bytes was accepted",
                bytes.len()
            );
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(
                read_all(&bad).is_err(),
                "a flipped byte at {at} was accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer), Err(FormatError::TrailingBytes)));
    }

    #[test]
    fn unknown_repeated_missing_and_out_of_order_sections_are_refused() {
        let all = |names: &[&str]| -> Vec<u8> { names.iter().flat_map(|n| section(n)).collect() };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (all(&["sm_meta", "roots", "logs", "leaves"]), "unknown"),
            (
                all(&["roots", "sm_meta", "leaf_index", "leaves"]),
                "out of order",
            ),
            (
                all(&["sm_meta", "sm_meta", "roots", "leaf_index", "leaves"]),
                "repeated",
            ),
            (all(&["sm_meta", "roots", "leaf_index"]), "missing"),
            (record(b"k", b"v"), "record before a section"),
        ];
        for (body, what) in cases {
            let bytes = with_end(&body, 0);
            assert!(read_all(&bytes).is_err(), "{what} section accepted");
        }
        let ok = with_end(&all(&SECTION_ORDER), 0);
        assert!(read_all(&ok).is_ok());
    }

    #[test]
    fn keys_out_of_order_or_repeated_and_oversized_records_are_refused() {
        let mut body = section(CF_SM_META);
        body.extend(section(CF_ROOTS));
        body.extend(section(CF_LEAF_INDEX));
        body.extend(section(CF_LEAVES));
        for (records, what) in [
            (vec![record(&[2], b""), record(&[1], b"")], "descending"),
            (vec![record(&[1], b""), record(&[1], b"")], "repeated"),
            (vec![record(&[0; MAX_KEY_BYTES + 1], b"")], "long key"),
        ] {
            let mut b = body.clone();
            for r in &records {
                b.extend_from_slice(r);
            }
            let bytes = with_end(&b, records.len() as u64);
            assert!(read_all(&bytes).is_err(), "{what} accepted");
        }
        // A value length above the bound is refused before it is allocated.
        let mut b = body.clone();
        b.extend_from_slice(&[TAG_RECORD, 0, 1, 9]);
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            read_all(&with_end(&b, 1)),
            Err(FormatError::RecordTooLarge { .. })
        ));
        // The same keys in separate sections are fine.
        let mut b = section(CF_SM_META);
        b.extend(record(&[1], b""));
        b.extend(section(CF_ROOTS));
        b.extend(record(&[1], b""));
        b.extend(section(CF_LEAF_INDEX));
        b.extend(section(CF_LEAVES));
        assert!(read_all(&with_end(&b, 2)).is_ok());
    }

    #[test]
    fn another_magic_version_or_record_count_is_refused() {
        let (bytes, _) = sample(1 << 20);
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(read_all(&bad), Err(FormatError::BadMagic)));
        let mut v2 = MAGIC.to_vec();
        v2.extend_from_slice(&2u32.to_be_bytes());
        assert!(matches!(read_all(&v2), Err(FormatError::Version(2))));
        let body: Vec<u8> = SECTION_ORDER.iter().flat_map(|n| section(n)).collect();
        assert!(matches!(
            read_all(&with_end(&body, 3)),
            Err(FormatError::RecordCount { .. })
        ));
    }

    #[test]
    fn the_writer_refuses_what_the_reader_would() {
        let mut w = SnapshotWriter::new(Vec::new(), 64);
        assert!(w.record(b"k", b"v").is_err());
        assert!(w.begin_section(CF_LEAVES).is_err());
        w.begin_section(CF_SM_META).unwrap();
        w.record(&[2], b"").unwrap();
        assert!(w.record(&[1], b"").is_err());
        assert!(w.finish().is_err(), "finished without every section");
    }
}
