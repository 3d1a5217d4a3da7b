// SPDX-License-Identifier: MIT
// A packed bit width above 8 is rejected with a message that says what to use instead.
#include <lowbit/quant/traits.hpp>

#if LOWBIT_SHOULD_FAIL
using q = lowbit::quantizer<9>;
#else
using q = lowbit::quantizer<8>;
#endif

int main() { return lowbit::bit_width_v<q> == 0; }
