#include <stdio.h>
#include <dlshare.h>

int main(void) {
  float values[2][3] = {{1, 2, 3}, {4, 5, 6}};
  int64_t shape[2] = {2, 3};
  dlshare_view view = {0};                 /* byte_strides NULL: C-contiguous */
  view.data = values;
  view.dtype.code = kDLFloat;
  view.dtype.bits = 32;
  view.dtype.lanes = 1;
  view.ndim = 2;
  view.shape = shape;
  view.device.device_type = kDLCPU;

  dlshare_options share = dlshare_options_init(DLSHARE_MODE_SHARE);
  dlshare_tensor *tensor = NULL;
  dlshare_decision decision;
  DLManagedTensorVersioned *managed = NULL;
  if (dlshare_tensor_from_view(&view, &share, &tensor, &decision) != DLSHARE_OK ||
      dlshare_tensor_to_dlpack(tensor, &managed) != DLSHARE_OK) {
    fprintf(stderr, "dlshare: %s\n", dlshare_last_error_message());
    return 1;
  }
  printf("%s\n", decision.detail);         /* shared: ... */
  ((float *)managed->dl_tensor.data)[5] = 60;  /* any DLPack consumer: the same memory */
  managed->deleter(managed);
  dlshare_tensor_release(tensor);
  printf("values[1][2] = %g\n", values[1][2]);  /* 60 */
  return values[1][2] == 60 ? 0 : 1;
}
