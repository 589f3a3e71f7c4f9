"""DLPack exchange with real PyTorch, NumPy and JAX: zero-copy both ways, capsule rules,
READ_ONLY on import and export."""

import gc

import numpy as np
import pytest
import torch

import dlshare
from dlshare import _capsule

jax = pytest.importorskip("jax")
jnp = jax.numpy


def test_torch_from_dlpack_is_zero_copy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = dlshare.from_numpy(a)
    x = torch.from_dlpack(t)
    assert x.data_ptr() == a.ctypes.data
    x[0, 0] = 100
    assert a[0, 0] == 100
    del t
    gc.collect()
    assert x[0, 0] == 100  # the export keeps the memory alive


def test_numpy_from_dlpack_is_zero_copy():
    a = np.arange(6, dtype=np.int32)
    t = dlshare.from_numpy(a)
    n = np.from_dlpack(t)
    assert n.ctypes.data == a.ctypes.data
    np.testing.assert_array_equal(n, a)


def test_jax_shares_our_aligned_copies():
    t = dlshare.tensor(np.arange(64, dtype=np.float32))
    assert t.data_ptr % 256 == 0
    j = jnp.from_dlpack(t)
    assert j.unsafe_buffer_pointer() == t.data_ptr
    np.testing.assert_array_equal(np.asarray(j), np.arange(64, dtype=np.float32))


@pytest.mark.parametrize("versioned", [True, False])
def test_our_from_dlpack_of_torch(versioned):
    x = torch.arange(10, dtype=torch.float64).reshape(2, 5)
    cap = x.__dlpack__(max_version=(1, 0)) if versioned else x.__dlpack__()
    t = dlshare.from_dlpack(cap)
    assert t.shared and t.data_ptr == x.data_ptr()
    np.testing.assert_array_equal(t.numpy(), x.numpy())
    t.numpy()[1, 1] = -1
    assert x[1, 1] == -1
    with pytest.raises(BufferError):
        dlshare.from_dlpack(cap)  # consumed once


def test_our_from_dlpack_of_numpy_and_jax():
    a = np.arange(5.0)
    t = dlshare.from_dlpack(a)
    assert t.shared and t.data_ptr == a.ctypes.data
    j = jnp.arange(8, dtype=jnp.int32)
    tj = dlshare.from_dlpack(j)
    assert tj.data_ptr == j.unsafe_buffer_pointer()
    np.testing.assert_array_equal(tj.numpy(), np.arange(8))


def test_read_only_numpy_imports_read_only():
    a = np.arange(4.0)
    a.flags.writeable = False
    t = dlshare.from_dlpack(a)  # NumPy exports READ_ONLY through a versioned capsule
    assert t.shared and t.readonly
    assert not t.numpy().flags.writeable
    with pytest.raises(dlshare.CannotShareError):
        dlshare.from_numpy(a)
    c = dlshare.from_dlpack(a, copy=True)
    assert not c.shared and not c.readonly


def test_read_only_set_on_export():
    a = np.arange(4.0)
    a.flags.writeable = False
    t = dlshare.from_numpy(a, readonly=True)
    cap = t.__dlpack__(max_version=(1, 0))
    managed, versioned = _capsule.open(cap)
    assert versioned and managed.flags & dlshare.lib.DLPACK_FLAG_BITMASK_READ_ONLY
    n = np.from_dlpack(t)
    assert not n.flags.writeable
    with pytest.raises(BufferError):
        t.__dlpack__()  # a legacy capsule cannot say read-only
    del cap


