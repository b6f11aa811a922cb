#include "train/StopSignal.h"

#include <csignal>

namespace ddp {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int number) { g_signal = number; }

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // keep blocking MPI/file calls from failing with EINTR
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool stop_signal_received() { return g_signal != 0; }
int stop_signal_number() { return int(g_signal); }

}  // namespace ddp
