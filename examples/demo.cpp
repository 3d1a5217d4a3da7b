// SPDX-License-Identifier: MIT
// lowbit-demo: quantizes a real Fashion-MNIST batch at several bit widths and rounding modes and prints,
// for each, the quantization error, the bias (mean error: stochastic rounding is unbiased, floor is not)
// and the compression against float32.
//
// Usage: lowbit-demo [DATA_DIR [BATCH]]   (defaults: the Debian dataset folder, 256 images)
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/lowbit.hpp>

#include <xtensor/xview.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace {

struct row {
    double rmse, max_err, bias;
    std::size_t bytes;
};

/// Quantizes the batch with Q (pixels are in [0, 1]: unsigned grid with the fixed bound 1) and measures it.
template <lowbit::Quantizer Q>
row measure(xt::xtensor<float, 2> const& batch)
{
    Q const q{.clipping = {.bound = 1.0f}};
    auto const packed = lowbit::quantize(batch, q, {.key = {.seed = 1}});
    xt::xarray<float> const back = lowbit::dequantize(packed);
    double sq = 0.0, mx = 0.0, sum = 0.0;
    auto const* a = batch.data();
    auto const* b = back.data();
    for (std::size_t i = 0; i < batch.size(); ++i) {
        double const e = static_cast<double>(b[i]) - a[i];
        sq += e * e;
        sum += e;
        mx = std::max(mx, std::abs(e));
    }
    auto const n = static_cast<double>(batch.size());
    return {std::sqrt(sq / n), mx, sum / n, packed.memory_bytes()};
}

template <int Bits, class Rounding>
using pixel_q = lowbit::quantizer<Bits, Rounding, lowbit::clip::fixed_range, lowbit::grid::unsigned_int>;

template <int Bits, class Rounding>
void print_row(char const* mode, xt::xtensor<float, 2> const& batch)
{
    row const r = measure<pixel_q<Bits, Rounding>>(batch);
    double const float_bytes = static_cast<double>(batch.size() * sizeof(float));
    std::printf("%4d  %-13s %9.5f %9.5f %+10.6f %10zu %8.1fx\n", Bits, mode, r.rmse, r.max_err, r.bias, r.bytes,
                float_bytes / static_cast<double>(r.bytes));
}

template <int Bits>
void print_bits(xt::xtensor<float, 2> const& batch)
{
    print_row<Bits, lowbit::nearest_even_t>("nearest_even", batch);
    print_row<Bits, lowbit::floor_t>("floor", batch);
    print_row<Bits, lowbit::stochastic_t>("stochastic", batch);
}

} // namespace

int main(int argc, char** argv)
{
    try {
        std::string const dir = argc > 1 ? argv[1] : LOWBIT_FASHION_MNIST_DIR;
        std::size_t const batch_size = argc > 2 ? std::stoul(argv[2]) : 256;
        auto const test = lowbit::data::load_fashion_mnist(lowbit::data::split::test, dir);
        if (batch_size == 0 || batch_size > test.images.shape(0)) {
            std::fprintf(stderr, "lowbit-demo: BATCH must be 1..%zu\n", test.images.shape(0));
            return 2;
        }
        xt::xtensor<float, 2> const batch = xt::view(test.images, xt::range(0, batch_size), xt::all());
        std::printf("lowbit %d.%d.%d demo: %zu Fashion-MNIST test images (%zu x %zu pixels in [0, 1]), %zu bytes "
                    "as float32\n\n",
                    LOWBIT_VERSION_MAJOR, LOWBIT_VERSION_MINOR, LOWBIT_VERSION_PATCH, batch_size, test.rows, test.cols,
                    batch.size() * sizeof(float));
        std::printf("bits  rounding          rmse   max err   mean err      bytes  vs float\n");
        print_bits<1>(batch);
        print_bits<2>(batch);
        print_bits<4>(batch);
        print_bits<8>(batch);
        std::printf("\nGrid: unsigned, 2^b levels over [0, 1]. Nearest error <= step/2; stochastic rounding has "
                    "a larger rmse but a mean error ~0 (unbiased), floor is biased by ~ -step/2.\n"
                    "Bytes: packed codes + step + shape, as held by lowbit::qtensor.\n");
        return 0;
    } catch (std::exception const& e) {
        std::fprintf(stderr, "lowbit-demo: %s\n", e.what());
        return 1;
    }
}
