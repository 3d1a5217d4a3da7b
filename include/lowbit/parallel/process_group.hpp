// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::process_group: the processes of a data-parallel run, as the header-only core sees them --
/// a rank, a size, and a sum over all processes in a fixed order. The core never talks to a network; the
/// optional component lowbit::mpi implements this interface on MPI (lowbit/mpi/mpi_group.hpp), and a test may
/// implement it in one process.
///
/// Why a fixed order: float addition is not associative, so a sum "in arrival order" (what MPI_Allreduce may
/// do) changes with timing and with the number of processes. Every implementation adds in the binomial tree
/// over ranks: at level k = 0, 1, ..., rank r with r mod 2^(k+1) == 0 adds the partial of rank r + 2^k to its
/// own (own + other, in that order); rank 0 ends with the total, which every rank then receives. With the
/// batch split into shards in the same tree (nn/batch_shards.hpp), a run on 1 process and on 2 gives the same
/// bits.
///
/// @code
/// void all_sum(lowbit::process_group& g, std::span<float> grad) { g.sum(grad); }  // same bits on every rank
/// @endcode

#include <cstddef>
#include <cstring>
#include <cstdint>
#include <span>

namespace lowbit {

/// @brief The processes of a data-parallel run (see the file comment for the order of every sum).
class process_group {
public:
    virtual ~process_group() = default;

    /// This process's rank, 0 .. size() - 1.
    virtual std::size_t rank() const noexcept = 0;
    /// The number of processes.
    virtual std::size_t size() const noexcept = 0;

    /// v <- the sum over all processes of their v, added in the binomial tree over ranks; on return every
    /// process holds the same bits. Every process must call it with the same length, in the same order of calls.
    /// @throws an exception naming the peer when a peer is unreachable or dead (the implementation's timeout).
    virtual void sum(std::span<float> v) = 0;
    /// The same for doubles (BatchNorm's statistics).
    virtual void sum(std::span<double> v) = 0;
    /// all <- every process's `mine`, rank r's at r * mine.size(), on every process (all holds size() times
    /// mine's bytes). For messages that are not summed on the way (8-bit gradient codes, train::int8_gradients).
    virtual void gather(std::span<std::byte const> mine, std::span<std::byte> all) = 0;

    /// Bytes this process has sent for sums so far (the wire cost of the run's reductions).
    virtual std::uint64_t bytes_sent() const noexcept = 0;
    /// Wall time this process has spent in sums so far, in seconds (waiting for its peers included).
    virtual double sum_seconds() const noexcept = 0;
};

/// @brief The binomial-tree sum of @p parts equal-length partials held in one buffer (part i at i * len), into
/// part 0, in the order process_group documents: the order a group of parts.size() / len processes would use.
template <class T>
void tree_sum(std::span<T> parts, std::size_t len) noexcept
{
    std::size_t const count = len == 0 ? 0 : parts.size() / len;
    for (std::size_t step = 1; step < count; step *= 2)
        for (std::size_t i = 0; i + step < count; i += 2 * step) {
            T* const a = parts.data() + i * len;
            T const* const b = parts.data() + (i + step) * len;
            for (std::size_t k = 0; k < len; ++k) a[k] += b[k];
        }
}

} // namespace lowbit
