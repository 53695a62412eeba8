// A k-d tree that answers k-nearest-neighbour queries within every prefix of an
// ordered reference set in one traversal.
//
// Each point carries its *rank* (its position in the order). Each node carries
// the smallest rank below it, hence the first checkpoint j* whose prefix
// contains any of its points. Because the k-th neighbour distance within a
// prefix can only shrink as the prefix grows, the node can improve only the
// checkpoints j >= j*, and among those the loosest bound is checkpoint j*'s:
// the node is pruned when its box is farther than that bound. A point of rank
// rho updates the checkpoints j >= j(rho) in increasing order and stops at the
// first one it does not improve (the lists only tighten with j).
//
// With one checkpoint this is an ordinary k-d tree (median splits on the
// widest dimension, bounding boxes, nearest child first). Boxes and splits may
// use only the first B coordinates (data rotated to principal axes, whose
// other coordinates carry almost nothing): the box distance over a subset of
// coordinates is still a lower bound, and leaves compute full distances. Coordinates stay in
// the input precision; distances are accumulated in float64 from differences,
// so they are exact to rounding and need no recomputation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>
#include <algorithm>
#include <limits>

namespace repgap {

template <typename T>
struct KDTree {
    int D = 0;
    int B = 0;            // coordinates that carry boxes and splits (the first B; B <= D)
    int leafsize = 16;
    std::int64_t n = 0;
    int J = 0;
    std::vector<std::int64_t> ckpt;
    std::vector<T> pts;              // points in tree order, n x D
    std::vector<std::int64_t> rank;  // rank of each point in tree order
    std::vector<std::int64_t> orig;  // reference row of each point in tree order
    std::vector<std::int32_t> jpt;   // first checkpoint containing each point
    // nodes
    std::vector<std::int64_t> lo_, hi_;   // point range [lo, hi)
    std::vector<std::int32_t> left_, right_, jmin_, dim_;
    std::vector<double> split_;
    std::vector<double> bmin_, bmax_;     // bounding boxes, node x D

    int first_ckpt(std::int64_t r) const {
        // first j with ckpt[j] > r
        return (int)(std::upper_bound(ckpt.begin(), ckpt.end(), r) - ckpt.begin());
    }

    // Nodes below a node of n points (median splits: the shape depends on n
    // only, so every subtree's node numbers are known before it is built and
    // the two halves can be built at once; a node of equal points stops
    // early and leaves its numbers unused).
    std::int64_t node_count(std::int64_t cnt) const {
        return cnt <= leafsize ? 1 : 1 + node_count(cnt / 2) + node_count(cnt - cnt / 2);
    }

    // Builds node `id` over idx[lo, hi) (ranks) and its subtree, numbered
    // depth first from id. Subtrees of at least `par_min` points are built
    // as OpenMP tasks (the numbering, hence the tree, is the same).
    void build_node(std::int64_t id, std::int64_t lo, std::int64_t hi, std::vector<std::int64_t>& idx,
                    const std::vector<T>& src, std::int64_t par_min) {
        lo_[id] = lo; hi_[id] = hi;
        double* bmn = &bmin_[(std::size_t)id * B];
        double* bmx = &bmax_[(std::size_t)id * B];
        for (int d = 0; d < B; ++d) {
            bmn[d] = std::numeric_limits<double>::infinity();
            bmx[d] = -std::numeric_limits<double>::infinity();
        }
        std::int64_t rmin = std::numeric_limits<std::int64_t>::max();
        for (std::int64_t t = lo; t < hi; ++t) {
            const T* x = &src[(std::size_t)idx[t] * D];
            for (int d = 0; d < B; ++d) {
                double v = (double)x[d];
                if (v < bmn[d]) bmn[d] = v;
                if (v > bmx[d]) bmx[d] = v;
            }
            if (idx[t] < rmin) rmin = idx[t];   // idx holds ranks
        }
        jmin_[id] = first_ckpt(rmin);
        if (hi - lo <= leafsize) return;
        int best = 0; double spread = -1;
        for (int d = 0; d < B; ++d)
            if (bmx[d] - bmn[d] > spread) { spread = bmx[d] - bmn[d]; best = d; }
        if (spread <= 0) return;  // all points equal: keep as a leaf
        std::int64_t mid = lo + (hi - lo) / 2;
        std::nth_element(idx.begin() + lo, idx.begin() + mid, idx.begin() + hi,
                         [&](std::int64_t a, std::int64_t b) {
                             return src[(std::size_t)a * D + best] < src[(std::size_t)b * D + best];
                         });
        dim_[id] = best;
        split_[id] = (double)src[(std::size_t)idx[mid] * D + best];
        const std::int64_t l = id + 1, r = id + 1 + node_count(mid - lo);
        left_[id] = (std::int32_t)l; right_[id] = (std::int32_t)r;
        if (hi - lo >= par_min) {
#ifdef _OPENMP
#pragma omp task default(shared) firstprivate(l, lo, mid)
#endif
            build_node(l, lo, mid, idx, src, par_min);
            build_node(r, mid, hi, idx, src, par_min);
#ifdef _OPENMP
#pragma omp taskwait
#endif
        } else {
            build_node(l, lo, mid, idx, src, par_min);
            build_node(r, mid, hi, idx, src, par_min);
        }
    }

