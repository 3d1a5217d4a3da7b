// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The built-in clipping policies. Each computes the clipping bound `a` of a slice (a whole tensor or
/// one output channel, see granularity.hpp). Data-derived bounds ignore non-finite values, so an Inf in
/// the data saturates instead of blowing up the step; NaN is rejected by the checked quantize() API.

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/clipping_concepts.hpp>
#include <lowbit/parallel/ordered_reduce.hpp>
#include <lowbit/quant/detail/step_kernels.hpp>
#include <lowbit/quant/grid.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::clip {

/// @brief A fixed bound given by the user:
/// `quantizer<4, nearest_even_t, clip::fixed_range> q{.clipping = {.bound = 2.0f}}`.
struct fixed_range {
    using bound_type = fixed_bound_t;
    float bound = 1.0f;  ///< the clipping bound a
    float range(std::span<float const>, level_range) const noexcept { return bound; }
};

/// @brief a = max |x| over the finite values: no value is clipped.
struct max_abs {
    using bound_type = data_bound_t;
    float range(std::span<float const> x, level_range) const noexcept
    {
        float m = 0.0f;
        for (float v : x)
            if (std::isfinite(v)) m = std::max(m, std::abs(v));
        return m;
    }
};

/// @brief a = mean |x| over the finite values: the scale of XNOR-Net / BWN binary weights.
struct mean_abs {
    using bound_type = data_bound_t;
    float range(std::span<float const> x, level_range) const noexcept
    {
        double s = 0.0;
        std::size_t n = 0;
        for (float v : x)
            if (std::isfinite(v)) { s += std::abs(v); ++n; }
        return n == 0 ? 0.0f : static_cast<float>(s / static_cast<double>(n));
    }
};

/// @brief The bound that minimises ||x - Q(x)||^2 under nearest rounding (the SQWA step), found by Lloyd
/// iteration: assign each value to its nearest level for the current step s, then set
/// s = sum x_i (k_i + offset) / sum (k_i + offset)^2, the least-squares step for those assignments. Each
/// iteration cannot increase the error; it starts from both the max-abs and the mean-abs step and keeps
/// the better result, since Lloyd finds a local optimum.
struct l2_optimal {
    using bound_type = data_bound_t;
    int iterations = 30;  ///< upper bound on Lloyd iterations per start

    float range(std::span<float const> x, level_range l) const noexcept
    {
        float const a_max = max_abs{}.range(x, l);
        if (a_max == 0.0f) return 0.0f;
        float const s_max = l.step_for_range(a_max);
        float const s_mean = 2.0f * mean_abs{}.range(x, l) / std::max(1.0f, static_cast<float>(l.qmax) + l.offset);
        auto [s1, e1] = lloyd(x, l, s_max);
        auto [s2, e2] = lloyd(x, l, s_mean > 0.0f ? s_mean : s_max);
        float const s = e2 < e1 ? s2 : s1;
        return s * (static_cast<float>(l.qmax) + l.offset);
    }

    /// The bound after at most `passes` Lloyd iterations from a given step (one start). For data that moved
    /// little since `step` was fitted -- a weight between two optimizer steps -- the step then tracks the
    /// optimum at the cost of a pass or two instead of range()'s two full starts (each iteration cannot
    /// increase the error). Falls back to range() for a step <= 0.
    float refine(std::span<float const> x, level_range l, float step, int passes) const noexcept
    {
        if (!(step > 0.0f)) return range(x, l);
        return l2_optimal{.iterations = passes}.lloyd(x, l, step).step * (static_cast<float>(l.qmax) + l.offset);
    }

private:
    struct fit { float step; double error; };
    struct sums { double num = 0.0, den = 0.0, err = 0.0; };

    /// The sums of one Lloyd pass (detail::lloyd_pass, vectorised), over fixed blocks added in block order:
    /// threaded for large x, and the same bits for any thread count. The error
    /// sum (x - c s)^2 = sum x^2 - 2 s sum x c + s^2 sum c^2 comes from the three sums, whose products are exact.
    static sums pass(std::span<float const> x, level_range l, float s)
    {
        auto const t = ordered_block_reduce<lowbit::detail::lloyd_sums>(x.size(), [&](std::size_t b, std::size_t e) {
            return lowbit::detail::lloyd_pass(x.subspan(b, e - b), s, static_cast<float>(l.qmin), static_cast<float>(l.qmax),
                                      l.offset);
        });
        double const sd = s;
        return {t.num, t.den, t.sq - 2.0 * sd * t.num + sd * sd * t.den};
    }

    fit lloyd(std::span<float const> x, level_range l, float s) const noexcept
    {
        double err = 0.0;
        for (int it = 0; it < iterations; ++it) {
            sums const t = pass(x, l, s);
            err = t.err;
            if (t.den == 0.0 || t.num <= 0.0) break;
            auto const next = static_cast<float>(t.num / t.den);
            if (next == s) break;
            s = next;
        }
        return {s, err};
    }
};

/// @brief DoReFa-Net's weight normalisation: x -> tanh(x) / max|tanh(x)|, then the bound is 1. Pair it
/// with grid::symmetric_even (its default grid) for DoReFa's levels 2i/(2^b - 1) - 1.
struct tanh_max {
    using default_grid = grid::symmetric_even;
    using bound_type = fixed_bound_t;  // 1, after the data-dependent normalisation

    float range(std::span<float const>, level_range) const noexcept { return 1.0f; }

    void transform(std::span<float const> in, std::span<float> out) const noexcept
    {
        float m = 0.0f;
        for (float v : in)
            if (!std::isnan(v)) m = std::max(m, std::abs(std::tanh(v)));
        float const inv = m > 0.0f ? 1.0f / m : 0.0f;
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = std::tanh(in[i]) * inv;
    }
};

} // namespace lowbit::clip
