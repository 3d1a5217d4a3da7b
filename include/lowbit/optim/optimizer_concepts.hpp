// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concepts for optimizers. A lowbit optimizer computes a *step* and never applies it: the training
/// method decides what "apply" means. Stochastic rounding (SR) stores only quantized weights and does
/// \f$ w \leftarrow Q_s(w - s) \f$; BinaryConnect (BC) does \f$ w_r \leftarrow w_r - s \f$ on float shadow
/// weights and then clips (Li et al. 2017, see docs and methods.md §1.2). Both only need the step \f$ s \f$.
///
/// The call that every optimizer provides:
/// @code
/// void step(std::size_t slot, std::span<float const> w, std::span<float const> g,
///           std::span<float> step, float lr, bool decay);
/// @endcode
/// - `slot` names the parameter tensor (0, 1, 2, ... in a fixed order). Per-slot state (momentum buffer,
///   Adam moments, step count) is created lazily at the first call for that slot and sized from `w.size()`.
/// - `w` are the current weights, `g` the gradient taken where the method takes it (at Q(w_r) for BC).
/// - `step` receives s with the rule "new weight = w[i] - step[i]".
/// - `lr` is the learning rate of this step (the schedule's value); `options().lr` is only a default.
/// - `decay` is false for parameters that must get no weight decay (biases, batch norm, PACT's alpha).

#include <concepts>
#include <cstddef>
#include <span>

namespace lowbit::optim {

/// @brief A type with the step member described in this file's brief:
/// `o.step(slot, w, g, step, lr, decay)` with argument types `std::size_t, std::span<float const>,
/// std::span<float const>, std::span<float>, float, bool`, returning void.
template <class O>
concept ProducesStep = requires(O& o, std::size_t slot, std::span<float const> w, std::span<float const> g,
                                std::span<float> step, float lr, bool decay) {
    { o.step(slot, w, g, step, lr, decay) } -> std::same_as<void>;
};

/// @brief An optimizer that can also apply its step in place: `o.apply(slot, w, g, lr, decay)` sets
/// w <- w - s with s the step that `step` computes, bit for bit, in the same pass over the weights (one pass
/// fewer than step() and a subtraction). Optional: the trainer uses it for methods whose update is that
/// subtraction (followed by a projection, see train::SubtractingMethod) and falls back to step() otherwise.
/// lowbit::optim::adam has it; sgd does not, because its step ends in a product (lr * g) that the compiler
/// may contract with the subtraction into one fused multiply-add, which would round differently.
template <class O>
concept AppliesStep = ProducesStep<O> && requires(O& o, std::size_t slot, std::span<float> w, std::span<float const> g,
                                                  float lr, bool decay) {
    { o.apply(slot, w, g, lr, decay) } -> std::same_as<void>;
};

/// @brief A type whose `reset()` drops all per-slot state, so that the next step of every slot is a
/// first step again (fresh momentum buffers, Adam moments and step counts).
template <class O>
concept ResettableState = requires(O& o) {
    { o.reset() } -> std::same_as<void>;
};

/// @brief An optimizer that lowbit's training methods can drive: movable (methods hold it by value),
/// with the step member (ProducesStep) and reset() (ResettableState).
/// Satisfied by lowbit::optim::sgd and lowbit::optim::adam.
template <class O>
concept Optimizer = std::movable<O> && ProducesStep<O> && ResettableState<O>;

namespace detail {

/// @brief Asserts Optimizer<O> one requirement at a time, so the diagnostic says which part is missing
/// and what to write (a bare `requires Optimizer<O>` only prints "constraints not satisfied").
/// Training methods call it as `static_assert(optim::detail::check_optimizer<O>());`.
template <class O>
consteval bool check_optimizer()
{
    static_assert(ProducesStep<O>,
                  "lowbit: the optimizer type must model lowbit::optim::Optimizer: provide "
                  "void step(std::size_t slot, std::span<float const> w, std::span<float const> g, "
                  "std::span<float> step, float lr, bool decay) that writes the step (new w = w - step), "
                  "or use lowbit::optim::sgd / lowbit::optim::adam");
    static_assert(ResettableState<O>,
                  "lowbit: the optimizer type must model lowbit::optim::Optimizer: provide "
                  "void reset() that drops all per-slot state (momentum buffers, moments, step counts)");
    static_assert(std::movable<O>,
                  "lowbit: the optimizer type must model lowbit::optim::Optimizer: it must be movable "
                  "(training methods hold it by value); hold non-movable members through std::unique_ptr");
    return true;
}

} // namespace detail
} // namespace lowbit::optim
