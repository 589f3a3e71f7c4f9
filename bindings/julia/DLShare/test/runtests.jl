# DLShare against the real library: zero-copy both ways (column-major arrays as F-order
# tensors, row-major tensors as PermutedDimsArray), the three modes and explain, DLPack export
# and import, errors carrying the status and message, and no leak (every tensor storage and
# every rooted array released once the garbage is collected).
using Test
using DLShare

const L = DLShare.LibDLShare

function collect_garbage()
    for _ in 1:4
        GC.gc(true)
    end
    return nothing
end

caught(f) =
    try
        f()
        nothing
    catch err
        err
    end

function test_array_to_tensor()
    A = reshape(collect(1.0:24.0), 2, 3, 4)
    t = from_array(A)
    @test t.decision.shared
    @test t.decision.reason === :none
    @test size(t) == (2, 3, 4)
    @test ndims(t) == 3 && length(t) == 24
    @test strides(t) == (1, 2, 6)  # column-major: Fortran-order strides, in elements
    @test eltype(t) === Float64
    @test pointer(t) == Ptr{Cvoid}(pointer(A))
    @test is_f_contiguous(t) && !is_c_contiguous(t) && !is_read_only(t)
    @test occursin("float64", sprint(show, t))

    B = as_array(t)
    @test B isa Array{Float64,3}
    @test pointer(B) == pointer(A)
    B[2, 3, 4] = -1.0
    @test A[2, 3, 4] == -1.0
    A[1, 1, 1] = 100.0
    @test B[1, 1, 1] == 100.0
    @test Array(t) == A && pointer(Array(t)) != pointer(A)

    release!(t)
    release!(t)  # a second release does nothing
    @test occursin("released", sprint(show, t))
    @test B[1, 1, 1] == 100.0  # B holds its own reference to the memory
    return nothing
end

function test_eltypes()
    for T in (Bool, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float16, Float32,
              Float64, ComplexF32, ComplexF64)
        A = rand(T, 3, 2)
        t = from_array(A)
        @test eltype(t) === T
        @test as_array(t) == A
        @test pointer(as_array(t)) == pointer(A)
        release!(t)
    end
    @test caught(() -> from_array(["a", "b"])) isa ArgumentError
    return nothing
end

function test_modes()
    v = collect(1.0:6.0)
    r = view(v, 6:-1:1)  # a negative stride

    e = caught(() -> from_array(r))
    @test e isa DLShareError
    @test e.status == L.DLSHARE_ERR_CANNOT_SHARE
    @test e.name == "DLSHARE_ERR_CANNOT_SHARE"
    @test e.reason === :negative_stride
    @test occursin("negative", e.message)
    @test occursin("DLSHARE_ERR_CANNOT_SHARE", sprint(showerror, e))

    c = as_tensor(r)
    @test !c.decision.shared && c.decision.reason === :negative_stride
    @test as_array(c) == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    s = as_tensor(v)
    @test s.decision.shared && pointer(s) == Ptr{Cvoid}(pointer(v))
    @test !shares_memory(c, s)
    k = tensor(v)
    @test !k.decision.shared && k.decision.reason === :copy_requested
    @test !shares_memory(k, s) && as_array(k) == v
    f = as_tensor(v; dtype=Float32)
    @test f.decision.reason === :dtype_change && eltype(f) === Float32
    @test as_array(f) == Float32.(v)

    # Tensors convert too.
    @test as_tensor(s).decision.shared
    @test tensor(s).decision.reason === :copy_requested
    @test eltype(as_tensor(s; dtype=Int32)) === Int32

    # explain answers the same without converting; a SHARE refusal is an answer.
    d = explain(r; mode=:share)
    @test !d.shared && d.reason === :negative_stride && occursin("negative", d.detail)
    @test explain(v; mode=:share).shared
    @test explain(v; mode=:copy).reason === :copy_requested
    @test explain(r).reason === :negative_stride
    @test explain(s; mode=:copy).reason === :copy_requested
    @test explain(v; dtype=Int8).reason === :dtype_change
    @test caught(() -> explain(v; mode=:sometimes)) isa ArgumentError
    foreach(release!, (c, s, k, f))
    return nothing
end

function test_layouts()
    M = reshape(collect(1:12), 3, 4)
    S = view(M, 1:2:3, :)  # every other row: strides (2, 3), shared as they are
    t = from_array(S)
    @test t.decision.shared && strides(t) == (2, 3)
    @test !is_f_contiguous(t) && !is_c_contiguous(t)
    C = as_array(t)  # neither order: a copy, indexed like S
    @test C == S
    C[1, 1] = -5
    @test M[1, 1] == 1

    z = zeros_tensor(Float32, 2, 3)  # row-major
    @test is_c_contiguous(z) && size(z) == (2, 3) && strides(z) == (3, 1)
    P = as_array(z)
    @test P isa PermutedDimsArray
    @test size(P) == (2, 3)
    @test pointer(parent(P)) == Ptr{Float32}(pointer(z))
    @test size(parent(P)) == (3, 2)
    P[2, 1] = 7.0f0
    @test unsafe_load(Ptr{Float32}(pointer(z)), 4) == 7.0f0  # row-major (2, 1) is element 4
    @test Array(z)[2, 1] == 7.0f0

    scalar = from_array(fill(3.5))
    @test size(scalar) == () && as_array(scalar)[] == 3.5
    empty = from_array(zeros(0, 3))
    @test size(as_array(empty)) == (0, 3)
    foreach(release!, (t, z, scalar, empty))
    return nothing
