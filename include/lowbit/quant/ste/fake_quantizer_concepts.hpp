// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concepts for fake quantizers with a backward pass (lowbit::ste): what a layer (for its weight) or an
/// activation-quantization layer calls.

#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

namespace lowbit::ste {

namespace detail {
template <class S>
concept has_forward = requires(S& s, std::span<float const> x, std::span<float> y) { s.forward(x, y); };
template <class S>
concept has_backward = requires(S& s, std::span<float const> dy, std::span<float> dx) { s.backward(dy, dx); };
template <class S>
concept has_bind = requires(S& s, std::span<std::size_t const> shape) { s.bind(shape); };
template <class S>
concept has_parameters = requires(S& s) {
    { s.parameters() } -> std::same_as<std::span<float>>;
};
template <class S>
concept has_gradients = requires(S& s) {
    { s.gradients() } -> std::same_as<std::span<float>>;
};
template <class S>
concept has_parameter_name = requires {
    { S::parameter_name } -> std::convertible_to<std::string_view>;
};
} // namespace detail

/// @brief A fake quantizer with a backward pass. Every type of lowbit::ste models it.
///
/// - `forward(x, y)`: writes y = Q(x) (floats on the quantized grid) and keeps what the backward pass needs
///   (the quantizer is stateful, like a layer; one object per tensor). Throws lowbit::invalid_input on NaN.
/// - `backward(dy, dx)`: given dL/dy for the last forward pass, writes dL/dx and *accumulates* (+=) the
///   gradients of the learned parameters, if any.
/// - `bind(shape)`: the row-major shape of the tensor; per-channel quantizers take their slice count from
///   `shape[0]` (output channels). Per-tensor quantizers accept and ignore it.
template <class S>
concept FakeQuantizer = detail::has_forward<S> && detail::has_backward<S> && detail::has_bind<S>;

/// @brief A fake quantizer with learned parameters (PACT's alpha, LSQ's step): `parameters()` and
/// `gradients()` view them (one value per tensor or per channel), and `parameter_name` names them for an
/// nn::parameter of kind `clipping` (no weight decay). The trainer zeroes the gradients; backward adds to them.
template <class S>
concept LearnedFakeQuantizer = FakeQuantizer<S> && detail::has_parameters<S> && detail::has_gradients<S> &&
                               detail::has_parameter_name<S>;

/// @brief The name of @p q's learned parameters: its type's `parameter_name`, or, for a quantizer chosen at run
/// time (ste::any_quantizer), the held type's (`held_parameter_name()`), so that a parameter is named alike
/// whether its quantizer is erased or not.
template <LearnedFakeQuantizer S>
std::string_view parameter_name_of(S const& q) noexcept
{
    if constexpr (requires { { q.held_parameter_name() } -> std::convertible_to<std::string_view>; })
        return q.held_parameter_name();
    else
        return S::parameter_name;
}

} // namespace lowbit::ste
