// dlshare.hpp (which includes dlshare.h) first, then torch's ATen/dlpack.h, then all again.
#include <dlshare.hpp>
#include <ATen/dlpack.h>
#include <dlshare.h>
#include <dlshare.hpp>
#include <ATen/dlpack.h>

#include "common.hpp"

int dlshare_first() {
  return exercise_both_headers("dlshare.hpp, dlpack.h, dlshare.h, dlshare.hpp, dlpack.h");
}
