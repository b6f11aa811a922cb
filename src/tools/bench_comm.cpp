// All-reduce benchmark in the format of NVIDIA's nccl-tests, so figures compare with
// the field's: size, count, type, time, algbw, busbw (= algbw x 2(n-1)/n) and a
// correctness column (max error against the exact sum). Beside them, the raw TCP
// throughput between rank 0 and the first rank on another host, timed at each size with
// a plain socket over the interface Open MPI uses, and the all-reduce's share of it.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <sstream>

#include "comm/Backend.h"
#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#include "config/Config.h"
#include "runtime/Device.h"
#include "tools/ExchangeBench.h"
#include "tools/TcpLink.h"

namespace {

// Prints where each rank runs, so a launch over several hosts can be checked at a glance.
void print_placement(const ddp::Communicator& comm, const std::vector<std::string>& hosts) {
  for (int r = 0; r < comm.size(); ++r) {
    const auto on_host = std::count(hosts.begin(), hosts.end(), hosts[r]);
    const auto before = std::count(hosts.begin(), hosts.begin() + r, hosts[r]);
    fmt::print("# rank {} on {} (local rank {} of {})\n", r, hosts[r], before, on_host);
  }
}

// The raw TCP yardstick: rank 0 sends to `peer` over a plain socket. Every rank takes part
// in the agreement, so a failure (a firewall, no matching interface) only drops the column.
std::optional<ddp::tools::TcpLink> open_tcp_link(ddp::Communicator& comm, int peer, bool same_host) {
  std::string offer, error;
  std::optional<ddp::tools::TcpLink> link;
  if (comm.rank() == peer) {
    try {
      const auto address = ddp::tools::choose_link_address(same_host);
      link.emplace(ddp::tools::TcpLink::listen(address.ip));
      offer = fmt::format("{} {} {}", address.ip, link->port(), address.interface);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  const auto offers = comm.allgather(error.empty() ? offer : "error: " + error);
  const std::string& theirs = offers[size_t(peer)];
  if (theirs.rfind("error: ", 0) == 0) {
    if (comm.rank() == 0) fmt::print("# raw TCP: unavailable on rank {}: {}\n", peer, theirs.substr(7));
    return std::nullopt;
  }
  std::istringstream in(theirs);
  std::string ip, interface;
  int port = 0;
  in >> ip >> port >> interface;
  bool failed = false;
  try {
    if (comm.rank() == 0) link.emplace(ddp::tools::TcpLink::connect(ip, port, 10.0));
    if (comm.rank() == peer) link->accept(15.0);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-comm: rank {}: {}\n", comm.rank(), e.what());
    failed = true;
  }
  if (comm.any(failed)) return std::nullopt;
  if (comm.rank() == 0)
    fmt::print("# raw TCP: rank 0 -> rank {} at {}:{} ({} on the receiver), one way, 1-byte ack\n", peer, ip, port,
               interface);
  return link;
}

// The figure a column shows for repeated timings: their mean, as nccl-tests, or with
// --median their median, which a few descheduled calls on a shared machine cannot move.
double typical(std::vector<double> seconds, bool median) {
  if (!median) return std::accumulate(seconds.begin(), seconds.end(), 0.0) / double(seconds.size());
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp-bench-comm: all-reduce time and bandwidth, nccl-tests style"};
  std::string backend_name = "mpi";
  int64_t min_bytes = 8, max_bytes = int64_t(64) << 20;
  int iters = 20, warmup = 5;
  bool no_tcp = false, median = false;
  std::string compression, config_path;
  std::vector<std::string> overrides;
  app.add_option("--backend", backend_name, "mpi | nccl")->check(CLI::IsMember({"mpi", "nccl"}));
  app.add_option("-b,--min-bytes", min_bytes, "smallest message");
  app.add_option("-e,--max-bytes", max_bytes, "largest message");
  app.add_option("-n,--iters", iters, "timed iterations per size");
  app.add_option("-w,--warmup", warmup, "untimed iterations per size");
  app.add_flag("--no-tcp", no_tcp, "skip the raw TCP column");
  app.add_flag("--median", median, "time each call and report the median (default: the mean of a timed loop)");
  app.add_option("--compression", compression,
                 "instead of the size sweep: the model's whole gradient exchange in each of these modes, side by "
                 "side (e.g. none,fp16,bf16,powersgd:1,powersgd:2)");
  app.add_option("--config", config_path, "with --compression: the model of this config (default: simple_nn)");
  app.add_option("overrides", overrides, "with --compression: config overrides, e.g. model.name=lenet5");
  CLI11_PARSE(app, argc, argv);
  if (compression.empty() && (!config_path.empty() || !overrides.empty())) {
    fmt::print(stderr, "ddp-bench-comm: --config and overrides choose the model of --compression's exchange; "
                       "the size sweep has none\n");
    return 2;
  }

  ddp::MpiRuntime mpi(&argc, &argv);
  try {
    ddp::set_compute_threads(1);
    const bool nccl = backend_name == "nccl";
    const torch::Device device = nccl ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    auto comm = ddp::make_communicator(nccl ? ddp::Backend::Nccl : ddp::Backend::Mpi, device, 300.0);
    const int n = comm->size();
    const auto hosts = comm->allgather(ddp::host_name());
    if (!compression.empty()) {
      const auto modes = ddp::tools::parse_exchange_modes(compression);
      const ddp::Config config = ddp::load_config(config_path, overrides);
      if (comm->rank() == 0) print_placement(*comm, hosts);
      ddp::tools::run_exchange_benchmark(*comm, modes, iters, warmup, config.model);
      return 0;
    }
    // The peer for the raw TCP figure: the first rank on another host, else rank 1.
    int peer = n > 1 ? 1 : 0;
    for (int r = n - 1; r > 0; --r)
      if (hosts[size_t(r)] != hosts[0]) peer = r;
    if (comm->rank() == 0) {
      fmt::print("# ddp-bench-comm: allreduce sum, float32, {} ranks, backend {}, {} iters, time = {}\n", n,
                 comm->backend_name(), iters, median ? "median of single calls" : "mean");
      print_placement(*comm, hosts);
    }
    std::optional<ddp::tools::TcpLink> tcp = no_tcp || peer == 0
                                                 ? std::nullopt
                                                 : open_tcp_link(*comm, peer, hosts[size_t(peer)] == hosts[0]);
    if (comm->rank() == 0) {
      fmt::print("# {:>12} {:>12} {:>6} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7}\n", "size(B)", "count", "type",
                 "time(us)", "algbw", "busbw", "#wrong", "tcpbw", "share");
      fmt::print("# {:>12} {:>12} {:>6} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7}\n", "", "(elements)", "", "", "(GB/s)",
                 "(GB/s)", "", "(GB/s)", "(busbw)");
    }
    double bus_sum = 0;
    int sizes = 0;
    for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2) {
      const int64_t count = std::max<int64_t>(1, bytes / 4);
      // Small integers keep the float sums exact, so the check tolerates no error.
      const torch::Tensor input =
          (torch::arange(count, torch::kInt64).remainder(17) + comm->rank()).to(torch::kFloat32).to(device);
      torch::Tensor buffer = input.clone();
      for (int i = 0; i < warmup; ++i) comm->allreduce(buffer, ddp::ReduceOp::Sum);
      comm->barrier();
      std::vector<double> timings;
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) {
        comm->allreduce(buffer, ddp::ReduceOp::Sum);
        if (median) {
          if (device.is_cuda()) torch::cuda::synchronize();
          const auto now = std::chrono::steady_clock::now();
          timings.push_back(std::chrono::duration<double>(now - start).count());
          start = now;
        }
      }
      comm->barrier();
      if (!median) timings.assign(1, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters);
      const double seconds = typical(timings, median);
      // Correctness: one more all-reduce from the known input.
      buffer.copy_(input);
      comm->allreduce(buffer, ddp::ReduceOp::Sum);
      const torch::Tensor expected =
          (torch::arange(count, torch::kInt64).remainder(17) * n + n * (n - 1) / 2).to(torch::kFloat32).to(device);
      torch::Tensor wrong = buffer.ne(expected).sum().to(torch::kFloat32).to(comm->device());
      comm->allreduce(wrong, ddp::ReduceOp::Sum);
      const double algbw = double(count * 4) / seconds / 1e9;
      const double busbw = algbw * 2.0 * (n - 1) / n;
      bus_sum += busbw;
      ++sizes;
      // The same bytes over the plain socket, right after, so both see the same machine.
      std::string tcp_columns = fmt::format("{:>9} {:>7}", "-", "-");
      if (tcp && (comm->rank() == 0 || comm->rank() == peer)) {
        const double tcp_seconds = typical(tcp->time_one_way(comm->rank() == 0, count * 4, iters, warmup), median);
        const double tcpbw = double(count * 4) / tcp_seconds / 1e9;
        const double share = 100.0 * busbw / tcpbw;  // beyond 999%: the socket's latency, not the link
        tcp_columns = share > 999 ? fmt::format("{:>9.2f} {:>7}", tcpbw, ">999%")
                                  : fmt::format("{:>9.2f} {:>6.0f}%", tcpbw, share);
      }
      comm->barrier();
      if (comm->rank() == 0)
        fmt::print("  {:>12} {:>12} {:>6} {:>10.1f} {:>8.2f} {:>8.2f} {:>9} {}\n", count * 4, count, "float",
                   seconds * 1e6, algbw, busbw, int64_t(wrong.cpu().item<float>()), tcp_columns);
    }
    if (comm->rank() == 0) fmt::print("# Avg bus bandwidth    : {:.3f} GB/s\n", bus_sum / sizes);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-comm: error: {}\n", e.what());
    return ddp::exit_code_of(e);
  }
  return 0;
}
