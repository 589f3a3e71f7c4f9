"""CUDA through the Python binding, checked against NumPy (issue 16): these need a CUDA driver
(a GPU, or the simulated driver that tests/cuda_sim/run puts first on LD_LIBRARY_PATH), not
PyTorch's CUDA. Without one every test is skipped with "skipped: no CUDA device (...)".

The tests marked `needs_sim` use the simulator's controls (found with ctypes in the loaded
libcuda.so: dlsim_counter, dlsim_gate, and DLSHARE_SIM_FAULTS in a child process): a stream
held until a timer opens it makes "the consumer waited" observable, and injected driver
failures must surface as dlshare errors with nothing leaked. Another consumer or producer is
played by ctypes calls into the driver itself (cuStreamCreate, cuEventRecord, ...), as a CUDA
library would do it."""

import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import dlshare

CUDA = dlshare.cuda.is_available()
pytestmark = pytest.mark.skipif(
    not CUDA, reason=f"skipped: no CUDA device ({dlshare.cuda.unavailable_reason()})"
)


def _driver():
    """The libcuda.so dlshare loaded (None without one)."""
    if not CUDA:
        return None
    try:
        return ctypes.CDLL("libcuda.so", mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    except OSError:
        return None


DRIVER = _driver()
SIM = DRIVER is not None and hasattr(DRIVER, "dlsim_counter")
needs_sim = pytest.mark.skipif(
    not SIM,
    reason=f"skipped: no CUDA device ({dlshare.cuda.unavailable_reason()})" if not CUDA
    else "skipped: not the simulated driver (run tests/cuda_sim/run)",
)
CHUNK = (int(os.environ.get("DLSHARE_CUDA_CHUNK_MB", "8")) or 8) << 20

DTYPES = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]


def _layouts(a):
    """Views of a 12 x 5 array: every layout dlshare packs on the host."""
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
        "byte_swapped": a.astype(a.dtype.newbyteorder()) if a.dtype.itemsize > 1 else a[1:],
    }


def _sample(dtype, rng):
    a = rng.standard_normal((12, 5)) * 50
    if dtype == "bool":
        return a > 0
    if dtype.startswith("complex"):
        return (a + 1j * a[::-1]).astype(dtype)
    return a.astype(dtype)


def _host(t):
    """A tensor's elements on the host (a copy for device tensors)."""
    if t.device.startswith("cuda:"):
        t = dlshare.tensor(t, device="cpu")
    return np.asarray(t)


