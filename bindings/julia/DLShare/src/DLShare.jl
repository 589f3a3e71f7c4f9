"""
    DLShare

Julia arrays and dlshare tensors (NumPy, PyTorch, JAX, C, C++ through DLPack 1.3) sharing one
memory, without copying when that is safe, and copying correctly (and saying why) when not.

- `from_array(A)` shares `A` or throws (`torch.from_numpy`), `as_tensor(A)` shares when it can
  and copies otherwise (`torch.as_tensor`), `tensor(A)` always copies (`torch.tensor`);
  `explain(A; mode)` answers without converting. Julia arrays are column-major: a tensor made
  from an `Array` has the same shape and Fortran-order strides.
- `as_array(t)` gives the tensor's memory back as an `Array` (F order) or a `PermutedDimsArray`
  over one (C order), and a copy otherwise.
- `to_dlpack(t)` / `to_dlpack_legacy(t)` export, `from_dlpack(ptr)` imports, `free_dlpack(ptr)`
  frees an export nobody consumed.
- Failures throw `DLShareError` with the C status, its name, the library's message and (for a
  SHARE refusal) the reason.

The library is found through `ENV["DLSHARE_LIBRARY"]`, this checkout's `build/_install` or
`target/release`, or the system (see `LibDLShare.find_library`).
"""
module DLShare

include("LibDLShare.jl")
using .LibDLShare
const L = LibDLShare

export Tensor, Decision, DLShareError
export from_array, as_tensor, tensor, explain, as_array, zeros_tensor
export from_dlpack, to_dlpack, to_dlpack_legacy, free_dlpack
export release!, is_c_contiguous, is_f_contiguous, is_read_only, shares_memory
export live_tensor_count

# ---- errors and decisions ------------------------------------------------------------------

"""
    DLShareError

A failed dlshare call: `status` (the C status code), `name` ("DLSHARE_ERR_CANNOT_SHARE" ...),
`message` (the library's explanation) and `reason` (the obstacle, e.g. `:negative_stride`, when
SHARE mode refused; `:none` otherwise).
"""
struct DLShareError <: Exception
    status::Int32
    name::String
    message::String
    reason::Symbol
end

function Base.showerror(io::IO, e::DLShareError)
    print(io, e.name, ": ", e.message)
    e.reason === :none || print(io, " (reason: ", e.reason, ")")
    return nothing
end

reason_symbol(code::Integer) = Symbol(unsafe_string(L.dlshare_reason_name(Int32(code))))

"""Throws the calling thread's last dlshare error unless `status` is DLSHARE_OK."""
function check(status::Integer, decision=nothing)
    status == L.DLSHARE_OK && return nothing
    message = unsafe_string(L.dlshare_last_error_message())  # first: the next call may reset it
    name = unsafe_string(L.dlshare_status_name(Int32(status)))
    reason = :none
    if status == L.DLSHARE_ERR_CANNOT_SHARE && decision !== nothing
        reason = reason_symbol(decision[].reason)
    end
    throw(DLShareError(Int32(status), name, message, reason))
end

"""
    Decision

What a conversion did (or would do): `shared`, the `reason` it copied (`:none` when shared,
`:negative_stride`, `:dtype_change`, `:copy_requested` ...) and the library's `detail` sentence.
"""
struct Decision
    shared::Bool
    reason::Symbol
    detail::String
end

function Decision(d::L.dlshare_decision)
    bytes = collect(d.detail)
    n = findfirst(iszero, bytes)
    text = String(n === nothing ? bytes : bytes[1:n-1])
    return Decision(d.shared, reason_symbol(d.reason), text)
end

Base.show(io::IO, d::Decision) = print(io, "Decision(", repr(d.detail), ")")

const ALLOCATED = Decision(false, :none, "allocated by dlshare")

# ---- element types and options -------------------------------------------------------------