def test_is_copied_only_for_a_copy_the_consumer_owns_alone_and_versions():
    t = dlshare.tensor([1.0, 2.0])
    cap = t.__dlpack__(max_version=(1, 3))
    managed, versioned = _capsule.open(cap)
    assert versioned and managed.version.major == 1 and managed.version.minor == 3
    # t still refers to the memory: the consumer is not its sole owner
    assert not managed.flags & dlshare.lib.DLPACK_FLAG_BITMASK_IS_COPIED
    own = t.__dlpack__(max_version=(1, 3), copy=True)
    owned, _ = _capsule.open(own)
    assert owned.flags & dlshare.lib.DLPACK_FLAG_BITMASK_IS_COPIED
    assert owned.dl_tensor.data != managed.dl_tensor.data
    y = torch.from_dlpack(own)
    y[0] = 5.0  # the consumer's own memory: t is untouched
    assert t.numpy().tolist() == [1.0, 2.0]
    del y, own, owned
    legacy = t.__dlpack__(max_version=None)
    _, versioned = _capsule.open(legacy)
    assert not versioned
    assert t.__dlpack_device__() == (1, 0)


def test_unconsumed_capsules_free_their_tensor():
    start = dlshare.live_tensor_count()
    t = dlshare.tensor(np.arange(3.0))
    caps = [t.__dlpack__(max_version=(1, 0)), t.__dlpack__()]
    del t
    gc.collect()
    assert dlshare.live_tensor_count() == start + 1  # kept alive by the capsules
    del caps
    gc.collect()
    assert dlshare.live_tensor_count() == start


def test_dlpack_copy_and_device_arguments():
    a = np.arange(6.0)
    t = dlshare.from_numpy(a)
    x = torch.from_dlpack(t.__dlpack__(max_version=(1, 0), copy=True))
    assert x.data_ptr() != a.ctypes.data
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(2, 0), copy=False)
    with pytest.raises(BufferError):
        t.__dlpack__(stream=1)


def test_torch_tensor_as_tensor_shares():
    x = torch.arange(6, dtype=torch.int64)
    t = dlshare.as_tensor(x)
    assert t.shared and t.data_ptr == x.data_ptr()
    c = dlshare.as_tensor(x, dtype="float32")
    assert c.copy_reason == "dtype_change"
    torch.testing.assert_close(torch.from_dlpack(c), x.float())


@pytest.mark.parametrize("versioned", [True, False])
def test_our_from_dlpack_of_numpy_and_jax_capsules(versioned):
    a = np.arange(6, dtype=np.int16)
    cap = a.__dlpack__(max_version=(1, 0)) if versioned else a.__dlpack__()
    t = dlshare.from_dlpack(cap)
    assert t.shared and t.data_ptr == a.ctypes.data
    name = _capsule.USED_VERSIONED if versioned else _capsule.USED_LEGACY
    assert _capsule._is_valid(cap, name), "a consumed capsule is renamed used_dltensor[_versioned]"
    j = jnp.arange(6, dtype=jnp.float32)
    try:
        jcap = j.__dlpack__(max_version=(1, 0)) if versioned else j.__dlpack__()
    except TypeError:
        pytest.skip("this jax has no versioned __dlpack__")  # pragma: no cover
    tj = dlshare.from_dlpack(jcap)
    assert tj.shared and tj.data_ptr == j.unsafe_buffer_pointer()
    np.testing.assert_array_equal(tj.numpy(), np.arange(6, dtype=np.float32))


def test_torch_consumes_and_renames_our_capsule():
    t = dlshare.tensor(np.arange(4.0))
    cap = t.__dlpack__(max_version=(1, 0))
    x = torch.from_dlpack(cap)
    assert x.data_ptr() == t.data_ptr
    assert _capsule._is_valid(cap, _capsule.USED_VERSIONED)
    with pytest.raises(BufferError):
        dlshare.from_dlpack(cap)


def test_exchange_api_route_matches_capsule_route():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # F-order view
    via_exchange = dlshare.as_tensor(x)
    via_capsule = dlshare.from_dlpack(x.__dlpack__(max_version=(1, 0)))
    assert via_exchange.data_ptr == via_capsule.data_ptr == x.data_ptr()
    assert via_exchange.strides == via_capsule.strides == x.stride()
    bad = torch.arange(4.0)
    c = dlshare.as_tensor(bad, dtype="int32")
    assert c.copy_reason == "dtype_change"
    np.testing.assert_array_equal(c.numpy(), np.arange(4, dtype=np.int32))