def _same(got, want, what):
    want = np.asarray(want).copy(order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    assert got.shape == want.shape and got.dtype == want.dtype.newbyteorder("="), what
    assert got.tobytes() == want.astype(want.dtype.newbyteorder("=")).tobytes(), what


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trips_of_every_layout_match_numpy(dtype):
    base = _sample(dtype, np.random.default_rng(11))
    for name, a in _layouts(base).items():
        what = f"{dtype} {name}"
        d = dlshare.tensor(a, device="cuda:0")
        assert d.device == "cuda:0" and not d.shared and d.is_contiguous(), what
        assert d.data_ptr % 256 == 0, what
        with pytest.raises(BufferError):
            np.asarray(d)  # device memory is never handed to NumPy
        _same(_host(d), a, f"{what}: host -> device -> host")
        _same(_host(dlshare.tensor(d)), a, f"{what}: device -> device")
        _same(_host(dlshare.as_tensor(a, device="cuda:0")), a, f"{what}: as_tensor")
        pinned = dlshare.tensor(d, device="cuda_host:0")
        assert pinned.device == "cuda_host:0", what
        _same(np.asarray(pinned), a, f"{what}: device -> pinned")
        _same(_host(dlshare.tensor(pinned, device="cuda:0")), a, f"{what}: pinned -> device")
        if d.ndim == 2 and d.shape[0] > 1 and d.shape[1] > 1:
            # exported through DLPack and imported again (zero-copy), then to the host
            v = dlshare.from_dlpack(d.__dlpack__(max_version=(1, 0)))
            assert v.shared and v.data_ptr == d.data_ptr, what
            _same(_host(dlshare.tensor(v, device="cpu")), a, f"{what}: re-import")


@pytest.mark.parametrize("to", ["float32", "float16", "int32", "int8", "complex64", "bool"])
def test_casts_on_the_way_match_numpy(to):
    a = np.linspace(-70.0, 70.0, 60).reshape(6, 10)
    for view in (a, a.T, a[::-1, ::2]):
        want = np.ascontiguousarray(view).astype(to)
        got = _host(dlshare.tensor(view, dtype=to, device="cuda:0"))
        _same(got, want, f"host float64 -> cuda {to}")
        d = dlshare.tensor(view, device="cuda:0")
        _same(_host(dlshare.tensor(d, dtype=to)), want, f"cuda float64 -> cuda {to}")
        _same(_host(dlshare.tensor(d, dtype=to, device="cpu")), want, f"cuda -> cpu {to}")


def test_large_copies_pipeline_through_the_staging_buffers():
    n = 5 * CHUNK // 4  # five staging buffers of float32 (the ring has four)
    a = np.random.default_rng(5).random(n, dtype=np.float32)
    d = dlshare.tensor(a, device="cuda:0")
    assert _host(d).tobytes() == a.tobytes()
    m = a.reshape(-1, 1024)
    dt = dlshare.tensor(m.T, device="cuda:0")
    assert _host(dt).tobytes() == np.ascontiguousarray(m.T).tobytes()
    assert _host(dlshare.tensor(dt, dtype="float64")).tobytes() == m.T.astype("f8").tobytes()


def test_errors_name_the_device():
    n = dlshare.cuda.device_count()
    with pytest.raises(dlshare.DeviceUnavailableError, match=f"there is no CUDA device {n}"):
        dlshare.empty(3, "float32", f"cuda:{n}")
    with pytest.raises(dlshare.OutOfMemoryError, match="CUDA_ERROR_OUT_OF_MEMORY"):
        dlshare.empty((1 << 23, 1 << 23), "float32", "cuda:0")
    with pytest.raises(dlshare.InvalidArgumentError, match="0 is ambiguous"):
        dlshare.zeros(3, "float32", "cuda:0").__dlpack__(stream=0)


def _counters():
    gc.collect()
    dlshare.cuda.synchronize()
    out = {
        "live": dlshare.live_tensor_count(),
        "dlshare_device_bytes": dlshare.cuda.memory_allocated(),
    }
    if SIM:
        DRIVER.dlsim_counter.restype = ctypes.c_int64
        for name in ("device_bytes", "device_allocs", "pinned_bytes", "pinned_allocs",
                     "registered", "events", "streams", "pending"):
            out[name] = DRIVER.dlsim_counter(name.encode())
    return out


def test_memory_returns_to_where_it_started():
    dlshare.tensor(np.ones(3), device="cuda:0")  # the stream and staging buffers exist
    start = _counters()
    a = np.random.default_rng(3).random((512, 1024))
    kept = [
        dlshare.tensor(a, device="cuda:0"),
        dlshare.tensor(a.T, dtype="float32", device="cuda:0"),
        dlshare.tensor(a, device="cuda:0", stream=1),
        dlshare.zeros((100,), "int8", "cuda_host:0"),
        dlshare.empty((100,), "int8", "cuda:0"),
    ]
    kept.append(dlshare.tensor(kept[0], stream=2))
    kept.append(dlshare.from_dlpack(kept[0].__dlpack__(stream=1, max_version=(1, 0))))
    kept.append(dlshare.tensor(kept[1], device="cpu"))
    assert dlshare.cuda.memory_allocated() > start["dlshare_device_bytes"]
    del kept
    assert _counters() == start


# ---- the simulator: streams, faults, host reads ------------------------------------------------

CUstream = ctypes.c_void_p


class _Driver:
    """Driver calls made the way another CUDA library would (ctypes on libcuda.so)."""

    def __init__(self):
        self.ctx = ctypes.c_void_p()
        self._ok(DRIVER.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), 0))

    @staticmethod
    def _ok(r):
        assert r == 0, f"driver call failed with {r}"

    def __enter__(self):
        self._ok(DRIVER.cuCtxPushCurrent_v2(self.ctx))
        return self

    def __exit__(self, *exc):
        popped = ctypes.c_void_p()
        self._ok(DRIVER.cuCtxPopCurrent_v2(ctypes.byref(popped)))

    def stream(self):
        s = ctypes.c_void_p()
        with self:
            self._ok(DRIVER.cuStreamCreate(ctypes.byref(s), 1))
        return s.value

    def destroy(self, stream):
        self._ok(DRIVER.cuStreamDestroy_v2(CUstream(stream)))

    def read(self, device_ptr, host_ptr, n, stream):
        """Queues device -> host (pinned) on `stream`."""
        with self:
            self._ok(DRIVER.cuMemcpyDtoHAsync_v2(
                ctypes.c_void_p(host_ptr), ctypes.c_uint64(device_ptr), ctypes.c_size_t(n),
                CUstream(stream)))

    def order_after(self, waiter, stream):
        """Makes `waiter` wait for the work queued on `stream` (what a producer's __dlpack__
        does with the consumer's stream)."""
        e = ctypes.c_void_p()
        with self:
            self._ok(DRIVER.cuEventCreate(ctypes.byref(e), 2))
            self._ok(DRIVER.cuEventRecord(e, CUstream(stream)))
            self._ok(DRIVER.cuStreamWaitEvent(CUstream(waiter), e, 0))
            self._ok(DRIVER.cuEventDestroy_v2(e))

    def synchronize(self, stream):
        self._ok(DRIVER.cuStreamSynchronize(CUstream(stream)))

    def close(self):
        self._ok(DRIVER.cuDevicePrimaryCtxRelease_v2(0))


