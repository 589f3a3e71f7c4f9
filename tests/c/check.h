/* Minimal checks for the C tests: a failed check prints where and why, then exits with 1. */
#ifndef DLSHARE_TEST_CHECK_H
#define DLSHARE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlshare.h"

/* CHECK(cond): fail unless cond holds. */
#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

/* CHECK_STATUS(call, expected): fail unless `call` returns `expected`; on a mismatch print
   both status names and the library's last error message. */
#define CHECK_STATUS(call, expected)                                                  \
  do {                                                                                \
    dlshare_status check_got_ = (call);                                               \
    dlshare_status check_want_ = (expected);                                          \
    if (check_got_ != check_want_) {                                                  \
      fprintf(stderr, "%s:%d: %s\n  returned %s, expected %s\n  last error: %s\n",    \
              __FILE__, __LINE__, #call, dlshare_status_name((int32_t)check_got_),     \
              dlshare_status_name((int32_t)check_want_), dlshare_last_error_message()); \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, DLSHARE_OK)

/* CHECK_FAILS(call, expected): the call fails with `expected` and explains itself. */
#define CHECK_FAILS(call, expected)                                                   \
  do {                                                                                \
    CHECK_STATUS(call, expected);                                                     \
    CHECK(dlshare_last_error_message() != NULL);                                      \
    CHECK(dlshare_last_error_message()[0] != '\0');                                   \
  } while (0)

#endif /* DLSHARE_TEST_CHECK_H */
