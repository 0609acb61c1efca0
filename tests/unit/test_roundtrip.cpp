// Round trips of every dtype and every kind of state, the loop helper, retention, LATEST.
#include "test_helpers.hpp"

#include <ckpt/formats/checksum.hpp>
#include <ckpt/formats/raw_writer.hpp>
#include <image_spots.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <dirent.h>
#include <sched.h>
#include <set>
#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

using namespace ckpt_test;
namespace fs = std::filesystem;

namespace {

// Deterministic bytes for element `i` of field `seed`, the same on every rank.
template <class T> T value_at(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t x = (seed * 0x9E3779B97F4A7C15ull) ^ (i + 1) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  T v;
  if constexpr (std::is_floating_point_v<T>) {
    v = static_cast<T>(static_cast<double>(x % 1000003) / 7.0 - 50000.0);
  } else {
    std::memcpy(&v, &x, sizeof(T));
  }
  return v;
}

// Row block of an n0 x n1 array for this rank.
void row_block(std::uint64_t n0, int rank, int size, std::uint64_t &off, std::uint64_t &cnt) {
  std::uint64_t base = n0 / size, rem = n0 % size;
  off = rank * base + std::min<std::uint64_t>(rank, rem);
  cnt = base + (std::uint64_t(rank) < rem ? 1 : 0);
}

template <class T> void roundtrip_dtype(std::uint64_t seed) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  const std::uint64_t n0 = 7, n1 = 5;
  std::uint64_t off, cnt;
  row_block(n0, rank, size, off, cnt);

  std::vector<T> dist(cnt * n1), rep(6), mine(3 + rank);
  T scalar = value_at<T>(seed, 99);
  for (std::uint64_t i = 0; i < dist.size(); ++i)
    dist[i] = value_at<T>(seed, off * n1 + i);
  for (std::uint64_t i = 0; i < rep.size(); ++i)
    rep[i] = value_at<T>(seed + 1, i);
  for (std::uint64_t i = 0; i < mine.size(); ++i)
    mine[i] = value_at<T>(seed + 2 + rank, i);
  const auto d0 = dist, r0 = rep, m0 = mine;
  const T s0 = scalar;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.distributed("dist", dist.data(), {.global = {n0, n1}, .offset = {off, 0}, .count = {cnt, n1}});
    cp.replicated("rep", rep.data(), {2, 3});
    cp.replicated("scalar", &scalar);
    cp.per_rank("mine", mine);
    cp.save(42, 1.5);
  }
  std::fill(dist.begin(), dist.end(), T{});
  std::fill(rep.begin(), rep.end(), T{});
  mine.clear();
  scalar = T{};
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.distributed("dist", dist.data(), {.global = {n0, n1}, .offset = {off, 0}, .count = {cnt, n1}});
  cp.replicated("rep", rep.data(), {2, 3});
  cp.replicated("scalar", &scalar);
  cp.per_rank("mine", mine);
  auto step = cp.restore();
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(*step, 42);
  EXPECT_EQ(0, std::memcmp(dist.data(), d0.data(), d0.size() * sizeof(T)));
  EXPECT_EQ(0, std::memcmp(rep.data(), r0.data(), r0.size() * sizeof(T)));
  ASSERT_EQ(mine.size(), m0.size());
  EXPECT_EQ(0, std::memcmp(mine.data(), m0.data(), m0.size() * sizeof(T)));
  EXPECT_EQ(0, std::memcmp(&scalar, &s0, sizeof(T)));
}

} // namespace

TEST(RoundTrip, EveryDtypeAndKind) {
  roundtrip_dtype<std::uint8_t>(1);
  roundtrip_dtype<std::int8_t>(2);
  roundtrip_dtype<std::uint16_t>(3);
  roundtrip_dtype<std::int16_t>(4);
  roundtrip_dtype<std::uint32_t>(5);
  roundtrip_dtype<std::int32_t>(6);
  roundtrip_dtype<std::uint64_t>(7);
  roundtrip_dtype<std::int64_t>(8);
  roundtrip_dtype<float>(9);
  roundtrip_dtype<double>(10);
}

