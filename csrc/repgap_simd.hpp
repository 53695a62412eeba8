// Micro-kernels of the direct (difference-then-square) distance search.
//
// One call computes the squared distances between QB query rows (row-major,
// stride D) and one packed panel of RB reference rows (D x RB, transposed so
// that a SIMD load takes one coordinate of RB consecutive reference rows), and
// returns per query a bit mask of the panel rows whose distance is below that
// query's threshold. The selection then touches only those rows, which after
// the first few panels are rare: the inner loop is pure sub + fma, the same
// idea as faiss's fvec_L2sqr_ny_nearest kernels.
//
// The instruction set is chosen at run time (AVX-512F, AVX2+FMA, portable C++)
// so that one binary (a wheel) runs everywhere and uses what the CPU has.
#pragma once
#include <cstddef>
#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define REPGAP_X86_SIMD 1
#include <immintrin.h>
#else
#define REPGAP_X86_SIMD 0
#endif

namespace repgap {

constexpr int QB = 8;   // queries per micro-tile
constexpr int RB = 32;  // reference rows per packed panel

inline int ctz32(std::uint32_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(x);
#else
    int n = 0;
    while (!(x & 1u)) { x >>= 1; ++n; }
    return n;
#endif
}

// Portable version; also the reference for the SIMD ones.
template <typename T>
static void panel_generic(const T* Q, const T* P, int D, const T* thr, T* out,
                          std::uint32_t* mask) {
    T acc[QB][RB];
    for (int i = 0; i < QB; ++i)
        for (int j = 0; j < RB; ++j) acc[i][j] = 0;
    for (int d = 0; d < D; ++d) {
        const T* pd = P + (std::size_t)d * RB;
        for (int i = 0; i < QB; ++i) {
            const T q = Q[(std::size_t)i * D + d];
            for (int j = 0; j < RB; ++j) {
                T t = pd[j] - q;
                acc[i][j] += t * t;
            }
        }
    }
    for (int i = 0; i < QB; ++i) {
        std::uint32_t mk = 0;
        for (int j = 0; j < RB; ++j) {
            out[i * RB + j] = acc[i][j];
            if (acc[i][j] < thr[i]) mk |= (1u << j);
        }
        mask[i] = mk;
    }
}

template <typename T>
static void dot_generic(const T* Q, const T* P, int D, const T* rn, const T* thr, T* out,
                        std::uint32_t* mask) {
    T acc[QB][RB];
    for (int i = 0; i < QB; ++i)
        for (int j = 0; j < RB; ++j) acc[i][j] = 0;
    for (int d = 0; d < D; ++d) {
        const T* pd = P + (std::size_t)d * RB;
        for (int i = 0; i < QB; ++i) {
            const T q = Q[(std::size_t)i * D + d];
            for (int j = 0; j < RB; ++j) acc[i][j] += pd[j] * q;
        }
    }
    for (int i = 0; i < QB; ++i) {
        std::uint32_t mk = 0;
        for (int j = 0; j < RB; ++j) {
            T v = rn[j] - 2 * acc[i][j];
            out[i * RB + j] = v;
            if (v < thr[i]) mk |= (1u << j);
        }
        mask[i] = mk;
    }
}

#if REPGAP_X86_SIMD

__attribute__((target("avx512f")))
static void panel_f32_avx512(const float* Q, const float* P, int D, const float* thr,
                             float* out, std::uint32_t* mask) {
  for (int g = 0; g < 2; ++g, Q += 4 * D, thr += 4, out += 4 * 32, mask += 4) {
    __m512 a0 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps();
    __m512 a1 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
    __m512 a3 = _mm512_setzero_ps(), b3 = _mm512_setzero_ps();
    const float* q0 = Q; const float* q1 = Q + D; const float* q2 = Q + 2 * D; const float* q3 = Q + 3 * D;
    for (int d = 0; d < D; ++d) {
        const __m512 lo = _mm512_loadu_ps(P + (std::size_t)d * 32);
        const __m512 hi = _mm512_loadu_ps(P + (std::size_t)d * 32 + 16);
        __m512 q, t;
        q = _mm512_set1_ps(q0[d]);
        t = _mm512_sub_ps(lo, q); a0 = _mm512_fmadd_ps(t, t, a0);
        t = _mm512_sub_ps(hi, q); b0 = _mm512_fmadd_ps(t, t, b0);
        q = _mm512_set1_ps(q1[d]);
        t = _mm512_sub_ps(lo, q); a1 = _mm512_fmadd_ps(t, t, a1);
        t = _mm512_sub_ps(hi, q); b1 = _mm512_fmadd_ps(t, t, b1);
        q = _mm512_set1_ps(q2[d]);
        t = _mm512_sub_ps(lo, q); a2 = _mm512_fmadd_ps(t, t, a2);
        t = _mm512_sub_ps(hi, q); b2 = _mm512_fmadd_ps(t, t, b2);
        q = _mm512_set1_ps(q3[d]);
        t = _mm512_sub_ps(lo, q); a3 = _mm512_fmadd_ps(t, t, a3);
        t = _mm512_sub_ps(hi, q); b3 = _mm512_fmadd_ps(t, t, b3);
    }
#define REPGAP_EMIT(i, a, b)                                                        \
    {                                                                               \
        const __m512 th = _mm512_set1_ps(thr[i]);                                   \
        _mm512_storeu_ps(out + i * 32, a); _mm512_storeu_ps(out + i * 32 + 16, b);  \
        std::uint32_t ml = _mm512_cmp_ps_mask(a, th, _CMP_LT_OQ);                   \
        std::uint32_t mh = _mm512_cmp_ps_mask(b, th, _CMP_LT_OQ);                   \
        mask[i] = ml | (mh << 16);                                                  \
    }
    REPGAP_EMIT(0, a0, b0) REPGAP_EMIT(1, a1, b1) REPGAP_EMIT(2, a2, b2) REPGAP_EMIT(3, a3, b3)
#undef REPGAP_EMIT
  }
}

__attribute__((target("avx512f")))
static void panel_f64_avx512(const double* Q, const double* P, int D, const double* thr,
                             double* out, std::uint32_t* mask) {
  for (int g = 0; g < 2; ++g, Q += 4 * D, thr += 4, out += 4 * 32, mask += 4) {
    for (int i = 0; i < 4; ++i) mask[i] = 0;
    for (int h = 0; h < 2; ++h) {  // two halves of 16 rows (2 x 8 lanes)
        __m512d a0 = _mm512_setzero_pd(), b0 = _mm512_setzero_pd();
        __m512d a1 = _mm512_setzero_pd(), b1 = _mm512_setzero_pd();
        __m512d a2 = _mm512_setzero_pd(), b2 = _mm512_setzero_pd();
        __m512d a3 = _mm512_setzero_pd(), b3 = _mm512_setzero_pd();
        const double* ph = P + 16 * h;
        for (int d = 0; d < D; ++d) {
            const __m512d lo = _mm512_loadu_pd(ph + (std::size_t)d * 32);
            const __m512d hi = _mm512_loadu_pd(ph + (std::size_t)d * 32 + 8);
            __m512d q, t;
            q = _mm512_set1_pd(Q[d]);
            t = _mm512_sub_pd(lo, q); a0 = _mm512_fmadd_pd(t, t, a0);
            t = _mm512_sub_pd(hi, q); b0 = _mm512_fmadd_pd(t, t, b0);
            q = _mm512_set1_pd(Q[D + d]);
            t = _mm512_sub_pd(lo, q); a1 = _mm512_fmadd_pd(t, t, a1);
            t = _mm512_sub_pd(hi, q); b1 = _mm512_fmadd_pd(t, t, b1);
            q = _mm512_set1_pd(Q[2 * D + d]);
            t = _mm512_sub_pd(lo, q); a2 = _mm512_fmadd_pd(t, t, a2);
            t = _mm512_sub_pd(hi, q); b2 = _mm512_fmadd_pd(t, t, b2);
            q = _mm512_set1_pd(Q[3 * D + d]);
            t = _mm512_sub_pd(lo, q); a3 = _mm512_fmadd_pd(t, t, a3);
            t = _mm512_sub_pd(hi, q); b3 = _mm512_fmadd_pd(t, t, b3);
        }
#define REPGAP_EMIT(i, a, b)                                                                  \
    {                                                                                         \
        const __m512d th = _mm512_set1_pd(thr[i]);                                            \
        _mm512_storeu_pd(out + i * 32 + 16 * h, a); _mm512_storeu_pd(out + i * 32 + 16 * h + 8, b); \
        std::uint32_t ml = _mm512_cmp_pd_mask(a, th, _CMP_LT_OQ);                             \
        std::uint32_t mh = _mm512_cmp_pd_mask(b, th, _CMP_LT_OQ);                             \
        mask[i] |= (ml | (mh << 8)) << (16 * h);                                              \
    }
        REPGAP_EMIT(0, a0, b0) REPGAP_EMIT(1, a1, b1) REPGAP_EMIT(2, a2, b2) REPGAP_EMIT(3, a3, b3)
#undef REPGAP_EMIT
    }
  }
}

__attribute__((target("avx2,fma")))
static void panel_f32_avx2(const float* Q, const float* P, int D, const float* thr,
                           float* out, std::uint32_t* mask) {
  for (int g = 0; g < 2; ++g, Q += 4 * D, thr += 4, out += 4 * 32, mask += 4) {
    for (int i = 0; i < 4; ++i) mask[i] = 0;
    for (int h = 0; h < 2; ++h) {  // two halves of 16 rows (2 x 8 lanes)
        __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
        __m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps();
        __m256 a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
        const float* ph = P + 16 * h;
        for (int d = 0; d < D; ++d) {
            const __m256 lo = _mm256_loadu_ps(ph + (std::size_t)d * 32);
            const __m256 hi = _mm256_loadu_ps(ph + (std::size_t)d * 32 + 8);
            __m256 q, t;
            q = _mm256_broadcast_ss(Q + d);
            t = _mm256_sub_ps(lo, q); a0 = _mm256_fmadd_ps(t, t, a0);
            t = _mm256_sub_ps(hi, q); b0 = _mm256_fmadd_ps(t, t, b0);
            q = _mm256_broadcast_ss(Q + D + d);
            t = _mm256_sub_ps(lo, q); a1 = _mm256_fmadd_ps(t, t, a1);
            t = _mm256_sub_ps(hi, q); b1 = _mm256_fmadd_ps(t, t, b1);
            q = _mm256_broadcast_ss(Q + 2 * D + d);
            t = _mm256_sub_ps(lo, q); a2 = _mm256_fmadd_ps(t, t, a2);
            t = _mm256_sub_ps(hi, q); b2 = _mm256_fmadd_ps(t, t, b2);
            q = _mm256_broadcast_ss(Q + 3 * D + d);
            t = _mm256_sub_ps(lo, q); a3 = _mm256_fmadd_ps(t, t, a3);
            t = _mm256_sub_ps(hi, q); b3 = _mm256_fmadd_ps(t, t, b3);
        }
#define REPGAP_EMIT(i, a, b)                                                                   \
    {                                                                                          \
        const __m256 th = _mm256_set1_ps(thr[i]);                                              \
        _mm256_storeu_ps(out + i * 32 + 16 * h, a); _mm256_storeu_ps(out + i * 32 + 16 * h + 8, b); \
        std::uint32_t ml = (std::uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a, th, _CMP_LT_OQ)); \
        std::uint32_t mh = (std::uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(b, th, _CMP_LT_OQ)); \
        mask[i] |= (ml | (mh << 8)) << (16 * h);                                               \
    }
        REPGAP_EMIT(0, a0, b0) REPGAP_EMIT(1, a1, b1) REPGAP_EMIT(2, a2, b2) REPGAP_EMIT(3, a3, b3)
#undef REPGAP_EMIT
    }
  }
}

