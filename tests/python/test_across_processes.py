"""Tensors across processes (issue 15): pickle with every protocol, shared-memory tensors,
multiprocessing with every start method (Queue, Pipe, Pool, Process arguments), torch in the
child, memory released by the last process, abrupt child death, the open-file limit, and bad
descriptions or payloads. Leak checks look at this process's open descriptors and mappings
(`/proc/self/fd`, `/proc/self/maps`: a shared tensor shows there as `memfd:dlshare`) and at
/dev/shm (which dlshare never uses)."""

import gc
import multiprocessing as mp
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from multiprocessing.reduction import ForkingPickler

import dlshare
from dlshare import _shm

from across_children import (
    child_cuda,
    child_hold,
    child_pipe,
    child_process_argument,
    child_queue,
    child_returns_and_exits,
    pool_task,
)

MIB = 1 << 20


def memfds() -> int:
    """Open descriptors of dlshare memory files in this process."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:dlshare")
        except OSError:
            pass
    return count


def mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum("/memfd:dlshare" in line for line in f)


def dev_shm() -> set:
    """Shared-memory segments in /dev/shm, less POSIX semaphores (`sem.*`: multiprocessing's
    locks, created and unlinked at once, by any process on the machine)."""
    if not os.path.isdir("/dev/shm"):
        return set()
    return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}


@pytest.fixture
def no_shared_leaks():
    gc.collect()
    before = (memfds(), mappings(), dev_shm())
    yield
    gc.collect()
    after = (memfds(), mappings())
    assert after == before[:2], f"memory files / mappings left open: {before[:2]} -> {after}"
    assert not (dev_shm() - before[2]), f"left in /dev/shm: {dev_shm() - before[2]}"


# ---------------------------------------------------------------------------------------------
# pickle


def roundtrip5(t):
    buffers = []
    data = pickle.dumps(t, protocol=5, buffer_callback=buffers.append)
    return data, buffers, pickle.loads(data, buffers=buffers)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_keeps_values_dtype_shape_and_flags(protocol):
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    t = dlshare.tensor(a)
    u = pickle.loads(pickle.dumps(t, protocol=protocol))
    assert (u.dtype, u.shape, u.strides, u.readonly) == ("float64", (2, 3, 4), t.strides, False)
    np.testing.assert_array_equal(u.numpy(), a)
    u.numpy()[0, 0, 0] = -1  # writable
    frozen = a.copy()
    frozen.flags.writeable = False
    r = pickle.loads(pickle.dumps(dlshare.from_numpy(frozen, readonly=True), protocol=protocol))
    assert r.readonly and not r.numpy().flags.writeable
    np.testing.assert_array_equal(r.numpy(), a)


def test_protocol5_is_out_of_band_and_loads_without_a_copy():
    t = dlshare.empty((64 * MIB,), "float32")  # 256 MiB, never touched
    data, buffers, u = roundtrip5(t)
    assert len(buffers) == 1 and isinstance(buffers[0], pickle.PickleBuffer)
    assert len(data) < 1024, len(data)
    assert buffers[0].raw().nbytes == 256 * MIB
    assert u.data_ptr == t.data_ptr and u.shape == t.shape and u.dtype == "float32"
    assert u.shared and dlshare.shares_memory(u, t)
    del u, buffers
    # a 1-element tensor pickles to a stream just as small
    assert len(roundtrip5(dlshare.tensor([1.0]))[0]) == len(data) - 3


def test_protocol5_over_a_buffer_given_at_load():
    src = dlshare.tensor(np.arange(10, dtype=np.int32))
    data, _, _ = roundtrip5(src)
    memory = bytearray(np.arange(10, dtype=np.int32).tobytes())
    u = pickle.loads(data, buffers=[memory])
    u.numpy()[3] = 99  # writes go to the buffer given
    assert np.frombuffer(memory, np.int32)[3] == 99
    ro = pickle.loads(data, buffers=[bytes(memory)])  # a read-only buffer: a read-only tensor
    assert ro.readonly and ro.numpy()[3] == 99


def test_layouts_keep_strides_or_values():
    a = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    f = dlshare.as_tensor(np.asfortranarray(a))
    _, _, u = roundtrip5(f)
    assert u.strides == f.strides == (1, 2, 6) and not u.is_contiguous()
    np.testing.assert_array_equal(u.numpy(), a)
    perm = dlshare.as_tensor(a.transpose(2, 0, 1))
    _, _, u = roundtrip5(perm)
    assert u.strides == perm.strides
    np.testing.assert_array_equal(u.numpy(), a.transpose(2, 0, 1))
    # sparse views (every other element, a broadcast): a C-contiguous copy, the same values
    sparse = dlshare.as_tensor(a[:, ::2, 1::2])
    for protocol in (2, 4, 5):
        v = pickle.loads(pickle.dumps(sparse, protocol=protocol))
        assert v.is_contiguous()
        np.testing.assert_array_equal(v.numpy(), a[:, ::2, 1::2])
    data, buffers, v = roundtrip5(sparse)
    assert buffers[0].raw().nbytes == sparse.nbytes
    bcast = dlshare.as_tensor(np.broadcast_to(np.arange(3.0), (4, 3)))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(bcast)).numpy(), bcast.numpy())


def test_dtypes_without_numpy_equivalents_and_empty_tensors():
    b = dlshare.as_tensor(torch.arange(6, dtype=torch.bfloat16).reshape(2, 3))
    for protocol in (4, 5):
        u = pickle.loads(pickle.dumps(b, protocol=protocol))
        assert u.dtype == "bfloat16"
        assert torch.equal(torch.from_dlpack(u), torch.arange(6, dtype=torch.bfloat16).reshape(2, 3))
    for shape in [(0,), (3, 0, 2), ()]:
        e = dlshare.zeros(shape, "float32")
        u = pickle.loads(pickle.dumps(e, protocol=5))
        assert u.shape == shape and u.nbytes == e.nbytes


def test_forged_or_truncated_payloads_are_refused():
    t = dlshare.tensor(np.arange(8, dtype=np.float32))
    fn, (buf, key, shape, strides, offset, ro) = t.__reduce_ex__(5)
    raw = bytearray(buf.raw())
    cases = [
        (raw[:-4], key, shape, strides, offset, ro),  # truncated buffer
        (raw, key, (9,), strides, offset, ro),  # shape larger than the buffer
        (raw, key, shape, (2,), offset, ro),  # strides reaching past it
        (raw, key, shape, (-1,), offset, ro),  # before it
        (raw, key, shape, strides, 4, ro),  # offset pushing the end out
        (raw, key, (8, 1), strides, offset, ro),  # fewer strides than dimensions
        (raw, key, (-8,), strides, offset, ro),  # negative extent
        (raw, (2, 32), shape, strides, offset, ro),  # a dtype of two fields
        (raw, (2, 32, 1), ("8",), strides, offset, ro),  # not integers
        (raw, key, shape, strides, -1, ro),  # negative offset
        (raw, key, shape, strides, offset, "yes"),  # read-only flag of the wrong type
        (raw, key, (1,) * 65, (1,) * 65, 0, ro),  # too many dimensions
        (12345, key, shape, strides, offset, ro),  # not a buffer
    ]
    for case in cases:
        with pytest.raises(dlshare.InvalidArgumentError):
            fn(*case)
    with pytest.raises(dlshare.UnsupportedDtypeError):
        fn(raw, (99, 32, 1), shape, strides, offset, ro)  # unknown type code: the library says
    data = pickle.dumps(t, protocol=4)
    for cut in (len(data) // 2, len(data) - 1):
        with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
            pickle.loads(data[:cut])


# ---------------------------------------------------------------------------------------------
# shared memory in one process


def test_shared_tensors(no_shared_leaks):
    t = dlshare.zeros((1000, 3), "float64", shared=True)
    assert t.is_shared_memory and t.shape == (1000, 3) and not t.numpy().any()
    e = dlshare.empty(5, "int8", shared=True)
    assert e.is_shared_memory and e.dtype == "int8"
    assert t.share_memory() is t  # no copy when already shared
    plain = dlshare.tensor(np.arange(6.0).reshape(2, 3))
    assert not plain.is_shared_memory
    s = plain.share_memory()  # one copy
    assert s.is_shared_memory and not dlshare.shares_memory(s, plain)
    np.testing.assert_array_equal(s.numpy(), plain.numpy())
    view = dlshare.as_tensor(np.arange(12.0).reshape(3, 4)[:, ::2])  # non-contiguous
    sv = view.share_memory()
    assert sv.is_contiguous() and sv.is_shared_memory
    np.testing.assert_array_equal(sv.numpy(), view.numpy())
    assert memfds() >= 4 and mappings() >= 4
    with pytest.raises(dlshare.UnsupportedDeviceError):
        dlshare.empty(3, shared=True, device="cuda:0")
    # a plain pickle of a shared tensor is by value
    u = pickle.loads(pickle.dumps(t, protocol=4))
    assert not u.is_shared_memory
    del t, e, s, sv, u


def test_stale_or_forged_descriptions_are_refused(no_shared_leaks, tmp_path):
    t = dlshare.zeros((16,), "float32", shared=True)
    fd, offset, size = _shm._export(t)
    good = (fd, offset, size, t._dtype_key, t.shape, t.strides, False)
    u = _shm.import_shared(*good)
    u.numpy()[2] = 5
    assert t.numpy()[2] == 5
    del u
    bad_size = good[:2] + (size + 4096,) + good[3:]
    with pytest.raises(dlshare.InvalidArgumentError, match="stale or forged"):
        _shm.import_shared(*bad_size)
    outside = good[:4] + ((size // 4 + 1,), (1,), False)
    with pytest.raises(dlshare.InvalidArgumentError, match="outside"):
        _shm.import_shared(*outside)
    with pytest.raises(dlshare.InvalidArgumentError, match="not aligned"):
        _shm.import_shared(fd, 2, size, t._dtype_key, (1,), (1,), False)
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(dlshare.InvalidArgumentError, match="cannot be used"):
        _shm.import_shared(w, *good[1:])  # a closed fd
    with pytest.raises(dlshare.InvalidArgumentError, match="not a dlshare shared-memory file"):
        _shm.import_shared(r, *good[1:])  # a pipe
    os.close(r)
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(size))
    with open(plain, "rb") as f:  # a regular file could be truncated under the mapping
        with pytest.raises(dlshare.InvalidArgumentError, match="sealed"):
            _shm.import_shared(f.fileno(), *good[1:])
    unsealed = os.memfd_create("not-dlshare")
    os.ftruncate(unsealed, size)
    with pytest.raises(dlshare.InvalidArgumentError, match="sealed"):
        _shm.import_shared(unsealed, *good[1:])
    os.close(unsealed)
    with pytest.raises(dlshare.InvalidArgumentError):
        _shm.import_shared(-1, *good[1:])
    with pytest.raises(dlshare.InvalidArgumentError):
        _shm.import_shared(2**40, *good[1:])
    with pytest.raises(dlshare.InvalidArgumentError):
        _shm._export(dlshare.tensor([1.0]))  # not in shared memory
    del t


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_shares_the_pages(method, no_shared_leaks):
    ctx = mp.get_context(method)
    # Queue, both ways
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child_queue, args=(inbox, outbox))
    p.start()
    t = dlshare.zeros((MIB,), "float32", shared=True)
    t.numpy()[0] = 3.5
    inbox.put(t)
    first, shared, reply = outbox.get(timeout=60)
    assert (first, shared) == (3.5, True)
    assert t.numpy()[1] == 42.0 and t.numpy()[2] == 43.0  # the child's writes
    assert reply.is_shared_memory
    np.testing.assert_array_equal(reply.numpy(), [7, 8, 9])
    reply.numpy()[0] = 100  # the parent's write, seen by the child
    inbox.put(reply)
    assert outbox.get(timeout=60) == 108
    p.join(60)
    assert p.exitcode == 0
    # Pipe
    here, there = ctx.Pipe()
    p = ctx.Process(target=child_pipe, args=(there,))
    p.start()
    small = dlshare.zeros((4,), "float64", shared=True)
    here.send(small)
    assert here.recv() == 4.0
    np.testing.assert_array_equal(small.numpy(), [1, 1, 1, 1])
    p.join(60)
    # Process arguments (pickled while the child starts for spawn and forkserver)
    done = ctx.Queue()
    arg = dlshare.zeros((2,), "int32", shared=True)
    p = ctx.Process(target=child_process_argument, args=(arg, done))
    p.start()
    assert done.get(timeout=60)
    p.join(60)
    assert arg.numpy()[0] == 11
    # Pool arguments and results
    with ctx.Pool(2) as pool:
        inputs = [dlshare.zeros((2,), "float32", shared=True) for _ in range(4)]
        for i, x in enumerate(inputs):
            x.numpy()[1] = i
        results = pool.map(pool_task, inputs)
    assert [float(x.numpy()[0]) for x in inputs] == [-1.0] * 4
    assert [r.numpy().tolist() for r in results] == [[i, i] for i in range(4)]
    assert all(r.is_shared_memory for r in results)
    del t, reply, small, arg, inputs, results, x


def test_a_child_may_exit_right_after_sending(no_shared_leaks):
    ctx = mp.get_context("fork")
    outbox = ctx.Queue()
    for i in range(5):
        p = ctx.Process(target=child_returns_and_exits, args=(outbox, i))
        p.start()
        t = outbox.get(timeout=60)
        assert t.is_shared_memory and t.numpy().tolist() == [i] * 4
        p.join(60)
        assert p.exitcode == 0
    # a hand-off is received once; a second receive of the same message is refused clearly
    t = dlshare.zeros((2,), shared=True)
    message = bytes(ForkingPickler.dumps(t))
    assert ForkingPickler.loads(message).is_shared_memory
    with pytest.raises(dlshare.InvalidArgumentError, match="received already"):
        ForkingPickler.loads(message)
    del t


CUDA = dlshare.cuda.is_available()
WHY = dlshare.cuda.unavailable_reason()


@pytest.mark.skipif(CUDA, reason="skipped: CUDA is available (run with DLSHARE_DISABLE_CUDA=1)")
def test_cuda_ipc_without_cuda_answers_device_unavailable():
    args = (b"\0" * 64, 0, 0, 4096, (2, 32, 1), (4,), (1,), False)
    with pytest.raises(dlshare.DeviceUnavailableError):
        _shm.import_cuda(*args)
    with pytest.raises(dlshare.InvalidArgumentError):
        _shm.import_cuda(b"short", *args[1:])  # checked before the driver is asked
    with pytest.raises(dlshare.InvalidArgumentError):
        _shm.import_cuda(args[0], 0, 0, 4096, (2, 32, 1), (2000,), (1,), False)  # outside
    with pytest.raises(dlshare.UnsupportedDeviceError):
        _shm.export_cuda(dlshare.zeros(3))  # a CPU tensor has no CUDA IPC handle


@pytest.mark.skipif(not CUDA, reason=f"skipped: no CUDA device ({WHY})")
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="skipped: no CUDA device for PyTorch (the child reads with torch)")
def test_cuda_tensor_crosses_processes_through_cuda_ipc():
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child_cuda, args=(inbox, outbox))
    p.start()
    t = dlshare.tensor(np.arange(8, dtype=np.float32), device="cuda:0")  # cuMemAlloc memory
    assert t.device == "cuda:0"
    inbox.put(t)  # the handle travels; t stays alive here while the child uses it
    assert outbox.get(timeout=120) == 3.0
    assert outbox.get(timeout=120) == "done"
    p.join(60)
    assert p.exitcode == 0
    assert torch.from_dlpack(t)[4].item() == 44.0  # the child's write, in the same memory
    del t


def test_abrupt_child_death_leaks_nothing_in_the_parent(no_shared_leaks):
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child_hold, args=(inbox, outbox))
    p.start()
    t = dlshare.zeros((4 * MIB,), "float32", shared=True)
    t.numpy()[0] = 9.0
    inbox.put(t)
    assert outbox.get(timeout=60) == 9.0
    os.kill(p.pid, signal.SIGKILL)
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    t.numpy()[:] = 1.0  # the parent's memory is untouched by the death
    assert float(t.numpy().sum()) == 4 * MIB
    del t  # the fixture checks that nothing of it is left open or mapped here


MEMORY_FOLLOWS_LAST_OWNER = r"""
import multiprocessing as mp, os, sys
import dlshare
from dlshare import _shm

