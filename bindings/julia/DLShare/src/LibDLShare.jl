"""
    DLShare.LibDLShare

The C declarations of `include/dlshare.h` that DLShare uses, one `ccall` per C function, with
the C names (as Clang.jl would generate them). Struct layouts match the C structs field for
field; `tests/python/test_julia_contract.py` checks every declaration here against the header
and the shared library, and replays the calls through ctypes.
"""
module LibDLShare

using Libdl

# Path of libdlshare, set by __init__. ccall evaluates a non-constant library expression when a
# call site first runs, so the library can be chosen at load time (DLSHARE_LIBRARY).
libdlshare = ""

"""
    find_library() -> String

`ENV["DLSHARE_LIBRARY"]` when set; else the library installed into this checkout's
`build/_install` (tests/c/run.sh) or built by cargo (`target/release`); else the system's.
"""
function find_library()
    path = get(ENV, "DLSHARE_LIBRARY", "")
    isempty(path) || return path
    repo = normpath(joinpath(@__DIR__, "..", "..", "..", ".."))
    for candidate in (joinpath(repo, "build", "_install", "lib", "libdlshare.so"),
                      joinpath(repo, "target", "release", "libdlshare.so"))
        isfile(candidate) && return candidate
    end
    found = Libdl.find_library(["libdlshare"])
    isempty(found) && error("libdlshare not found: set DLSHARE_LIBRARY=/path/to/libdlshare.so, " *
                            "or build it (bash tests/c/run.sh installs it into build/_install)")
    return found
end

function __init__()
    global libdlshare = find_library()
    return nothing
end

# ---- DLPack 1.3 ----------------------------------------------------------------------------

const kDLCPU = Cint(1)
const kDLCUDA = Cint(2)
const kDLCUDAHost = Cint(3)
const kDLCUDAManaged = Cint(13)

const kDLInt = UInt8(0)
const kDLUInt = UInt8(1)
const kDLFloat = UInt8(2)
const kDLBfloat = UInt8(4)
const kDLComplex = UInt8(5)
const kDLBool = UInt8(6)

const DLPACK_MAJOR_VERSION = 1
const DLPACK_FLAG_BITMASK_READ_ONLY = UInt64(1)
const DLPACK_FLAG_BITMASK_IS_COPIED = UInt64(2)

struct DLPackVersion
    major::UInt32
    minor::UInt32
end

struct DLDevice
    device_type::Cint
    device_id::Cint
end

struct DLDataType
    code::UInt8
    bits::UInt8
    lanes::UInt16
end

struct DLTensor
    data::Ptr{Cvoid}
    device::DLDevice
    ndim::Cint
    dtype::DLDataType
    shape::Ptr{Int64}
    strides::Ptr{Int64}
    byte_offset::UInt64
end

struct DLManagedTensor
    dl_tensor::DLTensor
    manager_ctx::Ptr{Cvoid}
    deleter::Ptr{Cvoid}
end

struct DLManagedTensorVersioned
    version::DLPackVersion
    manager_ctx::Ptr{Cvoid}
    deleter::Ptr{Cvoid}
    flags::UInt64
    dl_tensor::DLTensor
end

# ---- dlshare -------------------------------------------------------------------------------

const DLSHARE_OK = Cint(0)
const DLSHARE_ERR_NULL_ARGUMENT = Cint(1)
const DLSHARE_ERR_INVALID_HANDLE = Cint(2)
const DLSHARE_ERR_INVALID_ARGUMENT = Cint(3)
const DLSHARE_ERR_INVALID_DLPACK = Cint(4)
const DLSHARE_ERR_UNSUPPORTED_VERSION = Cint(5)
const DLSHARE_ERR_UNSUPPORTED_DTYPE = Cint(6)
const DLSHARE_ERR_UNSUPPORTED_DEVICE = Cint(7)
const DLSHARE_ERR_CANNOT_SHARE = Cint(8)
const DLSHARE_ERR_READ_ONLY = Cint(9)
const DLSHARE_ERR_OVERFLOW = Cint(10)
const DLSHARE_ERR_OUT_OF_MEMORY = Cint(11)
const DLSHARE_ERR_DEVICE_UNAVAILABLE = Cint(12)
const DLSHARE_ERR_CUDA = Cint(13)
const DLSHARE_ERR_PANIC = Cint(14)

