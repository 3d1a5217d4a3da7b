// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Umbrella header: includes the whole public API. The library never includes it itself.

#include <lowbit/config.hpp>
