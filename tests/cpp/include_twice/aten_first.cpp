// torch's ATen/dlpack.h first, then dlshare.h and dlshare.hpp, then all again.
#include <ATen/dlpack.h>
#include <dlshare.h>
#include <dlshare.hpp>
#include <ATen/dlpack.h>
#include <dlshare.hpp>
#include <dlshare.h>

#include "common.hpp"

int aten_first() {
  return exercise_both_headers(
      "dlpack.h, dlshare.h, dlshare.hpp, dlpack.h, dlshare.hpp, dlshare.h");
}
