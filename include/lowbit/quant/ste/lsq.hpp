// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::lsq<Bits, Grid, Granularity>: Learned Step Size Quantization, with its backward pass.

#include <lowbit/parallel/ordered_reduce.hpp>
#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/detail/step_kernels.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/grid_concepts.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lowbit::ste {

/// @brief Options of ste::lsq.
struct lsq_options {
    float step = 0.0f;  ///< initial step; <= 0 means "initialise from the first forward pass"
};

/// @brief LSQ (Esser et al. 2020, "Learned Step Size Quantization", ICLR): the step s itself is learned.
/// The grid gives the level range: grid::signed_int (default, weights): \f$ Q_N = 2^{b-1},\ Q_P = 2^{b-1} - 1 \f$;
/// grid::unsigned_int (post-ReLU activations): \f$ Q_N = 0,\ Q_P = 2^b - 1 \f$.
/// \f[ \bar v = \operatorname{round}(\operatorname{clip}(v/s, -Q_N, Q_P)), \qquad \hat v = \bar v\, s \f]
/// (round = nearest, ties to even, as torch.round). Backward, with \f$ g = 1/\sqrt{N Q_P} \f$ and N the number
/// of elements of the slice (the whole tensor, batch included, per tensor; one output channel per channel):
/// \f[ \frac{\partial L}{\partial v} = \frac{\partial L}{\partial \hat v}\,\mathbb 1\{-Q_N < v/s < Q_P\}, \qquad
///     \frac{\partial L}{\partial s} \mathrel{+}= g \sum_i \frac{\partial L}{\partial \hat v_i}
///     \begin{cases} \operatorname{round}(v_i/s) - v_i/s & -Q_N < v_i/s < Q_P
///     \\ -Q_N & v_i/s \le -Q_N
///     \\ Q_P & v_i/s \ge Q_P \end{cases} \f]
/// (the "grad_scale" trick: the value is s, the gradient is scaled by g).
/// Initialisation: a step <= 0 is set on the next forward pass (or by initialise()) to
/// \f$ s_0 = 2\,\overline{|v|}/\sqrt{Q_P} \f$. If that slice is all zeros the step stays unset, the output is 0,
/// the gradient passes through and ds gets nothing, until a batch with non-zero values arrives.
///
/// @code
/// lowbit::ste::lsq<4> w;                                   // signed, per tensor, step from the data
/// lowbit::ste::lsq<4, lowbit::grid::unsigned_int> a;       // unsigned activations
/// lowbit::ste::lsq<4, lowbit::grid::signed_int, lowbit::per_channel_t> wc;   // one step per output channel
/// @endcode
/// @tparam Bits         bit width (signed_int: 2..16; unsigned_int: 1..16)
/// @tparam GridT        grid::signed_int or grid::unsigned_int
/// @tparam GranularityT per_tensor_t (default) or per_channel_t (call bind(shape) first)
template <int Bits, class GridT = grid::signed_int, Granularity GranularityT = per_tensor_t>
class lsq {
    static_assert(detail::check_fake_bits<Bits>());
    static_assert(std::is_same_v<GridT, grid::signed_int> || std::is_same_v<GridT, grid::unsigned_int>,
                  "lowbit::ste::lsq: the grid must be lowbit::grid::signed_int (weights) or "
                  "lowbit::grid::unsigned_int (post-ReLU activations)");
    static_assert(Bits >= 2 || !std::is_same_v<GridT, grid::signed_int>,
                  "lowbit::ste::lsq: a signed LSQ grid needs at least 2 bits; for 1 bit use grid::unsigned_int "
                  "or lowbit::ste::xnor_weight");

    static constexpr level_range levels_ = [] {
        if constexpr (std::is_same_v<GridT, grid::signed_int>)
            return level_range{-(1 << (Bits - 1)), (1 << (Bits - 1)) - 1, 0.0f};
        else
            return level_range{0, (1 << Bits) - 1, 0.0f};
    }();

public:
    static constexpr int bits = Bits;
    using grid_type = GridT;
    using granularity_type = GranularityT;
    using rounding_type = nearest_even_t;  // with grid_type and granularity_type: policy_traits
    using bound_type = learned_bound_t;    // the step
    static constexpr std::string_view parameter_name = "lsq.step";
    /// \f$ Q_N \f$ and \f$ Q_P \f$ of the grid.
    static constexpr float qn = static_cast<float>(-levels_.qmin);
    static constexpr float qp = static_cast<float>(levels_.qmax);