TEST(RoundTrip, ThreeDimensionalWithGhostCells) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  const std::uint64_t n0 = 9, n1 = 4, n2 = 3;
  std::uint64_t off, cnt;
  row_block(n0, rank, size, off, cnt);
  // Local array with one ghost layer around the block in every dimension.
  const ckpt::Shape mem = {cnt + 2, n1 + 2, n2 + 2};
  std::vector<double> a(ckpt::volume(mem), -1.0);
  auto idx = [&](std::uint64_t i, std::uint64_t j, std::uint64_t k) { return (i * mem[1] + j) * mem[2] + k; };
  for (std::uint64_t i = 0; i < cnt; ++i)
    for (std::uint64_t j = 0; j < n1; ++j)
      for (std::uint64_t k = 0; k < n2; ++k)
        a[idx(i + 1, j + 1, k + 1)] = value_at<double>(3, ((off + i) * n1 + j) * n2 + k);
  const auto a0 = a;
  const ckpt::Block block{.global = {n0, n1, n2}, .offset = {off, 0, 0}, .count = {cnt, n1, n2},
                          .memory = mem, .memory_offset = {1, 1, 1}};
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.distributed("a", a.data(), block);
    cp.save(1);
  }
  std::fill(a.begin(), a.end(), -1.0);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.distributed("a", a.data(), block);
  EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(1));
  EXPECT_EQ(a, a0); // ghosts untouched (-1), block restored
}

TEST(RoundTrip, EmptyDirectoryRestoresNothing) {
  ScratchDir dir;
  double x = 3;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir / "new/sub"));
  cp.replicated("x", &x);
  EXPECT_FALSE(cp.restore().has_value());
  EXPECT_EQ(x, 3);
  EXPECT_TRUE(fs::is_directory(dir / "new/sub"));
}

TEST(LoopHelper, ResumesAtRestoredStepAndSavesPerPolicy) {
  ScratchDir dir;
  std::int64_t counter = 0; // a replicated counter advanced once per step
  std::vector<std::int64_t> visited;
  {
    auto o = test_options(dir.path());
    o.every = 3;
    o.final = false;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.replicated("counter", &counter);
    for (auto step : cp.steps(8)) {
      EXPECT_EQ(counter, step);
      ++counter;
    }
    EXPECT_EQ(cp.stopped(), ckpt::StopReason::finished);
    EXPECT_EQ(cp.exit_code(), 0);
    EXPECT_EQ(cp.stats().saves, 2); // after steps 3 and 6
  }
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].step, 6);
  EXPECT_EQ(ckpt::read_latest(dir.path()), std::optional<std::int64_t>(6));
  counter = -100;
  auto o = test_options(dir.path());
  o.every = 3;
  o.final = true;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.replicated("counter", &counter);
  for (auto step : cp.steps(10)) {
    visited.push_back(step);
    EXPECT_EQ(counter, step);
    ++counter;
  }
  EXPECT_EQ(visited, (std::vector<std::int64_t>{6, 7, 8, 9}));
  EXPECT_EQ(ckpt::list_checkpoints(dir.path())[0].step, 10); // final save
}

TEST(LoopHelper, RequestStopSavesAndEndsWithExitMoreWork) {
  ScratchDir dir;
  std::int64_t counter = 0;
  auto o = test_options(dir.path());
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.replicated("counter", &counter);
  std::int64_t last = -1;
  for (auto step : cp.steps(1'000'000)) {
    ++counter;
    last = step;
    if (step == 4 && world_rank() == 0)
      cp.request_stop(); // only rank 0 asks; the agreement tells everyone
  }
  EXPECT_EQ(cp.stopped(), ckpt::StopReason::requested);
  EXPECT_EQ(cp.exit_code(), ckpt::exit_more_work);
  // Agreed at most two agreement periods later (at most 1000 boundaries each; cheap steps
  // make them that long).
  EXPECT_GT(last, 4);
  EXPECT_LE(last, 4 + 2 * 1000 + 1);
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, last + 1);
  EXPECT_EQ(counter, last + 1);
}

