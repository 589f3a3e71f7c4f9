/* Round trips through the C API: foreign buffer -> dlshare tensor -> DLPack (versioned and
   legacy) -> dlshare tensor, for every dtype, always the same memory; and the ownership rules
   for a producer's managed tensor (deleter exactly once, untouched on failed imports). */
#include <stdint.h>

#include "check.h"

typedef struct {
  const char *name;
  uint8_t code;
  uint8_t bits;
} dtype_case;

static const dtype_case DTYPES[] = {
    {"bool", kDLBool, 8},         {"int8", kDLInt, 8},          {"int16", kDLInt, 16},
    {"int32", kDLInt, 32},        {"int64", kDLInt, 64},        {"uint8", kDLUInt, 8},
    {"uint16", kDLUInt, 16},      {"uint32", kDLUInt, 32},      {"uint64", kDLUInt, 64},
    {"float16", kDLFloat, 16},    {"bfloat16", kDLBfloat, 16},  {"float32", kDLFloat, 32},
    {"float64", kDLFloat, 64},    {"complex64", kDLComplex, 64}, {"complex128", kDLComplex, 128},
};

static DLDataType make_dtype(uint8_t code, uint8_t bits) {
  DLDataType dt;
  dt.code = code;
  dt.bits = bits;
  dt.lanes = 1;
  return dt;
}

static int same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

static int release_calls;
static void count_release(void *ctx) {
  CHECK(ctx == &release_calls);
  release_calls++;
}

/* The tensor behind `t` is `expect_data` with this dtype, shape and element strides. */
static void check_tensor(dlshare_tensor *t, void *expect_data, DLDataType dtype,
                         const int64_t shape[2], const int64_t strides[2]) {
  void *data = NULL;
  int32_t ndim = -1;
  const int64_t *got_shape = NULL;
  const int64_t *got_strides = NULL;
  DLDataType got_dtype;
  DLDevice device;
  CHECK_OK(dlshare_tensor_data(t, &data));
  CHECK(data == expect_data);
  CHECK_OK(dlshare_tensor_ndim(t, &ndim));
  CHECK(ndim == 2);
  CHECK_OK(dlshare_tensor_shape(t, &got_shape));
  CHECK_OK(dlshare_tensor_strides(t, &got_strides));
  CHECK(got_shape[0] == shape[0] && got_shape[1] == shape[1]);
  CHECK(got_strides[0] == strides[0] && got_strides[1] == strides[1]);
  CHECK_OK(dlshare_tensor_dtype(t, &got_dtype));
  CHECK(same_dtype(got_dtype, dtype));
  CHECK_OK(dlshare_tensor_device(t, &device));
  CHECK(device.device_type == kDLCPU && device.device_id == 0);
}

/* An exported DLTensor describes the same memory, dtype, shape and strides. */
static void check_dl_tensor(const DLTensor *dl, void *expect_data, DLDataType dtype,
                            const int64_t shape[2], const int64_t strides[2]) {
  CHECK((char *)dl->data + dl->byte_offset == (char *)expect_data);
  CHECK(dl->ndim == 2);
  CHECK(dl->device.device_type == kDLCPU);
  CHECK(same_dtype(dl->dtype, dtype));
  CHECK(dl->shape[0] == shape[0] && dl->shape[1] == shape[1]);
  CHECK(dl->strides != NULL);
  CHECK(dl->strides[0] == strides[0] && dl->strides[1] == strides[1]);
}

