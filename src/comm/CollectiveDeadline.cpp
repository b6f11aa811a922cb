#include "comm/CollectiveDeadline.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "comm/MpiCheck.h"
#include "comm/MpiRuntime.h"
#include "common/Errors.h"

namespace ddp {
namespace {

using Seconds = std::chrono::duration<double>;

// Polls before the clock is first read (40-180 ns a read on this VM): most collectives end sooner.
constexpr int kPollsBeforeClock = 64;
// Tight polling for this long; a step's all-reduce waits well under it.
constexpr auto kSpin = std::chrono::milliseconds(2);
constexpr auto kFirstNap = std::chrono::microseconds(50);
constexpr auto kLongestNap = std::chrono::milliseconds(1);
// A pause between two polls this long means this process was not running.
constexpr auto kStoppedGap = std::chrono::seconds(1);
// The stall warning comes at this fraction of comm.timeout_s (75 s of the default 300 s).
constexpr double kWarnFraction = 0.25;
// A rank silent for this many beats no longer counts as waiting in the collective.
constexpr int kBeatsToStale = 3;
// Messages name at most this many ranks, then say how many more.
constexpr size_t kRanksNamed = 8;
constexpr int kAnnounceTag = 1;

std::string seconds_text(double s) { return fmt::format("{:.3g} s", s); }

}  // namespace

CollectiveDeadline::CollectiveDeadline(MPI_Comm comm, DeadlineOptions options) : options_(std::move(options)) {
  DDP_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  DDP_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  DDP_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  DDP_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  peers_.resize(size_t(size_));
  // Host names once, so that every message can say where a rank runs; the gather itself
  // has the deadline (its messages name ranks only).
  char mine[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  DDP_MPI_CHECK(MPI_Get_processor_name(mine, &length));
  std::vector<char> all(size_t(size_) * MPI_MAX_PROCESSOR_NAME);
  MPI_Request request;
  DDP_MPI_CHECK(MPI_Iallgather(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                               comm_, &request));
  wait(request, "allgather of host names");
  entered_ = 0;  // numbers count the communicator's own collectives
  for (int r = 0; r < size_; ++r) hosts_.emplace_back(&all[size_t(r) * MPI_MAX_PROCESSOR_NAME]);
}

CollectiveDeadline::~CollectiveDeadline() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized || comm_ == MPI_COMM_NULL) return;
  // Announcements are 8-byte eager sends, complete locally; one still queued is let go.
  for (auto& peer : peers_)
    if (peer.send != MPI_REQUEST_NULL) MPI_Request_free(&peer.send);
  try {
    listen(Clock::now());  // consume what arrived, so nothing lingers for a later communicator
  } catch (const std::exception&) {
    // A destructor must not throw; whatever is left goes with the communicator.
  }
  // A given-up collective that a late rank has since completed can be released; MPI
  // forbids freeing one that is still active, so that one stays.
  for (auto& request : abandoned_) {
    int flag = 0;
    MPI_Test(&request, &flag, MPI_STATUS_IGNORE);
  }
  MPI_Comm_free(&comm_);
}

std::string CollectiveDeadline::name_of(int rank) const { return "rank " + number_and_host(rank); }

std::string CollectiveDeadline::number_and_host(int rank) const {
  return size_t(rank) < hosts_.size() ? fmt::format("{} ({})", rank, hosts_[size_t(rank)]) : std::to_string(rank);
}

void CollectiveDeadline::wait_all(MPI_Request* requests, int count, const char* what) {
  const int64_t seq = ++entered_;
  for (int i = 0; i < kPollsBeforeClock; ++i)
    if (done(requests, count)) return;
  wait_long(requests, count, what, seq);
}

bool CollectiveDeadline::done(MPI_Request* requests, int count) {
  int flag = 0;
  DDP_MPI_CHECK(MPI_Testall(count, requests, &flag, MPI_STATUSES_IGNORE));
  return flag != 0;
}