// Fused expansion kernel on centred data: v = ||r||^2 - 2 q.r (the query's own
// norm is a constant of the row and does not change the ranking). One FMA per
// coordinate and pair: the GEMM micro-kernel, with the selection fused in.
__attribute__((target("avx512f")))
static void dot_f32_avx512(const float* Q, const float* P, int D, const float* rn,
                           const float* thr, float* out, std::uint32_t* mask) {
    __m512 a[8], b[8];
    for (int i = 0; i < 8; ++i) { a[i] = _mm512_setzero_ps(); b[i] = _mm512_setzero_ps(); }
    for (int d = 0; d < D; ++d) {
        const __m512 lo = _mm512_loadu_ps(P + (std::size_t)d * 32);
        const __m512 hi = _mm512_loadu_ps(P + (std::size_t)d * 32 + 16);
#define REPGAP_DOT(i)                                                  \
        {   const __m512 q = _mm512_set1_ps(Q[(std::size_t)(i) * D + d]); \
            a[i] = _mm512_fmadd_ps(lo, q, a[i]); b[i] = _mm512_fmadd_ps(hi, q, b[i]); }
        REPGAP_DOT(0) REPGAP_DOT(1) REPGAP_DOT(2) REPGAP_DOT(3)
        REPGAP_DOT(4) REPGAP_DOT(5) REPGAP_DOT(6) REPGAP_DOT(7)
#undef REPGAP_DOT
    }
    const __m512 m2 = _mm512_set1_ps(-2.0f);
    const __m512 rlo = _mm512_loadu_ps(rn), rhi = _mm512_loadu_ps(rn + 16);
    // unrolled by hand: constant register indices keep a[] and b[] out of memory
#define REPGAP_SEL(i)                                                                  \
    {                                                                                  \
        const __m512 th = _mm512_set1_ps(thr[i]);                                      \
        const __m512 vl = _mm512_fmadd_ps(m2, a[i], rlo);                              \
        const __m512 vh = _mm512_fmadd_ps(m2, b[i], rhi);                              \
        const std::uint32_t ml = _mm512_cmp_ps_mask(vl, th, _CMP_LT_OQ);               \
        const std::uint32_t mh = _mm512_cmp_ps_mask(vh, th, _CMP_LT_OQ);               \
        const std::uint32_t mk = ml | (mh << 16);                                      \
        mask[i] = mk;                                                                  \
        /* the values are read only where a bit is set: store them only then */        \
        if (mk) { _mm512_storeu_ps(out + i * 32, vl); _mm512_storeu_ps(out + i * 32 + 16, vh); } \
    }
    REPGAP_SEL(0) REPGAP_SEL(1) REPGAP_SEL(2) REPGAP_SEL(3)
    REPGAP_SEL(4) REPGAP_SEL(5) REPGAP_SEL(6) REPGAP_SEL(7)
#undef REPGAP_SEL
}

