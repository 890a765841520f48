package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace made for one test (ip netns add), its
// loopback up. It needs root.
type NetNS struct {
	// Name is the namespace's name under /run/netns.
	Name string
}

var nsSeq atomic.Int32

// NewNetNS makes a namespace that is deleted, every process in it killed,
// when the test ends.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	n := &NetNS{Name: fmt.Sprintf("dpcap-test-%d-%d", os.Getpid(), nsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				// The test itself shows up when Do entered the namespace on
				// the main thread, which Go parks instead of ending.
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", n.Name).Run()
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Cmd is the command name with args, to run in the namespace.
func (n *NetNS) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command in the namespace and returns its output, failing the
// test if the command fails.
func (n *NetNS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Cmd(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Do runs fn on an OS thread that has entered the namespace, so sockets fn
// opens live there, failing the test if it cannot enter. The thread is
// discarded afterwards.
func (n *NetNS) Do(t testing.TB, fn func()) {
	t.Helper()
	if err := n.Enter(fn); err != nil {
		t.Fatal(err)
	}
}

// Enter runs fn on a fresh OS thread inside the namespace.
func (n *NetNS) Enter(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// Dial connects from inside the namespace (a socket stays in the
// namespace it was made in).
func (n *NetNS) Dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	if eerr := n.Enter(func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) }); eerr != nil {
		return nil, eerr
	}
	return c, err
}

// Link joins two namespaces with veth pair i, counting from 1: interface
// e2e<i-1> on both sides, addressed 2001:db8:<i>::1/64 on a's and ::2 on
// b's and, for pairs 1 and 2, 192.0.2.0/24 and 198.51.100.0/24 (.1 and
// .2). It returns once a reaches b at each address.
func Link(t testing.TB, a, b *NetNS, mtu, i int) {
	t.Helper()
	ifname := fmt.Sprintf("e2e%d", i-1)
	v4 := map[int]string{1: "192.0.2.", 2: "198.51.100."}[i]
	if out, err := exec.Command("ip", "link", "add", ifname, "netns", a.Name, "mtu", strconv.Itoa(mtu),
		"type", "veth", "peer", "name", ifname, "netns", b.Name, "mtu", strconv.Itoa(mtu)).CombinedOutput(); err != nil {
		t.Fatalf("ip link add veth: %v: %s", err, out)
	}
	for j, ns := range []*NetNS{a, b} {
		ns.Run(t, "ip", "addr", "add", fmt.Sprintf("2001:db8:%d::%d/64", i, j+1), "dev", ifname, "nodad")
		if v4 != "" {
			ns.Run(t, "ip", "addr", "add", fmt.Sprintf("%s%d/24", v4, j+1), "dev", ifname)
		}
		ns.Run(t, "ip", "link", "set", ifname, "up")
	}
	// Resolve neighbours before any test traffic: packets sent while
	// discovery is pending queue in a small per-neighbour buffer and drop.
	dsts := []string{fmt.Sprintf("2001:db8:%d::2", i)}
	if v4 != "" {
		dsts = append(dsts, v4+"2")
	}
	for _, dst := range dsts {
		Eventually(t, 10*time.Second, fmt.Sprintf("a path from %s to %s", a.Name, dst),
			func() bool { return a.Cmd("ping", "-c", "1", "-W", "1", dst).Run() == nil })
	}
}
