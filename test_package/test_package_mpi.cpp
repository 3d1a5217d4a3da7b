// SPDX-License-Identifier: MIT
// The lowbit::mpi component (option with_mpi): its headers compile and link against the MPI it requires.
#include <lowbit/mpi/environment.hpp>
#include <lowbit/mpi/mpi_group.hpp>

#include <cstdio>

int main()
{
    // Callable before MPI_Init: this checks the link without starting MPI (mpirun is not needed).
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::printf("lowbit::mpi links %.*s\n", len > 40 ? 40 : len, version);
    return sizeof(lowbit::mpi::mpi_group) > 0 ? 0 : 1;
}
