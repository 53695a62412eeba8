// Whether the extension was compiled with OpenMP, and its default thread count.
#pragma once
#include <chrono>
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
inline int openmp_thread() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Interrupts inside a tile. A tile is sized for the caches, not for time,
// so the calling thread (OpenMP thread 0, the one Python delivers signals
// to) asks `fn` between pieces of its tile, at most every `every_ms`; `fn`
// takes the GIL and runs the signal handlers. Every thread leaves its tile
// once `stop` is set. The clock is read only by thread 0.
struct TilePoll {
    int (*fn)(void*);
    void* ctx;
    volatile int* stop;   // volatile: read in a loop that writes nothing else it sees
    double every_ms;
};

inline double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// true when the caller must leave its tile
inline bool tile_poll(const TilePoll* tp, double* last_ms) {
    if (!tp || !tp->stop) return false;
    if (*tp->stop) return true;
    if (!tp->fn || openmp_thread() != 0) return false;
    const double t = now_ms();
    if (t - *last_ms < tp->every_ms) return false;
    *last_ms = t;
    if (tp->fn(tp->ctx)) { *tp->stop = 1; return true; }
    return false;
}
}  // namespace repgap
