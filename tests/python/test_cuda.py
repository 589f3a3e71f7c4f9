"""CUDA through the Python binding (docs/design.md, "CUDA").

Without a usable CUDA device the GPU tests are skipped with "skipped: no CUDA device (...)", and
the no-CUDA tests check that every entry point taking a device raises DeviceUnavailableError
instead of crashing. With one, the no-CUDA tests are skipped and the GPU tests compare with
PyTorch's own transfers. tests/gpu/run runs this file on a GPU machine both ways (the no-CUDA
half with DLSHARE_DISABLE_CUDA=1)."""

import gc

import numpy as np
import pytest

import dlshare
from dlshare._ffi import ffi

CUDA = dlshare.cuda.is_available()
WHY = dlshare.cuda.unavailable_reason()
needs_gpu = pytest.mark.skipif(not CUDA, reason=f"skipped: no CUDA device ({WHY})")
needs_no_gpu = pytest.mark.skipif(
    CUDA, reason="skipped: CUDA is available (run with DLSHARE_DISABLE_CUDA=1)"
)


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("skipped: no CUDA device for PyTorch (torch.cuda.is_available() is False)")
    yield torch
    torch.cuda.synchronize()
    dlshare.cuda.synchronize()


# ---- without CUDA -----------------------------------------------------------------------------


def _fake_cuda_capsule():
    """A versioned DLPack capsule of a CPU array whose device field says cuda:0: what a CUDA
    producer hands over, for checking refusals without a GPU (never dereferenced)."""
    t = dlshare.as_tensor(np.arange(4, dtype=np.float32))
    capsule = t.__dlpack__(max_version=(1, 0))
    managed = ffi.cast("DLManagedTensorVersioned *", dlshare._capsule.pointer(
        capsule, dlshare._capsule.VERSIONED))
    managed.dl_tensor.device.device_type = dlshare.lib.kDLCUDA
    return capsule


@needs_no_gpu
def test_cuda_functions_without_a_device():
    assert dlshare.cuda.is_available() is False
    assert dlshare.cuda.device_count() == 0
    assert dlshare.cuda.unavailable_reason()
    for call in (
        dlshare.cuda.synchronize,
        dlshare.cuda.stream,
        dlshare.cuda.memory_allocated,
        lambda: dlshare.cuda.stream_wait(1),
    ):
        with pytest.raises(dlshare.DeviceUnavailableError):
            call()
    dlshare.cuda.stream_wait(-1)  # no synchronisation asked: nothing to do
    with pytest.raises(dlshare.InvalidArgumentError):
        dlshare.cuda.stream_wait(0)


@needs_no_gpu
@pytest.mark.parametrize(
    "call",
    [
        lambda a: dlshare.as_tensor(a, device="cuda:0"),
        lambda a: dlshare.as_tensor(a, device="cuda:0", stream=1),
        lambda a: dlshare.tensor(a, device="cuda:0"),
        lambda a: dlshare.tensor(a.tolist(), device="cuda:0"),
        lambda a: dlshare.as_tensor(a, dtype="float32", device="cuda:1"),
        lambda a: dlshare.as_tensor(a, device="cuda_host:0"),
        lambda a: dlshare.from_dlpack(a, device="cuda:0"),
        lambda a: dlshare.from_numpy(a).to(device="cuda:0"),
        lambda a: dlshare.from_numpy(a).to("float32", "cuda:0", copy=True),
        lambda a: dlshare.explain(a, device="cuda:0"),
        lambda a: dlshare.empty((2, 3), "float32", "cuda:0"),
        lambda a: dlshare.zeros(4, "int64", "cuda:0"),
        lambda a: dlshare.empty((2, 3), "float32", "cuda_host:0"),
    ],
    ids=[
        "as_tensor", "as_tensor_stream", "tensor", "tensor_list", "as_tensor_cast",
        "as_tensor_pinned", "from_dlpack", "to", "to_copy", "explain", "empty", "zeros",
        "empty_pinned",
    ],
)
def test_every_device_argument_raises_device_unavailable(call):
    a = np.arange(6.0).reshape(2, 3)
    with pytest.raises(dlshare.DeviceUnavailableError, match="cuda"):
        call(a)


