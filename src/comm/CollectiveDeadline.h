#pragma once
// Every wait on other ranks ends. A collective is posted non-blocking and waited for
// here: a wait that reaches comm.timeout_s ends the job with one line naming the
// collective, the step and the ranks (and hosts) that did not arrive, as NCCL's watchdog
// and Horovod's stall check do; at a quarter of the deadline a warning names them.
//
// Waiting: MPI_Test in a tight loop for the first kSpin (the blocking MPI calls spin the
// same way, so a fast collective gets no wake-up latency), then MPI_Test between naps
// that grow to 1 ms, so a long wait leaves the core to ranks that still compute.
//
// Naming who did not arrive: a blocking collective cannot tell, so ranks tell each other,
// but only from a long wait, the way Horovod's stall inspector only speaks on its slow
// path. A rank that has waited one beat in collective #k sends k to every other rank as
// a point-to-point message (which never matches a collective) and repeats every beat
// while it waits. Rank r counts as arrived at #k if it said more than k (it got past #k), or said
// k within the last three beats (a rank stopped inside the collective falls silent). A
// collective that ends within a beat sends nothing: its cost is a counter increment.
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/Communicator.h"

namespace ddp {

struct DeadlineOptions {
  double timeout_s = kDefaultCommTimeoutS;
  // Throw CollectiveTimeout instead of ending the job (tests; see Communicator.h).
  bool throw_on_timeout = false;
  // Where the stall warning line goes; stderr when empty.
  std::function<void(const std::string&)> warn;
};

class CollectiveDeadline {
 public:
  // Collective over `comm`: duplicates it and gathers the host names.
  CollectiveDeadline(MPI_Comm comm, DeadlineOptions options);
  ~CollectiveDeadline();
  CollectiveDeadline(const CollectiveDeadline&) = delete;
  CollectiveDeadline& operator=(const CollectiveDeadline&) = delete;

  // The duplicate to post the collectives on: theirs alone, so they never match those of
  // another communicator over the same ranks.
  MPI_Comm comm() const { return comm_; }

  // Waits for `request` of the next collective on this communicator (every rank calls
  // this in the same order); `what` names it ("allreduce") in messages.
  void wait(MPI_Request& request, const char* what) { wait_all(&request, 1, what); }
  // The same for `count` collectives posted together: one number, one deadline for all.
  void wait_all(MPI_Request* requests, int count, const char* what);

  void set_step(int64_t step) { step_ = step; }
  void set_timeout(double seconds) { options_.timeout_s = seconds; }
  double timeout_s() const { return options_.timeout_s; }
  // "rank 1 (node2)": how messages name a rank.
  std::string name_of(int rank) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Peer {
    int64_t said = 0;   // highest collective number this rank announced
    Clock::time_point heard{};
    int64_t out = 0;    // the number in flight to it (MPI needs the buffer until sent)
    MPI_Request send = MPI_REQUEST_NULL;
  };

  bool done(MPI_Request& request) { return done(&request, 1); }
  bool done(MPI_Request* requests, int count);
  void wait_long(MPI_Request* requests, int count, const char* what, int64_t seq);
  void say(int64_t seq);
  void listen(Clock::time_point now);
  std::vector<int> not_arrived(int64_t seq, Clock::time_point now) const;
  std::string number_and_host(int rank) const;
  std::string names_of(const std::vector<int>& ranks) const;
  std::string label(const char* what, int64_t seq) const;
  Clock::duration beat() const;
  void warn(const std::string& line) const;
  [[noreturn]] void expire(MPI_Request* requests, int count, const char* what, int64_t seq, Clock::time_point now);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  DeadlineOptions options_;
  std::vector<std::string> hosts_;
  std::vector<Peer> peers_;
  int64_t entered_ = 0;  // collectives entered on this communicator
  int64_t step_ = -1;
  // Collectives given up on in throw mode: MPI cannot cancel or free them.
  std::vector<MPI_Request> abandoned_;
};

}  // namespace ddp
