"""Tensors across processes.

- Pickle, every protocol. Protocol 5 with a `buffer_callback` hands the elements out of band as one
  `pickle.PickleBuffer` (the stream holds only the layout, well under 1 KiB), and
  `pickle.loads(data, buffers=...)` makes a tensor over the buffer it is given, without a copy.
  Dense layouts (C or Fortran order, any axis order, negative strides) keep their strides; other
  views (every other row, broadcasts) are sent as a C-contiguous copy with the same values.
  Lower protocols, and protocol 5 without a callback, carry the bytes in the stream (a copy).
- Shared memory: `empty(..., shared=True)`, `zeros(..., shared=True)`, `Tensor.share_memory()`
  and `Tensor.is_shared_memory` over the library's memory files (src/shm.rs).
- multiprocessing: a reducer registered with `multiprocessing.reduction.ForkingPickler` (what
  Queue, Pipe, Pool and Process arguments use with every start method) sends a shared tensor as
  its file descriptor (passed with the start of a child being started, else collected by the
  receiver with SCM_RIGHTS over an authenticated Unix socket, `_Sharer`) plus its layout. The
  receiver maps the same pages: writes are seen both ways, and the hand-off costs the same for
  any size. A tensor that is not
  in shared memory goes by value, as with pickle (it is not moved to shared memory behind the
  caller's back: call `share_memory()` first).

Descriptors: each shared tensor storage keeps one file descriptor open in each process that holds
it; a shared tensor in flight through multiprocessing holds one more in the sender (the
duplicate the sender keeps until the receiver collects it). The README's "Across
processes" gives the counts under the default `ulimit -n`.
"""

from __future__ import annotations

import itertools
import os
import pickle
import secrets
import threading
import time
from multiprocessing import connection as _mp_connection
from multiprocessing import context as _mp_context
from multiprocessing import process as _mp_process
from multiprocessing import reduction as _mp_reduction
from multiprocessing import util as _mp_util

import numpy as np

from . import _core
from ._errors import InvalidArgumentError, UnsupportedDeviceError, check
from ._ffi import ffi, lib

_MAX_NDIM = 64
_HOST = (lib.kDLCPU, lib.kDLCUDAHost)


# ---------------------------------------------------------------------------------------------
# shared-memory tensors


def empty_shared(shape, dtype, device="cpu") -> _core.Tensor:
    if _core.device_key(device) != _core._CPU:
        raise UnsupportedDeviceError(
            f"shared=True makes CPU tensors; a {device} tensor crosses processes through CUDA "
            "IPC (send it through multiprocessing as it is)"
        )
    dims = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
    out = ffi.new("dlshare_tensor **")
    c_shape = ffi.new("int64_t[]", dims) if dims else ffi.NULL
    check(lib.dlshare_tensor_empty_shared(_core.dtype_key(dtype), len(dims), c_shape, out))
    return _core.Tensor._wrap(out[0], False)


def is_shared_memory(self) -> bool:
    """True when the tensor's memory is shared memory that other processes can map (made with
    `shared=True`, by `share_memory()`, or received from another process)."""
    out = ffi.new("bool *")
    check(lib.dlshare_tensor_is_shared_memory(self._handle, out))
    return bool(out[0])


def share_memory(self) -> _core.Tensor:
    """The tensor in shared memory: itself when it is there already (no copy), else a copy of
    its elements (C-contiguous, same dtype, shape and read-only flag). Unlike torch's
    `share_memory_()` it does not change the tensor in place: keep the result."""
    if is_shared_memory(self):
        return self
    out = ffi.new("dlshare_tensor **")
    check(lib.dlshare_tensor_share_memory(self._handle, out))
    return _core.Tensor._wrap(out[0], False, lib.DLSHARE_REASON_COPY_REQUESTED)


def _export(t) -> tuple:
    """(fd, offset, size) of a shared tensor; the fd belongs to the tensor."""
    desc = ffi.new("dlshare_shm_desc *")
    check(lib.dlshare_shm_export(t._handle, desc))
    return int(desc.fd), int(desc.offset), int(desc.size)


def _int_tuple(values, name: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or len(values) > _MAX_NDIM:
        raise InvalidArgumentError(
            f"{name} must be a tuple of at most {_MAX_NDIM} integers, got {values!r:.200}"
        )
    if not all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in values):
        raise InvalidArgumentError(f"{name} must hold 64-bit integers, got {values!r:.200}")
    return tuple(values)


