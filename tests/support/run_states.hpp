// SPDX-License-Identifier: MIT
#pragma once
// Test support for runs that must end with the same bits: small labelled data that training moves far, a
// small model for SQWA, a trainer's run state, and the first difference between two archives.

#include <lowbit/io/archive.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/quantizer.hpp>

#include <xtensor/xtensor.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace lowbit::test {

template <std::size_t Rank>
struct toy_data {
    xt::xtensor<float, Rank> x;
    xt::xtensor<std::uint8_t, 1> y;
};

/// Separable-ish random data: class centres plus noise, so that training moves the weights a lot.
template <std::size_t Rank>
toy_data<Rank> make_data(std::array<std::size_t, Rank> shape, std::size_t classes, unsigned seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    toy_data<Rank> t{xt::xtensor<float, Rank>::from_shape(shape), xt::xtensor<std::uint8_t, 1>::from_shape({shape[0]})};
    std::size_t const per = t.x.size() / shape[0];
    std::vector<float> centres(classes * per);
    for (float& c : centres) c = d(gen);
    for (std::size_t i = 0; i < shape[0]; ++i) {
        auto const label = static_cast<std::uint8_t>(gen() % classes);
        t.y(i) = label;
        for (std::size_t j = 0; j < per; ++j) t.x.data()[i * per + j] = centres[label * per + j] + 0.8f * d(gen);
    }
    return t;
}

/// Whether two archives hold the same metadata and the same entries with the same bits. Returns the first
/// difference ("" when there is none), so that a failure says where the runs diverged.
inline std::string difference(io::archive const& a, io::archive const& b)
{
    if (a.meta() != b.meta()) {
        for (auto const& [k, v] : a.meta()) {
            auto const it = b.meta().find(k);
            if (it == b.meta().end()) return "metadata '" + k + "' only in the first";
            if (it->second != v) return "metadata '" + k + "': " + v + " vs " + it->second;
        }
        return "metadata: the second has more keys";
    }
    if (a.entries().size() != b.entries().size()) return "entry counts differ";
    for (std::size_t i = 0; i < a.entries().size(); ++i) {
        auto const& x = a.entries()[i];
        auto const& y = b.entries()[i];
        if (x.name != y.name || x.shape != y.shape || x.dtype != y.dtype) return "entry " + x.name + " vs " + y.name;
        if (x.values.size() != y.values.size() ||
            (!x.values.empty() && std::memcmp(x.values.data(), y.values.data(), x.values.size() * sizeof(float)) != 0))
            return "the bits of entry " + x.name;
        if (x.data != y.data) return "the bytes of entry " + x.name;
    }
    return "";
}

template <class Trainer>
io::archive state_of(Trainer& t)
{
    io::archive a;
    t.save_state(a);
    return a;
}

/// A 12-16-3 MLP with 2-bit L2-optimal weights and BatchNorm, as SQWA's tests train it.
inline auto sqwa_mlp(std::uint64_t seed)
{
    using w2 = quantizer<2, nearest_even_t, clip::l2_optimal>;
    return nn::sequential{nn::dense<w2>({.in = 12, .out = 16, .bias = false, .seed = seed}),
                          nn::batch_norm<2>({.channels = 16}), nn::relu{},
                          nn::dense<w2>({.in = 16, .out = 3, .bias = false, .seed = seed + 1}),
                          nn::batch_norm<2>({.channels = 3})};
}

} // namespace lowbit::test
