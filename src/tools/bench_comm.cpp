// All-reduce benchmark in the format of NVIDIA's nccl-tests, so figures compare with
// the field's: size, count, type, time, algbw, busbw (= algbw x 2(n-1)/n) and a
// correctness column (max error against the exact sum).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>

#include "comm/Backend.h"
#include "comm/MpiRuntime.h"
#include "common/Errors.h"
#include "config/Config.h"
#include "runtime/Device.h"

int main(int argc, char** argv) {
  CLI::App app{"ddp-bench-comm: all-reduce time and bandwidth, nccl-tests style"};
  std::string backend_name = "mpi";
  int64_t min_bytes = 8, max_bytes = int64_t(64) << 20;
  int iters = 20, warmup = 5;
  app.add_option("--backend", backend_name, "mpi | nccl")->check(CLI::IsMember({"mpi", "nccl"}));
  app.add_option("-b,--min-bytes", min_bytes, "smallest message");
  app.add_option("-e,--max-bytes", max_bytes, "largest message");
  app.add_option("-n,--iters", iters, "timed iterations per size");
  app.add_option("-w,--warmup", warmup, "untimed iterations per size");
  CLI11_PARSE(app, argc, argv);

  ddp::MpiRuntime mpi(&argc, &argv);
  try {
    ddp::set_compute_threads(1);
    const bool nccl = backend_name == "nccl";
    const torch::Device device = nccl ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    auto comm = ddp::make_communicator(nccl ? ddp::Backend::Nccl : ddp::Backend::Mpi, device, 300.0);
    const int n = comm->size();
    if (comm->rank() == 0) {
      fmt::print("# ddp-bench-comm: allreduce sum, float32, {} ranks, backend {}, {} iters\n", n,
                 comm->backend_name(), iters);
      fmt::print("# {:>12} {:>12} {:>6} {:>10} {:>8} {:>8} {:>9}\n", "size(B)", "count", "type", "time(us)",
                 "algbw", "busbw", "#wrong");
      fmt::print("# {:>12} {:>12} {:>6} {:>10} {:>8} {:>8} {:>9}\n", "", "(elements)", "", "", "(GB/s)", "(GB/s)",
                 "");
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
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) comm->allreduce(buffer, ddp::ReduceOp::Sum);
      comm->barrier();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
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
      if (comm->rank() == 0)
        fmt::print("  {:>12} {:>12} {:>6} {:>10.1f} {:>8.2f} {:>8.2f} {:>9}\n", count * 4, count, "float",
                   seconds * 1e6, algbw, busbw, int64_t(wrong.cpu().item<float>()));
    }
    if (comm->rank() == 0) fmt::print("# Avg bus bandwidth    : {:.3f} GB/s\n", bus_sum / sizes);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ddp-bench-comm: error: {}\n", e.what());
    return ddp::exit_code_of(e);
  }
  return 0;
}
