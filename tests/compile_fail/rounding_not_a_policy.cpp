// SPDX-License-Identifier: MIT
// A rounding type that did not opt in through is_rounding_tag is not a RoundingPolicy.
#include <lowbit/quant/quantizer.hpp>

#include <cmath>

struct half_up {
    static float round(float t) noexcept { return std::floor(t + 0.5f); }
};
#if !LOWBIT_SHOULD_FAIL
template <> struct lowbit::is_rounding_tag<half_up> : std::true_type {};
#endif

using q = lowbit::quantizer<4, half_up>;

int main() { return q::bits != 4; }
