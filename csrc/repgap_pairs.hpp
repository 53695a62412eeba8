// Pair-distance histogram: counts of pairs in distance bins, fused with GEMM
// tiles so that no pair matrix ever exists beyond one tile.
//
// One *tile pair* (a block of X rows against a block of Y rows) is the unit
// of work of one OpenMP thread:
//   1. both blocks are centred on the data mean and packed in the input
//      precision, with their squared norms (computed in float64);
//   2. one BLAS call (s/dgemm, held to one thread) gives the dot products;
//   3. each squared distance ||x||^2 + ||y||^2 - 2 x.y is binned through a
//      lookup table indexed by the top 19 bits of its float32 pattern (sign,
//      exponent, 10 mantissa bits): a *cell* of relative width 2^-10. The table
//      holds the bin of the cell and a flag saying whether any bin edge lies
//      within the worst-case rounding error of the cell (an "unsafe" cell).
//   4. pairs in unsafe cells take the slow path: with the pair's own error
//      bound, if an edge may lie between the computed and the true squared
//      distance, that distance is recomputed exactly in float64 from the
//      original rows (difference first) and binned by binary search.
// The counts are therefore those of the exact float64 distances (docs/theory.md,
// section 6), whatever the tiles, threads or BLAS: every count is an integer
// sum, so the result is bit-for-bit reproducible.
//
// Error bound of the expansion in precision u (2^-24 or 2^-53), for centred
// rows x, y: rounding the centred coordinates moves the distance by at most
// u(|x| + |y|); the norms and the final additions add a few u(|x| + |y|)^2;
// the dot product any summation order gives, gamma_D |x||y|. Together below
// (D + 8) u (|x| + |y|)^2; we use twice that.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

#include "repgap_brute.hpp"

