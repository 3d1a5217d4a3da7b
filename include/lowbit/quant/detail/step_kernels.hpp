// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The element-wise kernels of the learned and L2-optimal quantizers (xsimd), with their scalar
/// references in `lowbit::detail::reference`. tests/unit/quant/test_step_kernels.cpp proves each kernel
/// bit-identical to its reference.
///
/// Bit-identity holds for two reasons:
/// - element-wise results use only operations that round once and that a compiler cannot contract into an
///   FMA (division, compare/select, round to nearest even, and a product with nothing added to it);
/// - sums go into eight double lanes, element i of a run into lane i % 8, each lane in index order, and the
///   lanes are combined in one fixed order (combine_lanes). Every term added is exact or rounded once in
///   float before it is widened, and the Lloyd sums add only exact products (a float times a small integer
///   level), so an FMA could not change a bit either.
/// The SIMD width does not change the order: an AVX-512 batch of doubles is the eight lanes, an AVX2 batch
/// four of them, an SSE2 batch two.
// IWYU pragma: private

#include <lowbit/detail/gcc12_avx512_warnings.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <span>

namespace lowbit::detail {

LOWBIT_GCC12_AVX512_WARNINGS_OFF  // to LOWBIT_GCC12_AVX512_WARNINGS_ON: GCC PR 105593, see the header

/// The eight lanes of a run's sum, added as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
inline double combine_lanes(std::array<double, 8> const& l) noexcept
{
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/// std::clamp's result, select by select (t < lo: lo; hi < t: hi; else t, the sign of a zero kept).
template <class B>
B clamp_like_std(B const& t, B const& lo, B const& hi) noexcept
{
    return xsimd::select(t < lo, lo, xsimd::select(hi < t, hi, t));
}

/// Eight double lanes held in batches (one on AVX-512), fed with eight floats at a time.
class lanes8 {
public:
    using dbatch = xsimd::batch<double>;
    static constexpr std::size_t per = dbatch::size;
    static_assert(8 % per == 0, "lowbit: the lane sums need a double batch of 1, 2, 4 or 8 lanes");

    lanes8() noexcept { std::fill(std::begin(part_), std::end(part_), dbatch(0.0)); }

    /// lane l += f[l], widened.
    void add(float const* f) noexcept
    {
        for (std::size_t k = 0; k < parts; ++k) part_[k] += dbatch::load_unaligned(f + k * per);
    }
    /// lane l += a[l] * b[l] in double.
    void add_product(float const* a, float const* b) noexcept
    {
        for (std::size_t k = 0; k < parts; ++k)
            part_[k] += dbatch::load_unaligned(a + k * per) * dbatch::load_unaligned(b + k * per);
    }
    std::array<double, 8> lanes() const noexcept
    {
        std::array<double, 8> l{};
        for (std::size_t k = 0; k < parts; ++k) part_[k].store_unaligned(l.data() + k * per);
        return l;
    }

private:
    static constexpr std::size_t parts = 8 / per;
    dbatch part_[parts];
};

/// Runs of float batches in units of `unit` elements (a multiple of 8 and of the batch width).
using fbatch = xsimd::batch<float>;
inline constexpr std::size_t unit = std::max<std::size_t>(fbatch::size, 8);

/// True if any value is NaN.
inline bool any_nan(std::span<float const> x) noexcept
{
    constexpr std::size_t w = fbatch::size;
    std::size_t i = 0;
    fbatch::batch_bool_type found(false);
    for (; i + w <= x.size(); i += w) {
        fbatch const v = fbatch::load_unaligned(x.data() + i);
        found = found || xsimd::isnan(v);  // not v != v: AVX compares NEQ ordered, false for NaN
    }
    bool tail = false;
    for (; i < x.size(); ++i) tail = tail || std::isnan(x[i]);
    return tail || xsimd::any(found);
}

/// y = s * round(clamp(x / s, lo, hi)), round to nearest even (LSQ's and the odd uniform grid's forward pass;
/// lo and hi are integers, so rounding before or after the clamp is the same). s must be > 0.
inline void step_quantize(std::span<float const> x, std::span<float> y, float s, float lo, float hi) noexcept
{
    constexpr std::size_t w = fbatch::size;
    fbatch const vs(s), vlo(lo), vhi(hi);
    std::size_t i = 0;
    for (; i + w <= x.size(); i += w)
        (vs * xsimd::nearbyint(clamp_like_std(fbatch::load_unaligned(x.data() + i) / vs, vlo, vhi)))
            .store_unaligned(y.data() + i);
    for (; i < x.size(); ++i) y[i] = s * std::nearbyint(std::clamp(x[i] / s, lo, hi));
}

/// LSQ's backward pass over a run, s > 0: with t = x / s, dx = dy where lo < t < hi and 0 elsewhere, and the
/// step gradient's sum over the run of dy * (lo if t <= lo; hi if t >= hi; round(t) - t otherwise), each
/// product rounded in float and summed in the eight double lanes.
inline double step_quantize_backward(std::span<float const> x, std::span<float const> dy, std::span<float> dx, float s,
                                     float lo, float hi) noexcept
{
    constexpr std::size_t w = fbatch::size;
    fbatch const vs(s), vlo(lo), vhi(hi), zero(0.0f);
    lanes8 acc;
    alignas(64) float term[unit];
    std::size_t i = 0;
    for (; i + unit <= x.size(); i += unit) {
        for (std::size_t j = 0; j < unit; j += w) {
            fbatch const t = fbatch::load_unaligned(x.data() + i + j) / vs;
            fbatch const g = fbatch::load_unaligned(dy.data() + i + j);
            auto const below = t <= vlo, above = t >= vhi;
            xsimd::select(below || above, zero, g).store_unaligned(dx.data() + i + j);
            fbatch const r = xsimd::select(below, vlo, xsimd::select(above, vhi, xsimd::nearbyint(t) - t));
            (g * r).store_aligned(term + j);
        }
        for (std::size_t j = 0; j < unit; j += 8) acc.add(term + j);
    }
    std::array<double, 8> lanes = acc.lanes();
    for (std::size_t k = 0; i < x.size(); ++i, ++k) {
        float const t = x[i] / s;
        bool const below = t <= lo, above = t >= hi;
        dx[i] = below || above ? 0.0f : dy[i];
        lanes[k % 8] += static_cast<double>(dy[i] * (below ? lo : above ? hi : std::nearbyint(t) - t));
    }
    return combine_lanes(lanes);
}

/// The sums of one Lloyd pass of the L2-optimal step over a run, for the grid levels k + offset,
/// k in [qmin, qmax]: each finite x gets k = clamp(round(x / s - offset), qmin, qmax) and c = k + offset;
/// num = sum x c, den = sum c^2, sq = sum x^2 (non-finite x are skipped). Every product is exact in double.
struct lloyd_sums {
    double num = 0.0, den = 0.0, sq = 0.0;
    lloyd_sums& operator+=(lloyd_sums const& o) noexcept
    {
        num += o.num;
        den += o.den;
        sq += o.sq;
        return *this;
    }
};

inline lloyd_sums lloyd_pass(std::span<float const> x, float s, float qmin, float qmax, float offset) noexcept
{
    constexpr std::size_t w = fbatch::size;
    fbatch const vs(s), vlo(qmin), vhi(qmax), voff(offset), zero(0.0f);
    lanes8 num, den, sq;
    alignas(64) float v[unit], c[unit];
    std::size_t i = 0;
    for (; i + unit <= x.size(); i += unit) {
        for (std::size_t j = 0; j < unit; j += w) {
            fbatch const xv = fbatch::load_unaligned(x.data() + i + j);
            auto const finite = xsimd::isfinite(xv);
            fbatch const level = clamp_like_std(xsimd::nearbyint(xv / vs - voff), vlo, vhi) + voff;
            xsimd::select(finite, xv, zero).store_aligned(v + j);
            xsimd::select(finite, level, zero).store_aligned(c + j);
        }
        for (std::size_t j = 0; j < unit; j += 8) {
            num.add_product(v + j, c + j);
            den.add_product(c + j, c + j);
            sq.add_product(v + j, v + j);
        }
    }
    std::array<double, 8> ln = num.lanes(), ld = den.lanes(), ls = sq.lanes();
    for (std::size_t k = 0; i < x.size(); ++i, ++k) {
        if (!std::isfinite(x[i])) continue;
        double const xv = x[i];
        double const cv = std::clamp(std::nearbyint(x[i] / s - offset), qmin, qmax) + offset;
        ln[k % 8] += xv * cv;
        ld[k % 8] += cv * cv;
        ls[k % 8] += xv * xv;
    }
    return {combine_lanes(ln), combine_lanes(ld), combine_lanes(ls)};
}

/// PACT's forward pass: y = a q(clip(x, 0, a) / a) with q(u) = round(u n) / n (round to nearest even); a > 0.
inline void pact_quantize(std::span<float const> x, std::span<float> y, float a, float n) noexcept
{
    constexpr std::size_t w = fbatch::size;
    fbatch const va(a), vn(n), zero(0.0f);
    std::size_t i = 0;
    for (; i + w <= x.size(); i += w) {
        fbatch const u = clamp_like_std(fbatch::load_unaligned(x.data() + i), zero, va) / va;
        (va * (xsimd::nearbyint(u * vn) / vn)).store_unaligned(y.data() + i);
    }
    for (; i < x.size(); ++i) y[i] = a * (std::nearbyint(std::clamp(x[i], 0.0f, a) / a * n) / n);
}

/// PACT's backward pass over a run: dx = dy where 0 <= x < a, else 0; returns the alpha gradient's sum of
/// dy * (1 if x >= a; else, for CG-PACT (calibrated), q(u) - u with u = max(x, 0) / a; else 0), each product
/// rounded in float and summed in the eight double lanes.
template <bool Calibrated>
double pact_backward(std::span<float const> x, std::span<float const> dy, std::span<float> dx, float a,
                     float n) noexcept
{
    constexpr std::size_t w = fbatch::size;
    fbatch const va(a), vn(n), zero(0.0f), one(1.0f);
    lanes8 acc;
    alignas(64) float term[unit];
    std::size_t i = 0;
    for (; i + unit <= x.size(); i += unit) {
        for (std::size_t j = 0; j < unit; j += w) {
            fbatch const v = fbatch::load_unaligned(x.data() + i + j);
            fbatch const g = fbatch::load_unaligned(dy.data() + i + j);
            auto const clipped = v >= va;
            xsimd::select(v >= zero && v < va, g, zero).store_unaligned(dx.data() + i + j);
            fbatch r = zero;
            if constexpr (Calibrated) {
                fbatch const u = xsimd::select(v < zero, zero, v) / va;
                r = xsimd::nearbyint(u * vn) / vn - u;
            }
            (g * xsimd::select(clipped, one, r)).store_aligned(term + j);
        }
        for (std::size_t j = 0; j < unit; j += 8) acc.add(term + j);
    }
    std::array<double, 8> lanes = acc.lanes();
    for (std::size_t k = 0; i < x.size(); ++i, ++k) {
        float const v = x[i];
        dx[i] = v >= 0.0f && v < a ? dy[i] : 0.0f;
        float r = 0.0f;
        if constexpr (Calibrated) {
            float const u = std::max(v, 0.0f) / a;
            r = std::nearbyint(u * n) / n - u;
        }
        lanes[k % 8] += static_cast<double>(dy[i] * (v >= a ? 1.0f : r));
    }
    return combine_lanes(lanes);
}

/// The largest |x| (0 for an empty span; x holds no NaN). max is exact, so any order gives the same bits.
inline float max_abs(std::span<float const> x) noexcept
{
    constexpr std::size_t w = fbatch::size;
    fbatch m(0.0f);
    std::size_t i = 0;
    for (; i + w <= x.size(); i += w) m = xsimd::max(m, xsimd::abs(fbatch::load_unaligned(x.data() + i)));
    alignas(64) float lanes[w];
    m.store_aligned(lanes);
    float r = 0.0f;
    for (float v : lanes) r = std::max(r, v);
    for (; i < x.size(); ++i) r = std::max(r, std::abs(x[i]));
    return r;
}

/// DoReFa's weight levels over a run of one slice. On entry t holds tanh(w); m is max|tanh w| of the slice
/// (0 for an all-zero slice, where t = 0) and n = 2^k - 1. With d = m (or 1 when m = 0):
/// y = (2 r - n) / n with r = round((t / d + 1) n / 2), one of DoReFa's 2^k levels 2 q_k((t/d + 1)/2) - 1;
/// on return t holds the derivative dy/dw = (1 - t)(1 + t) / d (the max held constant). Written without a
/// product that feeds an addition, so no FMA contraction can change a bit.
inline void dorefa_levels(std::span<float> t, std::span<float> y, float m, float n) noexcept
{
    constexpr std::size_t w = fbatch::size;
    float const d = m > 0.0f ? m : 1.0f, h = 0.5f * n;
    fbatch const vd(d), vh(h), vn(n), one(1.0f), two(2.0f);
    std::size_t i = 0;
    for (; i + w <= t.size(); i += w) {
        fbatch const tv = fbatch::load_unaligned(t.data() + i);
        fbatch const r = xsimd::nearbyint((tv / vd + one) * vh);
        ((two * r - vn) / vn).store_unaligned(y.data() + i);
        (((one - tv) * (one + tv)) / vd).store_unaligned(t.data() + i);
    }
    for (; i < t.size(); ++i) {
        float const tv = t[i];
        float const r = std::nearbyint((tv / d + 1.0f) * h);
        y[i] = (2.0f * r - n) / n;
        t[i] = ((1.0f - tv) * (1.0f + tv)) / d;
    }
}

LOWBIT_GCC12_AVX512_WARNINGS_ON

/// Scalar references of the kernels above: the same arithmetic one element at a time, in the same lane order.
namespace reference {

inline void step_quantize(std::span<float const> x, std::span<float> y, float s, float lo, float hi) noexcept
{
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = s * std::nearbyint(std::clamp(x[i] / s, lo, hi));
}

inline double step_quantize_backward(std::span<float const> x, std::span<float const> dy, std::span<float> dx, float s,
                                     float lo, float hi) noexcept
{
    std::array<double, 8> lanes{};
    for (std::size_t i = 0; i < x.size(); ++i) {
        float const t = x[i] / s;
        float r = std::nearbyint(t) - t;
        if (t <= lo) r = lo;
        else if (t >= hi) r = hi;
        dx[i] = t <= lo || t >= hi ? 0.0f : dy[i];
        lanes[i % 8] += static_cast<double>(dy[i] * r);
    }
    return combine_lanes(lanes);
}

inline lloyd_sums lloyd_pass(std::span<float const> x, float s, float qmin, float qmax, float offset) noexcept
{
    std::array<double, 8> num{}, den{}, sq{};
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i])) continue;
        float const k = std::clamp(std::nearbyint(x[i] / s - offset), qmin, qmax);
        double const c = k + offset, v = x[i];
        num[i % 8] += v * c;
        den[i % 8] += c * c;
        sq[i % 8] += v * v;
    }
    return {combine_lanes(num), combine_lanes(den), combine_lanes(sq)};
}

