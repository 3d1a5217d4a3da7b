// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::level_thresholds and fold_level_thresholds: BatchNorm, ReLU and a k-bit PACT quantizer
/// folded into n = 2^k - 1 integer thresholds per channel on the integer result v of a packed layer, exactly.
///
/// The float model maps v to a pre-activation y_j(v) (non-decreasing in v), then BatchNorm's evaluation
/// formula, ReLU, and PACT's a round(n clip(x, 0, a) / a) / n -- an unsigned code q in 0..n times a / n. Every
/// step is monotone, so q_j(v) is a step function of v: non-decreasing for gamma_j > 0, non-increasing for
/// gamma_j < 0, constant for gamma_j == 0. A step function with values 0..n is n thresholds: q = the number of
/// levels c = 1..n with code(v) >= c. fold_level_thresholds finds each boundary as fold_sign_thresholds does
/// for sign: it evaluates copies of the model's own nn::batch_norm and activation layers (the same compiled
/// code as the evaluation forward, so the same rounding -- PACT's ties-to-even included) on y_j(v) and
/// binary-searches over the integers [v_min, v_max], all n levels and all channels of a step in one forward
/// call. The packed code then equals the fake-quant model's code for every integer v in that range.
///
/// Why exact thresholds rather than a folded float scale and bias (the other option the issue names for
/// k-bit activations): a folded y' = s v + b followed by round() rounds differently from the float
/// BatchNorm + PACT chain near every half-step, so some codes would differ; the thresholds cost n integer
/// compares per output (n = 3 at 2 bits, 15 at 4) and make the hidden codes agree bit for bit.
///
/// Decreasing channels are stored on u = -v, so that every channel's thresholds are non-decreasing on its
/// own u and the code is one count: q = #{c : u >= threshold[j n + c - 1]}.
///
/// @code
/// auto const t = lowbit::deploy::fold_level_thresholds(bn, act, -1000, 1000, [&](std::size_t j, std::int64_t v) {
///     return static_cast<float>(step[j] * static_cast<double>(v));   // the float layer's pre-activation
/// });
/// std::uint8_t const q = t.code(3, 17);   // PACT's code of BN(y_3(17)) after ReLU
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/policy_info.hpp>
#include <lowbit/quant/policy_traits.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::deploy {

namespace detail {
/// Whether a policy with the traits @p i writes unsigned k-bit codes, k = 1..8 (the next layer's unsigned 8-bit
/// kernel inputs): levels 0 .. 2^k - 1 times a step (grid::unsigned_int).
constexpr bool unsigned_codes(policy_info const& i) noexcept
{
    return i.quantizes() && i.bits >= 1 && i.bits <= 8 && i.levels == level_range{0, (1 << i.bits) - 1, 0.0f};
}

/// A policy that writes unsigned k-bit codes as policy_traits reads it (unsigned_codes): ste::pact and CG-PACT,
/// ste::dorefa_activation, ste::lsq on grid::unsigned_int, a user's policy that says so.
template <class Q>
concept unsigned_code_policy = QuantizingPolicy<Q> && (bit_width_v<Q> <= 8) &&  // levels_v exists up to 8 bits
                               unsigned_codes(policy_info_of<Q>());

/// The real value of the top code a = n step of code policy @p q: what a copy of it writes for the largest
/// float (PACT's |alpha|, DoReFa's 1, LSQ's (2^k - 1) s), read from its own forward pass.
template <class Q>
float top_code_value(Q q)
{
    float const x = std::numeric_limits<float>::max();
    float y = 0.0f;
    q.forward(std::span<float const>(&x, 1), std::span<float>(&y, 1));
    return y;
}

/// The code bits of a policy chosen at run time (ste::any_quantizer), checked as unsigned_code_policy is.
/// @throws invalid_input naming what the policy is otherwise.
inline int checked_code_bits(std::optional<policy_info> const& i)
{
    if (i && unsigned_codes(*i)) return i->bits;
    throw invalid_input("lowbit::deploy::compile: an activation quantizer chosen at run time is " +
                        (!i ? std::string("a policy without policy_traits")
                            : i->quantizes() ? std::to_string(i->bits) + "-bit on a grid of levels [" +
                                                   std::to_string(i->levels.qmin) + ", " +
                                                   std::to_string(i->levels.qmax) + "]"
                                             : std::string("float (no quantizer)")) +
                        ", not unsigned codes of 1..8 bits (PACT, CG-PACT, DoReFa or unsigned LSQ activations)");
}

/// The quantizer of a code activation layer: nn::quantize_activation<Q> alone or behind a ReLU (nn::mlp's
/// relu_then), with Q an unsigned_code_policy (`bits` its width) or a policy chosen at run time (`bits` 0,
/// checked by bits_of()).
template <class Q>
struct code_quantizer : std::false_type {};
template <unsigned_code_policy Q>
struct code_quantizer<Q> : std::true_type {
    static constexpr int bits = bit_width_v<Q>;
    static int bits_of(Q const&) noexcept { return bits; }
};
template <RuntimeDescribedPolicy Q>
struct code_quantizer<Q> : std::true_type {
    static constexpr int bits = 0;
    static int bits_of(Q const& q) { return checked_code_bits(describe(q)); }
};

template <class A>
struct code_layer : std::false_type {};
template <class Q>
    requires code_quantizer<Q>::value
struct code_layer<nn::quantize_activation<Q>> : std::true_type {
    using quantizer = Q;
    static Q& of(nn::quantize_activation<Q>& a) noexcept { return a.quantizer(); }
};
template <class Q>
    requires code_quantizer<Q>::value
struct code_layer<nn::sequential<nn::relu, nn::quantize_activation<Q>>> : std::true_type {
    using quantizer = Q;
    static Q& of(nn::sequential<nn::relu, nn::quantize_activation<Q>>& a) noexcept
    {
        return a.template layer<1>().quantizer();
    }
};

/// The bit width of code activation layer @p a's codes (checked at run time for a policy chosen then).
template <class A>
int code_bits(A& a)
{
    using q = typename code_layer<A>::quantizer;
    return code_quantizer<q>::bits_of(code_layer<A>::of(a));
}
/// The real value of the top code of code activation layer @p a (PACT's |alpha|).
template <class A>
float code_top(A& a)
{
    return top_code_value(code_layer<A>::of(a));
}

} // namespace detail