const ELTYPES = (
    (Bool, L.kDLBool, 8),
    (Int8, L.kDLInt, 8), (Int16, L.kDLInt, 16), (Int32, L.kDLInt, 32), (Int64, L.kDLInt, 64),
    (UInt8, L.kDLUInt, 8), (UInt16, L.kDLUInt, 16), (UInt32, L.kDLUInt, 32),
    (UInt64, L.kDLUInt, 64),
    (Float16, L.kDLFloat, 16), (Float32, L.kDLFloat, 32), (Float64, L.kDLFloat, 64),
    (ComplexF32, L.kDLComplex, 64), (ComplexF64, L.kDLComplex, 128),
)

"""The DLPack dtype of a Julia element type (Bool, Int8-Int64, UInt8-UInt64, Float16-64, ComplexF32/64)."""
function dlpack_dtype(::Type{T}) where {T}
    for (J, code, bits) in ELTYPES
        J === T && return L.DLDataType(code, UInt8(bits), UInt16(1))
    end
    throw(ArgumentError("no DLPack dtype for element type $T; use Bool, Int8-Int64, " *
                        "UInt8-UInt64, Float16, Float32, Float64, ComplexF32 or ComplexF64"))
end

"""The Julia element type of a DLPack dtype."""
function julia_eltype(dtype::L.DLDataType)
    for (J, code, bits) in ELTYPES
        dtype.code == code && dtype.bits == bits && dtype.lanes == 1 && return J
    end
    throw(ArgumentError("no Julia element type for dtype $(dtype_name(dtype))"))
end

"""The library's name of a dtype ("float32", "bfloat16" ...)."""
function dtype_name(dtype::L.DLDataType)
    buf = zeros(UInt8, 64)
    check(L.dlshare_dtype_name(dtype, buf, length(buf)))
    return GC.@preserve buf unsafe_string(pointer(buf))
end

function mode_code(mode::Symbol)
    mode === :share && return L.DLSHARE_MODE_SHARE
    mode === :share_or_copy && return L.DLSHARE_MODE_SHARE_OR_COPY
    mode === :copy && return L.DLSHARE_MODE_COPY
    throw(ArgumentError("mode must be :share, :share_or_copy or :copy, not :$mode"))
end

function options(mode::Symbol, dtype, allow_read_only::Bool)
    base = L.dlshare_options_init(mode_code(mode))
    has_dtype = dtype !== nothing
    return Ref(L.dlshare_options(base.mode, has_dtype,
                                 has_dtype ? dlpack_dtype(dtype) : base.dtype,
                                 base.has_device, base.device, allow_read_only,
                                 base.allow_complex_to_real, base.stream))
end

# ---- the tensor ----------------------------------------------------------------------------

"""
    Tensor

One owner of a dlshare tensor handle, released by `release!(t)` or by the garbage collector.
`t.decision` tells whether making it shared the source's memory, and if not, why it copied.
`size`, `strides` (in elements), `eltype`, `ndims`, `length` and `pointer` describe it.
"""
mutable struct Tensor
    handle::Ptr{L.dlshare_tensor}
    decision::Decision
    function Tensor(handle::Ptr{L.dlshare_tensor}, decision::Decision)
        t = new(handle, decision)
        finalizer(release!, t)
        return t
    end
end

# A Tensor passed to ccall as `Ptr{dlshare_tensor}` stays rooted for the call.
Base.cconvert(::Type{Ptr{L.dlshare_tensor}}, t::Tensor) = t
Base.unsafe_convert(::Type{Ptr{L.dlshare_tensor}}, t::Tensor) = t.handle

"""
    release!(t::Tensor)

Gives up this owner now (the memory goes when no tensor, array or DLPack export uses it).
Calling it again does nothing; a released tensor's accessors throw `DLSHARE_ERR_INVALID_HANDLE`.
"""
function release!(t::Tensor)
    handle = t.handle
    if handle != C_NULL
        t.handle = C_NULL
        L.dlshare_tensor_release(handle)
    end
    return nothing
end

function info(t::Tensor)
    dl = Ref{L.DLTensor}()
    flags = Ref{UInt64}(0)
    check(L.dlshare_tensor_info(t, dl, flags))
    return dl[], flags[]
