// SPDX-License-Identifier: MIT
#include <lowbit/parallel/parallel_for.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <vector>

using namespace lowbit;

TEST_CASE("parallel_for covers every index exactly once with grain-aligned splits")
{
    unsigned const before = num_threads();
    for (unsigned threads : {1u, 2u, 3u}) {
        set_num_threads(threads);
        CHECK(num_threads() == threads);
        for (std::size_t n : {0u, 1u, 100u, 1000u, 12345u}) {
            std::vector<std::atomic<int>> hits(n);
            parallel_for(n, 64, [&](std::size_t b, std::size_t e) {
                CHECK(b % 64 == 0);
                for (std::size_t i = b; i < e; ++i) ++hits[i];
            });
            for (auto const& h : hits) REQUIRE(h == 1);
        }
    }
    set_num_threads(before);
}

TEST_CASE("exceptions propagate to the caller and nested calls run serially")
{
    unsigned const before = num_threads();
    set_num_threads(2);
    CHECK_THROWS_WITH_AS(parallel_for(1000, 10,
                                      [](std::size_t b, std::size_t) {
                                          if (b != 0) throw std::runtime_error("boom");
                                      }),
                         "boom", std::runtime_error);
    std::atomic<int> inner{0};
    parallel_for(100, 10, [&](std::size_t, std::size_t) { parallel_for(10, 1, [&](std::size_t b, std::size_t e) { inner += static_cast<int>(e - b); }); });
    CHECK(inner == 20);
    set_num_threads(before);
}

TEST_CASE("pool_task_counter sees which threads ran the ranges")
{
    unsigned const before = num_threads();
    auto noop = [](std::size_t, std::size_t) {};
    set_num_threads(1);
    {
        pool_task_counter const counter;
        parallel_for(1000, 10, noop);
        CHECK(counter.tasks_per_thread() == std::vector<std::uint64_t>{1});
        CHECK(counter.threads_used() == 1);
    }
    set_num_threads(2);
    {
        pool_task_counter const counter;
        parallel_for(10, 10, noop);  // one grain: one range, on the calling thread
        CHECK(counter.tasks_per_thread() == std::vector<std::uint64_t>{1, 0});
        parallel_for(11, 10, noop);
        CHECK(counter.tasks_per_thread() == std::vector<std::uint64_t>{2, 1});
        // A nested call runs serially on the thread that makes it: two ranges inside each of the outer two.
        parallel_for(20, 10, [&](std::size_t, std::size_t) { parallel_for(30, 10, noop); });
        CHECK(counter.tasks_per_thread() == std::vector<std::uint64_t>{5, 4});
        CHECK(counter.threads_used() == 2);
        pool_task_counter const later;
        CHECK(later.tasks_per_thread() == std::vector<std::uint64_t>{0, 0});
        CHECK(later.threads_used() == 0);
    }
    set_num_threads(before);
}
