import multiprocessing as mp
import pickle

import numpy as np

import dlshare


def worker(inbox, outbox):
    t = inbox.get()                         # the sender's pages, not a copy
    t.numpy()[0, 0] = 42.0                  # seen by the sender
    reply = dlshare.zeros(3, "int64", shared=True)
    reply.numpy()[:] = [1, 2, 3]
    outbox.put(reply)                       # and the other way


if __name__ == "__main__":
    # pickle protocol 5: the elements go out of band; loads makes a tensor over the buffer
    t = dlshare.tensor(np.arange(1_000_000, dtype=np.float32))
    buffers = []
    data = pickle.dumps(t, protocol=5, buffer_callback=buffers.append)
    assert len(data) < 1024 and len(buffers) == 1
    assert dlshare.shares_memory(pickle.loads(data, buffers=buffers), t)

    # shared memory: multiprocessing hands it over as a file descriptor (any size, same cost)
    s = dlshare.zeros((64 << 10, 1024), "float32", shared=True)   # 256 MiB
    ctx = mp.get_context("spawn")                                  # fork and forkserver too
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=worker, args=(inbox, outbox))
    p.start()
    inbox.put(s)
    reply = outbox.get()
    p.join()
    assert s.numpy()[0, 0] == 42.0 and reply.numpy().tolist() == [1, 2, 3]
    assert t.share_memory().is_shared_memory  # a copy of t, in shared memory
    print("ok")