/// @brief Activation layers whose output fold_level_thresholds folds: a quantizer of unsigned k-bit codes,
/// k = 1..8, in an nn::quantize_activation, alone or after nn::relu (PACT, CG-PACT, DoReFa's activations,
/// unsigned LSQ, read through policy_traits), or one chosen at run time (ste::any_quantizer), whose codes are
/// checked when compile() folds them.
template <class A>
concept CodeActivationLayer = detail::code_layer<A>::value;

/// @brief Per-channel k-bit code rules: code(j, v) = #{c : u >= threshold[j * levels + c]}, u = v, or -v for a
/// channel whose code decreases with v (negate[j] != 0).
struct level_thresholds {
    int levels = 0;                         ///< n = 2^bits - 1 thresholds per channel
    std::vector<std::int32_t> threshold{};  ///< channels x levels, row-major, non-decreasing per channel
    std::vector<std::uint8_t> negate{};     ///< per channel: 1 when the thresholds are on -v

    std::size_t size() const noexcept { return negate.size(); }

    /// @brief Whether these are the rules of @p channels channels: 1..255 levels, and as many thresholds.
    bool fits(std::size_t channels) const noexcept
    {
        return size() == channels && levels >= 1 && levels <= 255 &&
               threshold.size() == channels * static_cast<std::size_t>(levels);
    }

    /// @brief The code (0 .. levels) of channel @p j for the integer result @p v.
    std::uint8_t code(std::size_t j, std::int64_t v) const noexcept
    {
        std::int64_t const u = negate[j] != 0 ? -v : v;
        std::int32_t const* t = threshold.data() + j * static_cast<std::size_t>(levels);
        int q = 0;
        for (int c = 0; c < levels; ++c) q += u >= t[c] ? 1 : 0;
        return static_cast<std::uint8_t>(q);
    }
};

namespace detail {
/// level_thresholds laid out for speed: the thresholds level-major ([levels][channels]) and the orientation as
/// a factor +-1, so that the count of passed thresholds of a row of channels is `levels` vector compares over
/// the channels (the channel-major rule's loop runs over 3 or 15 levels, too short to vectorise well).
/// codes() equals level_thresholds::code for every channel and v (|v| < 2^31 - 1, which the layers' int32
/// bounds guarantee); the packed layers' tests check that against the rule.
struct level_table {
    std::size_t levels = 0, channels = 0;
    std::vector<std::int32_t> by_level;  ///< levels x channels
    std::vector<std::int32_t> sign;      ///< per channel: 1, or -1 for negate

