// Deadlines of MPI collectives. Runs under mpiexec -n 2 and -n 4; the last rank plays the
// one that does not come, and with 4 ranks the others must not name each other.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "comm/MpiCommunicator.h"
#include "comm/MpiRuntime.h"

namespace ddp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Deadline : public ::testing::Test {
 protected:
  // The tests' own coordination, with the default deadline.
  std::unique_ptr<Communicator> world = make_mpi_world_communicator();
  const int absent = world->size() - 1;
  std::vector<std::string> warnings;

  // A communicator that throws at its deadline, so that the test can look at the message.
  std::unique_ptr<MpiCommunicator> make(double timeout_s) {
    DeadlineOptions options;
    options.timeout_s = timeout_s;
    options.throw_on_timeout = true;
    options.warn = [this](const std::string& line) { warnings.push_back(line); };
    return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options);
  }

  // How messages name the absent rank: every rank of these tests runs on this host.
  std::string absent_name() const {
    char host[MPI_MAX_PROCESSOR_NAME] = {};
    int length = 0;
    MPI_Get_processor_name(host, &length);
    return "rank " + std::to_string(absent) + " (" + host + ")";
  }
};

TEST_F(Deadline, ACollectiveOneRankNeverJoinsEndsAtTheDeadlineNamingThatRank) {
  auto comm = make(2.0);
  comm->set_step(7);
  torch::Tensor values = torch::ones({16});  // outlives the given-up collective, which writes it
  if (comm->rank() != absent) {
    const Clock::time_point start = Clock::now();
    std::string error;
    try {
      comm->allreduce(values, ReduceOp::Sum);
    } catch (const CollectiveTimeout& e) {
      error = e.what();
    }
    const double took = seconds_since(start);
    EXPECT_GE(took, 2.0);
    EXPECT_LT(took, 3.0);
    EXPECT_NE(error.find("allreduce #1 (step 7) did not complete within 2 s (comm.timeout_s): " + absent_name() +
                         " did not arrive"),
              std::string::npos)
        << error;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("allreduce #1 (step 7) waiting "), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("for " + absent_name() + ";"), std::string::npos) << warnings[0];
  }
  // The absent rank comes only after the others gave up, and completes their collective
  // (MPI can neither cancel nor free it) while they wait in the second barrier.
  world->barrier();
  if (comm->rank() == absent) comm->allreduce(values, ReduceOp::Sum);
  world->barrier();
}

TEST_F(Deadline, ALateRankIsWarnedAboutThenTheCollectiveCompletes) {
  auto comm = make(2.0);
  if (comm->rank() == absent) std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  torch::Tensor values = torch::full({16}, float(comm->rank()));
  comm->allreduce(values, ReduceOp::Sum);
  const float n = float(comm->size());
  EXPECT_TRUE(values.eq(n * (n - 1) / 2).all().item<bool>());
  if (comm->rank() != absent) {
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("allreduce #1 waiting"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("for " + absent_name() + ";"), std::string::npos) << warnings[0];
  } else {
    EXPECT_TRUE(warnings.empty());
  }
}

TEST_F(Deadline, EveryCollectiveHasTheDeadline) {
  auto comm = make(1.0);
  // The absent rank never joins: the given-up collectives stay pending on the others. It
  // keeps its communicator until they are done, so that no message of theirs arrives for
  // one already freed.
  if (comm->rank() == absent) return world->barrier();
  torch::Tensor values = torch::ones({4});
  const std::vector<std::pair<std::string, std::function<void()>>> collectives = {
      {"broadcast #1", [&] { comm->broadcast(values, absent); }},  // from the absent rank: the root waits for no one
      {"barrier #2", [&] { comm->barrier(); }},
      {"allgather #3", [&] { comm->allgather("x"); }},
      {"allreduce (any) #4", [&] { comm->any(true); }},
  };
  for (const auto& [name, collective] : collectives) {
    std::string error = "no timeout";
    try {
      collective();
    } catch (const CollectiveTimeout& e) {
      error = e.what();
    }
    EXPECT_NE(error.find(name + " did not complete within 1 s (comm.timeout_s): " + absent_name()), std::string::npos)
        << error;
  }
  world->barrier();
}

}  // namespace
}  // namespace ddp
