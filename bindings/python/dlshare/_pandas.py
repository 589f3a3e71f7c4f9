"""pandas -> tensor helpers (issue #3): the usual recipes (select numeric columns, dropna,
fillna, ffill/bfill, cat.codes, get_dummies, days since the epoch, min-max / z-score scaling,
sliding windows) without building intermediate frames.

This module only gathers zero-copy NumPy views of the columns (pandas 3 copy-on-write hands out
read-only arrays, which is fine: they are only read) and the options; the library does the
conversion, NaN handling, normalisation and cast in one pass (`dlshare_tensor_from_columns`).
Sliding windows are strided views of the tensor (`dlshare_tensor_view`), not copies.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._core import Tensor, _from_typestr, as_tensor, dtype_key
from ._errors import InvalidArgumentError, check
from . import _arrow
from ._ffi import ffi, lib

_NAN = {
    "raise": lib.DLSHARE_NAN_RAISE,
    "drop": lib.DLSHARE_NAN_DROP,
    "zero": lib.DLSHARE_NAN_FILL,
    "mean": lib.DLSHARE_NAN_MEAN,
    "ffill": lib.DLSHARE_NAN_FFILL,
    "bfill": lib.DLSHARE_NAN_BFILL,
    "ffill_bfill": lib.DLSHARE_NAN_FFILL_BFILL,
}
_NORMALIZE = {
    None: lib.DLSHARE_NORMALIZE_NONE,
    "minmax": lib.DLSHARE_NORMALIZE_MINMAX,
    "zscore": lib.DLSHARE_NORMALIZE_ZSCORE,
}
_CATEGORICAL = ("raise", "codes", "onehot")
_DATETIME = ("raise", "days", "seconds")
_CPU = (lib.kDLCPU, 0)
_READ_ONLY = lib.DLSHARE_VIEW_READ_ONLY
_SWAPPED = lib.DLSHARE_VIEW_BYTE_SWAPPED
_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_SECONDS_PER_DAY = 86400


def _pd():
    import pandas

    return pandas


def _choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _nan_policy(nan: Any) -> tuple[int, float]:
    if isinstance(nan, str):
        if nan not in _NAN:
            raise ValueError(f"nan must be a number or one of {list(_NAN)}, got {nan!r}")
        return _NAN[nan], 0.0
    if isinstance(nan, numbers.Real) and not isinstance(nan, bool):
        value = float(nan)
        if value != value:
            raise ValueError("nan=NaN fills nothing; pass a number or a policy name")
        return lib.DLSHARE_NAN_FILL, value
    raise ValueError(f"nan must be a number or one of {list(_NAN)}, got {nan!r}")


class _Spec:
    """One column to send to the library, with the arrays it points into (kept alive by the
    caller until the call returns)."""

    __slots__ = ("name", "source", "array", "mask", "kind", "divisor", "floor", "labels")

    def __init__(self, name, source, array, kind, mask=None, divisor=0, floor=False, labels=None):
        self.name = name
        self.source = source  # the pandas object, to name the columns holding missing values
        self.array = array
        self.mask = mask
        self.kind = kind
        self.divisor = divisor
        self.floor = floor
        self.labels = labels  # category labels (one-hot output names)

    def out_names(self) -> list:
        if self.kind == lib.DLSHARE_COLUMN_ONEHOT:
            return [f"{self.name}_{label}" for label in self.labels]
        return [self.name]


_NUMPY_KINDS = {
    "b": "value",
    "i": "value",
    "u": "value",
    "f": "value",
    "M": "datetime",
    "m": "datetime",
    "O": "text",
    "U": "text",
    "S": "text",
}


def _classify(values: Any) -> str | None:
    """value, masked, category, text, datetime, or None (not convertible)."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype):  # the common case, without pandas' slower type tests
        return _NUMPY_KINDS.get(dtype.kind)
    pd = _pd()
    if isinstance(dtype, getattr(pd, "ArrowDtype", ())):
        return "arrow"  # pyarrow-backed: converted through the Arrow route (_arrow.py)
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return "masked"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "text"
    return None


