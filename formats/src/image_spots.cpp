// Decodes just enough of an HDF5 file image to find the root group's attribute values
// (image_spots.hpp). Field layouts follow the HDF5 file format specification, version 3:
// "Superblock" (versions 2 and 3), "Version 2 Object Header", "Object Header Continuation
// Message", "Attribute Message" (versions 1-3), "Global Heap". All addresses are 8 bytes
// (checked in the superblock) and little-endian, and every read is bounds-checked.
#include "image_spots.hpp"

#include <cstring>
#include <map>

// HDF5's Jenkins lookup3 checksum of its metadata. Exported by libhdf5 but declared only in
// its private headers (H5private.h).
extern "C" std::uint32_t H5_checksum_metadata(const void *data, std::size_t len, std::uint32_t initval);

namespace ckpt::formats::detail {

namespace {

struct Bad {}; // the image holds something this decoder does not handle

struct Bytes {
  const std::byte *p;
  std::uint64_t size;

  std::uint64_t u(std::uint64_t at, unsigned n) const {
    if (at > size || n > size - at)
      throw Bad{};
    std::uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i)
      v |= std::uint64_t(std::to_integer<unsigned>(p[at + i])) << (8 * i);
    return v;
  }
  bool sig(std::uint64_t at, const char *s) const {
    return at <= size && size - at >= 4 && std::memcmp(p + at, s, 4) == 0;
  }
  std::uint32_t checksum(std::uint64_t at, std::uint64_t n) const {
    if (at > size || n > size - at)
      throw Bad{};
    return H5_checksum_metadata(p + at, static_cast<std::size_t>(n), 0);
  }
};

constexpr std::uint64_t align8(std::uint64_t n) { return (n + 7) / 8 * 8; }

// A chunk of an object header: [begin, end) holds its messages, its checksum follows.
struct Chunk {
  std::uint64_t start = 0, begin = 0, end = 0;
};

// The characters of global heap object `index` in the collection at `addr`.
Spot heap_object(const Bytes &b, std::uint64_t addr, std::uint64_t index) {
  if (!b.sig(addr, "GCOL") || b.u(addr + 4, 1) != 1)
    throw Bad{};
  const std::uint64_t end = addr + b.u(addr + 8, 8);
  for (std::uint64_t pos = addr + 16; pos + 16 <= end;) {
    const std::uint64_t id = b.u(pos, 2), bytes = b.u(pos + 8, 8);
    if (id == 0)
      break; // the free space: the last object
    if (id == index) {
      if (pos + 16 + bytes > end)
        throw Bad{};
      return Spot{pos + 16, bytes, 0, 0};
    }
    pos += 16 + align8(bytes);
  }
  throw Bad{};
}

// The attribute message at [d, d + n) of `chunk`: its name and where its value lies.
std::pair<std::string, Spot> attribute(const Bytes &b, std::uint64_t d, std::uint64_t n, const Chunk &chunk) {
  const unsigned version = static_cast<unsigned>(b.u(d, 1));
  const std::uint64_t name_bytes = b.u(d + 2, 2), type_bytes = b.u(d + 4, 2), space_bytes = b.u(d + 6, 2);
  std::uint64_t name_at = 0, data_at = 0;
  if (version == 1) {
    name_at = d + 8;
    data_at = name_at + align8(name_bytes) + align8(type_bytes) + align8(space_bytes);
  } else if (version == 2 || version == 3) {
    name_at = d + (version == 3 ? 9 : 8);
    data_at = name_at + name_bytes + type_bytes + space_bytes;
  } else {
    throw Bad{};
  }
  if (name_bytes == 0 || data_at > d + n || name_at + name_bytes > b.size)
    throw Bad{};
  std::string name(reinterpret_cast<const char *>(b.p + name_at), static_cast<std::size_t>(name_bytes - 1));
  const std::uint64_t type_at = name_at + (version == 1 ? align8(name_bytes) : name_bytes);
  const unsigned type_class = static_cast<unsigned>(b.u(type_at, 1)) & 0x0f;
  Spot s{data_at, d + n - data_at, chunk.start, chunk.end + 4 - chunk.start};
  if (type_class == 9) { // variable length: sequence length, then the global heap ID
    if (s.bytes < 16)
      throw Bad{};
    const std::uint64_t length = b.u(data_at, 4);
    Spot chars = heap_object(b, b.u(data_at + 4, 8), b.u(data_at + 12, 4));
    if (chars.bytes != length)
      throw Bad{};
    return {std::move(name), chars};
  }
  return {std::move(name), s};
}

// Every attribute in the object header at `addr` (its chunk 0 and continuation chunks).
std::map<std::string, Spot> attributes(const Bytes &b, std::uint64_t addr) {
  if (!b.sig(addr, "OHDR") || b.u(addr + 4, 1) != 2)
    throw Bad{};
  const unsigned flags = static_cast<unsigned>(b.u(addr + 5, 1));
  std::uint64_t pos = addr + 6;
  if (flags & 0x20)
    pos += 16; // access, modification, change and birth times
  if (flags & 0x10)
    pos += 4; // attribute phase change values
  const unsigned size_bytes = 1u << (flags & 3);
  const std::uint64_t chunk0 = b.u(pos, size_bytes);
  pos += size_bytes;
  const std::uint64_t header = 4 + ((flags & 0x04) ? 2 : 0); // type, size, flags, [creation order]

  std::map<std::string, Spot> found;
  std::vector<Chunk> chunks{{addr, pos, pos + chunk0}};
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    if (chunks.size() > 1024)
      throw Bad{};
    const Chunk ch = chunks[c];
    if (b.u(ch.end, 4) != b.checksum(ch.start, ch.end - ch.start))
      throw Bad{}; // not a chunk, or damaged
    for (std::uint64_t m = ch.begin; m + header <= ch.end;) {
      const unsigned type = static_cast<unsigned>(b.u(m, 1));
      const std::uint64_t n = b.u(m + 1, 2), d = m + header;
      if (d + n > ch.end)
        throw Bad{};
      if (type == 0x10) { // continuation: another chunk, "OCHK" + messages + checksum
        const std::uint64_t at = b.u(d, 8), len = b.u(d + 8, 8);
        if (!b.sig(at, "OCHK") || len < 8)
          throw Bad{};
        chunks.push_back({at, at + 4, at + len - 4});
      } else if (type == 0x0c) {
        auto [name, spot] = attribute(b, d, n, ch);
        found.emplace(std::move(name), spot);
      }
      m = d + n;
    }
  }
  return found;
}

} // namespace