// The fused kernel over a slice of the coordinates [d0, d0 + nd): Q and P
// point at the slice's first coordinate (Q rows have stride ldq). The
// accumulators come from and go back to `acc` (QB x RB floats) unless the
// slice is the first (DOT_FIRST: start from zero) or the last (DOT_LAST:
// select as dot_f32_avx512 does). Slicing keeps a panel's slice in L1 while
// every query block of the tile passes over it; the additions are made in
// the same order as in one pass, so the values are the same bit for bit.
enum { DOT_FIRST = 1, DOT_LAST = 2 };

template <int NQ>
__attribute__((target("avx512f")))
static void dot_f32_avx512_part(const float* Q, int ldq, const float* P, int nd, float* acc, int phase,
                                const float* rn, const float* thr, float* out, std::uint32_t* mask) {
    __m512 a[NQ], b[NQ];
    if (phase & DOT_FIRST) {
#pragma GCC unroll 16
        for (int i = 0; i < NQ; ++i) { a[i] = _mm512_setzero_ps(); b[i] = _mm512_setzero_ps(); }
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < NQ; ++i) { a[i] = _mm512_loadu_ps(acc + i * 32); b[i] = _mm512_loadu_ps(acc + i * 32 + 16); }
    }
    for (int d = 0; d < nd; ++d) {
        const __m512 lo = _mm512_loadu_ps(P + (std::size_t)d * 32);
        const __m512 hi = _mm512_loadu_ps(P + (std::size_t)d * 32 + 16);
#pragma GCC unroll 16
        for (int i = 0; i < NQ; ++i) {
            const __m512 q = _mm512_set1_ps(Q[(std::size_t)i * ldq + d]);
            a[i] = _mm512_fmadd_ps(lo, q, a[i]); b[i] = _mm512_fmadd_ps(hi, q, b[i]);
        }
    }
    if (!(phase & DOT_LAST)) {
#pragma GCC unroll 16
        for (int i = 0; i < NQ; ++i) { _mm512_storeu_ps(acc + i * 32, a[i]); _mm512_storeu_ps(acc + i * 32 + 16, b[i]); }
        return;
    }
    const __m512 m2 = _mm512_set1_ps(-2.0f);
    const __m512 rlo = _mm512_loadu_ps(rn), rhi = _mm512_loadu_ps(rn + 16);
