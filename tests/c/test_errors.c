/* Invalid handles and NULL arguments are refused with the documented status and a message,
   never a crash; status and reason names. */
#include <stdint.h>

#include "check.h"

/* The failure message mentions `word` (e.g. the name of the NULL argument). */
#define CHECK_MESSAGE_MENTIONS(word) CHECK(strstr(dlshare_last_error_message(), (word)) != NULL)

static int release_calls;
static void count_release(void *ctx) {
  (void)ctx;
  release_calls++;
}

static int deleter_calls;
static void count_deleter(DLManagedTensorVersioned *self) {
  (void)self;
  deleter_calls++;
}

static float matrix[2][3] = {{1, 2, 3}, {4, 5, 6}};
static const int64_t matrix_shape[2] = {2, 3};

static dlshare_view matrix_view(void) {
  dlshare_view v;
  memset(&v, 0, sizeof v);
  v.data = matrix;
  v.dtype.code = kDLFloat;
  v.dtype.bits = 32;
  v.dtype.lanes = 1;
  v.ndim = 2;
  v.shape = matrix_shape;
  v.device.device_type = kDLCPU;
  v.release = count_release;
  return v;
}

static DLManagedTensorVersioned matrix_managed(void) {
  DLManagedTensorVersioned m;
  memset(&m, 0, sizeof m);
  m.version.major = 1;
  m.deleter = count_deleter;
  m.dl_tensor.data = matrix;
  m.dl_tensor.device.device_type = kDLCPU;
  m.dl_tensor.ndim = 2;
  m.dl_tensor.dtype.code = kDLFloat;
  m.dl_tensor.dtype.bits = 32;
  m.dl_tensor.dtype.lanes = 1;
  m.dl_tensor.shape = (int64_t *)matrix_shape;
  return m;
}

/* Every function taking a handle refuses `h` with DLSHARE_ERR_INVALID_HANDLE, writing nothing. */
static void check_invalid_handle(dlshare_tensor *h, dlshare_tensor *live, const char *what) {
  int marker = 0;
  dlshare_tensor *const untouched = (dlshare_tensor *)&marker;
  dlshare_tensor *out = untouched;
  void *data = NULL;
  int32_t ndim = -7;
  const int64_t *dims = NULL;
  DLDataType dtype;
  DLDevice device;
  uint64_t u64 = 77;
  bool flag = false;
  DLTensor dl;
  DLManagedTensorVersioned *versioned = NULL;
  DLManagedTensor *legacy = NULL;
  dlshare_decision decision;

  CHECK_FAILS(dlshare_tensor_retain(h), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_data(h, &data), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_ndim(h, &ndim), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_shape(h, &dims), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_strides(h, &dims), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_dtype(h, &dtype), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_device(h, &device), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_byte_offset(h, &u64), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_nbytes(h, &u64), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_is_read_only(h, &flag), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_is_c_contiguous(h, &flag), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_is_f_contiguous(h, &flag), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_info(h, &dl, &u64), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_shares_memory(h, live, &flag), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_shares_memory(live, h, &flag), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_to_dlpack(h, &versioned), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_to_dlpack_legacy(h, &legacy), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_tensor_convert(h, NULL, &out, NULL), DLSHARE_ERR_INVALID_HANDLE);
  CHECK_FAILS(dlshare_explain_tensor(h, NULL, &decision), DLSHARE_ERR_INVALID_HANDLE);
  /* outputs are written only on success */
  CHECK(data == NULL && ndim == -7 && dims == NULL && u64 == 77 && !flag);
  CHECK(versioned == NULL && legacy == NULL && out == untouched);
  if (h != NULL) CHECK_FAILS(dlshare_tensor_release(h), DLSHARE_ERR_INVALID_HANDLE);
  printf("invalid handle refused everywhere: %s\n", what);
}

