# Resolves DDP_WITH_NCCL into the imported target ddp::nccl (NCCL + CUDA runtime).
# The NCCL backend is written against raw device pointers and cudaStream_t, so it
# compiles against the CPU-only Debian LibTorch as well as a CUDA LibTorch.
set(DDP_NCCL_ENABLED OFF)
if(NOT DDP_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  set(_cuda_hint "")
  if(CUDAToolkit_FOUND)
    list(APPEND _cuda_hint ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_INCLUDE_DIRS})
  endif()
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${_cuda_hint} $ENV{NCCL_HOME} $ENV{CUDA_HOME} /usr/local/cuda
    PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY nccl
    HINTS ${_cuda_hint} $ENV{NCCL_HOME} $ENV{CUDA_HOME} /usr/local/cuda
    PATH_SUFFIXES lib lib64)
  if(CUDAToolkit_FOUND AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(DDP_NCCL_ENABLED ON)
    add_library(ddp_nccl INTERFACE)
    target_include_directories(ddp_nccl INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(ddp_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
    add_library(ddp::nccl ALIAS ddp_nccl)
    message(STATUS "NCCL backend: ON (${NCCL_LIBRARY}, CUDA ${CUDAToolkit_VERSION})")
  elseif(DDP_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "DDP_WITH_NCCL=ON but NCCL/CUDA was not found "
      "(CUDAToolkit_FOUND=${CUDAToolkit_FOUND}, nccl.h=${NCCL_INCLUDE_DIR}, libnccl=${NCCL_LIBRARY}). "
      "Set CUDAToolkit_ROOT or NCCL_HOME.")
  else()
    message(STATUS "NCCL backend: OFF (NCCL or the CUDA runtime not found)")
  endif()
endif()
