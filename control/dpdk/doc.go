// Package dpdk is dpcap serve's backend for a NIC that dpcap drives itself
// (dpcap serve --backend dpdk): it installs the program's rules with
// rte_flow through package rteflow. It needs cgo and the dpdk build tag;
// without them New says how to get it.
package dpdk
