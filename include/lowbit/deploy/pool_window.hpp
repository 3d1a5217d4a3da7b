// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::pool_window: the window of a packed model's max pooling (deploy::sign_max_pool on sign bits,
/// deploy::code_max_pool on k-bit codes), taken from nn::max_pool2d's options by deploy::compile.
///
/// @code
/// lowbit::deploy::pool_window const p{.kernel = 2, .stride = 2};
/// std::size_t const side = p.out(28);   // 14
/// @endcode

#include <lowbit/config.hpp>

#include <cstddef>
#include <string>

namespace lowbit::deploy {

/// @brief The window of a max pooling (nn::max_pool2d's pool_options); kernel 0 means no pooling.
struct pool_window {
    std::size_t kernel = 0;
    std::size_t stride = 0;

    bool none() const noexcept { return kernel == 0; }
    /// @brief The output size of an input side of @p in (in itself without pooling).
    std::size_t out(std::size_t in) const noexcept
    {
        if (none()) return in;
        return in < kernel || stride == 0 ? 0 : (in - kernel) / stride + 1;
    }

    /// @brief Throws invalid_input, prefixed by @p who, for a zero kernel or stride or a window larger than a
    /// @p height x @p width input.
    void check(std::size_t height, std::size_t width, std::string const& who) const
    {
        if (kernel == 0 || stride == 0) throw invalid_input(who + "kernel and stride must be positive");
        if (height < kernel || width < kernel)
            throw invalid_input(who + "the " + std::to_string(height) + "x" + std::to_string(width) +
                                " input is smaller than the " + std::to_string(kernel) + "x" + std::to_string(kernel) +
                                " window");
    }
};

} // namespace lowbit::deploy
