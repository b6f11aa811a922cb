#include "tools/TcpLink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace ddp::tools {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("raw TCP: " + what + ": " + std::strerror(errno));
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

// "eth0" matches by name, "10.212.0.0/24" by address, as Open MPI reads btl_tcp_if_include.
bool matches(const std::string& spec, const std::string& name, in_addr addr) {
  const auto slash = spec.find('/');
  if (slash == std::string::npos) return spec == name;
  in_addr net{};
  if (inet_pton(AF_INET, spec.substr(0, slash).c_str(), &net) != 1) return false;
  const int bits = std::atoi(spec.c_str() + slash + 1);
  const uint32_t mask = bits <= 0 ? 0 : bits >= 32 ? 0xffffffffu : ~((1u << (32 - bits)) - 1);
  return (ntohl(addr.s_addr) & mask) == (ntohl(net.s_addr) & mask);
}

void set_nodelay(int fd) {
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("TCP_NODELAY");
}

bool wait_readable(int fd, double timeout_s, short events = POLLIN) {
  pollfd p{fd, events, 0};
  int ready;
  do ready = poll(&p, 1, int(timeout_s * 1000)); while (ready < 0 && errno == EINTR);
  return ready > 0;
}

void send_all(int fd, const char* data, int64_t bytes) {
  while (bytes > 0) {
    const ssize_t sent = send(fd, data, size_t(bytes), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) fail("send");
    data += sent;
    bytes -= sent;
  }
}

void recv_all(int fd, char* data, int64_t bytes) {
  while (bytes > 0) {
    const ssize_t got = recv(fd, data, size_t(bytes), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) throw std::runtime_error("raw TCP: the peer closed the connection");
    if (got < 0) fail(errno == EAGAIN ? "no data from the peer for 30 s" : "recv");
    data += got;
    bytes -= got;
  }
}

}  // namespace

LinkAddress choose_link_address(bool same_host) {
  if (same_host) return {"127.0.0.1", "lo"};
  const char* include = std::getenv("OMPI_MCA_btl_tcp_if_include");
  const std::vector<std::string> specs = include ? split(include, ',') : std::vector<std::string>{};
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) fail("getifaddrs");
  LinkAddress chosen;
  for (const ifaddrs* a = list; a != nullptr && chosen.ip.empty(); a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if (!(a->ifa_flags & IFF_UP) || (a->ifa_flags & IFF_LOOPBACK)) continue;
    const in_addr addr = reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr;
    bool ok = specs.empty();
    for (const auto& spec : specs) ok = ok || matches(spec, a->ifa_name, addr);
    if (!ok) continue;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, text, sizeof text);
    chosen = {text, a->ifa_name};
  }
  freeifaddrs(list);
  if (chosen.ip.empty())
    throw std::runtime_error(std::string("raw TCP: no IPv4 interface is up") +
                             (include ? std::string(" matching btl_tcp_if_include=") + include : ""));
  return chosen;
}

TcpLink TcpLink::listen(const std::string& ip) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) throw std::runtime_error("raw TCP: bad address " + ip);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) fail("bind " + ip);
  if (::listen(fd, 1) != 0) fail("listen on " + ip);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");
  TcpLink link(-1, ntohs(addr.sin_port));
  link.listen_fd_ = fd;
  return link;
}

void TcpLink::accept(double timeout_s) {
  if (!wait_readable(listen_fd_, timeout_s)) throw std::runtime_error("raw TCP: the peer did not connect");
  fd_ = ::accept(listen_fd_, nullptr, nullptr);
  if (fd_ < 0) fail("accept");
  close(listen_fd_);
  listen_fd_ = -1;
  set_nodelay(fd_);
}

TcpLink TcpLink::connect(const std::string& ip, int port, double timeout_s) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  TcpLink link(fd, port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) throw std::runtime_error("raw TCP: bad address " + ip);
  // Non-blocking connect, so an unreachable peer costs timeout_s, not the kernel's minutes.
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  const std::string where = ip + ":" + std::to_string(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS)
    fail("connect to " + where);
  if (!wait_readable(fd, timeout_s, POLLOUT)) throw std::runtime_error("raw TCP: connect to " + where + " timed out");
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) {
    errno = error;
    fail("connect to " + where);
  }
  fcntl(fd, F_SETFL, flags);
  set_nodelay(fd);
  return link;
}

TcpLink::TcpLink(TcpLink&& other) noexcept : fd_(other.fd_), listen_fd_(other.listen_fd_), port_(other.port_) {
  other.fd_ = other.listen_fd_ = -1;
}

TcpLink::~TcpLink() {
  if (fd_ >= 0) close(fd_);
  if (listen_fd_ >= 0) close(listen_fd_);
}

std::vector<double> TcpLink::time_one_way(bool sender, int64_t bytes, int iters, int warmup) {
  const timeval limit{30, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::vector<char> buffer(size_t(std::max<int64_t>(bytes, 1)), 1);
  char ack = 0;
  auto once = [&] {
    if (sender) {
      send_all(fd_, buffer.data(), bytes);
      recv_all(fd_, &ack, 1);
    } else {
      recv_all(fd_, buffer.data(), bytes);
      send_all(fd_, &ack, 1);
    }
  };
  for (int i = 0; i < warmup; ++i) once();
  std::vector<double> seconds;
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    once();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

}  // namespace ddp::tools
