// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::mpi::mpi_group: a lowbit::process_group on MPI (the optional component lowbit::mpi,
/// `find_package(lowbit COMPONENTS mpi)`, target `lowbit::mpi`). The core stays MPI-free; this header is the
/// only one that includes <mpi.h>.
///
/// Sums go in the binomial tree that process_group documents, with point-to-point messages rather than
/// MPI_Allreduce, whose order of additions is the MPI library's choice (and may follow arrival order): a
/// reduction to rank 0 (rank r adds the partial of rank r + 2^k to its own), then a broadcast down the same
/// tree. Every process ends with the same bits, and a run on 2 processes has the bits of 1 process with 2
/// shards (nn/batch_shards.hpp).
///
/// Faults: the group works on its own duplicate of the communicator with MPI_ERRORS_RETURN, and waits for each
/// message for at most `timeout`. A peer that died, hangs or cannot be reached ends the wait with
/// lowbit::mpi::peer_error naming both ranks, on every process that waits for it (Open MPI's mpirun also ends the
/// job when a process exits early).
///
/// @code
/// lowbit::mpi::environment env(argc, argv);          // MPI_Init_thread / MPI_Finalize (mpi/environment.hpp)
/// lowbit::mpi::mpi_group group(MPI_COMM_WORLD, {.timeout = std::chrono::seconds(60)});
/// trainer.fit(images, labels, {.batch = 100, .seed = 1, .group = &group});
/// @endcode