def child(inbox, outbox):
    t = inbox.get()
    outbox.put(float(t.numpy()[5]))     # the parent has dropped its tensor by now
    fd, _, _ = _shm._export(t)
    outbox.put(os.fstat(fd).st_ino)
    del t
    names = []
    for f in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{f}"))
        except OSError:
            pass
    outbox.put(names)
    inbox.get()

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=child, args=(inbox, outbox), daemon=True); p.start()
    t = dlshare.zeros((1 << 20,), "float32", shared=True)
    t.numpy()[5] = 5.0
    inbox.put(t)
    del t                                # only the child (and the pending hand-off) holds it
    assert outbox.get(timeout=60) == 5.0
    inode = outbox.get(timeout=60)
    child_fds = outbox.get(timeout=60)
    assert not any("memfd:dlshare" in f for f in child_fds), child_fds
    mine = []
    for f in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{f}").startswith("/memfd:dlshare"):
                mine.append(os.stat(f"/proc/self/fd/{f}").st_ino)
        except OSError:
            pass  # the directory's own descriptor
    assert inode not in mine and not mine, mine
    with open("/proc/self/maps") as f:
        assert "memfd:dlshare" not in f.read()
    inbox.put(None); p.join(60)
    print("ok", inode)
"""


def run_script(tmp_path, source, *args, timeout=120):
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_memory_follows_the_last_owner(tmp_path):
    out = run_script(tmp_path, MEMORY_FOLLOWS_LAST_OWNER)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr


# The open-file limit: how many shared tensors can be alive, and in flight at once, under the
# default soft limit of most Linux systems (1024), measured in a child process that sets it.
FD_LIMIT = r"""
import multiprocessing as mp, os, resource, sys
from multiprocessing.reduction import ForkingPickler
import dlshare

