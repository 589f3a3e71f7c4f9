import numpy as np
import torch
import dlshare

a = np.arange(6.0).reshape(2, 3)
t = dlshare.from_numpy(a)              # shares: no copy
x = torch.from_dlpack(t)               # zero-copy into PyTorch
x[1, 2] = 60.0
assert a[1, 2] == 60.0                 # one memory
print(dlshare.explain(a[::-1]).detail)  # copied (negative_stride): ...
c = dlshare.as_tensor(a[::-1])         # copies, and says why
print(c.shared, c.copy_reason)         # False negative_stride
d = dlshare.tensor(a)                  # always copies (torch.tensor semantics)
assert not dlshare.shares_memory(d, a)
