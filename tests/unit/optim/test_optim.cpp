// SPDX-License-Identifier: MIT
// Optimizers and schedules: PyTorch's update formulas on hand-computed trajectories, per-slot state,
// option checks, every schedule at chosen epochs, cyclic boundaries, and the concepts.
#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/optimizer_concepts.hpp>
#include <lowbit/optim/schedule/constant.hpp>
#include <lowbit/optim/schedule/cosine.hpp>
#include <lowbit/optim/schedule/cyclic.hpp>
#include <lowbit/optim/schedule/step_decay.hpp>
#include <lowbit/optim/schedule/warmup.hpp>
#include <lowbit/optim/schedule_concepts.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

using namespace lowbit::optim;
namespace sch = lowbit::optim::schedule;

namespace {

// ---- concept batteries ------------------------------------------------------------------------------------
struct no_reset {
    void step(std::size_t, std::span<float const>, std::span<float const>, std::span<float>, float, bool) {}
};
struct no_step {
    void reset() {}
};
struct vector_step { // wrong parameter types: takes vectors, not spans
    void step(std::size_t, std::vector<float> const&, std::vector<float> const&, std::vector<float>&, float, bool) {}
    void reset() {}
};
struct int_step { // returns something: the concept asks for void
    int step(std::size_t, std::span<float const>, std::span<float const>, std::span<float>, float, bool) { return 0; }
    void reset() {}
};
struct pinned { // has everything but cannot be moved
    pinned() = default;
    pinned(pinned const&) = delete;
    pinned& operator=(pinned const&) = delete;
    void step(std::size_t, std::span<float const>, std::span<float const>, std::span<float>, float, bool) {}
    void reset() {}
};
struct minimal_optimizer {
    void step(std::size_t, std::span<float const>, std::span<float const>, std::span<float>, float, bool) {}
    void reset() {}
};

static_assert(Optimizer<sgd>);
static_assert(Optimizer<adam>);
static_assert(Optimizer<minimal_optimizer>);
static_assert(detail::check_optimizer<sgd>());
static_assert(detail::check_optimizer<adam>());
static_assert(!Optimizer<int>);
static_assert(!Optimizer<sgd const>); // not movable-assignable
static_assert(!Optimizer<no_reset>);
static_assert(ProducesStep<no_reset> && !ResettableState<no_reset>);
static_assert(!Optimizer<no_step>);
static_assert(!ProducesStep<no_step> && ResettableState<no_step>);
static_assert(!Optimizer<vector_step>);
static_assert(!ProducesStep<vector_step>);
static_assert(!Optimizer<int_step>);
static_assert(!Optimizer<pinned>);
static_assert(ProducesStep<pinned> && ResettableState<pinned> && !std::movable<pinned>);

struct double_rate {
    double rate(double) const { return 0.0; }
};
struct mutable_rate {
    float rate(double) { return 0.0f; }
};
struct float_epoch_cycle { // cycle_epochs returns float: not a CyclicSchedule
    float rate(double) const { return 0.0f; }
    float cycle_epochs() const { return 1.0f; }
    bool cycle_end(double, double) const { return false; }
};
struct my_cyclic {
    float rate(double) const { return 0.0f; }
    double cycle_epochs() const { return 1.0; }
    bool cycle_end(double, double) const { return false; }
};

static_assert(Schedule<sch::constant>);
static_assert(Schedule<sch::step_decay>);
static_assert(Schedule<sch::cosine>);
static_assert(Schedule<sch::cyclic>);
static_assert(Schedule<sch::warmup<sch::cosine>>);
static_assert(Schedule<sch::warmup<sch::warmup<sch::step_decay>>>);
static_assert(CyclicSchedule<sch::cyclic>);
static_assert(CyclicSchedule<sch::warmup<sch::cyclic>>);
static_assert(CyclicSchedule<my_cyclic>);
static_assert(!CyclicSchedule<sch::cosine>);
static_assert(!CyclicSchedule<sch::warmup<sch::cosine>>);
static_assert(!CyclicSchedule<float_epoch_cycle> && Schedule<float_epoch_cycle>);
static_assert(!Schedule<int>);
static_assert(!Schedule<double_rate>);
static_assert(!Schedule<mutable_rate>);
static_assert(!Schedule<sgd>);
static_assert(detail::check_cyclic_schedule<sch::cyclic>());
static_assert(!CyclicSchedule<int>);

// ---- helpers --------------------------------------------------------------------------------------------
// Runs `steps` steps on f(w) = sum_i (w_i - 3)^2 / 2 (gradient w - 3), applying w <- w - step, and returns
// the weights after each step.
template <class O>
std::vector<std::vector<float>> trajectory(O& opt, std::vector<float> w, float lr, int steps, bool decay = true)
{
    std::vector<std::vector<float>> out;
    std::vector<float> g(w.size()), s(w.size());
    for (int t = 0; t < steps; ++t) {
        for (std::size_t i = 0; i < w.size(); ++i)
            g[i] = w[i] - 3.0f;
        opt.step(0, w, g, s, lr, decay);
        for (std::size_t i = 0; i < w.size(); ++i)
            w[i] -= s[i];
        out.push_back(w);
    }
    return out;
}

void check_trajectory(std::vector<std::vector<float>> const& got, std::vector<std::vector<double>> const& want)
{
    REQUIRE(got.size() == want.size());
    for (std::size_t t = 0; t < want.size(); ++t) {
        REQUIRE(got[t].size() == want[t].size());
        for (std::size_t i = 0; i < want[t].size(); ++i) {
            CAPTURE(t);
            CAPTURE(i);
            CHECK(got[t][i] == doctest::Approx(want[t][i]).epsilon(2e-6));
        }
    }
}

template <class F>
std::string message_of(F&& f)
{
    try {
        f();
    } catch (std::invalid_argument const& e) {
        return e.what();
    }
    return "<no std::invalid_argument thrown>";
}

bool contains(std::string const& s, char const* part) { return s.find(part) != std::string::npos; }

} // namespace

