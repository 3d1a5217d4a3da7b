// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief `ordered_block_reduce`: a threaded reduction whose result has the same bits for any thread count.
///
/// Floating-point addition is not associative, so a sum split "one range per thread" changes with the number
/// of threads. This one splits [0, n) into fixed blocks (2^14 indices by default), lets the threads compute
/// one partial result per block, and adds the partials in block order on the calling thread.
///
/// @code
/// double const s = lowbit::ordered_block_reduce<double>(x.size(), [&](std::size_t b, std::size_t e) {
///     double acc = 0.0;
///     for (std::size_t i = b; i < e; ++i) acc += x[i];
///     return acc;
/// });
/// @endcode

#include <lowbit/parallel/parallel_for.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace lowbit {

/// @brief The sum, in block order, of f(begin, end) over the fixed blocks of `block` indices that cover [0, n).
/// Blocks run in parallel (several blocks per thread); f may also write per-index outputs, and must not
/// depend on which thread runs it. T needs a value-initialised zero and `+=`.
template <class T, class F>
T ordered_block_reduce(std::size_t n, F&& f, std::size_t block = std::size_t{1} << 14)
{
    block = std::max<std::size_t>(block, 1);
    std::size_t const blocks = (n + block - 1) / block;
    if (blocks <= 1) return n == 0 ? T{} : T(f(std::size_t{0}, n));
    std::vector<T> part(blocks);
    parallel_for(blocks, 4, [&](std::size_t k0, std::size_t k1) {
        for (std::size_t k = k0; k < k1; ++k) part[k] = f(k * block, std::min(n, (k + 1) * block));
    });
    T total{};
    for (T const& p : part) total += p;
    return total;
}

} // namespace lowbit
