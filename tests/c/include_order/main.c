/* Runs both include orders (the same sources are built once as C11 and once as C++17). */
#include <stdio.h>

int dlshare_first(void);
int aten_first(void);

int main(void) {
#ifdef __cplusplus
  printf("compiled as C++ (__cplusplus = %ld)\n", (long)__cplusplus);
#else
  printf("compiled as C (__STDC_VERSION__ = %ld)\n", (long)__STDC_VERSION__);
#endif
  return dlshare_first() | aten_first();
}
