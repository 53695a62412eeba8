// Brute-force k-nearest neighbours over prefixes of an ordered reference set.
//
// The work of one *query tile* (a block of query rows owned by one OpenMP
// thread) is done here; the OpenMP loop over tiles lives in the Cython module
// (_kernels_cython.pyx), which also owns the per-thread buffers.
//
// Two candidate searches feed the same selection:
//   * direct: squared differences summed in the input precision over packed,
//     transposed panels of RB reference rows (SIMD micro-kernels in
//     repgap_simd.hpp). Exact up to rounding of the differences: no
//     cancellation, so the data need not be centred.
//   * gemm: the expansion ||r||^2 - 2 q.r on *centred* tiles through BLAS
//     (scipy.linalg.cython_blas), faster where D is large and the precision
//     is double.
// Each query keeps the K = k + spare best candidates by approximate distance;
// at every checkpoint the candidates' distances are recomputed exactly in
// float64 from the original (uncentred) rows, difference first, and the
// k best by (distance, index) are written out (docs/theory.md, section 6).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <limits>

#include "repgap_openmp.hpp"
#include "repgap_simd.hpp"

namespace repgap {

typedef void (*sgemm_ptr)(char*, char*, int*, int*, int*, float*, float*, int*,
                          float*, int*, float*, float*, int*);
typedef void (*dgemm_ptr)(char*, char*, int*, int*, int*, double*, double*, int*,
                          double*, int*, double*, double*, int*);

enum { METHOD_DIRECT = 0, METHOD_GEMM = 1, METHOD_FUSED = 2 };
// the lane-minimum sweep for k = 1 up to here (benchmarks/README.md)
constexpr int NN1_MAX_DIM = 32;
// the two-per-lane sweep for k = 2 beats the panel kernel up to here (D = 32: 0.30 s vs 0.23 s, 1e4 x 1e5)
constexpr int NN2_MAX_DIM = 16;
// coordinates per slice of the fused kernel: a panel's slice (DOT_SLICE x RB
// floats, 16 KiB) stays in L1 while the tile's query blocks pass over it;
// used where D is larger than two slices (D = 784, 2624 x 6e4, k = 1: 131
// and 265 GFLOP/s on 1 and 2 threads, against 119 and 234-239 unsliced)
constexpr int DOT_SLICE = 128;
// query rows per micro-tile: QB, or DOT_ROWS on the sliced path; tiles are
// padded to QPAD rows, a multiple of both
constexpr int QMAX = QB > DOT_ROWS ? QB : DOT_ROWS;
constexpr int QPAD = 24;
static_assert(QPAD % QB == 0 && QPAD % DOT_ROWS == 0, "QPAD must be a multiple of both row counts");

// Which lane sweep a tile takes (float32, AVX-512 or AVX2, small D), where the
// per-panel selection would dominate: the lane minimum (nn1b_panels) for
// k = 1, and for k = 2 with bound_last (one neighbour and its margin); two
// per lane (nn2_panels, AVX-512 only) for a plain k = 2; none.
enum { SWEEP_NONE = 0, SWEEP_MIN = 1, SWEEP_TWO = 2 };
inline int brute_sweep(int method, int k, int D, int itemsize, bool bound_last) {
    if (method != METHOD_FUSED || itemsize != 4 || !nn1_available()) return SWEEP_NONE;
    if (k == 1 && D <= NN1_MAX_DIM) return SWEEP_MIN;
    if (k == 2 && D <= NN2_MAX_DIM && bound_last) return SWEEP_MIN;
    if (k == 2 && D <= NN2_MAX_DIM && nn2_available()) return SWEEP_TWO;
    return SWEEP_NONE;
}

// The sweeps pack their panels per tile and never read the shared ones:
// the caller does not pack those for nothing.
inline bool brute_sweeps(int method, int k, int D, int itemsize, bool bound_last) {
    return brute_sweep(method, k, D, itemsize, bound_last) != SWEEP_NONE;
}

template <typename T>
struct BruteProblem {
    const T* Q; std::ptrdiff_t qs0, qs1; std::int64_t m;   // queries (strides in elements)
    const T* R; std::ptrdiff_t rs0, rs1; std::int64_t n;   // reference
    int D;
    const std::int64_t* order;     // rank -> reference row; NULL means identity
    const std::int64_t* ckpt; int J;   // increasing prefix sizes
    int k, K;                      // neighbours wanted, candidates kept (K >= k)
    int tq, tr;                    // tile sizes (queries, reference rows)
    int method;
    const double* center;          // reference mean (gemm path only)
    // Shared panels: the whole ordered prefix packed once (panel b holds
    // ranks b*RB.., with its norms), read by every thread; NULL means that
    // each query tile packs its own. Packing costs far more per element than
    // a multiply-add, so at large D, where the Ctrl-C budget keeps query tiles
    // small, re-packing per tile doubled the time (D = 784: 7.0 s vs 3.5 s).
    const T* gP; const T* grn;
    const TilePoll* poll;          // Ctrl-C inside a tile; NULL: between tiles only
    // k = 2 asked for one neighbour's certificate: the second entry's
    // distance may be replaced by a lower bound on the approximate distance
    // of every row not returned (nn1b_panels); the engine reads it as the
    // margin and never reports that entry
    int bound_last;
    sgemm_ptr sgemm; dgemm_ptr dgemm;
    double* out_d; std::int64_t* out_i;   // (J, m, k), squared distances
};

template <typename T>
struct BruteWork {
    T* Qp; T* P; T* C; T* rn; T* cd; std::int64_t* ci;
    T* blk; std::uint32_t* mask; std::int32_t* lanepan;
    T* acc;                        // sliced fused kernel: accumulators of the tile's query blocks
    T* sec;                        // bound_last: each query's least second-smallest lane value
    double* exd; std::int64_t* exi; int* perm;
    void* mem;
};

inline std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) / a * a; }