/* One dtype, one layout: a 2-D view of `buffer` with the given byte strides (NULL = C order). */
static void roundtrip(const dtype_case *c, void *buffer, const int64_t shape[2],
                      const int64_t *byte_strides, const int64_t expect_strides[2]) {
  const size_t start = dlshare_live_tensor_count();
  const DLDataType dtype = make_dtype(c->code, c->bits);
  const dlshare_options share = dlshare_options_init(DLSHARE_MODE_SHARE);
  dlshare_view view;
  dlshare_decision decision;
  dlshare_tensor *from_view = NULL, *from_versioned = NULL, *from_legacy = NULL;
  DLManagedTensorVersioned *versioned = NULL;
  DLManagedTensor *legacy = NULL;
  uint64_t nbytes = 0;
  bool read_only = true;

  memset(&view, 0, sizeof view);
  view.data = buffer;
  view.dtype = dtype;
  view.ndim = 2;
  view.shape = shape;
  view.byte_strides = byte_strides;
  view.device.device_type = kDLCPU;
  view.release = count_release;
  view.release_ctx = &release_calls;
  release_calls = 0;

  /* wrap the C buffer: shared, same pointer */
  CHECK_OK(dlshare_tensor_from_view(&view, &share, &from_view, &decision));
  CHECK(decision.shared);
  CHECK(decision.reason == DLSHARE_REASON_NONE);
  CHECK(decision.detail[0] != '\0');
  check_tensor(from_view, buffer, dtype, shape, expect_strides);
  CHECK_OK(dlshare_tensor_nbytes(from_view, &nbytes));
  CHECK(nbytes == (uint64_t)(shape[0] * shape[1]) * (c->bits / 8u));
  CHECK_OK(dlshare_tensor_is_read_only(from_view, &read_only));
  CHECK(!read_only);

  /* versioned export: keeps the memory alive after the handle is released */
  CHECK_OK(dlshare_tensor_to_dlpack(from_view, &versioned));
  CHECK(versioned->version.major == 1);
  CHECK(versioned->deleter != NULL);
  CHECK((versioned->flags & DLPACK_FLAG_BITMASK_READ_ONLY) == 0);
  CHECK((versioned->flags & DLPACK_FLAG_BITMASK_IS_COPIED) == 0);
  check_dl_tensor(&versioned->dl_tensor, buffer, dtype, shape, expect_strides);
  CHECK_OK(dlshare_tensor_release(from_view));
  CHECK(release_calls == 0);

  /* versioned import: the same memory again */
  CHECK_OK(dlshare_tensor_from_dlpack(versioned, &share, &from_versioned, &decision));
  CHECK(decision.shared);
  check_tensor(from_versioned, buffer, dtype, shape, expect_strides);

  /* legacy export and import */
  CHECK_OK(dlshare_tensor_to_dlpack_legacy(from_versioned, &legacy));
  CHECK(legacy->deleter != NULL);
  check_dl_tensor(&legacy->dl_tensor, buffer, dtype, shape, expect_strides);
  CHECK_OK(dlshare_tensor_release(from_versioned));
  CHECK_OK(dlshare_tensor_from_dlpack_legacy(legacy, &share, &from_legacy, &decision));
  CHECK(decision.shared);
  check_tensor(from_legacy, buffer, dtype, shape, expect_strides);

  /* the whole chain hangs on the last handle; releasing it releases the C buffer, once */
  CHECK(release_calls == 0);
  CHECK(dlshare_live_tensor_count() > start);
  CHECK_OK(dlshare_tensor_release(from_legacy));
  CHECK(release_calls == 1);
  CHECK(dlshare_live_tensor_count() == start);
}

static void all_dtypes(void) {
  static _Alignas(64) unsigned char buffer[2 * 3 * 16];
  const int64_t c_shape[2] = {2, 3};
  const int64_t c_strides[2] = {3, 1};
  const int64_t f_shape[2] = {3, 2};
  const int64_t f_strides[2] = {1, 3};
  size_t i;
  for (i = 0; i < sizeof buffer; i++) buffer[i] = (unsigned char)(i % 2); /* valid as bool too */
  for (i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++) {
    const dtype_case *c = &DTYPES[i];
    const int64_t item = c->bits / 8;
    /* the transpose of the C-ordered 2x3 matrix: a Fortran-ordered 3x2 view, in bytes */
    const int64_t f_byte_strides[2] = {item, 3 * item};
    roundtrip(c, buffer, c_shape, NULL, c_strides);
    roundtrip(c, buffer, f_shape, f_byte_strides, f_strides);
    printf("round trip ok: %-10s (C and F order, versioned and legacy)\n", c->name);
  }
}

/* ---- a producer's managed tensor ------------------------------------------------------- */

typedef struct {
  DLManagedTensorVersioned managed;
  int64_t shape[2];
  float values[6];
  int deleter_calls;
} producer;

