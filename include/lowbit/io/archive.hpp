// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief io::archive: named tensors (float32, or the integers uint8, int8, int32, uint64) plus key/value
/// metadata, and save_archive / load_archive, which write and read them as a lowbit checkpoint file:
/// versioned, little-endian, ending with a CRC-32. The byte layout, the versioning policy and every error
/// message are in docs/formats.md; the integer element types of format version 2 in docs/deploy.md.
///
/// save_archive writes the oldest format version that holds the archive: version 1 when every entry is
/// float32 (training checkpoints: the same bytes as before version 2 existed, so every lowbit reads them),
/// version 2 when an entry is an integer tensor (packed inference models, deploy/packed_file.hpp).
///
/// Saving writes a temporary file next to the target and renames it over the target, so a failed save
/// leaves an existing checkpoint as it was. Loading checks everything before it returns: a missing file, a
/// file that is not a checkpoint, an unsupported version, truncation, corruption (checksum) are each an
/// io_error naming the file and the problem; so are a missing entry and a shape mismatch when the caller
/// asks for a tensor with values(name, shape).
///
/// @code
/// lowbit::io::archive a;
/// a.meta()["model"] = "mlp";
/// a.add("layer0.weight", {2, 3}, {1, 2, 3, 4, 5, 6});
/// lowbit::io::save_archive("run/fp.lbck", a);
/// lowbit::io::archive const b = lowbit::io::load_archive("run/fp.lbck");
/// std::span<float const> w = b.values("layer0.weight", std::vector<std::size_t>{2, 3});
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/io/crc32.hpp>
#include <lowbit/io/io_error.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit::io {

/// @brief The first 8 bytes of every lowbit checkpoint.
inline constexpr std::array<char, 8> archive_magic = {'L', 'O', 'W', 'B', 'I', 'T', 'C', 'K'};
/// @brief The newest format version, which load_archive reads and save_archive writes for an archive with an
/// integer entry. Version 2 is version 1 plus the integer element types.
inline constexpr std::uint32_t archive_version = 2;
/// @brief The oldest format version load_archive reads (it reads every version from this one to
/// archive_version); save_archive writes it for an archive of float32 entries only.
inline constexpr std::uint32_t archive_oldest_version = 1;
/// @brief The largest rank an entry may have.
inline constexpr std::size_t archive_max_rank = 32;

/// @brief Element type codes of the entry table. Version 1 stores float32 only; version 2 adds the integer
/// types (little-endian, two's complement for the signed ones). A new type is a new version.
enum class archive_dtype : std::uint32_t { float32 = 1, uint8 = 2, int8 = 3, int32 = 4, uint64 = 5 };

/// @brief The integer element types an archive stores (format version 2).
template <class T>
concept ArchiveInteger = std::same_as<T, std::uint8_t> || std::same_as<T, std::int8_t> ||
                         std::same_as<T, std::int32_t> || std::same_as<T, std::uint64_t>;

/// @brief The element type code of T.
template <class T>
    requires ArchiveInteger<T> || std::same_as<T, float>
inline constexpr archive_dtype archive_dtype_of = std::same_as<T, float>          ? archive_dtype::float32
                                                  : std::same_as<T, std::uint8_t> ? archive_dtype::uint8
                                                  : std::same_as<T, std::int8_t>  ? archive_dtype::int8
                                                  : std::same_as<T, std::int32_t> ? archive_dtype::int32
                                                                                  : archive_dtype::uint64;

/// @brief Bytes per element of @p t (0 for a code that is not an element type).
constexpr std::size_t archive_dtype_size(archive_dtype t) noexcept
{
    switch (t) {
    case archive_dtype::float32: return 4;
    case archive_dtype::uint8: return 1;
    case archive_dtype::int8: return 1;
    case archive_dtype::int32: return 4;
    case archive_dtype::uint64: return 8;
    }
    return 0;
}

/// @brief "float32", "uint8", "int8", "int32", "uint64" (for messages).
constexpr char const* archive_dtype_name(archive_dtype t) noexcept
{
    switch (t) {
    case archive_dtype::float32: return "float32";
    case archive_dtype::uint8: return "uint8";
    case archive_dtype::int8: return "int8";
    case archive_dtype::int32: return "int32";
    case archive_dtype::uint64: return "uint64";
    }
    return "unknown";
}