template <typename T>
inline std::size_t brute_work_bytes(const BruteProblem<T>& p) {
    std::size_t tq = round_up(p.tq, QPAD), tr = round_up(p.tr, RB), D = p.D;
    std::size_t b = 0;
    b += round_up(tq * D * sizeof(T), 64);
    b += round_up(tr * D * sizeof(T), 64);
    if (p.method == METHOD_GEMM) b += round_up(tq * tr * sizeof(T), 64);
    b += round_up(tr * sizeof(T), 64);
    b += round_up(tq * p.K * sizeof(T), 64) + round_up(tq * p.K * sizeof(std::int64_t), 64);
    b += round_up(QMAX * RB * sizeof(T), 64) + round_up(QMAX * sizeof(std::uint32_t), 64);
    b += round_up(QB * RB * sizeof(std::int32_t), 64);
    if (p.method == METHOD_FUSED) b += round_up(tq * RB * sizeof(T), 64) + round_up(tq * sizeof(T), 64);
    b += round_up(p.K * sizeof(double), 64) + round_up(p.K * sizeof(std::int64_t), 64)
         + round_up(p.K * sizeof(int), 64);
    return b + 64;
}

// Returns 0 on success, -1 when memory is exhausted.
template <typename T>
inline int brute_work_alloc(const BruteProblem<T>& p, BruteWork<T>* w) {
    std::size_t bytes = brute_work_bytes(p);
    void* mem = std::malloc(bytes);
    w->mem = mem;
    if (!mem) return -1;
    char* c = (char*)round_up((std::size_t)mem, 64);
    std::size_t tq = round_up(p.tq, QPAD), tr = round_up(p.tr, RB), D = p.D;
#define REPGAP_TAKE(field, type, count)                   \
    w->field = (type*)c; c += round_up((count) * sizeof(type), 64);
    REPGAP_TAKE(Qp, T, tq * D)
    REPGAP_TAKE(P, T, tr * D)
    if (p.method == METHOD_GEMM) {
        REPGAP_TAKE(C, T, tq * tr)
    } else {
        w->C = nullptr;
    }
    REPGAP_TAKE(rn, T, tr)
    REPGAP_TAKE(cd, T, tq * p.K)
    REPGAP_TAKE(ci, std::int64_t, tq * p.K)
    REPGAP_TAKE(blk, T, (std::size_t)QMAX * RB)
    REPGAP_TAKE(mask, std::uint32_t, (std::size_t)QMAX)
    REPGAP_TAKE(lanepan, std::int32_t, (std::size_t)QB * RB)
    if (p.method == METHOD_FUSED) {
        REPGAP_TAKE(acc, T, tq * RB)
        REPGAP_TAKE(sec, T, tq)
    } else {
        w->acc = nullptr;
        w->sec = nullptr;
    }
    REPGAP_TAKE(exd, double, p.K)
    REPGAP_TAKE(exi, std::int64_t, p.K)
    REPGAP_TAKE(perm, int, p.K)
#undef REPGAP_TAKE
    return 0;
}