TEST_CASE("concepts: the library's types model them, look-alikes do not")
{
    // The batteries above are static_asserts; this re-checks a few at run time so the case is reported.
    CHECK(Optimizer<sgd>);
    CHECK(Optimizer<adam>);
    CHECK_FALSE(Optimizer<vector_step>);
    CHECK(CyclicSchedule<sch::cyclic>);
    CHECK_FALSE(CyclicSchedule<sch::cosine>);
}

// ---- SGD ------------------------------------------------------------------------------------------------
// Expected values: PyTorch's torch.optim.SGD update evaluated by hand (in double) on f = (w - 3)^2 / 2
// from w = {0, 5} with lr 0.1. E.g. momentum 0.9, element 0: g = -3, b = -3, w = 0.3; g = -2.7,
// b = 0.9 * -3 - 2.7 = -5.4, w = 0.84; g = -2.16, b = -4.86 - 2.16 = -7.02, w = 1.542.
TEST_CASE("sgd: plain, momentum, Nesterov and weight decay follow PyTorch's formulas")
{
    SUBCASE("plain")
    {
        sgd opt;
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3), {{0.3, 4.8}, {0.57, 4.62}, {0.813, 4.458}});
        CHECK(opt.momentum_buffer(0).empty()); // momentum 0 keeps no state
    }
    SUBCASE("momentum")
    {
        sgd opt{{.momentum = 0.9f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3), {{0.3, 4.8}, {0.84, 4.44}, {1.542, 3.972}});
        REQUIRE(opt.momentum_buffer(0).size() == 2);
        CHECK(opt.momentum_buffer(0)[0] == doctest::Approx(-7.02));
    }
    SUBCASE("Nesterov")
    {
        sgd opt{{.momentum = 0.9f, .nesterov = true}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3),
                         {{0.57, 4.62}, {1.2747, 4.1502}, {2.018037, 3.654642}});
    }
    SUBCASE("Nesterov with weight decay 0.01")
    {
        sgd opt{{.momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3),
                         {{0.57, 4.6105}, {1.273617, 4.12969505}, {2.0142782, 3.62357656}});
    }
    SUBCASE("decay = false skips the weight decay")
    {
        sgd opt{{.momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3, false),
                         {{0.57, 4.62}, {1.2747, 4.1502}, {2.018037, 3.654642}});
    }
}