end

function Base.size(t::Tensor)
    dims = GC.@preserve t begin
        dl, _ = info(t)
        ntuple(i -> Int(unsafe_load(dl.shape, i)), Int(dl.ndim))
    end
    return dims
end

function Base.strides(t::Tensor)
    steps = GC.@preserve t begin
        dl, _ = info(t)
        ntuple(i -> Int(unsafe_load(dl.strides, i)), Int(dl.ndim))
    end
    return steps
end

Base.ndims(t::Tensor) = Int(info(t)[1].ndim)
Base.length(t::Tensor) = prod(size(t))
Base.eltype(t::Tensor) = julia_eltype(info(t)[1].dtype)

"""Address of the first element (DLPack `data + byte_offset`)."""
function Base.pointer(t::Tensor)
    dl, _ = info(t)
    return dl.data + dl.byte_offset
end

dtype_name(t::Tensor) = dtype_name(info(t)[1].dtype)

function device_name(t::Tensor)
    buf = zeros(UInt8, 64)
    check(L.dlshare_device_name(info(t)[1].device, buf, length(buf)))
    return GC.@preserve buf unsafe_string(pointer(buf))
end

is_read_only(t::Tensor) = (info(t)[2] & L.DLPACK_FLAG_BITMASK_READ_ONLY) != 0

function is_c_contiguous(t::Tensor)
    out = Ref{Bool}(false)
    check(L.dlshare_tensor_is_c_contiguous(t, out))
    return out[]
end

function is_f_contiguous(t::Tensor)
    out = Ref{Bool}(false)
    check(L.dlshare_tensor_is_f_contiguous(t, out))
    return out[]
end

"""Whether writes through one tensor can be seen through the other."""
function shares_memory(a::Tensor, b::Tensor)
    out = Ref{Bool}(false)
    check(L.dlshare_tensor_shares_memory(a, b, out))
    return out[]
end

function Base.show(io::IO, t::Tensor)
    if t.handle == C_NULL
        print(io, "DLShare.Tensor(released)")
    else
        print(io, "DLShare.Tensor(", dtype_name(t), ", ", size(t), ", ", device_name(t), ")")
    end
    return nothing
end

"""Tensor storages alive in the library (for leak checks)."""
live_tensor_count() = Int(L.dlshare_live_tensor_count())

"""The library's version, "MAJOR.MINOR.PATCH"."""
version() = unsafe_string(L.dlshare_version())

# ---- Julia arrays -> tensors ---------------------------------------------------------------

# Arrays shared with dlshare, keyed by the id passed as the view's release context: a shared
# array stays rooted until dlshare calls `release_root` (when the last tensor, Julia array or
# DLPack export using the memory is gone; at once after a copy). The callback may run on any
# thread, also inside a finalizer, so the lock is a spin lock held with finalizers disabled.
const ROOTS = Dict{UInt,Any}()
const ROOTS_LOCK = Threads.SpinLock()
const NEXT_ROOT = Threads.Atomic{UInt}(1)
const RELEASE_ROOT = Ref{Ptr{Cvoid}}(C_NULL)

function with_roots(f)
    GC.enable_finalizers(false)
    lock(ROOTS_LOCK)
    try
        return f(ROOTS)
    finally
        unlock(ROOTS_LOCK)
        GC.enable_finalizers(true)
    end
end

function root!(x)
    id = Threads.atomic_add!(NEXT_ROOT, UInt(1))
    with_roots(roots -> (roots[id] = x; nothing))
    return id
end

unroot!(id::UInt) = with_roots(roots -> (delete!(roots, id); nothing))

function release_root(ctx::Ptr{Cvoid})
    unroot!(UInt(ctx))
    return nothing
end

function __init__()
    RELEASE_ROOT[] = @cfunction(release_root, Cvoid, (Ptr{Cvoid},))
    return nothing
end

