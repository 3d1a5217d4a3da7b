// SPDX-License-Identifier: MIT
#pragma once
// Test support: a k-bit PACT MLP or CNN's recipe as a type, for TEST_CASE_TEMPLATE: the first, hidden and last
// layers' weight quantizers and the activation width.

namespace lowbit::test {

template <class First, class W, class Last, int Bits>
struct kbit_recipe {
    using first = First;
    using hidden = W;
    using last = Last;
    static constexpr int bits = Bits;
};

} // namespace lowbit::test