@needs_no_gpu
def test_cuda_dlpack_source_without_cuda():
    # COPY (or a move to the CPU) needs the device: refused, the capsule stays the caller's
    for kwargs in ({"copy": True}, {"device": "cpu"}):
        capsule = _fake_cuda_capsule()
        with pytest.raises(dlshare.DeviceUnavailableError, match="copying from cuda:0"):
            dlshare.from_dlpack(capsule, **kwargs)
        del capsule  # unconsumed: its destructor frees it
    # sharing needs no CUDA: the tensor just says where its memory is
    t = dlshare.from_dlpack(_fake_cuda_capsule())
    assert t.shared and t.device == "cuda:0"
    with pytest.raises(BufferError):
        t.numpy()
    with pytest.raises(dlshare.DeviceUnavailableError):
        t.to(device="cpu")
    # and passed on as it is (no stream handoff possible, none needed)
    again = dlshare.from_dlpack(t.__dlpack__(max_version=(1, 0)))
    assert again.shared and again.data_ptr == t.data_ptr and again.device == "cuda:0"
    with pytest.raises(dlshare.InvalidArgumentError, match="0 is ambiguous"):
        t.__dlpack__(stream=0)


def test_stream_needs_a_cuda_side():
    a = np.arange(6.0)
    with pytest.raises(dlshare.InvalidArgumentError, match="options.stream is set"):
        dlshare.tensor(a, stream=1)
    with pytest.raises(BufferError):
        dlshare.from_numpy(a).__dlpack__(stream=1)
    with pytest.raises(TypeError):
        dlshare.tensor(a, device="cuda:0", stream="default")


def test_empty_and_zeros_on_the_cpu():
    t = dlshare.zeros((2, 3), "int16")
    assert t.device == "cpu" and t.shape == (2, 3) and t.dtype == "int16"
    assert not np.asarray(t).any()
    e = dlshare.empty(5)
    assert e.shape == (5,) and e.dtype == "float32" and e.data_ptr % 256 == 0


# ---- with CUDA: compared with PyTorch ---------------------------------------------------------

DTYPES = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]


def _layouts(a):
    """Views of a 2-D array: every layout dlshare packs on the host."""
    return {
        "c_order": a,
        "f_order": np.asfortranarray(a),
        "transposed": a.T,
        "every_other_row": a[::2],
        "column_slice": a[:, 1::3],
        "reversed": a[::-1, ::-1],
        "broadcast": np.broadcast_to(a[0], (4, a.shape[1])),
        "zero_d": np.array(a[1, 2]),
        "zero_size": a[:0],
        "permuted_3d": a.reshape(3, 4, 5).transpose(2, 0, 1),
    }