def _value_arrays(values: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The data (and missing mask) of a numeric column, without a copy where pandas allows."""
    arr = values.array if hasattr(values, "array") else values
    data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
        # pandas masked arrays (Int64, Float64, boolean): data plus a bool mask
        return data, np.ascontiguousarray(mask).view(np.uint8)
    result = values.to_numpy()
    if result.dtype.kind in "biuf":
        return result, None
    # other extension arrays (pyarrow...): NumPy floats with NaN for missing (a copy)
    return values.to_numpy(dtype=np.float64, na_value=np.nan), None


def _spec(name: Any, values: Any, categorical: str, datetime: str) -> _Spec | str:
    """The column's spec, or the reason it cannot be converted under these options."""
    kind = _classify(values)
    if kind == "value":
        return _Spec(name, values, values.to_numpy(), lib.DLSHARE_COLUMN_VALUE)
    if kind == "masked":
        data, mask = _value_arrays(values)
        return _Spec(name, values, data, lib.DLSHARE_COLUMN_VALUE, mask)
    if kind == "datetime":
        if datetime == "raise":
            return f"it holds {values.dtype} values; pass datetime='days' or 'seconds'"
        arr = values.array if hasattr(values, "array") else values
        ticks = np.asarray(arr.asi8)
        unit = getattr(values.dtype, "unit", None) or np.datetime_data(values.dtype)[0]
        per_second = _TICKS_PER_SECOND[unit]
        if datetime == "days":
            return _Spec(
                name,
                values,
                ticks,
                lib.DLSHARE_COLUMN_DATETIME,
                divisor=per_second * _SECONDS_PER_DAY,
                floor=True,
            )
        return _Spec(name, values, ticks, lib.DLSHARE_COLUMN_DATETIME, divisor=per_second)
    if kind in ("category", "text"):
        if categorical == "raise":
            what = "categorical" if kind == "category" else f"{values.dtype} (text)"
            return f"it is {what}; pass categorical='codes' or 'onehot'"
        cat = values.array if kind == "category" else values.astype("category").array
        codes = np.asarray(cat.codes)
        labels = list(cat.categories)
        if categorical == "codes":
            return _Spec(name, values, codes, lib.DLSHARE_COLUMN_CODES, labels=labels)
        return _Spec(name, values, codes, lib.DLSHARE_COLUMN_ONEHOT, labels=labels)
    return f"its dtype {values.dtype} is not numeric, bool, categorical or datetime"


def _index_spec(index: Any, datetime: str) -> _Spec:
    name = index.name if index.name is not None else "index"
    spec = _spec(name, index, "raise", datetime)
    if isinstance(spec, str):
        raise ValueError(f"index=True cannot convert the index: {spec}")
    return spec


def _call(specs: list[_Spec], dtype: Any, nan: Any, normalize: Any) -> Tensor:
    policy, fill = _nan_policy(nan)
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {list(_NORMALIZE)}, got {normalize!r}")
    n = len(specs)
    ifaces = [spec.array.__array_interface__ for spec in specs]
    dims = ffi.new(
        "int64_t[]", [d for spec in specs for d in (spec.array.shape[0], spec.array.strides[0])]
    )
    init = []
    for i, (spec, iface) in enumerate(zip(specs, ifaces)):
        key, swapped = _from_typestr(iface["typestr"])
        flags = (_READ_ONLY if iface["data"][1] else 0) | (_SWAPPED if swapped else 0)
        column = {
            "view": {
                "data": ffi.cast("void *", iface["data"][0]),
                "dtype": key,
                "ndim": 1,
                "shape": dims + 2 * i,
                "byte_strides": dims + (2 * i + 1),
                "device": _CPU,
                "flags": flags,
            },
            "kind": spec.kind,
            "datetime_divisor": spec.divisor,
            "datetime_floor": spec.floor,
            "ncategories": len(spec.labels) if spec.labels is not None else 0,
        }
        if spec.mask is not None:
            column["missing"] = ffi.cast("uint8_t *", spec.mask.__array_interface__["data"][0])
        init.append(column)
    cols = ffi.new("dlshare_column[]", init)  # release callbacks stay NULL: the library copies
    opts = ffi.new(
        "dlshare_columns_options *",
        {
            "dtype": dtype_key(dtype),
            "nan_policy": policy,
            "fill_value": fill,
            "normalize": _NORMALIZE[normalize],
        },
    )
    out = ffi.new("dlshare_tensor **")
    try:
        check(lib.dlshare_tensor_from_columns(cols, n, opts, out))
    except InvalidArgumentError as exc:
        if policy == lib.DLSHARE_NAN_RAISE:
            names = [s.name for s in specs if bool(s.source.isna().any())]
            if names:
                raise InvalidArgumentError(
                    f"columns with missing values: {names}; choose nan='drop', 'zero', 'mean', "
                    "'ffill', 'bfill', 'ffill_bfill' or a fill value"
                ) from exc
        raise
    return Tensor._wrap(out[0], shared=False, reason=lib.DLSHARE_REASON_COPY_REQUESTED)


def from_dataframe(
    df: Any,
    columns: Sequence[Any] | None = None,
    *,
    dtype: Any = "float32",
    nan: Any = "raise",
    categorical: str = "raise",
    datetime: str = "raise",
    normalize: str | None = None,
    index: bool = False,
) -> Tensor:
    """A rows x columns, C-contiguous tensor of `df`, copied in one pass by the library.

    - `columns=None` takes the numeric and bool columns (also categorical and text columns when
      `categorical` is not "raise", and datetime/timedelta columns when `datetime` is not
      "raise") and lists the others in `t.meta["skipped"]`; an explicit list raises ValueError
      for a column it cannot convert.
    - `nan`: "raise" (ValueError naming the columns), "drop" (dropna), "zero", "mean"
      (fillna(df.mean())), "ffill", "bfill", "ffill_bfill" (ffill().bfill()), or a fill number.
      Missing categories are missing for raise/drop/ffill/bfill; a fill number or the mean
      leaves them as code -1 (codes) or a zero row (onehot), as cat.codes / get_dummies do.
    - `categorical`: "codes" (cat.codes) or "onehot" (get_dummies columns '<col>_<category>',
      in category order, in place of the column); text columns are categorised like
      astype("category").
    - `datetime`: "days" (floor of days since 1970-01-01, like `.days`) or "seconds"
      (total_seconds); NaT is missing. Time zone aware columns count from 1970-01-01 UTC.
    - `normalize`: "minmax" ((x - min) / (max - min)) or "zscore" ((x - mean) / std, ddof=1),
      per output column after the NaN handling.
    - `index=True` puts the index (datetime, converted as `datetime` says, or numeric) first.

    `t.meta` is {"columns": output column names, "skipped": names left out}.
    """
    _choice("categorical", categorical, _CATEGORICAL)
    _choice("datetime", datetime, _DATETIME)
    if _arrow.is_arrow(df) and type(df).__module__.split(".")[0] != "pandas":
        # pyarrow / polars / DuckDB tables (issue 14)
        if index:
            raise ValueError("index=True is for pandas DataFrames; Arrow tables have no index")
        return _arrow.from_arrow(
            df,
            columns,
            dtype=dtype,
            nan=nan,
            categorical=categorical,
            datetime=datetime,
            normalize=normalize,
        )
    pd = _pd()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            "from_dataframe expects a pandas DataFrame or an Arrow table (an object with "
            f"__arrow_c_stream__ / __arrow_c_array__), got {type(df).__name__}"
        )
    specs: list[_Spec] = []
    skipped: list[Any] = []
    if index:
        specs.append(_index_spec(df.index, datetime))
    if columns is None:
        for name, values in df.items():
            if _classify(values) == "arrow":  # pyarrow-backed columns: the Arrow route
                return _via_arrow(df, columns, dtype, nan, categorical, datetime, normalize, index)
            spec = _spec(name, values, categorical, datetime)
            if isinstance(spec, str):
                skipped.append(name)
            else:
                specs.append(spec)
    else:
        if isinstance(columns, (str, bytes)) or not isinstance(columns, (Sequence, pd.Index)):
            columns = [columns]
        for name in columns:
            if name not in df.columns:
                raise KeyError(f"column {name!r} is not in the DataFrame")
            values = df[name]
            if isinstance(values, pd.DataFrame):
                raise ValueError(f"column name {name!r} is not unique in the DataFrame")
            if _classify(values) == "arrow":
                return _via_arrow(df, columns, dtype, nan, categorical, datetime, normalize, index)
            spec = _spec(name, values, categorical, datetime)
            if isinstance(spec, str):
                raise ValueError(f"column {name!r} cannot be converted: {spec}")
            specs.append(spec)
    if not specs or all(s.kind == lib.DLSHARE_COLUMN_ONEHOT and not s.labels for s in specs):
        raise ValueError(
            "no numeric, bool, categorical or datetime column to convert"
            + (f" (skipped: {skipped})" if skipped else "")
            + "; select columns, or pass categorical=/datetime= to include those columns"
        )
    t = _call(specs, dtype, nan, normalize)
    t.meta = {"columns": [n for s in specs for n in s.out_names()], "skipped": skipped}
    return t


