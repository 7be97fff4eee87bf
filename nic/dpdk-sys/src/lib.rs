//! FFI to the system DPDK.