#pragma GCC unroll 16
    for (int i = 0; i < NQ; ++i) {
        const __m512 th = _mm512_set1_ps(thr[i]);
        const __m512 vl = _mm512_fmadd_ps(m2, a[i], rlo);
        const __m512 vh = _mm512_fmadd_ps(m2, b[i], rhi);
        const std::uint32_t ml = _mm512_cmp_ps_mask(vl, th, _CMP_LT_OQ);
        const std::uint32_t mh = _mm512_cmp_ps_mask(vh, th, _CMP_LT_OQ);
        const std::uint32_t mk = ml | (mh << 16);
        mask[i] = mk;
        if (mk) { _mm512_storeu_ps(out + i * 32, vl); _mm512_storeu_ps(out + i * 32 + 16, vh); }
    }
}

// k = 1 in low dimension, three queries at a time: sweep every panel of a
// reference tile keeping, per SIMD lane, a running minimum and its panel
// number in registers (the queries come packed as -2 q: the accumulators
// start from ||r||^2 and end at ||r||^2 - 2 q.r). The per-panel epilogue is
// a min and masked moves instead of a compare, mask extraction and branch
// per query, which dominate when D is small; the 32 lane minima per query
// feed the usual candidate list, recomputed exactly as on every path. Each
// lane also keeps its second smallest value (no index). Every row of the
// sweep that is not its lane's minimum has a value at least its lane's
// second smallest, so the least of those over the lanes (`second_out`, one
// per query) bounds every such row from below: the certificate's margin for
// the one nearest neighbour, which otherwise needs the two-per-lane sweep
// (nn2) and its indices. Each lane starts from its query's `seed` (the
// candidate list's current last value, or inf) as if two rows of that value
// were already in it: a lane minimum is then either a row below the seed or
// the seed itself (which the caller never takes), and the second smallest of
// the lane stays a lower bound on every other row (those the seed kept out
// are at least the seed). After the first tile few rows beat the seed, which
// lets the AVX2 sweep skip its state updates.
__attribute__((target("avx512f")))
static void nn1b_f32_avx512(const float* Q, int D, const float* P, const float* rn, int npan,
                            const float* seed, float* minv_out, std::int32_t* pan_out, float* second_out) {
    const float* q0 = Q; const float* q1 = Q + D; const float* q2 = Q + 2 * D;
    const __m512 e0 = _mm512_set1_ps(seed[0]), e1 = _mm512_set1_ps(seed[1]), e2 = _mm512_set1_ps(seed[2]);
    __m512 m0l = e0, m0h = e0, m1l = e1, m1h = e1, m2l = e2, m2h = e2;
    __m512 s0l = e0, s0h = e0, s1l = e1, s1h = e1, s2l = e2, s2h = e2;
    __m512i i0l = _mm512_setzero_si512(), i0h = i0l, i1l = i0l, i1h = i0l, i2l = i0l, i2h = i0l;
    for (int b = 0; b < npan; ++b) {
        const float* pan = P + (std::size_t)b * D * 32;
        const __m512 rl = _mm512_loadu_ps(rn + (std::size_t)b * 32), rh = _mm512_loadu_ps(rn + (std::size_t)b * 32 + 16);
        __m512 a0 = rl, c0 = rh, a1 = rl, c1 = rh, a2 = rl, c2 = rh;
        for (int d = 0; d < D; ++d) {
            const __m512 lo = _mm512_loadu_ps(pan + (std::size_t)d * 32);
            const __m512 hi = _mm512_loadu_ps(pan + (std::size_t)d * 32 + 16);
            __m512 lo_r = lo, hi_r = hi;
            // one load of each panel vector for the three queries: without the
            // barrier GCC folds the loads into each FMA, and the sweep is then
            // bound by loads (9 per coordinate for 6 FMAs)
            __asm__("" : "+v"(lo_r), "+v"(hi_r));
            __m512 q;
            q = _mm512_set1_ps(q0[d]); a0 = _mm512_fmadd_ps(lo_r, q, a0); c0 = _mm512_fmadd_ps(hi_r, q, c0);
            q = _mm512_set1_ps(q1[d]); a1 = _mm512_fmadd_ps(lo_r, q, a1); c1 = _mm512_fmadd_ps(hi_r, q, c1);
            q = _mm512_set1_ps(q2[d]); a2 = _mm512_fmadd_ps(lo_r, q, a2); c2 = _mm512_fmadd_ps(hi_r, q, c2);
        }
        const __m512i bi = _mm512_set1_epi32(b);
        // second = min(second, max(min, v)) before min = min(min, v): the
        // second smallest of the lane so far, whichever of the two v displaces
#define REPGAP_UPDB(v, mv, sv, iv)                                      \
        {   const __mmask16 lt = _mm512_cmp_ps_mask(v, mv, _CMP_LT_OQ);   \
            sv = _mm512_min_ps(sv, _mm512_max_ps(mv, v));                 \
            mv = _mm512_mask_mov_ps(mv, lt, v);                           \
            iv = _mm512_mask_mov_epi32(iv, lt, bi); }
        REPGAP_UPDB(a0, m0l, s0l, i0l) REPGAP_UPDB(c0, m0h, s0h, i0h)
        REPGAP_UPDB(a1, m1l, s1l, i1l) REPGAP_UPDB(c1, m1h, s1h, i1h)
        REPGAP_UPDB(a2, m2l, s2l, i2l) REPGAP_UPDB(c2, m2h, s2h, i2h)
#undef REPGAP_UPDB
    }
    _mm512_storeu_ps(minv_out + 0, m0l); _mm512_storeu_ps(minv_out + 16, m0h);
    _mm512_storeu_ps(minv_out + 32, m1l); _mm512_storeu_ps(minv_out + 48, m1h);
    _mm512_storeu_ps(minv_out + 64, m2l); _mm512_storeu_ps(minv_out + 80, m2h);
    _mm512_storeu_si512(pan_out + 0, i0l); _mm512_storeu_si512(pan_out + 16, i0h);
    _mm512_storeu_si512(pan_out + 32, i1l); _mm512_storeu_si512(pan_out + 48, i1h);
    _mm512_storeu_si512(pan_out + 64, i2l); _mm512_storeu_si512(pan_out + 80, i2h);
    second_out[0] = _mm512_reduce_min_ps(_mm512_min_ps(s0l, s0h));
    second_out[1] = _mm512_reduce_min_ps(_mm512_min_ps(s1l, s1h));
    second_out[2] = _mm512_reduce_min_ps(_mm512_min_ps(s2l, s2h));
}