def _gate(stream, closed):
    assert DRIVER.dlsim_gate(CUstream(stream), int(closed)) == 0


def _open_later(stream):
    """Opens the gate in 0.5 s: the test queues its work before then, and anything that waits
    for all streams meanwhile (freeing device memory) is held only that long."""
    t = threading.Timer(0.5, _gate, (stream, False))
    t.start()
    return t


@needs_sim
@pytest.mark.parametrize("versioned", [True, False])
def test_dlpack_stream_handoff_orders_the_consumer_after_our_copy(versioned):
    drv = _Driver()
    producer, consumer = drv.stream(), drv.stream()
    host = np.random.default_rng(1).random(100_000).astype(np.float32)
    out = dlshare.empty(host.shape, "float32", "cuda_host:0")
    kwargs = {"max_version": (1, 0)} if versioned else {}
    for handoff in (True, False):
        np.asarray(out)[:] = 0
        gc.collect()  # nothing frees device memory (which waits for all streams) while held
        _gate(producer, True)  # our copy, queued on the producer's stream, cannot run yet
        timer = _open_later(producer)
        d = dlshare.tensor(host, device="cuda:0", stream=producer)
        capsule = d.__dlpack__(stream=consumer if handoff else -1, **kwargs)
        drv.read(d.data_ptr, out.data_ptr, host.nbytes, consumer)
        drv.synchronize(consumer)
        timer.join()
        seen = np.asarray(out).copy()
        if handoff:
            assert seen.tobytes() == host.tobytes(), "the consumer read before our copy ended"
        else:  # control: without the wait the consumer reads the memory before the copy
            assert (seen.view(np.uint8) == 0xCB).all(), "the unsynchronised read was not stale"
        dlshare.cuda.synchronize()
        assert _host(d).tobytes() == host.tobytes()
        del capsule, d
    drv.destroy(producer)
    drv.destroy(consumer)
    drv.close()


class _Producer:
    """A CUDA producer with work pending on its own stream: its __dlpack__ orders the consumer's
    stream after that work, as the DLPack protocol asks."""

    def __init__(self, drv, tensor, stream):
        self.drv, self.tensor, self.stream, self.asked = drv, tensor, stream, []

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()

    def __dlpack__(self, stream=None, max_version=None, **kwargs):
        self.asked.append(stream)
        if stream not in (None, -1):
            self.drv.order_after(stream, self.stream)
        return self.tensor.__dlpack__(stream=-1, max_version=max_version)


@needs_sim
def test_an_imported_cuda_tensor_waits_for_its_producer():
    drv = _Driver()
    producer = drv.stream()
    host = np.arange(50_000, dtype=np.float64)
    gc.collect()
    _gate(producer, True)  # the producer's own write is still pending
    timer = _open_later(producer)
    inner = dlshare.tensor(host, device="cuda:0", stream=producer)
    p = _Producer(drv, inner, producer)
    back = dlshare.tensor(p, device="cpu")  # must wait for the producer's stream
    timer.join()
    assert p.asked == [dlshare.cuda.stream(0)], "dlshare's stream was not passed"
    assert np.asarray(back).tobytes() == host.tobytes(), "read before the producer finished"
    dlshare.cuda.synchronize()
    drv.destroy(producer)
    drv.close()


_FAULT_CHILD = textwrap.dedent("""
    import ctypes, gc, json, os, sys
    import numpy as np
    import dlshare
    assert dlshare.cuda.is_available()  # loads the driver
    drv = ctypes.CDLL("libcuda.so", mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    drv.dlsim_counter.restype = ctypes.c_int64
    def counters():
        gc.collect()
        names = ("device_bytes", "pinned_bytes", "pinned_allocs", "events", "pending")
        return [dlshare.live_tensor_count()] + [drv.dlsim_counter(n.encode()) for n in names]
    a = np.random.default_rng(0).random((300, 1000))
    warm = dlshare.tensor(a, device="cuda:0")
    dlshare.tensor(warm, device="cpu")
    start = counters()
    drv.dlsim_configure(os.environ["FAULT"].encode())
    result = {}
    try:
        d = dlshare.tensor(a.T if os.environ["WHAT"] == "up" else warm,
                           device="cuda:0" if os.environ["WHAT"] == "up" else "cpu")
        result["error"] = None
    except dlshare.Error as e:
        result["error"] = [type(e).__name__, str(e)]
    drv.dlsim_configure(b"")
    dlshare.cuda.synchronize()
    result["faults"] = drv.dlsim_counter(b"faults")
    result["leaked"] = [x - y for x, y in zip(counters(), start)]
    again = dlshare.tensor(warm, device="cpu")
    result["works_after"] = np.asarray(again).tobytes() == a.tobytes()
    print(json.dumps(result))
""")