LIMIT = 1024

def child(conn):
    n = conn.recv()
    held = [ForkingPickler.loads(conn.recv_bytes()) for _ in range(n)]  # all alive here at once
    conn.send(sum(int(t.numpy()[0]) for t in held))
    conn.recv()

if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(LIMIT, hard), hard))
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    p = ctx.Process(target=child, args=(there,), daemon=True)
    p.start()
    base = len(os.listdir("/proc/self/fd"))
    # the most that fit: two descriptors each, and a few for multiprocessing's own sockets
    n = (LIMIT - base - 4) // 2
    here.send(n)
    ts = [dlshare.zeros((256,), "int32", shared=True) for _ in range(n)]
    for i, t in enumerate(ts):
        t.numpy()[0] = i
    # Pickled for multiprocessing (what a Queue's feeder thread does), all before the child
    # collects any: every tensor in flight at once.
    messages = [bytes(ForkingPickler.dumps(t)) for t in ts]
    peak = len(os.listdir("/proc/self/fd"))
    for m in messages:
        here.send_bytes(m)
    total = here.recv()
    assert total == n * (n - 1) // 2, total
    here.send(None); p.join(60)
    del ts, t, messages
    # alive at once in one process: until the limit, then a clear error (not a crash)
    alive = []
    try:
        while True:
            alive.append(dlshare.empty((1,), "int8", shared=True))
    except dlshare.OutOfMemoryError as e:
        assert "ulimit -n" in str(e), e
    count = len(alive)
    del alive  # (the interpreter's exit needs descriptors)
    print(n, base, peak, count)