#include <lowbit/mpi/peer_error.hpp>
#include <lowbit/parallel/process_group.hpp>

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace lowbit::mpi {

/// @brief Options of an mpi_group.
struct group_options {
    /// How long one message may take before its peer counts as dead or unreachable.
    std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

namespace detail {
template <class T> MPI_Datatype datatype();
template <> inline MPI_Datatype datatype<float>() { return MPI_FLOAT; }
template <> inline MPI_Datatype datatype<double>() { return MPI_DOUBLE; }
template <> inline MPI_Datatype datatype<std::byte>() { return MPI_BYTE; }

inline std::string error_text(int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
    return std::string(text, static_cast<std::size_t>(len));
}
} // namespace detail

/// @brief The processes of an MPI communicator as a lowbit::process_group (see the file comment).
class mpi_group final : public process_group {
public:
    explicit mpi_group(MPI_Comm comm = MPI_COMM_WORLD, group_options o = {}) : opts_(o)
    {
        if (o.timeout.count() <= 0) throw std::invalid_argument("lowbit::mpi::mpi_group: timeout must be positive");
        check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
        check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        int r = 0, n = 0;
        check(MPI_Comm_rank(comm_, &r), "MPI_Comm_rank");
        check(MPI_Comm_size(comm_, &n), "MPI_Comm_size");
        rank_ = static_cast<std::size_t>(r);
        size_ = static_cast<std::size_t>(n);
    }
    mpi_group(mpi_group const&) = delete;
    mpi_group& operator=(mpi_group const&) = delete;
    ~mpi_group() override
    {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(&comm_);
    }

    std::size_t rank() const noexcept override { return rank_; }
    std::size_t size() const noexcept override { return size_; }
    std::uint64_t bytes_sent() const noexcept override { return bytes_; }
    double sum_seconds() const noexcept override { return seconds_; }
    MPI_Comm communicator() const noexcept { return comm_; }

    void sum(std::span<float> v) override { tree_sum_and_share(v); }
    void sum(std::span<double> v) override { tree_sum_and_share(v); }

    /// Every process's bytes on every process: a gather up the binomial tree to rank 0 (each message holds a
    /// subtree's blocks), then a broadcast of the whole down the same tree.
    void gather(std::span<std::byte const> mine, std::span<std::byte> all) override
    {
        std::size_t const n = mine.size(), r = rank_;
        if (all.size() != n * size_)
            throw std::invalid_argument("lowbit::mpi::mpi_group::gather: all must hold size() times mine's bytes");
        std::copy(mine.begin(), mine.end(), all.data() + r * n);
        if (size_ == 1 || n == 0) return;
        if (all.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
            throw std::invalid_argument("lowbit::mpi::mpi_group: a gather of more than 2^31 - 1 bytes");
        clock_in const timing{&seconds_};
        auto blocks = [&](std::size_t first, std::size_t count) {  // ranks [first, first + count) that exist
            return static_cast<int>((std::min(first + count, size_) - first) * n);
        };
        for (std::size_t step = 1; step < size_; step *= 2) {
            if (r % (2 * step) == 0) {
                if (r + step < size_) receive(all.data() + (r + step) * n, blocks(r + step, step), r + step, "gather");
            } else {
                send(all.data() + r * n, blocks(r, step), r - step, "gather");
                break;
            }
        }
        broadcast(all.data(), static_cast<int>(all.size()), "gathered");
    }

    /// Waits until every process gets here (with the timeout).
    void barrier()
    {
        MPI_Request req{};
        check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
        wait(req, -1, "in", "a barrier", -1);
    }

private:
    /// Adds the time until the end of its scope to *total (sum_seconds()), also when a wait throws.
    struct clock_in {
        double* total;
        std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
        ~clock_in() { *total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
    };

    template <class T>
    void tree_sum_and_share(std::span<T> v)
    {
        if (size_ == 1 || v.empty()) return;
        if (v.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
            throw std::invalid_argument("lowbit::mpi::mpi_group: a sum of more than 2^31 - 1 values");
        clock_in const timing{&seconds_};
        int const n = static_cast<int>(v.size());
        std::size_t const r = rank_;
        // Reduce to rank 0: rank r receives from r + step while r is a multiple of 2 step, else sends and stops.
        auto& buffer = buffer_of<T>();
        buffer.resize(v.size());
        T* const other = buffer.data();
        std::size_t step = 1;
        for (; step < size_; step *= 2) {
            if (r % (2 * step) == 0) {
                if (r + step >= size_) continue;
                receive(other, n, r + step, "partial sum");
                for (std::size_t k = 0; k < v.size(); ++k) v[k] += other[k];
            } else {
                send(v.data(), n, r - step, "partial sum");
                break;
            }
        }
        broadcast(v.data(), n, "sum");
    }

    /// Rank 0's data to every rank, down the binomial tree, largest step first: rank r receives at its lowest
    /// set bit, then sends on.
    template <class T>
    void broadcast(T* data, int n, char const* what)
    {
        std::size_t const r = rank_;
        std::size_t top = 1;
        while (top * 2 < size_) top *= 2;
        for (std::size_t s = top; s >= 1; s /= 2) {
            if (r % (2 * s) == 0) {
                if (r + s < size_) send(data, n, r + s, what);
            } else if (r % (2 * s) == s) {
                receive(data, n, r - s, what);
            }
            if (s == 1) break;
        }
    }

    template <class T>
    void send(T const* data, int n, std::size_t peer, char const* what)
    {
        MPI_Request req{};
        check(MPI_Isend(data, n, detail::datatype<T>(), static_cast<int>(peer), tag, comm_, &req), "MPI_Isend");
        wait(req, static_cast<int>(peer), "sending a", what, n);
        bytes_ += static_cast<std::uint64_t>(n) * sizeof(T);
    }
    template <class T>
    void receive(T* data, int n, std::size_t peer, char const* what)
    {
        MPI_Request req{};
        check(MPI_Irecv(data, n, detail::datatype<T>(), static_cast<int>(peer), tag, comm_, &req), "MPI_Irecv");
        wait(req, static_cast<int>(peer), "receiving a", what, n);
    }

    /// Polls the request until it completes or the timeout passes (then cancels it and throws peer_error, saying
    /// "while <doing> <what> of <n> values"; no count for n < 0). The message is built only then: this waits for
    /// every message of every step.
    void wait(MPI_Request& req, int peer, char const* doing, char const* what, int n)
    {
        auto const start = std::chrono::steady_clock::now();
        auto const deadline = start + opts_.timeout;
        for (unsigned spins = 0;; ++spins) {
            int done = 0;
            MPI_Status st{};
            check(MPI_Test(&req, &done, &st), "MPI_Test");
            if (done) return;
            // Spin for the first polls (a sum between two cores answers in microseconds), then back off.
            if (spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(50));
            if (spins % 64 == 0 && std::chrono::steady_clock::now() > deadline) {
                MPI_Cancel(&req);
                MPI_Request_free(&req);
                char secs[32];
                std::snprintf(secs, sizeof secs, "%g", std::chrono::duration<double>(opts_.timeout).count());
                throw peer_error("lowbit::mpi: rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
                                 ": no answer from " + (peer >= 0 ? "rank " + std::to_string(peer) : "every rank") +
                                 " within " + secs + " s while " + doing + " " + what +
                                 (n >= 0 ? " of " + std::to_string(n) + " values" : std::string()) +
                                 ": the peer is dead, hung or unreachable");
            }
        }
    }

    void check(int code, char const* call) const
    {
        if (code != MPI_SUCCESS)
            throw peer_error("lowbit::mpi: rank " + std::to_string(rank_) + ": " + call + " failed: " +
                             detail::error_text(code));
    }

    static constexpr int tag = 0x10b;
    group_options opts_;
    MPI_Comm comm_ = MPI_COMM_NULL;
    std::size_t rank_ = 0, size_ = 1;
    std::uint64_t bytes_ = 0;
    double seconds_ = 0.0;
    std::vector<float> floats_;
    std::vector<double> doubles_;

    template <class T>
    std::vector<T>& buffer_of() noexcept
    {
        if constexpr (std::is_same_v<T, float>)
            return floats_;
        else
            return doubles_;
    }
};

} // namespace lowbit::mpi
