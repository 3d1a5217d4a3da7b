// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concept for quantized tensors.

#include <lowbit/quant/quantizer_concepts.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace lowbit {

/// @brief A quantized tensor: it names its quantizer and exposes packed codes, steps and shape, as
/// lowbit::qtensor<Q> does.
template <class T>
concept QuantizedTensor = Quantizer<typename T::quantizer_type> && requires(T const& t, std::size_t i) {
    { t.size() } -> std::same_as<std::size_t>;
    { t.codes().data() } -> std::convertible_to<std::uint8_t const*>;
    { t.steps().data() } -> std::convertible_to<float const*>;
    { t.code(i) } -> std::same_as<std::uint8_t>;
};

} // namespace lowbit
