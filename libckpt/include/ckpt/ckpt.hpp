#pragma once
/// \file
/// Umbrella header of the ckpt C++ API.
///
/// \code
/// #include <ckpt/ckpt.hpp>
/// ckpt::Checkpointer cp(MPI_COMM_WORLD, {.dir = "run", .every = 100});
/// cp.distributed("u", u.data(), {.global = {n, n}, .offset = {y0, x0}, .count = {ny, nx}});
/// for (auto step : cp.steps(nsteps)) advance(u);
/// return cp.exit_code();
/// \endcode

#include <ckpt/catalog.hpp>
#include <ckpt/checkpointer.hpp>
#include <ckpt/error.hpp>
#include <ckpt/options.hpp>
#include <ckpt/signals.hpp>
#include <ckpt/types.hpp>
