/*
 * dlshare.hpp: header-only C++17 wrapper over the dlshare C API (dlshare.h).
 *
 * - dlshare::Tensor owns one handle: copying retains it, moving steals it, the destructor
 *   releases it.
 * - Every failing C call throws dlshare::Error, which carries the status, its name, the
 *   library's message and, for DLSHARE_ERR_CANNOT_SHARE, the reason.
 * - DLPack tensors travel as owning wrappers (ManagedTensorVersioned, ManagedTensor) that call
 *   the producer's deleter when destroyed, unless released.
 * - Shape and strides come back as spans (std::span under C++20, a minimal equivalent under
 *   C++17); typed access (data<T>(), values<T>()) checks the dtype and the read-only flag.
 *
 * Nothing here decides anything that the C API decides: conversions, copies, explanations,
 * layout checks and error messages all come from libdlshare. Link dlshare::dlshare (CMake) or
 * `pkg-config --cflags --libs dlshare`.
 */
#ifndef DLSHARE_HPP
#define DLSHARE_HPP

#include <cstddef>
#include <cstdint>
#include <complex>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlshare.h"

#if defined(__cplusplus) && __cplusplus >= 202002L && defined(__has_include)
#if __has_include(<span>)
#include <span>
#define DLSHARE_HPP_STD_SPAN 1
#endif
#endif

namespace dlshare {

// ---- spans --------------------------------------------------------------------------------

#ifdef DLSHARE_HPP_STD_SPAN
/// A borrowed run of elements: std::span under C++20.
template <class T>
using span = std::span<T>;
#else
/// A borrowed run of elements: the part of std::span this wrapper needs, for C++17.
template <class T>
class span {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using pointer = T *;
  using reference = T &;
  using iterator = T *;

  constexpr span() noexcept = default;
  constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}

  constexpr T *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }
  constexpr T &front() const noexcept { return data_[0]; }
  constexpr T &back() const noexcept { return data_[size_ - 1]; }
  constexpr T *begin() const noexcept { return data_; }
  constexpr T *end() const noexcept { return data_ + size_; }

 private:
  T *data_ = nullptr;
  std::size_t size_ = 0;
};
#endif

/// A borrowed list of int64_t (extents, strides) for arguments: a braced list, a std::vector,
/// a std::array, a span, or a pointer and a count. It must outlive the call it is passed to.
class Int64List {
 public:
  Int64List() noexcept = default;
  Int64List(std::initializer_list<int64_t> values) noexcept
      : data_(std::data(values)), size_(values.size()) {}
  Int64List(const int64_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <class C, class = std::enable_if_t<std::is_convertible_v<
                         decltype(std::data(std::declval<const C &>())), const int64_t *>>>
  Int64List(const C &values) noexcept  // NOLINT: implicit on purpose, as std::span's
      : data_(std::data(values)), size_(std::size(values)) {}

  const int64_t *data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

 private:
  const int64_t *data_ = nullptr;
  std::size_t size_ = 0;
};

// ---- errors -------------------------------------------------------------------------------

/// A failed dlshare call: the C status, its name and the library's message (what() gives
/// "DLSHARE_ERR_...: message"). For DLSHARE_ERR_CANNOT_SHARE, reason() names the obstacle.
class Error : public std::runtime_error {
 public:
  Error(dlshare_status status, const std::string &message,
        dlshare_reason reason = DLSHARE_REASON_NONE)
      : std::runtime_error(std::string(dlshare_status_name(status)) + ": " + message),
        status_(status),
        reason_(reason),
        message_(std::make_shared<const std::string>(message)) {}

  dlshare_status status() const noexcept { return status_; }
  /// "DLSHARE_ERR_READ_ONLY", ...
  const char *status_name() const noexcept { return dlshare_status_name(status_); }
  /// The library's message alone (what() without the status name).
  const std::string &message() const noexcept { return *message_; }
  /// The obstacle when SHARE mode refused (DLSHARE_REASON_NONE for other failures).
  dlshare_reason reason() const noexcept { return reason_; }
  const char *reason_name() const noexcept { return dlshare_reason_name(reason_); }