namespace detail {
/// Little-endian bytes to integers of type T.
template <ArchiveInteger T>
std::vector<T> decode_integers(std::span<std::byte const> bytes)
{
    std::vector<T> out(bytes.size() / sizeof(T));
    if constexpr (std::endian::native == std::endian::little) {
        if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
    } else {
        using U = std::make_unsigned_t<T>;
        for (std::size_t i = 0; i < out.size(); ++i) {
            U u = 0;
            for (std::size_t b = 0; b < sizeof(T); ++b)
                u |= static_cast<U>(static_cast<U>(bytes[i * sizeof(T) + b]) << (8 * b));
            out[i] = static_cast<T>(u);
        }
    }
    return out;
}

} // namespace detail

/// @brief One named tensor: a row-major shape, its element type and its values.
struct archive_entry {
    std::string name;
    std::vector<std::size_t> shape;
    std::vector<float> values;                      ///< float32 entries (empty for integer ones)
    archive_dtype dtype = archive_dtype::float32;
    std::vector<std::byte> data;                    ///< integer entries: the values, little-endian (as in the file)
};

/// @brief Named float tensors, in insertion order, plus string metadata (model kind, method, bits, ...).
class archive {
public:
    /// Metadata, sorted by key (so the same archive always gives the same bytes).
    using meta_map = std::map<std::string, std::string, std::less<>>;

    archive() = default;
    /// An archive that reports its errors as coming from @p source (load_archive sets the file it read).
    explicit archive(std::filesystem::path source) : source_(std::move(source)) {}

    /// @brief Adds a tensor. @throws invalid_input for an empty or duplicate name, a rank above
    /// archive_max_rank, or a value count that is not the product of the shape.
    void add(std::string name, std::vector<std::size_t> shape, std::vector<float> values)
    {
        check_new(name, shape, values.size());
        index_.emplace(name, entries_.size());
        entries_.push_back({std::move(name), std::move(shape), std::move(values), archive_dtype::float32, {}});
    }

    /// @brief Adds an integer tensor (uint8, int8, int32 or uint64; the archive is then saved as format
    /// version 2). @throws invalid_input as add() for float values.
    template <ArchiveInteger T>
    void add(std::string name, std::vector<std::size_t> shape, std::vector<T> const& values)
    {
        check_new(name, shape, values.size());
        std::vector<std::byte> data(values.size() * sizeof(T));
        if constexpr (std::endian::native == std::endian::little) {
            if (!values.empty()) std::memcpy(data.data(), values.data(), data.size());
        } else {
            for (std::size_t i = 0; i < values.size(); ++i) {
                auto const u = static_cast<std::make_unsigned_t<T>>(values[i]);
                for (std::size_t b = 0; b < sizeof(T); ++b)
                    data[i * sizeof(T) + b] = static_cast<std::byte>((u >> (8 * b)) & 0xFFu);
            }
        }
        index_.emplace(name, entries_.size());
        entries_.push_back({std::move(name), std::move(shape), {}, archive_dtype_of<T>, std::move(data)});
    }

    meta_map& meta() noexcept { return meta_; }
    meta_map const& meta() const noexcept { return meta_; }
    std::vector<archive_entry> const& entries() const noexcept { return entries_; }
    /// The file this archive was read from (empty when it was built in memory).
    std::filesystem::path const& source() const noexcept { return source_; }

    /// @brief The entry called @p name, or nullptr.
    archive_entry const* find(std::string_view name) const noexcept
    {
        auto const it = index_.find(name);
        return it == index_.end() ? nullptr : &entries_[it->second];
    }

    /// @brief The values of entry @p name, which must have shape @p expected.
    /// @throws io_error naming source(): "missing entry '<name>' ..." or "shape mismatch for entry '<name>':
    /// the file has [a, b], expected [c, d]".
    /// "element type mismatch for entry '<name>': the file has int32, expected float32" for an integer entry.
    std::span<float const> values(std::string_view name, std::span<std::size_t const> expected) const
    {
        return checked(name, expected, archive_dtype::float32).values;
    }

    /// @brief The values of integer entry @p name, which must have shape @p expected and element type T.
    /// @throws io_error naming source() as values() does, or "element type mismatch for entry '<name>': the
    /// file has float32, expected uint64".
    template <ArchiveInteger T>
    std::vector<T> integers(std::string_view name, std::span<std::size_t const> expected) const
    {
        return detail::decode_integers<T>(checked(name, expected, archive_dtype_of<T>).data);
    }