TEST_CASE("sgd: single steps by hand, lr per call, and in-place output")
{
    std::vector<float> const w{1.0f, -2.0f};
    std::vector<float> const g{0.5f, 0.25f};
    std::vector<float> s(2);
    sgd opt{{.lr = 123.0f, .weight_decay = 0.1f}}; // options().lr is not used by step()
    opt.step(0, w, g, s, 0.1f, true);              // g' = g + 0.1 w = {0.6, 0.05}
    CHECK(s[0] == doctest::Approx(0.06));
    CHECK(s[1] == doctest::Approx(0.005));
    opt.step(0, w, g, s, 0.1f, false);
    CHECK(s[0] == doctest::Approx(0.05));
    CHECK(s[1] == doctest::Approx(0.025));
    CHECK(opt.options().lr == 123.0f);

    // Momentum buffer by hand with a constant weight: g = 1, 2, 3 -> b = 1, 2.9, 5.61.
    sgd mom{{.momentum = 0.9f}};
    std::vector<float> const w1{0.0f};
    std::vector<float> s1(1);
    float const expected[] = {0.1f, 0.29f, 0.561f};
    for (int t = 0; t < 3; ++t) {
        std::vector<float> const g1{static_cast<float>(t + 1)};
        mom.step(4, w1, g1, s1, 0.1f, true);
        CHECK(s1[0] == doctest::Approx(expected[t]));
    }

    // out may be the gradient buffer itself.
    sgd a{{.momentum = 0.9f, .weight_decay = 0.1f}};
    sgd b{{.momentum = 0.9f, .weight_decay = 0.1f}};
    std::vector<float> inplace = g;
    std::vector<float> separate(2);
    for (int t = 0; t < 2; ++t) {
        inplace = g;
        a.step(0, w, inplace, inplace, 0.1f, true);
        b.step(0, w, g, separate, 0.1f, true);
        CHECK(inplace == separate);
    }
}

// ---- Adam -----------------------------------------------------------------------------------------------
// Expected values: PyTorch's torch.optim.Adam / AdamW update evaluated by hand (in double) on
// f = (w - 3)^2 / 2 from w = {0, 5} with lr 0.1. Step 1 moves every element by lr * g / (|g| + eps)
// (bias correction makes m-hat = g and v-hat = g^2), i.e. 0.1 toward 3. AdamW's step 1 adds
// lr * 0.1 * w = 0.05 for w = 5: 5 - 0.1 - 0.05 = 4.85.
TEST_CASE("adam: bias correction, L2 decay and decoupled decay follow PyTorch's formulas")
{
    SUBCASE("defaults")
    {
        adam opt;
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3),
                         {{0.0999999997, 4.9}, {0.199897292, 4.80016649}, {0.299618476, 4.70062339}});
        CHECK(opt.step_count(0) == 3);
    }
    SUBCASE("L2 weight decay 0.1 goes through the moments")
    {
        adam opt{{.weight_decay = 0.1f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3),
                         {{0.0999999997, 4.9}, {0.199885221, 4.80014253}, {0.299572979, 4.70053213}});
    }
    SUBCASE("decoupled weight decay 0.1 (AdamW)")
    {
        adam opt{{.decoupled_weight_decay = 0.1f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3),
                         {{0.0999999997, 4.85}, {0.198897292, 4.70177877}, {0.296631151, 4.55553502}});
    }
    SUBCASE("decay = false skips both decays")
    {
        adam opt{{.weight_decay = 0.1f, .decoupled_weight_decay = 0.1f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3, false),
                         {{0.0999999997, 4.9}, {0.199897292, 4.80016649}, {0.299618476, 4.70062339}});
    }
    SUBCASE("other betas and eps")
    {
        adam opt{{.beta1 = 0.5f, .beta2 = 0.75f, .eps = 0.01f}};
        check_trajectory(trajectory(opt, {0.0f, 5.0f}, 0.1f, 3),
                         {{0.0996677741, 4.90049751}, {0.198993804, 4.80152631}, {0.297786991, 4.70339673}});
    }
}