const DLSHARE_MODE_SHARE = Cint(0)
const DLSHARE_MODE_SHARE_OR_COPY = Cint(1)
const DLSHARE_MODE_COPY = Cint(2)

const DLSHARE_REASON_NONE = Cint(0)
const DLSHARE_REASON_READ_ONLY = Cint(1)
const DLSHARE_REASON_NEGATIVE_STRIDE = Cint(2)
const DLSHARE_REASON_STRIDE_NOT_ITEM_MULTIPLE = Cint(3)
const DLSHARE_REASON_BYTE_ORDER = Cint(4)
const DLSHARE_REASON_MISALIGNED = Cint(5)
const DLSHARE_REASON_DTYPE_CHANGE = Cint(6)
const DLSHARE_REASON_DEVICE_CHANGE = Cint(7)
const DLSHARE_REASON_COPY_REQUESTED = Cint(8)
const DLSHARE_REASON_ARROW_LAYOUT = Cint(13)

const DLSHARE_VIEW_READ_ONLY = UInt32(1)
const DLSHARE_VIEW_BYTE_SWAPPED = UInt32(2)

"""Opaque tensor handle (`dlshare_tensor *` in C)."""
mutable struct dlshare_tensor end

struct dlshare_view
    data::Ptr{Cvoid}
    dtype::DLDataType
    ndim::Cint
    shape::Ptr{Int64}
    byte_strides::Ptr{Int64}
    device::DLDevice
    flags::UInt32
    release::Ptr{Cvoid}
    release_ctx::Ptr{Cvoid}
end

struct dlshare_options
    mode::Cint
    has_dtype::Bool
    dtype::DLDataType
    has_device::Bool
    device::DLDevice
    allow_read_only::Bool
    allow_complex_to_real::Bool
    stream::Ptr{Cvoid}
end

struct dlshare_decision
    shared::Bool
    reason::Cint
    detail::NTuple{256,UInt8}
end

# ---- functions (one line each: the contract test reads them) -------------------------------

dlshare_version() = ccall((:dlshare_version, libdlshare), Cstring, ())
dlshare_last_error_message() = ccall((:dlshare_last_error_message, libdlshare), Cstring, ())
dlshare_status_name(status) = ccall((:dlshare_status_name, libdlshare), Cstring, (Int32,), status)
dlshare_reason_name(reason) = ccall((:dlshare_reason_name, libdlshare), Cstring, (Int32,), reason)
dlshare_live_tensor_count() = ccall((:dlshare_live_tensor_count, libdlshare), Csize_t, ())

dlshare_options_init(mode) = ccall((:dlshare_options_init, libdlshare), dlshare_options, (Cint,), mode)

dlshare_tensor_from_view(view, options, out, decision) = ccall((:dlshare_tensor_from_view, libdlshare), Cint, (Ptr{dlshare_view}, Ptr{dlshare_options}, Ptr{Ptr{dlshare_tensor}}, Ptr{dlshare_decision}), view, options, out, decision)
dlshare_explain_view(view, options, decision) = ccall((:dlshare_explain_view, libdlshare), Cint, (Ptr{dlshare_view}, Ptr{dlshare_options}, Ptr{dlshare_decision}), view, options, decision)
dlshare_tensor_convert(tensor, options, out, decision) = ccall((:dlshare_tensor_convert, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{dlshare_options}, Ptr{Ptr{dlshare_tensor}}, Ptr{dlshare_decision}), tensor, options, out, decision)
dlshare_explain_tensor(tensor, options, decision) = ccall((:dlshare_explain_tensor, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{dlshare_options}, Ptr{dlshare_decision}), tensor, options, decision)

