#include <cstdio>
#include <vector>
#include <dlshare.hpp>

int main() {
  std::vector<double> values = {1, 2, 3, 4, 5, 6};
  dlshare::Decision decision;
  dlshare::Tensor t = dlshare::from_view(dlshare::View(values.data(), {2, 3}),
                                         dlshare::Mode::share, &decision);
  std::printf("%s\n", decision.detail());          // shared: ...
  t.data<double>()[5] = 60;                         // the vector's memory
  dlshare::Tensor column = t.view({2}, {3}, 2);     // values[2], values[5], no copy
  std::printf("column: %g %g\n", column.data<double>()[0], column.data<double>()[3]);

  try {  // SHARE refuses what it cannot share, and says why
    dlshare::View reversed(values.data() + 5, {6}, {-8});   // byte strides
    dlshare::Tensor r = dlshare::from_view(reversed, dlshare::Mode::share);
  } catch (const dlshare::Error &e) {
    std::printf("%s [%s]\n", e.status_name(), e.reason_name());  // ... [negative_stride]
  }
  dlshare::Tensor copy = t.convert(dlshare::Mode::copy);          // torch.tensor semantics
  dlshare::ManagedTensorVersioned managed = t.to_dlpack();        // deleter runs when it goes
  return values[5] == 60 && !copy.shares_memory(t) ? 0 : 1;
}