    /// "[2, 3]"; "[]" for a scalar.
    static std::string shape_string(std::span<std::size_t const> shape)
    {
        std::string s = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + "]";
    }

    /// The product of @p shape, or nothing when it overflows size_t.
    static std::optional<std::size_t> element_count(std::span<std::size_t const> shape) noexcept
    {
        std::size_t n = 1;
        for (std::size_t const d : shape) {
            if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d) return std::nullopt;
            n *= d;
        }
        return n;
    }

private:
    void check_new(std::string const& name, std::span<std::size_t const> shape, std::size_t count) const
    {
        if (name.empty()) throw invalid_input("lowbit::io::archive::add: the entry name is empty");
        if (index_.contains(name)) throw invalid_input("lowbit::io::archive::add: duplicate entry '" + name + "'");
        if (shape.size() > archive_max_rank)
            throw invalid_input("lowbit::io::archive::add: entry '" + name + "' has rank " +
                                std::to_string(shape.size()) + ", above the maximum " +
                                std::to_string(archive_max_rank));
        std::optional<std::size_t> const n = element_count(shape);
        if (!n || *n != count)
            throw invalid_input("lowbit::io::archive::add: entry '" + name + "' has shape " + shape_string(shape) +
                                " but " + std::to_string(count) + " values");
    }

    archive_entry const& checked(std::string_view name, std::span<std::size_t const> expected, archive_dtype want) const
    {
        archive_entry const* e = find(name);
        if (e == nullptr) {
            std::string problem = "missing entry '" + std::string(name) + "' (the file has " +
                                  std::to_string(entries_.size()) + " entries";
            for (std::size_t i = 0; i < std::min<std::size_t>(entries_.size(), 4); ++i)
                problem += (i == 0 ? ": '" : ", '") + entries_[i].name + "'";
            problem += entries_.size() > 4 ? ", ...)" : ")";
            throw io_error{source_, problem};
        }
        if (!std::ranges::equal(e->shape, expected))
            throw io_error{source_, "shape mismatch for entry '" + e->name + "': the file has " + shape_string(e->shape) +
                                        ", expected " + shape_string(expected)};
        if (e->dtype != want)
            throw io_error{source_, "element type mismatch for entry '" + e->name + "': the file has " +
                                        archive_dtype_name(e->dtype) + ", expected " + archive_dtype_name(want)};
        return *e;
    }

    std::filesystem::path source_;
    std::vector<archive_entry> entries_;
    std::map<std::string, std::size_t, std::less<>> index_;
    meta_map meta_;
};

namespace detail {

inline constexpr std::size_t archive_header_bytes = 28;  // magic, version, meta count, entry count, file size
inline constexpr std::size_t archive_checksum_bytes = 4;

/// Appends little-endian integers and float32 values, whatever the host's byte order.
struct byte_writer {
    std::vector<std::byte> out;

    template <std::unsigned_integral T>
    void put(T v)
    {
        for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFFu));
    }
    void put_string(std::string_view s)
    {
        put(static_cast<std::uint32_t>(s.size()));
        auto const* p = reinterpret_cast<std::byte const*>(s.data());
        out.insert(out.end(), p, p + s.size());
    }
    void put_floats(std::span<float const> v)
    {
        if constexpr (std::endian::native == std::endian::little) {
            auto const* p = reinterpret_cast<std::byte const*>(v.data());
            out.insert(out.end(), p, p + v.size_bytes());
        } else {
            for (float const f : v) put(std::bit_cast<std::uint32_t>(f));
        }
    }
};

/// Reads what byte_writer wrote, within bounds; a read past the end sets `short_` and returns zeros, so
/// that the parser can tell a truncated file from a corrupt one.
struct byte_reader {
    std::span<std::byte const> in;
    std::size_t pos = 0;
    bool short_ = false;

