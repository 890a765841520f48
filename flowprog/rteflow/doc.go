// Package rteflow installs flowprog's capture program on DPDK ports through
// rte_flow: a narrow cgo binding over Debian's DPDK 22.11 (build tag dpdk,
// pkg-config libdpdk). Every call runs on the EAL main thread, and every
// structure handed to DPDK lives in C memory until its rule is destroyed.
package rteflow
