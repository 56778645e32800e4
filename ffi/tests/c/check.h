/* A minimal test harness for the C suite: CHECK stops the test with file:line. */
#ifndef STRATA_CHECK_H
#define STRATA_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

extern int g_failures;
extern const char *g_test;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "FAIL %s: %s:%d: %s\n", g_test, __FILE__, __LINE__, #cond);    \
      g_failures++;                                                                  \
      return;                                                                        \
    }                                                                                \
  } while (0)

/* Expects `call` (taking &err last) to return `want`; frees any message. */
#define EXPECT(want, call)                                                           \
  do {                                                                               \
    char *err_ = NULL;                                                               \
    (void)err_;                                                                      \
    strata_status got_ = (call);                                                     \
    if (got_ != (want)) {                                                            \
      fprintf(stderr, "FAIL %s: %s:%d: %s returned %d (want %d): %s\n", g_test,      \
              __FILE__, __LINE__, #call, (int)got_, (int)(want), err_ ? err_ : "");  \
      strata_free(err_);                                                             \
      g_failures++;                                                                  \
      return;                                                                        \
    }                                                                                \
    strata_free(err_);                                                               \
  } while (0)

#define OK(call) EXPECT(STRATA_OK, call)
#define ERR (&err_)

#endif
