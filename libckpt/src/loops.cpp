// Nested loops and phases (Checkpointer::loop, Checkpointer::phase): the position of the
// program in its loop nest is saved with every checkpoint as the replicated int64 field
// `ckpt.position`, and a restarted program re-enters the nest there. The step boundary is
// the one of every loop (step_boundary.cpp, after_step); the same rules as Python's
// Checkpointer.loop/phase (python/ckpt/_loops.py), with loops and phases identified by the
// order in which an iteration enters them (and checked by the hash of their name).
#include "session.hpp"

#include <fmt/format.h>

#include <exception>

namespace ckpt {

namespace {

constexpr std::int64_t position_version = 1;

std::int64_t name_hash(const std::string &name) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h & 0x7fffffffffffffffull);
}

std::string where(const detail::LoopNest &L) {
  if (L.frames.empty())
    return "the top level";
  std::string s;
  for (const auto &f : L.frames)
    s += fmt::format("{}{}[{}]", s.empty() ? "" : "/", f.name, f.i);
  return s;
}

} // namespace

void detail::LoopNest::encode() {
  buf.fill(0);
  buf[0] = position_version;
  buf[2] = top_done;
  std::size_t d = 0;
  for (; d < frames.size(); ++d) {
    buf[3 + 3 * d] = frames[d].hash;
    buf[4 + 3 * d] = frames[d].i;
    buf[5 + 3 * d] = frames[d].done;
  }
  for (; d < replay.size(); ++d) { // not re-entered yet: still where it was saved
    buf[3 + 3 * d] = replay[d].hash;
    buf[4 + 3 * d] = replay[d].i;
    buf[5 + 3 * d] = replay[d].done;
  }
  buf[1] = static_cast<std::int64_t>(d);
}

void detail::LoopNest::decode(const std::string &what) {
  const std::int64_t depth = buf[1];
  if (buf[0] != position_version || depth < 0 || depth > static_cast<std::int64_t>(max_depth) || buf[2] < 0)
    throw Error(Errc::corrupt, -1,
                fmt::format("loop: the position saved in {} is not one this version reads (version {}, "
                            "depth {})",
                            what, buf[0], depth));
  top_done = buf[2];
  replay.clear();
  LoopPosition pos;
  pos.done = top_done;
  for (std::int64_t d = 0; d < depth; ++d) {
    const auto k = static_cast<std::size_t>(d);
    Saved s{buf[3 + 3 * k], buf[4 + 3 * k], buf[5 + 3 * k]};
    if (s.i < 0 || s.done < 0)
      throw Error(Errc::corrupt, -1, fmt::format("loop: the position saved in {} has a negative index", what));
    replay.push_back(s);
    pos.stack.push_back({s.i, s.done});
  }
  restored = pos;
}

// The first loop or phase of the program: registers the position field and restores.
static void open_nest(Checkpointer &cp, Checkpointer::Impl &m, const std::string &name, std::int64_t n) {
  if (n < 0)
    throw Error(Errc::invalid_argument, m.rank(), fmt::format("loop '{}': negative count {}", name, n));
  if (!m.nest) {
    if (m.restore_done)
      throw Error(Errc::invalid_argument, m.rank(),
                  "loop/phase: the first top-level loop or phase restores the checkpoint with its "
                  "position; call it without calling restore() or steps() first");
    auto nest = std::make_unique<detail::LoopNest>();
    cp.replicated(detail::LoopNest::field, Dtype::i64, nest->buf.data(), {detail::LoopNest::words});
    m.nest = std::move(nest);
    if (const auto r = cp.restore()) {
      m.nest->decode(fmt::format("the checkpoint of step {}", *r));
      m.nest->step = *r;
      const auto &p = *m.nest->restored;
      std::string at = fmt::format("{} top-level loop(s)/phase(s) done", p.done);
      for (const auto &l : p.stack)
        at += fmt::format(", index {} ({} done inside)", l.index, l.done);
      m.log(fmt::format("resuming the loop nest at step {}: {}", *r, at));
    }
  }
}

LoopRange Checkpointer::loop(const std::string &name, std::int64_t n) {
  open_nest(*this, *impl_, name, n);
  return LoopRange(*this, name, n, false);
}

LoopRange Checkpointer::phase(const std::string &name) {
  open_nest(*this, *impl_, name, 1);
  return LoopRange(*this, name, 1, true);
}

std::vector<std::pair<std::string, std::int64_t>> Checkpointer::position() const {
  std::vector<std::pair<std::string, std::int64_t>> out;
  if (impl_->nest)
    for (const auto &f : impl_->nest->frames)
      out.emplace_back(f.name, f.i);
  return out;
}

std::optional<LoopPosition> Checkpointer::restored_position() const {
  return impl_->nest ? impl_->nest->restored : std::nullopt;
}

