//go:build !minimal

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/internal/atomicfile"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink/live/client"
)

// localSink is the sinkd dpcap capture runs when the sink is this host
// (no --sink): the copies come to its UDP port, and the command watches
// its live endpoint on loopback as it would a sink's elsewhere, so both
// setups are one path with sinkd's own counts.
type localSink struct {
	cmd     *exec.Cmd
	url     string
	dir     string // its port map's
	exited  chan struct{}
	portMap string
	log     string // its standard error
}

// localSinkReady bounds the wait for the local sinkd's live endpoint.
const localSinkReady = 10 * time.Second

// startLocalSink starts sinkd on req's sink address and UDP port, with
// the port map of req's program (the tags the daemon gives unless two
// names collide; publish puts the daemon's in its place), serving live
// streams on a loopback port, and waits until it answers.
func startLocalSink(ctx context.Context, req control.StartRequest) (*localSink, error) {
	p, err := req.Program(control.Envelope{}, nil)
	if err != nil {
		return nil, err
	}
	path, err := sinkdPath()
	if err != nil {
		return nil, err
	}
	addr, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dpcap-capture-")
	if err != nil {
		return nil, err
	}
	l := &localSink{url: "http://" + addr, dir: dir, portMap: filepath.Join(dir, "portmap.json"),
		exited: make(chan struct{}), log: filepath.Join(dir, "sinkd.log")}
	if err := l.publish(p.Tags); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stderr, err := os.Create(l.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer stderr.Close()
	// It writes nothing but the live streams: its -w - is /dev/null.
	l.cmd = exec.Command(path, "--listen", req.SinkNodeIP, "--port", strconv.Itoa(int(req.DstPort)),
		"--port-map", l.portMap, "--live", addr, "--metrics-addr", "", "-w", "-")
	l.cmd.Stderr = stderr
	// It ends with this command, however this command ends.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := l.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start sinkd: %w", err)
	}
	go func() { l.cmd.Wait(); close(l.exited) }()
	sink, err := client.NewSink(l.url, client.Auth{})
	if err != nil {
		l.stop()
		return nil, err
	}
	ready := time.Now().Add(localSinkReady)
	for {
		if _, err = sink.Ports(ctx); err == nil {
			return l, nil
		}
		select {
		case <-l.exited:
			l.stop()
			return nil, fmt.Errorf("sinkd exited: %s", l.lastLine())
		case <-ctx.Done():
			l.stop()
			return nil, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(ready) {
			l.stop()
			return nil, fmt.Errorf("sinkd's live endpoint %s did not answer within %v: %w", addr, localSinkReady, err)
		}
	}
}

// publish gives the local sinkd port map m, which it reads again within
// a second.
func (l *localSink) publish(m portmap.Map) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(l.portMap, b, atomicfile.Options{Perm: 0o600, NoSync: true})
}

// stop ends the local sinkd, its streams cleanly, and removes its map.
func (l *localSink) stop() {
	if l.cmd.Process != nil {
		l.cmd.Process.Signal(syscall.SIGTERM)
		<-l.exited
	}
	os.RemoveAll(l.dir)
}

// lastLine is the last line the local sinkd wrote to standard error.
func (l *localSink) lastLine() string {
	b, _ := os.ReadFile(l.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// sinkdPath finds sinkd: beside this dpcap, else on $PATH.
func sinkdPath() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "sinkd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("sinkd")
	if err != nil {
		return "", errors.New("no sinkd beside dpcap or on $PATH, to receive the copies on this host: install it, or give --sink URL of a sink's live endpoint")
	}
	return p, nil
}

// freeLoopbackPort is a TCP port on 127.0.0.1 nobody listens on now.
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a loopback port for sinkd's live endpoint: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
