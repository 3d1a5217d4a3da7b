// SPDX-License-Identifier: MIT
// Data-parallel training in the core, without MPI: the "processes" are threads with a test process_group
// (tests/support/thread_group.hpp) that sums in the order lowbit::mpi's group uses. A run on 2 (or 4)
// processes ends with the bits of one process holding the same shards, for fp, bc, sr and sqwa, on an MLP and a
// CNN (both convolution paths): the weights, BatchNorm's running statistics, the optimizer's moments and the
// counters. Bad shard counts and learned activation bounds split within a process are refused by name.
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/schedule/cyclic.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/parallel/process_group.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/dorefa_weight.hpp>
#include <lowbit/quant/ste/pact.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/int8_gradients.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include "../../support/run_states.hpp"
#include "../../support/thread_group.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace lowbit;
using test::difference;
using test::make_data;
using test::state_of;

namespace {

using bc2 = quantizer<2, stochastic_t, clip::fixed_range, grid::symmetric_even>;
using bc1 = quantizer<1, nearest_even_t, clip::fixed_range, grid::symmetric_even>;

auto mlp_of(std::uint64_t seed, auto w) { return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = seed}, w); }
auto cnn_of(std::uint64_t seed, auto w, nn::execution e)
{
    return nn::cnn({.size = 8, .width1 = 2, .width2 = 3, .hidden = 6, .classes = 3, .seed = seed, .execution = e}, w);
}
auto adam() { return optim::adam({.lr = 0.01f}); }

/// The run state of one process trained with `shards` shards, and of every rank of `ranks` processes with the
/// same shards; all must be the same bits. Returns the single process's state.
template <class MakeModel, class Method, std::size_t Rank>
void check_ranks(MakeModel make, Method method, test::toy_data<Rank> const& d, train::fit_options o,
                 std::size_t ranks)
{
    CAPTURE(ranks);
    CAPTURE(o.shards);
    auto single_model = make();
    train::trainer single{single_model, method, adam()};
    (void)single.fit(d.x, d.y, o);
    io::archive const want = state_of(single);

    std::vector<io::archive> got(ranks);
    std::vector<train::fit_result> results(ranks);
    test::run_ranks(ranks, [&](process_group& g) {
        auto model = make();
        train::trainer t{model, method, adam()};
        train::fit_options mine = o;
        mine.group = &g;
        results[g.rank()] = t.fit(d.x, d.y, mine);
        got[g.rank()] = state_of(t);
    });
    for (std::size_t r = 0; r < ranks; ++r) {
        CAPTURE(r);
        CHECK(difference(got[r], want) == "");
        CHECK(results[r].images == results[0].images);
        CHECK(results[r].last_loss == results[0].last_loss);
    }
}

} // namespace

TEST_CASE("tree_sum adds in the binomial tree over parts, the order of a process_group")
{
    // (1e8 + 1) + (-1e8 + 1) rounds to 0 in float; added left to right the same parts give 1.
    std::vector<float> parts{1e8f, 1.0f, -1e8f, 1.0f};
    tree_sum(std::span<float>(parts), 1);
    CHECK(parts[0] == 0.0f);
    float left_to_right = 0.0f;
    for (float const p : {1e8f, 1.0f, -1e8f, 1.0f}) left_to_right += p;
    CHECK(left_to_right == 1.0f);
    // Three parts of two values: ((p0 + p1) + p2).
    std::vector<double> three{1.0, 2.0, 10.0, 20.0, 100.0, 200.0};
    tree_sum(std::span<double>(three), 2);
    CHECK(three[0] == 111.0);
    CHECK(three[1] == 222.0);
}

