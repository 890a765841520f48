//go:build dpdk

package rteflow

/*
#cgo pkg-config: libdpdk
#include "rteflow.h"
*/
import "C"

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// EAL is an initialized DPDK environment abstraction layer. Its calls run
// on the thread that initialized it, as DPDK wants (rte_errno is per
// thread, and a secondary process's ports belong to its main thread).
type EAL struct {
	work chan func()
}

var (
	once    sync.Once
	theEAL  *EAL
	initErr error
)

// Init initializes the EAL with args (as on a DPDK command line, e.g.
// "--no-huge --no-pci -m 256 --vdev net_null0", or "--proc-type=secondary
// --file-prefix dp" to attach to a running primary). DPDK allows this once
// per process; later calls return the first result.
func Init(args []string) (*EAL, error) {
	once.Do(func() {
		e := &EAL{work: make(chan func())}
		ready := make(chan error)
		go func() {
			runtime.LockOSThread() // the EAL's main thread, for good
			argv := make([]*C.char, 0, len(args)+1)
			argv = append(argv, C.CString("dpcap"))
			for _, a := range args {
				argv = append(argv, C.CString(a))
			}
			cargv := (**C.char)(C.malloc(C.size_t(len(argv)) * C.size_t(unsafe.Sizeof(argv[0]))))
			copy(unsafe.Slice(cargv, len(argv)), argv)
			if rc := C.rte_eal_init(C.int(len(argv)), cargv); rc < 0 {
				ready <- fmt.Errorf("DPDK EAL init (%s): %s", strings.Join(args, " "), errnoString(C.dp_errno()))
				return
			}
			ready <- nil
			for f := range e.work {
				f()
			}
		}()
		if initErr = <-ready; initErr == nil {
			theEAL = e
		}
	})
	return theEAL, initErr
}

// do runs f on the EAL main thread and waits for it.
func (e *EAL) do(f func()) {
	done := make(chan struct{})
	e.work <- func() { f(); close(done) }
	<-done
}

func errnoString(n C.int) string {
	return fmt.Sprintf("%s (errno %d)", C.GoString(C.rte_strerror(n)), int(n))
}

// PortInfo describes a DPDK port.
type PortInfo struct {
	ID           uint16
	Name         string
	Driver       string
	SwitchDomain uint16
	Representor  bool
	// MAC is the port's Ethernet address (rte_eth_macaddr_get).
	MAC net.HardwareAddr
}

// Port looks a port up by its DPDK name (a PCI address, a vdev name, or a
// representor such as 0000:08:00.0_representor_vf0).
func (e *EAL) Port(name string) (PortInfo, error) {
	var info PortInfo
	var err error
	e.do(func() {
		cname := C.CString(name)
		defer C.free(unsafe.Pointer(cname))
		var id C.uint16_t
		if rc := C.rte_eth_dev_get_port_by_name(cname, &id); rc != 0 {
			err = fmt.Errorf("DPDK port %q: not found (%s)", name, errnoString(-rc))
			return
		}
		var di C.struct_rte_eth_dev_info
		if rc := C.rte_eth_dev_info_get(id, &di); rc != 0 {
			err = fmt.Errorf("DPDK port %q: info: %s", name, errnoString(-rc))
			return
		}
		info = PortInfo{ID: uint16(id), Name: name, Driver: C.GoString(di.driver_name),
			SwitchDomain: uint16(di.switch_info.domain_id)}
		if di.dev_flags != nil {
			info.Representor = *di.dev_flags&C.RTE_ETH_DEV_REPRESENTOR != 0
		}
		var mac C.struct_rte_ether_addr
		if rc := C.rte_eth_macaddr_get(id, &mac); rc != 0 {
			err = fmt.Errorf("DPDK port %q: MAC address: %s", name, errnoString(-rc))
			return
		}
		info.MAC = C.GoBytes(unsafe.Pointer(&mac.addr_bytes[0]), C.RTE_ETHER_ADDR_LEN)
	})
	return info, err
}
