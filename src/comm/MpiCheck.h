#pragma once
// DDP_MPI_CHECK for the MPI code in src/comm. Errors are returned (MPI_ERRORS_RETURN),
// not fatal, so they become exceptions that say which rank and call failed; the enclosing
// class must have an int `rank_`.
#include <mpi.h>

#include <stdexcept>
#include <string>

#define DDP_MPI_CHECK(call)                                                                               \
  do {                                                                                                    \
    const int ddp_mpi_rc = (call);                                                                        \
    if (ddp_mpi_rc != MPI_SUCCESS) {                                                                      \
      char ddp_mpi_msg[MPI_MAX_ERROR_STRING];                                                             \
      int ddp_mpi_len = 0;                                                                                \
      MPI_Error_string(ddp_mpi_rc, ddp_mpi_msg, &ddp_mpi_len);                                            \
      throw std::runtime_error(std::string("rank ") + std::to_string(rank_) + ": " #call " failed at " + \
                               __FILE__ + ":" + std::to_string(__LINE__) + ": " +                          \
                               std::string(ddp_mpi_msg, ddp_mpi_len));                                     \
    }                                                                                                     \
  } while (0)