TEST_CASE("2 processes end with the bits of 1 process with the same 2 shards: fp, bc, sr on an MLP")
{
    auto const d = make_data<2>({120, 12}, 3, 31);  // 6 global batches of 20 per epoch
    train::fit_options const o{.epochs = 2, .batch = 20, .seed = 7, .shards = 2};
    check_ranks([] { return mlp_of(1, nn::float_weights); }, train::full_precision{}, d, o, 2);
    check_ranks([] { return mlp_of(1, bc2{.clipping = {.bound = 1.0f}}); }, train::binary_connect{}, d, o, 2);
    check_ranks([] { return mlp_of(1, bc2{.clipping = {.bound = 1.0f}}); }, train::stochastic_rounding{}, d, o, 2);
    // The shards decide the bits: one shard gives others, so the comparisons above can fail.
    auto one_shard = mlp_of(1, nn::float_weights), two_shards = mlp_of(1, nn::float_weights);
    train::trainer a{one_shard, train::full_precision{}, adam()}, b{two_shards, train::full_precision{}, adam()};
    (void)a.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 7});
    (void)b.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 7, .shards = 2});
    CHECK(difference(train::to_archive(one_shard), train::to_archive(two_shards)) != "");
    // 4 shards: 1, 2 and 4 processes agree; shards of unequal rows (20 / 4 is 5, 21 would not divide).
    train::fit_options four = o;
    four.shards = 4;
    four.batch = 21;
    for (std::size_t const ranks : {std::size_t{2}, std::size_t{4}})
        check_ranks([] { return mlp_of(1, bc2{.clipping = {.bound = 1.0f}}); }, train::stochastic_rounding{}, d,
                    four, ranks);
}

TEST_CASE("2 processes end with the bits of 1 process with 2 shards at sizes where OpenBLAS rounds by call shape")
{
    // A row's product depends on the height of the BLAS call it is in (OpenBLAS computes a call's edge rows with
    // other kernels, and lowbit splits calls of 2^21 multiply-adds or more into ranges of C by shape): the
    // layers run one call per shard, which these sizes check (50-row shards, 256-wide layers).
    auto const d = make_data<2>({600, 256}, 10, 37);
    train::fit_options const o{.epochs = 1, .batch = 100, .seed = 8, .shards = 2};
    auto mlp = [] { return nn::mlp({.inputs = 256, .hidden = 256, .classes = 10, .seed = 1}, nn::float_weights); };
    check_ranks(mlp, train::full_precision{}, d, o, 2);
}

TEST_CASE("2 processes end with the bits of 1 process with 2 shards: a CNN on both convolution paths")
{
    auto const images = make_data<4>({48, 1, 8, 8}, 3, 32);  // 4 batches of 12
    train::fit_options const o{.epochs = 1, .batch = 12, .seed = 3, .shards = 2};
    for (auto const e : {nn::execution::kernels, nn::execution::reference}) {
        CAPTURE(static_cast<int>(e));
        check_ranks([e] { return cnn_of(1, nn::float_weights, e); }, train::full_precision{}, images, o, 2);
        check_ranks([e] { return cnn_of(1, bc1{.clipping = {.bound = 1.0f}}, e); }, train::binary_connect{}, images,
                    o, 2);
    }
}

TEST_CASE("sqwa over 2 processes: the averaged model has the bits of 1 process with 2 shards")
{
    auto make = [] { return test::sqwa_mlp(1); };
    auto const d = make_data<2>({120, 12}, 3, 33);
    train::sqwa<> const method{{.captures = 2, .finetune_epochs = 1, .finetune_lr = 1e-3f, .bn_batches = 2}};
    optim::schedule::cyclic const cyclic{.high = 1e-2f, .low = 1e-4f, .epochs_per_cycle = 1};
    train::fit_options const o{.batch = 20, .seed = 17, .shards = 2};
    auto single = make();
    (void)method.run(single, adam(), cyclic, d.x, d.y, o);
    io::archive const want = train::to_archive(single);
    std::vector<io::archive> got(2);
    test::run_ranks(2, [&](process_group& g) {
        auto model = make();
        train::fit_options mine = o;
        mine.group = &g;
        (void)method.run(model, adam(), cyclic, d.x, d.y, mine);
        got[g.rank()] = train::to_archive(model);
    });
    CHECK(difference(got[0], want) == "");
    CHECK(difference(got[1], want) == "");
}

TEST_CASE("a process group of one with one shard is the plain single-process run")
{
    auto const d = make_data<2>({60, 12}, 3, 34);
    auto plain_model = mlp_of(1, bc2{.clipping = {.bound = 1.0f}});
    train::trainer plain{plain_model, train::stochastic_rounding{}, adam()};
    (void)plain.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 2});
    test::run_ranks(1, [&](process_group& g) {
        auto model = mlp_of(1, bc2{.clipping = {.bound = 1.0f}});
        train::trainer t{model, train::stochastic_rounding{}, adam()};
        (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 2, .group = &g});
        CHECK(difference(state_of(t), state_of(plain)) == "");
        CHECK(t.allreduce_bytes() == 0);  // one shard, one process: nothing to sum
    });
}