TEST(Retention, KeepsNewestK) {
  ScratchDir dir;
  int x = 0;
  auto o = test_options(dir.path());
  o.keep = 2;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.replicated("x", &x);
    for (int s = 1; s <= 5; ++s) {
      x = s;
      cp.save(s * 10);
      // Pruned when save returns (the blocks of a pruned file may still be being freed).
      const auto list = ckpt::list_checkpoints(dir.path());
      ASSERT_EQ(list.size(), std::min(s, 2));
      EXPECT_EQ(list[0].step, s * 10);
    }
    auto list = ckpt::list_checkpoints(dir.path());
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].step, 50);
    EXPECT_EQ(list[1].step, 40);
  }
  // No temp files are left behind.
  MPI_Barrier(MPI_COMM_WORLD);
  for (const auto &e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Format, InspectShowsAttributesAndBlocks) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::uint64_t off, cnt;
  row_block(10, rank, size, off, cnt);
  std::vector<float> u(cnt * 3, 1.0f);
  auto o = test_options(dir.path());
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.distributed("u", u.data(), {.global = {10, 3}, .offset = {off, 0}, .count = {cnt, 3}});
  cp.metadata("model", "heat");
  cp.save(7, 0.25);
  auto info = ckpt::inspect(dir / ckpt::checkpoint_file_name(7));
  EXPECT_EQ(info.format, "ckpt");
  EXPECT_EQ(info.format_major, 1);
  EXPECT_EQ(info.step, 7);
  EXPECT_EQ(info.time, 0.25);
  EXPECT_EQ(info.nranks, size);
  EXPECT_EQ(info.metadata.at("model"), "heat");
  ASSERT_NE(info.field("u"), nullptr);
  EXPECT_EQ(info.field("u")->shape, (ckpt::Shape{10, 3}));
  EXPECT_EQ(info.field("u")->dtype, ckpt::Dtype::f32);
  auto rep = ckpt::verify(dir / ckpt::checkpoint_file_name(7));
  EXPECT_TRUE(rep.ok) << rep.reason;
  EXPECT_EQ(rep.blocks_checked, std::uint64_t(std::min<int>(size, 10)));
}

// On-disk size: at most 1.05 x the payload + 64 KiB, for small states (no padding to large
// boundaries) and for several fields (each dataset aligned to a page at most).
TEST(Format, FileSizeIsPayloadPlusLittle) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::int64_t step = 0;
  for (std::uint64_t total : {std::uint64_t(64) << 10, std::uint64_t(1) << 20, std::uint64_t(2) << 20}) {
    for (int nfields : {1, 4}) {
      const std::uint64_t n = total / 8 / std::uint64_t(nfields); // elements per field
      std::uint64_t off, cnt;
      row_block(n, rank, size, off, cnt);
      std::vector<std::vector<double>> f(static_cast<std::size_t>(nfields), std::vector<double>(cnt, 2.5));
      ckpt::FieldSet set;
      const char *names[] = {"f0", "f1", "f2", "f3"};
      for (int i = 0; i < nfields; ++i)
        set.distributed(names[i], f[std::size_t(i)].data(), {.global = {n}, .offset = {off}, .count = {cnt}});
      ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
      cp.save(set, ++step);
      const auto bytes = fs::file_size(dir / ckpt::checkpoint_file_name(step));
      EXPECT_LE(double(bytes), 1.05 * double(total) + 65536.0)
          << nfields << " field(s) of " << total << " bytes in all: a file of " << bytes << " bytes";
      EXPECT_GE(bytes, total);
    }
  }
}

TEST(RoundTrip, EmptyFields) {
  ScratchDir dir;
  std::vector<double> none_anywhere;          // empty on every rank
  std::vector<std::int32_t> some(world_rank() % 2 ? 3 : 0, 7); // empty on some ranks
  std::vector<float> dist;                    // a global array with no elements
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.per_rank("none", none_anywhere);
    cp.per_rank("some", some);
    cp.distributed("dist", dist.data(), {.global = {0, 4}, .offset = {0, 0}, .count = {0, 4}});
    cp.save(3);
  }
  some.assign(5, 0);
  none_anywhere.assign(2, 1.0);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.per_rank("none", none_anywhere);
  cp.per_rank("some", some);
  cp.distributed("dist", dist.data(), {.global = {0, 4}, .offset = {0, 0}, .count = {0, 4}});
  EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(3));
  EXPECT_TRUE(none_anywhere.empty());
  EXPECT_EQ(some, std::vector<std::int32_t>(world_rank() % 2 ? 3 : 0, 7));
  EXPECT_TRUE(ckpt::verify(dir / ckpt::checkpoint_file_name(3)).ok);
}