# The dlshare_view of a strided Julia array: its shape, and its strides in bytes (Julia arrays
# are column-major, so an Array has Fortran-order strides). `shape`, `byte_strides` and `A`
# must stay preserved while the view is used.
function make_view(A::StridedArray, dtype::L.DLDataType, readonly::Bool,
                   shape::Vector{Int64}, byte_strides::Vector{Int64},
                   release::Ptr{Cvoid}, ctx::Ptr{Cvoid})
    flags = readonly ? L.DLSHARE_VIEW_READ_ONLY : UInt32(0)
    return Ref(L.dlshare_view(Ptr{Cvoid}(pointer(A)), dtype, Cint(ndims(A)), pointer(shape),
                              pointer(byte_strides), L.DLDevice(L.kDLCPU, Cint(0)), flags,
                              release, ctx))
end

view_shape(A::StridedArray) = Int64[size(A)...]
view_byte_strides(A::StridedArray) = Int64[s * sizeof(eltype(A)) for s in strides(A)]

function from_strided(A::StridedArray, mode::Symbol, dtype, readonly::Bool)
    source_dtype = dlpack_dtype(eltype(A))
    opts = options(mode, dtype, readonly)
    shape = view_shape(A)
    byte_strides = view_byte_strides(A)
    out = Ref{Ptr{L.dlshare_tensor}}(C_NULL)
    decision = Ref{L.dlshare_decision}()
    id = root!(A)
    status = GC.@preserve A shape byte_strides begin
        view = make_view(A, source_dtype, readonly, shape, byte_strides, RELEASE_ROOT[],
                         Ptr{Cvoid}(id))
        L.dlshare_tensor_from_view(view, opts, out, decision)
    end
    if status != L.DLSHARE_OK
        unroot!(id)  # dlshare calls no release callback when a conversion fails
        check(status, decision)
    end
    return Tensor(out[], Decision(decision[]))
end

"""
    from_array(A::StridedArray; readonly=false) -> Tensor

Shares `A`'s memory as a tensor (`torch.from_numpy`): same shape, strides in elements (an
`Array` gives Fortran order), or throws `DLShareError` with the reason (a reversed view has a
negative stride ...). `A` stays alive while the tensor (or anything sharing it) lives.
`readonly=true` shares it as a read-only tensor.
"""
from_array(A::StridedArray; readonly::Bool=false) = from_strided(A, :share, nothing, readonly)

"""
    as_tensor(A; dtype=nothing, readonly=false) -> Tensor

Shares `A` when possible, else copies (`torch.as_tensor`); `dtype` (a Julia type) casts.
`t.decision` says which and why. Also accepts a `Tensor`.
"""
as_tensor(A::StridedArray; dtype=nothing, readonly::Bool=false) =
    from_strided(A, :share_or_copy, dtype, readonly)

"""
    tensor(A; dtype=nothing) -> Tensor

Always copies (`torch.tensor`): a C-contiguous, 256-byte aligned tensor of its own. Also
accepts a `Tensor`.
"""
tensor(A::StridedArray; dtype=nothing) = from_strided(A, :copy, dtype, false)

"""
    zeros_tensor(T, dims...) -> Tensor

A C-contiguous (row-major) tensor of zeros with shape `dims` (as_array gives it back as a
`PermutedDimsArray`).
"""
function zeros_tensor(::Type{T}, dims::Integer...) where {T}
    shape = Int64[dims...]
    out = Ref{Ptr{L.dlshare_tensor}}(C_NULL)
    check(L.dlshare_tensor_zeros(dlpack_dtype(T), Int32(length(shape)), shape,
                                 L.DLDevice(L.kDLCPU, Cint(0)), out))
    return Tensor(out[], ALLOCATED)
end

function convert_tensor(t::Tensor, mode::Symbol, dtype)
    out = Ref{Ptr{L.dlshare_tensor}}(C_NULL)
    decision = Ref{L.dlshare_decision}()
    check(L.dlshare_tensor_convert(t, options(mode, dtype, false), out, decision), decision)
    return Tensor(out[], Decision(decision[]))
end

