// SPDX-License-Identifier: MIT
// SQWA needs shadow weights: wrapping stochastic_rounding (packed weights only) is rejected with advice.
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>

#if LOWBIT_SHOULD_FAIL
using method = lowbit::train::sqwa<lowbit::train::stochastic_rounding>;
#else
using method = lowbit::train::sqwa<lowbit::train::binary_connect>;
#endif

int main() { return method{}.options.captures == 0; }
