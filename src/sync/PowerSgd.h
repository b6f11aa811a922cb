#pragma once
// comm.compression=powersgd: PowerSGD (Vogels, Karimireddy and Jaggi, NeurIPS 2019, arXiv
// 1905.13727), as PyTorch's powerSGD_hook. Each weight matrix M (n x m, the gradient of a 2-D
// parameter) travels as two thin factors instead of its n*m values:
//   P = M Q            (n x r)  all-reduced (summed), then orthonormalised: P^
//   Q = M^T P^ / N     (m x r)  all-reduced (averaged)
//   M ~ P^ Q^T                  the mean over ranks, projected on the r directions of P^
// one step of power iteration per training step, warm-started from the previous step's Q
// (which a good approximation needs: a fresh random Q would make it a random projection).
// r is comm.powersgd_rank. Vectors (biases) and matrices that would not shrink by at least
// comm.powersgd_min_ratio ((n + m) r x ratio >= n m) travel raw, in one float32 all-reduce
// together with the extra slots, posted beside the one of the P's.
//
// PowerSGD is a biased compressor: what the approximation leaves out of a rank's gradient is
// its error, added to that rank's next gradient before compressing it (error feedback), so
// that nothing is lost, only delayed: over any number of steps, the sum of what was applied
// plus every rank's remaining error is the sum of the gradients. The error (one per rank, the
// size of the gradients) and Q (the same on every rank) are the state a checkpoint holds.
//
// Exactly linear in the gradients: a process standing for v virtual ranks holds their mean
// gradient and the mean of their errors, which is all P, Q and the next errors depend on, so N/2
// processes x 2 virtual ranks train as N ranks do.
#include <optional>

#include "sync/GradientExchange.h"
#include "sync/PlainAllreduce.h"

namespace ddp {

class PowerSgd final : public GradientExchange {
 public:
  PowerSgd(Communicator& comm, const SyncOptions& options, const std::vector<torch::Tensor>& parameters);

  int64_t exchange(GradientBuckets& buckets, int64_t step) override;
  bool exact(int64_t step) const override { return step < start_step_; }
  void commit() override;
  ExchangeState state() const override;
  void set_state(const ExchangeState& state) override;
  bool per_rank_state() const override { return true; }

  // How many gradient elements travel as factors and how many raw, and the factors' size.
  int64_t compressed_elements() const;
  int64_t raw_elements() const;
  int64_t factor_elements() const { return p_.numel() + q_.numel(); }
  // The float32 elements a compressed step sends for `parameters` (raw gradients and factors;
  // the extra slots not included), without a communicator: what --dry-run reports.
  static int64_t message_elements(const SyncOptions& options, const std::vector<torch::Tensor>& parameters);

 private:
  struct Matrix {
    size_t parameter;  // index in the parameter list
    int64_t rows, cols, rank;
    int64_t p_offset, q_offset;
  };
  // Which parameters travel as factors (a weight of any shape [n, ...] as the matrix n x rest, as
  // powerSGD_hook views a conv weight [out, in, k, k] as [out, in*k*k]) and which raw.
  struct Selection {
    std::vector<Matrix> matrices;
    std::vector<size_t> raw;
    int64_t p_size = 0, q_size = 0;
  };
  static Selection select(const SyncOptions& options, const std::vector<torch::Tensor>& parameters);
  torch::Tensor gradient(const Matrix& m) const;  // the parameter's .grad() as rows x cols
  torch::Tensor p_of(const Matrix& m) const { return p_.narrow(0, m.p_offset, m.rows * m.rank).view({m.rows, m.rank}); }
  torch::Tensor q_of(const torch::Tensor& q, const Matrix& m) const {
    return q.narrow(0, m.q_offset, m.cols * m.rank).view({m.cols, m.rank});
  }
  void add_error_feedback();
  void start_from_q();
  void exchange_raw_and_p(GradientBuckets& buckets);
  void exchange_q();
  void decompress();

  Communicator& comm_;
  PlainAllreduce plain_;
  int64_t start_step_;
  uint64_t seed_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Matrix> matrices_;
  std::vector<size_t> raw_;  // parameters that travel uncompressed
  torch::Tensor raw_buffer_;   // their gradients, then the extra slots
  torch::Tensor p_, q_;        // the factors of every matrix, flat; q_: as of the last applied step
  torch::Tensor next_q_;       // this step's Q, which commit() makes q_
  bool has_q_ = false;         // false until the first applied compressed step
  std::vector<torch::Tensor> error_, next_error_;  // per matrix; next_: this step's, for commit()
  bool pending_ = false;       // an exchange() since the last commit() computed next_*
};

// Gram-Schmidt on the columns of `matrix` (n x r, r small), in place: the orthonormal basis
// PowerSGD projects on. `epsilon` keeps a zero column (a vanishing gradient) from dividing by 0.
void orthonormalize_columns(torch::Tensor matrix, double epsilon = 1e-8);

}  // namespace ddp
