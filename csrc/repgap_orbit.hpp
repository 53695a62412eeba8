// Exact orbit distances d_G(x, y)^2 = min_g ||x - g.y||^2 for the built-in
// groups with a closed form, one (query, candidate) pair at a time: the
// refinement step of the filter-and-refine k-NN modulo a group
// (repgap/orbit.py). The numpy reference is repgap/groups.py.
//
// Every distance is recomputed as differences in float64 once the
// minimising element is known (docs/theory.md, section 6):
//   * rotations (p = 2, 3, optionally with reflections, optionally after
//     centring for translations): the optimal rotation from Horn's
//     quaternion method (p = 3: the top eigenvector of a symmetric 4 x 4
//     matrix, by cyclic Jacobi sweeps; Horn 1987) or the closed-form angle
//     (p = 2); the determinant-(-1) branch reflects y first;
//   * permutations of identical particles (optionally after centring): the
//     Hungarian algorithm with potentials, O(m^3) (Kuhn 1955);
//   * cyclic shifts of 1-D signals or 2-D images (optionally with the
//     mirror): every shift, difference first, O(D^2);
//   * sign flips; finite groups given by index permutations or matrices.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace repgap {

enum {
    ORBIT_IDENTITY = 0,
    ORBIT_TRANSLATION = 1,
    ORBIT_ROTATION = 2,      // p in {2, 3}; flags: reflections, centre
    ORBIT_PERMUTATION = 3,   // m particles in R^p; flag: centre
    ORBIT_CYCLIC = 4,        // h x w grid (h = 1 for signals); flag: reflections
    ORBIT_SIGNFLIP = 5,
    ORBIT_FINITE_PERM = 6,   // table of |G| index permutations
    ORBIT_FINITE_MAT = 7,    // table of |G| D x D matrices
};

struct OrbitSpec {
    int kind;
    int D;
    int p;            // point dimension (rotation, permutation, translation)
    int reflections;  // rotation, cyclic
    int centre;       // subtract each cloud's centroid first
    int h, w;         // cyclic grid
    int order;        // finite groups
    const std::int64_t* perms;   // order x D
    const double* mats;          // order x D x D
};

// Per-thread scratch: two clouds/rows in float64 and the assignment buffers.
struct OrbitWork {
    std::vector<double> a, b, c, cost, u, v, minv;
    std::vector<int> pm, way, used, match;
    void reserve(int D, int m) {
        a.assign(D, 0); b.assign(D, 0); c.assign(D, 0);
        cost.assign((std::size_t)(m + 1) * (m + 1), 0);
        u.assign(m + 1, 0); v.assign(m + 1, 0); minv.assign(m + 1, 0);
        pm.assign(m + 1, 0); way.assign(m + 1, 0); used.assign(m + 1, 0); match.assign(m + 1, 0);
    }
};

template <typename T>
inline void load_row(const T* x, std::ptrdiff_t s1, int D, double* out) {
    for (int i = 0; i < D; ++i) out[i] = (double)x[i * s1];
}

inline void centre_cloud(double* a, int m, int p) {
    for (int k = 0; k < p; ++k) {
        double s = 0;
        for (int i = 0; i < m; ++i) s += a[i * p + k];
        s /= m;
        for (int i = 0; i < m; ++i) a[i * p + k] -= s;
    }
}

inline double sqdiff(const double* a, const double* b, int D) {
    double s0 = 0, s1 = 0;
    int i = 0;
    for (; i + 2 <= D; i += 2) {
        double t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1];
        s0 += t0 * t0; s1 += t1 * t1;
    }
    for (; i < D; ++i) { double t = a[i] - b[i]; s0 += t * t; }
    return s0 + s1;
}

// ||x - R y||^2 for clouds (m points in R^p) and a p x p matrix R (row-major).
inline double rotated_sqdiff(const double* x, const double* y, int m, int p, const double* R) {
    double s = 0;
    for (int i = 0; i < m; ++i) {
        for (int r = 0; r < p; ++r) {
            double v = 0;
            for (int c = 0; c < p; ++c) v += R[r * p + c] * y[i * p + c];
            double t = x[i * p + r] - v;
            s += t * t;
        }
    }
    return s;
}

