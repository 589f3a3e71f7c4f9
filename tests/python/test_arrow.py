"""Arrow import/export (issue 14) against the real producers and consumers: pyarrow, polars,
DuckDB and pandas with Arrow dtypes. Expected values are computed independently, with NumPy
and pandas on the same data; every test checks that no tensor storage is left alive
(conftest.py's fixture).

Run from the repository root with the checkout's package:
    cargo build --release
    PYTHONPATH=bindings/python python3 -m pytest tests/python/test_arrow.py -q
"""

from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pandas as pd
import pytest

pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")

try:
    import dlshare
except ImportError:  # not installed: use the checkout's package
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))
    import dlshare

RNG = np.random.default_rng(14)


def random_table(rows=1000, cols=4, null_frac=0.05, nan_frac=0.03):
    """A pyarrow table of float64 columns with nulls and (non-null) NaN, and the same data as a
    NumPy array with NaN for both."""
    data = RNG.standard_normal((rows, cols))
    nulls = RNG.random((rows, cols)) < null_frac
    nans = (RNG.random((rows, cols)) < nan_frac) & ~nulls
    data[nans] = np.nan
    arrays = [pa.array(data[:, j], mask=nulls[:, j]) for j in range(cols)]
    table = pa.table(arrays, names=[f"c{j}" for j in range(cols)])
    ref = data.copy()
    ref[nulls] = np.nan
    return table, ref


def expected(ref: np.ndarray, nan) -> np.ndarray:
    frame = pd.DataFrame(ref)
    if nan == "zero":
        frame = frame.fillna(0)
    elif nan == "mean":
        frame = frame.fillna(frame.mean())
    elif nan == "ffill":
        frame = frame.ffill()
    elif nan == "bfill":
        frame = frame.bfill()
    elif nan == "ffill_bfill":
        frame = frame.ffill().bfill()
    elif nan == "drop":
        frame = frame.dropna()
    return frame.to_numpy()


# ---------------------------------------------------------------------------------------------
# tables


@pytest.mark.parametrize("nan", ["zero", "mean", "ffill", "bfill", "ffill_bfill", "drop"])
def test_pyarrow_table_nan_policies(nan):
    table, ref = random_table()
    t = dlshare.from_arrow(table, nan=nan)
    want = expected(ref, nan).astype(np.float32)
    assert t.shape == want.shape and t.dtype == "float32" and t.is_contiguous()
    np.testing.assert_allclose(np.asarray(t), want, rtol=1e-6, equal_nan=True)
    assert t.meta["columns"] == ["c0", "c1", "c2", "c3"]
    assert not t.shared and t.copy_reason == "copy_requested"


def test_raise_names_the_columns_with_nulls_or_nan():
    only_nan = pa.table({"ok": [1.0, 2.0], "nan": [1.0, float("nan")], "null": [None, 2.0]})
    with pytest.raises(dlshare.InvalidArgumentError, match=r"missing values") as e:
        dlshare.from_arrow(only_nan)
    assert "'nan'" in str(e.value) and "'null'" in str(e.value)
    t = dlshare.from_arrow(only_nan, ["ok"])
    np.testing.assert_array_equal(np.asarray(t)[:, 0], [1.0, 2.0])


@pytest.mark.parametrize(
    "typ",
    ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
     "float32", "float64", "bool"],
)
def test_every_number_type_with_nulls(typ):
    n = 203
    if typ == "bool":
        values = RNG.random(n) < 0.5
    elif typ.startswith("float"):
        values = RNG.standard_normal(n).astype(typ)
    else:
        info = np.iinfo(typ)
        values = RNG.integers(max(info.min, -100), min(info.max, 100), n).astype(typ)
    nulls = RNG.random(n) < 0.2
    arr = pa.array(values, mask=nulls)
    t = dlshare.from_arrow(pa.table({"x": arr}), nan=-7.0, dtype="float64")
    want = values.astype(np.float64)
    want[nulls] = -7.0
    np.testing.assert_array_equal(np.asarray(t)[:, 0], want)


