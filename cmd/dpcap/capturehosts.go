//go:build !minimal

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/hosts"
	"github.com/dpcap/dpcap/internal/termtext"
)

// captureDaemons are the dpcap serves dpcap capture drives: the local
// socket's, or those of --host/--hosts.
type captureDaemons interface {
	// start starts req (all or nothing); the status is the capture's,
	// with the ports and port map of every host it started on.
	start(ctx context.Context, req control.StartRequest) (control.Status, error)
	// refresh puts the NIC's counters into last while the capture is
	// ours: a daemon forgets them when it stops it.
	refresh(last *control.Status)
	// stop stops the capture, as dpcap stop does, unless it stopped
	// already (its deadline) or another took its place; last gets its
	// final counters. It says what it did.
	stop(last *control.Status) (string, error)
}

// socketDaemon is the dpcap serve of the local socket.
type socketDaemon struct {
	c  *control.Client
	id string
}

func (d *socketDaemon) start(ctx context.Context, req control.StartRequest) (control.Status, error) {
	st, err := d.c.Start(ctx, req)
	if err != nil {
		return st, asUsage(err)
	}
	d.id = st.ID
	return st, nil
}

func (d *socketDaemon) refresh(last *control.Status) {
	if now, err := d.c.Status(context.Background()); err == nil && now.ID == d.id && now.Active {
		*last = now
	}
}

func (d *socketDaemon) stop(last *control.Status) (string, error) {
	return stopOurs(d.c, d.id, last)
}

// hostDaemons are the dpcap serves of --host/--hosts: the capture starts
// where its ports are, and only those hosts are asked after.
type hostDaemons struct {
	all, on *hosts.Set
	ids     map[string]string               // host URL: its capture's id
	ports   map[string][]control.PortStatus // host URL: its ports' last counters
	order   []string                        // the hosts started on
}

func (d *hostDaemons) start(ctx context.Context, req control.StartRequest) (control.Status, error) {
	sts, err := d.all.Start(ctx, req)
	if errors.Is(err, hosts.ErrRefused) {
		return control.Status{}, usageErr{err}
	}
	if err != nil {
		return control.Status{}, err
	}
	d.ids, d.ports = map[string]string{}, map[string][]control.PortStatus{}
	var st control.Status
	var ids []string
	for _, h := range sts {
		s := h.Status
		d.order = append(d.order, h.Host)
		d.ids[h.Host], d.ports[h.Host] = s.ID, s.Ports
		ids = append(ids, s.ID+" on "+hosts.Name(h.Host))
		if st.Deadline.IsZero() || (!s.Deadline.IsZero() && s.Deadline.Before(st.Deadline)) {
			st.Deadline = s.Deadline
		}
		st.PortMap.Version = s.PortMap.Version
		st.PortMap.Ports = append(st.PortMap.Ports, s.PortMap.Ports...)
	}
	d.on = d.all.Only(d.order)
	st.Active, st.ID = true, strings.Join(ids, ", ")
	d.merge(&st)
	return st, nil
}

// merge puts every host's last counters into st.
func (d *hostDaemons) merge(st *control.Status) {
	st.Ports = nil
	for _, h := range d.order {
		st.Ports = append(st.Ports, d.ports[h]...)
	}
}

// ours is whether a host's status is still this command's capture.
func (d *hostDaemons) ours(h hosts.Status) bool {
	return h.Status != nil && h.Status.Active && h.Status.ID == d.ids[h.Host]
}

func (d *hostDaemons) refresh(last *control.Status) {
	for _, h := range d.on.Status(context.Background()) {
		if d.ours(h) {
			d.ports[h.Host] = h.Status.Ports
		}
	}
	d.merge(last)
}

func (d *hostDaemons) stop(last *control.Status) (string, error) {
	var said, failed, running []string
	for _, h := range d.on.Status(context.Background()) {
		switch {
		case h.Error != "":
			failed = append(failed, hosts.Name(h.Host))
			said = append(said, hosts.Name(h.Host)+": "+h.Error)
		case d.ours(h):
			d.ports[h.Host] = h.Status.Ports
			running = append(running, h.Host)
		default:
			said = append(said, fmt.Sprintf("%s: capture %s had stopped", hosts.Name(h.Host), d.ids[h.Host]))
		}
	}
	d.merge(last)
	if len(running) > 0 {
		for _, r := range d.all.Only(running).Stop(context.Background()) {
			if r.Error != "" {
				failed = append(failed, hosts.Name(r.Host))
				said = append(said, hosts.Name(r.Host)+": "+r.Error)
				continue
			}
			said = append(said, hosts.Name(r.Host)+": "+r.Result.Message)
		}
	}
	msg := termtext.Escape(strings.Join(said, "; "))
	if len(failed) > 0 {
		return msg, fmt.Errorf("stop capture: no answer from %s", strings.Join(failed, ", "))
	}
	return msg, nil
}
