//! The one error type. Each variant corresponds to exactly one stable C status code
//! (`ffi::status_of`); the message says what was wrong and what to do instead.

use crate::reason::Reason;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    NullArgument(String),
    InvalidHandle(String),
    InvalidArgument(String),
    InvalidDlpack(String),
    UnsupportedVersion(String),
    UnsupportedDtype(String),
    UnsupportedDevice(String),
    /// SHARE mode met an obstacle; the reason says which.
    CannotShare(Reason, String),
    ReadOnly(String),
    Overflow(String),
    OutOfMemory(String),
    DeviceUnavailable(String),
    Cuda(String),
    Panic(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn message(&self) -> &str {
        match self {
            Error::NullArgument(m)
            | Error::InvalidHandle(m)
            | Error::InvalidArgument(m)
            | Error::InvalidDlpack(m)
            | Error::UnsupportedVersion(m)
            | Error::UnsupportedDtype(m)
            | Error::UnsupportedDevice(m)
            | Error::CannotShare(_, m)
            | Error::ReadOnly(m)
            | Error::Overflow(m)
            | Error::OutOfMemory(m)
            | Error::DeviceUnavailable(m)
            | Error::Cuda(m)
            | Error::Panic(m) => m,
        }
    }
}

impl Error {
    /// The same error (same status) with `prefix: ` put before its message, e.g. to say which
    /// column of several was wrong.
    pub fn context(self, prefix: &str) -> Error {
        let wrap = |m: String| format!("{prefix}: {m}");
        match self {
            Error::NullArgument(m) => Error::NullArgument(wrap(m)),
            Error::InvalidHandle(m) => Error::InvalidHandle(wrap(m)),
            Error::InvalidArgument(m) => Error::InvalidArgument(wrap(m)),
            Error::InvalidDlpack(m) => Error::InvalidDlpack(wrap(m)),
            Error::UnsupportedVersion(m) => Error::UnsupportedVersion(wrap(m)),
            Error::UnsupportedDtype(m) => Error::UnsupportedDtype(wrap(m)),
            Error::UnsupportedDevice(m) => Error::UnsupportedDevice(wrap(m)),
            Error::CannotShare(r, m) => Error::CannotShare(r, wrap(m)),
            Error::ReadOnly(m) => Error::ReadOnly(wrap(m)),
            Error::Overflow(m) => Error::Overflow(wrap(m)),
            Error::OutOfMemory(m) => Error::OutOfMemory(wrap(m)),
            Error::DeviceUnavailable(m) => Error::DeviceUnavailable(wrap(m)),
            Error::Cuda(m) => Error::Cuda(wrap(m)),
            Error::Panic(m) => Error::Panic(wrap(m)),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}
