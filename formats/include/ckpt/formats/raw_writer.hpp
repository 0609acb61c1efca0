#pragma once
// The fast write path of checkpoint format v1.
//
// Rank 0 creates the file with every attribute, dataset and table (serial HDF5, contiguous
// datasets allocated early at 1 MiB alignment, no fill) and reads where each dataset's raw
// data lies (H5Dget_offset). Every rank then writes its own bytes there with pwrite, large
// aligned runs with O_DIRECT from page-aligned staging memory, and fsyncs. The block
// checksums are computed while the bytes are staged, and rank 0 writes them into the file
// at the end (finish_file). No MPI and no HDF5 call happens in the data path, so it may run
// on a background thread. The file is a normal HDF5 file (format v1, docs/format.md).

#include <ckpt/formats/checkpoint_file.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ckpt::formats {

/// Where the raw data of each field starts in the file (no_offset for an empty dataset).
struct Layout {
  static constexpr std::uint64_t no_offset = ~std::uint64_t(0);
  std::vector<std::uint64_t> data_offset; ///< per field, in the order given to create_file
  std::string created;                    ///< the "created" attribute written
};

/// Creates the file at `path` (truncating) with all metadata of format v1 and the raw data
/// regions allocated but not written. Checksum tables and the header checksum are left
/// zero until finish_file(). Serial: rank 0 only. `blocks` of every field must be complete
/// except for checksums.
Layout create_file(const std::string &path, const Header &header, const std::vector<FieldWrite> &fields);

/// Writes the checksums (now in `fields[i].blocks`) and the header checksum into a file
/// made by create_file. Serial: rank 0 only. Does not fsync.
void finish_file(const std::string &path, const Header &header, const std::vector<FieldWrite> &fields,
                 const Layout &layout);

class Staging;

/// Small saves: the whole file built in memory (HDF5's core driver; nothing touches the
/// disk) with all metadata of format v1, the block checksums (already in
/// `fields[i].blocks`) and the header checksum; the raw data regions are zero until the
/// caller places the data (place_plan), after which one write makes the file. Serial:
/// rank 0 only, on the thread that makes every other HDF5 call.
///
/// The in-memory file stays open between saves: when a save has the same fields, blocks
/// and metadata keys as the previous one, only the values that change (step, time,
/// creation time, metadata values, checksums, header checksum) are rewritten, which costs a
/// fraction of building a new file. It is built anew once rewritten strings have grown it
/// by 8 KiB.
///
/// When, moreover, every metadata value keeps its length, patch() rewrites those values in
/// the last image itself, with HDF5's metadata checksums, and calls no HDF5 function: it may
/// run on a background thread while the application calls HDF5 (image_spots.cpp finds
/// where the values lie after each build, and checks each holds what HDF5 wrote there).
class FileImage {
public:
  FileImage();
  ~FileImage();
  FileImage(const FileImage &) = delete;
  FileImage &operator=(const FileImage &) = delete;
  /// Leaves the image in `image` and returns its size; `layout` says where each field's
  /// data goes.
  std::uint64_t build(const Header &header, const std::vector<FieldWrite> &fields, Staging &image, Layout &layout);
  /// Whether patch() can make the file of this save from the last image built (the same
  /// structure, metadata values of the same lengths). On the thread of build().
  bool patchable(const Header &header, const std::vector<FieldWrite> &fields) const;
  /// After patchable() said yes: rewrites `image` (the last image built or patched) for this
  /// save, returns its size and sets `layout`. No HDF5 call; build() and patchable() must
  /// not run at the same time.
  std::uint64_t patch(const Header &header, const std::vector<FieldWrite> &fields, Staging &image, Layout &layout);
  /// Closes the in-memory file (its HDF5 objects); the next build() makes a new one.
  void close() noexcept;

private:
  struct Open; // the in-memory file and where its changing values lie
  std::unique_ptr<Open> open_;
};

/// One contiguous piece of this rank's data in memory.
struct Run {
  const std::byte *mem;
  std::size_t bytes;
};

/// A file-contiguous range this rank writes, gathered from one or more memory runs.
struct Extent {
  std::size_t field = 0;
  std::uint64_t file_offset = 0;
  std::uint64_t bytes = 0;
  std::vector<Run> runs;
  bool direct = false;        ///< large: staged page-aligned and written with O_DIRECT
  std::uint64_t staged = 0;   ///< position of its first byte in the staging buffer
};

/// This rank's writes, per field in file order (the C order of the global array, which is
/// also the order its checksum is computed in).
struct WritePlan {
  std::vector<Extent> extents;
  std::vector<bool> hashed;   ///< per field: this rank computes the field's block checksum
  std::size_t nfields = 0;
  std::uint64_t bytes = 0;    ///< payload bytes of this rank
  std::uint64_t staging = 0;  ///< bytes of staging memory a full snapshot needs
};

