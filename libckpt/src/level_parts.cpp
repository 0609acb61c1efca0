// The part files of node-local checkpoints (levels.hpp): the trailer, listing, copying
// ranges with checks, packing a part for its partner. Plain POSIX calls, no MPI.
#include "levels.hpp"

#include <ckpt/error.hpp>
#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <map>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace ckpt::detail {

namespace {

constexpr std::uint64_t magic_begin = 0x5452415054504b43ull; // "CKPTPART"
constexpr std::uint64_t magic_end = 0x444e455054504b43ull;   // "CKPTPEND"
constexpr std::uint64_t part_version = 1;

Errc io_code(int err) { return err == ENOSPC || err == EDQUOT ? Errc::no_space : Errc::io; }

// Reads exactly `bytes`; a short read is damage (Errc::corrupt), a failing one Errc::io.
void pread_all(int fd, void *data, std::uint64_t bytes, std::uint64_t off, const std::string &path) {
  char *p = static_cast<char *>(data);
  while (bytes > 0) {
    const ssize_t r = ::pread(fd, p, static_cast<std::size_t>(std::min<std::uint64_t>(bytes, 1u << 30)),
                              static_cast<off_t>(off));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      throw Error(Errc::io, -1, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    if (r == 0)
      throw Error(Errc::corrupt, -1, fmt::format("{} is truncated (ends before byte {})", path, off + bytes));
    p += r;
    off += static_cast<std::uint64_t>(r);
    bytes -= static_cast<std::uint64_t>(r);
  }
}

// The trailer as words: magic, version, step, id, nranks, rank, image size, the ranges, the
// nodes, a checksum of all that; then its length in words and the end magic.
std::vector<std::uint64_t> trailer_words(const PartInfo &p) {
  std::vector<std::uint64_t> w{magic_begin,
                               part_version,
                               static_cast<std::uint64_t>(p.step),
                               p.id,
                               static_cast<std::uint64_t>(p.nranks),
                               static_cast<std::uint64_t>(p.rank),
                               p.image_size,
                               p.ranges.size()};
  for (const auto &r : p.ranges)
    w.insert(w.end(), {r.offset, r.bytes, r.checksum});
  w.push_back(p.nodes.size());
  for (const auto &n : p.nodes)
    append_string(w, n);
  w.push_back(formats::checksum(w.data(), w.size() * 8));
  w.push_back(w.size()); // words before this one
  w.push_back(magic_end);
  return w;
}

PartInfo parse_trailer(const std::vector<std::uint64_t> &w, const std::string &path) {
  auto bad = [&](const char *why) {
    return Error(Errc::corrupt, -1, fmt::format("node-local part {} is damaged: {}", path, why));
  };
  if (w.size() < 11 || w[0] != magic_begin || w.back() != magic_end)
    throw bad("no part trailer");
  const std::size_t body = w.size() - 3; // words covered by the checksum
  if (w[w.size() - 2] != body + 1 || formats::checksum(w.data(), body * 8) != w[body])
    throw bad("trailer checksum mismatch");
  if (w[1] != part_version)
    throw Error(Errc::unsupported_version, -1, fmt::format("node-local part {} has version {}, this ckpt reads {}",
                                                           path, w[1], part_version));
  PartInfo p;
  p.step = static_cast<std::int64_t>(w[2]);
  p.id = w[3];
  p.nranks = static_cast<int>(w[4]);
  p.rank = static_cast<int>(w[5]);
  p.image_size = w[6];
  std::size_t at = 7;
  const std::uint64_t nr = w[at++];
  if (nr > (body - at) / 3)
    throw bad("range table overruns the trailer");
  for (std::uint64_t i = 0; i < nr; ++i, at += 3) {
    p.ranges.push_back({w[at], w[at + 1], w[at + 2]});
    if (w[at + 1] > part_range_max || w[at] + w[at + 1] < w[at])
      throw bad("range too long");
  }
  if (at >= body)
    throw bad("node table missing");
  const std::uint64_t nn = w[at++];
  for (std::uint64_t i = 0; i < nn; ++i) {
    if (at >= body)
      throw bad("node table overruns the trailer");
    const std::uint64_t len = w[at++];
    if (len > 4096 || at + (len + 7) / 8 > body)
      throw bad("node name overruns the trailer");
    p.nodes.emplace_back(reinterpret_cast<const char *>(w.data() + at), static_cast<std::size_t>(len));
    at += (len + 7) / 8;
  }
  if (p.nranks <= 0 || p.rank < 0 || p.rank >= p.nranks || p.nodes.size() != static_cast<std::size_t>(p.nranks))
    throw bad("inconsistent rank numbers");
  p.path = path;
  return p;
}

// Where the trailer starts: after the image, or after this part's last range (the image
// size is known to rank 0's part only).
std::uint64_t part_end(const PartInfo &p) {
  std::uint64_t end = p.image_size;
  for (const auto &r : p.ranges)
    end = std::max(end, r.offset + r.bytes);
  return end;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

std::uint64_t range_checksum(int fd, const PartRange &r, std::vector<std::byte> &buf, const std::string &path) {
  buf.resize(static_cast<std::size_t>(r.bytes));
  pread_all(fd, buf.data(), r.bytes, r.offset, path);
  return formats::checksum(buf.data(), buf.size());
}

std::mutex origin_mu;
std::map<std::string, std::string> &origins() {
  static std::map<std::string, std::string> m;
  return m;
}

} // namespace

void pwrite_all(int fd, const void *data, std::uint64_t bytes, std::uint64_t off, const std::string &path) {
  const char *p = static_cast<const char *>(data);
  while (bytes > 0) {
    const ssize_t w = ::pwrite(fd, p, static_cast<std::size_t>(std::min<std::uint64_t>(bytes, 1u << 30)),
                               static_cast<off_t>(off));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      throw Error(io_code(err), -1, fmt::format("cannot write {}: {}", path, std::strerror(err)));
    }
    p += w;
    off += static_cast<std::uint64_t>(w);
    bytes -= static_cast<std::uint64_t>(w);
  }
}

std::string part_name(std::int64_t step, int rank, std::uint64_t id) {
  return fmt::format("ckpt-{:012d}-r{:06d}-{:016x}.part", step, rank, id);
}

void add_ranges(std::vector<PartRange> &out, std::uint64_t offset, std::uint64_t bytes) {
  while (bytes > 0) {
    const std::uint64_t b = std::min(bytes, part_range_max);
    out.push_back({offset, b, 0});
    offset += b;
    bytes -= b;
  }
}

void seal_part(int fd, const std::string &path, PartInfo &info, std::vector<std::byte> *packed) {
  if (packed) {
    // One pass: the ranges' bytes go straight to their place in the packed form (after its
    // length word and the trailer, whose size does not depend on the checksums).
    const std::size_t head = 8 + trailer_words(info).size() * 8;
    std::uint64_t total = head;
    for (const auto &r : info.ranges)
      total += r.bytes;
    packed->resize(static_cast<std::size_t>(total));
    std::uint64_t at = head;
    for (auto &r : info.ranges) {
      pread_all(fd, packed->data() + at, r.bytes, r.offset, path);
      r.checksum = formats::checksum(packed->data() + at, static_cast<std::size_t>(r.bytes));
      at += r.bytes;
    }
    const auto w = trailer_words(info);
    const std::uint64_t words = w.size();
    std::memcpy(packed->data(), &words, 8);
    std::memcpy(packed->data() + 8, w.data(), w.size() * 8);
  } else {
    std::vector<std::byte> buf;
    for (auto &r : info.ranges)
      r.checksum = range_checksum(fd, r, buf, path);
  }
  const auto w = trailer_words(info);
  const std::uint64_t end = part_end(info);
  pwrite_all(fd, w.data(), w.size() * 8, end, path);
  if (::ftruncate(fd, static_cast<off_t>(end + w.size() * 8)) != 0)
    throw Error(io_code(errno), -1, fmt::format("cannot truncate {}: {}", path, std::strerror(errno)));
}

PartInfo read_part(const std::string &path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (f.fd < 0)
    throw Error(Errc::io, -1, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0)
    throw Error(Errc::io, -1, fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t tail[2] = {0, 0};
  if (size < 16)
    throw Error(Errc::corrupt, -1, fmt::format("node-local part {} is damaged: too short", path));
  pread_all(f.fd, tail, 16, size - 16, path);
  if (tail[1] != magic_end || tail[0] > size / 8)
    throw Error(Errc::corrupt, -1, fmt::format("node-local part {} is damaged: no part trailer", path));
  std::vector<std::uint64_t> w(static_cast<std::size_t>(tail[0] + 2));
  const std::uint64_t start = size - w.size() * 8;
  pread_all(f.fd, w.data(), w.size() * 8, start, path);
  PartInfo p = parse_trailer(w, path);
  if (part_end(p) != start)
    throw Error(Errc::corrupt, -1, fmt::format("node-local part {} is damaged: trailer at byte {}, data up to byte {}",
                                               path, start, part_end(p)));
  return p;
}

std::vector<PartInfo> list_parts(const fs::path &dir, const std::function<void(const std::string &)> &warn) {
  std::vector<PartInfo> out;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ckpt-", 0) != 0 || n.size() < 6 || n.compare(n.size() - 5, 5, ".part") != 0)
      continue;
    try {
      out.push_back(read_part(e.path().string()));
    } catch (const Error &err) {
      warn(fmt::format("ignoring node-local part: {}", err.detail()));
    }
  }
  std::sort(out.begin(), out.end(), [](const PartInfo &a, const PartInfo &b) { return a.path < b.path; });
  return out;
}

void copy_part(const PartInfo &part, int fd, const std::string &fd_path, bool verify_after) {
  Fd in;
  in.fd = ::open(part.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in.fd < 0)
    throw Error(Errc::io, -1, fmt::format("cannot open {}: {}", part.path, std::strerror(errno)));
  std::vector<std::byte> buf;
  for (const auto &r : part.ranges) {
    if (range_checksum(in.fd, r, buf, part.path) != r.checksum)
      throw Error(Errc::corrupt, -1, fmt::format("node-local part {} is damaged: checksum mismatch at byte {}",
                                                 part.path, r.offset));
    pwrite_all(fd, buf.data(), r.bytes, r.offset, fd_path);
  }
  if (!verify_after)
    return;
  if (::fsync(fd) != 0)
    throw Error(io_code(errno), -1, fmt::format("fsync of {} failed: {}", fd_path, std::strerror(errno)));
  for (const auto &r : part.ranges)
    if (range_checksum(fd, r, buf, fd_path) != r.checksum)
      throw Error(Errc::io, -1, fmt::format("{}: bytes {}..{} read back differ from what was written",
                                            fd_path, r.offset, r.offset + r.bytes));
}

void verify_part(const PartInfo &part) {
  Fd in;
  in.fd = ::open(part.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in.fd < 0)
    throw Error(Errc::io, -1, fmt::format("cannot open {}: {}", part.path, std::strerror(errno)));
  std::vector<std::byte> buf;
  for (const auto &r : part.ranges)
    if (range_checksum(in.fd, r, buf, part.path) != r.checksum)
      throw Error(Errc::corrupt, -1, fmt::format("node-local part {} is damaged: checksum mismatch in bytes {}..{}",
                                                 part.path, r.offset, r.offset + r.bytes));
}

PartInfo unpack_part(const std::vector<std::byte> &packed, const std::string &path) {
  std::uint64_t words = 0;
  if (packed.size() < 8 || (std::memcpy(&words, packed.data(), 8), words > (packed.size() - 8) / 8))
    throw Error(Errc::corrupt, -1, fmt::format("the partner copy for {} arrived damaged (no trailer)", path));
  std::vector<std::uint64_t> w(static_cast<std::size_t>(words));
  std::memcpy(w.data(), packed.data() + 8, w.size() * 8);
  PartInfo p = parse_trailer(w, path);
  std::uint64_t at = 8 + words * 8;
  ::unlink(path.c_str());
  Fd out;
  out.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out.fd < 0)
    throw Error(Errc::io, -1, fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  for (const auto &r : p.ranges) {
    if (at + r.bytes > packed.size() || formats::checksum(packed.data() + at, r.bytes) != r.checksum)
      throw Error(Errc::corrupt, -1, fmt::format("the partner copy for {} arrived damaged (bytes at {})", path, r.offset));
    pwrite_all(out.fd, packed.data() + at, r.bytes, r.offset, path);
    at += r.bytes;
  }
  pwrite_all(out.fd, w.data(), w.size() * 8, part_end(p), path);
  if (::fsync(out.fd) != 0)
    throw Error(io_code(errno), -1, fmt::format("fsync of {} failed: {}", path, std::strerror(errno)));
  p.path = path;
  return p;
}

void append_string(std::vector<std::uint64_t> &w, const std::string &s) {
  w.push_back(s.size());
  const std::size_t at = w.size();
  w.resize(at + (s.size() + 7) / 8, 0);
  std::memcpy(w.data() + at, s.data(), s.size());
}

std::string read_string(const std::vector<std::uint64_t> &w, std::size_t &at) {
  const std::size_t len = static_cast<std::size_t>(w.at(at++));
  std::string s(reinterpret_cast<const char *>(w.data() + at), len);
  at += (len + 7) / 8;
  return s;
}

std::string node_name() {
  if (const char *n = std::getenv("SLURMD_NODENAME"); n && *n)
    return n;
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  return buf;
}

int Topology::node_count() const {
  std::vector<std::string> u(nodes);
  std::sort(u.begin(), u.end());
  return static_cast<int>(std::unique(u.begin(), u.end()) - u.begin());
}

fs::path local_run_dir(const fs::path &local, const std::string &run_id) { return local / ("ckpt-run-" + run_id); }

std::string run_id(const fs::path &shared, bool create) {
  const fs::path file = shared / ".ckpt-run-id";
  {
    Fd f;
    f.fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f.fd >= 0) {
      char buf[64] = {};
      const ssize_t r = ::read(f.fd, buf, sizeof buf - 1);
      std::string id(buf, r > 0 ? static_cast<std::size_t>(r) : 0);
      while (!id.empty() && (id.back() == '\n' || id.back() == ' '))
        id.pop_back();
      if (id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string::npos)
        return id;
    } else if (errno != ENOENT) {
      throw Error(Errc::io, 0, fmt::format("cannot read {}: {}", file.string(), std::strerror(errno)));
    }
  }
  if (!create)
    return {};
  std::random_device rd;
  const std::uint64_t v = (std::uint64_t(rd()) << 32) ^ rd() ^
                          static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const std::string id = fmt::format("{:016x}", v);
  const fs::path tmp = shared / ".ckpt-run-id.tmp";
  ::unlink(tmp.c_str());
  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  const std::string line = id + "\n";
  if (f.fd < 0 || ::write(f.fd, line.data(), line.size()) != ssize_t(line.size()) || ::fsync(f.fd) != 0 ||
      ::rename(tmp.c_str(), file.c_str()) != 0)
    throw Error(Errc::io, 0, fmt::format("cannot record the run id in {}: {}", file.string(), std::strerror(errno)));
  return id;
}

void note_origin(const std::string &file, const std::string &origin) {
  std::lock_guard<std::mutex> g(origin_mu);
  origins()[file] = origin;
}

std::string origin_of(const std::string &file) {
  std::lock_guard<std::mutex> g(origin_mu);
  auto it = origins().find(file);
  return it == origins().end() ? std::string() : it->second;
}

} // namespace ckpt::detail