@pytest.mark.parametrize("start", [0, 1, 3, 7, 8, 13])
def test_sliced_validity_bitmaps_at_any_bit_offset(start):
    table, ref = random_table(rows=300, cols=2)
    sliced = table.slice(start, 150)
    t = dlshare.from_arrow(sliced, nan="zero")
    want = np.nan_to_num(ref[start : start + 150], nan=0.0).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(t), want)


def test_chunked_uneven_record_batches_and_sliced_chunks():
    table, ref = random_table(rows=500, cols=3)
    pieces = [table.slice(0, 7), table.slice(7, 200), table.slice(207, 1), table.slice(208, 292)]
    chunked = pa.concat_tables(pieces)
    assert chunked.column(0).num_chunks == 4
    for nan in ("ffill", "bfill", "mean", "drop"):  # policies that cross chunk boundaries
        t = dlshare.from_arrow(chunked, nan=nan, dtype="float64")
        np.testing.assert_allclose(np.asarray(t), expected(ref, nan), rtol=1e-12, equal_nan=True)
    reader = pa.RecordBatchReader.from_batches(chunked.schema, chunked.to_batches())
    t = dlshare.from_arrow(reader, nan="zero", dtype="float64")
    np.testing.assert_array_equal(np.asarray(t), np.nan_to_num(ref, nan=0.0))


def test_dictionary_columns_codes_and_onehot_in_dictionary_order():
    labels = ["zeta", "alpha", "mid"]  # dictionary order, not sorted
    idx = RNG.integers(0, 3, 100).astype(np.int8)
    nulls = RNG.random(100) < 0.1
    col = pa.DictionaryArray.from_arrays(pa.array(idx, mask=nulls), pa.array(labels))
    table = pa.table({"cat": col, "v": pa.array(np.arange(100.0))})
    codes = dlshare.from_arrow(table, categorical="codes", nan="zero", dtype="float64")
    want_codes = np.where(nulls, -1.0, idx)  # as cat.codes: a fill leaves a missing code -1
    np.testing.assert_array_equal(np.asarray(codes)[:, 0], want_codes)
    hot = dlshare.from_arrow(table, categorical="onehot", nan=0.0)
    assert hot.meta["columns"] == ["cat_zeta", "cat_alpha", "cat_mid", "v"]
    want = np.zeros((100, 3), np.float32)
    want[np.arange(100)[~nulls], idx[~nulls]] = 1  # null -> all-zero row (get_dummies)
    np.testing.assert_array_equal(np.asarray(hot)[:, :3], want)
    with pytest.raises(ValueError, match="'cat'.*categorical"):
        dlshare.from_arrow(table, ["cat"])
    t = dlshare.from_arrow(table)  # categorical="raise" without a list: skipped
    assert t.meta["skipped"] == ["cat"]


def test_chunks_with_different_dictionaries_are_unified_by_label():
    a = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int32()), pa.array(["x", "y"]))
    b = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), pa.array(["z", "x", "y"]))
    table = pa.Table.from_batches(
        [pa.record_batch([a], names=["c"]), pa.record_batch([b], names=["c"])]
    )
    t = dlshare.from_arrow(table, categorical="onehot")
    assert t.meta["columns"] == ["c_x", "c_y", "c_z"]
    rows = ["x", "y", "x", "z", "x", "y"]
    want = np.array([[r == c for c in "xyz"] for r in rows], np.float32)
    np.testing.assert_array_equal(np.asarray(t), want)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_timestamps_every_unit_with_and_without_time_zone(unit, tz):
    ticks = np.array([-86_400 * 3 - 5, -1, 0, 86_399, 86_400 * 400 + 17], np.int64)
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    arr = pa.array(ticks * per_second, pa.timestamp(unit, tz=tz))
    table = pa.table({"when": arr})
    days = dlshare.from_arrow(table, datetime="days", dtype="float64")
    np.testing.assert_array_equal(np.asarray(days)[:, 0], np.floor_divide(ticks, 86_400))
    secs = dlshare.from_arrow(table, datetime="seconds", dtype="float64")
    np.testing.assert_array_equal(np.asarray(secs)[:, 0], ticks.astype(np.float64))
    with pytest.raises(ValueError, match="'when'.*datetime"):
        dlshare.from_arrow(table, ["when"])


