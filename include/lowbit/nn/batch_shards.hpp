// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::batch_shards: how a training step's global batch is split for data-parallel training, and the
/// sums over the batch that follow the split.
///
/// The global batch of B rows is cut into S shards, shard l holding rows [l B / S, (l + 1) B / S). Each process
/// owns S / P consecutive shards (P processes; S / P a power of two), so its rows are one contiguous range.
/// Every sum over the batch -- a weight gradient dW = dY^T X, a bias gradient, BatchNorm's statistics and
/// its backward sums -- is computed per shard, then the shards' partials are added in the binomial tree over
/// shards (lowbit::tree_sum), first within the process, then across processes (process_group::sum, the same
/// tree over ranks). The result depends on S, never on P: 1 process with S = 2 and 2 processes with S = 2
/// give the same bits. Per-row work (a dense layer's forward values, ReLU, pooling) does not care.
///
/// A layer reads the shards from forward_context::shards (nullptr: one process, one shard: the plain step).
/// Gradients are left as this process's partial (the trainer sums them across processes, all in one pass);
/// statistics a layer needs at once (BatchNorm's mean and variance) are summed across processes here.
///
/// @code
/// // in a layer's backward pass: dW over the process's shards, each shard's partial in its own buffer
/// auto rows = [&](std::size_t r0, std::size_t r1, std::span<float> g, std::size_t /*shard*/) {
///     /* g += the contribution of rows [r0, r1) */
/// };
/// lowbit::nn::accumulate_over_shards(shards, batch, w.grad(), rows);
/// @endcode

#include <lowbit/parallel/process_group.hpp>

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::nn {

/// @brief This process's part of the global batch (see the file comment).
struct batch_shards {
    /// Row offsets of this process's shards within its local batch: shard l is rows [bounds[l], bounds[l + 1]).
    std::span<std::size_t const> bounds;
    /// The other processes (nullptr: this process holds the whole batch).
    process_group* group = nullptr;
    /// Rows of the global batch (BatchNorm's count, the loss's mean).
    std::size_t global_rows = 0;

    std::size_t count() const noexcept { return bounds.empty() ? 0 : bounds.size() - 1; }
};

/// @brief The first row of shard l of S over a global batch of B rows.
constexpr std::size_t shard_begin(std::size_t l, std::size_t shards, std::size_t rows) noexcept
{
    return l * rows / shards;
}

/// @brief Rows of the global batch: shards->global_rows, or the local batch without shards.
inline std::size_t global_batch_rows(batch_shards const* s, std::size_t local_rows) noexcept
{
    return s == nullptr ? local_rows : s->global_rows;
}

namespace detail {
/// Scratch for per-shard partials (one buffer per thread: layers run one at a time on the calling thread).
template <class T>
std::vector<T>& shard_scratch()
{
    thread_local std::vector<T> v;
    return v;
}
} // namespace detail

/// @brief out += the sum over this process's shards of f(r0, r1, part, l), where f adds the contribution of
/// local rows [r0, r1) (shard l) into a zeroed part (of out's length). With one shard (or no shards) f adds
/// straight into out; with several, each shard gets its own part and the parts are added in the shard tree. The sum across
/// processes is left to the caller (the trainer's gradient sum).
template <class F>
void accumulate_over_shards(batch_shards const* s, std::size_t local_rows, std::span<float> out, F&& f)
{
    if (s == nullptr || s->count() <= 1) {
        f(std::size_t{0}, local_rows, out, std::size_t{0});
        return;
    }
    std::size_t const n = s->count(), len = out.size();
    auto& parts = detail::shard_scratch<float>();
    parts.assign(n * len, 0.0f);
    for (std::size_t l = 0; l < n; ++l)
        f(s->bounds[l], s->bounds[l + 1], std::span<float>(parts.data() + l * len, len), l);
    tree_sum(std::span<float>(parts), len);
    for (std::size_t k = 0; k < len; ++k) out[k] += parts[k];
}

/// @brief Calls f(r0, r1) for the local rows of each of this process's shards (once for [0, local_rows) without
/// shards). A layer runs its batched products (y = x W^T, dX = dY W) shard by shard because a BLAS may round a
/// row differently in calls of another height (OpenBLAS computes a call's edge rows with other kernels): with
/// a call per shard, one process with two shards issues the same calls as two processes.
template <class F>
void for_each_shard(batch_shards const* s, std::size_t local_rows, F&& f)
{
    if (s == nullptr || s->count() <= 1) {
        f(std::size_t{0}, local_rows);
        return;
    }
    for (std::size_t l = 0; l < s->count(); ++l)
        if (s->bounds[l + 1] > s->bounds[l]) f(s->bounds[l], s->bounds[l + 1]);
}

/// @brief The sum over the global batch of per-row statistics: part holds one partial per local shard
/// (count() blocks of len values, block l from shard l's rows); on return its first len values hold the total
/// over every shard of every process, the same bits everywhere.
template <class T>
void sum_over_batch(batch_shards const* s, std::span<T> part, std::size_t len)
{
    if (s == nullptr) return;
    tree_sum(part, len);
    if (s->group != nullptr) s->group->sum(part.first(len));
}

/// @brief The local shards' row ranges as bounds (one range [0, rows) without shards).
inline std::vector<std::size_t> shard_bounds(batch_shards const* s, std::size_t local_rows)
{
    if (s == nullptr) return {0, local_rows};
    return {s->bounds.begin(), s->bounds.end()};
}

} // namespace lowbit::nn
