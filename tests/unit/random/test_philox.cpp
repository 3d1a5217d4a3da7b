// SPDX-License-Identifier: MIT
#include <lowbit/random/philox.hpp>

#include <doctest/doctest.h>

#include <vector>

using namespace lowbit::random;

TEST_CASE("philox4x32-10 matches Random123's known answers")
{
    CHECK(philox4x32_10({0, 0, 0, 0}, 0, 0) == philox_block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
    CHECK(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffu, 0xffffffffu) ==
          philox_block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
    CHECK(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, 0xa4093822u, 0x299f31d0u) ==
          philox_block{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
    static_assert(philox4x32_10({0, 0, 0, 0}, 0, 0)[0] == 0x6627e8d5u, "usable at compile time");
}

TEST_CASE("uniform_fill equals uniform_at element for element, for any start and length")
{
    counter_key const key{.seed = 0x123456789abcdefull, .step = 3, .stream = 9};
    for (std::uint64_t first : {0ull, 1ull, 3ull, 4ull, 61ull, (1ull << 33) + 2}) {
        for (std::size_t n : {0u, 1u, 5u, 63u, 64u, 65u, 200u}) {
            std::vector<float> u(n);
            uniform_fill(key, first, u.data(), n);
            for (std::size_t i = 0; i < n; ++i) REQUIRE(u[i] == uniform_at(key, first + i));
        }
    }
}

TEST_CASE("draws lie in 0 <= u < 1 and differ between seeds, steps and streams")
{
    counter_key const a{.seed = 1}, b{.seed = 2}, c{.seed = 1, .step = 1}, d{.seed = 1, .stream = 1};
    int same_b = 0, same_c = 0, same_d = 0;
    for (std::uint64_t i = 0; i < 1000; ++i) {
        float const u = uniform_at(a, i);
        CHECK(u >= 0.0f);
        CHECK(u < 1.0f);
        same_b += u == uniform_at(b, i);
        same_c += u == uniform_at(c, i);
        same_d += u == uniform_at(d, i);
    }
    CHECK(same_b < 5);
    CHECK(same_c < 5);
    CHECK(same_d < 5);
    CHECK(to_unit_float(0xffffffffu) < 1.0f);
    CHECK(to_unit_float(0u) == 0.0f);
}