def _raw(t):
    """The bytes of a torch tensor's elements in C order (compared on the host)."""
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _sample(dtype, rng):
    a = rng.standard_normal((12, 5)) * 50
    if dtype == "bool":
        return a > 0
    if dtype.startswith("complex"):
        return (a + 1j * a[::-1]).astype(dtype)
    return a.astype(dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trips_of_every_layout_match_torch(torch, dtype):
    rng = np.random.default_rng(7)
    base = _sample(dtype, rng)
    for name, a in _layouts(base).items():
        native = np.ascontiguousarray(a)
        want = torch.from_numpy(native.copy()).to("cuda")  # PyTorch's host -> device
        # host -> device
        d = dlshare.tensor(a, device="cuda:0")
        assert d.device == "cuda:0" and not d.shared and d.is_contiguous(), name
        y = torch.from_dlpack(d)
        assert y.device.type == "cuda" and y.data_ptr() == d.data_ptr, name
        assert _raw(y) == _raw(want), f"{dtype} {name}: host -> device"
        # device -> host
        back = np.asarray(dlshare.tensor(d, device="cpu"))
        assert back.tobytes() == native.tobytes(), f"{dtype} {name}: device -> host"
        # device -> host of PyTorch's device tensor (shared zero-copy first)
        assert np.asarray(dlshare.as_tensor(want, device="cpu")).tobytes() == native.tobytes()
        # device -> device, plain and from strided PyTorch views
        assert _raw(torch.from_dlpack(dlshare.tensor(d))) == _raw(want), name
        if want.ndim == 2 and want.shape[0] > 1 and want.shape[1] > 1:
            for view in (want.t(), want[::2], want[:, 1:]):
                got = torch.from_dlpack(dlshare.tensor(view))
                assert got.is_contiguous() and _raw(got) == _raw(view), f"{dtype} {name}"
                host = dlshare.as_tensor(view, device="cpu")
                assert np.asarray(host).tobytes() == _raw(view), f"{dtype} {name}: view d2h"


@needs_gpu
def test_byte_swapped_and_bfloat16_sources(torch):
    a = np.arange(60, dtype=">f8").reshape(6, 10)[:, ::3]
    d = dlshare.as_tensor(a, device="cuda:0")
    assert torch.equal(torch.from_dlpack(d).cpu(), torch.from_numpy(a.astype("=f8")))
    x = torch.randn(8, 6).to(torch.bfloat16)
    for view in (x, x.t(), x[::2]):
        d = dlshare.from_dlpack(view, device="cuda:0")
        assert torch.equal(torch.from_dlpack(d), view.to("cuda"))
        assert torch.equal(torch.from_dlpack(dlshare.tensor(d, device="cpu")), view)


@needs_gpu
@pytest.mark.parametrize("to", ["float32", "float16", "bfloat16", "int32", "complex64"])
def test_casts_on_the_way_to_the_device_match_torch(torch, to):
    a = np.linspace(-70.0, 70.0, 60).reshape(6, 10)
    torch_to = getattr(torch, to)
    for view in (a, a.T, a[::-1]):
        want = torch.from_numpy(np.ascontiguousarray(view)).to("cuda", torch_to)
        got = torch.from_dlpack(dlshare.tensor(view, dtype=to, device="cuda:0"))
        assert got.dtype == torch_to and torch.equal(got, want), to
        # and a cast of device data (done on the host)
        d = dlshare.tensor(view, device="cuda:0")
        assert torch.equal(torch.from_dlpack(dlshare.tensor(d, dtype=to)), want), to


@needs_gpu
def test_zero_copy_exchange_with_torch_both_ways(torch):
    x = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    for t in (dlshare.from_dlpack(x), dlshare.as_tensor(x), dlshare.from_dlpack(x.t())):
        assert t.shared and t.device == "cuda:0"
    t = dlshare.from_dlpack(x)
    assert t.data_ptr == x.data_ptr() and t.shape == (3, 4)
    y = torch.from_dlpack(t)
    assert y.data_ptr() == x.data_ptr()
    y[0, 0] = 100.0
    assert x[0, 0].item() == 100.0  # one memory
    # ours -> torch: writes through torch land in our memory
    d = dlshare.zeros((4,), "float32", "cuda:0")
    z = torch.from_dlpack(d)
    assert z.data_ptr() == d.data_ptr
    z += 1
    assert np.asarray(dlshare.tensor(d, device="cpu")).tolist() == [1.0] * 4
    # legacy capsule route
    w = torch.utils.dlpack.from_dlpack(d.__dlpack__())
    assert w.data_ptr() == d.data_ptr and w.sum().item() == 4.0


@needs_gpu
def test_a_consumer_on_another_stream_reads_what_we_wrote(torch):
    """Our copy is queued on a producer stream behind a long GPU sleep; a consumer on another
    stream reads it through torch.from_dlpack, which passes its stream to __dlpack__: the event
    wait makes the consumer read the finished copy. The control exports with stream=-1 (no
    wait) and reads too early: it shows the first read would fail without the wait."""
    n = 4 << 20  # 16 MiB of float32: two staging buffers, both queued behind the sleep
    host = np.random.default_rng(1).random(n, dtype=np.float32)
    producer, consumer = torch.cuda.Stream(), torch.cuda.Stream()
    cycles = int(torch.cuda.get_device_properties(0).clock_rate * 1000 * 0.5)  # ~0.5 s

    with torch.cuda.stream(producer):
        torch.cuda._sleep(cycles)
    d = dlshare.tensor(host, device="cuda:0", stream=producer)
    with torch.cuda.stream(consumer):
        seen = torch.from_dlpack(d).clone()
    consumer.synchronize()
    assert torch.equal(seen.cpu(), torch.from_numpy(host)), "the consumer did not wait"

    # control: no synchronisation requested
    host2 = host[::-1].copy()
    with torch.cuda.stream(producer):
        torch.cuda._sleep(cycles)
    d2 = dlshare.tensor(host2, device="cuda:0", stream=producer)
    with torch.cuda.stream(consumer):
        early = torch.utils.dlpack.from_dlpack(d2.__dlpack__(stream=-1)).clone()
    consumer.synchronize()
    assert not torch.equal(early.cpu(), torch.from_numpy(host2)), (
        "the unsynchronised read saw the finished copy: the sleep was too short to show the race"
    )
    torch.cuda.synchronize()
    assert torch.equal(torch.from_dlpack(d2).cpu(), torch.from_numpy(host2))

    # the legacy default stream as consumer (stream=None) and a copy on dlshare's own stream
    with torch.cuda.stream(producer):
        torch.cuda._sleep(cycles)
    d3 = dlshare.tensor(host, device="cuda:0", stream=producer)
    legacy = torch.utils.dlpack.from_dlpack(d3.__dlpack__()).clone()  # stream=None: legacy
    torch.cuda.synchronize()
    assert torch.equal(legacy.cpu(), torch.from_numpy(host))
    dlshare.cuda.synchronize()


@needs_gpu
def test_pinned_memory_and_errors(torch):
    p = dlshare.empty((1000,), "float32", "cuda_host:0")
    assert p.device == "cuda_host:0" and p.data_ptr % 256 == 0
    np.asarray(p)[:] = np.arange(1000, dtype=np.float32)
    d = dlshare.tensor(p, device="cuda:0")
    assert torch.equal(torch.from_dlpack(d).cpu(), torch.arange(1000, dtype=torch.float32))
    q = dlshare.tensor(d, device="cuda_host:0")
    assert np.asarray(q).tolist() == list(range(1000))
    n = dlshare.cuda.device_count()
    assert n == torch.cuda.device_count()
    with pytest.raises(dlshare.DeviceUnavailableError, match=f"there is no CUDA device {n}"):
        dlshare.empty(3, "float32", f"cuda:{n}")
    with pytest.raises(dlshare.OutOfMemoryError, match="CUDA_ERROR_OUT_OF_MEMORY"):
        dlshare.empty((1 << 23, 1 << 23), "float32", "cuda:0")
    with pytest.raises(dlshare.InvalidArgumentError, match="0 is ambiguous"):
        d.__dlpack__(stream=0)


@needs_gpu
def test_memory_returns_to_where_it_started(torch):
    gc.collect()
    torch.cuda.synchronize()
    start = (torch.cuda.memory_allocated(), dlshare.live_tensor_count(),
             dlshare.cuda.memory_allocated())
    a = np.random.default_rng(3).random((512, 1024))
    x = torch.from_numpy(a).to("cuda")
    stream = torch.cuda.Stream()
    kept = [
        dlshare.tensor(a, device="cuda:0"),
        dlshare.tensor(a.T, dtype="float32", device="cuda:0"),
        dlshare.from_dlpack(x),
        dlshare.tensor(x, device="cpu"),
        dlshare.tensor(x),
        dlshare.tensor(x, stream=stream),
        dlshare.tensor(a, device="cuda:0", stream=stream),
        dlshare.zeros((100,), "int8", "cuda_host:0"),
    ]
    views = [torch.from_dlpack(t) for t in kept if t.device == "cuda:0"]
    assert dlshare.cuda.memory_allocated() > start[2]
    del kept, views, x
    gc.collect()
    dlshare.cuda.synchronize()
    torch.cuda.synchronize()
    end = (torch.cuda.memory_allocated(), dlshare.live_tensor_count(),
           dlshare.cuda.memory_allocated())
    assert end == start
