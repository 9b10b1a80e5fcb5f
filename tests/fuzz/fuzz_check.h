// FUZZ_CHECK: an invariant of a fuzz target. On failure it prints the condition and aborts, so
// libFuzzer saves the input as a crash (unlike assert, it stays on in every build type).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
