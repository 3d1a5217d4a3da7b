// SPDX-License-Identifier: MIT
// Tests for lowbit/data/batcher.hpp and lowbit/data/gather_rows.hpp.

#include <lowbit/data/batcher.hpp>
#include <lowbit/data/gather_rows.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace {

using lowbit::data::batcher;

/// The concatenation of the batches of the current epoch.
std::vector<std::size_t> epoch_order(batcher const& b) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < b.batches(); ++i) {
        auto const idx = b.batch_indices(i);
        out.insert(out.end(), idx.begin(), idx.end());
    }
    return out;
}

bool is_permutation_of_iota(std::vector<std::size_t> v, std::size_t n) {
    if (v.size() != n) {
        return false;
    }
    std::sort(v.begin(), v.end());
    for (std::size_t i = 0; i < n; ++i) {
        if (v[i] != i) {
            return false;
        }
    }
    return true;
}

} // namespace

TEST_CASE("batcher visits every index exactly once per epoch") {
    batcher b{103, {.batch = 10, .seed = 5}};
    CHECK(b.size() == 103);
    CHECK(b.batches() == 11);
    for (std::size_t epoch = 0; epoch < 5; ++epoch) {
        b.begin_epoch(epoch);
        CHECK(b.epoch() == epoch);
        for (std::size_t i = 0; i < 10; ++i) {
            CHECK(b.batch_indices(i).size() == 10);
        }
        CHECK(b.batch_indices(10).size() == 3);  // the partial last batch
        CHECK(is_permutation_of_iota(epoch_order(b), 103));
    }
}

TEST_CASE("batcher order depends only on seed and epoch") {
    batcher a{50, {.batch = 7, .seed = 9}};
    batcher b{50, {.batch = 7, .seed = 9}};
    for (std::size_t e = 0; e < 4; ++e) {
        a.begin_epoch(e);
    }
    b.begin_epoch(3);  // straight to epoch 3
    CHECK(epoch_order(a) == epoch_order(b));
    a.begin_epoch(3);  // re-running an epoch gives its order again
    CHECK(epoch_order(a) == epoch_order(b));

    batcher fresh{50, {.batch = 7, .seed = 9}};
    CHECK(fresh.epoch() == 0);
    a.begin_epoch(0);
    CHECK(epoch_order(fresh) == epoch_order(a));
}

TEST_CASE("batcher orders differ across epochs and seeds") {
    batcher a{64, {.batch = 8, .seed = 1}};
    auto const e0 = epoch_order(a);
    a.begin_epoch(1);
    auto const e1 = epoch_order(a);
    CHECK(e0 != e1);
    batcher b{64, {.batch = 8, .seed = 2}};
    CHECK(epoch_order(b) != e0);
    std::vector<std::size_t> identity(64);
    for (std::size_t i = 0; i < 64; ++i) {
        identity[i] = i;
    }
    CHECK(e0 != identity);
}

TEST_CASE("batcher order is pinned for a seed on every platform") {
    // Only specified algorithms (mt19937_64, SplitMix64, rejection sampling): these orders must
    // never change, or saved experiments stop being reproducible.
    batcher b{10, {.batch = 10, .seed = 0}};
    std::vector<std::size_t> const epoch0 = epoch_order(b);
    b.begin_epoch(1);
    std::vector<std::size_t> const epoch1 = epoch_order(b);
    CHECK(epoch0 == std::vector<std::size_t>{6, 1, 2, 4, 7, 5, 3, 0, 9, 8});
    CHECK(epoch1 == std::vector<std::size_t>{5, 0, 8, 7, 3, 1, 9, 6, 4, 2});
}

TEST_CASE("batcher shuffle is close to uniform") {
    // Over 4000 epochs of 4 samples, each value lands in each position about 1000 times.
    batcher b{4, {.batch = 4, .seed = 3}};
    std::array<std::array<int, 4>, 4> counts{};
    for (std::size_t e = 0; e < 4000; ++e) {
        b.begin_epoch(e);
        auto const idx = b.batch_indices(0);
        for (std::size_t pos = 0; pos < 4; ++pos) {
            ++counts[pos][idx[pos]];
        }
    }
    for (auto const& row : counts) {
        for (int c : row) {
            CHECK(c > 880);  // 1000 +- 4.4 standard deviations
            CHECK(c < 1120);
        }
    }
}

TEST_CASE("batcher without shuffle keeps the natural order") {
    batcher b{25, {.batch = 10, .shuffle = false, .seed = 4}};
    b.begin_epoch(7);
    std::vector<std::size_t> expected(25);
    for (std::size_t i = 0; i < 25; ++i) {
        expected[i] = i;
    }
    CHECK(epoch_order(b) == expected);
    CHECK(b.batch_indices(2).size() == 5);
    CHECK(b.batch_indices(2)[0] == 20);
}