    lsq() = default;
    explicit lsq(lsq_options o) : init_(o.step), step_(slicing_channels(), o.step), grad_(slicing_channels(), 0.0f) {}

    /// Records the tensor's shape; per_channel_t gets one step per slice along axis 0 (all set to the initial step).
    void bind(std::span<std::size_t const> shape)
    {
        slices_.bind(shape);
        if (slices_.channels() != step_.size()) {
            step_.assign(slices_.channels(), init_);
            grad_.assign(slices_.channels(), 0.0f);
        }
    }

    /// The learned steps (one per tensor, or one per channel) and their accumulated gradients.
    std::span<float> parameters() noexcept { return step_; }
    std::span<float> gradients() noexcept { return grad_; }

    /// Sets every step that is <= 0 to 2 mean|x| / sqrt(Qp) of its slice (left alone for an all-zero slice).
    void initialise(std::span<float const> x)
    {
        detail::reject_nan(x, "lsq");
        initialise_checked(x);
    }

    /// y = round(clip(x/s, -Qn, Qp)) s, initialising unset steps first. Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "lsq");
        initialise_checked(x);
        std::size_t const len = slices_.slice_length(x.size(), "lsq");
        x_.assign(x.begin(), x.end());
        used_.assign(step_.begin(), step_.end());
        len_ = len;
        if (len == 0) return;
        detail::for_each_slice_run(x.size(), len, [&](std::size_t b, std::size_t e, std::size_t c) {
            float const s = used_[c];
            auto const out = y.subspan(b, e - b);
            if (s > 0.0f)
                lowbit::detail::step_quantize(x.subspan(b, e - b), out, s, -qn, qp);
            else
                std::fill(out.begin(), out.end(), 0.0f);
        });
    }

    /// dx = dy 1{-Qn < x/s < Qp}; ds += g sum dy (round(x/s) - x/s | -Qn | Qp).
    void backward(std::span<float const> dy, std::span<float> dx)
    {
        detail::check_backward(dy, dx, x_.size(), "lsq");
        if (x_.empty()) return;
        float const g = 1.0f / std::sqrt(static_cast<float>(len_) * qp);
        for (std::size_t c = 0; c < used_.size(); ++c) {
            std::size_t const at = c * len_;
            float const s = used_[c];
            if (!(s > 0.0f)) {  // step not initialised yet (all-zero data): pass through, no step gradient
                std::copy(dy.begin() + at, dy.begin() + at + len_, dx.begin() + at);
                continue;
            }
            double const acc = ordered_block_reduce<double>(len_, [&](std::size_t b, std::size_t e) {
                return lowbit::detail::step_quantize_backward(std::span<float const>(x_).subspan(at + b, e - b),
                                                              dy.subspan(at + b, e - b), dx.subspan(at + b, e - b), s,
                                                              -qn, qp);
            });
            grad_[c] += g * static_cast<float>(acc);
        }
    }

private:
    // initialise() without the NaN check, for forward(), which has checked already.
    void initialise_checked(std::span<float const> x)
    {
        std::size_t const len = slices_.slice_length(x.size(), "lsq");
        if (len == 0) return;
        for (std::size_t c = 0; c < step_.size(); ++c) {
            if (step_[c] > 0.0f) continue;
            double s = 0.0;
            for (std::size_t i = c * len; i < (c + 1) * len; ++i) s += std::abs(x[i]);
            auto const m = static_cast<float>(s / static_cast<double>(len));
            if (m > 0.0f) step_[c] = 2.0f * m / std::sqrt(qp);
        }
    }

    detail::slicing<GranularityT> slices_{};
    float init_ = 0.0f;
    std::vector<float> step_ = std::vector<float>(slicing_channels(), 0.0f);
    std::vector<float> grad_ = std::vector<float>(slicing_channels(), 0.0f);
    std::vector<float> x_, used_;  // inputs and steps of the last forward pass
    std::size_t len_ = 0;

    static constexpr std::size_t slicing_channels() noexcept { return detail::slicing<GranularityT>::per_channel ? 0 : 1; }
};

} // namespace lowbit::ste