TEST_CASE("adam::apply is step() then the subtraction, bit for bit, in one pass")
{
    static_assert(AppliesStep<adam>);
    static_assert(!AppliesStep<sgd>);  // its step ends in lr * g, which could be fused with the subtraction
    // 1027 values: whole batches, a tail, and (at 1 << 15 per range) one range; 70000 values: several ranges.
    for (std::size_t n : {std::size_t{1027}, std::size_t{70000}}) {
        for (unsigned threads : {1u, 2u}) {
            lowbit::set_num_threads(threads);
            CAPTURE(n);
            CAPTURE(threads);
            std::mt19937 gen(11);
            std::normal_distribution<float> d;
            std::vector<float> w(n);
            for (float& v : w) v = d(gen);
            std::vector<float> applied = w;
            adam a{{.weight_decay = 0.01f, .decoupled_weight_decay = 0.02f}}, b = a;
            std::vector<float> s(n), g(n);
            for (int t = 0; t < 3; ++t) {
                for (float& v : g) v = d(gen);
                a.step(0, w, g, s, 0.01f, t != 1);
                for (std::size_t i = 0; i < n; ++i) w[i] -= s[i];
                b.apply(0, applied, g, 0.01f, t != 1);
            }
            CHECK(applied == w);
            CHECK(std::ranges::equal(a.first_moment(0), b.first_moment(0)));
            CHECK(std::ranges::equal(a.second_moment(0), b.second_moment(0)));
            CHECK(a.step_count(0) == b.step_count(0));
        }
    }
    lowbit::set_num_threads(2);
    adam c;
    std::vector<float> w3(3), g2(2);
    CHECK_THROWS_AS(c.apply(0, w3, g2, 0.1f, true), lowbit::invalid_input);
}

TEST_CASE("adam: single steps by hand, and L2 and decoupled decay differ")
{
    std::vector<float> const w{2.0f};
    std::vector<float> s(1);
    SUBCASE("second step with g = 2 then 1")
    {
        adam opt;
        std::vector<float> const g1{2.0f};
        std::vector<float> const g2{1.0f};
        opt.step(0, w, g1, s, 0.1f, true);
        CHECK(s[0] == doctest::Approx(0.1));
        // m = 0.28, v = 0.004996, bc1 = 0.19, bc2 = 0.001999: 0.1 * (0.28 / 0.19) / sqrt(0.004996 / 0.001999)
        opt.step(0, w, g2, s, 0.1f, true);
        CHECK(s[0] == doctest::Approx(0.1 * (0.28 / 0.19) / std::sqrt(0.004996 / 0.001999)).epsilon(1e-5));
        CHECK(opt.first_moment(0)[0] == doctest::Approx(0.28));
        CHECK(opt.second_moment(0)[0] == doctest::Approx(0.004996));
    }
    SUBCASE("zero gradient: L2 decay is normalised away, decoupled decay is not")
    {
        std::vector<float> const g{0.0f};
        adam l2{{.weight_decay = 0.1f}};
        adam dw{{.decoupled_weight_decay = 0.1f}};
        l2.step(0, w, g, s, 0.1f, true); // g' = 0.2: step = 0.1 * 0.2 / (0.2 + 1e-8)
        CHECK(s[0] == doctest::Approx(0.1));
        dw.step(0, w, g, s, 0.1f, true); // m = 0: step = lr * 0.1 * w = 0.02
        CHECK(s[0] == doctest::Approx(0.02));
    }
}