TEST_CASE("every process sees the global batch's loss, and the bytes it sent")
{
    auto const d = make_data<2>({60, 12}, 3, 35);
    struct losses {
        std::vector<float>* seen;
        bool on_step(train::step_info const& s)
        {
            seen->push_back(s.loss);
            return false;
        }
    };
    std::vector<float> single_losses;
    auto single_model = mlp_of(1, nn::float_weights);
    train::trainer single{single_model, train::full_precision{}, adam()};
    (void)single.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 4, .shards = 2}, losses{&single_losses});
    std::vector<std::vector<float>> seen(2);
    std::vector<std::uint64_t> bytes(2);
    std::size_t gradient_values = 0;
    test::run_ranks(2, [&](process_group& g) {
        auto model = mlp_of(1, nn::float_weights);
        train::trainer t{model, train::full_precision{}, adam()};
        (void)t.fit(d.x, d.y, {.epochs = 1, .batch = 20, .seed = 4, .group = &g}, losses{&seen[g.rank()]});
        bytes[g.rank()] = t.allreduce_bytes();
        if (g.rank() == 0) {
            model.for_each_weight([&](auto& w) { gradient_values += w.size(); });
            model.for_each_parameter([&](nn::parameter& p) { gradient_values += p.value.size(); });
        }
    });
    REQUIRE(single_losses.size() == 3);
    CHECK(seen[0] == seen[1]);
    // The loss is the global batch's mean, summed over shards in double: within float rounding of one process's.
    for (std::size_t i = 0; i < 3; ++i) CHECK(seen[0][i] == doctest::Approx(single_losses[i]).epsilon(1e-6));
    // Per step: every gradient once (floats), plus BatchNorm's statistics (3 sums of 16, 16 and 3 channels in
    // double: mean, variance, and the backward pass's two sums) and the loss (2 doubles).
    std::uint64_t const bn = 8 * (2 * 16 + 2 * 16 + 2 * 3) + 8 * (2 * 16 + 2 * 16 + 2 * 3);
    CHECK(bytes[0] == 3 * (4 * gradient_values + bn + 16));
    CHECK(bytes[1] == bytes[0]);
}

TEST_CASE("data-parallel options that cannot work are refused by name")
{
    auto const d = make_data<2>({60, 12}, 3, 36);
    test::run_ranks(2, [&](process_group& g) {
        auto model = mlp_of(1, nn::float_weights);
        train::trainer t{model, train::full_precision{}, adam()};
        CHECK_THROWS_WITH_AS(t.fit(d.x, d.y, {.batch = 20, .group = &g, .shards = 3}),
                             "lowbit::train::fit: 3 shards cannot be split over 2 processes: each process needs a "
                             "power of two shards (1, 2, 4, ...); use shards = a multiple of the number of processes",
                             invalid_input);
        CHECK_THROWS_WITH_AS(t.fit(d.x, d.y, {.batch = 20, .group = &g, .shards = 6}),
                             doctest::Contains("power of two"), invalid_input);
        CHECK_THROWS_WITH_AS(t.fit(d.x, d.y, {.batch = 2, .group = &g, .shards = 4}),
                             "lowbit::train::fit: 4 shards of a batch of 2 rows: a shard needs at least one row",
                             invalid_input);
    });
    // PACT's alpha gradient is one sum over the process's whole tensor: two shards in one process are refused,
    // one shard per process trains.
    auto pact_mlp = [] {
        return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1}, ste::dorefa_weight<2>{},
                       ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::pact<2>({.alpha = 1.0f}));
    };
    auto one = pact_mlp();
    train::trainer t{one, train::binary_connect{}, adam()};
    CHECK_THROWS_WITH_AS(t.fit(d.x, d.y, {.batch = 20, .shards = 2}),
                         doctest::Contains("a learned activation bound (pact.alpha) needs one shard per process"),
                         invalid_input);
    std::vector<float> alpha(2);
    test::run_ranks(2, [&](process_group& g) {
        auto model = pact_mlp();
        train::trainer u{model, train::binary_connect{}, adam()};
        (void)u.fit(d.x, d.y, {.batch = 20, .seed = 1, .group = &g});
        model.for_each_parameter([&](nn::parameter& p) {
            if (p.name == "pact.alpha") alpha[g.rank()] = p.value[0];
        });
    });
    CHECK(alpha[0] == alpha[1]);
    CHECK(alpha[0] != 1.0f);  // it learned
}

