// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Version and configuration macros. Every LOWBIT_ macro is 0 or 1 (or a number) and is
/// tested with `#if`, never `#ifdef`, so a typo is caught by -Wundef.

#define LOWBIT_VERSION_MAJOR 0
#define LOWBIT_VERSION_MINOR 1
#define LOWBIT_VERSION_PATCH 0

#include <stdexcept>
#include <string>

namespace lowbit {

/// @brief Thrown by the checked API for input that cannot be processed (NaN, bad shape, ...).
struct invalid_input : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

} // namespace lowbit
