// SPDX-License-Identifier: MIT
// lowbit::mpi, under `mpirun -np 2` (tests/mpi/CMakeLists.txt): every process runs the same test cases in the
// same order. The group's sums follow the binomial tree and give every rank the same bits; data-parallel training
// on 2 processes ends with the bits of 1 process with 2 shards for fp, bc, sr and sqwa; BatchNorm normalises with
// the global batch's statistics (synchronized BatchNorm); a peer that does not answer ends the wait with
// peer_error naming it. The exit code is the worst of all ranks'.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <lowbit/mpi/environment.hpp>
#include <lowbit/mpi/mpi_group.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/schedule/cyclic.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include "../support/run_states.hpp"

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace lowbit;
using test::difference;
using test::make_data;
using test::state_of;

namespace {

using bc2 = quantizer<2, stochastic_t, clip::fixed_range, grid::symmetric_even>;

/// Rank 0's bytes, on every rank.
std::vector<char> from_rank0(std::vector<char> bytes)
{
    int n = static_cast<int>(bytes.size());
    MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
    bytes.resize(static_cast<std::size_t>(n));
    MPI_Bcast(bytes.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
    return bytes;
}

/// Trains with `make()` on every process of the group and alone with as many shards; the run states must match.
template <class Make, class Method>
void check_training(mpi::mpi_group& g, Make make, Method method)
{
    auto const d = make_data<2>({120, 12}, 3, 41);
    train::fit_options o{.epochs = 2, .batch = 20, .seed = 9, .shards = g.size()};
    auto alone_model = make();
    train::trainer alone{alone_model, method, optim::adam({.lr = 0.01f})};
    (void)alone.fit(d.x, d.y, o);
    auto model = make();
    train::trainer t{model, method, optim::adam({.lr = 0.01f})};
    o.group = &g;
    auto const r = t.fit(d.x, d.y, o);
    CHECK(r.steps == 12);
    CHECK(difference(state_of(t), state_of(alone)) == "");
    CHECK(t.allreduce_bytes() > 0);
}

} // namespace

TEST_CASE("an mpi_group sums in the binomial tree, and every rank gets the same bits")
{
    mpi::mpi_group g;
    REQUIRE(g.size() >= 2);
    // Partial of rank r: 1e8 on rank 0, 1 elsewhere, and -1e8 on rank 2 (when there is one): the tree's order
    // shows in the result (left-to-right addition of 1e8, 1, -1e8, 1 would give 1).
    auto partial = [](std::size_t r, std::size_t k) {
        float const base = r == 0 ? 1e8f : (r == 2 ? -1e8f : 1.0f);
        return base * static_cast<float>(k + 1);
    };
    std::size_t const n = 1000;
    std::vector<float> v(n);
    for (std::size_t k = 0; k < n; ++k) v[k] = partial(g.rank(), k);
    g.sum(std::span<float>(v));
    std::vector<float> all;
    for (std::size_t r = 0; r < g.size(); ++r)
        for (std::size_t k = 0; k < n; ++k) all.push_back(partial(r, k));
    tree_sum(std::span<float>(all), n);
    CHECK(std::memcmp(v.data(), all.data(), n * sizeof(float)) == 0);
    std::vector<char> mine(reinterpret_cast<char const*>(v.data()), reinterpret_cast<char const*>(v.data() + n));
    CHECK(from_rank0(mine) == mine);
    // Doubles, and the bytes: one message of the sum's size per process for 2 processes (up, then down the tree).
    std::vector<double> d{static_cast<double>(g.rank()) + 0.5, 2.0};
    auto const before = g.bytes_sent();
    g.sum(std::span<double>(d));
    CHECK(d[1] == 2.0 * static_cast<double>(g.size()));
    if (g.size() == 2) CHECK(g.bytes_sent() - before == 2 * sizeof(double));
    // gather: rank r's bytes at r * size on every rank.
    std::vector<std::byte> bytes(5, static_cast<std::byte>(g.rank() + 1)), gathered(5 * g.size());
    g.gather(bytes, gathered);
    for (std::size_t r = 0; r < g.size(); ++r)
        for (std::size_t k = 0; k < 5; ++k) CHECK(static_cast<int>(gathered[r * 5 + k]) == static_cast<int>(r + 1));
}

TEST_CASE("2 processes train to the bits of 1 process with 2 shards: fp, bc, sr")
{
    mpi::mpi_group g;
    auto mlp = [](auto w) { return [w] { return nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1}, w); }; };
    check_training(g, mlp(nn::float_weights), train::full_precision{});
    check_training(g, mlp(bc2{.clipping = {.bound = 1.0f}}), train::binary_connect{});
    check_training(g, mlp(bc2{.clipping = {.bound = 1.0f}}), train::stochastic_rounding{});
    auto cnn = [] {
        return nn::cnn({.size = 8, .width1 = 2, .width2 = 3, .hidden = 6, .classes = 3, .seed = 1}, nn::float_weights);
    };
    auto const images = make_data<4>({48, 1, 8, 8}, 3, 42);
    train::fit_options o{.epochs = 1, .batch = 12, .seed = 3, .shards = g.size()};
    auto alone_model = cnn();
    train::trainer alone{alone_model, train::full_precision{}, optim::adam({.lr = 0.01f})};
    (void)alone.fit(images.x, images.y, o);
    auto model = cnn();
    train::trainer t{model, train::full_precision{}, optim::adam({.lr = 0.01f})};
    o.group = &g;
    (void)t.fit(images.x, images.y, o);
    CHECK(difference(state_of(t), state_of(alone)) == "");
}