// nn1b_f32_avx512 on AVX2 + FMA: the same three queries, 32 lanes, seeds and
// outputs, and the same FMA chain per lane (from ||r||^2, coordinate by
// coordinate), so every output is the same bits (for finite values: the
// engine scales the data so that no norm overflows). AVX2 has 16 vector
// registers: the 12 accumulators, one panel vector and the three broadcasts
// fill them, so the lane states (minimum, second smallest, panel) live in L1,
// and a query's are read and written only when one of its 32 values beats
// its lane's second smallest (the update is a no-op otherwise), which after
// the first tile is rare. Without the sweep, k = 1 at D = 16 ran on the
// thresholded panel path at 0.56x faiss's speed on an AVX2 EPYC (Zen 3);
// with unconditional updates the sweep ran at 39 GFLOP/s on one core, 56 %
// of its speed at D = 64 (benchmarks/README.md, session 15).
__attribute__((target("avx2,fma")))
static void nn1b_f32_avx2(const float* Q, int D, const float* P, const float* rn, int npan,
                          const float* seed, float* minv_out, std::int32_t* pan_out, float* second_out) {
    const float* q0 = Q; const float* q1 = Q + D; const float* q2 = Q + 2 * D;
    alignas(32) float mv[3][32], sv[3][32];
    alignas(32) std::int32_t iv[3][32];
    for (int i = 0; i < 3; ++i) {
        const __m256 e = _mm256_set1_ps(seed[i]);
        for (int v = 0; v < 4; ++v) {
            _mm256_store_ps(mv[i] + 8 * v, e);
            _mm256_store_ps(sv[i] + 8 * v, e);
            _mm256_store_si256((__m256i*)(iv[i] + 8 * v), _mm256_setzero_si256());
        }
    }
    for (int b = 0; b < npan; ++b) {
        const float* pan = P + (std::size_t)b * D * 32;
        const float* r = rn + (std::size_t)b * 32;
        __m256 a[3][4];
        for (int v = 0; v < 4; ++v) {
            const __m256 rv = _mm256_loadu_ps(r + 8 * v);
            a[0][v] = rv; a[1][v] = rv; a[2][v] = rv;
        }
        for (int d = 0; d < D; ++d) {
            const __m256 b0 = _mm256_broadcast_ss(q0 + d), b1 = _mm256_broadcast_ss(q1 + d),
                         b2 = _mm256_broadcast_ss(q2 + d);
            const float* pd = pan + (std::size_t)d * 32;
            for (int v = 0; v < 4; ++v) {
                __m256 x = _mm256_loadu_ps(pd + 8 * v);
                // one load for the three queries (as in the AVX-512 sweep)
                __asm__("" : "+x"(x));
                a[0][v] = _mm256_fmadd_ps(x, b0, a[0][v]);
                a[1][v] = _mm256_fmadd_ps(x, b1, a[1][v]);
                a[2][v] = _mm256_fmadd_ps(x, b2, a[2][v]);
            }
        }
        const __m256 bi = _mm256_castsi256_ps(_mm256_set1_epi32(b));
        for (int i = 0; i < 3; ++i) {
            __m256 any = _mm256_cmp_ps(a[i][0], _mm256_load_ps(sv[i]), _CMP_LT_OQ);
            for (int v = 1; v < 4; ++v)
                any = _mm256_or_ps(any, _mm256_cmp_ps(a[i][v], _mm256_load_ps(sv[i] + 8 * v), _CMP_LT_OQ));
            if (!_mm256_movemask_ps(any)) continue;
            for (int v = 0; v < 4; ++v) {
                const __m256 x = a[i][v];
                const __m256 m = _mm256_load_ps(mv[i] + 8 * v);
                const __m256 lt = _mm256_cmp_ps(x, m, _CMP_LT_OQ);
                // second = min(second, max(min, v)), then min = (v < min ? v : min)
                _mm256_store_ps(sv[i] + 8 * v, _mm256_min_ps(_mm256_load_ps(sv[i] + 8 * v), _mm256_max_ps(m, x)));
                _mm256_store_ps(mv[i] + 8 * v, _mm256_blendv_ps(m, x, lt));
                const __m256 ix = _mm256_load_ps((const float*)(iv[i] + 8 * v));
                _mm256_store_ps((float*)(iv[i] + 8 * v), _mm256_blendv_ps(ix, bi, lt));
            }
        }
    }
    for (int i = 0; i < 3; ++i) {
        __m256 s = _mm256_load_ps(sv[i]);
        for (int v = 0; v < 32; ++v) {
            minv_out[32 * i + v] = mv[i][v];
            pan_out[32 * i + v] = iv[i][v];
        }
        for (int v = 1; v < 4; ++v) s = _mm256_min_ps(s, _mm256_load_ps(sv[i] + 8 * v));
        alignas(32) float t[8];
        _mm256_store_ps(t, s);
        // the least of the lanes, as _mm512_reduce_min_ps (finite values: any order gives it)
        float mn = t[0];
        for (int l = 1; l < 8; ++l) mn = t[l] < mn ? t[l] : mn;
        second_out[i] = mn;
    }
}