std::int64_t Checkpointer::loop_step() const noexcept { return impl_->nest ? impl_->nest->step : 0; }

LoopRange::iterator LoopRange::begin() {
  auto &m = *cp_->impl_;
  auto &L = *m.nest;
  if (active_)
    throw Error(Errc::invalid_argument, m.rank(), fmt::format("loop '{}': iterated twice", name_));
  if (L.halted)
    return end();
  detail::LoopNest::Frame *parent = L.frames.empty() ? nullptr : &L.frames.back();
  const std::int64_t k = parent ? parent->entered++ : L.top_entered++;
  if (parent)
    parent->nonleaf = true;
  else {
    m.stopped = StopReason::none;
    m.history.last_boundary = mono();
  }
  if (k < (parent ? parent->done : L.top_done))
    return end(); // done when the restored checkpoint was saved
  const std::size_t d = L.frames.size();
  if (d >= detail::LoopNest::max_depth) {
    L.halted = true; // an error ends the nest
    throw Error(Errc::invalid_argument, m.rank(),
                fmt::format("{} '{}' in {}: at most {} nested loops and phases", phase_ ? "phase" : "loop", name_, where(L),
                            detail::LoopNest::max_depth));
  }
  detail::LoopNest::Frame f;
  f.name = name_;
  f.hash = name_hash(name_);
  f.n = n_;
  if (d < L.replay.size()) {
    const auto &r = L.replay[d];
    if (r.hash != f.hash) {
      L.halted = true;
      throw Error(Errc::mismatch, m.rank(),
                  fmt::format("loop: the program entered '{}' in {}, but the restored checkpoint was saved "
                              "inside another loop or phase there; the loops and phases must be the same, "
                              "in the same order, as in the run that saved it",
                              name_, where(L)));
    }
    f.i = r.i;
    f.done = r.done;
    if (d + 1 < L.replay.size())
      f.nonleaf = true;
    else
      L.replay.clear(); // back where the checkpoint was saved
  }
  L.frames.push_back(std::move(f));
  depth_ = d;
  active_ = true;
  if (L.frames.back().i >= n_) { // an empty loop, or saved at its end with another count
    L.frames.pop_back();
    active_ = false;
    ++(L.frames.empty() ? L.top_done : L.frames.back().done);
    L.encode();
    return end();
  }
  L.encode(); // what a save() of the registered fields now stores
  return iterator(this, false);
}

std::int64_t LoopRange::iterator::operator*() const {
  const auto &L = *range_->cp_->impl_->nest;
  return L.frames.at(range_->depth_).i;
}

LoopRange::iterator &LoopRange::iterator::operator++() {
  LoopRange &r = *range_;
  auto &m = *r.cp_->impl_;
  auto &L = *m.nest;
  if (L.halted || !r.active_) {
    end_ = true;
    return *this;
  }
  if (L.frames.size() != r.depth_ + 1)
    throw Error(Errc::internal, m.rank(), fmt::format("loop '{}': a nested loop is still running", r.name_));
  auto &f = L.frames.back();
  const bool leaf = !f.nonleaf;
  ++f.i;
  f.done = f.entered = 0;
  f.nonleaf = false;
  const bool completed = f.i >= f.n;
  if (completed) { // recorded before the step's checkpoint: it saves the loop as done
    L.frames.pop_back();
    r.active_ = false;
    ++(L.frames.empty() ? L.top_done : L.frames.back().done);
    if (L.frames.size() < L.replay.size())
      L.replay.clear();
  }
  L.encode();
  try {
    if (leaf) {
      ++L.step;
      const StopReason why = r.cp_->after_step(L.step, false);
      if (why != StopReason::none && why != StopReason::finished) {
        L.halted = true;
        throw Stopped(why);
      }
    }
    if (completed) {
      end_ = true;
      if (L.frames.empty()) { // the end of a top-level loop or phase: the final checkpoint
        if (m.opts.final && m.saved_step != L.step) {
          r.cp_->save(L.step, m.sim_time);
        }
        r.cp_->wait();
        m.stopped = StopReason::finished;
      }
    }
  } catch (const Error &) {
    L.halted = true; // a failed save or commit ends the nest
    throw;
  }
  return *this;
}

LoopRange::~LoopRange() {
  // `break` out of the loop: it is done. Not after a stop or an error (they end the nest),
  // nor while an exception unwinds (the program is leaving the nest).
  if (!active_ || std::uncaught_exceptions() > 0)
    return;
  auto &L = *cp_->impl_->nest;
  if (L.halted || L.frames.size() <= depth_)
    return;
  L.frames.resize(depth_);
  ++(L.frames.empty() ? L.top_done : L.frames.back().done);
  if (L.frames.size() < L.replay.size())
    L.replay.clear();
  L.encode();
}

} // namespace ckpt