// Largest eigenpair of a symmetric 4 x 4 matrix by cyclic Jacobi sweeps.
inline void top_eigvec4(double A[4][4], double q[4]) {
    double V[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    for (int sweep = 0; sweep < 30; ++sweep) {
        double off = 0, diag = 0;
        for (int i = 0; i < 4; ++i) {
            diag += A[i][i] * A[i][i];
            for (int j = i + 1; j < 4; ++j) off += A[i][j] * A[i][j];
        }
        if (off <= 1e-32 * (diag + 1e-300)) break;
        for (int pI = 0; pI < 3; ++pI)
            for (int qI = pI + 1; qI < 4; ++qI) {
                double apq = A[pI][qI];
                if (std::fabs(apq) < 1e-300) continue;
                double theta = (A[qI][qI] - A[pI][pI]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
                double c = 1 / std::sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 4; ++k) {  // A <- J^T A J
                    double akp = A[k][pI], akq = A[k][qI];
                    A[k][pI] = c * akp - s * akq;
                    A[k][qI] = s * akp + c * akq;
                }
                for (int k = 0; k < 4; ++k) {
                    double apk = A[pI][k], aqk = A[qI][k];
                    A[pI][k] = c * apk - s * aqk;
                    A[qI][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 4; ++k) {
                    double vkp = V[k][pI], vkq = V[k][qI];
                    V[k][pI] = c * vkp - s * vkq;
                    V[k][qI] = s * vkp + c * vkq;
                }
            }
    }
    int best = 0;
    for (int i = 1; i < 4; ++i) if (A[i][i] > A[best][best]) best = i;
    for (int i = 0; i < 4; ++i) q[i] = V[i][best];
}

// Optimal proper rotation R (row-major 3 x 3) with R y_i close to x_i.
inline void horn_rotation(const double* x, const double* y, int m, double* R) {
    double S[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};  // S[a][b] = sum_i y_i[a] x_i[b]
    for (int i = 0; i < m; ++i)
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) S[a][b] += y[i * 3 + a] * x[i * 3 + b];
    const double Sxx = S[0][0], Sxy = S[0][1], Sxz = S[0][2];
    const double Syx = S[1][0], Syy = S[1][1], Syz = S[1][2];
    const double Szx = S[2][0], Szy = S[2][1], Szz = S[2][2];
    double N[4][4] = {
        {Sxx + Syy + Szz, Syz - Szy, Szx - Sxz, Sxy - Syx},
        {Syz - Szy, Sxx - Syy - Szz, Sxy + Syx, Szx + Sxz},
        {Szx - Sxz, Sxy + Syx, -Sxx + Syy - Szz, Syz + Szy},
        {Sxy - Syx, Szx + Sxz, Syz + Szy, -Sxx - Syy + Szz}};
    double q[4];
    top_eigvec4(N, q);
    double nq = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    for (double& v : q) v /= nq;
    const double w = q[0], a = q[1], b = q[2], c = q[3];
    R[0] = w * w + a * a - b * b - c * c; R[1] = 2 * (a * b - w * c);         R[2] = 2 * (a * c + w * b);
    R[3] = 2 * (a * b + w * c);         R[4] = w * w - a * a + b * b - c * c; R[5] = 2 * (b * c - w * a);
    R[6] = 2 * (a * c - w * b);         R[7] = 2 * (b * c + w * a);         R[8] = w * w - a * a - b * b + c * c;
}

inline void angle_rotation(const double* x, const double* y, int m, double* R) {
    double A = 0, B = 0;
    for (int i = 0; i < m; ++i) {
        A += x[2 * i] * y[2 * i] + x[2 * i + 1] * y[2 * i + 1];
        B += x[2 * i + 1] * y[2 * i] - x[2 * i] * y[2 * i + 1];
    }
    double r = std::sqrt(A * A + B * B);
    double c = r > 0 ? A / r : 1.0, s = r > 0 ? B / r : 0.0;
    R[0] = c; R[1] = -s; R[2] = s; R[3] = c;
}

inline double rotation_d2(const double* x, double* y, int m, int p, int reflections) {
    double R[9];
    if (p == 3) horn_rotation(x, y, m, R); else angle_rotation(x, y, m, R);
    double best = rotated_sqdiff(x, y, m, p, R);
    if (reflections) {
        for (int i = 0; i < m; ++i) y[i * p + p - 1] = -y[i * p + p - 1];  // reflect, then rotate
        if (p == 3) horn_rotation(x, y, m, R); else angle_rotation(x, y, m, R);
        double d = rotated_sqdiff(x, y, m, p, R);
        for (int i = 0; i < m; ++i) y[i * p + p - 1] = -y[i * p + p - 1];
        if (d < best) best = d;
    }
    return best;
}

// Minimum-cost assignment of m rows to m columns (cost 1-based, (m+1)^2),
// the Hungarian algorithm with potentials; match[j] = row of column j.
inline void hungarian(OrbitWork& w, int m) {
    const double INF = std::numeric_limits<double>::infinity();
    double* a = w.cost.data();
    std::fill(w.u.begin(), w.u.end(), 0.0);
    std::fill(w.v.begin(), w.v.end(), 0.0);
    std::fill(w.pm.begin(), w.pm.end(), 0);
    std::fill(w.way.begin(), w.way.end(), 0);
    for (int i = 1; i <= m; ++i) {
        w.pm[0] = i;
        int j0 = 0;
        std::fill(w.minv.begin(), w.minv.end(), INF);
        std::fill(w.used.begin(), w.used.end(), 0);
        do {
            w.used[j0] = 1;
            int i0 = w.pm[j0], j1 = 0;
            double delta = INF;
            for (int j = 1; j <= m; ++j)
                if (!w.used[j]) {
                    double cur = a[(std::size_t)i0 * (m + 1) + j] - w.u[i0] - w.v[j];
                    if (cur < w.minv[j]) { w.minv[j] = cur; w.way[j] = j0; }
                    if (w.minv[j] < delta) { delta = w.minv[j]; j1 = j; }
                }
            for (int j = 0; j <= m; ++j) {
                if (w.used[j]) { w.u[w.pm[j]] += delta; w.v[j] -= delta; }
                else w.minv[j] -= delta;
            }
            j0 = j1;
        } while (w.pm[j0] != 0);
        do { int j1 = w.way[j0]; w.pm[j0] = w.pm[j1]; j0 = j1; } while (j0);
    }
    for (int j = 1; j <= m; ++j) w.match[j] = w.pm[j];
}

inline double permutation_d2(OrbitWork& w, const double* x, const double* y, int m, int p) {
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < m; ++j) {
            double s = 0;
            for (int k = 0; k < p; ++k) { double t = x[i * p + k] - y[j * p + k]; s += t * t; }
            w.cost[(std::size_t)(i + 1) * (m + 1) + (j + 1)] = s;
        }
    hungarian(w, m);
    double s = 0;  // recomputed from the matching, in a fixed order
    for (int j = 1; j <= m; ++j) s += w.cost[(std::size_t)w.match[j] * (m + 1) + j];
    return s;
}