    // R: reference (strides in elements); order[rank] = row (or NULL for identity);
    // the tree holds ranks 0 .. ckpt[J-1]-1. n_threads > 1 builds the two
    // halves of large nodes at once (the same tree).
    void build(const T* R, std::ptrdiff_t rs0, std::ptrdiff_t rs1, int D_,
               const std::int64_t* order, const std::int64_t* ck, int J_, int leaf, int box_dims = 0,
               int n_threads = 1) {
        // leaf < 1 builds the tree of leaf = 1 (node_count would not end)
        D = D_; J = J_; leafsize = leaf < 1 ? 1 : leaf;
        B = (box_dims > 0 && box_dims < D_) ? box_dims : D_;
        ckpt.assign(ck, ck + J_);
        n = ckpt[J - 1];
        std::vector<T> src((std::size_t)n * D);   // by rank
        for (std::int64_t t = 0; t < n; ++t) {
            std::int64_t row = order ? order[t] : t;
            for (int d = 0; d < D; ++d) src[(std::size_t)t * D + d] = R[row * rs0 + d * rs1];
        }
        std::vector<std::int64_t> idx(n);
        for (std::int64_t t = 0; t < n; ++t) idx[t] = t;
        const std::int64_t nodes = node_count(n);
        lo_.assign(nodes, 0); hi_.assign(nodes, 0);
        left_.assign(nodes, -1); right_.assign(nodes, -1); jmin_.assign(nodes, 0); dim_.assign(nodes, -1);
        split_.assign(nodes, 0.0);
        bmin_.assign((std::size_t)nodes * B, 0.0); bmax_.assign((std::size_t)nodes * B, 0.0);
        // a task per half of at least 2^14 points: smaller ones cost more to
        // hand over than to build
        const std::int64_t par_min = 1 << 14;
#ifdef _OPENMP
        if (n_threads > 1 && n >= 2 * par_min) {
#pragma omp parallel num_threads(n_threads)
#pragma omp single
            build_node(0, 0, n, idx, src, par_min);
        } else {
            build_node(0, 0, n, idx, src, n + 1);
        }
#else
        (void)n_threads;
        build_node(0, 0, n, idx, src, n + 1);
#endif
        pts.resize((std::size_t)n * D); rank.resize(n); orig.resize(n); jpt.resize(n);
        for (std::int64_t t = 0; t < n; ++t) {
            std::int64_t r = idx[t];
            for (int d = 0; d < D; ++d) pts[(std::size_t)t * D + d] = src[(std::size_t)r * D + d];
            rank[t] = r;
            orig[t] = order ? order[r] : r;
            jpt[t] = first_ckpt(r);
        }
    }

    // Per-query state: J lists of k (distance, index), sorted by (distance, index).
    struct State {
        const double* q;
        double* bd; std::int64_t* bi;
        int k;
    };

    static inline bool better(double d, std::int64_t i, double d2, std::int64_t i2) {
        return d < d2 || (d == d2 && i < i2);
    }

    void insert(State& s, int j, double dist, std::int64_t idx) const {
        double* bd = s.bd + (std::size_t)j * s.k;
        std::int64_t* bi = s.bi + (std::size_t)j * s.k;
        int p = s.k - 1;
        while (p > 0 && better(dist, idx, bd[p - 1], bi[p - 1])) {
            bd[p] = bd[p - 1]; bi[p] = bi[p - 1]; --p;
        }
        bd[p] = dist; bi[p] = idx;
    }

    void search(State& s, int node) const {
        const int k = s.k;
        // Lower bound from the bounding box.
        const double* bmn = &bmin_[(std::size_t)node * B];
        const double* bmx = &bmax_[(std::size_t)node * B];
        double lb = 0;  // over the first B coordinates: still a lower bound
        for (int d = 0; d < B; ++d) {
            double q = s.q[d], t = 0;
            if (q < bmn[d]) t = bmn[d] - q;
            else if (q > bmx[d]) t = q - bmx[d];
            lb += t * t;
        }
        const int js = jmin_[node];
        if (lb > s.bd[(std::size_t)js * k + k - 1]) return;
        if (left_[node] < 0) {
            for (std::int64_t t = lo_[node]; t < hi_[node]; ++t) {
                const T* x = &pts[(std::size_t)t * D];
                double dist = 0;
                for (int d = 0; d < B; ++d) {
                    double u = s.q[d] - (double)x[d];
                    dist += u * u;
                }
                // the other coordinates only add: skip the point when the
                // first B already exceed its loosest relevant bound
                if (B < D) {
                    if (dist > s.bd[(std::size_t)jpt[t] * k + k - 1]) continue;
                    for (int d = B; d < D; ++d) {
                        double u = s.q[d] - (double)x[d];
                        dist += u * u;
                    }
                }
                const std::int64_t oi = orig[t];
                for (int j = jpt[t]; j < J; ++j) {
                    const std::size_t w = (std::size_t)j * k + k - 1;
                    if (!better(dist, oi, s.bd[w], s.bi[w])) break;
                    insert(s, j, dist, oi);
                }
            }
            return;
        }
        const int dm = dim_[node];
        if (s.q[dm] < split_[node]) { search(s, left_[node]); search(s, right_[node]); }
        else { search(s, right_[node]); search(s, left_[node]); }
    }

    // The leaf a point falls in (nodes are numbered depth first, so leaf
    // numbers order space coherently): queries taken in this order reuse the
    // cache between consecutive searches.
    int locate(const double* q) const {
        int node = 0;
        while (left_[node] >= 0) node = (q[dim_[node]] < split_[node]) ? left_[node] : right_[node];
        return node;
    }

    // Query one row; writes out_d[j*m_stride + ...] as (J, k) blocks with the
    // given strides (in elements) between checkpoints.
    void query(const double* q, double* bd, std::int64_t* bi, int k) const {
        for (std::size_t c = 0; c < (std::size_t)J * k; ++c) {
            bd[c] = std::numeric_limits<double>::infinity();
            bi[c] = std::numeric_limits<std::int64_t>::max();
        }
        State s{q, bd, bi, k};
        search(s, 0);
    }
};

}  // namespace repgap
