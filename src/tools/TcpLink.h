#pragma once
// A plain TCP connection between two ranks, to measure the link an all-reduce runs over:
// the yardstick ddp-bench-comm prints beside its table. No MPI here: the caller exchanges
// the listening address (an allgather) and agrees on failures.
#include <cstdint>
#include <string>
#include <vector>

namespace ddp::tools {

// The IPv4 address this host would use towards its peers, and its interface's name.
// Open MPI's choice when it was given one (OMPI_MCA_btl_tcp_if_include: interface names
// or CIDRs, as launch/mpirun passes), else the first non-loopback address; 127.0.0.1 when
// both ends share this host.
struct LinkAddress {
  std::string ip;
  std::string interface;
};
LinkAddress choose_link_address(bool same_host);

class TcpLink {
 public:
  // The listening end: binds `ip` on a free port.
  static TcpLink listen(const std::string& ip);
  // The connecting end; gives up after `timeout_s` (a firewall must not hang the benchmark).
  static TcpLink connect(const std::string& ip, int port, double timeout_s);
  TcpLink(TcpLink&& other) noexcept;
  TcpLink& operator=(TcpLink&&) = delete;
  TcpLink(const TcpLink&) = delete;
  ~TcpLink();

  int port() const { return port_; }
  // Listening end: waits up to `timeout_s` for the peer's connection.
  void accept(double timeout_s);
  // Seconds of each of `iters` transfers of `bytes` one way (after `warmup` untimed), each
  // closed by a one-byte acknowledgement, so it times delivery, not a send buffer filling.
  // One end calls it as the sender, the other as the receiver, with the same arguments.
  std::vector<double> time_one_way(bool sender, int64_t bytes, int iters, int warmup);

 private:
  TcpLink(int fd, int port) : fd_(fd), port_(port) {}
  int fd_ = -1;
  int listen_fd_ = -1;
  int port_ = 0;
};

}  // namespace ddp::tools
