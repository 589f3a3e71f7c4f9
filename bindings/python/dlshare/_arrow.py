"""Arrow -> tensor and tensor -> Arrow (issue #14), through the Arrow PyCapsule interface.

`from_arrow` takes anything with `__arrow_c_array__` or `__arrow_c_stream__` (pyarrow Table /
RecordBatch / Array / ChunkedArray, polars DataFrame / Series, DuckDB results, nanoarrow...):
the capsules' structs are handed to the library, which moves them (their producers' release
callbacks then run exactly once, in the library) and converts them in one pass with the column
kernel that `from_dataframe` uses. No pyarrow is needed for that.

`Tensor.__arrow_c_array__` exports a 1-D tensor as a primitive Arrow array and a 2-D tensor as
a fixed-size-list array (one list per row), over the tensor's memory: `pyarrow.array(t)` and
polars read it without a copy, and the memory stays alive until the consumer releases it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from . import _capsule
from ._core import Tensor, dtype_key
from ._errors import check
from ._ffi import ffi, lib

_CATEGORICAL = {
    "raise": lib.DLSHARE_ARROW_CATEGORICAL_RAISE,
    "codes": lib.DLSHARE_ARROW_CATEGORICAL_CODES,
    "onehot": lib.DLSHARE_ARROW_CATEGORICAL_ONEHOT,
}
_DATETIME = {
    "raise": lib.DLSHARE_ARROW_DATETIME_RAISE,
    "days": lib.DLSHARE_ARROW_DATETIME_DAYS,
    "seconds": lib.DLSHARE_ARROW_DATETIME_SECONDS,
}

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

# capsule names live for the whole process (PyCapsule keeps the pointer, not a copy)
_NAMES = {n: ffi.new("char[]", n) for n in (b"arrow_schema", b"arrow_array")}
_NAME_ADDRESS = {n: int(ffi.cast("uintptr_t", p)) for n, p in _NAMES.items()}


def _py_destroy(name: bytes, free):
    def destroy(capsule: int) -> None:  # the dying capsule as a raw pointer (no new reference)
        pointer = _capsule._raw_get_pointer(capsule, name)
        if pointer:
            free(ffi.cast("ArrowSchema *" if name == b"arrow_schema" else "ArrowArray *", pointer))

    return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(destroy)


if lib.dlshare_pycapsule_destructor_available():
    _DESTRUCTORS = {
        b"arrow_schema": int(ffi.cast("uintptr_t", lib.dlshare_arrow_schema_capsule_destructor)),
        b"arrow_array": int(ffi.cast("uintptr_t", lib.dlshare_arrow_array_capsule_destructor)),
    }
else:  # the library cannot see CPython's capsule API: free from Python instead
    _PY_DESTRUCTORS = {
        b"arrow_schema": _py_destroy(b"arrow_schema", lib.dlshare_arrow_schema_free),
        b"arrow_array": _py_destroy(b"arrow_array", lib.dlshare_arrow_array_free),
    }
    _DESTRUCTORS = {
        n: ctypes.cast(f, ctypes.c_void_p).value for n, f in _PY_DESTRUCTORS.items()
    }


def _arrow_c_array(self: Tensor, requested_schema: Any = None) -> tuple[Any, Any]:
    """(schema capsule, array capsule) over this tensor's memory: a 1-D tensor is a primitive
    array, a 2-D C-contiguous tensor a fixed-size-list array with one list per row. Integer
    and float dtypes on the CPU. `requested_schema` is not applied (the protocol lets a producer
    ignore it); cast the tensor first for another type."""
    schema = ffi.new("ArrowSchema **")
    array = ffi.new("ArrowArray **")
    check(lib.dlshare_tensor_to_arrow(self._handle, schema, array))
    capsules = []
    for name, pointer in ((b"arrow_schema", schema[0]), (b"arrow_array", array[0])):
        capsules.append(
            _capsule._new_raw(
                int(ffi.cast("uintptr_t", pointer)), _NAME_ADDRESS[name], _DESTRUCTORS[name]
            )
        )
    return capsules[0], capsules[1]


Tensor.__arrow_c_array__ = _arrow_c_array


def is_arrow(obj: Any) -> bool:
    """Whether `obj` speaks the Arrow PyCapsule interface."""
    return hasattr(obj, "__arrow_c_stream__") or hasattr(obj, "__arrow_c_array__")


def _options(columns, dtype, nan, categorical, datetime, normalize, keep):
    from ._pandas import _NORMALIZE, _nan_policy

    policy, fill = _nan_policy(nan)
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {list(_NORMALIZE)}, got {normalize!r}")
    if categorical not in _CATEGORICAL:
        raise ValueError(f"categorical must be one of {list(_CATEGORICAL)}, got {categorical!r}")
    if datetime not in _DATETIME:
        raise ValueError(f"datetime must be one of {list(_DATETIME)}, got {datetime!r}")
    opts = ffi.new("dlshare_arrow_options *")
    opts[0] = lib.dlshare_arrow_options_init(policy, _NORMALIZE[normalize])
    opts.columns.fill_value = fill
    if dtype is not None:
        opts.columns.dtype = dtype_key(dtype)
    opts.keep_dtype = dtype is None
    opts.categorical = _CATEGORICAL[categorical]
    opts.datetime = _DATETIME[datetime]
    keep = [opts]
    if columns is not None:
        if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence):
            columns = [columns]
        names = [ffi.new("char[]", str(c).encode()) for c in columns]
        select = ffi.new("char *[]", names)
        opts.select, opts.nselect = select, len(names)
        keep += [names, select]
    return opts, keep


def from_arrow(
    obj: Any,
    columns: Sequence[Any] | None = None,
    *,
    dtype: Any = "float32",
    nan: Any = "raise",
    categorical: str = "raise",
    datetime: str = "raise",
    normalize: str | None = None,
) -> Tensor:
    """A tensor from any Arrow object (`__arrow_c_array__` / `__arrow_c_stream__`), converted
    by the library in one pass.

    - A table (pyarrow Table / RecordBatch, polars DataFrame, DuckDB result...) gives a
      rows x columns C-contiguous tensor; `columns=None` takes the numeric and bool columns
      (plus dictionary columns when `categorical` is not "raise", date/timestamp/duration
      columns when `datetime` is not "raise") and lists the others in `t.meta["skipped"]`; a
      requested column that cannot be converted is an error naming it.
    - An array (pyarrow Array / ChunkedArray, polars Series) gives a 1-D tensor, **shared**
      (read-only, `t.shared`) when it is integer or float, has no nulls and no NaN, is in one
      chunk and the dtype is kept (`dtype=None` keeps it); otherwise a copy whose
      `t.copy_reason` says why ("dtype_change" or "arrow_layout").
    - Nulls are missing values for `nan` (as NaN is for pandas), and so is a NaN that is not
      null; `nan`, `categorical`, `datetime` and `normalize` are those of `from_dataframe`.
      Dictionary columns give codes / one-hot columns in dictionary order; timestamps of any
      unit and time zone count from 1970-01-01 UTC.

    `t.meta` is {"columns": output column names, "skipped": names left out}.
    """
    opts, keep = _options(columns, dtype, nan, categorical, datetime, normalize, dtype is None)
    out = ffi.new("dlshare_tensor **")
    decision = ffi.new("dlshare_decision *")
    names = ffi.new("char **")
    if hasattr(obj, "__arrow_c_array__"):
        schema_capsule, array_capsule = obj.__arrow_c_array__()
        schema = ffi.cast("ArrowSchema *", _get_pointer(schema_capsule, b"arrow_schema"))
        array = ffi.cast("ArrowArray *", _get_pointer(array_capsule, b"arrow_array"))
        # the library moves both structs (their release set to NULL), so the capsules'
        # destructors only free the emptied structs
        status = lib.dlshare_tensor_from_arrow(schema, array, opts, out, decision, names)
    elif hasattr(obj, "__arrow_c_stream__"):
        stream_capsule = obj.__arrow_c_stream__()
        stream = ffi.cast(
            "ArrowArrayStream *", _get_pointer(stream_capsule, b"arrow_array_stream")
        )
        status = lib.dlshare_tensor_from_arrow_stream(stream, opts, out, decision, names)
    else:
        raise TypeError(
            f"from_arrow expects an object with __arrow_c_array__ or __arrow_c_stream__ "
            f"(pyarrow, polars, DuckDB...), got {type(obj).__name__}"
        )
    check(status)
    del keep
    t = Tensor._wrap(out[0], shared=bool(decision.shared), reason=int(decision.reason))
    text = ffi.string(names[0]).decode("utf-8", "replace")
    lib.dlshare_string_free(names[0])
    outputs, _, skipped = text.partition("\x1e")
    t.meta = {
        "columns": outputs.split("\x1f") if outputs else [],
        "skipped": skipped.split("\x1f") if skipped else [],
        "detail": ffi.string(decision.detail).decode("utf-8", "replace"),
    }
    return t


def to_polars(t: Any, columns: Sequence[Any] | None = None) -> Any:
    """A polars DataFrame of a 1-D or 2-D tensor. A 1-D tensor is read through
    `__arrow_c_array__` without a copy; polars stores columns, so the columns of a row-major
    2-D tensor are copied (one pass per column)."""
    import numpy as np
    import polars as pl

    if isinstance(t, Tensor) and t.ndim == 1:
        names = columns if columns is not None else (t.meta or {}).get("columns")
        name = str(names[0]) if names else "0"
        return pl.DataFrame([pl.Series(t).alias(name)])
    arr = np.asarray(t)
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(f"to_dataframe needs a 1-D or 2-D tensor, got {arr.ndim} dimensions")
    if columns is None and isinstance(t, Tensor) and isinstance(t.meta, dict):
        names = t.meta.get("columns")
        if names is not None and len(names) == arr.shape[1]:
            columns = names
    if columns is None:
        columns = [str(j) for j in range(arr.shape[1])]
    return pl.DataFrame({str(c): arr[:, j] for j, c in enumerate(columns)})