 private:
  dlshare_status status_;
  dlshare_reason reason_;
  std::shared_ptr<const std::string> message_;  // shared: copying an exception must not throw
};

namespace detail {

/// Throws the calling thread's last dlshare error unless `status` is DLSHARE_OK.
inline void check(dlshare_status status, const dlshare_decision *decision = nullptr) {
  if (status == DLSHARE_OK) return;
  const dlshare_reason reason = status == DLSHARE_ERR_CANNOT_SHARE && decision != nullptr
                                    ? decision->reason
                                    : DLSHARE_REASON_NONE;
  throw Error(status, dlshare_last_error_message(), reason);
}

inline int32_t checked_ndim(std::size_t size) {
  if (size > static_cast<std::size_t>(INT32_MAX)) {
    throw Error(DLSHARE_ERR_INVALID_ARGUMENT, "too many dimensions");
  }
  return static_cast<int32_t>(size);
}

template <class T>
struct is_complex : std::false_type {};
template <class T>
struct is_complex<std::complex<T>> : std::true_type {};

template <class T>
inline constexpr bool always_false = false;

constexpr DLDataType make_dtype(DLDataTypeCode code, std::size_t bits) noexcept {
  DLDataType dtype{};
  dtype.code = static_cast<uint8_t>(code);
  dtype.bits = static_cast<uint8_t>(bits);
  dtype.lanes = 1;
  return dtype;
}

}  // namespace detail

// ---- names, dtypes, devices ---------------------------------------------------------------

/// The library's version, "MAJOR.MINOR.PATCH".
inline const char *version() noexcept { return dlshare_version(); }
/// Tensor storages alive in the library (for leak checks).
inline std::size_t live_tensor_count() noexcept { return dlshare_live_tensor_count(); }
/// "DLSHARE_ERR_READ_ONLY", ...
inline const char *status_name(dlshare_status status) noexcept {
  return dlshare_status_name(static_cast<int32_t>(status));
}
/// "negative_stride", ...
inline const char *reason_name(dlshare_reason reason) noexcept {
  return dlshare_reason_name(static_cast<int32_t>(reason));
}

/// The DLPack dtype of a C++ element type: bool, the integer types, float, double,
/// std::complex<float> and std::complex<double> (cv-qualifiers ignored).
template <class T>
constexpr DLDataType dtype_of() noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, bool>) {
    return detail::make_dtype(kDLBool, 8);
  } else if constexpr (std::is_integral_v<U>) {
    return detail::make_dtype(std::is_signed_v<U> ? kDLInt : kDLUInt, sizeof(U) * 8);
  } else if constexpr (std::is_same_v<U, float> || std::is_same_v<U, double>) {
    return detail::make_dtype(kDLFloat, sizeof(U) * 8);
  } else if constexpr (detail::is_complex<U>::value &&
                       (std::is_same_v<typename U::value_type, float> ||
                        std::is_same_v<typename U::value_type, double>)) {
    return detail::make_dtype(kDLComplex, sizeof(U) * 8);
  } else {
    static_assert(detail::always_false<T>, "no DLPack dtype for this C++ type");
  }
}

