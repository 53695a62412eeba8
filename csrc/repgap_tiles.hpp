// Reading a tile of search values Z (row-major, float32) for the evaluation's
// dense passes (repgap.evaluation): which entries a row's threshold
// (Z >= rowthr[i]) or a column's (Z > colthr[j], or >= when not strict)
// flags for the exact recomputation. Two passes per row, count then fill,
// so the output has its final size and the order is np.nonzero's.
#pragma once
#include <cstdint>

namespace repgap {

template <bool HR, bool HC, bool STRICT>
inline bool tile_flag(float z, float rt, const float* ct, int j) {
    bool f = false;
    if (HR) f = f | (z >= rt);
    if (HC) f = f | (STRICT ? (z > ct[j]) : (z >= ct[j]));
    return f;
}

// branch-free, so that the compiler vectorizes it
template <bool HR, bool HC, bool STRICT>
inline std::int64_t tile_count_row(const float* z, int n, float rt, const float* ct) {
    std::int64_t c = 0;
    for (int j = 0; j < n; ++j) c += tile_flag<HR, HC, STRICT>(z[j], rt, ct, j) ? 1 : 0;
    return c;
}

template <bool HR, bool HC, bool STRICT>
inline void tile_fill_row(const float* z, int n, float rt, const float* ct, std::int64_t row,
                          std::int64_t* qi, std::int64_t* ti, std::int64_t pos, std::int64_t end) {
    for (int j = 0; j < n && pos < end; ++j)
        if (tile_flag<HR, HC, STRICT>(z[j], rt, ct, j)) { qi[pos] = row; ti[pos] = j; ++pos; }
}

// mode: 1 = row test, 2 = column test, 4 = strict column test
inline std::int64_t tile_count(int mode, const float* z, int n, float rt, const float* ct) {
    switch (mode) {
        case 1: case 5: return tile_count_row<true, false, false>(z, n, rt, ct);
        case 2: return tile_count_row<false, true, false>(z, n, rt, ct);
        case 6: return tile_count_row<false, true, true>(z, n, rt, ct);
        case 3: return tile_count_row<true, true, false>(z, n, rt, ct);
        case 7: return tile_count_row<true, true, true>(z, n, rt, ct);
        default: return 0;
    }
}

inline void tile_fill(int mode, const float* z, int n, float rt, const float* ct, std::int64_t row,
                      std::int64_t* qi, std::int64_t* ti, std::int64_t pos, std::int64_t end) {
    switch (mode) {
        case 1: case 5: tile_fill_row<true, false, false>(z, n, rt, ct, row, qi, ti, pos, end); break;
        case 2: tile_fill_row<false, true, false>(z, n, rt, ct, row, qi, ti, pos, end); break;
        case 6: tile_fill_row<false, true, true>(z, n, rt, ct, row, qi, ti, pos, end); break;
        case 3: tile_fill_row<true, true, false>(z, n, rt, ct, row, qi, ti, pos, end); break;
        case 7: tile_fill_row<true, true, true>(z, n, rt, ct, row, qi, ti, pos, end); break;
        default: break;
    }
}

}  // namespace repgap