static void invalid_handles(void) {
  const size_t start = dlshare_live_tensor_count();
  dlshare_view view = matrix_view();
  dlshare_tensor *live = NULL, *released = NULL;
  long local = 0;
  void *data = NULL;

  CHECK_OK(dlshare_tensor_from_view(&view, NULL, &live, NULL));
  CHECK_OK(dlshare_tensor_from_view(&view, NULL, &released, NULL));
  CHECK_OK(dlshare_tensor_release(released));

  check_invalid_handle(NULL, live, "NULL");
  CHECK_MESSAGE_MENTIONS("NULL");
  check_invalid_handle((dlshare_tensor *)&local, live, "address of a local variable");
  check_invalid_handle((dlshare_tensor *)matrix, live, "address of a static array");
  check_invalid_handle(released, live, "already released");

  /* a stale handle does not alias a tensor created later in the reused slot */
  {
    dlshare_tensor *later = NULL;
    CHECK_OK(dlshare_tensor_from_view(&view, NULL, &later, NULL));
    CHECK_FAILS(dlshare_tensor_data(released, &data), DLSHARE_ERR_INVALID_HANDLE);
    CHECK_OK(dlshare_tensor_release(later));
  }

  /* the live handle was never disturbed, and NULL may always be released */
  CHECK_OK(dlshare_tensor_data(live, &data));
  CHECK(data == (void *)matrix);
  CHECK_OK(dlshare_tensor_release(live));
  CHECK_OK(dlshare_tensor_release(NULL));
  CHECK(release_calls == 3);
  CHECK(dlshare_live_tensor_count() == start);
}

