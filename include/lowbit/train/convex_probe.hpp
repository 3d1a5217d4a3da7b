// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::run_convex: the update rules of full_precision, binary_connect, stochastic_rounding and
/// rounded applied, through nn::weight, to a convex problem with an exact minimizer, using plain gradient
/// steps. This is how the tests and the theory experiment check Li et al.'s convex analysis (section 4):
/// SR's error floor scales with the grid step and does not shrink with the learning rate; BC with
/// stochastic rounding converges to the true minimizer; R stalls once lr |g| < step / 2.

#include <lowbit/nn/weight.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/train/method_concepts.hpp>

#include <xtensor/xtensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace lowbit::train {

/// @brief Options of run_convex.
struct convex_options {
    std::size_t steps = 1000;
    double lr = 0.1;              ///< base learning rate
    double decay = 0.0;           ///< lr_t = lr / (1 + decay t): 0 keeps it constant
    std::uint64_t seed = 0;
    std::size_t record_every = 0; ///< record the loss gap every this many steps (0: never)
    float init = 0.0f;            ///< initial value of every weight
};

/// @brief What run_convex measured.
struct convex_trace {
    std::vector<double> gap;         ///< recorded f(w_t) - f*, at the kept weights (BC: the float shadow)
    double final_gap = 0.0;          ///< f(w_T) - f*, w_T the weights the forward pass uses at the end
    double tail_gap = 0.0;           ///< mean of f(w_t) - f* over the last half of the steps
    double tail_distance = 0.0;      ///< mean of |w_t - w*| over the last half of the steps
    double shadow_distance = 0.0;    ///< |w_r - w*| of the float weights (BC); of the weights otherwise
    std::size_t changed_steps = 0;   ///< steps after which the stored weights differed from before
};

/// @brief Runs `Method`'s update on the problem (loss(w), gradient(w), minimizer(), optimum_loss()), with
/// weights quantized by Q.
template <TrainingMethod Method, Quantizer Q, class Problem>
convex_trace run_convex(Problem const& p, Q q, convex_options const& o)
{
    std::size_t const d = p.dim();
    nn::weight<Q> w({d}, q);
    std::fill(w.master().begin(), w.master().end(), o.init);
    w.bind(typename Method::weight_state{}, 1, o.seed);
    auto as_tensor = [d](auto const& v) {
        xt::xtensor<double, 1> t = xt::xtensor<double, 1>::from_shape({d});
        for (std::size_t i = 0; i < d; ++i) t(i) = v[i];
        return t;
    };
    convex_trace tr;
    std::vector<float> step(d);
    std::size_t tail = 0;
    for (std::size_t t = 0; t < o.steps; ++t) {
        nn::forward_context const ctx{.training = true, .seed = o.seed, .step = static_cast<std::uint32_t>(t)};
        // The gap is measured at the weights the method keeps (BC's float shadow weights; the grid values for
        // SR and R); the gradient is taken at the weights the forward pass uses.
        auto const kept = as_tensor(w.values());
        double const gap = p.loss(kept) - p.optimum_loss();
        auto const x = as_tensor(w.forward_values(ctx));
        if (o.record_every != 0 && t % o.record_every == 0) tr.gap.push_back(gap);
        if (2 * t >= o.steps) {
            tr.tail_gap += gap;
            tr.tail_distance += std::sqrt(xt::sum(xt::square(kept - p.minimizer()))());
            ++tail;
        }
        auto const g = p.gradient(x);
        double const lr = o.lr / (1.0 + o.decay * static_cast<double>(t));
        for (std::size_t i = 0; i < d; ++i) step[i] = static_cast<float>(lr * g(i));
        auto const before = w.values();
        Method::update(w, step, {.seed = o.seed, .step = static_cast<std::uint32_t>(t), .stream = 1});
        if (w.values() != before) ++tr.changed_steps;
    }
    tr.tail_gap /= static_cast<double>(tail == 0 ? 1 : tail);
    tr.tail_distance /= static_cast<double>(tail == 0 ? 1 : tail);
    nn::forward_context const eval{.training = false};
    tr.final_gap = p.loss(as_tensor(w.forward_values(eval))) - p.optimum_loss();
    auto const values = as_tensor(w.values());
    tr.shadow_distance = std::sqrt(xt::sum(xt::square(values - p.minimizer()))());
    return tr;
}

} // namespace lowbit::train
