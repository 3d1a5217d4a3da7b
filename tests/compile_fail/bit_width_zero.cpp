// SPDX-License-Identifier: MIT
// A bit width of 0 is rejected with a message listing the valid widths.
#include <lowbit/quant/quantizer.hpp>

#if LOWBIT_SHOULD_FAIL
lowbit::quantizer<0> q;
#else
lowbit::quantizer<1> q;
#endif

int main() { return decltype(q)::bits == 0; }
