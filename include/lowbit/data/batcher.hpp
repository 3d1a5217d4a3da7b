// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief batcher: reproducible per-epoch shuffling of sample indices, split into minibatches.
/// Also includes gather_rows, which copies a batch's samples out of a dataset.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/data/gather_rows.hpp"  // IWYU pragma: export

namespace lowbit::data {

/// @brief Options of batcher.
struct batcher_options {
    std::size_t batch = 100;  ///< Samples per batch (at least 1); the last one may be smaller.
    bool shuffle = true;      ///< Permute the samples each epoch; false keeps 0, 1, .. n-1.
    std::uint64_t seed = 0;   ///< With the epoch number, determines the permutation.
    bool drop_last = false;   ///< Leave out the last batch when it is smaller than `batch`.
};

namespace detail {

/// SplitMix64's finalizer (Steele, Lea and Flood, 2014): a bijection of 64-bit words with good
/// avalanche, used to derive unrelated engine seeds from neighbouring (seed, epoch) pairs.
[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/// A uniform integer in [0, bound) from @p rng, by rejection of the incomplete top range: exact,
/// and unlike std::uniform_int_distribution the same on every standard library.
[[nodiscard]] inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound) {
    std::uint64_t const limit = std::uint64_t(0) - (std::uint64_t(0) - bound) % bound;  // multiple of bound
    for (;;) {
        std::uint64_t const r = rng();
        if (limit == 0 || r < limit) {  // limit == 0: bound divides 2^64, every r is fine
            return r % bound;
        }
    }
}

} // namespace detail

/// @brief Splits n samples into minibatches, in an order shuffled afresh for each epoch.
///
/// The order of epoch e is a function of (seed, e) alone: a Fisher–Yates shuffle of 0 .. n-1 driven
/// by `std::mt19937_64` seeded with `splitmix64(seed ^ splitmix64(e))`, so that an epoch can be
/// replayed (e.g. after resuming from a checkpoint) without replaying the ones before it. Only
/// fully specified algorithms are used (no std::uniform_int_distribution, no std::shuffle), so
/// the order is the same on every platform and standard library.
/// @code
/// lowbit::data::batcher b{50000, {.batch = 128, .seed = 42}};
/// for (std::size_t epoch = 0; epoch < 10; ++epoch) {
///     b.begin_epoch(epoch);
///     for (std::size_t i = 0; i < b.batches(); ++i) {
///         std::span<std::size_t const> idx = b.batch_indices(i);
///         // ... gather_rows(images, idx, xb); step on xb ...
///     }
/// }
/// @endcode
class batcher {
public:
    /// @brief A batcher over @p n samples, positioned on epoch 0.
    /// @throws std::invalid_argument when `options.batch` is 0.
    explicit batcher(std::size_t n, batcher_options const& options = {}) : options_{options}, order_(n) {
        if (options.batch == 0) {
            throw std::invalid_argument{"lowbit: batcher: batch size must be at least 1"};
        }
        begin_epoch(0);
    }

    /// @brief Computes the order of @p epoch; batch_indices then refer to it.
    void begin_epoch(std::size_t epoch) {
        epoch_ = epoch;
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        if (!options_.shuffle || order_.size() < 2) {
            return;
        }
        std::mt19937_64 rng{detail::splitmix64(options_.seed ^ detail::splitmix64(static_cast<std::uint64_t>(epoch)))};
        for (std::size_t i = order_.size() - 1; i > 0; --i) {
            auto const j = static_cast<std::size_t>(detail::uniform_below(rng, static_cast<std::uint64_t>(i) + 1));
            std::swap(order_[i], order_[j]);
        }
    }

    /// @brief The epoch whose order is current.
    [[nodiscard]] std::size_t epoch() const noexcept { return epoch_; }

    /// @brief The number of samples n.
    [[nodiscard]] std::size_t size() const noexcept { return order_.size(); }

    /// @brief The options given at construction.
    [[nodiscard]] batcher_options const& options() const noexcept { return options_; }

    /// @brief The number of batches per epoch: `n / batch`, rounded up unless `drop_last`.
    [[nodiscard]] std::size_t batches() const noexcept {
        std::size_t const n = order_.size();
        std::size_t const b = options_.batch;
        return options_.drop_last ? n / b : (n + b - 1) / b;
    }

    /// @brief The whole order of the current epoch (n indices, including any dropped tail).
    [[nodiscard]] std::span<std::size_t const> order() const noexcept { return order_; }

    /// @brief The sample indices of batch @p i of the current epoch: `batch` of them, or fewer for
    /// the last batch. Valid until the next begin_epoch.
    /// @throws std::out_of_range when @p i is not below batches().
    [[nodiscard]] std::span<std::size_t const> batch_indices(std::size_t i) const {
        if (i >= batches()) {
            throw std::out_of_range{"lowbit: batcher: batch " + std::to_string(i) + " out of range (" +
                                    std::to_string(batches()) + " batches)"};
        }
        std::size_t const first = i * options_.batch;
        std::size_t const count = std::min(options_.batch, order_.size() - first);
        return std::span<std::size_t const>{order_}.subspan(first, count);
    }

private:
    batcher_options options_;
    std::vector<std::size_t> order_;
    std::size_t epoch_ = 0;
};

} // namespace lowbit::data
