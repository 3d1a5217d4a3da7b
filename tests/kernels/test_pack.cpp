// SPDX-License-Identifier: MIT
// The SIMD pack kernels against their scalar references, bit for bit: every bit width 1..8, every rounding
// mode (and a user-defined one), every grid, saturate and wrap, tails of every length, per-channel splits,
// special values, and 1 vs 2 threads. This file is compiled once per instruction set (see CMakeLists.txt);
// each build checks the kernels for its own xsimd::default_arch and skips itself on a CPU that lacks it.
#include <lowbit/detail/xsimd_compat.hpp>
#include <lowbit/kernels/changed_codes.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/reference/pack.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/grid.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifndef LOWBIT_TEST_CPU
#define LOWBIT_TEST_CPU "sse2"
#endif

using namespace lowbit;
using namespace lowbit::kernels;
using arch = xsimd::default_arch;

/// A user-defined rounding mode: round half up. It goes through the kernels' scalar path for custom tags.
struct half_up_t {
    static float round(float t) noexcept { return std::floor(t + 0.5f); }
};
template <> struct lowbit::is_rounding_tag<half_up_t> : std::true_type {};

namespace {

bool cpu_ok() { return __builtin_cpu_supports(LOWBIT_TEST_CPU); }

template <int Bits>
std::vector<level_range> grids_for()
{
    std::vector<level_range> g = {grid::symmetric_even::levels<Bits>(), grid::unsigned_int::levels<Bits>()};
    if constexpr (Bits == 1) g.push_back(grid::binary::levels<1>());
    if constexpr (Bits >= 2) {
        g.push_back(grid::symmetric_odd::levels<Bits>());
        g.push_back(grid::signed_int::levels<Bits>());
    }
    return g;
}

std::vector<level_range> all_grids(int bits)
{
    switch (bits) {
    case 1: return grids_for<1>();
    case 2: return grids_for<2>();
    case 3: return grids_for<3>();
    case 4: return grids_for<4>();
    case 5: return grids_for<5>();
    case 6: return grids_for<6>();
    case 7: return grids_for<7>();
    default: return grids_for<8>();
    }
}

/// Gaussian values, with exact ties (multiples of step/2), infinities, NaN, huge values, -0 and denormals
/// sprinkled in.
std::vector<float> test_values(std::size_t n, float step, unsigned seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 4.0f * step);
    std::uniform_int_distribution<int> ties(-600, 600);
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) {
        switch (i % 11) {
        case 3: x[i] = static_cast<float>(ties(gen)) * 0.5f * step; break;
        case 7: x[i] = (i % 2 ? 1.0f : -1.0f) * std::numeric_limits<float>::infinity(); break;
        case 9: x[i] = i % 3 == 0 ? std::nanf("") : (i % 3 == 1 ? -0.0f : 1e30f); break;
        case 10: x[i] = std::numeric_limits<float>::denorm_min() * static_cast<float>(i); break;
        default: x[i] = normal(gen);
        }
    }
    return x;
}

template <class R>
void check_codes(int bits, level_range const& l, bool wrap, std::size_t n, std::uint64_t index0)
{
    float const step = 0.375f;
    auto const x = test_values(n, step, static_cast<unsigned>(n + bits));
    auto const p = make_quantize_params(l, bits, step, wrap, {.seed = 42, .step = 3, .stream = 1});
    std::vector<std::uint8_t> want(n), got(n);
    std::size_t const nans_want = reference::quantize_codes<R>(x.data(), want.data(), n, index0, p);
    std::size_t const nans_got = quantize_codes<R, arch>(x.data(), got.data(), n, index0, p);
    CHECK(nans_got == nans_want);
    for (std::size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        CAPTURE(x[i]);
        REQUIRE(got[i] == want[i]);
    }
}

} // namespace

TEST_CASE_TEMPLATE("quantize_codes matches the reference for every width, grid and overflow" *
                       doctest::skip(!cpu_ok()),
                   R, nearest_even_t, nearest_away_t, toward_zero_t, floor_t, ceil_t, stochastic_t, half_up_t)
{
    MESSAGE("arch: " << std::string(lowbit::detail::arch_name<arch>()));
    for (int bits = 1; bits <= 8; ++bits)
        for (level_range const& l : all_grids(bits))
            for (bool wrap : {false, true})
                for (std::size_t n : {0u, 1u, 3u, 15u, 16u, 17u, 64u, 1000u, 1024u})
                    for (std::uint64_t index0 : {0ull, 5ull}) {
                        CAPTURE(bits);
                        CAPTURE(l.qmin);
                        CAPTURE(wrap);
                        CAPTURE(n);
                        check_codes<R>(bits, l, wrap, n, index0);
                    }
}

TEST_CASE("pack_codes matches the reference, with tails" * doctest::skip(!cpu_ok()))
{
    std::mt19937 gen(1);
    for (int bits = 1; bits <= 8; ++bits)
        for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 1001u}) {
            std::uniform_int_distribution<unsigned> code(0, (1u << bits) - 1u);
            std::vector<std::uint8_t> codes(n);
            for (auto& c : codes) c = static_cast<std::uint8_t>(code(gen));
            std::vector<std::uint8_t> want(packed_bytes(n, bits)), got(packed_bytes(n, bits), 0xAA);
            reference::pack_codes(codes.data(), n, bits, want.data());
            pack_codes(codes.data(), n, bits, got.data());
            CAPTURE(bits);
            CAPTURE(n);
            REQUIRE(got == want);
            std::vector<std::uint8_t> back(n);
            reference::unpack_codes(want.data(), n, bits, back.data());
            REQUIRE(back == codes);  // round trip
        }
}