// ---- per-slot state ---------------------------------------------------------------------------------------
TEST_CASE_TEMPLATE("optimizers: slots are independent, state is lazy and sized from w, reset() starts over", O,
                   sgd, adam)
{
    auto make = [] {
        if constexpr (std::is_same_v<O, sgd>)
            return sgd{{.momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f}};
        else
            return adam{{.weight_decay = 0.01f}};
    };
    std::vector<float> const wa{1.0f, -1.0f, 0.5f};
    std::vector<float> const ga{0.3f, -0.2f, 0.1f};
    std::vector<float> const wb{2.0f, 3.0f};
    std::vector<float> const gb{-1.0f, 0.7f};
    std::vector<float> sa(3), sb(2), ra(3), rb(2);

    SUBCASE("interleaving two slots equals two separate optimizers")
    {
        O both = make();
        O only_a = make();
        O only_b = make();
        for (int t = 0; t < 4; ++t) {
            both.step(0, wa, ga, sa, 0.1f, true);
            both.step(5, wb, gb, sb, 0.1f, true); // a slot first used with a gap before it
            only_a.step(0, wa, ga, ra, 0.1f, true);
            only_b.step(0, wb, gb, rb, 0.1f, true);
            CHECK(sa == ra);
            CHECK(sb == rb);
        }
    }
    SUBCASE("a slot first used late gets a first step (adam: its own bias correction)")
    {
        O opt = make();
        O fresh = make();
        for (int t = 0; t < 5; ++t)
            opt.step(0, wa, ga, sa, 0.1f, true);
        opt.step(1, wb, gb, sb, 0.1f, true);
        fresh.step(0, wb, gb, rb, 0.1f, true);
        CHECK(sb == rb);
    }
    SUBCASE("state is created at the first call of a slot, sized from w")
    {
        O opt = make();
        auto state_size = [&](std::size_t slot) {
            if constexpr (std::is_same_v<O, sgd>)
                return opt.momentum_buffer(slot).size();
            else
                return opt.first_moment(slot).size();
        };
        CHECK(state_size(3) == 0);
        opt.step(3, wa, ga, sa, 0.1f, true);
        CHECK(state_size(3) == 3);
        CHECK(state_size(0) == 0); // lower slots not touched
        CHECK(state_size(4) == 0);
        opt.step(1, wb, gb, sb, 0.1f, true);
        CHECK(state_size(1) == 2);
        if constexpr (std::is_same_v<O, adam>) {
            CHECK(opt.step_count(3) == 1);
            CHECK(opt.second_moment(3).size() == 3);
        }
    }
    SUBCASE("reset() drops all state: the next step equals a fresh optimizer's")
    {
        O opt = make();
        O fresh = make();
        // The state is built on a gradient of the opposite sign, so that it changes the next step by far more
        // than rounding. (With the same constant gradient, Adam's bias-corrected step is the same at every t in
        // exact arithmetic: whether the steps before and after a reset differed then hung on the float roundings
        // of the build, and they did not under -O2 -march=native, whose FMA contraction rounds otherwise.)
        std::vector<float> const opposite{-0.3f, 0.2f, -0.1f};
        for (int t = 0; t < 3; ++t)
            opt.step(0, wa, opposite, sa, 0.1f, true);
        std::vector<float> const before = sa;
        O kept = opt;  // the same state, not reset
        std::vector<float> with_state(3);
        kept.step(0, wa, ga, with_state, 0.1f, true);
        opt.reset();
        opt.step(0, wa, ga, sa, 0.1f, true);
        fresh.step(0, wa, ga, ra, 0.1f, true);
        CHECK(sa == ra);
        // In exact arithmetic the kept state moves every element of this step by at least 0.02 (Adam: the first
        // moment's sign flips; SGD: the momentum buffer all but cancels the new 1.9 lr g'); rounding, by under 1e-6.
        for (std::size_t i = 0; i < 3; ++i) {
            CAPTURE(i);
            CHECK(std::abs(with_state[i] - ra[i]) > 0.01f);
            CHECK(std::abs(before[i] - sa[i]) > 0.01f);
        }
        opt.reset();
        opt.step(0, wb, gb, sb, 0.1f, true); // after reset a slot may take another size
        CHECK(sb.size() == 2);
    }
    SUBCASE("mismatched sizes throw lowbit::invalid_input")
    {
        O opt = make();
        std::vector<float> s2(2);
        CHECK_THROWS_AS(opt.step(0, wa, gb, sa, 0.1f, true), lowbit::invalid_input);
        CHECK_THROWS_AS(opt.step(0, wa, ga, s2, 0.1f, true), lowbit::invalid_input);
        opt.step(0, wa, ga, sa, 0.1f, true);
        std::string const msg = message_of([&] { opt.step(0, wb, gb, sb, 0.1f, true); });
        CHECK(contains(msg, "slot 0 was first used with 3 weights, now 2"));
    }
    SUBCASE("empty tensors are a no-op")
    {
        O opt = make();
        opt.step(0, std::span<float const>(), std::span<float const>(), std::span<float>(), 0.1f, true);
        opt.step(0, wa, ga, sa, 0.1f, true);
        O fresh = make();
        fresh.step(0, wa, ga, ra, 0.1f, true);
        CHECK(sa == ra);
    }
}