// One session, a different field set at each save: a field added, one resized, one
// removed. Each checkpoint holds exactly the set it was given, and restores into a set.
TEST(FieldSets, OneSessionDifferentSetPerSave) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::uint64_t off, cnt;
  row_block(8, rank, size, off, cnt);
  std::vector<double> u(cnt * 4);
  for (std::uint64_t i = 0; i < u.size(); ++i)
    u[i] = double(off * 4 + i);
  std::vector<std::int64_t> particles(2 + rank, 10 + rank);
  double t = 0.5;
  std::int32_t phase = 1;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    ckpt::FieldSet a;
    a.distributed("u", u.data(), {.global = {8, 4}, .offset = {off, 0}, .count = {cnt, 4}});
    a.replicated("t", &t);
    cp.save(a, 1, t);

    ckpt::FieldSet b = a;              // a value: copy, then change
    b.per_rank("particles", particles); // added
    EXPECT_TRUE(b.remove("t"));         // removed
    EXPECT_FALSE(b.remove("t"));
    b.replicated("phase", &phase);
    particles.resize(5 + rank, 20 + rank); // resized before this save
    cp.save(b, 2, 1.0);
    EXPECT_EQ(cp.stats().saves, 2); // one session counted both
    EXPECT_TRUE(cp.fields().empty()); // nothing was registered: the sets were handed in
  }
  const auto one = ckpt::inspect(dir / ckpt::checkpoint_file_name(1));
  const auto two = ckpt::inspect(dir / ckpt::checkpoint_file_name(2));
  auto names = [](const ckpt::CheckpointInfo &info) {
    std::vector<std::string> n;
    for (const auto &f : info.fields)
      n.push_back(f.name);
    std::sort(n.begin(), n.end());
    return n;
  };
  EXPECT_EQ(names(one), (std::vector<std::string>{"t", "u"}));
  EXPECT_EQ(names(two), (std::vector<std::string>{"particles", "phase", "u"}));

  // Restore into a set of new buffers.
  std::vector<double> u2(cnt * 4, -1);
  std::vector<std::int64_t> p2;
  std::int32_t phase2 = 0;
  ckpt::FieldSet r;
  r.distributed("u", u2.data(), {.global = {8, 4}, .offset = {off, 0}, .count = {cnt, 4}});
  r.per_rank("particles", p2);
  r.replicated("phase", &phase2);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  EXPECT_EQ(cp.restore(r), std::optional<std::int64_t>(2));
  EXPECT_EQ(u2, u);
  std::vector<std::int64_t> want(2 + rank, 10 + rank); // as it was at save 2
  want.resize(5 + rank, 20 + rank);
  EXPECT_EQ(p2, want);
  EXPECT_EQ(phase2, 1);
  // A set that asks for a field the checkpoint lacks is refused, naming the field.
  ckpt::FieldSet missing = r;
  missing.replicated("t", &t);
  try {
    cp.restore_from(missing, dir / ckpt::checkpoint_file_name(2));
    ADD_FAILURE() << "restore of a set with a field the file lacks succeeded";
  } catch (const ckpt::Error &e) {
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos) << e.what();
  }
  // The registration checks are the set's own: a duplicate name, a bad name.
  EXPECT_THROW(r.replicated("phase", &phase2), ckpt::Error);
  EXPECT_THROW(r.replicated("a/b", &phase2), ckpt::Error);
}

// Small saves rewrite only what changes in rank 0's in-memory file (the step, the time, the
// checksums, metadata values): every one of many saves in a row must restore exactly its own
// values, and the file must not grow from save to save. The metadata value changes at every
// save and its length at every fourth, so saves alternate between HDF5 rewriting the values
// and a patch of the previous image (FileImage::patch).
// Sync and async: async small saves are hashed, patched and written on rank 0's background
// writer.
class SmallSaves : public ::testing::TestWithParam<ckpt::Mode> {};

