/* dlshare_first.c compiled as C++17. */
#include "dlshare_first.c"
