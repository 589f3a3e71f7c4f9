"""Plain ctypes users can drive the same library: import -> export -> release round trip."""

import ctypes

import numpy as np

import dlshare


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
        ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
DLManagedTensorVersioned._fields_ = [
    ("major", ctypes.c_uint32), ("minor", ctypes.c_uint32), ("manager_ctx", ctypes.c_void_p),
    ("deleter", DELETER), ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor),
]


class View(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p), ("dtype", DLDataType), ("ndim", ctypes.c_int32),
        ("shape", ctypes.POINTER(ctypes.c_int64)), ("byte_strides", ctypes.POINTER(ctypes.c_int64)),
        ("device", DLDevice), ("flags", ctypes.c_uint32),
        ("release", ctypes.c_void_p), ("release_ctx", ctypes.c_void_p),
    ]


def test_ctypes_round_trip():
    lib = ctypes.CDLL(dlshare.LIBRARY_PATH)
    lib.dlshare_tensor_from_view.argtypes = [ctypes.POINTER(View), ctypes.c_void_p,
                                             ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    lib.dlshare_tensor_from_view.restype = ctypes.c_int
    lib.dlshare_tensor_to_dlpack.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(DLManagedTensorVersioned))]
    lib.dlshare_tensor_to_dlpack.restype = ctypes.c_int
    lib.dlshare_tensor_from_dlpack.argtypes = [ctypes.POINTER(DLManagedTensorVersioned),
                                               ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.c_void_p]
    lib.dlshare_tensor_from_dlpack.restype = ctypes.c_int
    lib.dlshare_tensor_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.dlshare_tensor_data.restype = ctypes.c_int
    lib.dlshare_tensor_release.argtypes = [ctypes.c_void_p]
    lib.dlshare_tensor_release.restype = ctypes.c_int
    lib.dlshare_live_tensor_count.restype = ctypes.c_size_t
    lib.dlshare_last_error_message.restype = ctypes.c_char_p

    start = lib.dlshare_live_tensor_count()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    shape = (ctypes.c_int64 * 2)(3, 4)
    view = View(a.ctypes.data, DLDataType(2, 32, 1), 2, shape, None, DLDevice(1, 0), 0, None, None)
    handle = ctypes.c_void_p()
    assert lib.dlshare_tensor_from_view(ctypes.byref(view), None, ctypes.byref(handle), None) == 0

    managed = ctypes.POINTER(DLManagedTensorVersioned)()
    assert lib.dlshare_tensor_to_dlpack(handle, ctypes.byref(managed)) == 0
    assert managed.contents.major == 1 and managed.contents.dl_tensor.data == a.ctypes.data
    assert list(managed.contents.dl_tensor.shape[:2]) == [3, 4]

    back = ctypes.c_void_p()
    assert lib.dlshare_tensor_from_dlpack(managed, None, ctypes.byref(back), None) == 0
    data = ctypes.c_void_p()
    assert lib.dlshare_tensor_data(back, ctypes.byref(data)) == 0
    assert data.value == a.ctypes.data

    assert lib.dlshare_tensor_release(handle) == 0
    assert lib.dlshare_tensor_release(back) == 0
    assert lib.dlshare_live_tensor_count() == start
    assert lib.dlshare_tensor_release(back) == 2  # released twice: INVALID_HANDLE, no crash
    assert b"not a live" in lib.dlshare_last_error_message()