as_tensor(t::Tensor; dtype=nothing) = convert_tensor(t, :share_or_copy, dtype)
tensor(t::Tensor; dtype=nothing) = convert_tensor(t, :copy, dtype)

# ---- tensors -> Julia arrays ---------------------------------------------------------------

# An Array over the tensor's memory that owns one reference to it (released by its finalizer).
function wrap_array(t::Tensor, ::Type{T}, dims::Tuple) where {T}
    A = unsafe_wrap(Array, Ptr{T}(pointer(t)), dims; own=false)
    check(L.dlshare_tensor_retain(t))
    handle = t.handle
    finalizer(_ -> (L.dlshare_tensor_release(handle); nothing), A)
    return A
end

"""
    as_array(t::Tensor; readonly=false)

The tensor's elements as a Julia array with the same indices (`as_array(t)[i, j] == t[i, j]`):
- F-contiguous (Julia's own order): an `Array` over the tensor's memory, no copy;
- C-contiguous (row-major): a `PermutedDimsArray` over an `Array` of the reversed dimensions,
  no copy;
- any other layout: the same over a C-contiguous copy that dlshare makes.
The array keeps the memory alive. A read-only tensor is refused (`DLSHARE_ERR_READ_ONLY`, Julia
arrays are writable) unless `readonly=true`, and then the array must not be written.
"""
function as_array(t::Tensor; readonly::Bool=false)
    dl, flags = info(t)
    T = julia_eltype(dl.dtype)
    if !(dl.device.device_type in (L.kDLCPU, L.kDLCUDAHost, L.kDLCUDAManaged))
        throw(DLShareError(L.DLSHARE_ERR_UNSUPPORTED_DEVICE, "DLSHARE_ERR_UNSUPPORTED_DEVICE",
                           "as_array needs memory the CPU can read; this tensor is on " *
                           "$(device_name(t)): copy it to the CPU first", :none))
    end
    dims = size(t)
    n = length(dims)
    any(iszero, dims) && return Array{T}(undef, dims)  # no elements: nothing to share
    source = t
    if is_f_contiguous(t) || is_c_contiguous(t)
        if (flags & L.DLPACK_FLAG_BITMASK_READ_ONLY) != 0 && !readonly
            throw(DLShareError(L.DLSHARE_ERR_READ_ONLY, "DLSHARE_ERR_READ_ONLY",
                               "the tensor is read-only and Julia arrays are writable: pass " *
                               "readonly=true (and do not write to it), or copy it with " *
                               "tensor(t)", :none))
        end
    else
        source = convert_tensor(t, :copy, nothing)  # C-contiguous, writable, its own memory
    end
    is_f_contiguous(source) && return wrap_array(source, T, dims)
    return PermutedDimsArray(wrap_array(source, T, reverse(dims)), ntuple(i -> n + 1 - i, n))
end

"""`Array(t)`: a copy of the tensor's elements in a new Julia array."""
Base.Array(t::Tensor) = collect(as_array(t; readonly=true))

# ---- DLPack --------------------------------------------------------------------------------

const ManagedPtr = Union{Ptr{L.DLManagedTensorVersioned},Ptr{L.DLManagedTensor}}

"""
    to_dlpack(t::Tensor) -> Ptr{DLManagedTensorVersioned}

Exports the tensor as a DLPack 1.x managed tensor sharing its memory (READ_ONLY flagged for
read-only tensors). The pointer is yours: hand it to a consumer, which calls its deleter, or
free it with `free_dlpack`. The memory stays alive until then, whatever happens to `t`.
"""
function to_dlpack(t::Tensor)
    out = Ref{Ptr{L.DLManagedTensorVersioned}}(C_NULL)
    check(L.dlshare_tensor_to_dlpack(t, out))
    return out[]
end

"""
    to_dlpack_legacy(t::Tensor) -> Ptr{DLManagedTensor}

As `to_dlpack`, in the legacy (unversioned) format; refused for read-only tensors.
"""
function to_dlpack_legacy(t::Tensor)
    out = Ref{Ptr{L.DLManagedTensor}}(C_NULL)
    check(L.dlshare_tensor_to_dlpack_legacy(t, out))
    return out[]
