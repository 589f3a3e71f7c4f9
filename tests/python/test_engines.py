"""dlshare tensors through real engines that move data between processes (issue 15):

- a Dask `distributed.LocalCluster` of two worker processes, bound to 127.0.0.1 only (no
  dashboard), started once for the module: tensors through `scatter`, `submit` and `gather`, from
  the client to the workers and back (Dask pickles them with protocol 5, out of band);
- `torch.utils.data.DataLoader` with worker processes whose dataset returns dlshare tensors
  (shared-memory ones arrive by file descriptor, as torch's own tensors do).
"""

import contextlib
import gc
import os
import time

import numpy as np
import pytest
import torch

import dlshare

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402  (installed with distributed)


@pytest.fixture(scope="module")
def client():
    # No log of recent messages: it would keep the last tensors sent alive past each test (the
    # leak check of conftest.py counts them).
    with dask.config.set({"distributed.admin.low-level-log-length": 0}), make_cluster() as c:
        yield c


@contextlib.contextmanager
def make_cluster():
    cluster = distributed.LocalCluster(
        host="127.0.0.1",
        dashboard_address=None,
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        worker_dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as c:
        yield c


def scale(t, k):
    """Runs in a worker: a new tensor from a dlshare tensor (and the worker's pid)."""
    assert isinstance(t, dlshare.Tensor)
    return dlshare.tensor(np.asarray(t) * k), os.getpid()


def make(n, dtype):
    """Runs in a worker: a tensor made there, sent back to the client."""
    return dlshare.tensor(np.arange(n).astype(dtype)).to("float64" if dtype == "f8" else None)


def describe(t):
    return (t.dtype, t.shape, t.strides, t.readonly, float(np.asarray(t, dtype=np.float64).sum()))


def test_every_process_listens_on_loopback_only(client):
    info = client.scheduler_info()
    addresses = [client.scheduler.address, *info["workers"]]
    assert len(info["workers"]) == 2
    for address in addresses:
        assert address.startswith("tcp://127.0.0.1:"), address
    # Every listening socket of this process (the scheduler and its HTTP server run here) and
    # of its children (the nannies and workers) is on the loopback interface.
    import psutil  # a dependency of distributed

    me = psutil.Process()
    listening = []
    for p in [me, *me.children(recursive=True)]:
        connections = p.net_connections if hasattr(p, "net_connections") else p.connections
        listening += [c.laddr for c in connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 5, listening  # scheduler, its HTTP server, 2 nannies, 2 workers
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening


def test_scatter_submit_gather_both_ways(client):
    a = dlshare.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    [future] = client.scatter([a])
    results = client.gather([client.submit(scale, future, k, pure=False) for k in (2, 3)])
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids
    for (t, _), k in zip(results, (2, 3)):
        assert isinstance(t, dlshare.Tensor) and t.dtype == "float32" and t.shape == (3, 4)
        np.testing.assert_array_equal(t.numpy(), np.arange(12).reshape(3, 4) * k)
    # made in the workers, gathered here; the layout and flags travel with the values
    made = client.gather([client.submit(make, 1000, "i4"), client.submit(make, 5, "f8")])
    assert made[0].dtype == "int32" and made[0].numpy().sum() == 499500
    assert made[1].dtype == "float64" and made[1].shape == (5,)
    f = dlshare.as_tensor(np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    frozen = np.arange(4.0)
    frozen.flags.writeable = False
    ro = dlshare.from_numpy(frozen, readonly=True)
    for t in (f, ro):
        assert client.submit(describe, t).result() == describe(t)
    big = dlshare.zeros((4 << 20,), "float32")  # 16 MiB through the cluster and back
    big.numpy()[-1] = 5.0
    [scattered] = client.scatter([big])
    back = client.submit(lambda t: t, scattered).result()
    assert back.shape == big.shape and back.numpy()[-1] == 5.0
    del future, results, made, back, scattered
    forget_everything(client)


def forget_everything(client):
    """Waits until the scheduler (in this process) has forgotten every task: it keeps the
    arguments given to `submit` until their futures are released, which happens asynchronously
    (the leak check of conftest.py counts them)."""
    gc.collect()
    deadline = time.monotonic() + 30
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
        assert time.monotonic() < deadline, "the scheduler kept tasks for 30 s"
        time.sleep(0.05)


class SharedBatches(torch.utils.data.Dataset):
    """Each item a dlshare tensor made in the worker: shared memory for even indices, plain
    memory (sent by value) for odd ones."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        t = dlshare.empty((4, 3), "float32", shared=(i % 2 == 0))
        t.numpy()[:] = i
        return t, os.getpid()


def test_dataloader_workers_return_dlshare_tensors():
    loader = torch.utils.data.DataLoader(SharedBatches(), batch_size=None, num_workers=2)
    seen = []
    for i, (t, pid) in enumerate(loader):
        assert isinstance(t, dlshare.Tensor) and pid != os.getpid()
        assert t.is_shared_memory == (i % 2 == 0)  # shared ones arrive as the same pages
        np.testing.assert_array_equal(torch.from_dlpack(t).numpy(), np.full((4, 3), i))
        seen.append(i)
    assert seen == list(range(8))