def _check_layout(dtype_key, shape, strides, offset, readonly) -> tuple:
    key = _int_tuple(dtype_key, "dtype")
    if len(key) != 3 or not (0 <= key[0] < 256 and 0 <= key[1] < 256 and 0 <= key[2] < 65536):
        raise InvalidArgumentError(f"dtype must be (code, bits, lanes), got {dtype_key!r:.200}")
    shape = _int_tuple(shape, "shape")
    strides = _int_tuple(strides, "strides")
    if len(strides) != len(shape):
        raise InvalidArgumentError(
            f"{len(shape)} dimensions but {len(strides)} strides: a truncated or forged payload"
        )
    if any(n < 0 for n in shape):
        raise InvalidArgumentError(f"shape {shape} has a negative extent")
    if not isinstance(offset, int) or not 0 <= offset < 2**63:
        raise InvalidArgumentError(f"offset must be an integer >= 0, got {offset!r:.200}")
    if not isinstance(readonly, bool):
        raise InvalidArgumentError(f"readonly must be a bool, got {readonly!r:.200}")
    return key, shape, strides


def import_shared(fd: int, offset: int, size: int, dtype_key, shape, strides, readonly):
    """The tensor a cross-process description names (`fd` stays the caller's: the tensor keeps a
    duplicate)."""
    key, shape, strides = _check_layout(dtype_key, shape, strides, offset, readonly)
    if not isinstance(fd, int) or not isinstance(size, int) or not 0 <= size < 2**64:
        raise InvalidArgumentError(f"fd and size must be integers, got {fd!r:.50}, {size!r:.50}")
    if not -(2**31) <= fd < 2**31:
        raise InvalidArgumentError(f"fd {fd} is not a file descriptor")
    desc = ffi.new("dlshare_shm_desc *")
    c_shape = ffi.new("int64_t[]", shape) if shape else ffi.NULL
    c_strides = ffi.new("int64_t[]", strides) if strides else ffi.NULL
    desc.fd, desc.offset, desc.size = fd, offset, size
    desc.dtype = key
    desc.ndim = len(shape)
    desc.shape, desc.strides, desc.read_only = c_shape, c_strides, readonly
    out = ffi.new("dlshare_tensor **")
    check(lib.dlshare_shm_import(desc, out))
    return _core.Tensor._wrap(out[0], True)


# ---------------------------------------------------------------------------------------------
# pickle


class _Span:
    """A byte range of a tensor as NumPy sees it (keeps the tensor alive)."""

    __slots__ = ("__array_interface__", "tensor")

    def __init__(self, tensor, address: int, nbytes: int, readonly: bool) -> None:
        self.tensor = tensor
        self.__array_interface__ = {
            "version": 3,
            "data": (address, readonly),
            "shape": (nbytes,),
            "typestr": "|u1",
        }


def _bytes_of(t) -> tuple[np.ndarray, int, tuple, tuple]:
    """(uint8 array over the bytes to send, offset of element 0 in it, shape, element strides).
    Dense layouts are sent as they are; others as a C-contiguous copy."""
    item = t.itemsize
    shape, strides = t.shape, t.strides
    numel = 1
    for n in shape:
        numel *= n
    if t.nbytes != numel * item:
        raise TypeError(
            f"{t.dtype} tensors with packed sub-byte elements cannot be pickled; convert them "
            "to a whole-byte dtype first"
        )
    if numel == 0:
        return np.empty(0, np.uint8), 0, shape, tuple(0 for _ in shape)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0) * item
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) * item + item
    if hi - lo != numel * item:
        t = t.clone()  # C-contiguous, same values
        shape, strides, lo, hi = t.shape, t.strides, 0, numel * item
    span = np.asarray(_Span(t, t.data_ptr + lo, hi - lo, t.readonly))
    return span, -lo, shape, strides


def reduce_ex(self, protocol: int):
    """Pickle support (see the module docstring)."""
    device_type = self.__dlpack_device__()[0]
    if device_type not in _HOST:
        return (_rebuild_on_device, (self.to(device="cpu", copy=True), self.device))
    span, offset, shape, strides = _bytes_of(self)
    readonly = self.readonly
    if protocol >= 5:
        data = pickle.PickleBuffer(span)
    else:
        data = span.tobytes() if readonly else bytearray(span)
    return (_rebuild, (data, self._dtype_key, shape, strides, offset, readonly))