static void null_arguments(void) {
  const size_t start = dlshare_live_tensor_count();
  dlshare_view view = matrix_view();
  DLManagedTensorVersioned managed = matrix_managed();
  DLManagedTensor legacy;
  const dlshare_options share = dlshare_options_init(DLSHARE_MODE_SHARE);
  const int64_t shape[1] = {4};
  DLDataType f32;
  DLDevice cpu;
  dlshare_tensor *t = NULL, *out = NULL;
  dlshare_decision decision;
  DLTensor dl;

  memset(&legacy, 0, sizeof legacy);
  legacy.dl_tensor = managed.dl_tensor;
  f32 = view.dtype;
  cpu = view.device;
  release_calls = 0;
  deleter_calls = 0;

  /* creation: NULL inputs and NULL outputs; no callback runs on failure */
  CHECK_FAILS(dlshare_tensor_from_view(NULL, &share, &t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_MESSAGE_MENTIONS("view");
  CHECK_FAILS(dlshare_tensor_from_view(&view, &share, NULL, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_MESSAGE_MENTIONS("tensor_out");
  CHECK_FAILS(dlshare_explain_view(NULL, &share, &decision), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_explain_view(&view, &share, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_from_dlpack(NULL, &share, &t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_MESSAGE_MENTIONS("managed");
  CHECK_FAILS(dlshare_tensor_from_dlpack(&managed, &share, NULL, NULL),
              DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_from_dlpack_legacy(NULL, &share, &t, NULL),
              DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_from_dlpack_legacy(&legacy, &share, NULL, NULL),
              DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_explain_dlpack(NULL, &share, &decision), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_explain_dlpack(&managed, &share, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_explain_dlpack_legacy(NULL, &share, &decision),
              DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_empty(f32, 1, shape, cpu, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_zeros(f32, 1, NULL, cpu, &t), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_MESSAGE_MENTIONS("shape");
  CHECK(t == NULL);
  CHECK(release_calls == 0 && deleter_calls == 0);

  /* accessors of a live tensor with NULL outputs */
  CHECK_OK(dlshare_tensor_zeros(f32, 1, shape, cpu, &t));
  CHECK_FAILS(dlshare_tensor_data(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_MESSAGE_MENTIONS("data_out");
  CHECK_FAILS(dlshare_tensor_ndim(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_shape(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_strides(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_dtype(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_device(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_byte_offset(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_nbytes(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_is_read_only(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_is_c_contiguous(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_is_f_contiguous(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_shares_memory(t, t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_info(t, NULL, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_to_dlpack(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_MESSAGE_MENTIONS("managed_out");
  CHECK_FAILS(dlshare_tensor_to_dlpack_legacy(t, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_tensor_convert(t, NULL, NULL, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_explain_tensor(t, NULL, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  /* optional outputs really are optional */
  CHECK_OK(dlshare_tensor_info(t, &dl, NULL));
  CHECK_OK(dlshare_tensor_convert(t, NULL, &out, NULL));
  CHECK_OK(dlshare_tensor_release(out));
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(dlshare_live_tensor_count() == start);
  printf("NULL arguments refused with DLSHARE_ERR_NULL_ARGUMENT and a message\n");
}

static void bad_values(void) {
  dlshare_view view = matrix_view();
  dlshare_options options = dlshare_options_init(DLSHARE_MODE_SHARE);
  const int64_t reversed_strides[2] = {-12, 4};
  dlshare_tensor *t = NULL;
  dlshare_decision decision;

  release_calls = 0;
  options.mode = 42;
  CHECK_FAILS(dlshare_tensor_from_view(&view, &options, &t, NULL),
              DLSHARE_ERR_INVALID_ARGUMENT);
  options.mode = DLSHARE_MODE_SHARE;
  view.data = matrix[1];
  view.byte_strides = reversed_strides;
  CHECK_FAILS(dlshare_tensor_from_view(&view, &options, &t, &decision),
              DLSHARE_ERR_CANNOT_SHARE);
  CHECK(decision.reason == DLSHARE_REASON_NEGATIVE_STRIDE);
  CHECK_FAILS(dlshare_explain_view(&view, &options, &decision), DLSHARE_ERR_CANNOT_SHARE);
  CHECK(!decision.shared && decision.reason == DLSHARE_REASON_NEGATIVE_STRIDE);
  CHECK(t == NULL);
  CHECK(release_calls == 0);
  printf("bad values refused: invalid mode, negative stride in SHARE mode\n");
}

static void names(void) {
  static const char *const STATUS_NAMES[] = {
      "DLSHARE_OK",
      "DLSHARE_ERR_NULL_ARGUMENT",
      "DLSHARE_ERR_INVALID_HANDLE",
      "DLSHARE_ERR_INVALID_ARGUMENT",
      "DLSHARE_ERR_INVALID_DLPACK",
      "DLSHARE_ERR_UNSUPPORTED_VERSION",
      "DLSHARE_ERR_UNSUPPORTED_DTYPE",
      "DLSHARE_ERR_UNSUPPORTED_DEVICE",
      "DLSHARE_ERR_CANNOT_SHARE",
      "DLSHARE_ERR_READ_ONLY",
      "DLSHARE_ERR_OVERFLOW",
      "DLSHARE_ERR_OUT_OF_MEMORY",
      "DLSHARE_ERR_DEVICE_UNAVAILABLE",
      "DLSHARE_ERR_CUDA",
      "DLSHARE_ERR_PANIC",
  };
  static const char *const REASON_NAMES[] = {
      "none",       "read_only",    "negative_stride", "stride_not_item_multiple", "byte_order",
      "misaligned", "dtype_change", "device_change",   "copy_requested",
  };
  int32_t i;
  CHECK(DLSHARE_ERR_PANIC == 14); /* the table below covers every code */
  for (i = 0; i <= DLSHARE_ERR_PANIC; i++) {
    CHECK(strcmp(dlshare_status_name(i), STATUS_NAMES[i]) == 0);
  }
  CHECK(strcmp(dlshare_status_name(-1), "DLSHARE_UNKNOWN_STATUS") == 0);
  CHECK(strcmp(dlshare_status_name(DLSHARE_ERR_PANIC + 1), "DLSHARE_UNKNOWN_STATUS") == 0);
  CHECK(DLSHARE_REASON_COPY_REQUESTED == 8);
  for (i = 0; i <= DLSHARE_REASON_COPY_REQUESTED; i++) {
    CHECK(strcmp(dlshare_reason_name(i), REASON_NAMES[i]) == 0);
  }
  CHECK(strcmp(dlshare_reason_name(99), "unknown") == 0);
  printf("status and reason names ok\n");
}

int main(void) {
  invalid_handles();
  null_arguments();
  bad_values();
  names();
  return 0;
}
