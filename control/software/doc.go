// Package software is dpcap serve's backend for hosts without hardware
// sampling (dpcap serve --backend software): each port is a Linux
// interface whose received frames package mirror sends to the sink as the
// NIC's envelopes, in the kernel (tc BPF) or through user space
// (AF_PACKET), following interfaces that are deleted and made again.
package software