TEST_P(SmallSaves, EverySaveOfAReusedImageRestoresItsOwnValues) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  const std::uint64_t n0 = 40, n1 = 30;
  std::uint64_t off, cnt;
  row_block(n0, rank, size, off, cnt);
  std::vector<double> u(cnt * n1);
  std::int64_t counter = 0;
  auto fill = [&](std::int64_t s) {
    for (std::uint64_t i = 0; i < u.size(); ++i)
      u[i] = value_at<double>(std::uint64_t(s), off * n1 + i);
    counter = s * 3;
  };
  auto note = [](std::int64_t s) { return std::string(std::size_t(s / 4 % 23) * 40 + 1, char('a' + s % 26)); };
  auto o = test_options(dir.path());
  o.keep = 0;
  o.mode = GetParam();
  std::uintmax_t smallest = ~std::uintmax_t(0), largest = 0;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.distributed("u", u.data(), {.global = {n0, n1}, .offset = {off, 0}, .count = {cnt, n1}});
    cp.replicated("counter", &counter);
    for (std::int64_t s = 1; s <= 60; ++s) {
      fill(s);
      cp.metadata("note", note(s));
      cp.save(s, 0.5 * double(s));
    }
  } // async: the destructor commits the last save
  if (rank == 0) {
    for (std::int64_t s = 1; s <= 60; ++s) {
      const auto bytes = fs::file_size(dir / ckpt::checkpoint_file_name(s));
      smallest = std::min(smallest, bytes);
      largest = std::max(largest, bytes);
    }
    EXPECT_LE(largest, smallest + (16u << 10)) << "the file grew from save to save";
  }
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.distributed("u", u.data(), {.global = {n0, n1}, .offset = {off, 0}, .count = {cnt, n1}});
  cp.replicated("counter", &counter);
  for (std::int64_t s : {1, 2, 17, 23, 59, 60}) {
    std::fill(u.begin(), u.end(), -1.0);
    counter = -1;
    EXPECT_EQ(cp.restore_from(dir / ckpt::checkpoint_file_name(s)), s);
    const auto got = u;
    const std::int64_t got_counter = counter;
    fill(s);
    EXPECT_EQ(got_counter, s * 3);
    EXPECT_EQ(std::memcmp(got.data(), u.data(), u.size() * sizeof(double)), 0) << "step " << s;
    const auto info = ckpt::inspect(dir / ckpt::checkpoint_file_name(s));
    EXPECT_EQ(info.step, s);
    EXPECT_EQ(info.time, 0.5 * double(s));
    EXPECT_EQ(info.metadata.at("note"), note(s));
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, SmallSaves, ::testing::Values(ckpt::Mode::sync, ckpt::Mode::async),
                         [](const auto &info) { return info.param == ckpt::Mode::sync ? "sync" : "async"; });