__attribute__((target("avx2,fma")))
static void dot_f32_avx2(const float* Q, const float* P, int D, const float* rn,
                         const float* thr, float* out, std::uint32_t* mask) {
    for (int i = 0; i < 8; ++i) mask[i] = 0;
    for (int g = 0; g < 2; ++g) {          // query halves
        for (int h = 0; h < 2; ++h) {      // reference halves of 16
            __m256 a[4], b[4];
            for (int i = 0; i < 4; ++i) { a[i] = _mm256_setzero_ps(); b[i] = _mm256_setzero_ps(); }
            const float* ph = P + 16 * h;
            const float* qg = Q + (std::size_t)4 * g * D;
            for (int d = 0; d < D; ++d) {
                const __m256 lo = _mm256_loadu_ps(ph + (std::size_t)d * 32);
                const __m256 hi = _mm256_loadu_ps(ph + (std::size_t)d * 32 + 8);
                for (int i = 0; i < 4; ++i) {
                    const __m256 q = _mm256_broadcast_ss(qg + (std::size_t)i * D + d);
                    a[i] = _mm256_fmadd_ps(lo, q, a[i]); b[i] = _mm256_fmadd_ps(hi, q, b[i]);
                }
            }
            const __m256 m2 = _mm256_set1_ps(-2.0f);
            const __m256 rlo = _mm256_loadu_ps(rn + 16 * h), rhi = _mm256_loadu_ps(rn + 16 * h + 8);
            for (int i = 0; i < 4; ++i) {
                const int qi = 4 * g + i;
                const __m256 th = _mm256_set1_ps(thr[qi]);
                const __m256 vl = _mm256_fmadd_ps(m2, a[i], rlo), vh = _mm256_fmadd_ps(m2, b[i], rhi);
                _mm256_storeu_ps(out + qi * 32 + 16 * h, vl); _mm256_storeu_ps(out + qi * 32 + 16 * h + 8, vh);
                std::uint32_t ml = (std::uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(vl, th, _CMP_LT_OQ));
                std::uint32_t mh = (std::uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(vh, th, _CMP_LT_OQ));
                mask[qi] |= (ml | (mh << 8)) << (16 * h);
            }
        }
    }
}

