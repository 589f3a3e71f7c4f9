"""pandas helpers (issue #3) against the pandas recipes they replace: select_dtypes, dropna,
fillna(0 / value / df.mean()), ffill, bfill, ffill().bfill(), cat.codes, get_dummies, days since
the epoch, min-max and z-score scaling, create_sequences; plus to_dataframe, errors, and
pandas 3 copy-on-write (read-only column arrays).

Run from the repository root with the checkout's package:
    cargo build --release
    PYTHONPATH=bindings/python python3 -m pytest tests/python/test_pandas.py -q
"""

from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pandas as pd
import pytest

try:
    import dlshare
except ImportError:  # not installed: use the checkout's package
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))
    import dlshare

EPOCH = pd.Timestamp("1970-01-01")


@pytest.fixture(autouse=True)
def no_leaks():  # the name of conftest.py's fixture: this one replaces it here (one check, not two)
    gc.collect()
    start = dlshare.live_tensor_count()
    yield
    gc.collect()
    assert dlshare.live_tensor_count() == start, "a test left tensor storage alive in the library"


def f32(frame) -> np.ndarray:
    return np.asarray(frame, dtype=np.float32)


def check_layout(t, rows, cols, dtype="float32"):
    assert t.shape == (rows, cols)
    assert t.dtype == dtype
    assert t.is_contiguous()
    assert t.strides == (cols, 1)
    assert not t.shared and t.copy_reason == "copy_requested"


# ---------------------------------------------------------------------------------------------
# frames


def df_nan() -> pd.DataFrame:
    """The brief's missing-value example."""
    return pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [5.0, np.nan, 7.0, 8.0]})


def random_nan_frame(rows=1000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {}
    for k in range(4):
        col = rng.standard_normal(rows) * (k + 1) + k
        col[rng.random(rows) < 0.2] = np.nan
        data[f"x{k}"] = col
    data["x1"][:3] = np.nan  # leading gap: ffill leaves it, bfill fills it
    data["x2"][-3:] = np.nan  # trailing gap
    return pd.DataFrame(data)


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f": [1.5, np.nan, 3.5, 4.5, 5.5],
            "i": np.array([1, 2, 3, 4, 5], dtype=np.int64),
            "b": [True, False, True, True, False],
            "s": ["x", "y", None, "x", "z"],
            "c": pd.Categorical(["A", "B", None, "A", "C"]),
            "d": pd.to_datetime(
                [
                    "1969-07-20 20:17",
                    "1970-01-01 00:00",
                    None,
                    "2000-02-29 12:00",
                    "1900-01-01 00:00",
                ]
            ),
            "u8": np.array([0, 255, 7, 8, 9], dtype=np.uint8),
        }
    )


def ohlcv() -> pd.DataFrame:
    """The brief's OHLCV example, with gaps."""
    return pd.DataFrame(
        {
            "open": [np.nan, 101.0, 102.0, 101.5, 103.0],
            "high": [101.5, 102.5, np.nan, 102.0, 104.0],
            "low": [99.5, 100.5, 101.5, 100.5, np.nan],
            "close": [101.0, 102.0, 101.5, 103.0, 103.5],
            "volume": [1000, 1200, 800, 1500, 1100],
        }
    )


# ---------------------------------------------------------------------------------------------
# column selection, dtypes, meta


def test_numeric_and_bool_columns_by_default_and_skipped_recorded():
    df = mixed_frame().fillna({"f": 0.0})
    t = dlshare.from_dataframe(df)
    check_layout(t, 5, 4)
    assert t.meta == {"columns": ["f", "i", "b", "u8"], "skipped": ["s", "c", "d"]}
    np.testing.assert_array_equal(t.numpy(), df[["f", "i", "b", "u8"]].to_numpy(np.float32))
    # the brief's select_dtypes recipe (bool excluded there) gives the same numbers
    numeric = df.select_dtypes(include=[np.number])
    np.testing.assert_array_equal(
        dlshare.from_dataframe(df, list(numeric.columns)).numpy(), numeric.to_numpy(np.float32)
    )


