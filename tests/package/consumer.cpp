// SPDX-License-Identifier: MIT
// Shared by the add_subdirectory and FetchContent consumer tests.
#include <lowbit/lowbit.hpp>

#include <cstdio>

int main() {
    std::printf("lowbit %d.%d.%d\n", LOWBIT_VERSION_MAJOR, LOWBIT_VERSION_MINOR, LOWBIT_VERSION_PATCH);
    return 0;
}
