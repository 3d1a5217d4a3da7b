// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief A small persistent thread pool and `parallel_for`. lowbit does not use OpenMP so that a header-only
/// consumer needs no special compiler flag and gets the same threading everywhere. Kernels split work into
/// static index ranges and every result depends only on the element index (stochastic rounding draws from
/// a counter-based generator), so output is bit-identical for any thread count.
///
/// @code
/// lowbit::set_num_threads(2);          // default: std::thread::hardware_concurrency()
/// lowbit::parallel_for(n, 1 << 16, [&](std::size_t begin, std::size_t end) { /* ... */ });
/// @endcode
///
/// A pool_task_counter shows which threads ran the ranges of every parallel_for call made while it lives, so a
/// test can prove that a workload was large enough to be split (one relaxed atomic increment per range).

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace lowbit {

namespace detail {

/// The index of the calling thread in the pool: w for worker w, 0 for any other thread (the callers).
inline unsigned& pool_thread_index() noexcept
{
    thread_local unsigned index = 0;
    return index;
}

/// Ranges of parallel_for run per pool thread index since the program started. The counters only grow in
/// number (a deque keeps them in place), so a pool_task_counter stays valid across set_num_threads().
class task_counts {
public:
    /// Called only while no kernel runs (thread_pool::resize).
    void reserve(unsigned threads)
    {
        std::lock_guard g(mutex_);
        while (counts_.size() < threads) counts_.emplace_back(0);
    }
    /// One range run on the calling thread; the caller's slot exists (resize reserved it, slot 0 always).
    void count_one() noexcept { counts_[pool_thread_index()].fetch_add(1, std::memory_order_relaxed); }
    std::vector<std::uint64_t> snapshot() const
    {
        std::lock_guard g(mutex_);
        std::vector<std::uint64_t> v;
        v.reserve(counts_.size());
        for (auto const& c : counts_) v.push_back(c.load(std::memory_order_relaxed));
        return v;
    }

private:
    std::deque<std::atomic<std::uint64_t>> counts_ = std::deque<std::atomic<std::uint64_t>>(1);
    mutable std::mutex mutex_;
};

inline task_counts& pool_task_counts()
{
    static task_counts counts;
    return counts;
}

/// The pool: workers wait for a generation number to change, run their share of the current job, and
/// report back. The calling thread takes part, so a pool of n threads has n - 1 workers.
class thread_pool {
public:
    explicit thread_pool(unsigned n) { resize(n); }
    thread_pool(thread_pool const&) = delete;
    thread_pool& operator=(thread_pool const&) = delete;
    ~thread_pool() { stop(); }

    unsigned size() const noexcept { return static_cast<unsigned>(workers_.size()) + 1; }

    void resize(unsigned n)
    {
        n = std::max(1u, n);
        if (n == size() && !workers_.empty()) return;
        pool_task_counts().reserve(n);
        stop();
        stopping_ = false;
        // New workers start at the current generation, so they never run a job that finished before them.
        for (unsigned w = 1; w < n; ++w) workers_.emplace_back([this, w, g = generation_] { work(w, g); });
    }

    /// Runs job(part) for part in [0, parts) with parts <= size(); rethrows the first exception.
    /// A call from inside a job (nested parallelism) runs serially instead of deadlocking, and calls from
    /// several user threads take turns.
    void run(unsigned parts, std::function<void(unsigned)> const& job)
    {
        if (parts <= 1 || workers_.empty() || inside_job()) {
            for (unsigned p = 0; p < parts; ++p) job(p);
            return;
        }
        std::lock_guard turn(run_mutex_);
        inside_job() = true;
        struct reset { ~reset() { inside_job() = false; } } const reset_flag;
        std::unique_lock lock(mutex_);
        job_ = &job;
        parts_ = parts;
        pending_ = parts - 1;
        error_ = nullptr;
        ++generation_;
        lock.unlock();
        wake_.notify_all();
        try {
            job(0);
        } catch (...) {
            record(std::current_exception());
        }
        lock.lock();
        done_.wait(lock, [this] { return pending_ == 0; });
        job_ = nullptr;
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    }

private:
    static bool& inside_job() noexcept
    {
        thread_local bool inside = false;
        return inside;
    }

    void record(std::exception_ptr e)
    {
        std::lock_guard g(error_mutex_);
        if (!error_) error_ = e;
    }

    void work(unsigned id, std::size_t seen)
    {
        inside_job() = true;
        pool_thread_index() = id;
        for (;;) {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) return;
            seen = generation_;
            if (id >= parts_) continue;
            auto const* job = job_;
            lock.unlock();
            try {
                (*job)(id);
            } catch (...) {
                record(std::current_exception());
            }
            lock.lock();
            if (--pending_ == 0) done_.notify_one();
        }
    }

    void stop()
    {
        {
            std::lock_guard g(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }

    std::vector<std::thread> workers_;
    std::mutex run_mutex_, mutex_, error_mutex_;
    std::condition_variable wake_, done_;
    std::function<void(unsigned)> const* job_ = nullptr;
    std::size_t generation_ = 0;
    unsigned parts_ = 0, pending_ = 0;
    bool stopping_ = false;
    std::exception_ptr error_;
};

inline unsigned& requested_threads() noexcept
{
    static unsigned n = std::max(1u, std::thread::hardware_concurrency());
    return n;
}

inline thread_pool& global_pool()
{
    static thread_pool pool(requested_threads());
    return pool;
}

} // namespace detail

/// @brief Sets the number of threads lowbit's kernels use (>= 1). Not to be called while a kernel runs.
inline void set_num_threads(unsigned n)
{
    detail::requested_threads() = std::max(1u, n);
    detail::global_pool().resize(detail::requested_threads());
}

/// @brief The number of threads lowbit's kernels use.
inline unsigned num_threads() noexcept { return detail::requested_threads(); }

/// @brief Counts the parallel_for ranges that each thread of lowbit's pool runs while the counter lives: an
/// observation point for tests and profiling that costs one relaxed atomic increment per range.
///
/// @code
/// lowbit::set_num_threads(2);
/// lowbit::pool_task_counter const counter;
/// trainer.fit(x, y);
/// assert(counter.threads_used() == 2);   // the work was large enough to be split
/// @endcode
class pool_task_counter {
public:
    pool_task_counter() : start_(detail::pool_task_counts().snapshot()) {}

    /// @brief Element t: ranges run by pool thread t since construction, for t < num_threads(). Thread 0 is
    /// the thread that called parallel_for (with several calling threads, all of them), t >= 1 are the
    /// workers. A call below its threading threshold runs as one range on the calling thread.
    std::vector<std::uint64_t> tasks_per_thread() const
    {
        std::vector<std::uint64_t> now = detail::pool_task_counts().snapshot();
        now.resize(std::max<std::size_t>(num_threads(), 1), 0);
        for (std::size_t t = 0; t < now.size() && t < start_.size(); ++t) now[t] -= start_[t];
        return now;
    }

    /// @brief The number of pool threads that ran at least one range since construction.
    unsigned threads_used() const
    {
        std::vector<std::uint64_t> const tasks = tasks_per_thread();
        return static_cast<unsigned>(std::count_if(tasks.begin(), tasks.end(), [](std::uint64_t n) { return n > 0; }));
    }

private:
    std::vector<std::uint64_t> start_;
};

/// @brief Calls f(begin, end) on disjoint ranges covering [0, n), in parallel when n exceeds grain (and more
/// than one thread is set).
/// Ranges are contiguous, at most one per thread, and their bounds are multiples of `grain` (except the
/// last), so callers can rely on alignment of the split points.
template <class F>
void parallel_for(std::size_t n, std::size_t grain, F&& f)
{
    grain = std::max<std::size_t>(grain, 1);
    std::size_t const chunks = (n + grain - 1) / grain;
    auto const parts = static_cast<unsigned>(std::min<std::size_t>(num_threads(), chunks));
    if (parts <= 1) {
        if (n > 0) {
            detail::pool_task_counts().count_one();
            f(std::size_t{0}, n);
        }
        return;
    }
    std::function<void(unsigned)> const job = [&](unsigned p) {
        std::size_t const b = chunks * p / parts * grain;
        std::size_t const e = std::min(n, chunks * (p + 1) / parts * grain);
        if (b < e) {
            detail::pool_task_counts().count_one();
            f(b, e);
        }
    };
    detail::global_pool().run(parts, job);
}

} // namespace lowbit
