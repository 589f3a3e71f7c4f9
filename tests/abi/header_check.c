/* Compiled, not run, by check_header.sh: dlshare.h must compile as C99/C11/C17 and C++11..20
   with gcc and clang at -Wall -Wextra -Werror -pedantic, and for Windows and macOS targets
   (clang --target=..., freestanding), using only standard C types. DLSHARE_API must expand to
   the export attribute the platform needs (docs/abi.md). */
#include "dlshare.h"

#define DLSHARE_STR2(x) #x
#define DLSHARE_STR(x) DLSHARE_STR2(x)

#if defined(_WIN32) && defined(DLSHARE_STATIC)
#define EXPECTED_API ""
#elif defined(_WIN32)
#define EXPECTED_API "__declspec(dllimport)"
#elif defined(__GNUC__)
#define EXPECTED_API "__attribute__((visibility(\"default\")))"
#else
#define EXPECTED_API ""
#endif

/* A negative array size (a compile error) when DLSHARE_API is not what this platform needs. */
typedef char dlshare_api_is_right[sizeof(DLSHARE_STR(DLSHARE_API)) == sizeof(EXPECTED_API) ? 1
                                                                                             : -1];
/* The public structs are complete types and the fixed-width fields keep their widths. */
typedef char dlshare_status_is_int_sized[sizeof(enum dlshare_status) == sizeof(int) ? 1 : -1];
typedef char dltensor_ndim_is_32_bits[sizeof(((DLTensor *)0)->ndim) == 4 ? 1 : -1];

int dlshare_header_check(void);
int dlshare_header_check(void) {
  struct dlshare_options options;
  dlshare_view view;
  options = dlshare_options_init(DLSHARE_MODE_SHARE_OR_COPY);
  view.ndim = 0;
  return (int)sizeof(options) + view.ndim + (dlshare_version() != NULL);
}
