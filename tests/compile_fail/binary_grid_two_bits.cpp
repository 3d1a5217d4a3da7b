// SPDX-License-Identifier: MIT
// grid::binary holds exactly one bit; the message names the grids to use for more.
#include <lowbit/quant/quantizer.hpp>

#if LOWBIT_SHOULD_FAIL
using q = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::max_abs, lowbit::grid::binary>;
#else
using q = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::max_abs, lowbit::grid::symmetric_odd>;
#endif

int main() { return q::levels.count() != 3; }