end

function test_dlpack()
    A = collect(reshape(1.0f0:6.0f0, 2, 3))
    t = from_array(A)

    p = to_dlpack(t)
    m = unsafe_load(p)
    @test m.version.major == L.DLPACK_MAJOR_VERSION
    @test m.dl_tensor.data + m.dl_tensor.byte_offset == Ptr{Cvoid}(pointer(A))
    @test m.dl_tensor.ndim == 2 && unsafe_load(m.dl_tensor.strides, 2) == 2
    @test explain(p; mode=:share).shared
    u = from_dlpack(p; mode=:share)  # dlshare owns p now
    @test u.decision.shared && pointer(u) == pointer(t) && shares_memory(u, t)

    lp = to_dlpack_legacy(t)
    @test explain(lp; mode=:copy).reason === :copy_requested
    w = from_dlpack(lp)
    @test pointer(w) == pointer(t)

    q = to_dlpack(t)
    release!(t)
    release!(u)
    release!(w)
    @test unsafe_load(Ptr{Float32}(unsafe_load(q).dl_tensor.data), 6) == 6.0f0  # still alive
    free_dlpack(q)  # never consumed: its deleter frees it
    ql = to_dlpack_legacy(from_array(A))
    free_dlpack(ql)
    return nothing
end

function test_read_only()
    A = [1.0, 2.0]
    ro = from_array(A; readonly=true)
    @test is_read_only(ro)
    e = caught(() -> as_array(ro))
    @test e isa DLShareError && e.status == L.DLSHARE_ERR_READ_ONLY
    @test as_array(ro; readonly=true) == A
    e = caught(() -> to_dlpack_legacy(ro))
    @test e isa DLShareError && e.status == L.DLSHARE_ERR_READ_ONLY && !isempty(e.message)

    p = to_dlpack(ro)
    @test (unsafe_load(p).flags & L.DLPACK_FLAG_BITMASK_READ_ONLY) != 0
    e = caught(() -> from_dlpack(p; mode=:share))
    @test e isa DLShareError && e.reason === :read_only  # refused: p is still ours
    v = from_dlpack(p; mode=:share, allow_read_only=true)
    @test is_read_only(v) && pointer(v) == Ptr{Cvoid}(pointer(A))
    c = from_dlpack(to_dlpack(ro))  # as_tensor semantics: a writable copy
    @test !c.decision.shared && c.decision.reason === :read_only && !is_read_only(c)
    foreach(release!, (ro, v, c))
    return nothing
end

function test_errors()
    t = zeros_tensor(Int32, 2)
    release!(t)
    e = caught(() -> size(t))
    @test e isa DLShareError
    @test e.status == L.DLSHARE_ERR_INVALID_HANDLE && e.name == "DLSHARE_ERR_INVALID_HANDLE"
    @test !isempty(e.message) && e.reason === :none
    e = caught(() -> zeros_tensor(Float64, -1))
    @test e isa DLShareError && e.status == L.DLSHARE_ERR_INVALID_ARGUMENT
    @test caught(() -> as_tensor(collect(1:3); dtype=String)) isa ArgumentError
    return nothing
end

function test_rooting()
    # Nothing but the tensor refers to the array: it must survive a collection.
    t = from_array(collect(1.0:1000.0))
    collect_garbage()
    @test sum(as_array(t)) == 500500.0
    @test length(DLShare.ROOTS) >= 1
    release!(t)
    return nothing
end

@testset "DLShare" begin
    collect_garbage()
    start = live_tensor_count()
    @test occursin(r"^\d+\.\d+\.\d+$", DLShare.version())
    @testset "a Julia array becomes a tensor without copying" begin
        test_array_to_tensor()
    end
    @testset "every element type" begin
        test_eltypes()
    end
    @testset "the three modes and explain" begin
        test_modes()
    end
    @testset "strided, row-major, 0-d and empty layouts" begin
        test_layouts()
    end
    @testset "DLPack export and import" begin
        test_dlpack()
    end
    @testset "read-only memory" begin
        test_read_only()
    end
    @testset "errors carry the status and message" begin
        test_errors()
    end
    @testset "shared arrays stay rooted" begin
        test_rooting()
    end
    collect_garbage()
    @test isempty(DLShare.ROOTS)
    @test live_tensor_count() == start
end