std::optional<std::vector<Spot>> find_root_attributes(const std::byte *image, std::uint64_t size,
                                                      const std::vector<std::string> &names) {
  const Bytes b{image, size};
  try {
    // Superblock 2 or 3: signature, version, sizes of offsets and lengths (8), flags, base
    // address (0), extension address, end of file, root group object header, checksum.
    if (size < 48 || std::memcmp(image, "\x89HDF\r\n\x1a\n", 8) != 0)
      return std::nullopt;
    const std::uint64_t version = b.u(8, 1);
    if ((version != 2 && version != 3) || b.u(9, 1) != 8 || b.u(10, 1) != 8 || b.u(12, 8) != 0)
      return std::nullopt;
    const auto all = attributes(b, b.u(36, 8));
    std::vector<Spot> out;
    for (const auto &n : names) {
      auto it = all.find(n);
      if (it == all.end())
        return std::nullopt;
      out.push_back(it->second);
    }
    return out;
  } catch (const Bad &) {
    return std::nullopt;
  }
}

void update_chunk_checksum(std::byte *image, const Spot &s) {
  if (s.chunk_bytes < 4)
    return;
  const std::uint32_t sum = H5_checksum_metadata(image + s.chunk, static_cast<std::size_t>(s.chunk_bytes - 4), 0);
  for (int i = 0; i < 4; ++i)
    image[s.chunk + s.chunk_bytes - 4 + static_cast<std::uint64_t>(i)] = std::byte((sum >> (8 * i)) & 0xff);
}

} // namespace ckpt::formats::detail