void CollectiveDeadline::wait_long(MPI_Request* requests, int count, const char* what, int64_t seq) {
  Clock::time_point start = Clock::now(), last = start;
  const Seconds timeout(options_.timeout_s);
  Clock::time_point next_say = start + beat();
  Clock::duration nap = kFirstNap;
  bool warned = false;
  while (!done(requests, count)) {
    const Clock::time_point now = Clock::now();
    // Time spent stopped (SIGSTOP, Slurm's scontrol suspend) is no wait: the ranks of a
    // job suspended and resumed would otherwise all find their deadline past.
    if (now - last > kStoppedGap) {
      start += now - last;
      next_say += now - last;
    }
    last = now;
    const Clock::duration waited = now - start;
    if (waited < kSpin) continue;
    listen(now);
    if (now >= next_say) {
      say(seq);
      next_say = now + beat();
    }
    if (!warned && waited >= timeout * kWarnFraction) {
      warned = true;
      const std::vector<int> late = not_arrived(seq, now);
      warn(fmt::format("ddp-train: warning: {}: {} waiting {} for {}; the job ends at {} (comm.timeout_s)",
                       name_of(rank_), label(what, seq), seconds_text(Seconds(waited).count()),
                       late.empty() ? std::string("a transfer (every rank has arrived)") : names_of(late),
                       seconds_text(options_.timeout_s)));
    }
    if (waited >= timeout) expire(requests, count, what, seq, now);
    std::this_thread::sleep_for(nap);
    nap = std::min<Clock::duration>(nap * 2, kLongestNap);
  }
}

void CollectiveDeadline::say(int64_t seq) {
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    Peer& peer = peers_[size_t(r)];
    if (peer.send != MPI_REQUEST_NULL && !done(peer.send)) continue;  // the last one is still on its way
    peer.out = seq;
    DDP_MPI_CHECK(MPI_Isend(&peer.out, 1, MPI_INT64_T, r, kAnnounceTag, comm_, &peer.send));
  }
}

void CollectiveDeadline::listen(Clock::time_point now) {
  for (;;) {
    int flag = 0;
    MPI_Status status;
    DDP_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kAnnounceTag, comm_, &flag, &status));
    if (!flag) return;
    int64_t seq = 0;
    DDP_MPI_CHECK(MPI_Recv(&seq, 1, MPI_INT64_T, status.MPI_SOURCE, kAnnounceTag, comm_, MPI_STATUS_IGNORE));
    Peer& peer = peers_[size_t(status.MPI_SOURCE)];
    peer.said = std::max(peer.said, seq);
    peer.heard = now;
  }
}

std::vector<int> CollectiveDeadline::not_arrived(int64_t seq, Clock::time_point now) const {
  std::vector<int> late;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    const Peer& peer = peers_[size_t(r)];
    const bool waiting_with_us = peer.said == seq && now - peer.heard <= beat() * kBeatsToStale;
    if (peer.said <= seq && !waiting_with_us) late.push_back(r);
  }
  return late;
}

std::string CollectiveDeadline::names_of(const std::vector<int>& ranks) const {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size() && i < kRanksNamed; ++i) text += (i ? ", " : "") + number_and_host(ranks[i]);
  if (ranks.size() > kRanksNamed) text += fmt::format(" and {} more", ranks.size() - kRanksNamed);
  return text;
}

std::string CollectiveDeadline::label(const char* what, int64_t seq) const {
  return step_ >= 0 ? fmt::format("{} #{} (step {})", what, seq, step_) : fmt::format("{} #{}", what, seq);
}

CollectiveDeadline::Clock::duration CollectiveDeadline::beat() const {
  // 1/16 of the deadline, at most 1 s: several beats before the warning, few messages.
  return std::chrono::duration_cast<Clock::duration>(Seconds(std::min(1.0, options_.timeout_s / 16)));
}

void CollectiveDeadline::warn(const std::string& line) const {
  if (options_.warn) return options_.warn(line);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void CollectiveDeadline::expire(MPI_Request* requests, int count, const char* what, int64_t seq,
                                Clock::time_point now) {
  const std::vector<int> late = not_arrived(seq, now);
  const std::string why = fmt::format(
      "{}: {} did not complete within {} (comm.timeout_s): {}", name_of(rank_), label(what, seq),
      seconds_text(options_.timeout_s),
      late.empty() ? std::string("every rank arrived, but a transfer never finished")
                   : names_of(late) + " did not arrive");
  if (options_.throw_on_timeout) {
    for (int i = 0; i < count; ++i) {
      if (requests[i] != MPI_REQUEST_NULL) abandoned_.push_back(requests[i]);
      requests[i] = MPI_REQUEST_NULL;
    }
    throw CollectiveTimeout(why);
  }
  std::fprintf(stderr, "ddp-train: error: %s; ending the job\n", why.c_str());
  std::fflush(stderr);
  MpiRuntime::abort_job(kExitFailure);
}

}  // namespace ddp