"""


def test_as_many_shared_tensors_as_the_default_fd_limit_allows(tmp_path):
    """Under `ulimit -n` 1024 (the usual default), in a fresh interpreter with 11 descriptors
    open: 504 shared tensors in flight from one sender at once (each costs the sender two
    descriptors until the receiver collects it: its own and multiprocessing's duplicate), all
    then held by the receiver at once; 1012 alive in one process, and the next one refused
    with a message naming `ulimit -n`."""
    out = run_script(tmp_path, FD_LIMIT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    sent, base, peak, alive = map(int, out.stdout.split())
    assert sent >= 490 and peak >= base + 2 * sent  # each in flight: its own fd and the duplicate
    assert alive >= 1024 - base - 16, (alive, base)  # every descriptor left is usable
    print(f"fd limit 1024: {sent} in flight at once, {alive} alive in one process")



# A producer that uses only the C API (through ctypes: no dlshare Python package), in a process of
# its own, feeding this Python process: the description's fields travel as text, the fd with
# SCM_RIGHTS over a Unix socket.
C_PRODUCER = r"""
import ctypes, socket, sys

lib = ctypes.CDLL(sys.argv[1])

class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]

class Desc(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int32), ("offset", ctypes.c_uint64), ("size", ctypes.c_uint64),
                ("dtype", DLDataType), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("read_only", ctypes.c_bool)]