TEST_CASE("optimizers: bad options throw std::invalid_argument saying what to set")
{
    CHECK_THROWS_AS(sgd({.lr = -0.1f}), std::invalid_argument);
    CHECK_THROWS_AS(sgd({.lr = NAN}), std::invalid_argument);
    CHECK_THROWS_AS(sgd({.momentum = -0.5f}), std::invalid_argument);
    CHECK_THROWS_AS(sgd({.weight_decay = -1e-4f}), std::invalid_argument);
    CHECK(contains(message_of([] { sgd({.nesterov = true}); }), "set .momentum (e.g. 0.9f) or .nesterov = false"));
    CHECK_NOTHROW(sgd({.lr = 0.0f, .momentum = 0.9f, .nesterov = true, .weight_decay = 4e-5f}));

    CHECK(contains(message_of([] { adam({.lr = -1.0f}); }), "set a finite .lr >= 0"));
    CHECK_THROWS_AS(adam({.beta1 = 1.0f}), std::invalid_argument);
    CHECK_THROWS_AS(adam({.beta1 = -0.1f}), std::invalid_argument);
    CHECK_THROWS_AS(adam({.beta2 = 1.5f}), std::invalid_argument);
    CHECK(contains(message_of([] { adam({.eps = 0.0f}); }), "set a finite .eps > 0"));
    CHECK_THROWS_AS(adam({.weight_decay = -0.1f}), std::invalid_argument);
    CHECK_THROWS_AS(adam({.decoupled_weight_decay = INFINITY}), std::invalid_argument);
    CHECK_NOTHROW(adam({.beta1 = 0.0f, .beta2 = 0.0f}));
}

TEST_CASE("optimizers converge on a 1-D quadratic in a few hundred steps")
{
    // f(w) = 2 (w - 1.5)^2, gradient 4 (w - 1.5), from w = -4.
    auto run = [](auto& opt, auto const& lr_of, int steps) {
        std::vector<float> w{-4.0f};
        std::vector<float> g(1), s(1);
        for (int t = 0; t < steps; ++t) {
            g[0] = 4.0f * (w[0] - 1.5f);
            opt.step(0, w, g, s, lr_of(t), true);
            w[0] -= s[0];
        }
        return w[0];
    };
    auto const fixed = [](float lr) { return [lr](int) { return lr; }; };
    sgd plain;
    CHECK(run(plain, fixed(0.05f), 300) == doctest::Approx(1.5).epsilon(1e-5));
    sgd heavy{{.momentum = 0.9f}};
    CHECK(run(heavy, fixed(0.02f), 300) == doctest::Approx(1.5).epsilon(1e-4));
    sgd nesterov{{.momentum = 0.9f, .nesterov = true}};
    CHECK(run(nesterov, fixed(0.02f), 300) == doctest::Approx(1.5).epsilon(1e-4));
    adam a;
    sch::cosine const cos{.lr_max = 0.1f, .lr_min = 0.0f, .epochs = 400};
    CHECK(run(a, [&](int t) { return cos.rate(t); }, 400) == doctest::Approx(1.5).epsilon(1e-3));
    adam aw{{.decoupled_weight_decay = 1e-3f}}; // decoupled decay pulls the optimum slightly toward 0
    float const with_decay = run(aw, [&](int t) { return cos.rate(t); }, 400);
    CHECK(with_decay == doctest::Approx(1.5).epsilon(1e-2));
}

