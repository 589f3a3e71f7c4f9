/* dlshare.h first: its DLPack declarations win, ATen/dlpack.h must then be skipped cleanly. */
#include "dlshare.h"
#include <ATen/dlpack.h>

#include "common.h"

int dlshare_first(void);
int dlshare_first(void) { return exercise_both_headers("dlshare.h, then ATen/dlpack.h"); }