def test_explicit_columns_in_the_given_order():
    df = pd.DataFrame(
        {"int_col": [1, 2, 3], "float_col": [1.5, 2.5, 3.5], "str_col": ["a", "b", "c"]}
    )
    t = dlshare.from_dataframe(df, ["float_col", "int_col"])
    assert t.meta == {"columns": ["float_col", "int_col"], "skipped": []}
    np.testing.assert_array_equal(t.numpy(), df[["float_col", "int_col"]].to_numpy(np.float32))
    t = dlshare.from_dataframe(df, "int_col")
    assert t.shape == (3, 1)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        ("float32", np.float32),
        ("float64", np.float64),
        (np.float64, np.float64),
        ("int64", np.int64),
        ("int32", np.int32),
        ("float16", np.float16),
    ],
)
def test_explicit_dtype(dtype, expected):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4.75, 5.25, -6.5]})
    t = dlshare.from_dataframe(df, dtype=dtype)
    assert t.numpy().dtype == expected
    np.testing.assert_array_equal(t.numpy(), df.to_numpy().astype(expected))


def test_torch_dtype_and_torch_sees_the_tensor():
    torch = pytest.importorskip("torch")
    df = pd.DataFrame({"feature_1": [1.0, 2.0, 3.0, 4.0], "feature_2": [5.0, 6.0, 7.0, 8.0]})
    t = dlshare.from_dataframe(df, dtype=torch.float32)
    tt = torch.from_dlpack(t)
    expected = torch.tensor(df.values, dtype=torch.float32)
    assert torch.equal(tt, expected)
    assert tt.is_contiguous()
    del tt


def test_int_bool_and_unsigned_values():
    df = pd.DataFrame(
        {
            "i64": np.array([-(2**40), 0, 2**40 + 1], dtype=np.int64),
            "i8": np.array([-128, 0, 127], dtype=np.int8),
            "u64": np.array([0, 2**63, 2**64 - 1], dtype=np.uint64),
            "b": [True, False, True],
            "f16": np.array([0.5, -1.0, 2.0], dtype=np.float16),
        }
    )
    for dtype in ("float32", "float64"):
        np.testing.assert_array_equal(
            dlshare.from_dataframe(df, dtype=dtype).numpy(), df.to_numpy(dtype)
        )


def test_strided_columns_of_a_2d_block_and_big_endian_columns():
    block = np.arange(30, dtype=np.float64).reshape(10, 3)
    df = pd.DataFrame(block, columns=["p", "q", "r"], copy=False)
    assert df["q"].to_numpy().strides == (24,)  # a strided view of the block
    np.testing.assert_array_equal(dlshare.from_dataframe(df).numpy(), block.astype(np.float32))
    be = pd.DataFrame(
        {"x": (np.arange(5) / 3).astype(">f8"), "y": (np.arange(5) - 2).astype(">i4")}
    )
    assert be["x"].dtype == np.dtype(">f8")
    np.testing.assert_array_equal(dlshare.from_dataframe(be).numpy(), be.to_numpy(np.float32))


def test_copy_on_write_arrays_are_read_only_and_the_result_is_independent():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    assert not df["a"].to_numpy().flags.writeable  # pandas 3: copy-on-write views
    t = dlshare.from_dataframe(df)
    arr = t.numpy()
    assert arr.flags.writeable and not t.readonly
    arr[0, 0] = 100.0
    assert df.loc[0, "a"] == 1.0
    df.loc[1, "b"] = -1.0
    assert t.numpy()[1, 1] == 5.0
    del arr, t


def test_nullable_masked_columns():
    df = pd.DataFrame(
        {
            "I": pd.array([1, None, 3, 4], dtype="Int64"),
            "F": pd.array([0.5, 1.5, None, 2.5], dtype="Float64"),
            "B": pd.array([True, None, False, True], dtype="boolean"),
        }
    )
    t = dlshare.from_dataframe(df, nan="zero")
    zeros = df.fillna({"I": 0, "F": 0.0, "B": False})
    np.testing.assert_array_equal(t.numpy(), zeros.to_numpy(np.float32))
    t = dlshare.from_dataframe(df, nan="drop")
    np.testing.assert_array_equal(t.numpy(), df.dropna().to_numpy(np.float32))
    t = dlshare.from_dataframe(df[["I", "F"]], nan="ffill_bfill")
    np.testing.assert_array_equal(t.numpy(), df[["I", "F"]].ffill().bfill().to_numpy(np.float32))
    with pytest.raises(ValueError, match="'I'"):
        dlshare.from_dataframe(df)


