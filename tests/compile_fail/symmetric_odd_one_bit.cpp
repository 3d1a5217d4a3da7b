// SPDX-License-Identifier: MIT
// A 1-bit mid-tread grid cannot exist (it would have one level); the message points to grid::binary.
#include <lowbit/quant/quantizer.hpp>

#if LOWBIT_SHOULD_FAIL
using q = lowbit::quantizer<1, lowbit::nearest_even_t, lowbit::clip::max_abs, lowbit::grid::symmetric_odd>;
#else
using q = lowbit::quantizer<1, lowbit::nearest_even_t, lowbit::clip::max_abs, lowbit::grid::binary>;
#endif

int main() { return q::levels.count() != 2; }