    level_table() = default;
    explicit level_table(level_thresholds const& t)
        : levels(static_cast<std::size_t>(t.levels)), channels(t.size()), by_level(levels * channels), sign(channels)
    {
        for (std::size_t j = 0; j < channels; ++j) {
            sign[j] = t.negate[j] != 0 ? -1 : 1;
            for (std::size_t c = 0; c < levels; ++c) by_level[c * channels + j] = t.threshold[j * levels + c];
        }
    }

    /// The codes of one row of integer results @p v (channels of them) into @p q.
    void codes(std::int32_t const* v, std::uint8_t* q) const noexcept
    {
        // Blocks of 64 channels counted in local int32 arrays: the output bytes could alias anything (unsigned
        // char), and a count of another width than the compare does not vectorise (GCC 12).
        constexpr std::size_t block = 64;
        std::array<std::int32_t, block> u;
        std::array<std::int32_t, block> count{};
        for (std::size_t j0 = 0; j0 < channels; j0 += block) {
            std::size_t const m = std::min(block, channels - j0);
            for (std::size_t k = 0; k < m; ++k) u[k] = v[j0 + k] * sign[j0 + k];
            count.fill(0);
            for (std::size_t c = 0; c < levels; ++c) {
                std::int32_t const* t = by_level.data() + c * channels + j0;
                for (std::size_t k = 0; k < m; ++k) count[k] += u[k] >= t[k] ? 1 : 0;
            }
            std::array<std::uint8_t, block> bytes;  // the whole block: a fixed trip count narrows in vectors
            for (std::size_t k = 0; k < block; ++k) bytes[k] = static_cast<std::uint8_t>(count[k]);
            std::copy(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(m), q + j0);
        }
    }
};
} // namespace detail

namespace detail {
/// The level_thresholds of a code that is monotone in v per channel, for every integer v in [v_min, v_max]:
/// @p codes_of(v) takes n x c integers (level-major: v[l * c + j] for channel j) and returns their codes (0..n),
/// from which each channel's orientation (its code at v_max below its code at v_min: decreasing) and each of
/// its n boundaries are found by binary search, all levels and channels of a step in one call. The range must
/// fit int32 thresholds (the callers check it).
template <class CodesOf>
level_thresholds fold_codes(std::size_t c, std::size_t n, std::int64_t v_min, std::int64_t v_max, CodesOf&& codes_of)
{
    std::vector<std::int64_t> v(n * c);
    auto codes_at = [&](std::int64_t value) {
        std::fill(v.begin(), v.end(), value);
        std::vector<int> const code = codes_of(v);
        return std::vector<int>(code.begin(), code.begin() + static_cast<std::ptrdiff_t>(c));
    };
    std::vector<int> const at_min = codes_at(v_min), at_max = codes_at(v_max);
    std::vector<char> neg(c);
    for (std::size_t j = 0; j < c; ++j) neg[j] = at_max[j] < at_min[j] ? 1 : 0;
    // On u = v (or -v) the code is non-decreasing, so level l (code >= l) holds on {u >= t_l}. Binary search
    // with lo failing and hi passing, starting one past each end of [u_min, u_max]: hi ends on t_l, u_min when
    // every v passes, u_max + 1 when none does.
    auto u_min = [&](std::size_t j) { return neg[j] != 0 ? -v_max : v_min; };
    auto u_max = [&](std::size_t j) { return neg[j] != 0 ? -v_min : v_max; };
    std::vector<std::int64_t> lo(n * c), hi(n * c);
    for (std::size_t i = 0; i < n * c; ++i) {
        lo[i] = u_min(i % c) - 1;
        hi[i] = u_max(i % c) + 1;
    }
    for (;;) {
        bool open = false;
        for (std::size_t i = 0; i < n * c; ++i) {
            bool const search = hi[i] - lo[i] > 1;
            std::int64_t const u = search ? lo[i] + (hi[i] - lo[i]) / 2 : u_min(i % c);  // finished: any valid v
            v[i] = neg[i % c] != 0 ? -u : u;
            open = open || search;
        }
        if (!open) break;
        std::vector<int> const code = codes_of(v);
        for (std::size_t i = 0; i < n * c; ++i) {
            if (hi[i] - lo[i] <= 1) continue;
            int const level = static_cast<int>(i / c) + 1;
            (code[i] >= level ? hi[i] : lo[i]) = lo[i] + (hi[i] - lo[i]) / 2;
        }
    }
    level_thresholds t;
    t.levels = static_cast<int>(n);
    t.threshold.resize(c * n);
    t.negate.resize(c);
    for (std::size_t j = 0; j < c; ++j) {
        t.negate[j] = static_cast<std::uint8_t>(neg[j]);
        for (std::size_t l = 0; l < n; ++l) t.threshold[j * n + l] = static_cast<std::int32_t>(hi[l * c + j]);
    }
    return t;
}
} // namespace detail

