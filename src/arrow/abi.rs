//! The Arrow C Data Interface structs (`ArrowSchema`, `ArrowArray`, `ArrowArrayStream`), laid
//! out as the specification declares them, and owners that take a struct over from its producer
//! ("move" it, as the specification says a consumer does) and call its release callback exactly
//! once when dropped.
//!
//! Why hand-written structs instead of arrow-rs's FFI (`arrow-array` / `arrow-schema` /
//! `arrow-data` with the `ffi` feature): dlshare reads a handful of fixed-width layouts and
//! writes two; the structs are five dozen lines, while arrow-rs adds a dependency tree that was
//! measured at several times this crate's build time and library size (docs/design.md, "Arrow"),
//! and its import validates into `ArrayData` objects that dlshare would then unpack again. The
//! checks dlshare needs (buffer counts, lengths, offsets, NULL pointers, formats) are in
//! `import.rs`, each naming the column and field.

use std::ffi::{c_char, c_int, c_void};

/// `ArrowSchema.flags`: the dictionary's order is meaningful.
pub const ARROW_FLAG_DICTIONARY_ORDERED: i64 = 1;
/// `ArrowSchema.flags`: the field may hold nulls.
pub const ARROW_FLAG_NULLABLE: i64 = 2;

/// An Arrow type (C Data Interface).
#[repr(C)]
#[derive(Debug)]
pub struct ArrowSchema {
    pub format: *const c_char,
    pub name: *const c_char,
    pub metadata: *const c_char,
    pub flags: i64,
    pub n_children: i64,
    pub children: *mut *mut ArrowSchema,
    pub dictionary: *mut ArrowSchema,
    pub release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    pub private_data: *mut c_void,
}

/// Arrow data (C Data Interface).
#[repr(C)]
#[derive(Debug)]
pub struct ArrowArray {
    pub length: i64,
    pub null_count: i64,
    pub offset: i64,
    pub n_buffers: i64,
    pub n_children: i64,
    pub buffers: *mut *const c_void,
    pub children: *mut *mut ArrowArray,
    pub dictionary: *mut ArrowArray,
    pub release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    pub private_data: *mut c_void,
}

/// A stream of Arrow arrays of one type (C Stream Interface).
#[repr(C)]
#[derive(Debug)]
pub struct ArrowArrayStream {
    pub get_schema: Option<unsafe extern "C" fn(*mut ArrowArrayStream, *mut ArrowSchema) -> c_int>,
    pub get_next: Option<unsafe extern "C" fn(*mut ArrowArrayStream, *mut ArrowArray) -> c_int>,
    pub get_last_error: Option<unsafe extern "C" fn(*mut ArrowArrayStream) -> *const c_char>,
    pub release: Option<unsafe extern "C" fn(*mut ArrowArrayStream)>,
    pub private_data: *mut c_void,
}

impl ArrowSchema {
    /// A released (empty) schema: what a moved-from struct looks like.
    pub const fn released() -> ArrowSchema {
        ArrowSchema {
            format: std::ptr::null(),
            name: std::ptr::null(),
            metadata: std::ptr::null(),
            flags: 0,
            n_children: 0,
            children: std::ptr::null_mut(),
            dictionary: std::ptr::null_mut(),
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }
}

impl ArrowArray {
    /// A released (empty) array: what a moved-from struct looks like.
    pub const fn released() -> ArrowArray {
        ArrowArray {
            length: 0,
            null_count: 0,
            offset: 0,
            n_buffers: 0,
            n_children: 0,
            buffers: std::ptr::null_mut(),
            children: std::ptr::null_mut(),
            dictionary: std::ptr::null_mut(),
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }
}

macro_rules! owner {
    ($(#[$doc:meta])* $owner:ident, $raw:ty) => {
        $(#[$doc])*
        pub struct $owner(Box<$raw>);

        // SAFETY: the specification lets a consumer release (and read) the data from any
        // thread; the owner is the only holder of the moved struct.
        unsafe impl Send for $owner {}
        // SAFETY: shared access only reads the struct.
        unsafe impl Sync for $owner {}

        impl $owner {
            /// Moves the struct at `p` into a new owner and marks `*p` released (release =
            /// NULL), as a consumer must. None when `*p` is already released.
            ///
            /// # Safety
            /// `p` is non-NULL and points to a valid struct the caller may move.
            pub unsafe fn take(p: *mut $raw) -> Option<$owner> {
                // SAFETY: caller contract; the bitwise copy is the move the specification
                // describes, and clearing `release` makes the source a released struct.
                unsafe {
                    (*p).release?;
                    let moved = std::ptr::read(p);
                    (*p).release = None;
                    Some($owner(Box::new(moved)))
                }
            }

            pub fn raw(&self) -> &$raw {
                &self.0
            }

            /// The struct's address (stable: it lives in a box).
            pub fn as_ptr(&self) -> *mut $raw {
                (&*self.0 as *const $raw).cast_mut()
            }
        }

        impl Drop for $owner {
            fn drop(&mut self) {
                if let Some(release) = self.0.release {
                    // SAFETY: the struct was moved in with a release callback, which runs once
                    // (the producer sets it to NULL; we never call it again either way).
                    unsafe { release(&mut *self.0) };
                    self.0.release = None;
                }
            }
        }
    };
}

owner!(
    /// An `ArrowSchema` taken over from its producer; released once on drop.
    OwnedSchema,
    ArrowSchema
);
owner!(
    /// An `ArrowArray` taken over from its producer; released once on drop.
    OwnedArray,
    ArrowArray
);
owner!(
    /// An `ArrowArrayStream` taken over from its producer; released once on drop.
    OwnedStream,
    ArrowArrayStream
);