def _rebuild(buffer, dtype_key, shape, strides, offset, readonly):
    """The tensor over `buffer` (no copy when it is aligned for the dtype). A read-only buffer
    gives a read-only tensor. Checks everything: a forged or truncated payload raises."""
    key, shape, strides = _check_layout(dtype_key, shape, strides, offset, readonly)
    try:
        arr = np.frombuffer(buffer, np.uint8)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"a dlshare tensor payload needs a contiguous buffer, got {type(buffer).__name__}"
        ) from exc
    item = max(1, key[1] * key[2] // 8)
    numel = 1
    for n in shape:
        numel *= n
    if numel:
        lo = offset + sum((n - 1) * s for n, s in zip(shape, strides) if s < 0) * item
        hi = offset + sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) * item + item
        if lo < 0 or hi > arr.nbytes:
            raise InvalidArgumentError(
                f"shape {shape} with strides {strides} at offset {offset} needs bytes [{lo}, {hi})"
                f" but the buffer has {arr.nbytes}: a truncated or forged payload"
            )
    elif offset > arr.nbytes:
        raise InvalidArgumentError(f"offset {offset} is past the {arr.nbytes}-byte buffer")
    readonly = readonly or not arr.flags.writeable
    if arr.nbytes and (arr.__array_interface__["data"][0] + offset) % min(item, 64):
        # A misaligned buffer (a frame at an odd place in a network message): one copy into
        # aligned memory keeps the layout, where the library would copy into C order.
        aligned = np.empty(arr.nbytes + 64, np.uint8)
        skip = (-aligned.__array_interface__["data"][0] - offset) % 64
        aligned = aligned[skip : skip + arr.nbytes]
        aligned[:] = arr
        arr = aligned
    s = _core._scratch
    v = s.view
    address = arr.__array_interface__["data"][0] if arr.nbytes else 0
    v.data = ffi.cast("void *", address + offset) if numel else ffi.NULL
    v.dtype = key
    v.ndim = len(shape)
    s.shape[0 : len(shape)] = shape
    v.shape = s.shape
    s.strides[0 : len(shape)] = [x * item for x in strides]
    v.byte_strides = s.strides
    v.device = _core._CPU
    v.flags = lib.DLSHARE_VIEW_READ_ONLY if readonly else 0
    v.release = _core._release_owner
    token = _core._keep_alive(arr)
    v.release_ctx = token
    opts = _core._options(s, _core.SHARE_OR_COPY, None, None, True, True)
    status = lib.dlshare_tensor_from_view(v, opts, s.handle, s.decision)
    if status != 0:
        _core._keep.pop(int(ffi.cast("uintptr_t", token)), None)
        check(status, s.decision)
    d = s.decision
    return _core.Tensor._wrap(s.handle[0], bool(d.shared), d.reason)


def _rebuild_on_device(host, device):
    return host.to(device=device)


# ---------------------------------------------------------------------------------------------
# multiprocessing


# How long a process that is exiting waits for its receivers to collect the descriptors it sent.
COLLECT_TIMEOUT_S = 10.0


