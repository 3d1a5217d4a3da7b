// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::mpi::environment: MPI started for the life of an object.
///
/// @code
/// int main(int argc, char** argv)
/// {
///     lowbit::mpi::environment env(argc, argv);
///     lowbit::mpi::mpi_group group;   // MPI_COMM_WORLD
///     ...
/// }
/// @endcode

#include <lowbit/mpi/peer_error.hpp>

#include <mpi.h>

#include <cstdlib>

namespace lowbit::mpi {

/// @brief Starts MPI (MPI_Init_thread with MPI_THREAD_FUNNELED: only the thread that made the object calls MPI;
/// lowbit's pool threads never do) and finalizes it when the object ends.
class environment {
public:
    environment(int& argc, char**& argv)
    {
        int provided = 0;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            throw peer_error("lowbit::mpi: MPI_Init_thread failed");
    }
    environment(environment const&) = delete;
    environment& operator=(environment const&) = delete;
    ~environment()
    {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }

    /// Ends every process of the job (after a peer_error: the others may be waiting for this one).
    [[noreturn]] static void abort(int code)
    {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::abort();
    }
};

} // namespace lowbit::mpi