dlshare_tensor_from_dlpack(managed, options, out, decision) = ccall((:dlshare_tensor_from_dlpack, libdlshare), Cint, (Ptr{DLManagedTensorVersioned}, Ptr{dlshare_options}, Ptr{Ptr{dlshare_tensor}}, Ptr{dlshare_decision}), managed, options, out, decision)
dlshare_tensor_from_dlpack_legacy(managed, options, out, decision) = ccall((:dlshare_tensor_from_dlpack_legacy, libdlshare), Cint, (Ptr{DLManagedTensor}, Ptr{dlshare_options}, Ptr{Ptr{dlshare_tensor}}, Ptr{dlshare_decision}), managed, options, out, decision)
dlshare_explain_dlpack(managed, options, decision) = ccall((:dlshare_explain_dlpack, libdlshare), Cint, (Ptr{DLManagedTensorVersioned}, Ptr{dlshare_options}, Ptr{dlshare_decision}), managed, options, decision)
dlshare_explain_dlpack_legacy(managed, options, decision) = ccall((:dlshare_explain_dlpack_legacy, libdlshare), Cint, (Ptr{DLManagedTensor}, Ptr{dlshare_options}, Ptr{dlshare_decision}), managed, options, decision)
dlshare_tensor_to_dlpack(tensor, out) = ccall((:dlshare_tensor_to_dlpack, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{Ptr{DLManagedTensorVersioned}}), tensor, out)
dlshare_tensor_to_dlpack_legacy(tensor, out) = ccall((:dlshare_tensor_to_dlpack_legacy, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{Ptr{DLManagedTensor}}), tensor, out)

dlshare_tensor_zeros(dtype, ndim, shape, device, out) = ccall((:dlshare_tensor_zeros, libdlshare), Cint, (DLDataType, Int32, Ptr{Int64}, DLDevice, Ptr{Ptr{dlshare_tensor}}), dtype, ndim, shape, device, out)
dlshare_tensor_retain(tensor) = ccall((:dlshare_tensor_retain, libdlshare), Cint, (Ptr{dlshare_tensor},), tensor)
dlshare_tensor_release(tensor) = ccall((:dlshare_tensor_release, libdlshare), Cint, (Ptr{dlshare_tensor},), tensor)
dlshare_tensor_info(tensor, dl, flags) = ccall((:dlshare_tensor_info, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{DLTensor}, Ptr{UInt64}), tensor, dl, flags)
dlshare_tensor_is_c_contiguous(tensor, out) = ccall((:dlshare_tensor_is_c_contiguous, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{Bool}), tensor, out)
dlshare_tensor_is_f_contiguous(tensor, out) = ccall((:dlshare_tensor_is_f_contiguous, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{Bool}), tensor, out)
dlshare_tensor_shares_memory(a, b, out) = ccall((:dlshare_tensor_shares_memory, libdlshare), Cint, (Ptr{dlshare_tensor}, Ptr{dlshare_tensor}, Ptr{Bool}), a, b, out)
dlshare_dtype_name(dtype, buf, len) = ccall((:dlshare_dtype_name, libdlshare), Cint, (DLDataType, Ptr{UInt8}, Csize_t), dtype, buf, len)
dlshare_device_name(device, buf, len) = ccall((:dlshare_device_name, libdlshare), Cint, (DLDevice, Ptr{UInt8}, Csize_t), device, buf, len)

# A producer's DLPack deleter, called through its function pointer.
call_deleter(deleter::Ptr{Cvoid}, managed::Ptr{DLManagedTensorVersioned}) = ccall(deleter, Cvoid, (Ptr{DLManagedTensorVersioned},), managed)
call_deleter(deleter::Ptr{Cvoid}, managed::Ptr{DLManagedTensor}) = ccall(deleter, Cvoid, (Ptr{DLManagedTensor},), managed)

end # module LibDLShare
