#pragma once
// Where the values that change from one save to the next lie in an HDF5 file image, so that
// a small save of the same structure as the previous one rewrites them in place (FileImage
// in checkpoint_file.cpp) without calling HDF5, which may then happen on another thread
// than the application's HDF5 calls.
//
// Reads the bytes of the HDF5 file format (superblock version 2 or 3, version 2 object
// headers with their continuation chunks, attribute messages of versions 1 to 3, global heap
// collections), as the HDF5 file format specification describes them. Everything it cannot
// decode is reported as "not found", and the caller then keeps building with HDF5.
// Private to formats/src.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::formats::detail {

/// One value in a file image: its bytes, and the object header chunk whose checksum covers
/// them (chunk_bytes 0: none, as for a string in a global heap collection, which has no
/// checksum).
struct Spot {
  std::uint64_t at = 0, bytes = 0;
  std::uint64_t chunk = 0, chunk_bytes = 0; ///< the chunk, its checksum in its last 4 bytes
};

/// The values of the root group's attributes `names`: a fixed-size value where it lies in
/// the object header, a variable-length string where its characters lie in the global heap.
/// Nothing when one of them is not in the root group's object header or cannot be decoded.
std::optional<std::vector<Spot>> find_root_attributes(const std::byte *image, std::uint64_t size,
                                                      const std::vector<std::string> &names);

/// Recomputes the checksum of the object header chunk of `s` (after its value changed).
void update_chunk_checksum(std::byte *image, const Spot &s);

} // namespace ckpt::formats::detail