# ---------------------------------------------------------------------------------------------
# missing values


def test_nan_raise_names_the_columns():
    with pytest.raises(ValueError) as info:
        dlshare.from_dataframe(df_nan())
    assert "'a'" in str(info.value) and "'b'" in str(info.value)
    assert isinstance(info.value, dlshare.Error)


@pytest.mark.parametrize("frame", [df_nan, random_nan_frame], ids=["brief", "random"])
@pytest.mark.parametrize(
    "nan, recipe",
    [
        ("drop", lambda df: df.dropna()),
        ("zero", lambda df: df.fillna(0)),
        ("mean", lambda df: df.fillna(df.mean())),
        ("ffill", lambda df: df.ffill()),
        ("bfill", lambda df: df.bfill()),
        ("ffill_bfill", lambda df: df.ffill().bfill()),
        (2.5, lambda df: df.fillna(2.5)),
        (-7, lambda df: df.fillna(-7)),
    ],
    ids=["drop", "zero", "mean", "ffill", "bfill", "ffill_bfill", "2.5", "-7"],
)
def test_nan_policies_match_pandas(frame, nan, recipe):
    df = frame()
    t = dlshare.from_dataframe(df, nan=nan)
    expected = recipe(df).to_numpy(np.float32)
    check_layout(t, *expected.shape)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, equal_nan=True)
    t64 = dlshare.from_dataframe(df, nan=nan, dtype="float64")
    np.testing.assert_allclose(
        t64.numpy(), recipe(df).to_numpy(np.float64), rtol=1e-12, equal_nan=True
    )


def test_large_frame_through_the_threaded_path():
    df = random_nan_frame(rows=300_000, seed=3)  # 300k x 4 x 4 bytes: above the threshold
    for nan, recipe in [
        ("ffill", lambda d: d.ffill()),
        ("bfill", lambda d: d.bfill()),
        ("ffill_bfill", lambda d: d.ffill().bfill()),
        ("drop", lambda d: d.dropna()),
        ("mean", lambda d: d.fillna(d.mean())),
    ]:
        np.testing.assert_allclose(
            dlshare.from_dataframe(df, nan=nan).numpy(),
            recipe(df).to_numpy(np.float32),
            rtol=1e-6,
            equal_nan=True,
            err_msg=nan,
        )


# ---------------------------------------------------------------------------------------------
# categories


def df_cat() -> pd.DataFrame:
    """The brief's categorical example (plain strings, categorised by the recipe)."""
    return pd.DataFrame({"category": ["A", "B", "A", "C", "B"], "value": [1.0, 2.0, 3.0, 4.0, 5.0]})


def test_label_encoding_matches_cat_codes():
    df = df_cat()
    expected = df.copy()
    expected["code"] = expected["category"].astype("category").cat.codes
    t = dlshare.from_dataframe(df, ["category", "value"], categorical="codes")
    np.testing.assert_array_equal(t.numpy(), expected[["code", "value"]].to_numpy(np.float32))
    assert t.meta["columns"] == ["category", "value"]
    # a categorical dtype column: its own categories (unused ones included), -1 for missing
    cat = pd.Series(pd.Categorical(["b", None, "a"], categories=["c", "b", "a"]))
    frame = pd.DataFrame({"cat": cat})
    t = dlshare.from_dataframe(frame, categorical="codes", nan="zero")
    np.testing.assert_array_equal(t.numpy()[:, 0], cat.cat.codes.to_numpy(np.float32))
    assert t.numpy()[1, 0] == -1


def test_one_hot_matches_get_dummies_concat():
    df = df_cat()
    one_hot = pd.get_dummies(df["category"], prefix="category", dtype=float)
    expected = pd.concat([one_hot, df[["value"]]], axis=1)
    t = dlshare.from_dataframe(df, ["category", "value"], categorical="onehot")
    assert t.meta["columns"] == list(expected.columns)
    np.testing.assert_array_equal(t.numpy(), expected.to_numpy(np.float32))


