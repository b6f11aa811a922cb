#pragma once
// The first half of MPI_COMM_WORLD as a world of its own, for the proofs that N/2 processes of
// 2 virtual ranks each train like N real ranks (the same global batch).
#include <mpi.h>

#include <functional>

#include "comm/MpiCommunicator.h"
#include "config/Config.h"

namespace ddp::testing_data {

// Calls body(half, config with twice the virtual ranks) on ranks 0..N/2-1; the other ranks
// skip it. Collective: every rank of the world must call it. The sub-communicator is freed
// even when a failed ASSERT returns from body early.
inline void on_half_world(const Communicator& world, const Config& config,
                          const std::function<void(Communicator& half, const Config& virtual_config)>& body) {
  MPI_Comm half_comm;
  const bool in_half = world.rank() < world.size() / 2;
  MPI_Comm_split(MPI_COMM_WORLD, in_half ? 0 : 1, world.rank(), &half_comm);
  if (in_half) {
    MpiCommunicator half(half_comm);
    Config virtual_config = config;
    virtual_config.train.virtual_ranks = 2 * config.train.virtual_ranks;
    body(half, virtual_config);
  }
  MPI_Comm_free(&half_comm);
}

}  // namespace ddp::testing_data