def _natural_dtype(spec: _Spec, nan: Any, normalize: Any, datetime: str) -> Any:
    """The dtype torch.tensor(series.values) would give for what the column becomes."""
    if spec.kind == lib.DLSHARE_COLUMN_DATETIME:
        natural = np.dtype(np.int64) if datetime == "days" else np.dtype(np.float64)
        if datetime == "days" and bool(spec.source.isna().any()) and nan != "drop":
            natural = np.dtype(np.float64)  # NaT left or filled: .dt.days gives floats then
    else:
        natural = spec.array.dtype
    if (normalize is not None or nan == "mean") and natural.kind not in "f":
        natural = np.dtype(np.float64)
    if natural.byteorder not in ("=", "|"):
        natural = natural.newbyteorder("=")
    return natural


def from_series(
    s: Any,
    *,
    dtype: Any = None,
    nan: Any = "raise",
    categorical: str = "raise",
    datetime: str = "raise",
    normalize: str | None = None,
) -> Tensor:
    """A 1-D tensor of the series, with the options of `from_dataframe` (categorical="onehot"
    needs two dimensions: use from_dataframe(s.to_frame(), ...)). `dtype=None` keeps the
    series' dtype like torch.tensor(series.values) (codes keep their integer width, "days" gives
    int64, "seconds" float64; float64 when normalising or filling ints with the mean)."""
    pd = _pd()
    _choice("categorical", categorical, _CATEGORICAL)
    _choice("datetime", datetime, _DATETIME)
    if not isinstance(s, pd.Series):
        raise TypeError(f"from_series expects a pandas Series, got {type(s).__name__}")
    if categorical == "onehot":
        raise ValueError(
            "categorical='onehot' gives several columns; use from_dataframe(s.to_frame(), "
            "categorical='onehot')"
        )
    if _classify(s) == "arrow":  # pyarrow-backed: the Arrow route, shared when possible
        t = _arrow.from_arrow(
            _arrow_column(s),
            dtype=dtype,
            nan=nan,
            categorical=categorical,
            datetime=datetime,
            normalize=normalize,
        )
        t.meta = {"columns": [s.name], "skipped": []}
        return t
    spec = _spec(s.name, s, categorical, datetime)
    if isinstance(spec, str):
        raise ValueError(f"series {s.name!r} cannot be converted: {spec}")
    if dtype is None:
        dtype = _natural_dtype(spec, nan, normalize, datetime)
    t = _call([spec], dtype, nan, normalize)
    rows, _ = t.shape
    flat = _view(t, (rows,), (1,), 0, shared=False, reason=lib.DLSHARE_REASON_COPY_REQUESTED)
    flat.meta = {"columns": [s.name], "skipped": []}
    return flat