def test_one_hot_of_a_whole_frame_has_get_dummies_columns_in_frame_order():
    df = mixed_frame().drop(columns=["d"]).fillna({"f": 0.0})
    t = dlshare.from_dataframe(df, categorical="onehot", nan="zero")
    dummies = pd.get_dummies(df, dtype=float)  # numbers first, then dummies
    assert sorted(t.meta["columns"]) == sorted(dummies.columns)
    np.testing.assert_array_equal(t.numpy(), dummies[t.meta["columns"]].to_numpy(np.float32))
    # a missing category is a zero row, as get_dummies gives
    row = t.numpy()[2]
    names = t.meta["columns"]
    assert all(row[names.index(n)] == 0 for n in names if n.startswith("c_") or n.startswith("s_"))


def test_categories_are_carried_by_ffill_and_dropped_by_drop():
    df = pd.DataFrame({"c": pd.Categorical(["A", None, "B", None]), "v": [1.0, 2.0, 3.0, 4.0]})
    t = dlshare.from_dataframe(df, categorical="codes", nan="ffill")
    np.testing.assert_array_equal(t.numpy()[:, 0], df["c"].ffill().cat.codes.to_numpy(np.float32))
    t = dlshare.from_dataframe(df, categorical="onehot", nan="bfill")
    expected = pd.get_dummies(df["c"].bfill(), prefix="c", dtype=float)
    np.testing.assert_array_equal(t.numpy()[:, :2], expected.to_numpy(np.float32))
    t = dlshare.from_dataframe(df, categorical="codes", nan="drop")
    np.testing.assert_array_equal(t.numpy(), np.array([[0, 1], [1, 3]], dtype=np.float32))
    with pytest.raises(ValueError, match="'c'"):
        dlshare.from_dataframe(df, categorical="codes")


# ---------------------------------------------------------------------------------------------
# datetimes


def test_days_since_epoch_of_the_index_matches_the_brief():
    dates = pd.date_range("2023-01-01", periods=5, freq="D")
    df_ts = pd.DataFrame(
        {"close": [100.0, 101.5, 99.8, 102.3, 103.1], "volume": [1000, 1200, 800, 1500, 1100]},
        index=dates,
    )
    t = dlshare.from_dataframe(df_ts, index=True, datetime="days")
    days = (df_ts.index - pd.Timestamp("1970-01-01")).days
    assert t.meta["columns"] == ["index", "close", "volume"]
    np.testing.assert_array_equal(t.numpy()[:, 0], days.to_numpy(np.float32))
    np.testing.assert_array_equal(t.numpy()[:, 1:], df_ts.to_numpy(np.float32))
    s = dlshare.from_series(pd.Series(dates), datetime="days")
    assert s.dtype == "int64"
    np.testing.assert_array_equal(s.numpy(), days.to_numpy())


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_days_and_seconds_before_1970_with_nat(unit):
    d = mixed_frame()["d"].astype(f"datetime64[{unit}]")
    frame = pd.DataFrame({"d": d})
    delta = d - EPOCH
    t = dlshare.from_dataframe(frame, datetime="days", nan="drop", dtype="float64")
    np.testing.assert_array_equal(t.numpy()[:, 0], delta.dropna().dt.days.to_numpy(np.float64))
    assert t.numpy()[0, 0] == -165  # 1969-07-20 20:17 is -164.15 days: .days floors to -165
    t = dlshare.from_dataframe(frame, datetime="seconds", nan="zero", dtype="float64")
    np.testing.assert_array_equal(
        t.numpy()[:, 0], delta.dt.total_seconds().fillna(0).to_numpy(np.float64)
    )
    with pytest.raises(ValueError, match="'d'"):
        dlshare.from_dataframe(frame, datetime="days")