TEST_CASE("int8_gradients: with error feedback the values sent add up to the gradients, but for the last residual")
{
    std::mt19937 gen(5);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::size_t const n = 10000;  // 3 blocks, the last one partial
    CHECK(train::int8_gradients::wire_bytes(n) == 3 * sizeof(float) + n);
    std::vector<float> g(n), sent(n, 0.0f), once(n, 0.0f);
    for (float& v : g) v = d(gen) * (v > 0 ? 1.0f : 1e-3f);  // mixed magnitudes: small values round to 0 or +-s
    train::int8_gradients codec;
    std::vector<std::byte> wire(train::int8_gradients::wire_bytes(n));
    std::size_t const steps = 50;
    float max_scale = 0.0f;
    for (std::size_t t = 0; t < steps; ++t) {
        codec.encode(g, {.seed = 3, .step = static_cast<std::uint32_t>(t), .stream = 1}, wire);
        train::int8_gradients::add_decoded(wire, sent);
        if (t == 0) train::int8_gradients::add_decoded(wire, once);
        for (std::size_t b = 0; b < 3; ++b) {
            float s = 0.0f;
            std::memcpy(&s, wire.data() + b * sizeof(float), sizeof s);
            max_scale = std::max(max_scale, s);
        }
    }
    // sum of what was sent = steps * g - the last residual, and |residual| < one step s of its block.
    double worst = 0.0, worst_once = 0.0, worst_residual = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        worst = std::max(worst, std::abs(static_cast<double>(sent[i]) - steps * static_cast<double>(g[i])));
        worst_once = std::max(worst_once, std::abs(static_cast<double>(once[i]) - static_cast<double>(g[i])));
        worst_residual = std::max(worst_residual, static_cast<double>(std::abs(codec.residual()[i])));
    }
    CHECK(worst_residual <= max_scale);
    CHECK(worst <= 1.001 * max_scale);
    CHECK(worst_once > 0.1 * max_scale);  // one message alone is off by up to a step: the feedback matters
}

TEST_CASE("8-bit gradients between 2 processes: every process keeps the same weights, for a quarter of the bytes")
{
    auto const d = make_data<2>({120, 12}, 3, 38);
    std::vector<io::archive> got(2);
    std::vector<std::uint64_t> bytes8(2), bytes32(2);
    std::size_t gradient_values = 0;
    for (int const bits : {8, 32}) {
        test::run_ranks(2, [&](process_group& g) {
            auto model = mlp_of(1, bc2{.clipping = {.bound = 1.0f}});
            train::trainer t{model, train::stochastic_rounding{}, adam()};
            auto const r = t.fit(d.x, d.y, {.epochs = 2, .batch = 20, .seed = 5, .group = &g, .gradient_bits = bits});
            CHECK(r.steps == 12);
            (bits == 8 ? bytes8 : bytes32)[g.rank()] = t.allreduce_bytes();
            if (bits == 8) got[g.rank()] = state_of(t);
            if (g.rank() == 0 && bits == 8) {
                model.for_each_weight([&](auto& w) { gradient_values += w.size(); });
                model.for_each_parameter([&](nn::parameter& p) { gradient_values += p.value.size(); });
            }
        });
    }
    CHECK(difference(got[0], got[1]) == "");
    // Per step: the codes (1 byte per value and a scale per block) instead of 4 bytes per value; BatchNorm's
    // statistics and the loss are the same either way.
    std::uint64_t const others = 8 * 4 * (16 + 16 + 3) + 16;
    CHECK(bytes8[0] == 12 * (train::int8_gradients::wire_bytes(gradient_values) + others));
    CHECK(bytes32[0] == 12 * (4 * gradient_values + others));
    // Refused: 8-bit codes without processes to send them to, and other widths.
    auto model = mlp_of(1, nn::float_weights);
    train::trainer t{model, train::full_precision{}, adam()};
    CHECK_THROWS_WITH_AS(t.fit(d.x, d.y, {.batch = 20, .gradient_bits = 8}),
                         doctest::Contains("this fit has no process group"), invalid_input);
    CHECK_THROWS_WITH_AS(t.fit(d.x, d.y, {.batch = 20, .gradient_bits = 16}),
                         doctest::Contains("gradient_bits is 16"), invalid_input);
}