TEST_CASE("8-bit gradients over 2 processes: every process keeps the same weights")
{
    mpi::mpi_group g;
    auto const d = make_data<2>({120, 12}, 3, 44);
    auto model = nn::mlp({.inputs = 12, .hidden = 16, .classes = 3, .seed = 1}, bc2{.clipping = {.bound = 1.0f}});
    train::trainer t{model, train::stochastic_rounding{}, optim::adam({.lr = 0.01f})};
    (void)t.fit(d.x, d.y, {.epochs = 2, .batch = 20, .seed = 9, .group = &g, .gradient_bits = 8});
    // The run state's bytes, as rank 0 has them, on every rank.
    io::archive const a = state_of(t);
    std::vector<char> mine;
    for (auto const& e : a.entries()) {
        auto const* p = reinterpret_cast<char const*>(e.values.data());
        mine.insert(mine.end(), p, p + e.values.size() * sizeof(float));
        mine.insert(mine.end(), reinterpret_cast<char const*>(e.data.data()),
                    reinterpret_cast<char const*>(e.data.data() + e.data.size()));
    }
    REQUIRE(mine.size() > 1000);
    CHECK(from_rank0(mine) == mine);
}

TEST_CASE("sqwa over 2 processes: the averaged model has the bits of 1 process with 2 shards")
{
    mpi::mpi_group g;
    auto make = [] { return test::sqwa_mlp(1); };
    auto const d = make_data<2>({120, 12}, 3, 43);
    train::sqwa<> const method{{.captures = 2, .finetune_epochs = 1, .finetune_lr = 1e-3f, .bn_batches = 2}};
    optim::schedule::cyclic const cyclic{.high = 1e-2f, .low = 1e-4f, .epochs_per_cycle = 1};
    train::fit_options o{.batch = 20, .seed = 17, .shards = g.size()};
    auto alone = make();
    (void)method.run(alone, optim::adam({.lr = 0.01f}), cyclic, d.x, d.y, o);
    auto model = make();
    o.group = &g;
    (void)method.run(model, optim::adam({.lr = 0.01f}), cyclic, d.x, d.y, o);
    CHECK(difference(train::to_archive(model), train::to_archive(alone)) == "");
}

TEST_CASE("synchronized BatchNorm: each process's rows are normalised with the global batch's statistics")
{
    mpi::mpi_group g;
    std::size_t const rows = 8 * g.size(), c = 5;
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({rows, c});
    for (std::size_t i = 0; i < x.size(); ++i)
        x.data()[i] = static_cast<float>((i * 37) % 23) * 0.25f - 2.0f + static_cast<float>(i / c);
    // One process, all rows, as many shards as processes.
    std::vector<std::size_t> all_bounds;
    for (std::size_t l = 0; l <= g.size(); ++l) all_bounds.push_back(nn::shard_begin(l, g.size(), rows));
    nn::batch_shards const all{.bounds = all_bounds, .group = nullptr, .global_rows = rows};
    nn::batch_norm<2> alone({.channels = c});
    auto const want = alone.forward(x, {.training = true, .shards = &all});
    // This process: its rows only.
    std::size_t const r0 = all_bounds[g.rank()], r1 = all_bounds[g.rank() + 1];
    xt::xtensor<float, 2> mine = xt::xtensor<float, 2>::from_shape({r1 - r0, c});
    std::copy(x.data() + r0 * c, x.data() + r1 * c, mine.data());
    std::vector<std::size_t> const local{0, r1 - r0};
    nn::batch_shards const shards{.bounds = local, .group = &g, .global_rows = rows};
    nn::batch_norm<2> bn({.channels = c});
    auto const got = bn.forward(mine, {.training = true, .shards = &shards});
    CHECK(std::memcmp(got.data(), want.data() + r0 * c, got.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(bn.running_var().data(), alone.running_var().data(), c * sizeof(float)) == 0);
    // Without the other processes the statistics would be this process's: different outputs.
    nn::batch_norm<2> local_only({.channels = c});
    auto const own = local_only.forward(mine, {.training = true});
    CHECK(std::memcmp(own.data(), got.data(), got.size() * sizeof(float)) != 0);
}

TEST_CASE("a peer that does not answer ends the wait with peer_error, naming it")
{
    mpi::mpi_group g(MPI_COMM_WORLD, {.timeout = std::chrono::milliseconds(300)});
    std::vector<float> v(10, 1.0f);
    if (g.rank() == 0) {
        // Rank 1 stays away from this sum.
        std::string const want = "rank 0 of " + std::to_string(g.size()) +
                                 ": no answer from rank 1 within 0.3 s while receiving a partial sum of 10 values";
        CHECK_THROWS_WITH_AS(g.sum(std::span<float>(v)), doctest::Contains(want.c_str()), mpi::peer_error);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_THROWS_WITH_AS(mpi::mpi_group(MPI_COMM_WORLD, {.timeout = std::chrono::milliseconds(0)}),
                         "lowbit::mpi::mpi_group: timeout must be positive", std::invalid_argument);
}

int main(int argc, char** argv)
{
    lowbit::mpi::environment env(argc, argv);
    doctest::Context context(argc, argv);
    int const rc = context.run();
    int worst = 0;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}