inline double cyclic_d2(const double* x, const double* y, int h, int wd, int reflections) {
    double best = std::numeric_limits<double>::infinity();
    for (int flip = 0; flip <= reflections; ++flip)
        for (int a = 0; a < h; ++a)
            for (int b = 0; b < wd; ++b) {
                // g.y at (i, j) = y[(i - a) mod h, (+-j - b) mod w]: roll by (a, b), mirror first
                double s = 0;
                for (int i = 0; i < h && s < best; ++i) {
                    const int si = ((i - a) % h + h) % h;
                    for (int j = 0; j < wd; ++j) {
                        int sj = ((j - b) % wd + wd) % wd;
                        if (flip) sj = (wd - sj) % wd;
                        const double t = x[i * wd + j] - y[si * wd + sj];
                        s += t * t;
                    }
                }
                if (s < best) best = s;
            }
    return best;
}

// d_G(x, y)^2 with x, y loaded in w.a and w.b (float64, length D); may
// modify w.a and w.b.
inline double orbit_d2(const OrbitSpec& g, OrbitWork& w) {
    double* a = w.a.data();
    double* b = w.b.data();
    const int D = g.D;
    switch (g.kind) {
        case ORBIT_IDENTITY:
            return sqdiff(a, b, D);
        case ORBIT_TRANSLATION:
            centre_cloud(a, D / g.p, g.p); centre_cloud(b, D / g.p, g.p);
            return sqdiff(a, b, D);
        case ORBIT_ROTATION:
            if (g.centre) { centre_cloud(a, D / g.p, g.p); centre_cloud(b, D / g.p, g.p); }
            return rotation_d2(a, b, D / g.p, g.p, g.reflections);
        case ORBIT_PERMUTATION:
            if (g.centre) { centre_cloud(a, D / g.p, g.p); centre_cloud(b, D / g.p, g.p); }
            return permutation_d2(w, a, b, D / g.p, g.p);
        case ORBIT_CYCLIC:
            return cyclic_d2(a, b, g.h, g.w, g.reflections);
        case ORBIT_SIGNFLIP: {
            double sp = 0, sm = 0;
            for (int i = 0; i < D; ++i) {
                double t = a[i] - b[i], u = a[i] + b[i];
                sp += t * t; sm += u * u;
            }
            return sp < sm ? sp : sm;
        }
        case ORBIT_FINITE_PERM: {
            double best = std::numeric_limits<double>::infinity();
            for (int e = 0; e < g.order; ++e) {
                const std::int64_t* pe = g.perms + (std::size_t)e * D;
                double s = 0;
                for (int i = 0; i < D && s < best; ++i) { double t = a[i] - b[pe[i]]; s += t * t; }
                if (s < best) best = s;
            }
            return best;
        }
        case ORBIT_FINITE_MAT: {
            double best = std::numeric_limits<double>::infinity();
            double* c = w.c.data();
            for (int e = 0; e < g.order; ++e) {
                const double* M = g.mats + (std::size_t)e * D * D;
                for (int i = 0; i < D; ++i) {
                    double v = 0;
                    for (int j = 0; j < D; ++j) v += M[(std::size_t)i * D + j] * b[j];
                    c[i] = v;
                }
                double s = sqdiff(a, c, D);
                if (s < best) best = s;
            }
            return best;
        }
    }
    return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace repgap
