// SPDX-License-Identifier: MIT
// The checkpoint container: CRC-32 against known vectors, the byte layout, bit-exact round trips, and one
// test per failure (missing, not a checkpoint, unsupported version, truncated, corrupt, unwritable).
#include <lowbit/io/archive.hpp>
#include <lowbit/io/crc32.hpp>
#include <lowbit/io/io_error.hpp>

#include "../../support/file_size_limit.hpp"
#include "../../support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

using namespace lowbit;

namespace {

std::string read_file(std::filesystem::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(std::filesystem::path const& p, std::string const& bytes)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::uint32_t get_u32(std::string const& s, std::size_t at)
{
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}

std::uint64_t get_u64(std::string const& s, std::size_t at)
{
    return get_u32(s, at) | (std::uint64_t{get_u32(s, at + 4)} << 32);
}

void put_u32(std::string& s, std::size_t at, std::uint32_t v)
{
    for (std::size_t i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
}

/// Rewrites the trailing CRC-32 so that a deliberately edited file is intact again.
void reseal(std::string& s)
{
    put_u32(s, s.size() - 4, io::crc32(std::string_view(s).substr(0, s.size() - 4)));
}

/// The problem of the io_error that loading @p p throws (fails the test when nothing is thrown).
std::string load_problem(std::filesystem::path const& p)
{
    try {
        (void)io::load_archive(p);
    } catch (io::io_error const& e) {
        CHECK(e.file() == p);
        CHECK(std::string(e.what()) == "lowbit: " + p.string() + ": " + e.problem());
        return e.problem();
    }
    FAIL("no io_error for " << p);
    return {};
}

bool contains(std::string const& s, std::string const& part) { return s.find(part) != std::string::npos; }

io::archive sample()
{
    io::archive a;
    a.meta()["model"] = "mlp";
    a.meta()["bits"] = "2";
    a.meta()["note"] = "";
    a.add("layer0.weight", {2, 3}, {1.0f, -2.5f, 0.0f, -0.0f, 3.25e-3f, 1e30f});
    a.add("layer1.batch_norm.running_var", {4}, {1.0f, 2.0f, 3.0f, 4.0f});
    a.add("scalar", {}, {42.0f});
    a.add("empty", {0, 5}, {});
    return a;
}

std::size_t count_files(std::filesystem::path const& dir)
{
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

} // namespace

TEST_CASE("crc32 matches the standard check values")
{
    static_assert(io::crc32("123456789") == 0xCBF43926u);  // the CRC-32 check value (zlib, PNG, gzip)
    CHECK(io::crc32("123456789") == 0xCBF43926u);
    CHECK(io::crc32("") == 0x00000000u);
    CHECK(io::crc32("a") == 0xE8B7BE43u);
    CHECK(io::crc32("The quick brown fox jumps over the lazy dog") == 0x414FA339u);
    std::vector<std::byte> zeros(32, std::byte{0});
    CHECK(io::crc32(zeros) == 0x190A55ADu);
    // Continuing a running checksum gives the checksum of the concatenation.
    CHECK(io::crc32("56789", io::crc32("1234")) == 0xCBF43926u);
}

TEST_CASE("the byte layout of a one-entry archive, field by field")
{
    test::temp_dir dir("archive_layout");
    io::archive a;
    a.meta()["k"] = "vv";
    a.add("w", {2}, {1.0f, -2.0f});
    io::save_archive(dir / "a.lbck", a);
    std::string const s = read_file(dir / "a.lbck");
    // header 28 + meta (4 + 1 + 4 + 2) + table (4 + 1 + 4 + 4 + 8) + payload 8 + checksum 4
    REQUIRE(s.size() == 28 + 11 + 21 + 8 + 4);
    CHECK(s.substr(0, 8) == "LOWBITCK");
    CHECK(get_u32(s, 8) == 1);    // version
    CHECK(get_u32(s, 12) == 1);   // meta count
    CHECK(get_u32(s, 16) == 1);   // entry count
    CHECK(get_u64(s, 20) == s.size());
    CHECK(get_u32(s, 28) == 1);
    CHECK(s.substr(32, 1) == "k");
    CHECK(get_u32(s, 33) == 2);
    CHECK(s.substr(37, 2) == "vv");
    CHECK(get_u32(s, 39) == 1);
    CHECK(s.substr(43, 1) == "w");
    CHECK(get_u32(s, 44) == 1);   // dtype float32
    CHECK(get_u32(s, 48) == 1);   // rank
    CHECK(get_u64(s, 52) == 2);   // dim 0
    CHECK(get_u32(s, 60) == std::bit_cast<std::uint32_t>(1.0f));
    CHECK(get_u32(s, 64) == std::bit_cast<std::uint32_t>(-2.0f));
    CHECK(get_u32(s, 68) == io::crc32(std::string_view(s).substr(0, 68)));
    // The same archive always gives the same bytes.
    CHECK(io::archive_bytes(a).size() == s.size());
}

TEST_CASE("an archive round-trips bit for bit, metadata included")
{
    test::temp_dir dir("archive_roundtrip");
    io::archive a = sample();
    std::vector<float> specials = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                                   std::bit_cast<float>(0x7FC01234u), -0.0f};
    a.add("specials", {3, 2}, specials);
    io::save_archive(dir / "a.lbck", a);
    io::archive const b = io::load_archive(dir / "a.lbck");
    CHECK(b.source() == dir / "a.lbck");
    CHECK(b.meta() == a.meta());
    REQUIRE(b.entries().size() == a.entries().size());
    for (std::size_t i = 0; i < a.entries().size(); ++i) {
        auto const& x = a.entries()[i];
        auto const& y = b.entries()[i];
        CHECK(x.name == y.name);
        CHECK(x.shape == y.shape);
        REQUIRE(x.values.size() == y.values.size());
        for (std::size_t k = 0; k < x.values.size(); ++k)
            CHECK(std::bit_cast<std::uint32_t>(x.values[k]) == std::bit_cast<std::uint32_t>(y.values[k]));
    }
    CHECK(b.find("scalar")->values == std::vector<float>{42.0f});
    CHECK(b.values("layer0.weight", std::vector<std::size_t>{2, 3})[1] == -2.5f);
    // Saving the loaded archive again gives the same file.
    io::save_archive(dir / "b.lbck", b);
    CHECK(read_file(dir / "a.lbck") == read_file(dir / "b.lbck"));
}

TEST_CASE("archive::add rejects what the format cannot hold")
{
    io::archive a;
    a.add("w", {2}, {1.0f, 2.0f});
    CHECK_THROWS_WITH_AS(a.add("w", {1}, {1.0f}), doctest::Contains("duplicate entry 'w'"), invalid_input);
    CHECK_THROWS_WITH_AS(a.add("", {1}, {1.0f}), doctest::Contains("empty"), invalid_input);
    CHECK_THROWS_WITH_AS(a.add("v", {2, 2}, {1.0f}), doctest::Contains("shape [2, 2] but 1 values"), invalid_input);
    CHECK(a.entries().size() == 1);
}

TEST_CASE("values() names the file, a missing entry, and both shapes of a mismatch")
{
    test::temp_dir dir("archive_values");
    io::save_archive(dir / "a.lbck", sample());
    io::archive const a = io::load_archive(dir / "a.lbck");
    try {
        (void)a.values("layer9.weight", std::vector<std::size_t>{1});
        FAIL("no error");
    } catch (io::io_error const& e) {
        CHECK(e.file() == dir / "a.lbck");
        CHECK(contains(e.problem(), "missing entry 'layer9.weight'"));
        CHECK(contains(e.problem(), "'layer0.weight'"));  // lists what the file has
    }
    try {
        (void)a.values("layer0.weight", std::vector<std::size_t>{3, 2});
        FAIL("no error");
    } catch (io::io_error const& e) {
        CHECK(e.problem() == "shape mismatch for entry 'layer0.weight': the file has [2, 3], expected [3, 2]");
    }
}

TEST_CASE("a missing file, a directory, and a file that is not a checkpoint")
{
    test::temp_dir dir("archive_missing");
    CHECK(load_problem(dir / "nope.lbck") == "file not found");
    CHECK(load_problem(dir.path()) == "not a regular file");
    write_file(dir / "text.lbck", "hello, this is not a checkpoint at all");
    std::string const p = load_problem(dir / "text.lbck");
    CHECK(contains(p, "not a lowbit checkpoint"));
    CHECK(contains(p, "\"hello, t\""));
    write_file(dir / "short.lbck", "LOX");
    CHECK(contains(load_problem(dir / "short.lbck"), "not a lowbit checkpoint"));
}

TEST_CASE("an unsupported version says which versions are read")
{
    test::temp_dir dir("archive_version");
    io::save_archive(dir / "a.lbck", sample());
    std::string s = read_file(dir / "a.lbck");
    put_u32(s, 8, 3);
    reseal(s);  // an intact file of a newer version
    write_file(dir / "v3.lbck", s);
    std::string p = load_problem(dir / "v3.lbck");
    CHECK(contains(p, "unsupported format version 3"));
    CHECK(contains(p, "reads format versions 1 to 2"));
    CHECK(contains(p, "newer lowbit"));
    put_u32(s, 8, 0);
    reseal(s);
    write_file(dir / "v0.lbck", s);
    p = load_problem(dir / "v0.lbck");
    CHECK(contains(p, "unsupported format version 0"));
    CHECK(!contains(p, "newer"));
}

TEST_CASE("a truncated file says how many bytes were expected and where it ends")
{
    test::temp_dir dir("archive_truncated");
    io::save_archive(dir / "a.lbck", sample());
    std::string const s = read_file(dir / "a.lbck");
    std::size_t const n = s.size();
    std::size_t const payload = 4 * (6 + 4 + 1);
    struct cut {
        std::size_t size;
        char const* expect;
    };
    std::vector<cut> const cuts = {
        {0, "truncated: the file is empty"},
        {5, "truncated: expected at least 28 bytes (the header), got 5"},
        {20, "truncated: expected at least 28 bytes (the header), got 20"},
        {30, "(the file ends in the metadata)"},
        {60, "(the file ends in the metadata)"},
        {n - 4 - payload - 10, "(the file ends in the entry table)"},
        {n - 4 - payload + 3, "(the file ends in the payloads)"},
        {n - 5, "(the file ends in the payloads)"},
        {n - 4, "(the file ends in the checksum)"},
        {n - 1, "(the file ends in the checksum)"},
    };
    for (cut const& c : cuts) {
        CAPTURE(c.size);
        write_file(dir / "t.lbck", s.substr(0, c.size));
        std::string const p = load_problem(dir / "t.lbck");
        CHECK(contains(p, c.expect));
        if (c.size >= 28)
            CHECK(contains(p, "truncated: expected " + std::to_string(n) + " bytes, got " + std::to_string(c.size)));
    }
}

TEST_CASE("any single damaged byte is a checksum mismatch (or, in the magic, not a checkpoint)")
{
    test::temp_dir dir("archive_flip");
    io::save_archive(dir / "a.lbck", sample());
    std::string const s = read_file(dir / "a.lbck");
    for (std::size_t i = 0; i < s.size(); ++i) {
        for (unsigned char const mask : {0x01, 0x80, 0xFF}) {
            CAPTURE(i);
            CAPTURE(static_cast<int>(mask));
            std::string t = s;
            t[i] = static_cast<char>(static_cast<unsigned char>(t[i]) ^ mask);
            write_file(dir / "f.lbck", t);
            std::string const p = load_problem(dir / "f.lbck");
            if (i < 8)
                CHECK(contains(p, "not a lowbit checkpoint"));
            else
                CHECK(p.starts_with("checksum mismatch: the file is corrupt"));
        }
    }
    std::string t = s + "xyz";
    write_file(dir / "g.lbck", t);
    CHECK(contains(load_problem(dir / "g.lbck"), "3 unexpected bytes at the end"));
}

TEST_CASE("saving replaces a checkpoint only once the new one is written")
{
    test::temp_dir dir("archive_save");
    io::archive a = sample();
    io::save_archive(dir / "a.lbck", a);
    io::archive b;
    b.add("other", {1}, {7.0f});
    io::save_archive(dir / "a.lbck", b);
    CHECK(io::load_archive(dir / "a.lbck").entries().size() == 1);
    CHECK(count_files(dir.path()) == 1);  // no temporary file left behind

    SUBCASE("into a directory that does not exist")
    {
        CHECK_THROWS_WITH_AS(io::save_archive(dir / "missing" / "a.lbck", a), doctest::Contains("does not exist"),
                             io::io_error);
    }
    SUBCASE("below a regular file")
    {
        CHECK_THROWS_WITH_AS(io::save_archive(dir / "a.lbck" / "x.lbck", a), doctest::Contains("is not a directory"),
                             io::io_error);
        CHECK(io::load_archive(dir / "a.lbck").entries().size() == 1);
    }
    SUBCASE("over a directory: the rename fails and the temporary file is removed")
    {
        std::filesystem::create_directories(dir / "taken" / "inside");
        try {
            io::save_archive(dir / "taken", a);
            FAIL("no error");
        } catch (io::io_error const& e) {
            CHECK(e.file() == dir / "taken");
            CHECK(contains(e.problem(), "cannot replace"));
        }
        CHECK(std::filesystem::is_directory(dir / "taken" / "inside"));
        CHECK(count_files(dir.path()) == 2);
    }
    SUBCASE("with a name as long as file systems allow")
    {
        std::filesystem::path const target = dir / std::string(255, 'c');
        io::save_archive(target, a);
        CHECK(io::load_archive(target).entries().size() == a.entries().size());
        CHECK(count_files(dir.path()) == 2);
    }
#if LOWBIT_TEST_FILE_SIZE_LIMIT
    SUBCASE("when writing fails half-way: an error, and the existing file untouched")
    {
        // A file size limit makes the write fail even for root (who ignores directory permissions).
        io::save_archive(dir / "a.lbck", a);
        std::string const before = read_file(dir / "a.lbck");
        io::archive big;
        big.add("big", {4096}, std::vector<float>(4096, 1.0f));
        {
            test::file_size_limit const limit(1024);
            try {
                io::save_archive(dir / "a.lbck", big);
                FAIL("no error");
            } catch (io::io_error const& e) {
                CHECK(e.file() == dir / "a.lbck");
                CHECK(contains(e.problem(), "cannot write"));
            }
        }
        CHECK(read_file(dir / "a.lbck") == before);
        CHECK(count_files(dir.path()) == 1);  // the temporary file was removed
    }
#endif
    SUBCASE("into an unwritable directory: an error, and the existing file untouched")
    {
        std::filesystem::create_directories(dir / "ro");
        io::save_archive(dir / "ro" / "a.lbck", a);
        std::string const before = read_file(dir / "ro" / "a.lbck");
        std::filesystem::permissions(dir / "ro", std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
        bool const privileged = std::ofstream(dir / "ro" / "probe").good();  // root ignores the permissions
        if (privileged) {
            std::filesystem::remove(dir / "ro" / "probe");
            MESSAGE("running with privileges that ignore directory permissions; the unwritable case is not tested");
        } else {
            try {
                io::save_archive(dir / "ro" / "a.lbck", b);
                FAIL("no error");
            } catch (io::io_error const& e) {
                CHECK(e.file() == dir / "ro" / "a.lbck");
                CHECK(contains(e.problem(), "cannot create the temporary file"));
            }
            CHECK(read_file(dir / "ro" / "a.lbck") == before);
            CHECK(count_files(dir / "ro") == 1);
        }
        std::filesystem::permissions(dir / "ro", std::filesystem::perms::owner_all);
    }
}

// ---- Format version 2: integer element types (packed inference models, docs/deploy.md) ----

namespace {

io::archive integer_sample()
{
    io::archive a;
    a.meta()["format"] = "test";
    a.add("f", {2}, {1.5f, -2.0f});
    a.add("u8", {3}, std::vector<std::uint8_t>{0, 1, 255});
    a.add("i8", {2, 2}, std::vector<std::int8_t>{-128, -1, 0, 127});
    a.add("i32", {3}, std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), -7,
                                                 std::numeric_limits<std::int32_t>::max()});
    a.add("u64", {2}, std::vector<std::uint64_t>{0x0123456789ABCDEFull, ~0ull});
    a.add("none", {0}, std::vector<std::uint64_t>{});
    return a;
}

} // namespace

TEST_CASE("float-only archives stay format version 1, an archive with an integer entry is version 2")
{
    io::archive a;
    a.add("w", {1}, {1.0f});
    CHECK(get_u32(std::string(reinterpret_cast<char const*>(io::archive_bytes(a).data()), 32), 8) == 1);
    std::vector<std::byte> const b = io::archive_bytes(integer_sample());
    std::string const s(reinterpret_cast<char const*>(b.data()), b.size());
    CHECK(get_u32(s, 8) == 2);
    static_assert(io::archive_version == 2 && io::archive_oldest_version == 1);
}

TEST_CASE("the byte layout of an integer entry")
{
    io::archive a;
    a.add("q", {3}, std::vector<std::int32_t>{1, -2, 0x01020304});
    std::vector<std::byte> const b = io::archive_bytes(a);
    std::string const s(reinterpret_cast<char const*>(b.data()), b.size());
    // header 28 + table (4 + 1 + 4 + 4 + 8) + payload 12 + checksum 4
    REQUIRE(s.size() == 28 + 21 + 12 + 4);
    CHECK(get_u32(s, 8) == 2);
    CHECK(get_u32(s, 33) == 4);  // dtype int32
    CHECK(get_u32(s, 37) == 1);  // rank
    CHECK(get_u64(s, 41) == 3);
    CHECK(get_u32(s, 49) == 1);
    CHECK(get_u32(s, 53) == 0xFFFFFFFEu);  // -2, two's complement little-endian
    CHECK(s.substr(57, 4) == std::string("\x04\x03\x02\x01", 4));
    CHECK(get_u32(s, 61) == io::crc32(std::string_view(s).substr(0, 61)));
}

TEST_CASE("integer entries round-trip bit for bit, and are read back only as their own type")
{
    test::temp_dir dir("archive_integers");
    io::archive const a = integer_sample();
    io::save_archive(dir / "a.lbck", a);
    io::archive const b = io::load_archive(dir / "a.lbck");
    CHECK(b.meta() == a.meta());
    REQUIRE(b.entries().size() == a.entries().size());
    for (std::size_t i = 0; i < a.entries().size(); ++i) {
        CHECK(a.entries()[i].name == b.entries()[i].name);
        CHECK(a.entries()[i].dtype == b.entries()[i].dtype);
        CHECK(a.entries()[i].data == b.entries()[i].data);
    }
    using shape = std::vector<std::size_t>;
    CHECK(b.integers<std::uint8_t>("u8", shape{3}) == std::vector<std::uint8_t>{0, 1, 255});
    CHECK(b.integers<std::int8_t>("i8", shape{2, 2}) == std::vector<std::int8_t>{-128, -1, 0, 127});
    CHECK(b.integers<std::int32_t>("i32", shape{3}) ==
          std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), -7, std::numeric_limits<std::int32_t>::max()});
    CHECK(b.integers<std::uint64_t>("u64", shape{2}) == std::vector<std::uint64_t>{0x0123456789ABCDEFull, ~0ull});
    CHECK(b.integers<std::uint64_t>("none", shape{0}).empty());
    CHECK(b.values("f", shape{2})[1] == -2.0f);
    try {
        (void)b.values("i32", shape{3});
        FAIL("no error");
    } catch (io::io_error const& e) {
        CHECK(e.file() == dir / "a.lbck");
        CHECK(e.problem() == "element type mismatch for entry 'i32': the file has int32, expected float32");
    }
    CHECK_THROWS_WITH_AS((void)b.integers<std::uint64_t>("f", shape{2}),
                         doctest::Contains("the file has float32, expected uint64"), io::io_error);
    CHECK_THROWS_WITH_AS((void)b.integers<std::int8_t>("u8", shape{3}),
                         doctest::Contains("the file has uint8, expected int8"), io::io_error);
    CHECK_THROWS_WITH_AS((void)b.integers<std::uint8_t>("u8", shape{4}), doctest::Contains("shape mismatch"), io::io_error);
    CHECK_THROWS_WITH_AS((void)b.integers<std::uint8_t>("x", shape{1}), doctest::Contains("missing entry 'x'"), io::io_error);
    CHECK_THROWS_WITH_AS(io::archive{}.add("v", {2}, std::vector<std::int32_t>{1}), doctest::Contains("shape [2] but 1 values"),
                         invalid_input);
    // Saving the loaded archive again gives the same file.
    io::save_archive(dir / "b.lbck", b);
    CHECK(read_file(dir / "a.lbck") == read_file(dir / "b.lbck"));
}

TEST_CASE("a version-2 file: truncation, damage, and an integer type in a version-1 file")
{
    test::temp_dir dir("archive_v2_errors");
    io::save_archive(dir / "a.lbck", integer_sample());
    std::string const s = read_file(dir / "a.lbck");
    write_file(dir / "t.lbck", s.substr(0, s.size() - 9));
    CHECK(contains(load_problem(dir / "t.lbck"), "truncated: expected " + std::to_string(s.size()) + " bytes"));
    for (std::size_t i = 8; i < s.size(); i += 7) {
        CAPTURE(i);
        std::string t = s;
        t[i] = static_cast<char>(t[i] ^ 0x10);
        write_file(dir / "f.lbck", t);
        CHECK(load_problem(dir / "f.lbck").starts_with("checksum mismatch: the file is corrupt"));
    }
    // The same bytes relabelled as version 1 (and resealed): version 1 has no integer element types.
    std::string v1 = s;
    put_u32(v1, 8, 1);
    reseal(v1);
    write_file(dir / "v1.lbck", v1);
    CHECK(contains(load_problem(dir / "v1.lbck"), "corrupt: entry 'u8' has unknown element type code 2 for format version 1"));
}