def test_timezone_aware_datetimes_count_from_utc():
    s = pd.Series(pd.date_range("2020-03-08", periods=4, freq="12h", tz="US/Eastern"))
    t = dlshare.from_series(s, datetime="seconds")
    expected = (s - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    np.testing.assert_array_equal(t.numpy(), expected.to_numpy())


def test_timedelta_columns():
    s = pd.Series(pd.to_timedelta(["-1 days 06:00:00", "2 days", None]))
    t = dlshare.from_series(s, datetime="days", nan="drop")
    np.testing.assert_array_equal(t.numpy(), s.dropna().dt.days.to_numpy())


# ---------------------------------------------------------------------------------------------
# normalisation


def test_ohlcv_pipeline_ffill_bfill_minmax():
    df = ohlcv()

    def prepare_ohlcv_data(df):  # the brief's recipe
        numeric_cols = ["open", "high", "low", "close", "volume"]
        df = df[numeric_cols].astype(np.float32)
        df = df.ffill().bfill()
        return ((df - df.min()) / (df.max() - df.min())).to_numpy()

    t = dlshare.from_dataframe(df, nan="ffill_bfill", normalize="minmax")
    np.testing.assert_allclose(t.numpy(), prepare_ohlcv_data(df), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nan", ["drop", "zero", "mean", "ffill_bfill", "bfill", 1.5])
def test_minmax_and_zscore_match_pandas(nan):
    df = random_nan_frame(rows=500, seed=1)
    recipe = {
        "drop": lambda d: d.dropna(),
        "zero": lambda d: d.fillna(0),
        "mean": lambda d: d.fillna(d.mean()),
        "ffill_bfill": lambda d: d.ffill().bfill(),
        "bfill": lambda d: d.bfill(),
        1.5: lambda d: d.fillna(1.5),
    }[nan]
    filled = recipe(df)
    minmax = (filled - filled.min()) / (filled.max() - filled.min())
    zscore = (filled - filled.mean()) / filled.std()
    t = dlshare.from_dataframe(df, nan=nan, normalize="minmax")
    np.testing.assert_allclose(
        t.numpy(), minmax.to_numpy(np.float32), rtol=1e-6, atol=1e-7, equal_nan=True
    )
    t = dlshare.from_dataframe(df, nan=nan, normalize="zscore", dtype="float64")
    np.testing.assert_allclose(
        t.numpy(), zscore.to_numpy(np.float64), rtol=1e-9, atol=1e-12, equal_nan=True
    )


def test_zscore_of_one_hot_and_codes_like_the_encoded_frame():
    df = pd.DataFrame({"c": pd.Categorical(["A", "B", "A", "C", "B", "A"]), "v": np.arange(6.0)})
    encoded = pd.concat([pd.get_dummies(df["c"], prefix="c", dtype=float), df[["v"]]], axis=1)
    t = dlshare.from_dataframe(df, categorical="onehot", normalize="zscore", dtype="float64")
    np.testing.assert_allclose(
        t.numpy(), ((encoded - encoded.mean()) / encoded.std()).to_numpy(), rtol=1e-12
    )
    codes = pd.DataFrame({"code": df["c"].cat.codes.astype(float), "v": df["v"]})
    t = dlshare.from_dataframe(df, categorical="codes", normalize="minmax", dtype="float64")
    expected = (codes - codes.min()) / (codes.max() - codes.min())
    np.testing.assert_allclose(t.numpy(), expected.to_numpy(), rtol=1e-12)


def test_constant_column_normalises_to_nan_like_pandas():
    df = pd.DataFrame({"k": [3.0, 3.0, 3.0], "v": [1.0, 2.0, 3.0]})
    t = dlshare.from_dataframe(df, normalize="minmax")
    expected = ((df - df.min()) / (df.max() - df.min())).to_numpy(np.float32)
    np.testing.assert_array_equal(t.numpy(), expected)


# ---------------------------------------------------------------------------------------------
# from_series


def test_from_series_keeps_the_series_dtype_like_torch_tensor_of_values():
    cases = [
        pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]),
        pd.Series([1, 2, 3], dtype=np.int32),
        pd.Series([True, False]),
        pd.Series(np.array([1.5, 2.5], dtype=np.float32)),
    ]
    for s in cases:
        t = dlshare.from_series(s)
        assert t.shape == (len(s),) and t.ndim == 1
        assert t.numpy().dtype == s.to_numpy().dtype
        np.testing.assert_array_equal(t.numpy(), s.values)
        assert t.copy_reason == "copy_requested"
    codes = dlshare.from_series(df_cat()["category"].astype("category"), categorical="codes")
    assert codes.dtype == "int8"
    np.testing.assert_array_equal(codes.numpy(), df_cat()["category"].astype("category").cat.codes)
    t = dlshare.from_series(pd.Series([1, 2, 3]), normalize="minmax")
    assert t.dtype == "float64"
    np.testing.assert_array_equal(t.numpy(), [0.0, 0.5, 1.0])
    t = dlshare.from_series(pd.Series([1.0, np.nan, 3.0]), dtype="float32", nan="mean")
    np.testing.assert_array_equal(t.numpy(), np.array([1, 2, 3], dtype=np.float32))
    with pytest.raises(ValueError, match="onehot"):
        dlshare.from_series(df_cat()["category"], categorical="onehot")
    with pytest.raises(TypeError):
        dlshare.from_series(df_cat())


