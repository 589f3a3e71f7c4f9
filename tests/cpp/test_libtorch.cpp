// libtorch <-> dlshare through DLPack, with the libtorch of the torch Python wheel (ATen needs
// C++20): at::fromDLPack / at::fromDLPackVersioned of tensors dlshare exports, and dlshare's
// import of at::toDLPack / at::toDLPackVersioned. Zero-copy both ways (same address, writes
// visible from both sides) and every deleter exactly once.
#include <ATen/ATen.h>
#include <ATen/DLConvertor.h>
#include <torch/headeronly/version.h>

#include <array>
#include <memory>

#include "check.hpp"

namespace {

// Wraps torch's deleter of one exported tensor to count its calls.
template <class Managed>
struct CountedDeleter {
  static inline int calls = 0;
  static inline void (*torch_deleter)(Managed *) = nullptr;

  static Managed *wrap(Managed *managed) {
    EXPECT(managed != nullptr && managed->deleter != nullptr);
    torch_deleter = managed->deleter;
    managed->deleter = [](Managed *self) {
      calls++;
      torch_deleter(self);
    };
    return managed;
  }
};

// Counts how often dlshare dropped the owner of a buffer it shared.
struct Owner {
  explicit Owner(int *counter) : dropped(counter) {}
  Owner(const Owner &) = delete;
  Owner &operator=(const Owner &) = delete;
  ~Owner() { ++*dropped; }
  int *dropped;
};

void ours_into_torch() {
  const std::size_t start = dlshare::live_tensor_count();
  std::array<float, 6> buffer = {0, 1, 2, 3, 4, 5};
  int dropped = 0;
  dlshare::View view(buffer.data(), {2, 3});
  view.keep_alive(std::make_shared<Owner>(&dropped));
  dlshare::Tensor ours = dlshare::from_view(view, dlshare::Mode::share);
  view = dlshare::View(buffer.data(), {1});  // only dlshare holds the owner now

  {  // versioned
    at::Tensor theirs = at::fromDLPackVersioned(ours.to_dlpack().release());
    EXPECT(theirs.data_ptr() == static_cast<void *>(buffer.data()));
    EXPECT(theirs.sizes() == at::IntArrayRef({2, 3}) && theirs.is_contiguous());
    EXPECT(theirs.scalar_type() == at::kFloat);
    theirs.index_put_({1, 2}, 50.0f);  // torch writes, we see it
    EXPECT(buffer[5] == 50.0f);
    buffer[0] = -7.0f;  // we write, torch sees it
    EXPECT(theirs.index({0, 0}).item<float>() == -7.0f);
    ours.reset();  // torch alone keeps the memory alive now
    EXPECT(dropped == 0 && dlshare::live_tensor_count() == start + 1);
    ours = dlshare::from_dlpack(at::toDLPackVersioned(theirs), dlshare::Mode::share);
    EXPECT(ours.data_ptr() == static_cast<void *>(buffer.data()));  // back again, still shared
  }
  EXPECT(dropped == 0);
  {  // legacy, and a strided (transposed) view keeps its strides
    at::Tensor theirs = at::fromDLPack(ours.view({3, 2}, {1, 3}).to_dlpack_legacy().release());
    EXPECT(theirs.data_ptr() == static_cast<void *>(buffer.data()));
    EXPECT(theirs.strides() == at::IntArrayRef({1, 3}));
    EXPECT(theirs.index({2, 1}).item<float>() == 50.0f);
    theirs.mul_(2.0f);
    EXPECT(buffer[5] == 100.0f && buffer[0] == -14.0f);
  }
  EXPECT(dropped == 0);
  ours.reset();  // the last user: dlshare drops the owner exactly once
  EXPECT(dropped == 1 && dlshare::live_tensor_count() == start);
  std::printf("ok: dlshare -> at::fromDLPackVersioned / at::fromDLPack, zero-copy, owner once\n");
}

void torch_into_ours() {
  using Versioned = CountedDeleter<DLManagedTensorVersioned>;
  using Legacy = CountedDeleter<DLManagedTensor>;
  const std::size_t start = dlshare::live_tensor_count();
  at::Tensor theirs = at::arange(12, at::kDouble).reshape({3, 4});

  {  // versioned, SHARE
    dlshare::Decision decision;
    dlshare::ManagedTensorVersioned managed(Versioned::wrap(at::toDLPackVersioned(theirs)));
    dlshare::Tensor ours = dlshare::from_dlpack(managed, dlshare::Mode::share, &decision);
    EXPECT(!managed && decision.shared());
    EXPECT(ours.data_ptr() == theirs.data_ptr());
    EXPECT(ours.shape()[0] == 3 && ours.shape()[1] == 4 && ours.is_c_contiguous());
    ours.data<double>()[5] = 500.0;  // we write, torch sees it
    EXPECT(theirs.index({1, 1}).item<double>() == 500.0);
    theirs.index_put_({2, 3}, -1.0);  // torch writes, we see it
    EXPECT(ours.values<const double>()[11] == -1.0);
    dlshare::Tensor second = ours;
    ours.reset();
    EXPECT(Versioned::calls == 0);
    second.reset();
    EXPECT(Versioned::calls == 1);  // torch's deleter, exactly once
  }
  {  // legacy, a transposed (F-order) view
    at::Tensor transposed = theirs.t();
    DLManagedTensor *raw = Legacy::wrap(at::toDLPack(transposed));
    dlshare::Tensor ours = dlshare::from_dlpack(raw, dlshare::Mode::share);
    EXPECT(ours.data_ptr() == theirs.data_ptr() && ours.is_f_contiguous());
    EXPECT(ours.strides()[0] == 1 && ours.strides()[1] == 4);
    ours.reset();
    EXPECT(Legacy::calls == 1);
  }
  {  // COPY: torch's deleter runs before from_dlpack returns, the copy is ours alone
    dlshare::Decision decision;
    dlshare::Tensor ours = dlshare::from_dlpack(
        dlshare::ManagedTensorVersioned(Versioned::wrap(at::toDLPackVersioned(theirs))),
        dlshare::Mode::copy, &decision);
    EXPECT(Versioned::calls == 2 && !decision.shared());
    EXPECT(ours.data_ptr() != theirs.data_ptr() && ours.values<double>()[5] == 500.0);
  }
  {  // a refused import leaves torch's tensor with us; its wrapper frees it once
    dlshare::ManagedTensorVersioned managed(Versioned::wrap(at::toDLPackVersioned(theirs)));
    managed->flags |= DLPACK_FLAG_BITMASK_READ_ONLY;
    EXPECT_THROWS(dlshare::from_dlpack(managed, dlshare::Mode::share), DLSHARE_ERR_CANNOT_SHARE);
    EXPECT(managed && Versioned::calls == 2);
  }
  EXPECT(Versioned::calls == 3 && Legacy::calls == 1);
  EXPECT(dlshare::live_tensor_count() == start);
  EXPECT(theirs.index({1, 1}).item<double>() == 500.0);  // torch's tensor is intact
  std::printf("ok: at::toDLPackVersioned / at::toDLPack -> dlshare, zero-copy, deleter once\n");
}

}  // namespace

int main() {
  std::printf("libtorch %s (%s ABI)\n", TORCH_VERSION,
              _GLIBCXX_USE_CXX11_ABI ? "C++11" : "pre-C++11");
  ours_into_torch();
  torch_into_ours();
  return 0;
}
