/* ATen/dlpack.h first: dlshare.h must accept torch's DLPack declarations. */
#include <ATen/dlpack.h>
#include "dlshare.h"

#include "common.h"

int aten_first(void);
int aten_first(void) { return exercise_both_headers("ATen/dlpack.h, then dlshare.h"); }
