using DLShare

A = reshape(collect(1.0:6.0), 2, 3)       # column-major
t = from_array(A)                         # shares: no copy (F-order strides)
B = as_array(t)                           # the same memory, as an Array
B[2, 3] = 60.0
@assert A[2, 3] == 60.0
println(explain(view(A, :, 3:-1:1)).detail)   # copied (negative_stride): ...
c = as_tensor(view(A, :, 3:-1:1))         # copies, and says why
println(c.decision.reason)                # negative_stride
p = to_dlpack(t)                          # a DLManagedTensorVersioned* for any DLPack consumer
u = from_dlpack(p)                        # ... such as dlshare itself: same memory
@assert pointer(u) == pointer(t)
