// NuRaft 3.0.0's in-memory example log store (examples/in_memory_log_store.cxx,
// unchanged), compiled into the build for the NuRaft benchmark row: the same
// cluster load with it and with seshat_log_store (bench/nuraft_cluster_bench.py).
#include "in_memory_log_store.cxx"
