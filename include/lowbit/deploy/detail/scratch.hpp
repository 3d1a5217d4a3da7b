// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Per-thread scratch buffers and image chunking, shared by the packed layers (deploy/packed_*.hpp):
/// their forward() is const and may run on several threads at once, so buffers are per thread, and they are
/// reused from call to call so that a batch-1 call allocates nothing after the first.

#include <lowbit/config.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace lowbit::deploy::detail {

/// A per-thread buffer of at least @p n elements. @p Owner and @p Slot tell apart the buffers of different
/// layer types and of one layer's simultaneous uses.
template <class Owner, class T, int Slot>
std::vector<T>& scratch(std::size_t n)
{
    thread_local std::vector<T> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return buffer;
}

/// Calls f(n0, n) for consecutive chunks of a batch of @p batch images of @p out_pixels output pixels each,
/// about 8192 output pixels a chunk: a convolution's int32 results and im2col rows of a chunk stay in the
/// cache, and a 256-image batch does not need 256 x 784 x filters int32 at once.
template <class F>
void for_image_chunks(std::size_t batch, std::size_t out_pixels, F&& f)
{
    std::size_t const per = std::max<std::size_t>(1, 8192 / std::max<std::size_t>(1, out_pixels));
    for (std::size_t n0 = 0; n0 < batch; n0 += per) f(n0, std::min(per, batch - n0));
}

} // namespace lowbit::deploy::detail