inline void brute_work_free(void* mem) { std::free(mem); }

// Insert (v, idx) into the sorted candidate list (cd, ci) of length K,
// dropping the current last entry. The caller has checked v < cd[K-1].
template <typename T>
inline void cand_insert(T* cd, std::int64_t* ci, int K, T v, std::int64_t idx) {
    int p = K - 1;
    while (p > 0 && cd[p - 1] > v) { cd[p] = cd[p - 1]; ci[p] = ci[p - 1]; --p; }
    cd[p] = v; ci[p] = idx;
}

// Squared distance of two strided rows in float64, difference first. Four
// partial sums for instruction-level parallelism; the order of the additions
// is fixed, so the result does not depend on tiles or threads.
template <typename T>
inline double sqdist_strided(const T* q, std::ptrdiff_t qs1, const T* r, std::ptrdiff_t rs1, int D) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int d = 0;
    for (; d + 4 <= D; d += 4) {
        double t0 = (double)q[(d + 0) * qs1] - (double)r[(d + 0) * rs1];
        double t1 = (double)q[(d + 1) * qs1] - (double)r[(d + 1) * rs1];
        double t2 = (double)q[(d + 2) * qs1] - (double)r[(d + 2) * rs1];
        double t3 = (double)q[(d + 3) * qs1] - (double)r[(d + 3) * rs1];
        s0 += t0 * t0; s1 += t1 * t1; s2 += t2 * t2; s3 += t3 * t3;
    }
    for (; d < D; ++d) {
        double t = (double)q[d * qs1] - (double)r[d * rs1];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

template <typename T>
inline double exact_sqdist(const BruteProblem<T>& p, std::int64_t qrow, std::int64_t rrow) {
    return sqdist_strided(p.Q + qrow * p.qs0, p.qs1, p.R + rrow * p.rs0, p.rs1, p.D);
}

template <typename T>
inline void finalize_checkpoint(const BruteProblem<T>& p, BruteWork<T>* w, std::int64_t q0,
                                int nq, int j) {
    const int K = p.K, k = p.k;
    for (int i = 0; i < nq; ++i) {
        const std::int64_t* ci = w->ci + (std::size_t)i * K;
        int nc = 0;
        for (int c = 0; c < K; ++c) {
            if (ci[c] < 0) continue;
            std::int64_t row = p.order ? p.order[ci[c]] : ci[c];
            w->exd[nc] = exact_sqdist(p, q0 + i, row);
            w->exi[nc] = row;
            w->perm[nc] = nc;
            ++nc;
        }
        // insertion sort by (distance, index): K is small
        for (int a = 1; a < nc; ++a) {
            int v = w->perm[a], b = a;
            while (b > 0) {
                int u = w->perm[b - 1];
                if (w->exd[u] > w->exd[v] || (w->exd[u] == w->exd[v] && w->exi[u] > w->exi[v])) {
                    w->perm[b] = u; --b;
                } else break;
            }
            w->perm[b] = v;
        }
        std::size_t base = ((std::size_t)j * p.m + q0 + i) * k;
        for (int c = 0; c < k; ++c) {
            if (c < nc) {
                p.out_d[base + c] = w->exd[w->perm[c]];
                p.out_i[base + c] = w->exi[w->perm[c]];
            } else {
                p.out_d[base + c] = std::numeric_limits<double>::infinity();
                p.out_i[base + c] = -1;
            }
        }
    }
}

// The second entry of each query (k = 2, bound_last): the smaller of its
// exact distance and the bound |q|^2 + sec on every row that is not a lane's
// minimum (sec: the sweep's least second-smallest value of |r|^2 - 2 q.r on
// the centred copies, so |q|^2 + sec approximates a squared distance, within
// the error model of the expanded search), never below the first entry.
template <typename T>
inline void bound_runner_up(const BruteProblem<T>& p, BruteWork<T>* w, std::int64_t q0, int nq, int j) {
    for (int i = 0; i < nq; ++i) {
        std::size_t base = ((std::size_t)j * p.m + q0 + i) * p.k;
        const T* qp = w->Qp + (std::size_t)i * p.D;   // -2 (q - c), exactly
        double qn = 0;
        for (int d = 0; d < p.D; ++d) { double v = -0.5 * (double)qp[d]; qn += v * v; }
        const double b = qn + (double)w->sec[i];
        p.out_d[base + 1] = std::max(p.out_d[base], std::min(p.out_d[base + 1], b));
    }
}

inline void call_gemm(sgemm_ptr f, dgemm_ptr, int M, int N, int Kd, const float* A, int lda,
                      const float* B, int ldb, float* C, int ldc) {
    char ta = 'T', tb = 'N'; float one = 1.0f, zero = 0.0f;
    f(&ta, &tb, &M, &N, &Kd, &one, (float*)A, &lda, (float*)B, &ldb, &zero, C, &ldc);
}
inline void call_gemm(sgemm_ptr, dgemm_ptr f, int M, int N, int Kd, const double* A, int lda,
                      const double* B, int ldb, double* C, int ldc) {
    char ta = 'T', tb = 'N'; double one = 1.0, zero = 0.0;
    f(&ta, &tb, &M, &N, &Kd, &one, (double*)A, &lda, (double*)B, &ldb, &zero, C, &ldc);
}

// Pack reference rows ranks [t0, t0 + RB) into one D x RB panel (with the
// centred norms for the fused path). Lanes at or beyond `end` are padding
// that never passes the strict threshold test: +inf coordinates (direct) or
// an infinite norm (fused).
template <typename T>
inline void pack_panel(const BruteProblem<T>& p, std::int64_t t0, std::int64_t end, T* pan, T* rn) {
    const int D = p.D;
    const bool fused = p.method == METHOD_FUSED;
    const T inf = std::numeric_limits<T>::infinity();
    for (int jj = 0; jj < RB; ++jj) {
        std::int64_t t = t0 + jj;
        if (t < end) {
            std::int64_t row = p.order ? p.order[t] : t;
            const T* r = p.R + row * p.rs0;
            if (fused) {
                double s = 0;
                for (int d = 0; d < D; ++d) {
                    T v = (T)((double)r[d * p.rs1] - p.center[d]);
                    pan[(std::size_t)d * RB + jj] = v;
                    s += (double)v * (double)v;
                }
                rn[jj] = (T)s;
            } else {
                for (int d = 0; d < D; ++d) pan[(std::size_t)d * RB + jj] = r[d * p.rs1];
            }
        } else {
            for (int d = 0; d < D; ++d) pan[(std::size_t)d * RB + jj] = fused ? 0 : inf;
            rn[jj] = inf;
        }
    }
}

// Centred rows ranks [t0, t1) as BLAS reads them (row-major, stride D) and
// their norms: the gemm path's operand.
template <typename T>
inline void pack_rows(const BruteProblem<T>& p, std::int64_t t0, std::int64_t t1, T* dst, T* rn) {
    const int D = p.D;
    for (std::int64_t t = t0; t < t1; ++t) {
        std::int64_t row = p.order ? p.order[t] : t;
        const T* r = p.R + row * p.rs0;
        T* o = dst + (std::size_t)(t - t0) * D;
        double s = 0;
        for (int d = 0; d < D; ++d) {
            T v = (T)((double)r[d * p.rs1] - p.center[d]);
            o[d] = v; s += (double)v * (double)v;
        }
        rn[t - t0] = (T)s;
    }
}

// Piece b of the shared packing (ranks b*RB.. of the largest prefix): a
// panel for the SIMD kernels, centred rows for the gemm path.
template <typename T>
inline void pack_shared_panel(const BruteProblem<T>& p, T* gP, T* grn, std::int64_t b) {
    const std::int64_t n = p.ckpt[p.J - 1];
    if (p.method == METHOD_GEMM) {
        const std::int64_t t0 = b * RB, t1 = std::min<std::int64_t>(n, t0 + RB);
        pack_rows(p, t0, t1, gP + (std::size_t)t0 * p.D, grn + t0);
        return;
    }
    pack_panel(p, b * RB, n, gP + (std::size_t)b * p.D * RB, grn + (std::size_t)b * RB);
}

// One packed panel (RB reference rows, ranks tbase..) against every query of
// the tile: each query's candidates below its current K-th value. Lanes
// outside [lo, hi) (a shared panel that straddles the segment) are skipped;
// `sliced`: the fused kernel over slices of DOT_SLICE coordinates,
// DOT_ROWS queries at a time (float32, large D).
template <typename T>
inline void sweep_panel(const BruteProblem<T>& p, BruteWork<T>* w, const T* pan, const T* rnp,
                        std::int64_t tbase, std::int64_t lo, std::int64_t hi, int nq, bool sliced) {
    const int D = p.D, K = p.K;
    const bool fused = p.method == METHOD_FUSED;
    const T inf = std::numeric_limits<T>::infinity();
    const bool edge = tbase < lo || tbase + RB > hi;
    const int QR = sliced ? DOT_ROWS : QB;
    T thr[QMAX];
    // all slices but the last accumulate; the last selects
    int d0 = 0;
    if (sliced)
        for (; d0 + DOT_SLICE < D; d0 += DOT_SLICE)
            for (int i0 = 0; i0 < nq; i0 += QR)
                panel_dots_part(w->Qp + (std::size_t)i0 * D + d0, D, pan + (std::size_t)d0 * RB, DOT_SLICE,
                                w->acc + (std::size_t)i0 * RB, d0 == 0 ? DOT_FIRST : 0, rnp, thr, w->blk,
                                w->mask);
    for (int i0 = 0; i0 < nq; i0 += QR) {
        const int ni = std::min(QR, nq - i0);
        for (int i = 0; i < QR; ++i) thr[i] = (i < ni) ? w->cd[(std::size_t)(i0 + i) * K + K - 1] : -inf;
        if (sliced)
            panel_dots_part(w->Qp + (std::size_t)i0 * D + d0, D, pan + (std::size_t)d0 * RB, D - d0,
                            w->acc + (std::size_t)i0 * RB, DOT_LAST, rnp, thr, w->blk, w->mask);
        else if (fused)
            panel_dots<T>(w->Qp + (std::size_t)i0 * D, pan, D, rnp, thr, w->blk, w->mask);
        else
            panel_distances<T>(w->Qp + (std::size_t)i0 * D, pan, D, thr, w->blk, w->mask);
        std::uint32_t any = 0;
        for (int i = 0; i < QR; ++i) any |= w->mask[i];
        if (!any) continue;
        for (int i = 0; i < ni; ++i) {
            std::uint32_t msk = w->mask[i];
            T* cd = w->cd + (std::size_t)(i0 + i) * K;
            std::int64_t* ci = w->ci + (std::size_t)(i0 + i) * K;
            while (msk) {
                int bit = ctz32(msk);
                msk &= msk - 1;
                const std::int64_t t = tbase + bit;
                if (edge && (t < lo || t >= hi)) continue;
                T v = w->blk[i * RB + bit];
                if (v < cd[K - 1]) cand_insert(cd, ci, K, v, t);
            }
        }
    }
}

// Process query tile number `tile`: queries [tile*tq, min(m, (tile+1)*tq)).
template <typename T>
void brute_query_tile(const BruteProblem<T>& p, BruteWork<T>* w, std::int64_t tile) {
    const int D = p.D, K = p.K;
    const std::int64_t q0 = tile * (std::int64_t)p.tq;
    const int nq = (int)std::min<std::int64_t>(p.tq, p.m - q0);
    const int nq_pad = (int)round_up(nq, QPAD);
    const bool gemm = p.method == METHOD_GEMM;
    const bool fused = p.method == METHOD_FUSED;
    const bool centred = gemm || fused;
    const int sweep = brute_sweep(p.method, p.k, D, (int)sizeof(T), p.bound_last != 0);
    // k = 2 on the lane-minimum sweep: the second entry is each query's bound
    const bool track_sec = sweep == SWEEP_MIN && p.k == 2;
    const T inf = std::numeric_limits<T>::infinity();
    const bool shared = p.gP != nullptr && !gemm && sweep == SWEEP_NONE;   // panels (gemm reads p.gP itself)
    const bool sliced = fused && sizeof(T) == 4 && D > 2 * DOT_SLICE && dot_slices_available();

    // Pack the query tile row-major; the expansion paths centre it, and the
    // k = 1 sweep stores -2 q (an exact scaling) to save its epilogue.
    const double qscale = sweep != SWEEP_NONE ? -2.0 : 1.0;
    for (int i = 0; i < nq; ++i) {
        const T* q = p.Q + (q0 + i) * p.qs0;
        T* dst = w->Qp + (std::size_t)i * D;
        if (centred)
            for (int d = 0; d < D; ++d) dst[d] = (T)((double)q[d * p.qs1] - p.center[d]) * (T)qscale;
        else for (int d = 0; d < D; ++d) dst[d] = q[d * p.qs1];
    }
    for (int i = nq; i < nq_pad; ++i)
        for (int d = 0; d < D; ++d) w->Qp[(std::size_t)i * D + d] = 0;
    for (std::size_t c = 0; c < (std::size_t)nq * K; ++c) { w->cd[c] = inf; w->ci[c] = -1; }
    if (track_sec) for (int i = 0; i < nq; ++i) w->sec[i] = inf;

    std::int64_t start = 0;
    int j = 0;
    double last_poll = now_ms();
    while (j < p.J) {
        if (tile_poll(p.poll, &last_poll)) return;   // the results are discarded
        const std::int64_t end = std::min<std::int64_t>(start + p.tr, p.ckpt[j]);
        const int nb = (int)(end - start);
        if (nb > 0 && shared) {
            // the shared panels cover [start, end) from panel start/RB on; a
            // panel that straddles either end holds rows of other segments,
            // whose lanes sweep_panel skips
            const std::int64_t b0 = start / RB, b1 = (end + RB - 1) / RB;
            for (std::int64_t b = b0; b < b1; ++b) {
                // a segment of a tile that holds every query can take seconds
                // (2e4 queries x 8192 rows at D = 128: about 1 s on an AVX2 core)
                if (((b - b0) & 15) == 15 && tile_poll(p.poll, &last_poll)) return;
                sweep_panel(p, w, p.gP + (std::size_t)b * D * RB, p.grn + (std::size_t)b * RB, b * RB, start,
                            end, nq, sliced);
            }
        } else if (nb > 0 && !gemm) {
            const int npan = (int)round_up(nb, RB) / RB;
            // Pack panels: panel b holds rows start+b*RB.. as a D x RB block.
            for (int b = 0; b < npan; ++b)
                pack_panel(p, start + (std::int64_t)b * RB, end, w->P + (std::size_t)b * D * RB,
                           w->rn + (std::size_t)b * RB);
            if (sweep == SWEEP_MIN) {
                // lane minima over the whole segment, 3 queries at a time (and,
                // for one neighbour's certificate, the bound on every other row)
                T sec3[3], seed3[3];
                for (int i0 = 0; i0 < nq; i0 += 3) {
                    if ((i0 % 96) == 93 && tile_poll(p.poll, &last_poll)) return;
                    const int ni = std::min(3, nq - i0);
                    // each query's candidate list bounds the rows worth a lane
                    for (int i = 0; i < 3; ++i) seed3[i] = i < ni ? w->cd[(std::size_t)(i0 + i) * K + K - 1] : inf;
                    nn1b_panels(w->Qp + (std::size_t)i0 * D, D, w->P, w->rn, npan, seed3, w->blk, w->lanepan,
                                sec3);
                    for (int i = 0; i < ni; ++i) {
                        T* cd = w->cd + (std::size_t)(i0 + i) * K;
                        std::int64_t* ci = w->ci + (std::size_t)(i0 + i) * K;
                        if (track_sec) w->sec[i0 + i] = std::min(w->sec[i0 + i], sec3[i]);
                        for (int lane = 0; lane < RB; ++lane) {
                            const T v = w->blk[i * RB + lane];
                            if (v < cd[K - 1])
                                cand_insert(cd, ci, K, v,
                                            start + (std::int64_t)w->lanepan[i * RB + lane] * RB + lane);
                        }
                    }
                }
            } else if (sweep == SWEEP_TWO) {
                // k = 2, small D: the two smallest per lane over the whole tile, 2 queries at a time
                T* m1 = w->blk; T* m2 = w->blk + 2 * RB;
                std::int32_t* p1 = w->lanepan; std::int32_t* p2 = w->lanepan + 2 * RB;
                for (int i0 = 0; i0 < nq; i0 += 2) {
                    if ((i0 % 64) == 62 && tile_poll(p.poll, &last_poll)) return;
                    const int ni = std::min(2, nq - i0);
                    nn2_panels(w->Qp + (std::size_t)i0 * D, D, w->P, w->rn, npan, m1, p1, m2, p2);
                    for (int i = 0; i < ni; ++i) {
                        T* cd = w->cd + (std::size_t)(i0 + i) * K;
                        std::int64_t* ci = w->ci + (std::size_t)(i0 + i) * K;
                        for (int lane = 0; lane < RB; ++lane) {
                            T v = m1[i * RB + lane];
                            if (v < cd[K - 1])
                                cand_insert(cd, ci, K, v, start + (std::int64_t)p1[i * RB + lane] * RB + lane);
                            v = m2[i * RB + lane];
                            if (v < cd[K - 1])
                                cand_insert(cd, ci, K, v, start + (std::int64_t)p2[i * RB + lane] * RB + lane);
                        }
                    }
                }
            } else
                for (int b = 0; b < npan; ++b) {
                    if ((b & 15) == 15 && tile_poll(p.poll, &last_poll)) return;
                    sweep_panel(p, w, w->P + (std::size_t)b * D * RB, w->rn + (std::size_t)b * RB,
                                start + (std::int64_t)b * RB, start, end, nq, sliced);
                }
        } else if (nb > 0) {
            const T* Pr = w->P;
            const T* rn = w->rn;
            if (p.gP) {
                Pr = p.gP + (std::size_t)start * D;
                rn = p.grn + start;
            } else {
                pack_rows(p, start, end, w->P, w->rn);
            }
            // C^T (nb x nq, column-major) = P (D x nb col-major)^T * Qp (D x nq col-major)
            call_gemm(p.sgemm, p.dgemm, nb, nq, D, Pr, D, w->Qp, D, w->C, nb);
            for (int i = 0; i < nq; ++i) {
                T* cd = w->cd + (std::size_t)i * K;
                std::int64_t* ci = w->ci + (std::size_t)i * K;
                const T* crow = w->C + (std::size_t)i * nb;
                T thr = cd[K - 1];
                for (int jj = 0; jj < nb; ++jj) {
                    T v = rn[jj] - 2 * crow[jj];
                    if (v < thr) { cand_insert(cd, ci, K, v, start + jj); thr = cd[K - 1]; }
                }
            }
        }
        start = end;
        while (j < p.J && end == p.ckpt[j]) {
            finalize_checkpoint(p, w, q0, nq, j);
            if (track_sec) bound_runner_up(p, w, q0, nq, j);
            ++j;
        }
    }
}

}  // namespace repgap
