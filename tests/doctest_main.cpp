// SPDX-License-Identifier: MIT
// The one doctest main() shared by every lowbit test executable (lowbit_doctest_main).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