// A small save with the structure of the previous one (and metadata values of the same
// lengths) patches rank 0's last image without calling HDF5 (FileImage::patch). The patched
// file must be a valid checkpoint of the new values: HDF5 reads it (its own metadata
// checksums pass), ckpt's header and block checksums pass, and every value is the new one.
TEST(SmallSaveImage, APatchedImageIsAValidCheckpointOfTheNewValues) {
  ScratchDir dir; // collective
  if (world_rank() != 0)
    return;
  namespace F = ckpt::formats;
  std::vector<double> a(120), b(120);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = double(i);
    b[i] = -0.5 * double(i);
  }
  auto fields = [](const std::vector<double> &v, std::uint64_t rows) {
    F::FieldWrite f;
    f.name = "u";
    f.kind = ckpt::Kind::distributed;
    f.dtype = ckpt::Dtype::f64;
    f.shape = {rows, v.size() / rows};
    ckpt::BlockInfo blk;
    blk.offset = {0, 0};
    blk.count = f.shape;
    blk.local_shape = f.shape;
    blk.checksum = F::checksum(v.data(), v.size() * sizeof(double));
    f.blocks = {blk};
    return std::vector<F::FieldWrite>{f};
  };
  auto write = [&](const F::Staging &image, std::uint64_t bytes, const char *name) {
    const fs::path file = dir / name;
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char *>(image.data()), std::streamsize(bytes));
    return file;
  };

  F::Header h1;
  h1.step = 5;
  h1.time = 1.5;
  h1.metadata = {{"note", "first"}, {"z", "1"}};
  F::FileImage fi;
  F::Staging image;
  F::Layout layout;
  const std::uint64_t built = fi.build(h1, fields(a, 10), image, layout);
  std::memcpy(image.data() + layout.data_offset[0], a.data(), a.size() * sizeof(double));
  EXPECT_TRUE(ckpt::verify(write(image, built, "built.h5")).ok);

  F::Header h2 = h1;
  h2.step = 123456789012;
  h2.time = -2.25;
  h2.metadata = {{"note", "later"}, {"z", "2"}};
  ASSERT_TRUE(fi.patchable(h2, fields(b, 10))) << "same structure, same value lengths";
  const std::uint64_t patched = fi.patch(h2, fields(b, 10), image, layout);
  EXPECT_EQ(patched, built);
  std::memcpy(image.data() + layout.data_offset[0], b.data(), b.size() * sizeof(double));
  const fs::path file = write(image, patched, "patched.h5");
  const auto report = ckpt::verify(file);
  EXPECT_TRUE(report.ok) << report.reason;
  EXPECT_EQ(report.bytes_checked, b.size() * sizeof(double));
  const auto info = ckpt::inspect(file);
  EXPECT_EQ(info.step, h2.step);
  EXPECT_EQ(info.time, h2.time);
  EXPECT_EQ(info.metadata, h2.metadata);

  // A changed value in the patched file is found: the checksums are the new values' own.
  image.data()[layout.data_offset[0] + 3] ^= std::byte{1};
  EXPECT_FALSE(ckpt::verify(write(image, patched, "damaged.h5")).ok);

  // Anything else goes through HDF5 again.
  F::Header longer = h2;
  longer.metadata["note"] = "a longer value";
  EXPECT_FALSE(fi.patchable(longer, fields(b, 10))) << "a metadata value of another length";
  EXPECT_FALSE(fi.patchable(h2, fields(b, 12))) << "another shape";
  F::Header more = h2;
  more.metadata["y"] = "3";
  EXPECT_FALSE(fi.patchable(more, fields(b, 10))) << "another metadata key";
}

namespace {

std::set<pid_t> thread_ids() {
  std::set<pid_t> ids;
  if (DIR *d = ::opendir("/proc/self/task")) {
    while (const dirent *e = ::readdir(d))
      if (e->d_name[0] != '.')
        ids.insert(static_cast<pid_t>(std::atoi(e->d_name)));
    ::closedir(d);
  }
  return ids;
}

// How many CPUs the threads that appear while `body` runs may use (one entry per thread).
template <class F> std::vector<int> cpus_of_new_threads(F &&body) {
  const auto before = thread_ids();
  body();
  std::vector<int> counts;
  for (const pid_t t : thread_ids())
    if (!before.count(t)) {
      cpu_set_t set;
      if (::sched_getaffinity(t, sizeof set, &set) == 0)
        counts.push_back(CPU_COUNT(&set));
    }
  return counts;
}

} // namespace

// A launcher binds each rank to one core; the async writer must not be stuck taking turns
// with the solver on it (Options::writer_any_cpu), unless asked to keep the binding.
TEST(AsyncWriter, RunsOnAnyCpuOfTheProcessUnlessToldToInherit) {
  ScratchDir dir;
  cpu_set_t mine, allowed;
  ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0); // this rank's binding, restored at the end
  // Every CPU the cpuset allows: ask for all, the kernel keeps those.
  CPU_ZERO(&allowed);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    CPU_SET(c, &allowed);
  ASSERT_EQ(::sched_setaffinity(0, sizeof allowed, &allowed), 0);
  ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
  int first = 0;
  while (!CPU_ISSET(first, &mine))
    ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0); // as `mpiexec --bind-to core` does
  for (const bool any : {true, false}) {
    auto o = test_options(dir.path());
    o.mode = ckpt::Mode::async;
    o.writer_any_cpu = any;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    std::int64_t x = 1;
    cp.replicated("x", &x);
    const auto counts = cpus_of_new_threads([&] {
      cp.save(any ? 1 : 2);
      cp.wait();
    });
    if (world_rank() == 0) { // the writer of a small save is rank 0's
      ASSERT_EQ(counts.size(), 1u) << "one new thread: the writer";
      if (any)
        EXPECT_EQ(counts[0], CPU_COUNT(&allowed)) << "the writer may use every CPU of the cpuset";
      else
        EXPECT_EQ(counts[0], 1) << "the writer keeps the rank's binding";
    }
  }
  ASSERT_EQ(::sched_setaffinity(0, sizeof mine, &mine), 0);
}