# ---------------------------------------------------------------------------------------------
# sliding windows


def create_sequences(df, seq_length):  # the brief's recipe, with NumPy in place of torch
    values = df.to_numpy(np.float32)
    return np.stack([values[i : i + seq_length] for i in range(len(values) - seq_length)])


def test_sliding_windows_match_create_sequences_without_copying():
    df_long = pd.DataFrame({"feature": np.random.default_rng(0).standard_normal(100)})
    t = dlshare.from_dataframe(df_long)
    w = dlshare.sliding_windows(t, 10, horizon=1)
    expected = create_sequences(df_long, seq_length=10)
    assert w.shape == expected.shape == (90, 10, 1)
    np.testing.assert_array_equal(w.numpy(), expected)
    assert w.shared and w.copy_reason is None
    assert dlshare.shares_memory(w, t)
    assert w.data_ptr == t.data_ptr
    windows = w.numpy()
    row_bytes = t.strides[0] * t.itemsize
    for k in (0, 1, 57, 89):
        assert windows[k].__array_interface__["data"][0] == t.data_ptr + k * row_bytes


def test_sliding_windows_steps_horizons_and_torch():
    df = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) * 10})
    t = dlshare.from_dataframe(df)
    w = dlshare.sliding_windows(t, 4, step=3)
    assert w.shape == (3, 4, 2) and w.strides == (6, 2, 1)  # starts 0, 3, 6
    np.testing.assert_array_equal(w.numpy()[2], df.to_numpy(np.float32)[6:10])
    assert w.meta == t.meta
    assert dlshare.sliding_windows(t, 4, step=3, horizon=1).shape == (2, 4, 2)
    assert dlshare.sliding_windows(t, 11).shape == (0, 11, 2)
    assert dlshare.sliding_windows(t, 10).shape == (1, 10, 2)
    torch = pytest.importorskip("torch")
    tw = torch.from_dlpack(dlshare.sliding_windows(t, 4, step=2))
    row_bytes = 2 * 4
    assert [tw[k].data_ptr() for k in range(tw.shape[0])] == [
        t.data_ptr + k * 2 * row_bytes for k in range(tw.shape[0])
    ]
    seq = torch.stack([torch.from_dlpack(t)[i : i + 4] for i in range(0, 10 - 4 + 1, 2)])
    assert torch.equal(tw, seq)
    del tw, seq


def test_sliding_windows_keep_their_storage_and_accept_arrays():
    arr = np.arange(12.0).reshape(6, 2)
    w = dlshare.sliding_windows(arr, 2)
    assert w.shape == (5, 2, 2)
    assert dlshare.shares_memory(w, arr)  # as_tensor shared the NumPy array
    t = dlshare.from_dataframe(pd.DataFrame(arr, columns=["x", "y"]))
    w = dlshare.sliding_windows(t, 3)
    expected = t.numpy()[1:4].copy()
    del t
    gc.collect()
    np.testing.assert_array_equal(w.numpy()[1], expected)
    one_d = dlshare.sliding_windows(np.arange(5.0), 2, step=2)
    np.testing.assert_array_equal(one_d.numpy(), [[0.0, 1.0], [2.0, 3.0]])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"length": 0},
        {"length": 2, "step": 0},
        {"length": 2, "horizon": -1},
        {"length": 2.5},
        {"length": True},
    ],
)
def test_sliding_windows_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        dlshare.sliding_windows(np.arange(5.0), **kwargs)


# ---------------------------------------------------------------------------------------------
# to_dataframe