    bool has(std::size_t n) noexcept
    {
        if (in.size() - pos < n) short_ = true;
        return !short_;
    }
    template <std::unsigned_integral T>
    T get() noexcept
    {
        if (!has(sizeof(T))) return 0;
        T v = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(in[pos + i]) << (8 * i));
        pos += sizeof(T);
        return v;
    }
    std::string get_string()
    {
        std::uint32_t const n = get<std::uint32_t>();
        if (!has(n)) return {};
        std::string s(reinterpret_cast<char const*>(in.data() + pos), n);
        pos += n;
        return s;
    }
    void get_floats(std::span<float> v) noexcept
    {
        if (v.empty() || !has(v.size() * sizeof(float))) return;
        if constexpr (std::endian::native == std::endian::little) {
            std::memcpy(v.data(), in.data() + pos, v.size_bytes());
            pos += v.size_bytes();
        } else {
            for (float& f : v) f = std::bit_cast<float>(get<std::uint32_t>());
        }
    }
};

/// One row of the entry table.
struct archive_table_row {
    std::string name;
    archive_dtype dtype = archive_dtype::float32;
    std::vector<std::size_t> shape;
};

/// The meta section and entry table of a version-1 or version-2 file, as far as the bytes go.
struct archive_layout {
    std::vector<std::pair<std::string, std::string>> meta;
    std::vector<archive_table_row> entries;
    std::size_t table_end = 0;      ///< first payload byte
    std::uint64_t payload_bytes = 0;
    bool complete = false;          ///< the table was read to its end
    char const* ends_in = "";       ///< where the bytes ran out when !complete
    std::string problem;            ///< a structural problem (bad dtype, rank, sizes), or empty
};

/// Whether format version @p version has element type code @p code.
constexpr bool version_has_dtype(std::uint32_t version, std::uint32_t code) noexcept
{
    if (code == static_cast<std::uint32_t>(archive_dtype::float32)) return true;
    return version >= 2 && code >= static_cast<std::uint32_t>(archive_dtype::uint8) &&
           code <= static_cast<std::uint32_t>(archive_dtype::uint64);
}

inline archive_layout parse_archive_layout(std::span<std::byte const> bytes, std::uint32_t version)
{
    archive_layout l;
    byte_reader r{bytes, archive_header_bytes};  // the caller checked that the header is there
    byte_reader h{bytes, 12};
    std::uint32_t const meta_count = h.get<std::uint32_t>();
    std::uint32_t const entry_count = h.get<std::uint32_t>();
    for (std::uint32_t i = 0; i < meta_count; ++i) {
        std::string key = r.get_string();
        std::string value = r.get_string();
        if (r.short_) {
            l.ends_in = "the metadata";
            return l;
        }
        l.meta.emplace_back(std::move(key), std::move(value));
    }
    for (std::uint32_t i = 0; i < entry_count; ++i) {
        std::string name = r.get_string();
        auto const dtype = r.get<std::uint32_t>();
        auto const rank = r.get<std::uint32_t>();
        if (!r.short_ && !version_has_dtype(version, dtype)) {
            l.problem = "entry '" + name + "' has unknown element type code " + std::to_string(dtype) +
                        " for format version " + std::to_string(version);
            return l;
        }
        if (!r.short_ && rank > archive_max_rank) {
            l.problem = "entry '" + name + "' has rank " + std::to_string(rank) + ", above the maximum " +
                        std::to_string(archive_max_rank);
            return l;
        }
        std::vector<std::size_t> shape;
        for (std::uint32_t d = 0; d < rank && !r.short_; ++d) {
            auto const dim = r.get<std::uint64_t>();
            if (dim > std::numeric_limits<std::size_t>::max()) {
                l.problem = "entry '" + name + "' has an impossible dimension " + std::to_string(dim);
                return l;
            }
            shape.push_back(static_cast<std::size_t>(dim));
        }
        if (r.short_) {
            l.ends_in = "the entry table";
            return l;
        }
        // 2^62 bytes bounds the payload far beyond any real file and keeps the size sums below from overflowing.
        constexpr std::uint64_t payload_limit = std::uint64_t{1} << 62;
        auto const type = static_cast<archive_dtype>(dtype);
        std::size_t const size = archive_dtype_size(type);
        std::optional<std::size_t> const n = archive::element_count(shape);
        if (!n || *n > (payload_limit - l.payload_bytes) / size) {
            l.problem = "entry '" + name + "' has an impossible shape " + archive::shape_string(shape);
            return l;
        }
        l.payload_bytes += *n * size;
        l.entries.push_back({std::move(name), type, std::move(shape)});
    }
    l.table_end = r.pos;
    l.complete = true;
    return l;
}

