// SPDX-License-Identifier: MIT
// CG-PACT's calibrated alpha gradient requested on a quantizer that is not PACT is rejected with advice.
#include <lowbit/quant/ste/lsq.hpp>
#include <lowbit/quant/ste/pact.hpp>

#if LOWBIT_SHOULD_FAIL
using act = lowbit::ste::calibrated_t<lowbit::ste::lsq<4, lowbit::grid::unsigned_int>>;
#else
using act = lowbit::ste::calibrated_t<lowbit::ste::pact<4>>;
#endif

int main() { return act::bits != 4; }