@needs_sim
@pytest.mark.parametrize(
    "fault, what, error, words",
    [
        ("cuMemAlloc_v2:1", "up", "OutOfMemoryError", "CUDA_ERROR_OUT_OF_MEMORY"),
        ("cuMemcpyHtoDAsync_v2:2", "up", "CudaError", "cuMemcpyHtoDAsync"),
        ("cuMemcpyDtoHAsync_v2:1", "down", "CudaError", "cuMemcpyDtoHAsync"),
        ("cuEventSynchronize:1", "down", "CudaError", "cuEventSynchronize"),
        ("lost:1", "up", "CudaError", "CUDA_ERROR_ILLEGAL_ADDRESS"),
        ("lost:3", "down", "CudaError", "CUDA_ERROR_ILLEGAL_ADDRESS"),
    ],
)
def test_injected_faults_raise_clear_errors_and_leak_nothing(fault, what, error, words):
    env = dict(os.environ, FAULT=fault, WHAT=what, DLSHARE_CUDA_CHUNK_MB="1")
    run = subprocess.run([sys.executable, "-c", _FAULT_CHILD], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["faults"] >= 1, "nothing was injected"
    assert result["error"] is not None and result["error"][0] == error, result
    assert words in result["error"][1], result
    assert result["leaked"] == [0] * 6, f"leaked (live, device, pinned, ...): {result}"
    assert result["works_after"]


@needs_sim
def test_a_faulty_driver_start_is_device_unavailable():
    code = ("import dlshare; print(dlshare.cuda.is_available()); "
            "print(dlshare.cuda.unavailable_reason())")
    env = dict(os.environ, DLSHARE_SIM_FAULTS="cuInit:1:100")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    available, why = run.stdout.strip().splitlines()
    assert available == "False" and "cuInit failed with CUDA_ERROR_NO_DEVICE" in why, why


@needs_sim
def test_a_host_read_of_device_memory_crashes():
    code = textwrap.dedent("""
        import ctypes, dlshare
        d = dlshare.zeros(16, "float32", "cuda:0")
        print("reading", hex(d.data_ptr), flush=True)
        print(ctypes.c_float.from_address(d.data_ptr).value)  # deliberately wrong
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "reading" in run.stdout
    assert run.returncode == -signal.SIGSEGV, (run.returncode, run.stdout, run.stderr)
    # control: pinned host memory is readable
    p = dlshare.zeros(16, "float32", "cuda_host:0")
    assert ctypes.c_float.from_address(p.data_ptr).value == 0.0


def _ipc_child(inbox, outbox):
    """Receives a CUDA tensor through CUDA IPC, reads it (down, and device to device), and
    says how many IPC mappings are open before and after dropping it."""
    t = inbox.get()
    DRIVER.dlsim_counter.restype = ctypes.c_int64
    outbox.put((t.device, t.shared, _host(t).tolist(), _host(dlshare.tensor(t)).tolist(),
                DRIVER.dlsim_counter(b"ipc_open")))
    del t
    gc.collect()
    outbox.put(DRIVER.dlsim_counter(b"ipc_open"))


@needs_sim
def test_a_cuda_tensor_crosses_processes_through_cuda_ipc():
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # CUDA does not survive a fork
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_ipc_child, args=(inbox, outbox))
    p.start()
    a = np.arange(24, dtype=np.float32).reshape(4, 6) * 1.5
    t = dlshare.tensor(a, device="cuda:0")
    view = dlshare.from_dlpack(t.__dlpack__(max_version=(1, 0)))  # a second owner, same memory
    inbox.put(view)
    device, shared, down, copied, opened = outbox.get(timeout=120)
    assert (device, shared, opened) == ("cuda:0", True, 1)
    assert down == a.tolist() and copied == a.tolist()
    assert outbox.get(timeout=120) == 0, "the receiver kept its IPC mapping"
    p.join(60)
    assert p.exitcode == 0
    assert _host(t).tolist() == a.tolist()
