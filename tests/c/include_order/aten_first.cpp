/* aten_first.c compiled as C++17. */
#include "aten_first.c"
