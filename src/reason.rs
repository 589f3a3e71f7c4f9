//! Why a conversion copied or could not share: the stable reason codes (a leaf: `error` carries
//! one in `Error::CannotShare`, the decision in `convert` picks one).

/// Why a conversion copied (or, in SHARE mode, why it could not share).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Shared: nothing stood in the way.
    None,
    ReadOnly,
    NegativeStride,
    StrideNotItemMultiple,
    ByteOrder,
    Misaligned,
    DtypeChange,
    DeviceChange,
    CopyRequested,
    /// An Arrow array whose layout a tensor cannot view (nulls, several chunks, bit-packed
    /// bools, dictionary or date/time values, NaN to fill).
    ArrowLayout,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 10] = [
        Reason::None,
        Reason::ReadOnly,
        Reason::NegativeStride,
        Reason::StrideNotItemMultiple,
        Reason::ByteOrder,
        Reason::Misaligned,
        Reason::DtypeChange,
        Reason::DeviceChange,
        Reason::CopyRequested,
        Reason::ArrowLayout,
    ];

    /// Stable snake_case code (the Python binding's `.reason`), NUL-terminated for C.
    pub fn c_code(self) -> &'static std::ffi::CStr {
        match self {
            Reason::None => c"none",
            Reason::ReadOnly => c"read_only",
            Reason::NegativeStride => c"negative_stride",
            Reason::StrideNotItemMultiple => c"stride_not_item_multiple",
            Reason::ByteOrder => c"byte_order",
            Reason::Misaligned => c"misaligned",
            Reason::DtypeChange => c"dtype_change",
            Reason::DeviceChange => c"device_change",
            Reason::CopyRequested => c"copy_requested",
            Reason::ArrowLayout => c"arrow_layout",
        }
    }

    /// Stable snake_case code (the Python binding's `.reason`).
    pub fn code(self) -> &'static str {
        self.c_code().to_str().unwrap_or("none")
    }
}
