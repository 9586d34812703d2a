// The prebuilt addon and the CUDA stubs must load wherever the torch 2.11 wheel's libtorch_cpu.so
// loads: glibc >= 2.28, libstdc++ >= GLIBCXX_3.4.22, CXXABI_1.3.11 (manylinux_2_28, the same
// baseline as sharp's linux-x64 prebuilds). Built on a newer system, a few references would bind to
// newer symbol versions; these .symver directives bind them to the versions those libraries have
// had since before the baseline (same behaviour). Included by every translation unit (after the
// precompiled header), since .symver acts on the references of the file it appears in.
// scripts/prebuild checks the result with objdump and names any new symbol that needs a line here.
#pragma once

#if defined(__linux__) && defined(__x86_64__) && defined(__GLIBC__)
// glibc 2.34 moved these from libdl / libpthread into libc under a new default version.
__asm__(".symver dladdr,dladdr@GLIBC_2.2.5");
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlclose,dlclose@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver pthread_setname_np,pthread_setname_np@GLIBC_2.12");
__asm__(".symver pthread_getname_np,pthread_getname_np@GLIBC_2.12");
__asm__(".symver pthread_key_create,pthread_key_create@GLIBC_2.2.5");
__asm__(".symver pthread_key_delete,pthread_key_delete@GLIBC_2.2.5");
__asm__(".symver pthread_getspecific,pthread_getspecific@GLIBC_2.2.5");
__asm__(".symver pthread_setspecific,pthread_setspecific@GLIBC_2.2.5");
__asm__(".symver pthread_detach,pthread_detach@GLIBC_2.2.5");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.2.5");
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
// glibc 2.29 gave pow/exp/log/log2/exp2 new default versions without the SVID error wrappers
// (same results).
__asm__(".symver pow,pow@GLIBC_2.2.5");
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver log,log@GLIBC_2.2.5");
__asm__(".symver log2,log2@GLIBC_2.2.5");
__asm__(".symver exp2,exp2@GLIBC_2.2.5");
// libstdc++ 12 versioned condition_variable::wait anew (GLIBCXX_3.4.30); the 3.4.11 one is the same call.
__asm__(".symver _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE,"
        "_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE@GLIBCXX_3.4.11");
#endif
