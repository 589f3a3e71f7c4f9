// Minimal checks for the C++ tests: a failed check prints where and why, then exits with 1.
#ifndef DLSHARE_TEST_CHECK_HPP
#define DLSHARE_TEST_CHECK_HPP

#include <cstdio>
#include <cstdlib>

#include <dlshare.hpp>

// EXPECT(cond): fail unless cond holds.
#define EXPECT(cond)                                                                        \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

// EXPECT_THROWS(expr, status): evaluating expr throws dlshare::Error with this status and a
// non-empty message.
#define EXPECT_THROWS(expr, expected)                                                       \
  do {                                                                                      \
    bool expect_thrown_ = false;                                                            \
    try {                                                                                   \
      (void)(expr);                                                                         \
    } catch (const dlshare::Error &expect_error_) {                                         \
      expect_thrown_ = true;                                                                \
      if (expect_error_.status() != (expected)) {                                           \
        std::fprintf(stderr, "%s:%d: %s\n  threw %s, expected %s\n", __FILE__, __LINE__,    \
                     #expr, expect_error_.what(), dlshare::status_name(expected));          \
        std::exit(1);                                                                       \
      }                                                                                     \
      EXPECT(!expect_error_.message().empty());                                             \
    }                                                                                       \
    if (!expect_thrown_) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s\n  threw nothing, expected %s\n", __FILE__, __LINE__, \
                   #expr, dlshare::status_name(expected));                                  \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

#endif  // DLSHARE_TEST_CHECK_HPP