inline std::string hex(std::uint64_t v, int digits)
{
    static constexpr char const* d = "0123456789abcdef";
    std::string s = "0x";
    for (int i = digits - 1; i >= 0; --i) s += d[(v >> (4 * i)) & 0xFu];
    return s;
}

inline std::string supported_versions()
{
    return archive_oldest_version == archive_version
               ? "format version " + std::to_string(archive_version)
               : "format versions " + std::to_string(archive_oldest_version) + " to " + std::to_string(archive_version);
}

inline std::string errno_text(int e, char const* fallback)
{
    return e != 0 ? std::generic_category().message(e) : std::string(fallback);
}

} // namespace detail

/// @brief The bytes of @p a in the checkpoint format (what save_archive writes).
inline std::vector<std::byte> archive_bytes(archive const& a)
{
    detail::byte_writer w;
    w.out.insert(w.out.end(), reinterpret_cast<std::byte const*>(archive_magic.data()),
                 reinterpret_cast<std::byte const*>(archive_magic.data()) + archive_magic.size());
    // The oldest version that holds the archive: float checkpoints keep version 1 and its bytes.
    bool const integers = std::ranges::any_of(a.entries(), [](archive_entry const& e) {
        return e.dtype != archive_dtype::float32;
    });
    w.put(integers ? archive_version : archive_oldest_version);
    w.put(static_cast<std::uint32_t>(a.meta().size()));
    w.put(static_cast<std::uint32_t>(a.entries().size()));
    w.put(std::uint64_t{0});  // the file size, filled in below
    for (auto const& [key, value] : a.meta()) {
        w.put_string(key);
        w.put_string(value);
    }
    for (archive_entry const& e : a.entries()) {
        w.put_string(e.name);
        w.put(static_cast<std::uint32_t>(e.dtype));
        w.put(static_cast<std::uint32_t>(e.shape.size()));
        for (std::size_t const d : e.shape) w.put(static_cast<std::uint64_t>(d));
    }
    for (archive_entry const& e : a.entries()) {
        if (e.dtype == archive_dtype::float32)
            w.put_floats(e.values);
        else
            w.out.insert(w.out.end(), e.data.begin(), e.data.end());
    }
    auto const total = static_cast<std::uint64_t>(w.out.size() + detail::archive_checksum_bytes);
    for (std::size_t i = 0; i < 8; ++i) w.out[20 + i] = static_cast<std::byte>((total >> (8 * i)) & 0xFFu);
    w.put(crc32(w.out));
    return w.out;
}

/// @brief Writes @p a to @p file: to a temporary file in the same directory first, then renamed over
/// @p file, so that a failed save never destroys an existing checkpoint. (The rename is atomic on POSIX
/// file systems; the data is not fsync'ed, so a power cut right after a save may still lose it.)
/// @p before_rename, when given, is called with the temporary file's path once it is completely written and
/// closed, just before the rename: the window in which a killed writer leaves the old file in place and a
/// stray temporary beside it (tests use it to kill a writer there, deterministically).
/// @throws io_error naming @p file when the directory is missing, the file cannot be created or written, or
/// the rename fails; the temporary file is removed then.
inline void save_archive(std::filesystem::path const& file, archive const& a,
                         std::function<void(std::filesystem::path const&)> const& before_rename = {})
{
    std::vector<std::byte> const bytes = archive_bytes(a);
    std::filesystem::path const dir = file.parent_path();
    std::error_code ec;
    if (file.filename().empty() || file.filename() == "." || file.filename() == "..")
        throw io_error{file, "cannot save: the path names a directory, not a file"};
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
        throw io_error{file, "cannot save: the directory " + dir.string() +
                                 (std::filesystem::exists(dir, ec) ? " is not a directory" : " does not exist")};
    // The temporary file is "<name>.tmp-<16 random hex digits>" in the same directory (a rename across file
    // systems would copy); a name too long to take the suffix within the usual 255-byte limit is replaced.
    std::random_device rd;
    std::string const name = file.filename().string();
    std::filesystem::path const tmp =
        dir / ((name.size() <= 200 ? name : std::string("checkpoint")) + ".tmp-" +
               detail::hex((std::uint64_t{rd()} << 32) | rd(), 16).substr(2));
    std::string problem;
    {
        errno = 0;
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw io_error{file, "cannot create the temporary file " + tmp.filename().string() + " next to it: " +
                                     detail::errno_text(errno, "open failed")};
        out.write(reinterpret_cast<char const*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out)
            problem = "cannot write " + std::to_string(bytes.size()) + " bytes to the temporary file " +
                      tmp.filename().string() + ": " + detail::errno_text(errno, "write failed");
        errno = 0;
        out.close();  // before removing it, which some systems refuse for an open file
        if (problem.empty() && !out)
            problem = "cannot close the temporary file " + tmp.filename().string() + ": " +
                      detail::errno_text(errno, "close failed");
    }
    if (problem.empty()) {
        if (before_rename) before_rename(tmp);
        std::filesystem::rename(tmp, file, ec);
        if (ec) problem = "cannot replace the file with the temporary file " + tmp.filename().string() + ": " + ec.message();
    }
    if (!problem.empty()) {
        std::filesystem::remove(tmp, ec);
        throw io_error{file, problem};
    }
}