TEST_CASE("batcher drop_last leaves out the partial batch") {
    batcher b{103, {.batch = 10, .seed = 5, .drop_last = true}};
    CHECK(b.batches() == 10);
    auto const kept = epoch_order(b);
    CHECK(kept.size() == 100);
    auto sorted = kept;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // no repeats
    CHECK(sorted.back() < 103);
    // The dropped samples are the tail of the full order, so they change with the epoch.
    CHECK(std::equal(kept.begin(), kept.end(), b.order().begin()));
    CHECK_THROWS_AS((void)b.batch_indices(10), std::out_of_range);

    batcher exact{100, {.batch = 10, .drop_last = true}};
    CHECK(exact.batches() == 10);
    batcher small{5, {.batch = 10, .drop_last = true}};
    CHECK(small.batches() == 0);
    batcher small_kept{5, {.batch = 10}};
    CHECK(small_kept.batches() == 1);
    CHECK(small_kept.batch_indices(0).size() == 5);
}

TEST_CASE("batcher edge cases") {
    batcher empty{0, {.batch = 4}};
    CHECK(empty.batches() == 0);
    CHECK_THROWS_AS((void)empty.batch_indices(0), std::out_of_range);
    batcher one{1, {.batch = 4}};
    CHECK(one.batches() == 1);
    CHECK(one.batch_indices(0)[0] == 0);
    CHECK_THROWS_WITH_AS(batcher(10, {.batch = 0}), doctest::Contains("batch size must be at least 1"),
                         std::invalid_argument);
    batcher defaults{250};
    CHECK(defaults.options().batch == 100);
    CHECK(defaults.batches() == 3);
}

TEST_CASE("gather_rows copies selected rows of a matrix") {
    xt::xtensor<float, 2> const x{{0, 1, 2}, {10, 11, 12}, {20, 21, 22}, {30, 31, 32}};
    xt::xtensor<float, 2> out;
    std::vector<std::size_t> const idx{3, 0, 3};
    lowbit::data::gather_rows(x, idx, out);
    CHECK(out == xt::xtensor<float, 2>{{30, 31, 32}, {0, 1, 2}, {30, 31, 32}});
    // A smaller (last) batch resizes the output.
    std::vector<std::size_t> const last{2};
    lowbit::data::gather_rows(x, last, out);
    CHECK(out == xt::xtensor<float, 2>{{20, 21, 22}});
    // Same size: the buffer is reused, not reallocated.
    float const* before = out.data();
    std::vector<std::size_t> const other{1};
    lowbit::data::gather_rows(x, other, out);
    CHECK(out.data() == before);
    CHECK(out == xt::xtensor<float, 2>{{10, 11, 12}});
    // An empty batch gives 0 rows.
    lowbit::data::gather_rows(x, {}, out);
    CHECK(out.shape(0) == 0);
    CHECK(out.shape(1) == 3);
}

TEST_CASE("gather_rows copies images and labels") {
    auto images = xt::xtensor<float, 4>::from_shape({5, 2, 3, 4});
    for (std::size_t i = 0; i < images.size(); ++i) {
        images.data()[i] = static_cast<float>(i);
    }
    xt::xtensor<std::uint8_t, 1> const labels{4, 3, 2, 1, 0};
    std::vector<std::size_t> const idx{4, 1};
    xt::xtensor<float, 4> xb;
    xt::xtensor<std::uint8_t, 1> yb;
    lowbit::data::gather_rows(images, idx, xb);
    lowbit::data::gather_rows(labels, idx, yb);
    REQUIRE(xb.shape(0) == 2);
    CHECK(xb.shape(1) == 2);
    CHECK(xb.shape(2) == 3);
    CHECK(xb.shape(3) == 4);
    std::size_t mismatches = 0;
    for (std::size_t k = 0; k < 2; ++k) {
        for (std::size_t c = 0; c < 2; ++c) {
            for (std::size_t h = 0; h < 3; ++h) {
                for (std::size_t w = 0; w < 4; ++w) {
                    mismatches += xb(k, c, h, w) == images(idx[k], c, h, w) ? 0 : 1;
                }
            }
        }
    }
    CHECK(mismatches == 0);
    CHECK(yb == xt::xtensor<std::uint8_t, 1>{0, 3});
}

TEST_CASE("gather_rows with a batcher reassembles the dataset") {
    auto x = xt::xtensor<float, 2>::from_shape({23, 2});
    for (std::size_t i = 0; i < 23; ++i) {
        x(i, 0) = static_cast<float>(i);
        x(i, 1) = -static_cast<float>(i);
    }
    batcher b{23, {.batch = 5, .seed = 11}};
    xt::xtensor<float, 2> xb;
    std::vector<int> seen(23, 0);
    for (std::size_t i = 0; i < b.batches(); ++i) {
        auto const idx = b.batch_indices(i);
        lowbit::data::gather_rows(x, idx, xb);
        REQUIRE(xb.shape(0) == idx.size());
        for (std::size_t k = 0; k < idx.size(); ++k) {
            CHECK(xb(k, 0) == static_cast<float>(idx[k]));
            CHECK(xb(k, 1) == -static_cast<float>(idx[k]));
            ++seen[static_cast<std::size_t>(xb(k, 0))];
        }
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
}

TEST_CASE("gather_rows rejects an out-of-range row and leaves the output alone") {
    xt::xtensor<float, 2> const x{{1, 2}, {3, 4}};
    xt::xtensor<float, 2> out{{9, 9}};
    std::vector<std::size_t> const idx{0, 2};
    CHECK_THROWS_WITH_AS(lowbit::data::gather_rows(x, idx, out), doctest::Contains("row 2 out of range (2 rows)"),
                         std::out_of_range);
    CHECK(out == xt::xtensor<float, 2>{{9, 9}});
}
