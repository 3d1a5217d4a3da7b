// SPDX-License-Identifier: MIT
// SAT trains float shadow weights through a fake quantizer: wrapping a packed-weight method is rejected.
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/sat.hpp>

#if LOWBIT_SHOULD_FAIL
using method = lowbit::train::sat<lowbit::train::rounded>;
#else
using method = lowbit::train::sat<lowbit::train::binary_connect>;
#endif

int main() { return method::name().empty(); }