def _view(
    t: Tensor,
    shape: Sequence[int],
    strides: Sequence[int],
    offset: int,
    shared: bool = True,
    reason: int = 0,
) -> Tensor:
    nd = len(shape)
    c_shape = ffi.new("int64_t[]", list(shape) or [0])
    c_strides = ffi.new("int64_t[]", list(strides) or [0])
    out = ffi.new("dlshare_tensor **")
    check(lib.dlshare_tensor_view(t._handle, nd, c_shape, c_strides, offset, out))
    return Tensor._wrap(out[0], shared=shared, reason=reason)


def sliding_windows(t: Any, length: int, step: int = 1, horizon: int = 0) -> Tensor:
    """Zero-copy windows over the first axis: shape (n_windows, length, *t.shape[1:]), window k
    starting at row k * step, for every start with start + length + horizon <= len(t) (keep
    `horizon` rows after each window for targets: horizon=1 gives the n - length sequences of
    the usual create_sequences loop). The windows share `t`'s memory (overlapping views, so
    write to them with care); `t` may be a dlshare.Tensor or anything as_tensor accepts."""
    for name, value, least in (("length", length, 1), ("step", step, 1), ("horizon", horizon, 0)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not isinstance(t, Tensor):
        t = as_tensor(t)
    if t.ndim < 1:
        raise ValueError("sliding_windows needs a tensor with at least one dimension")
    n = t.shape[0]
    room = n - length - horizon
    count = room // step + 1 if room >= 0 else 0
    s0 = t.strides[0]
    shape = (count, length, *t.shape[1:])
    strides = (step * s0, s0, *t.strides[1:])
    windows = _view(t, shape, strides, 0)
    if t.meta is not None:
        windows.meta = dict(t.meta)
    return windows


def to_dataframe(
    t: Any, columns: Sequence[Any] | None = None, index: Any = None, *, target: str = "pandas"
) -> Any:
    """A pandas DataFrame over the tensor's memory (no copy for a CPU tensor NumPy can view;
    read-only when the tensor is). 1-D tensors give one column. Column names default to
    `t.meta["columns"]` when they fit.

    `target="polars"` gives a polars DataFrame instead: a 1-D tensor is read through the Arrow
    C Data Interface without a copy; the columns of a 2-D (row-major) tensor are copied, since
    polars stores columns (`index` does not apply)."""
    _choice("target", target, ("pandas", "polars"))
    if target == "polars":
        if index is not None:
            raise ValueError("polars DataFrames have no index; pass index=None")
        return _arrow.to_polars(t, columns)
    pd = _pd()
    arr = np.asarray(t)
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(f"to_dataframe needs a 1-D or 2-D tensor, got {arr.ndim} dimensions")
    if columns is None and isinstance(t, Tensor) and isinstance(t.meta, dict):
        names = t.meta.get("columns")
        if names is not None and len(names) == arr.shape[1]:
            columns = names
    return pd.DataFrame(arr, columns=columns, index=index, copy=False)


def _arrow_column(values: Any) -> Any:
    """A pyarrow array of a pandas column (public pandas/pyarrow API): pyarrow-backed columns
    hand over their ChunkedArray as is (`__arrow_array__`), others go through `pa.array`
    (zero-copy for contiguous NumPy numbers; categoricals become dictionaries)."""
    import pyarrow as pa

    arr = values.array if hasattr(values, "array") else values
    if hasattr(arr, "__arrow_array__"):
        return arr.__arrow_array__()
    return pa.array(values)


def _via_arrow(df, columns, dtype, nan, categorical, datetime, normalize, index) -> Tensor:
    """from_dataframe for frames with pyarrow-backed columns: every converted column becomes an
    Arrow array (pyarrow-backed ones without a copy) and the table goes through from_arrow, one
    kernel pass as on the NumPy route. Column choice and errors are those of the NumPy route."""
    import pyarrow as pa

    pd = _pd()
    arrays, names, skipped = [], [], []

    def add(name, values, explicit):
        kind = _classify(values)
        if kind != "arrow":
            why = _spec(name, values, categorical, datetime)
            if isinstance(why, str):
                if explicit:
                    raise ValueError(f"column {name!r} cannot be converted: {why}")
                skipped.append(name)
                return
            if kind == "text":
                values = values.astype("category")
        arrays.append(_arrow_column(values))
        names.append(str(name))

    if index:
        add(df.index.name if df.index.name is not None else "index", df.index.to_series(), True)
    if columns is None:
        for name, values in df.items():
            add(name, values, False)
    else:
        if isinstance(columns, (str, bytes)) or not isinstance(columns, (Sequence, pd.Index)):
            columns = [columns]
        for name in columns:
            if name not in df.columns:
                raise KeyError(f"column {name!r} is not in the DataFrame")
            values = df[name]
            if isinstance(values, pd.DataFrame):
                raise ValueError(f"column name {name!r} is not unique in the DataFrame")
            add(name, values, True)
    if not arrays:
        raise ValueError(
            "no numeric, bool, categorical or datetime column to convert"
            + (f" (skipped: {skipped})" if skipped else "")
            + "; select columns, or pass categorical=/datetime= to include those columns"
        )
    table = pa.Table.from_arrays(arrays, names=names)
    t = _arrow.from_arrow(
        table,
        names if columns is not None or index else None,
        dtype=dtype,
        nan=nan,
        categorical=categorical,
        datetime=datetime,
        normalize=normalize,
    )
    t.meta = {"columns": t.meta["columns"], "skipped": skipped + t.meta["skipped"]}
    return t
