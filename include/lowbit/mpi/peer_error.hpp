// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::mpi::peer_error: a peer of a data-parallel run that did not answer in time, or an MPI call
/// that failed; the message names this process's rank and the peer's.

#include <stdexcept>

namespace lowbit::mpi {

/// @brief A peer that did not answer in time, or an MPI call that failed.
class peer_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

} // namespace lowbit::mpi