class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", ctypes.c_int32 * 2), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("byte_offset", ctypes.c_uint64)]

shape = (ctypes.c_int64 * 2)(3, 5)
t = ctypes.c_void_p()
assert lib.dlshare_tensor_empty_shared(DLDataType(2, 64, 1), 2, shape, ctypes.byref(t)) == 0
dl = DLTensor()
assert lib.dlshare_tensor_info(t, ctypes.byref(dl), None) == 0
values = (ctypes.c_double * 15).from_address(dl.data)
for i in range(15):
    values[i] = i * 0.5
d = Desc()
assert lib.dlshare_shm_export(t, ctypes.byref(d)) == 0
sock = socket.socket(fileno=int(sys.argv[2]))
text = f"{d.offset} {d.size} {d.dtype.code} {d.dtype.bits} {d.dtype.lanes} {d.shape[0]} {d.shape[1]} {d.strides[0]} {d.strides[1]}"
socket.send_fds(sock, [text.encode()], [d.fd])
assert sock.recv(1) == b"y"        # the consumer wrote into the tensor
assert values[14] == -1.0
assert lib.dlshare_tensor_release(t) == 0
print("producer saw the write")
"""


def test_c_api_producer_feeds_a_python_consumer(tmp_path, no_shared_leaks):
    here, there = socket.socketpair()
    script = tmp_path / "producer.py"
    script.write_text(C_PRODUCER)
    producer = subprocess.Popen(
        [sys.executable, str(script), dlshare.LIBRARY_PATH, str(there.fileno())],
        pass_fds=[there.fileno()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    there.close()
    message, fds, _, _ = socket.recv_fds(here, 1024, 1)
    offset, size, code, bits, lanes, n0, n1, s0, s1 = map(int, message.split())
    t = _shm.import_shared(fds[0], offset, size, (code, bits, lanes), (n0, n1), (s0, s1), False)
    os.close(fds[0])
    assert t.dtype == "float64" and t.is_shared_memory
    np.testing.assert_array_equal(t.numpy(), np.arange(15).reshape(3, 5) * 0.5)
    t.numpy()[2, 4] = -1.0
    here.send(b"y")
    out, err = producer.communicate(timeout=60)
    assert producer.returncode == 0 and "saw the write" in out, err
    here.close()
    del t


def test_readme_example_runs():
    """The README's "Across processes" section shows examples/across_processes.py verbatim, and
    it runs."""
    import pathlib
    import re

    repo = pathlib.Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text()
    section = readme.split("## Across processes", 1)[1].split("\n## ", 1)[0]
    marker = "<!-- example: examples/across_processes.py -->\n```python\n"
    assert marker in section
    shown = section.split(marker, 1)[1].split("```", 1)[0]
    example = repo / "examples" / "across_processes.py"
    assert shown == example.read_text(), "README block and examples/across_processes.py differ"
    assert re.search(r"shared=True", shown)
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
