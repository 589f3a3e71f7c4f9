"""Child-process functions of test_across_processes.py, in a module of their own so that spawn
and forkserver children import only this (not torch, not pytest): a child starts in about a
tenth of the time."""

import signal

import dlshare


def child_queue(inbox, outbox):
    t = inbox.get()
    a = t.numpy()
    first = float(a[0])
    a[1] = 42.0  # seen by the parent
    import torch

    x = torch.from_dlpack(t)  # torch in the child, over the same pages
    x[2] = 43.0
    reply = dlshare.zeros((3,), "int64", shared=True)
    reply.numpy()[:] = [7, 8, 9]
    outbox.put((first, t.is_shared_memory, reply))
    back = inbox.get()  # the parent wrote into `reply`
    outbox.put(int(back.numpy()[0]) + int(reply.numpy()[1]))


def child_pipe(conn):
    t = conn.recv()
    t.numpy()[:] += 1
    conn.send(float(t.numpy().sum()))
    conn.close()


def pool_task(t):
    t.numpy()[0] = -1.0
    out = dlshare.empty((2,), "float32", shared=True)
    out.numpy()[:] = float(t.numpy()[1])
    return out


def child_process_argument(t, done):
    t.numpy()[0] = 11
    done.put(True)


def child_hold(inbox, outbox):
    held = inbox.get()
    outbox.put(float(held.numpy()[0]))
    signal.pause()  # killed while holding it


def child_returns_and_exits(outbox, i):
    t = dlshare.zeros((4,), "int32", shared=True)
    t.numpy()[:] = i
    outbox.put(t)  # and the process ends at once: its exit waits until the parent collected t


def child_cuda(inbox, outbox):
    import torch

    t = inbox.get()  # opened through CUDA IPC: the parent's device memory
    x = torch.from_dlpack(t)
    outbox.put(float(x[3].item()))
    x[4] = 44.0
    torch.cuda.synchronize()
    del x, t
    outbox.put("done")
