// SPDX-License-Identifier: MIT
#pragma once
// Test support: a lowbit::process_group whose "processes" are threads of one test, so that the core's
// data-parallel training is tested without MPI. Each sum waits for every rank, then each rank adds the
// partials in the binomial tree over ranks itself (lowbit::tree_sum), the order process_group promises and
// lowbit::mpi's group uses on the wire.

#include <lowbit/parallel/process_group.hpp>

#include <barrier>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <thread>
#include <vector>

namespace lowbit::test {

class thread_hub {
public:
    explicit thread_hub(std::size_t ranks)
        : ranks_(ranks), sync_(static_cast<std::ptrdiff_t>(ranks)), f_(ranks), d_(ranks), bytes_(ranks)
    {
    }
    std::size_t ranks() const noexcept { return ranks_; }

    void gather(std::size_t rank, std::span<std::byte const> mine, std::span<std::byte> all)
    {
        bytes_[rank].assign(mine.begin(), mine.end());
        sync_.arrive_and_wait();
        for (std::size_t r = 0; r < ranks_; ++r) std::copy(bytes_[r].begin(), bytes_[r].end(), all.data() + r * mine.size());
        sync_.arrive_and_wait();
    }

    template <class T>
    void sum(std::size_t rank, std::span<T> v)
    {
        auto& slots = slots_of<T>();
        slots[rank].assign(v.begin(), v.end());
        sync_.arrive_and_wait();
        std::vector<T> all;
        for (auto const& s : slots) all.insert(all.end(), s.begin(), s.end());
        tree_sum(std::span<T>(all), v.size());
        std::copy_n(all.begin(), v.size(), v.begin());
        sync_.arrive_and_wait();  // nobody refills a slot before every rank has read them all
    }

private:
    template <class T>
    std::vector<std::vector<T>>& slots_of()
    {
        if constexpr (std::is_same_v<T, float>)
            return f_;
        else
            return d_;
    }
    std::size_t ranks_;
    std::barrier<> sync_;
    std::vector<std::vector<float>> f_;
    std::vector<std::vector<double>> d_;
    std::vector<std::vector<std::byte>> bytes_;
};

class thread_group final : public process_group {
public:
    thread_group(thread_hub& hub, std::size_t rank) : hub_(&hub), rank_(rank) {}
    std::size_t rank() const noexcept override { return rank_; }
    std::size_t size() const noexcept override { return hub_->ranks(); }
    void sum(std::span<float> v) override { count(v.size_bytes()); hub_->sum(rank_, v); }
    void sum(std::span<double> v) override { count(v.size_bytes()); hub_->sum(rank_, v); }
    void gather(std::span<std::byte const> mine, std::span<std::byte> all) override
    {
        count(mine.size());
        hub_->gather(rank_, mine, all);
    }
    std::uint64_t bytes_sent() const noexcept override { return bytes_; }
    double sum_seconds() const noexcept override { return 0.0; }  // not measured for threads

private:
    void count(std::size_t b) noexcept { bytes_ += b; }
    thread_hub* hub_;
    std::size_t rank_;
    std::uint64_t bytes_ = 0;
};

/// Runs f(group) on `ranks` threads, one group each, waits for all of them, and rethrows the first rank's
/// exception (a test that expects one makes every rank throw it, as the trainer does, so nobody waits forever).
inline void run_ranks(std::size_t ranks, std::function<void(process_group&)> const& f)
{
    thread_hub hub(ranks);
    std::vector<std::exception_ptr> errors(ranks);
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < ranks; ++r)
        threads.emplace_back([&hub, &f, &errors, r] {
            thread_group g(hub, r);
            try {
                f(g);
            } catch (...) {
                errors[r] = std::current_exception();
            }
        });
    for (auto& t : threads) t.join();
    for (auto const& e : errors)
        if (e) std::rethrow_exception(e);
}

} // namespace lowbit::test
