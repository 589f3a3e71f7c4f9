// Every function of include/dlshare.hpp, against the installed library: results, the
// exception (status, message, reason) on each misuse, and no leak (dlshare_live_tensor_count
// back to its start value, every producer deleter and release callback run exactly once).
// Built as C++17 and as C++20 (std::span), against the shared and the static library.
#include <array>
#include <complex>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "check.hpp"

namespace {

using dlshare::Decision;
using dlshare::Mode;
using dlshare::Options;
using dlshare::Tensor;
using dlshare::View;

// A DLPack producer that counts its deleter calls: owns `values` and the shape.
template <class Managed>
struct Producer {
  static inline int deleted = 0;
  std::vector<float> values;
  std::array<int64_t, 2> shape{};
  Managed managed{};

  static Managed *make(std::vector<float> values, int64_t rows, int64_t cols) {
    auto *p = new Producer{std::move(values), {rows, cols}, {}};
    DLTensor &dl = p->managed.dl_tensor;
    dl.data = p->values.data();
    dl.device = dlshare::cpu();
    dl.ndim = 2;
    dl.dtype = dlshare::dtype_of<float>();
    dl.shape = p->shape.data();
    dl.strides = nullptr;
    dl.byte_offset = 0;
    p->managed.manager_ctx = p;
    p->managed.deleter = [](Managed *self) {
      deleted++;
      delete static_cast<Producer *>(self->manager_ctx);
    };
    if constexpr (std::is_same_v<Managed, DLManagedTensorVersioned>) {
      p->managed.version.major = DLPACK_MAJOR_VERSION;
      p->managed.version.minor = DLPACK_MINOR_VERSION;
    }
    return &p->managed;
  }
};
using Versioned = Producer<DLManagedTensorVersioned>;
using Legacy = Producer<DLManagedTensor>;

// Counts how many owners a View's keep_alive handed to dlshare were dropped.
struct Owner {
  explicit Owner(int *counter) : dropped(counter) {}
  Owner(const Owner &) = delete;
  Owner &operator=(const Owner &) = delete;
  ~Owner() { ++*dropped; }
  int *dropped;
};

// Runs one group of checks and verifies it left no tensor storage alive.
template <class Body>
void group(const char *name, Body body) {
  const std::size_t start = dlshare::live_tensor_count();
  body();
  EXPECT(dlshare::live_tensor_count() == start);
  std::printf("ok: %s\n", name);
  std::fflush(stdout);
}

void test_names_and_dtypes() {
  EXPECT(std::strcmp(dlshare::version(), dlshare_version()) == 0);
  EXPECT(std::strcmp(dlshare::status_name(DLSHARE_ERR_READ_ONLY), "DLSHARE_ERR_READ_ONLY") == 0);
  EXPECT(std::strcmp(dlshare::reason_name(DLSHARE_REASON_NEGATIVE_STRIDE), "negative_stride") == 0);
  // the reasons bindings set (issue 11)
  EXPECT(std::strcmp(dlshare::reason_name(DLSHARE_REASON_LAZY_CONJUGATE), "lazy_conjugate") == 0);
  EXPECT(std::strcmp(dlshare::reason_name(DLSHARE_REASON_LAZY_NEGATIVE), "lazy_negative") == 0);
  EXPECT(std::strcmp(dlshare::reason_name(DLSHARE_REASON_REQUIRES_GRAD), "requires_grad") == 0);
  EXPECT(std::strcmp(dlshare::reason_name(DLSHARE_REASON_PRODUCER_COPY), "producer_copy") == 0);
  // the DLPack exchange API table dlshare publishes
  const DLPackExchangeAPI *api = dlshare_dlpack_exchange_api();
  EXPECT(api != nullptr && api->header.version.major == 1 && api->header.version.minor == 3);
  EXPECT(api->managed_tensor_allocator != nullptr && api->current_work_stream != nullptr);

  static_assert(dlshare::same_dtype(dlshare::dtype_of<bool>(), DLDataType{kDLBool, 8, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<int8_t>(), DLDataType{kDLInt, 8, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<int16_t>(), DLDataType{kDLInt, 16, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<int32_t>(), DLDataType{kDLInt, 32, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<int64_t>(), DLDataType{kDLInt, 64, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<uint8_t>(), DLDataType{kDLUInt, 8, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<uint16_t>(), DLDataType{kDLUInt, 16, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<uint32_t>(), DLDataType{kDLUInt, 32, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<uint64_t>(), DLDataType{kDLUInt, 64, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<float>(), DLDataType{kDLFloat, 32, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<const double>(),
                                    DLDataType{kDLFloat, 64, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<std::complex<float>>(),
                                    DLDataType{kDLComplex, 64, 1}));
  static_assert(dlshare::same_dtype(dlshare::dtype_of<std::complex<double>>(),
                                    DLDataType{kDLComplex, 128, 1}));
  static_assert(!dlshare::same_dtype(dlshare::dtype_of<int32_t>(), dlshare::dtype_of<uint32_t>()));

  EXPECT(dlshare::same_dtype(dlshare::dtype_from_name("bfloat16"), DLDataType{kDLBfloat, 16, 1}));
  EXPECT(dlshare::dtype_name(dlshare::dtype_of<std::complex<double>>()) == "complex128");
  EXPECT_THROWS(dlshare::dtype_from_name("float128"), DLSHARE_ERR_UNSUPPORTED_DTYPE);

  static_assert(dlshare::cpu().device_type == kDLCPU && dlshare::cpu().device_id == 0);
  const DLDevice cuda1 = dlshare::device_from_name("cuda:1");
  EXPECT(cuda1.device_type == kDLCUDA && cuda1.device_id == 1);
  EXPECT(dlshare::device_name(cuda1) == "cuda:1");
  EXPECT(dlshare::device_name(dlshare::cpu()) == "cpu");
  EXPECT_THROWS(dlshare::device_from_name("abacus"), DLSHARE_ERR_INVALID_ARGUMENT);
}

void test_error() {
  const dlshare::Error e(DLSHARE_ERR_CANNOT_SHARE, "it would not fit",
                         DLSHARE_REASON_MISALIGNED);
  EXPECT(e.status() == DLSHARE_ERR_CANNOT_SHARE);
  EXPECT(std::strcmp(e.status_name(), "DLSHARE_ERR_CANNOT_SHARE") == 0);
  EXPECT(e.message() == "it would not fit");
  EXPECT(std::string(e.what()) == "DLSHARE_ERR_CANNOT_SHARE: it would not fit");
  EXPECT(e.reason() == DLSHARE_REASON_MISALIGNED);
  EXPECT(std::strcmp(e.reason_name(), "misaligned") == 0);
  const dlshare::Error copy = e;  // exceptions are copied when thrown
  EXPECT(copy.message() == e.message());
  static_assert(std::is_base_of_v<std::runtime_error, dlshare::Error>);
}

void test_options_and_decision() {
  const Options defaults;
  EXPECT(defaults.mode() == Mode::share_or_copy);
  EXPECT(!defaults.raw().has_dtype && !defaults.raw().has_device);
  EXPECT(!defaults.raw().allow_read_only && !defaults.raw().allow_complex_to_real);
  EXPECT(defaults.raw().stream == nullptr);

  Options o = Mode::share;
  EXPECT(o.mode() == Mode::share && o.raw().mode == DLSHARE_MODE_SHARE);
  o.dtype(dlshare::dtype_of<double>()).device(dlshare::cpu()).allow_read_only()
      .allow_complex_to_real();
  EXPECT(o.raw().has_dtype && dlshare::same_dtype(o.raw().dtype, dlshare::dtype_of<double>()));
  EXPECT(o.raw().has_device && o.raw().device.device_type == kDLCPU);
  EXPECT(o.raw().allow_read_only && o.raw().allow_complex_to_real);
  o.allow_read_only(false).allow_complex_to_real(false);
  EXPECT(!o.raw().allow_read_only && !o.raw().allow_complex_to_real);
  o.raw().mode = 7;  // raw access reaches the C struct, which the library validates
  float x = 1;
  EXPECT_THROWS(dlshare::from_view(View(&x, {1}), o), DLSHARE_ERR_INVALID_ARGUMENT);
  EXPECT(Options(Mode::copy).mode() == Mode::copy);

  const Decision none;
  EXPECT(!none.shared() && none.reason() == DLSHARE_REASON_NONE && none.detail()[0] == '\0');
  dlshare_decision raw{};
  raw.shared = false;
  raw.reason = DLSHARE_REASON_BYTE_ORDER;
  std::strcpy(raw.detail, "copied (byte_order)");
  const Decision d(raw);
  EXPECT(!d.shared() && d.reason() == DLSHARE_REASON_BYTE_ORDER);
  EXPECT(std::strcmp(d.reason_name(), "byte_order") == 0);
  EXPECT(std::strcmp(d.detail(), "copied (byte_order)") == 0);
  EXPECT(d.raw().reason == DLSHARE_REASON_BYTE_ORDER);
}

void test_spans_and_lists() {
  dlshare::span<const int64_t> empty;
  EXPECT(empty.empty() && empty.size() == 0 && empty.data() == nullptr);
  const int64_t raw[3] = {4, 5, 6};
  dlshare::span<const int64_t> s(raw, 3);
  EXPECT(s.size() == 3 && s[1] == 5 && s.front() == 4 && s.back() == 6);
  EXPECT(s.size_bytes() == sizeof raw && !s.empty());
  int64_t sum = 0;
  for (int64_t v : s) sum += v;
  EXPECT(sum == 15);
#if __cplusplus >= 202002L
  static_assert(std::is_same_v<dlshare::span<int>, std::span<int>>);
#endif

  const std::vector<int64_t> vec = {1, 2};
  const std::array<int64_t, 3> arr = {1, 2, 3};
  EXPECT(dlshare::Int64List(vec).size() == 2 && dlshare::Int64List(vec).data() == vec.data());
  EXPECT(dlshare::Int64List(arr).size() == 3);
  EXPECT(dlshare::Int64List(s).data() == raw);
  EXPECT(dlshare::Int64List(raw, 2).size() == 2);
  EXPECT(dlshare::Int64List().empty());
}

void test_tensor_lifetime() {
  const std::size_t start = dlshare::live_tensor_count();
  Tensor none;
  EXPECT(!none && none.get() == nullptr);
  EXPECT_THROWS(none.ndim(), DLSHARE_ERR_INVALID_HANDLE);  // the C API answers for NULL
  EXPECT_THROWS(none.data_ptr(), DLSHARE_ERR_INVALID_HANDLE);
  Tensor none_copy = none;  // copying an empty tensor retains nothing
  EXPECT(!none_copy);

  Tensor a = Tensor::zeros(dlshare::dtype_of<int32_t>(), {2, 3});
  EXPECT(a && dlshare::live_tensor_count() == start + 1);
  {
    Tensor b = a;  // copy = retain: same handle, one more owner
    EXPECT(b.get() == a.get());
    Tensor c = std::move(b);  // move = steal
    EXPECT(!b && c.get() == a.get());
    c.reset();
    EXPECT(!c);
    c = a;  // copy assignment
    EXPECT(c.get() == a.get());
    Tensor d;
    d = std::move(c);  // move assignment
    EXPECT(!c && d.get() == a.get());
    EXPECT(a.ndim() == 2);
  }
  // b, c, d are gone and their owners released; a's handle is still live.
  EXPECT(a.ndim() == 2 && dlshare::live_tensor_count() == start + 1);

  // adopt / borrow / release: the raw handle crosses into C and back.
  dlshare_tensor *raw = a.release();
  EXPECT(!a && raw != nullptr);
  {
    Tensor borrowed = Tensor::borrow(raw);  // raw stays ours
    EXPECT(borrowed.get() == raw);
  }
  Tensor adopted = Tensor::adopt(raw);  // raw is the Tensor's now
  EXPECT(adopted.ndim() == 2);
  adopted.reset();
  EXPECT(dlshare::live_tensor_count() == start);
  EXPECT_THROWS(Tensor::borrow(raw), DLSHARE_ERR_INVALID_HANDLE);  // released handle
  EXPECT_THROWS(Tensor::borrow(nullptr), DLSHARE_ERR_INVALID_HANDLE);
}

void test_tensor_accessors() {
  Tensor e = Tensor::empty(dlshare::dtype_of<double>(), {2, 3, 4});
  EXPECT(e.ndim() == 3);
  const auto shape = e.shape();
  EXPECT(shape.size() == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 4);
  const auto strides = e.strides();
  EXPECT(strides.size() == 3 && strides[0] == 12 && strides[1] == 4 && strides[2] == 1);
  EXPECT(dlshare::same_dtype(e.dtype(), dlshare::dtype_of<double>()));
  EXPECT(e.device().device_type == kDLCPU);
  EXPECT(e.byte_offset() == 0 && e.nbytes() == 24 * sizeof(double));
  EXPECT(!e.is_read_only() && e.is_c_contiguous() && !e.is_f_contiguous());
  EXPECT(reinterpret_cast<std::uintptr_t>(e.data_ptr()) % 256 == 0);
  uint64_t flags = 0;
  const DLTensor dl = e.info(&flags);
  EXPECT(dl.ndim == 3 && dl.data == e.data_ptr() && dl.shape == shape.data());
  EXPECT((flags & DLPACK_FLAG_BITMASK_READ_ONLY) == 0);

  Tensor z = Tensor::zeros(dlshare::dtype_of<float>(), {4});
  for (float v : z.values<float>()) EXPECT(v == 0.0f);
  EXPECT(!z.shares_memory(e) && z.shares_memory(z));

  Tensor scalar = Tensor::zeros(dlshare::dtype_of<int64_t>(), {});
  EXPECT(scalar.ndim() == 0 && scalar.shape().empty() && scalar.nbytes() == 8);
  EXPECT(scalar.values<int64_t>().size() == 1);

  EXPECT_THROWS(Tensor::empty(dlshare::dtype_of<float>(), {-1}), DLSHARE_ERR_INVALID_ARGUMENT);
  EXPECT_THROWS(Tensor::zeros(DLDataType{99, 8, 1}, {2}), DLSHARE_ERR_UNSUPPORTED_DTYPE);
}

void test_typed_access() {
  Tensor t = Tensor::zeros(dlshare::dtype_of<float>(), {2, 3});
  float *p = t.data<float>();
  EXPECT(static_cast<void *>(p) == t.data_ptr());
  const float *cp = t.data<const float>();
  EXPECT(cp == p);
  dlshare::span<float> values = t.values<float>();
  EXPECT(values.size() == 6 && values.data() == p);
  values[5] = 7.0f;
  EXPECT(t.data<const float>()[5] == 7.0f);
  dlshare::span<const float> read = t.values<const float>();
  EXPECT(read[5] == 7.0f);

  EXPECT_THROWS(t.data<double>(), DLSHARE_ERR_INVALID_ARGUMENT);     // wrong dtype
  EXPECT_THROWS(t.data<int32_t>(), DLSHARE_ERR_INVALID_ARGUMENT);    // same size, wrong dtype
  EXPECT_THROWS(t.values<uint32_t>(), DLSHARE_ERR_INVALID_ARGUMENT);
  Tensor transposed = t.view({3, 2}, {1, 3});
  EXPECT(transposed.data<float>() == p);                              // data<T> is fine
  EXPECT_THROWS(transposed.values<float>(), DLSHARE_ERR_INVALID_ARGUMENT);  // not C order

  // A read-only view: const access only.
  const float frozen[2] = {1.0f, 2.0f};
  Tensor ro = dlshare::from_view(View(frozen, {2}), Options(Mode::share).allow_read_only());
  EXPECT(ro.is_read_only());
  EXPECT(ro.data<const float>() == frozen);
  EXPECT(ro.values<const float>()[1] == 2.0f);
  EXPECT_THROWS(ro.data<float>(), DLSHARE_ERR_READ_ONLY);
  EXPECT_THROWS(ro.values<float>(), DLSHARE_ERR_READ_ONLY);
}

void test_views_and_modes() {
  // A 3 x 4 row-major buffer owned by a shared_ptr handed to dlshare through keep_alive.
  int dropped = 0;
  auto buffer = std::make_shared<std::array<double, 12>>();
  for (int i = 0; i < 12; ++i) (*buffer)[i] = i;
  double *base = buffer->data();
  auto owner = std::shared_ptr<const void>(buffer, base);
  std::shared_ptr<Owner> counter = std::make_shared<Owner>(&dropped);

  View view(base, {3, 4});
  view.keep_alive(std::shared_ptr<const void>(counter, counter.get()));
  counter.reset();
  EXPECT(view.owner() != nullptr);
  const dlshare_view raw = view.raw();
  EXPECT(raw.data == base && raw.ndim == 2 && raw.shape[1] == 4 && raw.byte_strides == nullptr);
  EXPECT(raw.device.device_type == kDLCPU && raw.flags == 0 && raw.release == nullptr);

  Decision decision;
  Tensor shared = dlshare::from_view(view, Mode::share, &decision);
  EXPECT(decision.shared() && decision.reason() == DLSHARE_REASON_NONE);
  EXPECT(shared.data<double>() == base);
  shared.data<double>()[1] = -1.0;  // zero-copy: the write lands in the buffer
  EXPECT((*buffer)[1] == -1.0);
  EXPECT(dropped == 0);  // dlshare still holds the owner

  Tensor as_tensor = dlshare::from_view(view, Mode::share_or_copy, &decision);
  EXPECT(decision.shared() && as_tensor.shares_memory(shared));
  Tensor copied = dlshare::from_view(view, Mode::copy, &decision);
  EXPECT(!decision.shared() && decision.reason() == DLSHARE_REASON_COPY_REQUESTED);
  EXPECT(!copied.shares_memory(shared) && copied.values<double>()[1] == -1.0);
  uint64_t flags = 0;
  (void)copied.info(&flags);
  EXPECT((flags & DLPACK_FLAG_BITMASK_IS_COPIED) != 0);
  (void)shared.info(&flags);
  EXPECT((flags & DLPACK_FLAG_BITMASK_IS_COPIED) == 0);
  EXPECT(std::strstr(decision.detail(), "copy_requested") != nullptr);

  // dtype change: SHARE refuses as INVALID_ARGUMENT, SHARE_OR_COPY casts.
  Tensor as_float =
      dlshare::from_view(view, Options().dtype(dlshare::dtype_of<float>()), &decision);
  EXPECT(!decision.shared() && decision.reason() == DLSHARE_REASON_DTYPE_CHANGE);
  EXPECT(as_float.values<float>()[11] == 11.0f);
  EXPECT_THROWS(dlshare::from_view(view, Options(Mode::share).dtype(dlshare::dtype_of<float>())),
               DLSHARE_ERR_INVALID_ARGUMENT);

  // A reversed view (negative byte stride): SHARE refuses with the reason, the others copy.
  View reversed(base + 8, {3, 4}, {-4 * 8, 8});
  try {
    (void)dlshare::from_view(reversed, Mode::share);
    EXPECT(!"from_view(SHARE) accepted a negative stride");
  } catch (const dlshare::Error &e) {
    EXPECT(e.status() == DLSHARE_ERR_CANNOT_SHARE);
    EXPECT(e.reason() == DLSHARE_REASON_NEGATIVE_STRIDE);
    EXPECT(std::string(e.what()).find("negative") != std::string::npos);
  }
  Tensor flipped = dlshare::from_view(reversed, Mode::share_or_copy, &decision);
  EXPECT(!decision.shared() && decision.reason() == DLSHARE_REASON_NEGATIVE_STRIDE);
  EXPECT(flipped.values<double>()[0] == 8.0 && flipped.values<double>()[11] == 3.0);

  // A raw dlshare_view works as well (no release callback: the caller keeps the memory).
  Tensor from_raw = dlshare::from_view(raw, Mode::share, &decision);
  EXPECT(decision.shared() && from_raw.data_ptr() == base);
  from_raw.reset();

  // explain: the same answers without converting; a SHARE refusal is an answer.
  EXPECT(dlshare::explain(view, Mode::share).shared());
  EXPECT(dlshare::explain(raw, Mode::copy).reason() == DLSHARE_REASON_COPY_REQUESTED);
  const Decision refused = dlshare::explain(reversed, Mode::share);
  EXPECT(!refused.shared() && refused.reason() == DLSHARE_REASON_NEGATIVE_STRIDE);
  EXPECT(std::strlen(refused.detail()) > 0);
  EXPECT(dlshare::explain(shared, Mode::share).shared());
  EXPECT(shared.explain(Mode::copy).reason() == DLSHARE_REASON_COPY_REQUESTED);
  EXPECT(dlshare::explain(shared, Options().dtype(dlshare::dtype_of<int8_t>())).reason() ==
        DLSHARE_REASON_DTYPE_CHANGE);
  EXPECT_THROWS(dlshare::explain(View(base, {-3})), DLSHARE_ERR_INVALID_ARGUMENT);
  EXPECT_THROWS(dlshare::explain(shared, Options().dtype(DLDataType{99, 8, 1})),
               DLSHARE_ERR_UNSUPPORTED_DTYPE);

  // convert: share, cast, copy.
  Tensor same = shared.convert(Mode::share, &decision);
  EXPECT(decision.shared() && same.data_ptr() == shared.data_ptr());
  Tensor ints = shared.convert(Options(Mode::copy).dtype(dlshare::dtype_of<int64_t>()));
  EXPECT(ints.values<int64_t>()[1] == -1 && ints.values<int64_t>()[11] == 11);
  EXPECT_THROWS(shared.convert(Options(Mode::share).dtype(dlshare::dtype_of<float>())),
               DLSHARE_ERR_INVALID_ARGUMENT);

  // view: same memory, another layout; out of bounds is refused.
  Tensor column = shared.view({3}, {4}, 1);  // column 1
  EXPECT(column.data<double>() == base + 1 && column.strides()[0] == 4);
  Tensor c_order = shared.view({12});
  EXPECT(c_order.shares_memory(shared) && c_order.values<double>()[11] == 11.0);
  EXPECT_THROWS(shared.view({13}), DLSHARE_ERR_INVALID_ARGUMENT);
  EXPECT_THROWS(shared.view({3}, {4, 1}), DLSHARE_ERR_INVALID_ARGUMENT);

  // byte_swapped / read_only / device flags reach the library.
  View swapped(base, {3, 4});
  swapped.byte_swapped();
  EXPECT(swapped.raw().flags == DLSHARE_VIEW_BYTE_SWAPPED);
  EXPECT(dlshare::explain(swapped, Mode::share).reason() == DLSHARE_REASON_BYTE_ORDER);
  swapped.byte_swapped(false).read_only();
  EXPECT(swapped.raw().flags == DLSHARE_VIEW_READ_ONLY);
  EXPECT(dlshare::explain(swapped, Mode::share).reason() == DLSHARE_REASON_READ_ONLY);
  EXPECT(dlshare::explain(swapped, Options(Mode::share).allow_read_only()).shared());
  swapped.read_only(false).device(DLDevice{kDLCUDA, 0});
  EXPECT(swapped.raw().flags == 0 && swapped.raw().device.device_type == kDLCUDA);

  // An untyped view (float16 has no C++ type here).
  uint16_t halves[4] = {0x3c00, 0x4000, 0x4200, 0x4400};  // 1, 2, 3, 4
  Tensor h = dlshare::from_view(View(halves, dlshare::dtype_from_name("float16"), {4}),
                                Options().dtype(dlshare::dtype_of<float>()));
  EXPECT(h.values<float>()[3] == 4.0f);

  // A failed conversion drops the owner at once; the successful ones keep it until the last
  // tensor sharing the memory goes.
  EXPECT(dropped == 0);
  int dropped_on_failure = 0;
  View refused_view(base + 8, {3, 4}, {-32, 8});
  refused_view.keep_alive(std::make_shared<Owner>(&dropped_on_failure));
  EXPECT_THROWS(dlshare::from_view(refused_view, Mode::share), DLSHARE_ERR_CANNOT_SHARE);
  EXPECT(dropped_on_failure == 0);  // still held by refused_view itself
  refused_view = View(base, {1});
  EXPECT(dropped_on_failure == 1);

  view = View(base, {1});  // the View's own copy of the owner goes
  shared.reset();
  as_tensor.reset();
  same.reset();
  column.reset();
  EXPECT(dropped == 0);  // c_order still shares the memory
  c_order.reset();
  EXPECT(dropped == 1);  // release callback ran exactly once
}

void test_dlpack_export() {
  const std::size_t start = dlshare::live_tensor_count();
  Tensor t = Tensor::zeros(dlshare::dtype_of<int16_t>(), {2, 2});
  void *data = t.data_ptr();

  dlshare::ManagedTensorVersioned v = t.to_dlpack();
  EXPECT(v && v.get() != nullptr && v->version.major == 1);
  EXPECT((*v).dl_tensor.data == data && v->dl_tensor.strides != nullptr);
  dlshare::ManagedTensor legacy = t.to_dlpack_legacy();
  EXPECT(legacy && legacy->dl_tensor.data == data);
  t.reset();
  EXPECT(dlshare::live_tensor_count() == start + 1);  // the exports keep the memory alive
  static_cast<int16_t *>(v->dl_tensor.data)[3] = 5;

  // Move the owners around; only the last holder calls the deleter.
  dlshare::ManagedTensorVersioned moved = std::move(v);
  EXPECT(!v && moved);
  dlshare::ManagedTensorVersioned assigned;
  assigned = std::move(moved);
  EXPECT(!moved && assigned);
  DLManagedTensor *raw_legacy = legacy.release();
  EXPECT(!legacy);
  dlshare::ManagedTensor readopted(raw_legacy);
  readopted.reset();
  EXPECT(!readopted && dlshare::live_tensor_count() == start + 1);
  assigned.reset();
  EXPECT(dlshare::live_tensor_count() == start);

  // Read-only tensors export versioned (flagged), not legacy.
  const int32_t frozen[1] = {3};
  Tensor ro = dlshare::from_view(View(frozen, {1}), Options(Mode::share).allow_read_only());
  dlshare::ManagedTensorVersioned rov = ro.to_dlpack();
  EXPECT((rov->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0);
  EXPECT((rov->flags & DLPACK_FLAG_BITMASK_IS_COPIED) == 0);
  EXPECT_THROWS(ro.to_dlpack_legacy(), DLSHARE_ERR_READ_ONLY);
  // A copy for the consumer alone: IS_COPIED, writable, not the original memory.
  dlshare::ManagedTensorVersioned own = ro.to_dlpack_copy();
  EXPECT(own->flags == DLPACK_FLAG_BITMASK_IS_COPIED);
  EXPECT(own->dl_tensor.data != static_cast<const void *>(frozen));
  EXPECT(static_cast<int32_t *>(own->dl_tensor.data)[0] == 3);
  own.reset();
  EXPECT_THROWS(Tensor().to_dlpack_copy(), DLSHARE_ERR_INVALID_HANDLE);
  EXPECT_THROWS(Tensor().to_dlpack(), DLSHARE_ERR_INVALID_HANDLE);
}

void test_dlpack_import() {
  Versioned::deleted = 0;
  Legacy::deleted = 0;
  Decision decision;

  {  // owned wrapper, lvalue: emptied on success, deleter once when the tensor goes
    dlshare::ManagedTensorVersioned m(Versioned::make({1, 2, 3, 4, 5, 6}, 2, 3));
    void *data = m->dl_tensor.data;
    EXPECT(dlshare::explain(*m, Mode::share).shared());
    Tensor t = dlshare::from_dlpack(m, Mode::share, &decision);
    EXPECT(!m && decision.shared() && t.data_ptr() == data);
    EXPECT(t.shape()[1] == 3 && t.values<float>()[5] == 6.0f);
    Tensor other = t;
    t.reset();
    EXPECT(Versioned::deleted == 0);
    other.reset();
    EXPECT(Versioned::deleted == 1);
  }
  {  // owned wrapper, temporary
    Tensor t = dlshare::from_dlpack(
        dlshare::ManagedTensorVersioned(Versioned::make({1, 2}, 1, 2)), Mode::share);
    EXPECT(t.values<float>()[1] == 2.0f && Versioned::deleted == 1);
  }
  EXPECT(Versioned::deleted == 2);
  {  // COPY mode: the producer is freed before from_dlpack returns
    Tensor t = dlshare::from_dlpack(
        dlshare::ManagedTensorVersioned(Versioned::make({1, 2}, 1, 2)), Mode::copy, &decision);
    EXPECT(Versioned::deleted == 3 && !decision.shared());
    EXPECT(decision.reason() == DLSHARE_REASON_COPY_REQUESTED && t.values<float>()[0] == 1.0f);
  }
  {  // a failed import leaves the producer with the caller
    dlshare::ManagedTensorVersioned m(Versioned::make({1, 2}, 1, 2));
    m->version.major = 2;
    EXPECT_THROWS(dlshare::from_dlpack(m, Mode::share), DLSHARE_ERR_UNSUPPORTED_VERSION);
    EXPECT(m && Versioned::deleted == 3);
    m->dl_tensor.strides = nullptr;
    m->version.major = 1;
    m->flags = DLPACK_FLAG_BITMASK_READ_ONLY;
    EXPECT(dlshare::explain(*m, Mode::share).reason() == DLSHARE_REASON_READ_ONLY);
    try {
      (void)dlshare::from_dlpack(m, Mode::share);
      EXPECT(!"imported a read-only tensor in SHARE mode");
    } catch (const dlshare::Error &e) {
      EXPECT(e.status() == DLSHARE_ERR_CANNOT_SHARE && e.reason() == DLSHARE_REASON_READ_ONLY);
    }
    EXPECT(m && Versioned::deleted == 3);
    Tensor ro = dlshare::from_dlpack(m, Options(Mode::share).allow_read_only());
    EXPECT(!m && ro.is_read_only());
  }
  EXPECT(Versioned::deleted == 4);
  {  // a failed import of a temporary: the temporary's deleter runs when it is destroyed
    DLManagedTensorVersioned *raw = Versioned::make({1}, 1, 1);
    raw->dl_tensor.dtype = DLDataType{99, 8, 1};
    EXPECT_THROWS(dlshare::from_dlpack(dlshare::ManagedTensorVersioned(raw)),
                 DLSHARE_ERR_UNSUPPORTED_DTYPE);
    EXPECT(Versioned::deleted == 5);
  }
  {  // raw pointers: ownership only on success, as in C
    DLManagedTensorVersioned *raw = Versioned::make({1, 2, 3, 4}, 2, 2);
    raw->dl_tensor.byte_offset = sizeof(float);  // starts at the second element
    raw->dl_tensor.shape[1] = 1;
    Tensor t = dlshare::from_dlpack(raw, Mode::share);
    EXPECT(t.byte_offset() == sizeof(float));
    EXPECT(t.data<float>() == static_cast<float *>(t.data_ptr()));
    EXPECT(*t.data<float>() == 2.0f);
    EXPECT_THROWS(dlshare::from_dlpack(static_cast<DLManagedTensorVersioned *>(nullptr)),
                 DLSHARE_ERR_NULL_ARGUMENT);
  }
  EXPECT(Versioned::deleted == 6);

  {  // legacy: owned wrapper, raw pointer, explain, failure
    dlshare::ManagedTensor m(Legacy::make({1, 2, 3, 4}, 2, 2));
    EXPECT(dlshare::explain(*m, Mode::copy).reason() == DLSHARE_REASON_COPY_REQUESTED);
    Tensor t = dlshare::from_dlpack(m, Mode::share, &decision);
    EXPECT(!m && decision.shared() && !t.is_read_only());
    DLManagedTensor *raw = Legacy::make({5, 6}, 1, 2);
    Tensor u = dlshare::from_dlpack(raw, Mode::share_or_copy);
    EXPECT(u.values<float>()[1] == 6.0f);
    dlshare::ManagedTensor bad(Legacy::make({1}, 1, 1));
    bad->dl_tensor.ndim = -1;
    EXPECT_THROWS(dlshare::from_dlpack(bad), DLSHARE_ERR_INVALID_DLPACK);
    EXPECT(bad && Legacy::deleted == 0);  // still the caller's: its wrapper frees it below
  }
  EXPECT(Legacy::deleted == 3);  // t, u and bad, once each
}

}  // namespace

int main() {
  const std::size_t start = dlshare::live_tensor_count();
  group("names, dtypes and devices", test_names_and_dtypes);
  group("Error", test_error);
  group("Options and Decision", test_options_and_decision);
  group("span and Int64List", test_spans_and_lists);
  group("Tensor: copy = retain, move = steal, adopt/borrow/release/reset", test_tensor_lifetime);
  group("Tensor accessors, empty, zeros", test_tensor_accessors);
  group("data<T>() and values<T>(): dtype and read-only checks", test_typed_access);
  group("View, from_view, explain, convert, view: the three modes", test_views_and_modes);
  group("to_dlpack / to_dlpack_legacy: owning wrappers", test_dlpack_export);
  group("from_dlpack: versioned and legacy, deleters exactly once", test_dlpack_import);
  EXPECT(dlshare::live_tensor_count() == start);
  std::printf("all dlshare.hpp checks passed (C++%ld)\n",
              static_cast<long>(__cplusplus / 100 % 100));
  return 0;
}