def test_date32_date64_and_duration():
    days = np.array([-400, -1, 0, 1, 20000], np.int32)
    table = pa.table(
        {
            "d32": pa.array(days, pa.date32()),
            "d64": pa.array(days.astype(np.int64) * 86_400_000, pa.date64()),
            "dur": pa.array(days.astype(np.int64) * 86_400 * 10**6 + 5, pa.duration("us")),
        }
    )
    t = dlshare.from_arrow(table, datetime="days", dtype="float64")
    np.testing.assert_array_equal(np.asarray(t), np.stack([days, days, days], 1))
    t = dlshare.from_arrow(table, datetime="seconds", dtype="float64")
    secs = days.astype(np.float64) * 86_400
    np.testing.assert_allclose(np.asarray(t), np.stack([secs, secs, secs + 5e-6], 1))


def test_requested_text_column_is_an_error_naming_it():
    table = pa.table({"s": ["a", "b"], "x": [1, 2]})
    with pytest.raises(ValueError, match="'s'.*string"):
        dlshare.from_arrow(table, ["s"])
    with pytest.raises(ValueError, match="'nope' is not in the table"):
        dlshare.from_arrow(table, ["nope"])
    t = dlshare.from_arrow(table)
    assert t.meta == {
        "columns": ["x"],
        "skipped": ["s"],
        "detail": t.meta["detail"],
    }


# ---------------------------------------------------------------------------------------------
# arrays: zero-copy and copies


def test_int64_array_is_shared_read_only_and_outlives_pyarrow():
    values = np.arange(1000, dtype=np.int64) * 3
    arr = pa.array(values)
    start = dlshare.live_tensor_count()
    t = dlshare.from_arrow(arr, dtype=None)
    assert t.shared and t.copy_reason is None and t.readonly
    assert t.data_ptr == arr.buffers()[1].address
    del arr
    gc.collect()
    np.testing.assert_array_equal(np.asarray(t), values)
    del t
    gc.collect()
    assert dlshare.live_tensor_count() == start


def test_sliced_float_array_is_shared_and_nan_is_scanned():
    arr = pa.array(np.linspace(0, 1, 100)).slice(10, 50)
    t = dlshare.from_arrow(arr, dtype="float64")
    assert t.shared and t.data_ptr == arr.buffers()[1].address + 10 * 8
    np.testing.assert_array_equal(np.asarray(t), np.linspace(0, 1, 100)[10:60])
    with_nan = pa.array([1.0, float("nan"), 3.0])
    with pytest.raises(dlshare.InvalidArgumentError, match="missing"):
        dlshare.from_arrow(with_nan, dtype="float64")
    t = dlshare.from_arrow(with_nan, dtype="float64", nan="zero")
    assert not t.shared and t.copy_reason == "arrow_layout"
    np.testing.assert_array_equal(np.asarray(t), [1.0, 0.0, 3.0])


def test_array_copies_say_why():
    cases = [
        (pa.array([1, None, 3]), "nulls"),
        (pa.chunked_array([[1, 2], [3]]), "chunks"),
        (pa.array([True, False, True]), "bit-packed"),
    ]
    for arr, word in cases:
        t = dlshare.from_arrow(arr, dtype="float64", nan="zero")
        assert not t.shared and t.copy_reason == "arrow_layout"
        assert word in t.meta["detail"]
    t = dlshare.from_arrow(pa.array([1, 2, 3]), dtype="float32")
    assert not t.shared and t.copy_reason == "dtype_change"
    np.testing.assert_array_equal(np.asarray(t), [1, 2, 3])
    one_chunk = dlshare.from_arrow(pa.chunked_array([[5, 6, 7]]), dtype=None)
    assert one_chunk.shared and one_chunk.dtype == "int64"


