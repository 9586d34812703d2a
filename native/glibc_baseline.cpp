// See glibc_baseline.h. libstdc++ 12's headers read glibc's __libc_single_threaded (GLIBC_2.32) to
// skip atomic reference counting in single-threaded processes. This definition satisfies those
// reads inside the addon (hidden, so nothing outside sees it): 0 means "maybe multi-threaded", so
// shared_ptr and friends always use atomic operations, as they did before glibc 2.32.
#include "glibc_baseline.h"

extern "C" {
__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;
}
