//! The few public error kinds shared by every Strata layer.
//!
//! Each kind tells the caller what to do about it:
//! - [`Error::InvalidArgument`]: fix the call; nothing was changed.
//! - [`Error::Corruption`]: a persisted file failed a checksum or a bounds check; the message
//!   names the file. Restore from a checkpoint or remove the damaged file.
//! - [`Error::Io`]: the storage backend failed; the operation may be retried, but a failed
//!   write poisons the database (see [`Error::Poisoned`]).
//! - [`Error::NotFound`]: a storage object does not exist (storage-trait level only).
//! - [`Error::Poisoned`]: an earlier background or storage write failed; the database refuses
//!   further writes. Close and reopen it; reopening recovers the last durable state.
//! - [`Error::Closed`]: the database was closed.
//! - [`Error::Incomplete`]: a memory-only read ([`crate::ReadTier::Memory`]) needed storage
//!   I/O. Nothing failed; repeat the read with I/O allowed.
//! - [`Error::Busy`]: another writer holds the database (a locked directory, or a newer
//!   writer epoch on a shared store). Nothing was written; close this handle, and open the
//!   database only where no other writer runs.

use std::fmt;

/// Result alias used throughout Strata.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Strata error. See the module documentation for what each kind asks of the caller.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A bad argument (key too large, unknown table, invalid settings). Nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Persisted data failed validation. `file` names the object that is damaged.
    #[error("corruption in {file}: {detail}")]
    Corruption {
        /// Storage path of the damaged object.
        file: String,
        /// What check failed.
        detail: String,
    },
    /// The storage backend failed.
    #[error("I/O error ({context}): {message}")]
    Io {
        /// What was being done, usually including the object path.
        context: String,
        /// The backend's message.
        message: String,
    },
    /// The named storage object does not exist.
    #[error("object not found: {0}")]
    NotFound(String),
    /// An earlier write to storage failed; the database refuses further writes.
    #[error("database refuses writes after an earlier failure ({0}); close and reopen it")]
    Poisoned(String),
    /// The database has been closed.
    #[error("database is closed")]
    Closed,
    /// A memory-only read needed storage I/O (RocksDB's `Status::Incomplete`).
    #[error("incomplete: {0} is not in memory")]
    Incomplete(String),
    /// Another writer holds the database; the message names it where known.
    #[error("busy: {0}")]
    Busy(String),
}

impl Error {
    /// Builds a [`Error::Corruption`] for `file`.
    pub fn corruption(file: impl fmt::Display, detail: impl fmt::Display) -> Self {
        Error::Corruption {
            file: file.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Builds an [`Error::Io`].
    pub fn io(context: impl fmt::Display, message: impl fmt::Display) -> Self {
        Error::Io {
            context: context.to_string(),
            message: message.to_string(),
        }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(msg: impl fmt::Display) -> Self {
        Error::InvalidArgument(msg.to_string())
    }

    /// True for [`Error::Incomplete`].
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Error::Incomplete(_))
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// Re-labels a corruption error with the file it was found in (decoders that work on
    /// bytes do not know their file name).
    pub fn in_file(self, file: &str) -> Self {
        match self {
            Error::Corruption { detail, .. } => Error::Corruption {
                file: file.to_string(),
                detail,
            },
            other => other,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io("local file", e)
    }
}