/// @brief Reads a checkpoint written by save_archive (any format version from archive_oldest_version to
/// archive_version).
/// @throws io_error naming @p file: "file not found", "not a regular file", "cannot open: ...", "not a lowbit
/// checkpoint: ...", "unsupported format version V, and this lowbit (x.y.z) reads format versions 1 to 2",
/// "truncated: expected N bytes, got M (the file ends in ...)", "checksum mismatch: the file is corrupt (...)",
/// or "corrupt: ..." (docs/formats.md lists them all).
inline archive load_archive(std::filesystem::path const& file)
{
    std::error_code ec;
    auto const status = std::filesystem::status(file, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) throw io_error{file, "cannot access: " + ec.message()};
    if (!std::filesystem::exists(status)) throw io_error{file, "file not found"};
    if (!std::filesystem::is_regular_file(status)) throw io_error{file, "not a regular file"};
    std::vector<std::byte> bytes;
    {
        errno = 0;
        std::ifstream in(file, std::ios::binary);
        if (!in) throw io_error{file, "cannot open: " + detail::errno_text(errno, "open failed")};
        auto const size = std::filesystem::file_size(file, ec);
        if (ec) throw io_error{file, "cannot determine the size: " + ec.message()};
        bytes.resize(static_cast<std::size_t>(size));
        in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (static_cast<std::size_t>(in.gcount()) != bytes.size())
            throw io_error{file, "read error: got " + std::to_string(in.gcount()) + " of " +
                                     std::to_string(bytes.size()) + " bytes"};
    }
    std::size_t const m = bytes.size();
    std::span<std::byte const> const all(bytes);

    // 1. The magic: a file that does not start with it is something else, whatever follows.
    if (m == 0)
        throw io_error{file, "truncated: the file is empty (a checkpoint has at least " +
                                 std::to_string(detail::archive_header_bytes) + " bytes)"};
    std::size_t const magic_seen = std::min(m, archive_magic.size());
    if (std::memcmp(bytes.data(), archive_magic.data(), magic_seen) != 0) {
        std::string start;
        for (std::size_t i = 0; i < magic_seen; ++i) {
            auto const c = static_cast<unsigned char>(bytes[i]);
            start += c >= 0x20 && c < 0x7F && c != '"' && c != '\\' ? std::string(1, static_cast<char>(c))
                                                                   : "\\x" + detail::hex(c, 2).substr(2);
        }
        throw io_error{file, "not a lowbit checkpoint: it starts with \"" + start +
                                 "\", a checkpoint with \"LOWBITCK\""};
    }
    if (m < detail::archive_header_bytes)
        throw io_error{file, "truncated: expected at least " + std::to_string(detail::archive_header_bytes) +
                                 " bytes (the header), got " + std::to_string(m)};

    // 2. The checksum. Every format version ends with the CRC-32 of all the bytes before it, so a file
    // whose checksum matches is intact, and the other checks below can name the problem exactly.
    detail::byte_reader header{all, archive_magic.size()};
    std::uint32_t const version = header.get<std::uint32_t>();
    (void)header.get<std::uint32_t>();
    (void)header.get<std::uint32_t>();
    std::uint64_t const declared = header.get<std::uint64_t>();
    detail::byte_reader trailer{all, m - detail::archive_checksum_bytes};
    std::uint32_t const stored = trailer.get<std::uint32_t>();
    std::uint32_t const computed = crc32(all.first(m - detail::archive_checksum_bytes));
    bool const intact = stored == computed;
    bool const supported = version >= archive_oldest_version && version <= archive_version;
    std::string const mismatch = "checksum mismatch: the file is corrupt (stored CRC-32 " + detail::hex(stored, 8) +
                                 ", computed " + detail::hex(computed, 8) + ")";
    if (!supported) {
        std::string const claim = "format version " + std::to_string(version) + ", and this lowbit (" +
                                  std::to_string(LOWBIT_VERSION_MAJOR) + "." + std::to_string(LOWBIT_VERSION_MINOR) +
                                  "." + std::to_string(LOWBIT_VERSION_PATCH) + ") reads " +
                                  detail::supported_versions();
        // An intact file of another version; or a damaged one, whose version field may itself be the damage.
        if (intact)
            throw io_error{file, "unsupported " + claim +
                                     (version > archive_version ? " (the file was written by a newer lowbit)" : "")};
        throw io_error{file, mismatch + "; its header also claims " + claim};
    }

    detail::archive_layout const layout = detail::parse_archive_layout(all, version);
    std::optional<std::uint64_t> implied;  // the file size the table implies, when the table is complete
    if (layout.complete)
        implied = static_cast<std::uint64_t>(layout.table_end) + layout.payload_bytes + detail::archive_checksum_bytes;
    if (!intact) {
        // Truncated or corrupt? A single damaged byte changes either the declared size or the table, not
        // both: the file is truncated only when both say it should be longer than it is.
        if (declared > m && layout.problem.empty() && (!layout.complete || *implied > m)) {
            char const* where = !layout.complete                                           ? layout.ends_in
                                : m < layout.table_end + layout.payload_bytes              ? "the payloads"
                                                                                           : "the checksum";
            throw io_error{file, "truncated: expected " + std::to_string(declared) + " bytes, got " + std::to_string(m) +
                                     " (the file ends in " + where + ")"};
        }
        if (declared < m && implied && *implied == declared)
            throw io_error{file, "corrupt: expected " + std::to_string(declared) + " bytes, got " + std::to_string(m) +
                                     " (" + std::to_string(m - declared) + " unexpected bytes at the end)"};
        throw io_error{file, mismatch};
    }
    // Intact: any remaining inconsistency was written that way (by a broken writer).
    if (!layout.problem.empty()) throw io_error{file, "corrupt: " + layout.problem};
    if (!layout.complete || *implied != m || declared != m)
        throw io_error{file, "corrupt: the header declares " + std::to_string(declared) + " bytes and the entry table " +
                                 (layout.complete ? std::to_string(*implied) : std::string("more")) + ", the file has " +
                                 std::to_string(m)};

    archive a(file);
    for (auto const& [key, value] : layout.meta) {
        if (a.meta().contains(key)) throw io_error{file, "corrupt: duplicate metadata key '" + key + "'"};
        a.meta().emplace(key, value);
    }
    detail::byte_reader payload{all, layout.table_end};
    for (auto const& [name, dtype, shape] : layout.entries) {
        if (name.empty() || a.find(name) != nullptr)
            throw io_error{file, "corrupt: " + (name.empty() ? std::string("an empty entry name")
                                                             : "duplicate entry name '" + name + "'")};
        std::size_t const n = *archive::element_count(shape);
        if (dtype == archive_dtype::float32) {
            std::vector<float> values(n);
            payload.get_floats(values);
            a.add(name, shape, std::move(values));
        } else {
            auto const raw = all.subspan(payload.pos, n * archive_dtype_size(dtype));
            payload.pos += raw.size();
            switch (dtype) {
            case archive_dtype::uint8: a.add(name, shape, detail::decode_integers<std::uint8_t>(raw)); break;
            case archive_dtype::int8: a.add(name, shape, detail::decode_integers<std::int8_t>(raw)); break;
            case archive_dtype::int32: a.add(name, shape, detail::decode_integers<std::int32_t>(raw)); break;
            default: a.add(name, shape, detail::decode_integers<std::uint64_t>(raw)); break;
            }
        }
    }
    return a;
}

} // namespace lowbit::io