/// Whether two dtypes are the same (code, bits and lanes).
constexpr bool same_dtype(DLDataType a, DLDataType b) noexcept {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

/// Parses "float32", "int64", "bfloat16", "complex128" ...
inline DLDataType dtype_from_name(const std::string &name) {
  DLDataType dtype{};
  detail::check(dlshare_dtype_from_name(name.c_str(), &dtype));
  return dtype;
}

/// "float32", "float8_e4m3fn", "int32x4" ...
inline std::string dtype_name(DLDataType dtype) {
  char buffer[64];
  detail::check(dlshare_dtype_name(dtype, buffer, sizeof buffer));
  return buffer;
}

/// The CPU device.
constexpr DLDevice cpu() noexcept {
  DLDevice device{};
  device.device_type = kDLCPU;
  device.device_id = 0;
  return device;
}

/// Parses "cpu", "cuda", "cuda:1", "cuda_host" ...
inline DLDevice device_from_name(const std::string &name) {
  DLDevice device{};
  detail::check(dlshare_device_from_name(name.c_str(), &device));
  return device;
}

/// "cpu", "cuda:0" ...
inline std::string device_name(DLDevice device) {
  char buffer[64];
  detail::check(dlshare_device_name(device, buffer, sizeof buffer));
  return buffer;
}

// ---- options and decisions ----------------------------------------------------------------

/// The three conversion modes, as PyTorch users know them.
enum class Mode : int32_t {
  share = DLSHARE_MODE_SHARE,                  ///< torch.from_numpy: share or throw
  share_or_copy = DLSHARE_MODE_SHARE_OR_COPY,  ///< torch.as_tensor: share when possible
  copy = DLSHARE_MODE_COPY,                    ///< torch.tensor: always copy
};

/// What a conversion should produce: a mode, and optionally a dtype, a device, permission to
/// share read-only memory, and permission to drop imaginary parts. Implicit from a Mode.
class Options {
 public:
  Options(Mode mode = Mode::share_or_copy) noexcept  // NOLINT: implicit on purpose
      : raw_(dlshare_options_init(static_cast<dlshare_mode>(mode))) {}

  Options &dtype(DLDataType dtype) noexcept {
    raw_.has_dtype = true;
    raw_.dtype = dtype;
    return *this;
  }
  Options &device(DLDevice device) noexcept {
    raw_.has_device = true;
    raw_.device = device;
    return *this;
  }
  Options &allow_read_only(bool allow = true) noexcept {
    raw_.allow_read_only = allow;
    return *this;
  }
  Options &allow_complex_to_real(bool allow = true) noexcept {
    raw_.allow_complex_to_real = allow;
    return *this;
  }

  Mode mode() const noexcept { return static_cast<Mode>(raw_.mode); }
  const dlshare_options &raw() const noexcept { return raw_; }
  dlshare_options &raw() noexcept { return raw_; }

 private:
  dlshare_options raw_;
};

/// What a conversion did (or would do): shared or copied, why, and the library's sentence.
class Decision {
 public:
  Decision() noexcept : raw_() {}
  explicit Decision(const dlshare_decision &raw) noexcept : raw_(raw) {}

  bool shared() const noexcept { return raw_.shared; }
  dlshare_reason reason() const noexcept { return raw_.reason; }
  /// "none", "negative_stride", "copy_requested" ...
  const char *reason_name() const noexcept { return dlshare_reason_name(raw_.reason); }
  /// e.g. "copied (negative_stride): axis 0 has a negative stride"
  const char *detail() const noexcept { return raw_.detail; }
  const dlshare_decision &raw() const noexcept { return raw_; }

 private:
  dlshare_decision raw_;
};

// ---- owning DLPack pointers ---------------------------------------------------------------

/// Owns a DLPack managed tensor: the destructor (or reset()) calls its deleter once; release()
/// hands the pointer on without calling it (to a consumer that will). Move-only.
template <class Managed>
class ManagedPtr {
 public:
  ManagedPtr() noexcept = default;
  /// Takes ownership of `managed` (may be NULL).
  explicit ManagedPtr(Managed *managed) noexcept : ptr_(managed) {}
  ManagedPtr(ManagedPtr &&other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  ManagedPtr &operator=(ManagedPtr &&other) noexcept {
    reset(std::exchange(other.ptr_, nullptr));
    return *this;
  }
  ManagedPtr(const ManagedPtr &) = delete;
  ManagedPtr &operator=(const ManagedPtr &) = delete;
  ~ManagedPtr() { reset(); }

  Managed *get() const noexcept { return ptr_; }
  Managed *operator->() const noexcept { return ptr_; }
  Managed &operator*() const noexcept { return *ptr_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  /// Gives up ownership without calling the deleter; the caller (or its consumer) owns it.
  [[nodiscard]] Managed *release() noexcept { return std::exchange(ptr_, nullptr); }
  /// Calls the deleter of the held tensor (if any; a NULL deleter is skipped), then holds
  /// `managed`.
  void reset(Managed *managed = nullptr) noexcept {
    Managed *old = std::exchange(ptr_, managed);
    if (old != nullptr && old->deleter != nullptr) old->deleter(old);
  }

 private:
  Managed *ptr_ = nullptr;
};

/// An owned DLPack 1.x managed tensor.
using ManagedTensorVersioned = ManagedPtr<DLManagedTensorVersioned>;
/// An owned legacy (unversioned) DLPack managed tensor.
using ManagedTensor = ManagedPtr<DLManagedTensor>;

// ---- views of foreign memory --------------------------------------------------------------

/// Foreign memory described NumPy-style, for from_view() and explain(): data, dtype, shape,
/// byte strides (empty: C-contiguous), device, flags and an optional owner that dlshare keeps
/// alive for as long as a tensor shares the memory. The View copies shape and strides.
class View {
 public:
  /// `shape.size()` elements of T at `data` (read-only when T is const).
  template <class T>
  View(T *data, Int64List shape, Int64List byte_strides = {})
      : View(const_cast<std::remove_cv_t<T> *>(data), dtype_of<T>(), shape, byte_strides) {
    if constexpr (std::is_const_v<T>) read_only();
  }
  /// Untyped memory of `dtype` (float16, bfloat16 ...).
  View(void *data, DLDataType dtype, Int64List shape, Int64List byte_strides = {})
      : data_(data),
        dtype_(dtype),
        shape_(shape.data(), shape.data() + shape.size()),
        byte_strides_(byte_strides.data(), byte_strides.data() + byte_strides.size()) {}

  View &device(DLDevice device) noexcept {
    device_ = device;
    return *this;
  }
  View &read_only(bool on = true) noexcept { return flag(DLSHARE_VIEW_READ_ONLY, on); }
  View &byte_swapped(bool on = true) noexcept { return flag(DLSHARE_VIEW_BYTE_SWAPPED, on); }
  /// dlshare holds a copy of `owner` while any tensor shares the memory (dropped right after
  /// a copy, or at once when the conversion fails).
  View &keep_alive(std::shared_ptr<const void> owner) noexcept {
    owner_ = std::move(owner);
    return *this;
  }

  const std::shared_ptr<const void> &owner() const noexcept { return owner_; }

  /// The C view (no release callback); valid while this View lives.
  dlshare_view raw() const noexcept {
    dlshare_view view{};
    view.data = data_;
    view.dtype = dtype_;
    view.ndim = static_cast<int32_t>(shape_.size());
    view.shape = shape_.data();
    view.byte_strides = byte_strides_.empty() ? nullptr : byte_strides_.data();
    view.device = device_;
    view.flags = flags_;
    return view;
  }

 private:
  View &flag(uint32_t bit, bool on) noexcept {
    flags_ = on ? (flags_ | bit) : (flags_ & ~bit);
    return *this;
  }

  void *data_;
  DLDataType dtype_;
  std::vector<int64_t> shape_;
  std::vector<int64_t> byte_strides_;
  DLDevice device_ = cpu();
  uint32_t flags_ = 0;
  std::shared_ptr<const void> owner_;
};

// ---- the tensor ---------------------------------------------------------------------------

/// One owner of a dlshare tensor handle. Copying adds an owner (dlshare_tensor_retain), moving
/// transfers it, destruction releases it. A default-constructed or moved-from Tensor holds no
/// handle: its accessors throw Error(DLSHARE_ERR_INVALID_HANDLE), as the C API answers.
class Tensor {
 public:
  Tensor() noexcept = default;
  Tensor(const Tensor &other) : raw_(other.raw_) {
    if (raw_ != nullptr) detail::check(dlshare_tensor_retain(raw_));
  }
  Tensor(Tensor &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Tensor &operator=(Tensor other) noexcept {
    std::swap(raw_, other.raw_);
    return *this;
  }
  ~Tensor() { reset(); }

  /// Takes over one owner of `raw` (a handle a C function returned to you).
  [[nodiscard]] static Tensor adopt(dlshare_tensor *raw) noexcept { return Tensor(raw); }
  /// Adds an owner to `raw`, which stays the caller's.
  [[nodiscard]] static Tensor borrow(dlshare_tensor *raw) {
    detail::check(dlshare_tensor_retain(raw));
    return Tensor(raw);
  }

  /// A C-contiguous tensor with uninitialised contents (256-byte aligned).
  [[nodiscard]] static Tensor empty(DLDataType dtype, Int64List shape, DLDevice device = cpu()) {
    dlshare_tensor *raw = nullptr;
    detail::check(dlshare_tensor_empty(dtype, detail::checked_ndim(shape.size()),
                                       shape.data(), device, &raw));
    return Tensor(raw);
  }
  /// As empty(), filled with zeros.
  [[nodiscard]] static Tensor zeros(DLDataType dtype, Int64List shape, DLDevice device = cpu()) {
    dlshare_tensor *raw = nullptr;
    detail::check(dlshare_tensor_zeros(dtype, detail::checked_ndim(shape.size()),
                                       shape.data(), device, &raw));
    return Tensor(raw);
  }

  dlshare_tensor *get() const noexcept { return raw_; }
  explicit operator bool() const noexcept { return raw_ != nullptr; }
  /// Gives up this owner without releasing it: the caller releases the returned handle.
  [[nodiscard]] dlshare_tensor *release() noexcept { return std::exchange(raw_, nullptr); }
  /// Releases this owner now (the Tensor is then empty).
  void reset() noexcept {
    // A Tensor holds only live handles (or none), so the status can only be DLSHARE_OK.
    if (raw_ != nullptr) (void)dlshare_tensor_release(std::exchange(raw_, nullptr));
  }

  /// The DLTensor view of the tensor (shape and strides point into the tensor) and its DLPack
  /// flags (READ_ONLY, IS_COPIED ...).
  DLTensor info(uint64_t *flags = nullptr) const {
    DLTensor dl{};
    detail::check(dlshare_tensor_info(raw_, &dl, flags));
    return dl;
  }
  int32_t ndim() const { return info().ndim; }
  /// Extents, valid while the tensor lives.
  span<const int64_t> shape() const {
    const DLTensor dl = info();
    return {dl.shape, static_cast<std::size_t>(dl.ndim)};
  }
  /// Strides in elements, valid while the tensor lives.
  span<const int64_t> strides() const {
    const DLTensor dl = info();
    return {dl.strides, static_cast<std::size_t>(dl.ndim)};
  }
  DLDataType dtype() const { return info().dtype; }
  DLDevice device() const { return info().device; }
  uint64_t byte_offset() const {
    uint64_t offset = 0;
    detail::check(dlshare_tensor_byte_offset(raw_, &offset));
    return offset;
  }
  uint64_t nbytes() const {
    uint64_t n = 0;
    detail::check(dlshare_tensor_nbytes(raw_, &n));
    return n;
  }
  bool is_read_only() const { return flag(dlshare_tensor_is_read_only); }
  bool is_c_contiguous() const { return flag(dlshare_tensor_is_c_contiguous); }
  bool is_f_contiguous() const { return flag(dlshare_tensor_is_f_contiguous); }
  /// Whether writes through one tensor can be seen through the other.
  bool shares_memory(const Tensor &other) const {
    bool shared = false;
    detail::check(dlshare_tensor_shares_memory(raw_, other.raw_, &shared));
    return shared;
  }

  /// Address of the first element, untyped.
  void *data_ptr() const {
    void *data = nullptr;
    detail::check(dlshare_tensor_data(raw_, &data));
    return data;
  }
  /// Address of the first element as T: throws Error(DLSHARE_ERR_INVALID_ARGUMENT) when the
  /// dtype is not T's, and Error(DLSHARE_ERR_READ_ONLY) for a non-const T on a read-only
  /// tensor (ask for data<const T>()).
  template <class T>
  T *data() const {
    uint64_t flags = 0;
    const DLTensor dl = info(&flags);
    if (!same_dtype(dl.dtype, dtype_of<T>())) {
      throw Error(DLSHARE_ERR_INVALID_ARGUMENT, "data<" + dtype_name(dtype_of<T>()) +
                                                    ">() on a " + dtype_name(dl.dtype) +
                                                    " tensor");
    }
    if constexpr (!std::is_const_v<T>) {
      if ((flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0) {
        throw Error(DLSHARE_ERR_READ_ONLY,
                    "mutable data<" + dtype_name(dtype_of<T>()) +
                        ">() on a read-only tensor; use data<const T>()");
      }
    }
    return static_cast<T *>(static_cast<void *>(static_cast<char *>(dl.data) + dl.byte_offset));
  }
  /// All elements in memory order, as checked by data<T>(); the tensor must be C-contiguous
  /// (else Error(DLSHARE_ERR_INVALID_ARGUMENT): convert() it first).
  template <class T>
  span<T> values() const {
    T *first = data<T>();
    if (!is_c_contiguous()) {
      throw Error(DLSHARE_ERR_INVALID_ARGUMENT,
                  "values<T>() needs a C-contiguous tensor; copy it with "
                  "convert(Mode::copy) first");
    }
    return {first, static_cast<std::size_t>(nbytes() / sizeof(T))};
  }

  /// A new tensor per `options`: this one's memory when allowed, else a copy (decision says).
  [[nodiscard]] Tensor convert(const Options &options, Decision *decision = nullptr) const {
    dlshare_tensor *out = nullptr;
    dlshare_decision d{};
    detail::check(dlshare_tensor_convert(raw_, &options.raw(), &out, &d), &d);
    if (decision != nullptr) *decision = Decision(d);
    return Tensor(out);
  }
  /// What convert(options) would do, converting nothing (a SHARE refusal is an answer, not an
  /// exception).
  Decision explain(const Options &options) const;

  /// Another view of the same memory: `shape`, element `strides` (empty: C-contiguous) and the
  /// element offset of its first element.
  [[nodiscard]] Tensor view(Int64List shape, Int64List strides = {}, int64_t offset = 0) const {
    if (!strides.empty() && strides.size() != shape.size()) {
      throw Error(DLSHARE_ERR_INVALID_ARGUMENT, "view(): strides and shape differ in length");
    }
    dlshare_tensor *out = nullptr;
    detail::check(dlshare_tensor_view(raw_, detail::checked_ndim(shape.size()), shape.data(),
                                      strides.empty() ? nullptr : strides.data(), offset, &out));
    return Tensor(out);
  }

  /// Exports as a DLPack 1.x managed tensor sharing this memory; hand it to a consumer with
  /// release(), or let the wrapper call its deleter.
  [[nodiscard]] ManagedTensorVersioned to_dlpack() const {
    DLManagedTensorVersioned *managed = nullptr;
    detail::check(dlshare_tensor_to_dlpack(raw_, &managed));
    return ManagedTensorVersioned(managed);
  }
  /// Exports a fresh C-contiguous copy as a DLPack 1.x managed tensor flagged IS_COPIED: no
  /// dlshare handle refers to it, so its consumer owns it alone (and may write it).
  [[nodiscard]] ManagedTensorVersioned to_dlpack_copy() const {
    DLManagedTensorVersioned *managed = nullptr;
    detail::check(dlshare_tensor_to_dlpack_copy(raw_, &managed));
    return ManagedTensorVersioned(managed);
  }
  /// Exports as a legacy DLPack managed tensor (refused for read-only tensors).
  [[nodiscard]] ManagedTensor to_dlpack_legacy() const {
    DLManagedTensor *managed = nullptr;
    detail::check(dlshare_tensor_to_dlpack_legacy(raw_, &managed));
    return ManagedTensor(managed);
  }

 private:
  explicit Tensor(dlshare_tensor *raw) noexcept : raw_(raw) {}

  bool flag(dlshare_status (*query)(const dlshare_tensor *, bool *)) const {
    bool value = false;
    detail::check(query(raw_, &value));
    return value;
  }

  dlshare_tensor *raw_ = nullptr;
};

namespace detail {

/// Runs a call that answers with a decision; a SHARE refusal is returned, not thrown.
template <class Call>
Decision explaining(Call call) {
  dlshare_decision d{};
  const dlshare_status status = call(&d);
  if (status != DLSHARE_ERR_CANNOT_SHARE) check(status);
  return Decision(d);
}

// The release callback of views with an owner: drops dlshare's copy of the owner.
inline void drop_owner(void *ctx) { delete static_cast<std::shared_ptr<const void> *>(ctx); }

}  // namespace detail

inline Decision Tensor::explain(const Options &options) const {
  return detail::explaining(
      [&](dlshare_decision *d) { return dlshare_explain_tensor(raw_, &options.raw(), d); });
}

// ---- conversions --------------------------------------------------------------------------

/// Wraps foreign memory as a tensor per `options`. On success the release callback of `view`
/// (if any) runs exactly once, when no tensor shares the memory any more.
[[nodiscard]] inline Tensor from_view(const dlshare_view &view, const Options &options = {},
                                      Decision *decision = nullptr) {
  dlshare_tensor *out = nullptr;
  dlshare_decision d{};
  detail::check(dlshare_tensor_from_view(&view, &options.raw(), &out, &d), &d);
  if (decision != nullptr) *decision = Decision(d);
  return Tensor::adopt(out);
}

/// Wraps the memory of `view` per `options`; its owner (keep_alive) lives as long as a tensor
/// shares the memory.
[[nodiscard]] inline Tensor from_view(const View &view, const Options &options = {},
                                      Decision *decision = nullptr) {
  dlshare_view raw = view.raw();
  std::unique_ptr<std::shared_ptr<const void>> owner;
  if (view.owner()) {
    owner = std::make_unique<std::shared_ptr<const void>>(view.owner());
    raw.release = &detail::drop_owner;
    raw.release_ctx = owner.get();
  }
  Tensor tensor = from_view(raw, options, decision);
  // Success: dlshare now calls drop_owner exactly once (it may already have, after a copy).
  (void)owner.release();
  return tensor;
}

/// What from_view(view, options) would do, converting nothing.
inline Decision explain(const dlshare_view &view, const Options &options = {}) {
  return detail::explaining(
      [&](dlshare_decision *d) { return dlshare_explain_view(&view, &options.raw(), d); });
}
inline Decision explain(const View &view, const Options &options = {}) {
  const dlshare_view raw = view.raw();
  return explain(raw, options);
}

/// Imports a raw DLPack 1.x managed tensor; dlshare owns it only when this returns (on an
/// exception it is still the caller's).
[[nodiscard]] inline Tensor from_dlpack(DLManagedTensorVersioned *managed,
                                        const Options &options = {},
                                        Decision *decision = nullptr) {
  dlshare_tensor *out = nullptr;
  dlshare_decision d{};
  detail::check(dlshare_tensor_from_dlpack(managed, &options.raw(), &out, &d), &d);
  if (decision != nullptr) *decision = Decision(d);
  return Tensor::adopt(out);
}
/// Imports a raw legacy managed tensor; as above.
[[nodiscard]] inline Tensor from_dlpack(DLManagedTensor *managed, const Options &options = {},
                                        Decision *decision = nullptr) {
  dlshare_tensor *out = nullptr;
  dlshare_decision d{};
  detail::check(dlshare_tensor_from_dlpack_legacy(managed, &options.raw(), &out, &d), &d);
  if (decision != nullptr) *decision = Decision(d);
  return Tensor::adopt(out);
}
/// Imports an owned managed tensor: on success `managed` is emptied (dlshare owns it now); on
/// an exception it still owns the tensor.
template <class Managed>
[[nodiscard]] Tensor from_dlpack(ManagedPtr<Managed> &managed, const Options &options = {},
                                 Decision *decision = nullptr) {
  Tensor tensor = from_dlpack(managed.get(), options, decision);
  (void)managed.release();
  return tensor;
}
/// As above, for a temporary: on an exception its deleter runs when it is destroyed.
template <class Managed>
[[nodiscard]] Tensor from_dlpack(ManagedPtr<Managed> &&managed, const Options &options = {},
                                 Decision *decision = nullptr) {
  return from_dlpack(managed, options, decision);
}

/// What from_dlpack(managed, options) would do, taking nothing.
inline Decision explain(const DLManagedTensorVersioned &managed, const Options &options = {}) {
  return detail::explaining(
      [&](dlshare_decision *d) { return dlshare_explain_dlpack(&managed, &options.raw(), d); });
}
inline Decision explain(const DLManagedTensor &managed, const Options &options = {}) {
  return detail::explaining([&](dlshare_decision *d) {
    return dlshare_explain_dlpack_legacy(&managed, &options.raw(), d);
  });
}
/// What converting `tensor` per `options` would do.
inline Decision explain(const Tensor &tensor, const Options &options = {}) {
  return tensor.explain(options);
}

}  // namespace dlshare

#endif  // DLSHARE_HPP