static void producer_deleter(DLManagedTensorVersioned *self) {
  producer *p = (producer *)self->manager_ctx;
  CHECK(self == &p->managed);
  p->deleter_calls++;
}

static void producer_init(producer *p) {
  int i;
  memset(p, 0, sizeof *p);
  for (i = 0; i < 6; i++) p->values[i] = (float)i + 0.5f;
  p->shape[0] = 2;
  p->shape[1] = 3;
  p->managed.version.major = 1;
  p->managed.version.minor = 0;
  p->managed.manager_ctx = p;
  p->managed.deleter = producer_deleter;
  p->managed.dl_tensor.data = p->values;
  p->managed.dl_tensor.device.device_type = kDLCPU;
  p->managed.dl_tensor.ndim = 2;
  p->managed.dl_tensor.dtype = make_dtype(kDLFloat, 32);
  p->managed.dl_tensor.shape = p->shape;
  p->managed.dl_tensor.strides = NULL; /* compact row-major */
}

static void producer_shared_many_owners(void) {
  const size_t start = dlshare_live_tensor_count();
  const dlshare_options share = dlshare_options_init(DLSHARE_MODE_SHARE);
  producer p;
  dlshare_tensor *t = NULL;
  void *data = NULL;
  int i;
  producer_init(&p);

  CHECK_OK(dlshare_tensor_from_dlpack(&p.managed, &share, &t, NULL));
  CHECK_OK(dlshare_tensor_data(t, &data));
  CHECK(data == p.values);
  for (i = 0; i < 3; i++) CHECK_OK(dlshare_tensor_retain(t));
  for (i = 0; i < 3; i++) {
    CHECK_OK(dlshare_tensor_release(t));
    CHECK(p.deleter_calls == 0);
  }
  CHECK_OK(dlshare_tensor_release(t)); /* the last owner */
  CHECK(p.deleter_calls == 1);
  CHECK_FAILS(dlshare_tensor_release(t), DLSHARE_ERR_INVALID_HANDLE);
  CHECK(p.deleter_calls == 1);
  CHECK(dlshare_live_tensor_count() == start);
  printf("producer tensor: deleter ran once, after the last of 4 owners\n");
}

static void producer_kept_alive_by_export(void) {
  const size_t start = dlshare_live_tensor_count();
  producer p;
  dlshare_tensor *t = NULL;
  DLManagedTensorVersioned *exported = NULL;
  producer_init(&p);

  CHECK_OK(dlshare_tensor_from_dlpack(&p.managed, NULL, &t, NULL)); /* NULL = SHARE_OR_COPY */
  CHECK_OK(dlshare_tensor_to_dlpack(t, &exported));
  CHECK(exported->dl_tensor.data == (void *)p.values);
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(p.deleter_calls == 0); /* the exported tensor still uses the producer's memory */
  exported->deleter(exported);
  CHECK(p.deleter_calls == 1);
  CHECK(dlshare_live_tensor_count() == start);
  printf("producer tensor: kept alive by a re-export until its deleter ran\n");
}

static void producer_copied(void) {
  const size_t start = dlshare_live_tensor_count();
  const dlshare_options copy = dlshare_options_init(DLSHARE_MODE_COPY);
  producer p;
  dlshare_tensor *t = NULL;
  dlshare_decision decision;
  void *data = NULL;
  uint64_t flags = 0;
  DLTensor info;
  producer_init(&p);

  CHECK_OK(dlshare_tensor_from_dlpack(&p.managed, &copy, &t, &decision));
  CHECK(p.deleter_calls == 1); /* a copy releases the producer before returning */
  CHECK(!decision.shared);
  CHECK(decision.reason == DLSHARE_REASON_COPY_REQUESTED);
  CHECK_OK(dlshare_tensor_data(t, &data));
  CHECK(data != (void *)p.values);
  CHECK(memcmp(data, p.values, sizeof p.values) == 0);
  CHECK_OK(dlshare_tensor_info(t, &info, &flags));
  CHECK(flags & DLPACK_FLAG_BITMASK_IS_COPIED);
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(p.deleter_calls == 1);
  CHECK(dlshare_live_tensor_count() == start);
  printf("producer tensor: COPY import released the producer at once\n");
}

