// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Private helpers of lowbit::ste: argument checks, the DoReFa q_k, and slicing along axis 0.
// IWYU pragma: private

#include <lowbit/config.hpp>
#include <lowbit/detail/batch_loop.hpp>
#include <lowbit/detail/gcc12_avx512_warnings.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/detail/step_kernels.hpp>
#include <lowbit/quant/granularity.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::ste::detail {

/// Bit widths of fake quantizers: the grid is float, so 1..16 (not limited to the packed 1..8).
template <int Bits>
consteval bool check_fake_bits()
{
    static_assert(Bits >= 1, "lowbit::ste: a bit width must be at least 1");
    static_assert(Bits <= 16, "lowbit::ste: fake quantizers support 1..16 bits; keep wider tensors in float");
    return true;
}

/// 2^k - 1, the number of steps of a k-bit unsigned grid.
template <int Bits>
inline constexpr float steps_v = static_cast<float>((1 << Bits) - 1);

/// Round to nearest, ties to even (std::nearbyint in the default rounding mode; torch.round and N2D2's rintf
/// do the same).
inline float round_even(float t) noexcept { return std::nearbyint(t); }

/// DoReFa's q_k(u) = round((2^k - 1) u) / (2^k - 1), ties to even.
inline float q_k(float u, float n) noexcept { return round_even(u * n) / n; }

/// sign with sign(0) = +1, so binary outputs stay on {-a, +a} (lowbit's grid::binary, BinaryConnect).
inline float sign_pos(float v) noexcept { return v < 0.0f ? -1.0f : 1.0f; }

inline void reject_nan(std::span<float const> x, char const* who)
{
    if (!lowbit::detail::any_nan(x)) return;  // the common case, vectorised: it runs on every forward pass
    auto const n = static_cast<std::size_t>(std::count_if(x.begin(), x.end(), [](float v) { return std::isnan(v); }));
    if (n != 0)
        throw invalid_input(std::string("lowbit::ste::") + who + ": " + std::to_string(n) +
                            " input value(s) are NaN; a fake quantizer has no value for NaN");
}

inline void check_forward(std::span<float const> x, std::span<float> y, char const* who)
{
    if (y.size() != x.size())
        throw invalid_input(std::string("lowbit::ste::") + who + "::forward: output has " + std::to_string(y.size()) +
                            " values for " + std::to_string(x.size()) + " inputs");
    reject_nan(x, who);
}

inline void check_backward(std::span<float const> dy, std::span<float> dx, std::size_t cached, char const* who)
{
    if (dy.size() != cached || dx.size() != cached)
        throw invalid_input(std::string("lowbit::ste::") + who + "::backward: expected " + std::to_string(cached) +
                            " gradient values (the size of the last forward pass), got dy " +
                            std::to_string(dy.size()) + " and dx " + std::to_string(dx.size()) +
                            (cached == 0 ? " (was forward() called?)" : ""));
}

LOWBIT_GCC12_AVX512_WARNINGS_OFF  // to LOWBIT_GCC12_AVX512_WARNINGS_ON: GCC PR 105593, see the header

/// t[i] = tanh(x[i]), with xsimd's vectorised tanh on every element (the tail goes through the same batch
/// code on a padded copy, so a value's result does not depend on its position) and threaded for large
/// tensors. DoReFa's clamp evaluates it on every weight of every step: with std::tanh it dominated the
/// training step of a 1024-wide MLP (measured in bench/train_qat.cpp).
inline void tanh_into(std::span<float const> x, std::span<float> t)
{
    using batch = xsimd::batch<float>;
    parallel_for(x.size(), std::size_t{1} << 15, [&](std::size_t b, std::size_t e) {
        lowbit::detail::for_each_batch<1, 1>(b, e, {x.data()}, {t.data()}, [](auto const& in, auto const& out) {
            xsimd::tanh(batch::load_unaligned(in[0])).store_unaligned(out[0]);
        });
    });
}

LOWBIT_GCC12_AVX512_WARNINGS_ON

/// Calls f(begin, end, slice) on runs of [0, n) that stay within one slice of `len` elements, in parallel
/// for large n (an element's result must depend on the element and its slice only).
template <class F>
void for_each_slice_run(std::size_t n, std::size_t len, F&& f)
{
    parallel_for(n, std::size_t{1} << 15, [&](std::size_t b, std::size_t e) {
        while (b < e) {
            std::size_t const c = b / len;
            std::size_t const end = std::min(e, (c + 1) * len);
            f(b, end, c);
            b = end;
        }
    });
}

/// DoReFa's clamp, first half: t = tanh(x), and per slice of `len` elements max|t|. Shared by dorefa_weight
/// and tanh_clamp.
inline void tanh_and_max(std::span<float const> x, std::size_t len, std::vector<float>& t, std::vector<float>& max)
{
    t.resize(x.size());
    tanh_into(x, t);
    max.resize(x.size() / len);
    for (std::size_t c = 0; c < max.size(); ++c)
        max[c] = lowbit::detail::max_abs(std::span<float const>(t).subspan(c * len, len));
}

/// Slices along axis 0: one for per_tensor_t, shape[0] for per_channel_t (0 until bind()).
template <Granularity G>
class slicing {
public:
    static constexpr bool per_channel = std::is_same_v<G, per_channel_t>;

    void bind(std::span<std::size_t const> shape) noexcept
    {
        if constexpr (per_channel) channels_ = shape.empty() ? 1 : shape[0];
    }
    std::size_t channels() const noexcept { return channels_; }

    /// Elements per slice for a tensor of n values; throws when unbound or when n does not split evenly.
    std::size_t slice_length(std::size_t n, char const* who) const
    {
        if (channels_ == 0)
            throw invalid_input(std::string("lowbit::ste::") + who +
                                ": per-channel quantizer used before bind(shape); call bind with the tensor's shape");
        if (n % channels_ != 0)
            throw invalid_input(std::string("lowbit::ste::") + who + ": " + std::to_string(n) +
                                " values do not split into " + std::to_string(channels_) + " channels");
        return n / channels_;
    }

private:
    std::size_t channels_ = per_channel ? 0 : 1;
};

} // namespace lowbit::ste::detail
