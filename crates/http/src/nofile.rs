//! The open-file (descriptor) limit: every connection holds one.

use std::io;

/// The descriptor limits of the process, as [`raise_nofile_limit`] found
/// and left them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before the call.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the most the soft limit can be raised to).
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE of the process to its hard limit (on
/// macOS, also to the kernel's per-process maximum), so that the server is
/// not limited to the customary soft limit of 1024 descriptors. Binaries
/// call it once at start, before [`crate::Server::new`], which fits the
/// connection cap to the limit then in force. Errors: the limit cannot be
/// read or set (not on Unix: [`io::ErrorKind::Unsupported`]).
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let (before, _) = Resource::NOFILE.get()?;
        rlimit::increase_nofile_limit(u64::MAX)?;
        let (soft, hard) = Resource::NOFILE.get()?;
        Ok(NofileLimit { before, soft, hard })
    }
    #[cfg(not(unix))]
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The soft descriptor limit, or `None` if unlimited or unknown.
pub(crate) fn soft_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::Resource::NOFILE.get() {
            Ok((soft, _)) if soft != rlimit::INFINITY => Some(soft),
            _ => None,
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}