// The writer naps between saves that come often and sleeps between rare ones
// (libckpt/src/async_writer.hpp); either way every save is written with its own values,
// and a Checkpointer destroyed while its writer naps returns.
TEST(AsyncWriter, SavesThatComeOftenOrRarelyAreEachWritten) {
  ScratchDir dir;
  std::vector<std::int64_t> order; // the steps in the order they were saved
  {
    auto o = test_options(dir.path());
    o.mode = ckpt::Mode::async;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    std::int64_t x = 0;
    cp.replicated("x", &x);
    auto save = [&](std::int64_t step) {
      x = 1000 + step;
      cp.save(step);
      order.push_back(step);
    };
    for (std::int64_t s = 1; s <= 30; ++s) // back to back: the writer naps
      save(s);
    for (std::int64_t s = 31; s <= 33; ++s) { // 20 ms apart, more than the nap limit: it sleeps
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      save(s);
    }
    for (std::int64_t s = 34; s <= 40; ++s)
      save(s);
  } // destroyed while the writer naps
  const auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), order.size()) << "every save committed (keep = 0)";
  for (const auto &e : list) {
    auto o = test_options(dir.path());
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    std::int64_t x = -1;
    cp.replicated("x", &x);
    ASSERT_EQ(cp.restore_from(e.path.string()), e.step);
    EXPECT_EQ(x, 1000 + e.step) << e.path;
  }
}

// The decoder that finds where a patch writes (formats/src/image_spots.cpp) reports "not
// found" for anything it cannot trust, and FileImage then keeps building with HDF5: a damaged
// object header chunk (its checksum), a truncated image, bytes that are no HDF5 file, a name
// that is not there.
TEST(SmallSaveImage, TheDecoderRefusesWhatItCannotTrust) {
  ScratchDir dir;
  if (world_rank() != 0)
    return;
  namespace F = ckpt::formats;
  std::vector<double> v(16, 1.0);
  F::FieldWrite f;
  f.name = "v";
  f.kind = ckpt::Kind::distributed;
  f.dtype = ckpt::Dtype::f64;
  f.shape = {16};
  ckpt::BlockInfo blk;
  blk.offset = {0};
  blk.count = {16};
  blk.local_shape = {16};
  f.blocks = {blk};
  F::Header h;
  h.step = 77;
  h.metadata = {{"k", "value"}};
  F::FileImage fi;
  F::Staging image;
  F::Layout layout;
  const std::uint64_t n = fi.build(h, {f}, image, layout);
  const std::vector<std::string> names{"step", "meta.k"};
  const auto spots = F::detail::find_root_attributes(image.data(), n, names);
  ASSERT_TRUE(spots.has_value());
  std::int64_t step = 0;
  std::memcpy(&step, image.data() + (*spots)[0].at, 8);
  EXPECT_EQ(step, 77);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(image.data() + (*spots)[1].at), (*spots)[1].bytes), "value");
  EXPECT_GT((*spots)[0].chunk_bytes, 4u) << "step lies in an object header chunk with a checksum";
  EXPECT_EQ((*spots)[1].chunk_bytes, 0u) << "a string lies in the global heap, which has none";

  EXPECT_FALSE(F::detail::find_root_attributes(image.data(), n, {"step", "no such attribute"}));
  EXPECT_FALSE(F::detail::find_root_attributes(image.data(), (*spots)[0].chunk + 8, names)) << "truncated";
  std::vector<std::byte> junk(n, std::byte{0x5a});
  EXPECT_FALSE(F::detail::find_root_attributes(junk.data(), n, names)) << "not HDF5";
  image.data()[(*spots)[0].at] ^= std::byte{1}; // a changed value without its checksum updated
  EXPECT_FALSE(F::detail::find_root_attributes(image.data(), n, names)) << "damaged chunk";
  F::detail::update_chunk_checksum(image.data(), (*spots)[0]);
  EXPECT_TRUE(F::detail::find_root_attributes(image.data(), n, names)) << "checksum updated";
}
