// Whether the extension was compiled with OpenMP, and its default thread count.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

namespace repgap {
inline int openmp_enabled() {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
inline int openmp_max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
}  // namespace repgap
