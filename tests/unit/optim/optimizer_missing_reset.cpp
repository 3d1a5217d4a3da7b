// SPDX-License-Identifier: MIT
// Compile-fail pair: a type with step() but no reset() is not a lowbit::optim::Optimizer, and
// detail::check_optimizer (what training methods call) says what to add. The _ok build adds reset().
#include <lowbit/optim/optimizer_concepts.hpp>

#include <cstddef>
#include <span>

struct my_optimizer {
    void step(std::size_t, std::span<float const>, std::span<float const> g, std::span<float> out, float lr, bool)
    {
        for (std::size_t i = 0; i < g.size(); ++i)
            out[i] = lr * g[i];
    }
#if !LOWBIT_SHOULD_FAIL
    void reset() {}
#endif
};

static_assert(lowbit::optim::detail::check_optimizer<my_optimizer>());

int main() { return 0; }
