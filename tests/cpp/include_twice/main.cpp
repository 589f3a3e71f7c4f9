// Runs both include orders (each in its own translation unit).
#include <cstdio>

int dlshare_first();
int aten_first();

int main() {
  if (dlshare_first() != 0 || aten_first() != 0) {
    std::fprintf(stderr, "an include order failed\n");
    return 1;
  }
  return 0;
}
