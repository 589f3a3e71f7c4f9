/* dlshare demo: share a C buffer without copying, round-trip it through DLPack, and see what
   happens to a reversed (negative-stride) view in SHARE and SHARE_OR_COPY modes.

   Build against an installed dlshare (see run_demo.sh), e.g.
     cc -std=c11 demo.c $(pkg-config --cflags --libs dlshare) -o demo                        */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dlshare.h"

#define ROWS 3
#define COLS 4

static int failures;

/* Prints a check's outcome; the demo exits non-zero if any expectation fails. */
static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "UNEXPECTED: %s\n", what);
    failures++;
  }
}

static void print_matrix(const char *label, const float *data, int64_t rows, int64_t cols,
                         int64_t row_stride, int64_t col_stride) {
  int64_t i, j;
  for (i = 0; i < rows; i++) {
    printf("  %-28s [", i == 0 ? label : "");
    for (j = 0; j < cols; j++) printf(" %5.1f", data[i * row_stride + j * col_stride]);
    printf(" ]\n");
  }
}

static void print_status(const char *call, dlshare_status status) {
  printf("  %-28s %s\n", call, dlshare_status_name(status));
}

int main(void) {
  static float matrix[ROWS][COLS]; /* 3x4 float32, C order */
  const int64_t shape[2] = {ROWS, COLS};
  const dlshare_options share = dlshare_options_init(DLSHARE_MODE_SHARE);
  const dlshare_options share_or_copy = dlshare_options_init(DLSHARE_MODE_SHARE_OR_COPY);
  dlshare_view view;
  dlshare_decision decision;
  dlshare_tensor *tensor = NULL, *imported = NULL, *copied = NULL;
  DLManagedTensorVersioned *exported = NULL;
  void *data = NULL;
  dlshare_status status;
  int i, j;

  for (i = 0; i < ROWS; i++)
    for (j = 0; j < COLS; j++) matrix[i][j] = (float)(i * COLS + j);

  printf("dlshare %s demo\n\n", dlshare_version());

  /* 1. wrap the C buffer: no copy */
  printf("1. Wrap a C buffer (3x4 float32) in SHARE mode: no copy\n");
  memset(&view, 0, sizeof view);
  view.data = matrix;
  view.dtype.code = kDLFloat;
  view.dtype.bits = 32;
  view.dtype.lanes = 1;
  view.ndim = 2;
  view.shape = shape;
  view.byte_strides = NULL; /* C-contiguous */
  view.device.device_type = kDLCPU;
  status = dlshare_tensor_from_view(&view, &share, &tensor, &decision);
  print_status("dlshare_tensor_from_view", status);
  expect(status == DLSHARE_OK, "wrapping the buffer in SHARE mode succeeds");
  if (status != DLSHARE_OK) return 1;
  dlshare_tensor_data(tensor, &data);
  printf("  %-28s %p\n", "C buffer", (void *)matrix);
  printf("  %-28s %p\n", "tensor data", data);
  printf("  %-28s %s\n", "decision", decision.detail);
  expect(data == (void *)matrix, "the tensor uses the C buffer itself");
  print_matrix("values", (const float *)data, ROWS, COLS, COLS, 1);

  /* 2. export as DLPack, import it back */
  printf("\n2. Export it as DLPack (versioned), import it back\n");
  status = dlshare_tensor_to_dlpack(tensor, &exported);
  print_status("dlshare_tensor_to_dlpack", status);
  expect(status == DLSHARE_OK, "export succeeds");
  if (status != DLSHARE_OK) return 1;
  printf("  %-28s %p (DLPack %u.%u)\n", "exported data", exported->dl_tensor.data,
         exported->version.major, exported->version.minor);
  status = dlshare_tensor_from_dlpack(exported, &share, &imported, &decision);
  print_status("dlshare_tensor_from_dlpack", status);
  expect(status == DLSHARE_OK, "import succeeds");
  if (status != DLSHARE_OK) return 1; /* on failure `exported` would still be ours to delete */
  dlshare_tensor_data(imported, &data);
  printf("  %-28s %p\n", "imported data", data);
  printf("  %-28s %s\n", "same pointer", data == (void *)matrix ? "yes" : "NO");
  expect(data == (void *)matrix, "the round trip keeps the same pointer");
  dlshare_tensor_release(imported); /* also runs the exported tensor's deleter */
  dlshare_tensor_release(tensor);

  /* 3. a reversed-rows view: data at the last row, rows going backwards */
  {
    const int64_t reversed_strides[2] = {-(int64_t)sizeof matrix[0], sizeof(float)}; /* -16, 4 */
    printf("\n3. A reversed-rows view: data = &matrix[2][0], byte_strides {%lld, %lld}\n",
           (long long)reversed_strides[0], (long long)reversed_strides[1]);
    view.data = matrix[ROWS - 1];
    view.byte_strides = reversed_strides;
    print_matrix("view", &matrix[0][0] + (ROWS - 1) * COLS, ROWS, COLS, -COLS, 1);

    printf("\n3a. The view in SHARE mode (torch.from_numpy)\n");
    status = dlshare_tensor_from_view(&view, &share, &copied, &decision);
    print_status("dlshare_tensor_from_view", status);
    printf("  %-28s %s\n", "message", dlshare_last_error_message());
    printf("  %-28s %s\n", "decision reason", dlshare_reason_name(decision.reason));
    expect(status == DLSHARE_ERR_CANNOT_SHARE, "SHARE refuses a negative stride");
    expect(decision.reason == DLSHARE_REASON_NEGATIVE_STRIDE, "the reason is negative_stride");

    printf("\n3b. The view in SHARE_OR_COPY mode (torch.as_tensor)\n");
    status = dlshare_tensor_from_view(&view, &share_or_copy, &copied, &decision);
    print_status("dlshare_tensor_from_view", status);
    expect(status == DLSHARE_OK, "SHARE_OR_COPY copies");
    if (status != DLSHARE_OK) return 1;
    dlshare_tensor_data(copied, &data);
    printf("  %-28s %s\n", "decision detail", decision.detail);
    printf("  %-28s %p (new memory, C order)\n", "copy data", data);
    print_matrix("copied values", (const float *)data, ROWS, COLS, COLS, 1);
    expect(!decision.shared && decision.reason == DLSHARE_REASON_NEGATIVE_STRIDE,
           "the decision says it copied because of the negative stride");
    expect(data != (void *)matrix, "the copy is new memory");
    for (i = 0; i < ROWS; i++)
      expect(memcmp((const float *)data + i * COLS, matrix[ROWS - 1 - i], sizeof matrix[0]) == 0,
             "the copy holds the rows in reversed order");
    dlshare_tensor_release(copied);
  }

  expect(dlshare_live_tensor_count() == 0, "every tensor was released");
  printf("\n%s\n", failures ? "demo FAILED" : "demo done: every tensor released");
  return failures ? 1 : 0;
}