/// @brief The exact code rules of act(bn(y(j, v))) for every integer v in [v_min, v_max], where act is a
/// code activation layer (ReLU + PACT, DoReFa or unsigned LSQ): per channel and level, a binary search over v of copies of
/// @p bn (evaluation mode) and @p act, about n log2(v_max - v_min) row evaluations done n rows at a time.
/// @p y must be non-decreasing in v, which makes each channel's code monotone (see the file comment).
/// @throws invalid_input when v_min > v_max, the range leaves [-(2^31 - 2), 2^31 - 2], or PACT's alpha is
/// zero or not finite.
template <std::size_t Rank, CodeActivationLayer Act, PreActivation Y>
level_thresholds fold_level_thresholds(nn::batch_norm<Rank> const& bn, Act const& act, std::int64_t v_min,
                                       std::int64_t v_max, Y&& y)
{
    // |v| < INT32_MAX - 1, so that u = -v and the "never" threshold u_max + 1 fit int32.
    constexpr std::int64_t limit = std::numeric_limits<std::int32_t>::max() - 1;
    if (v_min > v_max || v_min < -limit || v_max > limit)
        throw invalid_input("lowbit::deploy::fold_level_thresholds: the integer range [" + std::to_string(v_min) +
                            ", " + std::to_string(v_max) + "] is empty or does not fit int32 thresholds");
    nn::batch_norm<Rank> norm = bn;  // forward() keeps scratch state: evaluate copies, leave the model alone
    Act a = act;
    int const bits = detail::code_bits(a);
    float const alpha = detail::code_top(a);  // PACT's |alpha|; the top code's value
    if (!(alpha > 0.0f) || !std::isfinite(alpha))
        throw invalid_input("lowbit::deploy::fold_level_thresholds: the activation's top code value (PACT's alpha) "
                            "must be finite and non-zero, got " + std::to_string(alpha));
    std::size_t const n = (std::size_t{1} << bits) - 1;
    std::size_t const c = norm.options().channels;
    using tensor = typename nn::batch_norm<Rank>::tensor;
    std::array<std::size_t, Rank> shape{};
    shape.fill(1);
    shape[0] = n;
    shape[1] = c;
    tensor rows = tensor::from_shape(shape);
    // codes(v)[l * c + j]: the float model's code of channel j at v[l * c + j], for n rows of v at once.
    std::vector<int> code(n * c);
    auto codes = [&](std::vector<std::int64_t> const& v) {
        for (std::size_t i = 0; i < n * c; ++i) rows.data()[i] = static_cast<float>(y(i % c, v[i]));
        tensor const z = norm.forward(rows, {.training = false});
        auto const out = a.forward(z, {.training = false});
        for (std::size_t i = 0; i < n * c; ++i) {
            // PACT writes a (k / n) in float: k / n is within a few ulps of out / a, so rounding gives k back.
            double const k = static_cast<double>(out.data()[i]) / static_cast<double>(alpha) * static_cast<double>(n);
            double const r = std::nearbyint(k);
            if (!(std::abs(k - r) < 1e-3) || r < 0.0 || r > static_cast<double>(n))
                throw invalid_input("lowbit::deploy::fold_level_thresholds: the activation wrote " +
                                    std::to_string(out.data()[i]) + ", not a multiple of alpha / " +
                                    std::to_string(n) + " in [0, alpha]");
            code[i] = static_cast<int>(r);
        }
    };
    return detail::fold_codes(c, n, v_min, v_max, [&](std::vector<std::int64_t> const& v) {
        codes(v);
        return code;
    });
}

} // namespace lowbit::deploy