class _Sharer:
    """Hands out duplicates of file descriptors to other processes on request: a thread serving
    a Unix socket in the abstract namespace (no file to remove, so it keeps working while the
    process exits), authenticated with the process's multiprocessing authkey (which its
    children share). multiprocessing's own resource_sharer removes its socket early in the exit
    of a process, so a child that puts a tensor in a queue and returns at once would take it
    with it; this one waits, at exit, until every descriptor was collected (up to
    COLLECT_TIMEOUT_S: a receiver that died never collects)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.collected = threading.Condition(self.lock)
        self.pid = None
        self.address = None
        self.listener = None
        self.pending: dict[int, int] = {}
        self.keys = itertools.count(1)

    def register(self, fd: int) -> tuple[str, int]:
        """(address, key) under which another process can collect a duplicate of `fd`."""
        with self.lock:
            if self.pid != os.getpid():  # first use here, or a forked child: start afresh
                for inherited in self.pending.values():
                    os.close(inherited)  # the parent's duplicates, copied by fork
                self.pending = {}
                self.pid = os.getpid()
                self.address = f"\0dlshare-fds-{os.getpid()}-{secrets.token_hex(8)}"
                self.listener = _mp_connection.Listener(
                    self.address, family="AF_UNIX", authkey=_mp_process.current_process().authkey
                )
                threading.Thread(target=self._serve, args=(self.listener,), daemon=True,
                                 name="dlshare-fd-sharer").start()
            key = next(self.keys)
            self.pending[key] = os.dup(fd)
            return self.address, key

    def _serve(self, listener) -> None:
        while True:
            try:
                conn = listener.accept()
            except OSError:
                return  # closed
            except Exception:  # a failed handshake (wrong key): serve the next one
                continue
            with conn:
                try:
                    key = conn.recv()
                except Exception:
                    continue
                with self.lock:
                    fd = self.pending.pop(key, None) if isinstance(key, int) else None
                if fd is None:
                    continue  # closing the connection tells the receiver
                try:
                    _mp_reduction.send_handle(conn, fd, None)
                except OSError:
                    pass  # the receiver went away
                finally:
                    os.close(fd)
                    with self.lock:
                        self.collected.notify_all()

    def wait_at_exit(self) -> None:
        # After multiprocessing's queues flushed (exit priority -5). Registered up front: one
        # registered while the exit runs (a queue's feeder thread pickling a tensor then) would
        # not be run.
        _mp_util.Finalize(None, self.wait_until_collected, exitpriority=-10)

    def wait_until_collected(self) -> None:
        if self.pid != os.getpid():
            return
        deadline = time.monotonic() + COLLECT_TIMEOUT_S
        with self.lock:
            while self.pending and time.monotonic() < deadline:
                self.collected.wait(max(0.0, deadline - time.monotonic()))


_sharer = _Sharer()


class _SharedFd:
    """A descriptor in another process, collected once by `detach`."""

    __slots__ = ("address", "key")

    def __init__(self, address: str, key: int) -> None:
        self.address, self.key = address, key

    def __reduce__(self):
        return (_SharedFd, (self.address, self.key))

    def detach(self) -> int:
        try:
            with _mp_connection.Client(
                self.address, family="AF_UNIX", authkey=_mp_process.current_process().authkey
            ) as conn:
                conn.send(self.key)
                return _mp_reduction.recv_handle(conn)
        except (OSError, EOFError, RuntimeError, _mp_connection.AuthenticationError) as exc:
            raise InvalidArgumentError(
                "the shared tensor's sender is gone or the tensor was received already (each "
                f"hand-off is received once): {exc!r}"
            ) from None


def export_cuda(t) -> tuple:
    """(handle bytes, device_id, offset, size) of a CUDA tensor (CUDA IPC)."""
    desc = ffi.new("dlshare_cuda_ipc_desc *")
    check(lib.dlshare_cuda_ipc_export(t._handle, desc))
    return bytes(ffi.buffer(desc.handle)), int(desc.device_id), int(desc.offset), int(desc.size)


def import_cuda(handle, device_id, offset, size, dtype_key, shape, strides, readonly):
    """The CUDA tensor another process exported (that process must keep its tensor alive while
    this one is used)."""
    key, shape, strides = _check_layout(dtype_key, shape, strides, offset, readonly)
    if not isinstance(handle, bytes) or len(handle) != 64:
        raise InvalidArgumentError("a CUDA IPC handle is 64 bytes")
    if not isinstance(device_id, int) or not 0 <= device_id < 2**31:
        raise InvalidArgumentError(f"device_id must be a device number, got {device_id!r:.50}")
    if not isinstance(size, int) or not 0 <= size < 2**64:
        raise InvalidArgumentError(f"size must be a byte count, got {size!r:.50}")
    desc = ffi.new("dlshare_cuda_ipc_desc *")
    ffi.memmove(desc.handle, handle, 64)
    c_shape = ffi.new("int64_t[]", shape) if shape else ffi.NULL
    c_strides = ffi.new("int64_t[]", strides) if strides else ffi.NULL
    desc.device_id, desc.offset, desc.size, desc.dtype = device_id, offset, size, key
    desc.ndim, desc.shape, desc.strides, desc.read_only = len(shape), c_shape, c_strides, readonly
    out = ffi.new("dlshare_tensor **")
    check(lib.dlshare_cuda_ipc_import(desc, out))
    return _core.Tensor._wrap(out[0], True)


def _reduce_for_multiprocessing(t):
    if t.__dlpack_device__()[0] == lib.kDLCUDA:
        # CUDA IPC: the receiver opens the same device memory (the sender keeps t alive)
        meta = (t._dtype_key, t.shape, t.strides, t.readonly)
        return (import_cuda, (*export_cuda(t), *meta))
    if t.__dlpack_device__()[0] == lib.kDLCPU and is_shared_memory(t):
        fd, offset, size = _export(t)
        return (
            _rebuild_shared,
            (_dup_fd(fd), offset, size, t._dtype_key, t.shape, t.strides, t.readonly),
        )
    return reduce_ex(t, 4)  # by value (multiprocessing pickles with protocol 4)


def _dup_fd(fd: int):
    """multiprocessing's own DupFd while a child is being started (spawn, forkserver: the fd is
    passed with the start), else one of ours."""
    if _mp_context.get_spawning_popen() is not None:
        return _mp_reduction.DupFd(fd)
    return _SharedFd(*_sharer.register(fd))


def _rebuild_shared(dup, offset, size, dtype_key, shape, strides, readonly):
    fd = dup.detach()
    try:
        return import_shared(fd, offset, size, dtype_key, shape, strides, readonly)
    finally:
        os.close(fd)


def install(tensor_class) -> None:
    tensor_class.__reduce_ex__ = reduce_ex
    tensor_class.share_memory = share_memory
    tensor_class.is_shared_memory = property(is_shared_memory)
    _mp_reduction.ForkingPickler.register(tensor_class, _reduce_for_multiprocessing)
    _sharer.wait_at_exit()
    # multiprocessing's children clear the registry of exit functions after a fork
    _mp_util.register_after_fork(_sharer, _Sharer.wait_at_exit)

