// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concepts for learning-rate schedules. A schedule is an aggregate of options with
/// `float rate(double epoch) const`, where `epoch` is fractional progress: steps done / steps per epoch
/// (so 2.5 is half-way through the third epoch). Training loops pass the progress *after* the step they
/// are about to take, `(step + 1) / steps_per_epoch`, so that the step that completes a cycle of a
/// CyclicSchedule runs at the cycle's lowest rate and `cycle_end` fires for that same step.

#include <concepts>

namespace lowbit::optim {

/// @brief A copyable type whose `rate(epoch)` maps fractional progress (double) to a learning rate (float).
/// Satisfied by schedule::constant, schedule::step_decay, schedule::cosine, schedule::warmup<S> and
/// schedule::cyclic.
template <class S>
concept Schedule = std::copyable<S> && requires(S const& s, double epoch) {
    { s.rate(epoch) } -> std::same_as<float>;
};

/// @brief A Schedule made of repeated cycles, for SWA/SQWA-style training that captures a model at the end of
/// each cycle: `cycle_epochs()` is the cycle length in epochs and `cycle_end(before, after)` is true when a
/// cycle boundary lies in (before, after]. Satisfied by schedule::cyclic and schedule::warmup<cyclic>.
template <class S>
concept CyclicSchedule = Schedule<S> && requires(S const& s, double before, double after) {
    { s.cycle_epochs() } -> std::same_as<double>;
    { s.cycle_end(before, after) } -> std::same_as<bool>;
};

namespace detail {

/// @brief Asserts Schedule<S> with a message that says what to provide.
template <class S>
consteval bool check_schedule()
{
    static_assert(Schedule<S>,
                  "lowbit: the schedule type must model lowbit::optim::Schedule: a copyable type with "
                  "float rate(double epoch) const, e.g. lowbit::optim::schedule::constant or schedule::cosine");
    return true;
}

/// @brief Asserts CyclicSchedule<S> with a message that says what to provide.
template <class S>
consteval bool check_cyclic_schedule()
{
    static_assert(check_schedule<S>());
    static_assert(CyclicSchedule<S>,
                  "lowbit: the schedule type must model lowbit::optim::CyclicSchedule: add "
                  "double cycle_epochs() const and bool cycle_end(double before, double after) const, "
                  "or use lowbit::optim::schedule::cyclic");
    return true;
}

} // namespace detail
} // namespace lowbit::optim