end

"""
    free_dlpack(managed)

Calls the deleter of a managed tensor nobody consumed (exactly once; not after a successful
`from_dlpack`, which took it over).
"""
function free_dlpack(managed::ManagedPtr)
    deleter = unsafe_load(managed).deleter
    deleter == C_NULL || L.call_deleter(deleter, managed)
    return nothing
end

"""
    from_dlpack(managed; mode=:share_or_copy, dtype=nothing, allow_read_only=false) -> Tensor

Imports a `Ptr{DLManagedTensorVersioned}` or `Ptr{DLManagedTensor}` from any DLPack producer.
On success dlshare owns it (its deleter runs once, when no tensor shares the memory, or at once
after a copy); on a `DLShareError` it is still yours.
"""
function from_dlpack(managed::Ptr{L.DLManagedTensorVersioned}; mode::Symbol=:share_or_copy,
                     dtype=nothing, allow_read_only::Bool=false)
    out = Ref{Ptr{L.dlshare_tensor}}(C_NULL)
    decision = Ref{L.dlshare_decision}()
    check(L.dlshare_tensor_from_dlpack(managed, options(mode, dtype, allow_read_only), out,
                                       decision), decision)
    return Tensor(out[], Decision(decision[]))
end

function from_dlpack(managed::Ptr{L.DLManagedTensor}; mode::Symbol=:share_or_copy,
                     dtype=nothing, allow_read_only::Bool=false)
    out = Ref{Ptr{L.dlshare_tensor}}(C_NULL)
    decision = Ref{L.dlshare_decision}()
    check(L.dlshare_tensor_from_dlpack_legacy(managed, options(mode, dtype, allow_read_only),
                                              out, decision), decision)
    return Tensor(out[], Decision(decision[]))
end

# ---- explain -------------------------------------------------------------------------------

# A SHARE refusal is an answer (the decision names the obstacle), any other failure throws.
function explained(status::Integer, decision)
    status == L.DLSHARE_ERR_CANNOT_SHARE || check(status)
    return Decision(decision[])
end

"""
    explain(x; mode=:share_or_copy, dtype=nothing, ...) -> Decision

What converting `x` (a strided array, a `Tensor` or a DLPack pointer) with `mode` (`:share`,
`:share_or_copy` or `:copy`) and `dtype` would do, converting nothing and taking nothing.
"""
function explain(A::StridedArray; mode::Symbol=:share_or_copy, dtype=nothing,
                 readonly::Bool=false)
    source_dtype = dlpack_dtype(eltype(A))
    opts = options(mode, dtype, readonly)
    shape = view_shape(A)
    byte_strides = view_byte_strides(A)
    decision = Ref{L.dlshare_decision}()
    status = GC.@preserve A shape byte_strides begin
        view = make_view(A, source_dtype, readonly, shape, byte_strides, C_NULL, C_NULL)
        L.dlshare_explain_view(view, opts, decision)
    end
    return explained(status, decision)
end

function explain(t::Tensor; mode::Symbol=:share_or_copy, dtype=nothing)
    decision = Ref{L.dlshare_decision}()
    status = L.dlshare_explain_tensor(t, options(mode, dtype, false), decision)
    return explained(status, decision)
end

function explain(managed::Ptr{L.DLManagedTensorVersioned}; mode::Symbol=:share_or_copy,
                 dtype=nothing, allow_read_only::Bool=false)
    decision = Ref{L.dlshare_decision}()
    status = L.dlshare_explain_dlpack(managed, options(mode, dtype, allow_read_only), decision)
    return explained(status, decision)
end

function explain(managed::Ptr{L.DLManagedTensor}; mode::Symbol=:share_or_copy,
                 dtype=nothing, allow_read_only::Bool=false)
    decision = Ref{L.dlshare_decision}()
    status = L.dlshare_explain_dlpack_legacy(managed, options(mode, dtype, allow_read_only),
                                             decision)
    return explained(status, decision)
end

end # module DLShare