# ---------------------------------------------------------------------------------------------
# polars, DuckDB, pandas with Arrow dtypes


def test_polars_dataframe_and_series():
    frame = pl.DataFrame(
        {
            "i": pl.Series([1, None, 3, 4], dtype=pl.Int32),
            "f": [0.5, float("nan"), None, 2.0],
            "b": [True, None, False, True],
            "s": ["x", "y", "x", "z"],
            "c": pl.Series(["lo", "hi", None, "lo"], dtype=pl.Categorical),
        }
    )
    t = dlshare.from_arrow(frame, nan="zero", categorical="onehot")
    # independent reference: polars itself, nulls and NaN to 0, one-hot of the categories
    ref = frame.select("i", "f", "b").with_columns(pl.all().cast(pl.Float64)).fill_nan(0).fill_null(0)
    np.testing.assert_array_equal(np.asarray(t)[:, :3], ref.to_numpy().astype(np.float32))
    labels = [name.removeprefix("c_") for name in t.meta["columns"][3:]]
    assert sorted(labels) == ["hi", "lo"]
    cats = frame["c"].to_list()
    want = np.array([[c == label for label in labels] for c in cats], np.float32)
    np.testing.assert_array_equal(np.asarray(t)[:, 3:], want)
    assert t.meta["skipped"] == ["s"]
    s = pl.Series("v", np.arange(50, dtype=np.float64))
    ts = dlshare.from_arrow(s, dtype=None)
    assert ts.shared and ts.dtype == "float64"
    np.testing.assert_array_equal(np.asarray(ts), np.arange(50.0))
    assert dlshare.from_dataframe(frame, ["i"], nan="drop").shape == (3, 1)


def test_duckdb_result():
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    rel = con.sql(
        "select i::double as x, case when i % 7 = 0 then null else i * 2 end as y, "
        "date '2000-01-01' + i::int as d from range(1000) t(i)"
    )
    t = dlshare.from_arrow(rel, nan="mean", datetime="days", dtype="float64")
    i = np.arange(1000)
    y = np.where(i % 7 == 0, np.nan, i * 2.0)
    y[np.isnan(y)] = np.nanmean(y)
    days = (np.datetime64("2000-01-01") - np.datetime64("1970-01-01")).astype(int) + i
    np.testing.assert_allclose(np.asarray(t), np.stack([i, y, days], 1))
    assert t.meta["columns"] == ["x", "y", "d"]
    dec = dlshare.from_dataframe(con.sql("select 1.5 as a, -12.25::decimal(30, 3) as b"))
    assert dec.meta["columns"] == ["a", "b"]  # DuckDB literals are decimals
    np.testing.assert_array_equal(np.asarray(dec), [[1.5, -12.25]])