TEST_CASE("changed_codes counts the codes that differ, as the field-by-field reference does" * doctest::skip(!cpu_ok()))
{
    std::mt19937 gen(2);
    for (int bits = 1; bits <= 8; ++bits)
        for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 1001u}) {
            std::uniform_int_distribution<unsigned> code(0, (1u << bits) - 1u);
            std::bernoulli_distribution change(0.3);
            std::vector<std::uint8_t> a(n), b(n);
            std::size_t want = 0;
            for (std::size_t i = 0; i < n; ++i) {
                a[i] = static_cast<std::uint8_t>(code(gen));
                b[i] = a[i];
                if (change(gen)) {  // another code: the lowest bit, the highest, or any other
                    b[i] = static_cast<std::uint8_t>((a[i] ^ (1u + code(gen) % ((1u << bits) - 1u))) & ((1u << bits) - 1u));
                    want += b[i] != a[i] ? 1 : 0;
                }
            }
            std::vector<std::uint8_t> pa(packed_bytes(n, bits)), pb(packed_bytes(n, bits));
            reference::pack_codes(a.data(), n, bits, pa.data());
            reference::pack_codes(b.data(), n, bits, pb.data());
            CAPTURE(bits);
            CAPTURE(n);
            CHECK(changed_codes(pa.data(), pb.data(), n, bits) == want);
            CHECK(kernels::detail::changed_codes_reference(pa.data(), pb.data(), n, bits) == want);
            CHECK(changed_codes(pa.data(), pa.data(), n, bits) == 0);
        }
}

TEST_CASE("unpack_dequantize matches the reference, per tensor and per channel" * doctest::skip(!cpu_ok()))
{
    std::mt19937 gen(2);
    for (int bits = 1; bits <= 8; ++bits)
        for (level_range const& l : all_grids(bits))
            for (std::size_t n : {1u, 9u, 100u, 1000u, 5000u})
                for (std::size_t channel : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{13}, n}) {
                    if (n % channel != 0) continue;
                    std::uniform_int_distribution<unsigned> code(0, (1u << bits) - 1u);
                    std::vector<std::uint8_t> codes(n);
                    for (auto& c : codes) c = static_cast<std::uint8_t>(code(gen));
                    std::vector<std::uint8_t> packed(packed_bytes(n, bits));
                    reference::pack_codes(codes.data(), n, bits, packed.data());
                    std::vector<dequantize_params> params;
                    for (std::size_t c = 0; c < n / channel; ++c)
                        params.push_back(make_dequantize_params(l, 0.1f + 0.37f * static_cast<float>(c)));
                    std::vector<float> want(n), got(n);
                    for (std::size_t i = 0; i < n; ++i) want[i] = reference::dequantize_code(codes[i], params[i / channel]);
                    unpack_dequantize(packed.data(), n, channel, params.data(), bits, got.data());
                    CAPTURE(bits);
                    CAPTURE(n);
                    CAPTURE(channel);
                    REQUIRE(std::memcmp(got.data(), want.data(), n * sizeof(float)) == 0);
                }
}

TEST_CASE("fused quantize_pack is bit-identical to reference codes + pack, with 1 and 2 threads" *
          doctest::skip(!cpu_ok()))
{
    std::size_t const n = 3 * kernels::detail::parallel_grain + 777;  // several thread tasks and a ragged end
    unsigned const before = num_threads();
    for (int bits : {1, 2, 3, 4, 8}) {
        level_range const l = all_grids(bits).front();
        std::size_t const channel = n / 7 + (n % 7 != 0);  // uneven channels: the last one is shorter
        std::size_t const channels = (n + channel - 1) / channel;
        auto const x = test_values(n, 0.25f, 9);
        std::vector<quantize_params> params;
        for (std::size_t c = 0; c < channels; ++c)
            params.push_back(make_quantize_params(l, bits, 0.25f + 0.01f * static_cast<float>(c), false, {.seed = 7}));
        std::vector<std::uint8_t> codes(n), want(packed_bytes(n, bits));
        std::size_t want_nans = 0;
        for (std::size_t c = 0; c < channels; ++c) {
            std::size_t const b = c * channel, e = std::min(n, b + channel);
            want_nans += reference::quantize_codes<stochastic_t>(x.data() + b, codes.data() + b, e - b, b, params[c]);
        }
        reference::pack_codes(codes.data(), n, bits, want.data());
        for (unsigned threads : {1u, 2u}) {
            set_num_threads(threads);
            std::vector<std::uint8_t> got(want.size());
            std::size_t const nans = quantize_pack<stochastic_t, arch>(x.data(), n, channel, params.data(), bits, got.data());
            CAPTURE(bits);
            CAPTURE(threads);
            CHECK(nans == want_nans);
            REQUIRE(got == want);
        }
    }
    set_num_threads(before);
}