// k <= 2 in low dimension: as nn1b_f32_avx512, for 2 queries at a time, keeping the
// two smallest values per SIMD lane (and their panels). The two nearest rows of
// the tile by these values are always among the lanes' two smallest, so the
// candidate list fed from them holds the approximate first and second
// neighbours: the certificate of the exact engine (repgap/_search) then needs
// only the second candidate's distance.
__attribute__((target("avx512f")))
static void nn2_f32_avx512(const float* Q, int D, const float* P, const float* rn, int npan,
                           float* min1_out, std::int32_t* pan1_out, float* min2_out, std::int32_t* pan2_out) {
    const float* q0 = Q; const float* q1 = Q + D;
    const __m512 inf = _mm512_set1_ps(__builtin_inff());
    __m512 a0l = inf, a0h = inf, a1l = inf, a1h = inf;      // smallest
    __m512 b0l = inf, b0h = inf, b1l = inf, b1h = inf;      // second smallest
    const __m512i z = _mm512_setzero_si512();
    __m512i ia0l = z, ia0h = z, ia1l = z, ia1h = z, ib0l = z, ib0h = z, ib1l = z, ib1h = z;
    for (int b = 0; b < npan; ++b) {
        const float* pan = P + (std::size_t)b * D * 32;
        const __m512 rl = _mm512_loadu_ps(rn + (std::size_t)b * 32), rh = _mm512_loadu_ps(rn + (std::size_t)b * 32 + 16);
        __m512 x0 = rl, y0 = rh, x1 = rl, y1 = rh;
        for (int d = 0; d < D; ++d) {
            const __m512 lo = _mm512_loadu_ps(pan + (std::size_t)d * 32);
            const __m512 hi = _mm512_loadu_ps(pan + (std::size_t)d * 32 + 16);
            __m512 q;
            q = _mm512_set1_ps(q0[d]); x0 = _mm512_fmadd_ps(lo, q, x0); y0 = _mm512_fmadd_ps(hi, q, y0);
            q = _mm512_set1_ps(q1[d]); x1 = _mm512_fmadd_ps(lo, q, x1); y1 = _mm512_fmadd_ps(hi, q, y1);
        }
        const __m512i bi = _mm512_set1_epi32(b);
#define REPGAP_UPD2(v, m1, i1, m2, i2)                                           \
        {   const __mmask16 lt1 = _mm512_cmp_ps_mask(v, m1, _CMP_LT_OQ);           \
            const __mmask16 lt2 = _mm512_cmp_ps_mask(v, m2, _CMP_LT_OQ);           \
            m2 = _mm512_mask_mov_ps(m2, lt2, v); i2 = _mm512_mask_mov_epi32(i2, lt2, bi); \
            m2 = _mm512_mask_mov_ps(m2, lt1, m1); i2 = _mm512_mask_mov_epi32(i2, lt1, i1); \
            m1 = _mm512_mask_mov_ps(m1, lt1, v); i1 = _mm512_mask_mov_epi32(i1, lt1, bi); }
        REPGAP_UPD2(x0, a0l, ia0l, b0l, ib0l) REPGAP_UPD2(y0, a0h, ia0h, b0h, ib0h)
        REPGAP_UPD2(x1, a1l, ia1l, b1l, ib1l) REPGAP_UPD2(y1, a1h, ia1h, b1h, ib1h)
#undef REPGAP_UPD2
    }
    _mm512_storeu_ps(min1_out + 0, a0l); _mm512_storeu_ps(min1_out + 16, a0h);
    _mm512_storeu_ps(min1_out + 32, a1l); _mm512_storeu_ps(min1_out + 48, a1h);
    _mm512_storeu_ps(min2_out + 0, b0l); _mm512_storeu_ps(min2_out + 16, b0h);
    _mm512_storeu_ps(min2_out + 32, b1l); _mm512_storeu_ps(min2_out + 48, b1h);
    _mm512_storeu_si512(pan1_out + 0, ia0l); _mm512_storeu_si512(pan1_out + 16, ia0h);
    _mm512_storeu_si512(pan1_out + 32, ia1l); _mm512_storeu_si512(pan1_out + 48, ia1h);
    _mm512_storeu_si512(pan2_out + 0, ib0l); _mm512_storeu_si512(pan2_out + 16, ib0h);
    _mm512_storeu_si512(pan2_out + 32, ib1l); _mm512_storeu_si512(pan2_out + 48, ib1h);
}