def test_pandas_with_arrow_dtypes_goes_through_arrow():
    frame = pd.DataFrame(
        {
            "a": pd.array([1, None, 3, 4], dtype="int64[pyarrow]"),
            "b": pd.array([0.5, None, 2.5, float("nan")], dtype="float64[pyarrow]"),
            "n": [1.0, 2.0, np.nan, 4.0],
            "t": pd.Series(pd.to_datetime(["2020-01-02 00:00", None, "1969-12-31 12:00", "2000-03-01 00:00"]))
            .astype("timestamp[ns][pyarrow]"),
            "s": pd.array(["x", "y", None, "x"], dtype="string[pyarrow]"),
        }
    )
    t = dlshare.from_dataframe(frame, nan="zero", datetime="days", dtype="float64")
    assert t.meta["columns"] == ["a", "b", "n", "t"] and t.meta["skipped"] == ["s"]
    # independent reference: the same frame converted to NumPy-backed dtypes by pandas
    plain = frame[["a", "b", "n"]].astype("float64").fillna(0)
    np.testing.assert_array_equal(np.asarray(t)[:, :3], plain.to_numpy())
    td = frame["t"].astype("datetime64[ns]") - pd.Timestamp("1970-01-01")
    np.testing.assert_array_equal(np.asarray(t)[:, 3], td.dt.days.fillna(0).to_numpy())
    s = dlshare.from_series(frame["a"].fillna(0), dtype=None)
    assert s.shared and s.dtype == "int64"
    np.testing.assert_array_equal(np.asarray(s), [1, 0, 3, 4])
    hot = dlshare.from_dataframe(frame[["s"]], categorical="onehot", nan=0)
    assert hot.meta["columns"] == ["s_x", "s_y"]  # pandas' astype("category") order
    np.testing.assert_array_equal(np.asarray(hot), [[1, 0], [0, 1], [0, 0], [1, 0]])


# ---------------------------------------------------------------------------------------------
# tensors back to Arrow


def test_tensor_exports_to_pyarrow_and_polars_without_copy():
    start = dlshare.live_tensor_count()
    t = dlshare.from_numpy(np.arange(12, dtype=np.float32).reshape(4, 3))
    arr = pa.array(t)
    assert arr.type == pa.list_(pa.float32(), 3)
    assert arr.values.buffers()[1].address == t.data_ptr
    assert arr.to_pylist() == np.arange(12, dtype=np.float32).reshape(4, 3).tolist()
    flat = dlshare.from_numpy(np.arange(5, dtype=np.int64))
    s = pl.Series(flat)
    assert s.to_list() == [0, 1, 2, 3, 4]
    assert s.to_numpy().__array_interface__["data"][0] == flat.data_ptr
    del t, flat
    gc.collect()
    assert dlshare.live_tensor_count() == start + 2  # pyarrow and polars still hold the memory
    assert arr[3].as_py() == [9.0, 10.0, 11.0] and s[4] == 4
    del arr, s
    gc.collect()
    assert dlshare.live_tensor_count() == start


def test_unconsumed_export_capsules_are_freed():
    start = dlshare.live_tensor_count()
    t = dlshare.from_numpy(np.arange(3.0))
    capsules = t.__arrow_c_array__()
    del t
    gc.collect()
    assert dlshare.live_tensor_count() == start + 1
    del capsules
    gc.collect()
    assert dlshare.live_tensor_count() == start


def test_export_errors():
    with pytest.raises(dlshare.UnsupportedDtypeError, match="bool"):
        dlshare.from_numpy(np.array([True])).__arrow_c_array__()
    with pytest.raises(dlshare.InvalidArgumentError, match="contiguous"):
        dlshare.from_numpy(np.arange(6.0).reshape(2, 3)[:, ::2]).__arrow_c_array__()


def test_to_dataframe_polars_target():
    t = dlshare.from_arrow(pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]}))
    frame = dlshare.to_dataframe(t, target="polars")
    assert frame.columns == ["a", "b"]
    assert frame.to_numpy().tolist() == [[1.0, 3.0], [2.0, 4.0]]
    one = dlshare.to_dataframe(dlshare.from_numpy(np.arange(3.0)), ["x"], target="polars")
    assert one.columns == ["x"] and one["x"].to_list() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="target"):
        dlshare.to_dataframe(t, target="spark")


def test_roundtrip_tensor_arrow_tensor_shares_memory():
    t = dlshare.from_numpy(np.arange(10, dtype=np.int32))
    back = dlshare.from_arrow(pa.array(t), dtype=None)
    assert back.shared and back.data_ptr == t.data_ptr
    np.testing.assert_array_equal(np.asarray(back), np.arange(10))