inline void pact_quantize(std::span<float const> x, std::span<float> y, float a, float n) noexcept
{
    for (std::size_t i = 0; i < x.size(); ++i) {
        float const u = std::clamp(x[i], 0.0f, a) / a;
        y[i] = a * (std::nearbyint(u * n) / n);
    }
}

template <bool Calibrated>
double pact_backward(std::span<float const> x, std::span<float const> dy, std::span<float> dx, float a,
                     float n) noexcept
{
    std::array<double, 8> lanes{};
    for (std::size_t i = 0; i < x.size(); ++i) {
        float const v = x[i];
        dx[i] = v >= 0.0f && v < a ? dy[i] : 0.0f;
        float r = Calibrated ? std::nearbyint(std::max(v, 0.0f) / a * n) / n - std::max(v, 0.0f) / a : 0.0f;
        if (v >= a) r = 1.0f;
        lanes[i % 8] += static_cast<double>(dy[i] * r);
    }
    return combine_lanes(lanes);
}

inline float max_abs(std::span<float const> x) noexcept
{
    float r = 0.0f;
    for (float v : x) r = std::max(r, std::abs(v));
    return r;
}

inline void dorefa_levels(std::span<float> t, std::span<float> y, float m, float n) noexcept
{
    float const d = m > 0.0f ? m : 1.0f;
    for (std::size_t i = 0; i < t.size(); ++i) {
        float const tv = t[i];
        float const r = std::nearbyint((tv / d + 1.0f) * (0.5f * n));
        y[i] = (2.0f * r - n) / n;
        t[i] = ((1.0f - tv) * (1.0f + tv)) / d;
    }
}

} // namespace reference
} // namespace lowbit::detail
