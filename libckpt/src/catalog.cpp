#include <ckpt/catalog.hpp>

#include "levels.hpp"
#include <ckpt/error.hpp>
#include <ckpt/formats/checkpoint_file.hpp>
#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <system_error>

namespace fs = std::filesystem;

namespace ckpt {

std::string checkpoint_file_name(std::int64_t step) { return fmt::format("ckpt-{:012d}.h5", step); }

namespace {
// "ckpt-<digits>.h5" -> step; anything else (temp files, LATEST, logs) -> nothing.
std::optional<std::int64_t> parse_name(const std::string &name) {
  constexpr std::string_view prefix = "ckpt-", suffix = ".h5";
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  const char *b = name.data() + prefix.size();
  const char *e = name.data() + name.size() - suffix.size();
  std::int64_t step = 0;
  auto [p, ec] = std::from_chars(b, e, step);
  if (ec != std::errc() || p != e || step < 0)
    return std::nullopt;
  return step;
}
} // namespace

std::vector<CatalogEntry> list_checkpoints(const fs::path &dir) {
  std::vector<CatalogEntry> out;
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return out;
  fs::directory_iterator it(dir, ec);
  if (ec)
    throw Error(Errc::io, -1, fmt::format("cannot read checkpoint directory {}: {}", dir.string(), ec.message()));
  for (const auto &entry : it) {
    auto step = parse_name(entry.path().filename().string());
    if (step && entry.is_regular_file(ec))
      out.push_back({*step, entry.path()});
  }
  std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.step > b.step; });
  return out;
}

std::optional<std::int64_t> read_latest(const fs::path &dir) {
  std::ifstream in(dir / "LATEST");
  std::string name;
  if (!in || !std::getline(in, name))
    return std::nullopt;
  return parse_name(name);
}

CheckpointInfo inspect(const fs::path &file) {
  formats::Reader r(file.string());
  return r.info();
}

VerifyReport verify(const fs::path &file) {
  VerifyReport rep;
  const std::string name = file.filename().string();
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".part") == 0) {
    try {
      const detail::PartInfo p = detail::read_part(file.string());
      detail::verify_part(p);
      rep.part = fmt::format("node-local part of step {}, rank {} of {}", p.step, p.rank, p.nranks);
      rep.blocks_checked = p.ranges.size();
      for (const auto &r : p.ranges)
        rep.bytes_checked += r.bytes;
      rep.ok = true;
    } catch (const Error &e) {
      rep.reason = e.detail();
    }
    return rep;
  }
  try {
    formats::Reader r(file.string());
    const auto &info = r.info();
    auto step = parse_name(file.filename().string());
    if (step && *step != info.step) {
      rep.reason = fmt::format("file name says step {} but the file holds step {}", *step, info.step);
      return rep;
    }
    std::vector<std::byte> buf;
    for (const auto &f : info.fields) {
      const std::size_t elem = dtype_size(f.dtype);
      for (std::size_t i = 0; i < f.blocks.size(); ++i) {
        const auto &b = f.blocks[i];
        const std::uint64_t n = volume(b.count) * elem;
        buf.resize(static_cast<std::size_t>(n ? n : 1));
        if (n)
          r.read(f, b.offset, b.count, buf.data(), b.count, Shape(b.count.size(), 0), false);
        const std::uint64_t sum = formats::checksum(buf.data(), static_cast<std::size_t>(n));
        if (sum != b.checksum) {
          rep.reason = fmt::format("checksum mismatch in field '{}' block {} (rank {})", f.name, i, b.rank);
          return rep;
        }
        ++rep.blocks_checked;
        rep.bytes_checked += n;
      }
    }
    r.close();
    rep.ok = true;
  } catch (const Error &e) {
    rep.reason = e.detail();
  } catch (const std::exception &e) {
    // Never throws for a bad file, whatever the file makes the reader do.
    rep.reason = fmt::format("{} could not be read: {}", file.string(), e.what());
  }
  return rep;
}

} // namespace ckpt