/// Extents of at least this many bytes are written with O_DIRECT.
inline constexpr std::uint64_t direct_min_bytes = 1u << 20;
/// Page size used for O_DIRECT alignment.
inline constexpr std::uint64_t direct_align = 4096;

/// Builds this rank's plan from its part of every field (FieldWrite::write/data/offset/
/// count/memory/memory_offset) and the layout. `hash` says per field whether the writer
/// computes this rank's checksum for it.
WritePlan plan_writes(const std::vector<FieldWrite> &fields, const Layout &layout, const std::vector<bool> &hash);

/// Whether O_DIRECT is used (CKPT_DIRECT=0 turns it off).
bool direct_io_enabled();

/// Page-aligned memory, allocated once and reused (pages are touched when allocated, so
/// copies into it never fault). Grows only.
class Staging {
public:
  Staging() = default;
  ~Staging();
  Staging(const Staging &) = delete;
  Staging &operator=(const Staging &) = delete;
  /// Makes room for `bytes`; throws Error(no_space) when memory is short.
  void reserve(std::uint64_t bytes);
  std::byte *data() const noexcept { return data_; }
  std::uint64_t capacity() const noexcept { return capacity_; }

private:
  std::byte *data_ = nullptr;
  std::uint64_t capacity_ = 0;
};

/// Sync write: streams the plan's bytes from application memory to `path` (which
/// create_file made). Large extents go through a small ring of aligned buffers: this thread
/// copies into a free slot, a helper thread hashes the copied slots in file order, and
/// ring_writers helper threads write the hashed ones with O_DIRECT; copy, hash and write
/// overlap. Then fsyncs. Memory used is independent of the state size: `ring` (ring_slots
/// x ring_slot_bytes, reused between saves). Returns the per-field checksums (entries of
/// fields this rank does not hash are 0). `sync` false skips the fsync (the caller fsyncs
/// the file later anyway). `any_cpu`: the helper threads run on any CPU of the process's
/// cpuset (allow_every_cpu), not on the caller's (Options::writer_any_cpu).
/// \throws Error(io, no_space)
std::vector<std::uint64_t> write_streaming(const std::string &path, const WritePlan &plan, Staging &ring,
                                           bool sync = true, bool any_cpu = false);
inline constexpr std::uint64_t ring_slots = 4;
/// Threads that write the ring's slots: as many direct requests in flight.
inline constexpr std::size_t ring_writers = 2;
/// Restore: threads that read the ring's slots (as many requests in flight).
inline constexpr std::size_t ring_readers = 2;

/// Lets the calling thread run on every CPU of the process's cpuset rather than on the CPUs
/// its creator is bound to (a launcher binds each rank to a core; the kernel intersects the
/// mask with the cpuset, so a SLURM job's limits hold). Best effort: a failure leaves the
/// inherited binding.
void allow_every_cpu();

inline constexpr std::uint64_t ring_slot_bytes = 16u << 20;
/// The ring's chunks (what is copied, hashed and written at a time) are a slot, or for a
/// state of fewer than ring_chunks_min slots a ring_chunks_min-th of it (at least
/// ring_chunk_min_bytes): the writers start once the first chunk is copied and hashed, so a
/// 16 MiB state in one chunk was copied and hashed whole (~6 ms here) before any byte was
/// written.
inline constexpr std::uint64_t ring_chunks_min = 8;
inline constexpr std::uint64_t ring_chunk_min_bytes = 1u << 20;

/// Async snapshot: copies the plan's bytes into `staging` (reserved to plan.staging).
/// After it returns, the application may change its memory.
void snapshot(const WritePlan &plan, Staging &staging);

/// Copies the plan's bytes, extent after extent in file order, into `dst` (plan.bytes
/// bytes, packed) and returns the per-field checksums of the fields the plan hashes: the
/// same values write_streaming computes.
std::vector<std::uint64_t> pack_plan(const WritePlan &plan, std::byte *dst);

/// Copies the plan's bytes into a file image at their file offsets.
void place_plan(const WritePlan &plan, std::byte *image);

/// Async write: writes a snapshot from staging to `path`, computing the checksums, then
/// fsyncs. Touches no MPI and no HDF5: safe on a background thread.
/// \throws Error(io, no_space)
std::vector<std::uint64_t> write_snapshot(const std::string &path, const WritePlan &plan, const Staging &staging);

/// Restore: reads the plan's extents from `path` into the memory its runs name (the runs
/// are destinations here), large extents with O_DIRECT through `ring` while ring_readers
/// helper threads read ahead. Returns the XXH3-64 of each hashed field's bytes in file order.
/// No MPI, no HDF5. `any_cpu` as for write_streaming. \throws Error(corrupt) when the file
/// is short or unreadable.
std::vector<std::uint64_t> read_streaming(const std::string &path, const WritePlan &plan, Staging &ring,
                                          bool any_cpu = false);

} // namespace ckpt::formats