// ---- schedules --------------------------------------------------------------------------------------------
TEST_CASE("schedule::constant and schedule::step_decay")
{
    sch::constant const c{.lr = 0.05f};
    CHECK(c.rate(0.0) == 0.05f);
    CHECK(c.rate(1e6) == 0.05f);
    CHECK_THROWS_AS((void)sch::constant{.lr = -1.0f}.rate(0.0), std::invalid_argument);

    sch::step_decay const s{.lr = 0.1f, .gamma = 0.1f, .milestones = {100, 150}};
    CHECK(s.rate(0.0) == doctest::Approx(0.1));
    CHECK(s.rate(99.99) == doctest::Approx(0.1));
    CHECK(s.rate(100.0) == doctest::Approx(0.01)); // the drop holds from the milestone on
    CHECK(s.rate(149.5) == doctest::Approx(0.01));
    CHECK(s.rate(150.0) == doctest::Approx(0.001));
    CHECK(s.rate(1000.0) == doctest::Approx(0.001));
    sch::step_decay const unsorted{.lr = 0.1f, .gamma = 0.5f, .milestones = {150, 100}};
    CHECK(unsorted.rate(120.0) == doctest::Approx(0.05));
    CHECK(unsorted.rate(160.0) == doctest::Approx(0.025));
    CHECK(sch::step_decay{.lr = 0.2f}.rate(50.0) == doctest::Approx(0.2)); // no milestones: constant
    CHECK_THROWS_AS((void)sch::step_decay{.gamma = -0.1f}.rate(0.0), std::invalid_argument);
    CHECK_THROWS_AS(sch::step_decay{.milestones = {NAN}}.validate(), std::invalid_argument);
}

TEST_CASE("schedule::cosine")
{
    sch::cosine const c{.lr_max = 0.1f, .lr_min = 0.001f, .epochs = 10};
    CHECK(c.rate(0.0) == doctest::Approx(0.1));
    CHECK(c.rate(-1.0) == doctest::Approx(0.1));
    CHECK(c.rate(2.5) == doctest::Approx(0.001 + 0.099 * (1.0 + std::cos(3.14159265358979 / 4)) / 2)); // 0.0855
    CHECK(c.rate(5.0) == doctest::Approx(0.0505));
    CHECK(c.rate(10.0) == doctest::Approx(0.001));
    CHECK(c.rate(20.0) == doctest::Approx(0.001)); // stays at lr_min
    for (int e = 1; e <= 10; ++e)
        CHECK(c.rate(e) < c.rate(e - 1)); // strictly decreasing over the annealing
    CHECK_THROWS_AS((void)sch::cosine{.epochs = 0}.rate(0.0), std::invalid_argument);
    CHECK(contains(message_of([] { (void)sch::cosine{.lr_max = 0.001f, .lr_min = 0.01f}.rate(0.0); }),
                   "0 <= .lr_min <= .lr_max"));
}

TEST_CASE("schedule::warmup")
{
    sch::warmup<sch::constant> const w{.epochs = 2, .after = {.lr = 0.1f}};
    CHECK(w.rate(0.0) == doctest::Approx(0.001)); // start_factor 0.01: never exactly 0
    CHECK(w.rate(1.0) == doctest::Approx(0.1 * (0.01 + 0.99 * 0.5)));
    CHECK(w.rate(2.0) == doctest::Approx(0.1));
    CHECK(w.rate(7.0) == doctest::Approx(0.1));

    sch::warmup<sch::cosine> const wc{.epochs = 1, .start_factor = 0.2f, .after = {.lr_max = 0.1f, .epochs = 10}};
    CHECK(wc.rate(0.0) == doctest::Approx(0.02));
    CHECK(wc.rate(0.5) == doctest::Approx(0.05 * (1.0 + std::cos(3.14159265358979 * 0.05)) * 0.6));
    CHECK(wc.rate(5.0) == doctest::Approx(0.05)); // after the ramp, the cosine at the global epoch

    sch::warmup<sch::constant> const none{.epochs = 0, .after = {.lr = 0.1f}};
    CHECK(none.rate(0.0) == doctest::Approx(0.1));

    CHECK_THROWS_AS((void)sch::warmup<sch::constant>{.start_factor = 0.0f}.rate(0.0), std::invalid_argument);
    CHECK_THROWS_AS((void)sch::warmup<sch::constant>{.epochs = -1}.rate(0.0), std::invalid_argument);
    CHECK_THROWS_AS((sch::warmup<sch::cosine>{.after = {.epochs = 0}}.validate()), std::invalid_argument);

    sch::warmup<sch::cyclic> const wcy{.epochs = 0.5, .after = {.high = 0.01f, .low = 0.001f}};
    CHECK(wcy.cycle_epochs() == 1.0);
    CHECK(wcy.cycle_end(0.9, 1.0));
    CHECK_FALSE(wcy.cycle_end(1.0, 1.1));
    CHECK(wcy.rate(1.0) == doctest::Approx(0.001));
}