namespace repgap {

template <typename T>
struct PairProblem {
    const T* X; std::ptrdiff_t xs0, xs1; std::int64_t n;
    const T* Y; std::ptrdiff_t ys0, ys1; std::int64_t m;   // Y == X when same
    int same;                        // unordered pairs within X, each once
    int D;
    const double* center;            // mean of the data (float64)
    const double* edges2; int nb;    // nb + 1 squared edges, increasing
    const std::int32_t* table;       // 2^(31 - CELL_SHIFT) cells: bin * HIST_COPIES, bin nb + 2 when unsafe
    double tol_coef;                 // 2 (D + 8) u
    int tile;                        // rows per block (both sides)
    const std::int64_t* ta; const std::int64_t* tb;   // tile pairs (block numbers)
    sgemm_ptr sgemm; dgemm_ptr dgemm;
};

// Interleaved copies of the histogram (h[bin * HIST_COPIES + copy]) break the store-to-load chains of
// consecutive pairs that fall into the same bin.
constexpr int HIST_COPIES = 8;

#if defined(__GNUC__) || defined(__clang__)
#define REPGAP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define REPGAP_UNLIKELY(x) (x)
#endif

// Function multi-versioning (GCC, x86-64): the loops below are compiled for
// AVX-512, AVX2 and the baseline, and the loader picks one for the CPU.
// Not on overloaded names: GCC's resolvers of overloads may collide.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(_WIN32)
#define REPGAP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define REPGAP_CLONES
#endif


template <typename T>
struct PairWork {
    T* A; T* B; T* C; double* an; double* bn; float* anf; float* bnf;
    double* asq; double* bsq;    // centred norms (not squared), for the error bound
    float* vals; std::int32_t* h32; std::int32_t* ulist;   // one row: squared distances, table entries, unsafe pairs
    std::int64_t last_a;         // block of X now packed in A (-1: none)
    std::int64_t* hist;          // (nb + 3) x HIST_COPIES: bins 0..nb+1 and a spare slot
    void* mem;
};

template <typename T>
inline int pair_work_alloc(const PairProblem<T>& p, PairWork<T>* w, std::int64_t* hist) {
    std::size_t t = round_up(p.tile, 16), D = p.D;
    std::size_t bytes = 2 * round_up(t * D * sizeof(T), 64) + round_up(t * t * sizeof(T), 64)
                        + 4 * round_up(t * sizeof(double), 64) + 4 * round_up(t * sizeof(float), 64)
                        + round_up(sizeof(std::int32_t) * HIST_COPIES * (p.nb + 3), 64) + 64;
    void* mem = std::malloc(bytes);
    w->mem = mem;
    w->hist = hist;
    w->last_a = -1;
    if (!mem) return -1;
    char* c = (char*)round_up((std::size_t)mem, 64);
#define REPGAP_TAKE(field, type, count)                   \
    w->field = (type*)c; c += round_up((count) * sizeof(type), 64);
    REPGAP_TAKE(A, T, t * D)
    REPGAP_TAKE(B, T, t * D)
    REPGAP_TAKE(C, T, t * t)
    REPGAP_TAKE(an, double, t)
    REPGAP_TAKE(bn, double, t)
    REPGAP_TAKE(asq, double, t)
    REPGAP_TAKE(bsq, double, t)
    REPGAP_TAKE(anf, float, t)
    REPGAP_TAKE(bnf, float, t)
    REPGAP_TAKE(vals, float, t)
    REPGAP_TAKE(ulist, std::int32_t, t)
    REPGAP_TAKE(h32, std::int32_t, (std::size_t)HIST_COPIES * (p.nb + 3))
    std::memset(w->h32, 0, sizeof(std::int32_t) * HIST_COPIES * (p.nb + 3));
#undef REPGAP_TAKE
    return 0;
}

// Bin of a squared distance: 0 below the first edge, i in 1..nb for
// [edges2[i-1], edges2[i]), nb + 1 from the last edge on.
inline int bin_of(const double* e2, int nb, double v) {
    // upper_bound over nb + 1 edges
    return (int)(std::upper_bound(e2, e2 + nb + 1, v) - e2);
}

// One centred row in the input precision, and its squared norm in float64.
REPGAP_CLONES
inline double centre_row_f32(const float* x, const double* center, int D, float* d) {
    double s = 0;
    for (int k = 0; k < D; ++k) {
        float v = (float)((double)x[k] - center[k]);
        d[k] = v;
        s += (double)v * (double)v;
    }
    return s;
}
REPGAP_CLONES
inline double centre_row_f64(const double* x, const double* center, int D, double* d) {
    double s = 0;
    for (int k = 0; k < D; ++k) {
        double v = x[k] - center[k];
        d[k] = v;
        s += v * v;
    }
    return s;
}

template <typename T>
inline void pack_block(const T* X, std::ptrdiff_t s0, std::ptrdiff_t s1, std::int64_t r0, int nr,
                       int D, const double* center, T* dst, double* nrm, double* len, float* nrmf) {
    for (int i = 0; i < nr; ++i) {
        const T* x = X + (r0 + i) * s0;
        T* d = dst + (std::size_t)i * D;
        double s = 0;
        if (s1 == 1) {
            if (sizeof(T) == 4)
                s = centre_row_f32((const float*)(const void*)x, center, D, (float*)(void*)d);
            else
                s = centre_row_f64((const double*)(const void*)x, center, D, (double*)(void*)d);
        } else {
            for (int k = 0; k < D; ++k) {
                T v = (T)((double)x[k * s1] - center[k]);
                d[k] = v;
                s += (double)v * (double)v;
            }
        }
        nrm[i] = s;
        len[i] = std::sqrt(s);
        nrmf[i] = (float)s;
    }
}

template <typename T>
inline double exact_pair(const PairProblem<T>& p, std::int64_t i, std::int64_t j) {
    return sqdist_strided(p.X + i * p.xs0, p.xs1, p.Y + j * p.ys0, p.ys1, p.D);
}

// Cells: non-negative float32 patterns >> CELL_SHIFT (sign, 8 exponent and
// 10 mantissa bits: relative width 2^-10); must match _pairs_table.py.
constexpr int CELL_SHIFT = 13;

inline std::uint32_t cell_of(float v) {
    std::uint32_t b;
    std::memcpy(&b, &v, 4);
    return b >> CELL_SHIFT;
}

// The bin of a pair whose cell is unsafe (an edge near it): the bins of the
// ends of the pair's error interval around v, and when they differ, the
// bin of the exact float64 distance.
template <typename T>
inline int unsafe_bin(const PairProblem<T>& p, double dv, double len, std::int64_t gi, std::int64_t gj) {
    const double tol = p.tol_coef * len * len;
    const int lo = bin_of(p.edges2, p.nb, dv - tol);
    if (lo == bin_of(p.edges2, p.nb, dv + tol)) return lo;
    return bin_of(p.edges2, p.nb, exact_pair(p, gi, gj));
}

// ||x||^2 + ||y_j||^2 - 2 x.y_j, clamped at 0, as float (the cell index).
REPGAP_CLONES
inline void pair_sqdist_row_f32(const float* c, const float* yn, float xn, int len, float* out) {
    for (int j = 0; j < len; ++j) {
        float v = yn[j] + xn - 2.0f * c[j];
        out[j] = v > 0.0f ? v : 0.0f;
    }
}
REPGAP_CLONES
inline void pair_sqdist_row_f64(const double* c, const double* yn, double xn, int len, float* out) {
    for (int j = 0; j < len; ++j) {
        double v = yn[j] + xn - 2.0 * c[j];
        out[j] = (float)(v > 0.0 ? v : 0.0);
    }
}

// Pairs of tile pair number t. Returns the number of pairs counted.
template <typename T>
std::int64_t pair_tile(const PairProblem<T>& p, PairWork<T>* w, std::int64_t t) {
    const int D = p.D;
    const std::int64_t a = p.ta[t], b = p.tb[t];
    const std::int64_t i0 = a * p.tile, j0 = b * p.tile;
    const int na = (int)std::min<std::int64_t>(p.tile, p.n - i0);
    const int nbr = (int)std::min<std::int64_t>(p.tile, p.m - j0);
    if (na <= 0 || nbr <= 0) return 0;
    const bool diag = p.same && a == b;
    if (w->last_a != a) {  // consecutive tile pairs of a thread mostly share a
        pack_block(p.X, p.xs0, p.xs1, i0, na, D, p.center, w->A, w->an, w->asq, w->anf);
        w->last_a = a;
    }
    if (!diag) pack_block(p.Y, p.ys0, p.ys1, j0, nbr, D, p.center, w->B, w->bn, w->bsq, w->bnf);
    const T* B = diag ? w->A : w->B;
    const double* bn = diag ? w->an : w->bn;
    const double* bsq = diag ? w->asq : w->bsq;
    const float* bnf = diag ? w->anf : w->bnf;
    // C (column-major nbr x na): C[i * nbr + j] = x_i . y_j
    call_gemm(p.sgemm, p.dgemm, nbr, na, D, B, D, w->A, D, w->C, nbr);
    std::int32_t* const h = w->h32;
    const std::uint32_t* const table = (const std::uint32_t*)p.table;
    float* const vals = w->vals;
    std::int32_t* const ulist = w->ulist;
    const std::uint32_t spare = (std::uint32_t)(p.nb + 2) * HIST_COPIES;
    std::int64_t counted = 0;
    for (int i = 0; i < na; ++i) {
        const int js = diag ? i + 1 : 0;
        const int len = nbr - js;
        const T* crow = w->C + (std::size_t)i * nbr + js;
        counted += len;
        // pass 1 (vectorised): the squared distances
        if (sizeof(T) == 4)
            pair_sqdist_row_f32((const float*)(const void*)crow, bnf + js, w->anf[i], len, vals);
        else
            pair_sqdist_row_f64((const double*)(const void*)crow, bn + js, w->an[i], len, vals);
        // pass 2: the histogram through the table, in HIST_COPIES interleaved
        // copies; unsafe cells count into a spare slot (nb + 2) and are
        // listed, then binned one by one
        int nu = 0;
        std::ptrdiff_t j = 0;
        for (; j + HIST_COPIES <= len; j += HIST_COPIES) {
            for (int c = 0; c < HIST_COPIES; ++c) {
                const std::uint32_t e = table[cell_of(vals[j + c])];
                h[e + c]++;
                if (REPGAP_UNLIKELY(e == spare)) ulist[nu++] = (std::int32_t)(j + c);
            }
        }
        for (; j < len; ++j) {
            const std::uint32_t e = table[cell_of(vals[j])];
            h[e]++;
            if (e == spare) ulist[nu++] = (std::int32_t)j;
        }
        const double xl = w->asq[i];
        for (int u = 0; u < nu; ++u) {
            const int jj = ulist[u];
            // the computed value in the input precision (vals holds it
            // rounded to float32, enough for the cell, not for the bound)
            double dv = (double)vals[jj];
            if (sizeof(T) == 8) {
                const double v = bn[js + jj] + w->an[i] - 2.0 * (double)crow[jj];
                dv = v > 0.0 ? v : 0.0;
            }
            h[(std::uint32_t)unsafe_bin(p, dv, xl + bsq[js + jj], i0 + i, j0 + js + jj) * HIST_COPIES]++;
        }
    }
    // flush the tile's int32 counts (at most tile^2 < 2^31 each)
    const int ht = HIST_COPIES * (p.nb + 3);
    for (int c = 0; c < ht; ++c) { w->hist[c] += h[c]; h[c] = 0; }
    return counted;
}

}  // namespace repgap