def test_to_dataframe_round_trip_shares_memory():
    df = pd.DataFrame({"feature_a": [1.0, 2.0], "feature_b": [3.0, 4.0], "feature_c": [5.0, 6.0]})
    t = dlshare.from_dataframe(df)
    back = dlshare.to_dataframe(t)
    assert list(back.columns) == ["feature_a", "feature_b", "feature_c"]
    pd.testing.assert_frame_equal(back, df.astype(np.float32))
    assert np.shares_memory(back.to_numpy(), t.numpy())
    assert np.shares_memory(back["feature_b"].to_numpy(), t.numpy())
    named = dlshare.to_dataframe(t, columns=["x", "y", "z"], index=["r0", "r1"])
    assert list(named.columns) == ["x", "y", "z"] and list(named.index) == ["r0", "r1"]
    one = dlshare.to_dataframe(dlshare.from_series(pd.Series([1.0, 2.0, 3.0])))
    assert one.shape == (3, 1)
    with pytest.raises(ValueError):
        dlshare.to_dataframe(dlshare.sliding_windows(t, 1))
    del back, named, one


def test_to_dataframe_of_a_random_tensor_like_the_brief():
    values = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    t = dlshare.from_numpy(values)
    df = dlshare.to_dataframe(t, columns=["feature_a", "feature_b", "feature_c"])
    pd.testing.assert_frame_equal(
        df, pd.DataFrame(values, columns=["feature_a", "feature_b", "feature_c"])
    )
    assert np.shares_memory(df.to_numpy(), values)
    del df


# ---------------------------------------------------------------------------------------------
# errors


def test_no_usable_column():
    df = pd.DataFrame({"s": ["a", "b"], "c": pd.Categorical(["x", "y"])})
    with pytest.raises(ValueError, match="no numeric"):
        dlshare.from_dataframe(df)
    with pytest.raises(ValueError, match="no numeric"):
        dlshare.from_dataframe(pd.DataFrame())


def test_explicit_columns_that_cannot_be_converted():
    df = mixed_frame()
    with pytest.raises(ValueError, match="'s'.*categorical="):
        dlshare.from_dataframe(df, ["f", "s"], nan="zero")
    with pytest.raises(ValueError, match="'c'"):
        dlshare.from_dataframe(df, ["c"])
    with pytest.raises(ValueError, match="'d'.*datetime="):
        dlshare.from_dataframe(df, ["d"])
    with pytest.raises(KeyError):
        dlshare.from_dataframe(df, ["missing"])
    objects = pd.DataFrame({"o": [object(), object()]})
    with pytest.raises(ValueError):
        dlshare.from_dataframe(objects, ["o"], categorical="raise")
    complex_frame = pd.DataFrame({"z": np.array([1 + 2j, 3j])})
    with pytest.raises(ValueError, match="'z'"):
        dlshare.from_dataframe(complex_frame, ["z"])
    with pytest.raises(TypeError):
        dlshare.from_dataframe(np.zeros((2, 2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nan": "bogus"},
        {"nan": True},
        {"nan": float("nan")},
        {"nan": None},
        {"normalize": "l2"},
        {"categorical": "labels"},
        {"datetime": "weeks"},
    ],
)
def test_bad_option_values(kwargs):
    with pytest.raises(ValueError):
        dlshare.from_dataframe(df_nan(), **kwargs)


def test_bad_dtype_and_index():
    with pytest.raises(dlshare.UnsupportedDtypeError):
        dlshare.from_dataframe(df_nan(), nan="zero", dtype="complex64")
    with pytest.raises(ValueError):
        dlshare.from_dataframe(df_nan(), nan="zero", dtype="int32", normalize="minmax")
    indexed = df_nan().set_index(pd.Index(["w", "x", "y", "z"]))
    with pytest.raises(ValueError, match="index"):
        dlshare.from_dataframe(indexed, nan="zero", index=True)
    with pytest.raises(ValueError, match="datetime="):
        dlshare.from_dataframe(
            df_nan().set_index(pd.date_range("2020", periods=4)), nan="zero", index=True
        )
    t = dlshare.from_dataframe(df_nan(), nan="zero", index=True)  # a RangeIndex is numeric
    np.testing.assert_array_equal(t.numpy()[:, 0], [0, 1, 2, 3])
    assert t.meta["columns"] == ["index", "a", "b"]