TEST_CASE("schedule::cyclic: linear decay within each cycle, boundaries and cycle_end")
{
    sch::cyclic const c{.high = 0.01f, .low = 1e-4f, .epochs_per_cycle = 1};
    CHECK(c.cycle_epochs() == 1.0);
    CHECK(c.rate(0.0) == 0.01f);
    CHECK(c.rate(0.25) == doctest::Approx(0.75 * 0.01 + 0.25 * 1e-4));
    CHECK(c.rate(1.0) == 1e-4f);                        // the end of a cycle runs at low ...
    CHECK(c.rate(1.0 + 1e-6) == doctest::Approx(0.01)); // ... then the rate jumps back to high
    CHECK(c.rate(1.5) == doctest::Approx(0.00505));
    CHECK(c.rate(2.0) == 1e-4f);
    CHECK(c.rate(-3.0) == 0.01f);

    CHECK(c.cycle_end(0.75, 1.0));
    CHECK_FALSE(c.cycle_end(1.0, 1.25)); // a boundary belongs to the interval it closes
    CHECK_FALSE(c.cycle_end(0.5, 0.99));
    CHECK(c.cycle_end(0.9, 2.1));
    CHECK_FALSE(c.cycle_end(0.0, 0.0));
    CHECK_FALSE(c.cycle_end(-1.0, 0.0)); // epoch 0 starts the first cycle, it ends none
    CHECK(c.cycles_completed(2.5) == 2);
    CHECK(c.cycles_completed(3.0) == 3);

    // A training loop with 10 steps per epoch and 0.3-epoch cycles: 3 steps per cycle. Epochs such as
    // 6 / 10.0 = 0.6 divide by 0.3 to 1.9999999999999998: they still count as cycle boundaries.
    sch::cyclic const q{.high = 0.05f, .low = 0.005f, .epochs_per_cycle = 0.3};
    int ends = 0;
    for (int step = 0; step < 30; ++step) {
        double const before = step / 10.0;
        double const after = (step + 1) / 10.0;
        bool const end = q.cycle_end(before, after);
        CAPTURE(step);
        CHECK(end == (step % 3 == 2));
        if (end) {
            ++ends;
            CHECK(q.rate(after) == 0.005f); // SWA: the capture step runs at exactly alpha_2
        }
        if (step % 3 == 0)
            CHECK(q.rate(after) == doctest::Approx((2.0 / 3) * 0.05 + (1.0 / 3) * 0.005)); // t = 1/3
    }
    CHECK(ends == 10);

    CHECK(contains(message_of([] { (void)sch::cyclic{.high = 1e-4f, .low = 1e-2f}.rate(0.0); }),
                   ".high >= .low > 0"));
    CHECK_THROWS_AS((void)sch::cyclic{.low = 0.0f}.rate(0.0), std::invalid_argument);
    CHECK_THROWS_AS((void)sch::cyclic{.epochs_per_cycle = 0}.rate(0.0), std::invalid_argument);
    CHECK_THROWS_AS((void)sch::cyclic{.epochs_per_cycle = -1}.cycle_end(0.0, 1.0), std::invalid_argument);
}
