// SPDX-License-Identifier: MIT
// Li et al. 2017's convex analysis (section 4), checked on a least-squares problem with the library's own
// update rules (train::run_convex over nn::weight).
#include <lowbit/data/least_squares.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/convex_probe.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/stochastic_rounding.hpp>

#include <doctest/doctest.h>

#include <utility>

using namespace lowbit;

namespace {
data::least_squares_problem const problem{{.samples = 200, .dim = 10, .noise = 0.1, .seed = 5}};

/// Grid over [-4, 4] with 2^(b-1) - 1 positive levels: step 4 / (2^(b-1) - 1).
template <int Bits, class R>
using grid_q = quantizer<Bits, R, clip::fixed_range, grid::symmetric_odd>;
template <int Bits, class R>
constexpr grid_q<Bits, R> grid4{.clipping = {.bound = 4.0f}};

double step_of(int bits) { return 4.0 / ((1 << (bits - 1)) - 1); }
} // namespace

TEST_CASE("SR: the error floor shrinks with the grid step, about proportionally")
{
    double const lr = 0.5 / problem.smoothness();
    train::convex_options const o{.steps = 4000, .lr = lr, .seed = 1};
    auto const t6 = train::run_convex<train::stochastic_rounding>(problem, grid4<6, stochastic_t>, o);
    auto const t7 = train::run_convex<train::stochastic_rounding>(problem, grid4<7, stochastic_t>, o);
    auto const t8 = train::run_convex<train::stochastic_rounding>(problem, grid4<8, stochastic_t>, o);
    MESSAGE("SR floors for steps " << step_of(6) << ", " << step_of(7) << ", " << step_of(8) << ": distance "
                                   << t6.tail_distance << ", " << t7.tail_distance << ", " << t8.tail_distance
                                   << "; loss gap " << t6.tail_gap << ", " << t7.tail_gap << ", " << t8.tail_gap);
    // The distance to the minimizer halves with the step (ratio 1.4 .. 3 per halving); the loss gap, quadratic
    // in the distance, falls about four-fold.
    for (auto [coarse, fine] : {std::pair{t6, t7}, std::pair{t7, t8}}) {
        CHECK(coarse.tail_distance / fine.tail_distance > 1.4);
        CHECK(coarse.tail_distance / fine.tail_distance < 3.0);
        CHECK(coarse.tail_gap / fine.tail_gap > 2.0);
        CHECK(coarse.tail_gap / fine.tail_gap < 9.0);
    }
}

TEST_CASE("SR: a smaller learning rate does not lower the floor")
{
    double const l = problem.smoothness();
    auto const fast = train::run_convex<train::stochastic_rounding>(problem, grid4<7, stochastic_t>,
                                                                    {.steps = 4000, .lr = 0.5 / l, .seed = 2});
    auto const slow = train::run_convex<train::stochastic_rounding>(problem, grid4<7, stochastic_t>,
                                                                    {.steps = 40000, .lr = 0.05 / l, .seed = 2});
    MESSAGE("SR floor at lr 0.5/L: " << fast.tail_gap << ", at lr 0.05/L: " << slow.tail_gap);
    // A float method's floor would fall with the rate; SR's stays within a factor 2 (it is set by the step).
    CHECK(slow.tail_gap > 0.5 * fast.tail_gap);
    auto const fp = train::run_convex<train::full_precision>(problem, grid4<7, stochastic_t>,
                                                             {.steps = 4000, .lr = 0.5 / l, .seed = 2});
    CHECK(fp.final_gap < 1e-6);
    CHECK(fast.tail_gap > 1000 * fp.final_gap);
}

TEST_CASE("BC with stochastic rounding converges to the true minimizer")
{
    double const l = problem.smoothness();
    auto const bc = train::run_convex<train::binary_connect>(
        problem, grid4<6, stochastic_t>, {.steps = 40000, .lr = 0.5 / l, .decay = 0.01, .seed = 3});
    auto const sr = train::run_convex<train::stochastic_rounding>(problem, grid4<6, stochastic_t>,
                                                                  {.steps = 40000, .lr = 0.5 / l, .decay = 0.01, .seed = 3});
    MESSAGE("distance to the minimizer: BC float weights " << bc.shadow_distance << ", SR " << sr.shadow_distance
                                                           << " (grid step " << step_of(6) << ")");
    CHECK(bc.shadow_distance < 0.1 * step_of(6));  // far inside one grid cell
    CHECK(sr.shadow_distance > bc.shadow_distance * 3);
}

TEST_CASE("R stalls once lr |g| < step / 2")
{
    double const l = problem.smoothness();
    // Starting at 0 (a grid point), every step smaller than half the grid step rounds back to 0.
    auto const tiny = train::run_convex<train::rounded>(problem, grid4<6, nearest_even_t>,
                                                        {.steps = 2000, .lr = 0.001 / l, .seed = 4});
    CHECK(tiny.changed_steps == 0);
    auto const sr = train::run_convex<train::stochastic_rounding>(problem, grid4<6, stochastic_t>,
                                                                  {.steps = 2000, .lr = 0.001 / l, .seed = 4});
    CHECK(sr.changed_steps > 20);  // SR still moves, in expectation along the gradient
    CHECK(sr.tail_gap < tiny.tail_gap);
}
