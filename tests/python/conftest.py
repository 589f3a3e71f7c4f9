"""Shared fixtures: every test must leave no tensor storage alive in the library."""

import gc

import pytest

import dlshare


@pytest.fixture(autouse=True)
def no_leaks():
    gc.collect()
    start = dlshare.live_tensor_count()
    yield
    gc.collect()
    assert dlshare.live_tensor_count() == start, "a test leaked tensor storage in the library"
