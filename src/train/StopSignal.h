#pragma once
// SIGTERM and SIGUSR1 (Slurm's --signal=B:USR1@60, scancel --signal, mpirun's
// forwarding) ask for a graceful stop: the handler only sets a flag; the ranks agree on
// it through the gradient all-reduce and stop together at a step boundary.
namespace ddp {

void install_stop_signal_handlers();
bool stop_signal_received();
int stop_signal_number();  // the signal that asked, 0 if none

}  // namespace ddp
