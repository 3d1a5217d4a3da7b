// SPDX-License-Identifier: MIT
// lowbit-theory: Li et al. 2017's convex analysis on a least-squares problem (d = 10, 200 samples), with the
// library's own update rules (train::run_convex). Prints CSV: run,step,gap where gap = f(w_t) - f*.
// Runs: SR with three grid steps; SR with a 10x smaller learning rate; BC with stochastic rounding and a
// decaying rate; R with a small rate; full precision. examples/experiments/theory.py plots it.
#include <lowbit/lowbit.hpp>

#include <cstdio>
#include <string>

namespace {
template <int Bits, class R>
using grid_q = lowbit::quantizer<Bits, R, lowbit::clip::fixed_range, lowbit::grid::symmetric_odd>;
template <int Bits, class R>
constexpr grid_q<Bits, R> grid4{.clipping = {.bound = 4.0f}};  // step 4 / (2^(b-1) - 1)

void print(char const* name, lowbit::train::convex_trace const& t, std::size_t every)
{
    for (std::size_t i = 0; i < t.gap.size(); ++i) std::printf("%s,%zu,%.9g\n", name, i * every, t.gap[i]);
}
} // namespace

int main()
{
    using namespace lowbit;
    data::least_squares_problem const p{{.samples = 200, .dim = 10, .noise = 0.1, .seed = 5}};
    double const l = p.smoothness();
    std::size_t const every = 20, steps = 20000;
    train::convex_options const base{.steps = steps, .lr = 0.5 / l, .seed = 1, .record_every = every};
    std::printf("run,step,gap\n");
    print("SR step 0.129", train::run_convex<train::stochastic_rounding>(p, grid4<6, stochastic_t>, base), every);
    print("SR step 0.063", train::run_convex<train::stochastic_rounding>(p, grid4<7, stochastic_t>, base), every);
    print("SR step 0.031", train::run_convex<train::stochastic_rounding>(p, grid4<8, stochastic_t>, base), every);
    auto slow = base;
    slow.lr = 0.05 / l;
    print("SR step 0.063 lr/10", train::run_convex<train::stochastic_rounding>(p, grid4<7, stochastic_t>, slow), every);
    auto decaying = base;
    decaying.decay = 0.01;
    print("BC(Q_s) step 0.129 decaying lr", train::run_convex<train::binary_connect>(p, grid4<6, stochastic_t>, decaying), every);
    auto tiny = base;
    tiny.lr = 0.001 / l;
    print("R step 0.129 lr 0.001/L", train::run_convex<train::rounded>(p, grid4<6, nearest_even_t>, tiny), every);
    print("full precision", train::run_convex<train::full_precision>(p, grid4<6, nearest_even_t>, base), every);
    return 0;
}
