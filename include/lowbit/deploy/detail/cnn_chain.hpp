// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The checks and layout steps the packed CNNs (deploy::packed_cnn, deploy::packed_kbit_cnn) share:
/// that convolutions, poolings and dense layers chain, the input images' shape, and NCHW -> NHWC.

#include <lowbit/config.hpp>
#include <lowbit/deploy/pool_window.hpp>

#include <cstddef>
#include <span>
#include <string>

namespace lowbit::deploy::detail {

/// A feature map's channels, height and width.
struct feature_map {
    std::size_t c = 0, h = 0, w = 0;
};

/// Throws invalid_input, prefixed by @p who, unless each convolution reads what the one before writes
/// (channels and size, after its pooling) and each pooling fits its feature map; returns the last feature map.
template <class Conv>
feature_map chain_convs(std::string const& who, std::span<Conv const> convs, std::span<pool_window const> pools)
{
    if (pools.size() != convs.size())
        throw invalid_input(who + std::to_string(pools.size()) + " poolings for " + std::to_string(convs.size()) +
                            " convolutions (one per convolution; kernel 0 for none)");
    feature_map m;
    for (std::size_t i = 0; i < convs.size(); ++i) {
        auto const& s = convs[i].shape();
        std::string const layer = "convolution " + std::to_string(i);
        if (i > 0 && (s.channels != m.c || s.height != m.h || s.width != m.w))
            throw invalid_input(who + layer + " reads " + std::to_string(s.channels) + " x " +
                                std::to_string(s.height) + " x " + std::to_string(s.width) +
                                ", the layer before writes " + std::to_string(m.c) + " x " + std::to_string(m.h) +
                                " x " + std::to_string(m.w));
        pool_window const p = pools[i];
        if (!p.none() && (p.stride == 0 || s.out_height() < p.kernel || s.out_width() < p.kernel))
            throw invalid_input(who + "the pooling after " + layer + " has stride 0 or a window larger than the " +
                                std::to_string(s.out_height()) + "x" + std::to_string(s.out_width()) + " feature map");
        m = {s.filters, p.out(s.out_height()), p.out(s.out_width())};
    }
    return m;
}

/// Throws invalid_input, prefixed by @p who, unless only the last dense layer writes logits (the others
/// @p output: "sign bits", "codes"), the first reads the @p flat features of the flattened feature map and
/// each later one what the one before writes.
template <class Dense>
void chain_dense(std::string const& who, std::span<Dense const> dense, std::size_t flat, std::string const& output)
{
    for (std::size_t i = 0; i < dense.size(); ++i) {
        Dense const& l = dense[i];
        bool const last = i + 1 == dense.size();
        std::string const layer = "dense layer " + std::to_string(i);
        if (l.logits() != last) throw invalid_input(who + layer + (last ? " must write logits" : " must write " + output));
        std::size_t const want = i == 0 ? flat : dense[i - 1].out();
        if (l.in() != want)
            throw invalid_input(who + layer + " reads " + std::to_string(l.in()) + " features, the layer before writes " +
                                std::to_string(want) + (i == 0 ? " (the flattened feature map)" : ""));
    }
}

/// Throws invalid_input, prefixed by @p who, unless images of shape @p s ([batch, C, H, W]) are @p m's.
template <class Shape>
void check_images(std::string const& who, Shape const& s, feature_map const& m)
{
    if (s[1] != m.c || s[2] != m.h || s[3] != m.w)
        throw invalid_input(who + "shape mismatch: expected images of " + std::to_string(m.c) + " x " +
                            std::to_string(m.h) + " x " + std::to_string(m.w) + ", got " + std::to_string(s[1]) +
                            " x " + std::to_string(s[2]) + " x " + std::to_string(s[3]));
}

/// @p n images of @p c channels of @p plane pixels, NCHW at @p x, as NHWC rows at @p y.
template <class T>
void nchw_to_nhwc(T const* x, std::size_t n, std::size_t c, std::size_t plane, T* y)
{
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) y[(i * plane + p) * c + ch] = x[(i * c + ch) * plane + p];
}

} // namespace lowbit::deploy::detail