inline int cpu_level() {
    // 2: AVX-512F, 1: AVX2 + FMA, 0: portable. __builtin_cpu_supports also checks
    // that the operating system saves the wide registers.
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) level = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 1;
        else level = 0;
    }
    return level;
}
#else
inline int cpu_level() { return 0; }
#endif

// A forced level (0..2) from the environment, for tests of every code path.
inline int& simd_override() { static int v = -1; return v; }
inline void set_simd_override(int level) { simd_override() = level; }
inline int simd_level() {
    int lv = cpu_level();
    int o = simd_override();
    return (o >= 0 && o < lv) ? o : lv;
}

template <typename T>
inline void panel_distances(const T* Q, const T* P, int D, const T* thr, T* out,
                            std::uint32_t* mask);

template <>
inline void panel_distances<float>(const float* Q, const float* P, int D, const float* thr,
                                   float* out, std::uint32_t* mask) {
#if REPGAP_X86_SIMD
    int lv = simd_level();
    if (lv == 2) { panel_f32_avx512(Q, P, D, thr, out, mask); return; }
    if (lv == 1) { panel_f32_avx2(Q, P, D, thr, out, mask); return; }
#endif
    panel_generic<float>(Q, P, D, thr, out, mask);
}

template <>
inline void panel_distances<double>(const double* Q, const double* P, int D, const double* thr,
                                    double* out, std::uint32_t* mask) {
#if REPGAP_X86_SIMD
    if (simd_level() == 2) { panel_f64_avx512(Q, P, D, thr, out, mask); return; }
#endif
    panel_generic<double>(Q, P, D, thr, out, mask);
}

template <typename T>
inline void panel_dots(const T* Q, const T* P, int D, const T* rn, const T* thr, T* out,
                       std::uint32_t* mask) {
    dot_generic<T>(Q, P, D, rn, thr, out, mask);
}

template <>
inline void panel_dots<float>(const float* Q, const float* P, int D, const float* rn,
                              const float* thr, float* out, std::uint32_t* mask) {
#if REPGAP_X86_SIMD
    int lv = simd_level();
    if (lv == 2) { dot_f32_avx512(Q, P, D, rn, thr, out, mask); return; }
    if (lv == 1) { dot_f32_avx2(Q, P, D, rn, thr, out, mask); return; }
#endif
    dot_generic<float>(Q, P, D, rn, thr, out, mask);
}

// Whether the sliced fused kernel (dot_f32_avx512_part) is available.
inline bool dot_slices_available() {
#if REPGAP_X86_SIMD
    return simd_level() == 2;
#else
    return false;
#endif
}

// NQ query rows at a time (NQ = DOT_ROWS on the sliced path)
constexpr int DOT_ROWS = 12;
inline void panel_dots_part(const float* Q, int ldq, const float* P, int nd, float* acc, int phase,
                            const float* rn, const float* thr, float* out, std::uint32_t* mask) {
#if REPGAP_X86_SIMD
    dot_f32_avx512_part<DOT_ROWS>(Q, ldq, P, nd, acc, phase, rn, thr, out, mask);
#endif
}
inline void panel_dots_part(const double*, int, const double*, int, double*, int, const double*,
                            const double*, double*, std::uint32_t*) {}

// Whether the lane-minimum sweep (nn1b) is available: AVX-512 or AVX2 + FMA.
inline bool nn1_available() {
#if REPGAP_X86_SIMD
    return simd_level() >= 1;
#else
    return false;
#endif
}

// Whether the two-per-lane sweep (nn2) is available: AVX-512 only (it keeps
// four states per lane in registers, which AVX2's 16 cannot hold).
inline bool nn2_available() {
#if REPGAP_X86_SIMD
    return simd_level() == 2;
#else
    return false;
#endif
}

inline void nn1b_panels(const float* Q, int D, const float* P, const float* rn, int npan, const float* seed,
                        float* minv_out, std::int32_t* pan_out, float* second_out) {
#if REPGAP_X86_SIMD
    if (simd_level() == 2) nn1b_f32_avx512(Q, D, P, rn, npan, seed, minv_out, pan_out, second_out);
    else nn1b_f32_avx2(Q, D, P, rn, npan, seed, minv_out, pan_out, second_out);
#endif
}
inline void nn1b_panels(const double*, int, const double*, const double*, int, const double*, double*,
                        std::int32_t*, double*) {}

inline void nn2_panels(const float* Q, int D, const float* P, const float* rn, int npan,
                       float* min1, std::int32_t* pan1, float* min2, std::int32_t* pan2) {
#if REPGAP_X86_SIMD
    nn2_f32_avx512(Q, D, P, rn, npan, min1, pan1, min2, pan2);
#endif
}
inline void nn2_panels(const double*, int, const double*, const double*, int, double*, std::int32_t*,
                       double*, std::int32_t*) {}
// The sweep is float32 only (the driver checks sizeof(T) == 4); this overload
// exists so that the double instantiation of the driver compiles.

}  // namespace repgap