static void producer_failed_imports(void) {
  const size_t start = dlshare_live_tensor_count();
  const dlshare_options share = dlshare_options_init(DLSHARE_MODE_SHARE);
  dlshare_options share_read_only = share;
  int marker = 0;
  dlshare_tensor *const sentinel = (dlshare_tensor *)&marker; /* shows *out stays untouched */
  dlshare_tensor *t = sentinel;
  dlshare_decision decision;
  DLManagedTensorVersioned *exported = NULL;
  DLManagedTensor *legacy = NULL;
  bool read_only = false;
  producer p, before;
  producer_init(&p);

  /* a future major version: refused, nothing touched, nothing called */
  p.managed.version.major = 2;
  memcpy(&before, &p, sizeof p);
  CHECK_FAILS(dlshare_tensor_from_dlpack(&p.managed, &share, &t, NULL),
              DLSHARE_ERR_UNSUPPORTED_VERSION);
  CHECK(t == sentinel);
  CHECK(p.deleter_calls == 0);
  CHECK(memcmp(&p, &before, sizeof p) == 0);

  /* READ_ONLY memory in SHARE mode: refused with the reason, nothing touched */
  p.managed.version.major = 1;
  p.managed.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
  memcpy(&before, &p, sizeof p);
  CHECK_FAILS(dlshare_tensor_from_dlpack(&p.managed, &share, &t, &decision),
              DLSHARE_ERR_CANNOT_SHARE);
  CHECK(!decision.shared);
  CHECK(decision.reason == DLSHARE_REASON_READ_ONLY);
  CHECK(t == sentinel);
  CHECK(p.deleter_calls == 0);
  CHECK(memcmp(&p, &before, sizeof p) == 0);

  /* the caller still owns it and may retry: allowed read-only, it is shared read-only */
  share_read_only.allow_read_only = true;
  CHECK_OK(dlshare_tensor_from_dlpack(&p.managed, &share_read_only, &t, &decision));
  CHECK(decision.shared);
  CHECK_OK(dlshare_tensor_is_read_only(t, &read_only));
  CHECK(read_only);
  CHECK_FAILS(dlshare_tensor_to_dlpack_legacy(t, &legacy), DLSHARE_ERR_READ_ONLY);
  CHECK(legacy == NULL);
  CHECK_OK(dlshare_tensor_to_dlpack(t, &exported));
  CHECK(exported->flags & DLPACK_FLAG_BITMASK_READ_ONLY);
  exported->deleter(exported);
  CHECK(p.deleter_calls == 0);
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(p.deleter_calls == 1);
  CHECK(dlshare_live_tensor_count() == start);
  printf("producer tensor: failed imports left it untouched; the retry owned it\n");
}

static void legacy_failed_import(void) {
  producer p;
  DLManagedTensor legacy, before;
  dlshare_tensor *t = NULL;
  producer_init(&p);
  memset(&legacy, 0, sizeof legacy);
  legacy.dl_tensor = p.managed.dl_tensor;
  legacy.dl_tensor.shape = NULL; /* malformed: ndim 2 without a shape */
  legacy.manager_ctx = &p;
  legacy.deleter = NULL;
  memcpy(&before, &legacy, sizeof legacy);
  CHECK_FAILS(dlshare_tensor_from_dlpack_legacy(&legacy, NULL, &t, NULL),
              DLSHARE_ERR_INVALID_DLPACK);
  CHECK(t == NULL);
  CHECK(memcmp(&legacy, &before, sizeof legacy) == 0);
  printf("legacy tensor: a malformed one is refused and left untouched\n");
}

int main(void) {
  const size_t start = dlshare_live_tensor_count();
  all_dtypes();
  producer_shared_many_owners();
  producer_kept_alive_by_export();
  producer_copied();
  producer_failed_imports();
  legacy_failed_import();
  CHECK(dlshare_live_tensor_count() == start);
  printf("live tensors: %zu at the start, %zu at the end\n", start,
         dlshare_live_tensor_count());
  return 0;
}
