// Package hosts addresses many dpcap serves at once, one per hypervisor,
// over mutual TLS (dpcap serve --listen-tls): it finds which of them holds
// a port, starts a capture where its ports live, and gathers every host's
// status. Requests go to all hosts in parallel, each bounded by a timeout;
// a host that does not answer is named in the result, never skipped.
package hosts

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dpcap/dpcap/control"
)

// ErrRefused is what a refused start wraps: a port found on no host or on
// two; nothing was started anywhere.
var ErrRefused = errors.New("refused")

// ParseURL checks a host's address: https://NAME:PORT, nothing after.
func ParseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("invalid host %q: want https://NAME:PORT (dpcap serve --listen-tls)", s)
	}
	return "https://" + u.Host, nil
}

// ParseFile reads a hosts file: one URL per line; blank lines and what
// follows a # are ignored. A host listed twice is refused.
func ParseFile(r io.Reader) ([]string, error) {
	var urls []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		u, err := ParseURL(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		urls = append(urls, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return urls, nil
}

// Set is the dpcap serves of many hosts.
type Set struct {
	urls    []string
	clients []*control.Client
	timeout time.Duration
}

// New returns the set of hosts at urls (ParseURL's), reached with cfg's
// certificates, each request bounded by timeout.
func New(urls []string, cfg *tls.Config, timeout time.Duration) (*Set, error) {
	if len(urls) == 0 {
		return nil, errors.New("no hosts")
	}
	s := &Set{timeout: timeout}
	for _, u := range urls {
		if slices.Contains(s.urls, u) {
			return nil, fmt.Errorf("host %s is given twice", u)
		}
		s.urls = append(s.urls, u)
		s.clients = append(s.clients, control.NewRemoteClient(u, cfg))
	}
	return s, nil
}

// Only returns the hosts of s whose URLs (Status.Host's) are in urls, in
// s's order, reached as s reaches them: the hosts a capture started on,
// which alone its stop must touch.
func (s *Set) Only(urls []string) *Set {
	o := &Set{timeout: s.timeout}
	for i, u := range s.urls {
		if slices.Contains(urls, u) {
			o.urls = append(o.urls, u)
			o.clients = append(o.clients, s.clients[i])
		}
	}
	return o
}

// Name is how output names a host: its URL's host and port.
func Name(u string) string { return strings.TrimPrefix(u, "https://") }

// Status is one host's status, or why there is none.
type Status struct {
	Host   string          `json:"host"`
	Status *control.Status `json:"status,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Stopped is what dpcap stop did on one host.
type Stopped struct {
	Host   string              `json:"host"`
	Result *control.StopResult `json:"result,omitempty"`
	Error  string              `json:"error,omitempty"`
}

// each calls fn for every host at once (those of only, by index, when
// set) and returns the answers in that order.
func each[T any](ctx context.Context, s *Set, only []int, fn func(context.Context, int) (T, error)) ([]T, []error) {
	if only == nil {
		only = make([]int, len(s.urls))
		for i := range only {
			only[i] = i
		}
	}
	out, errs := make([]T, len(only)), make([]error, len(only))
	var wg sync.WaitGroup
	for k, i := range only {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			out[k], errs[k] = fn(ctx, i)
			if errors.Is(errs[k], context.DeadlineExceeded) {
				errs[k] = fmt.Errorf("no answer from %s within %v", s.urls[i], s.timeout)
			}
		})
	}
	wg.Wait()
	return out, errs
}

// Status asks every host for its status.
func (s *Set) Status(ctx context.Context) []Status {
	sts, errs := each(ctx, s, nil, func(ctx context.Context, i int) (control.Status, error) { return s.clients[i].Status(ctx) })
	out := make([]Status, len(s.urls))
	for i, u := range s.urls {
		out[i] = Status{Host: u}
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
		} else {
			out[i].Status = &sts[i]
		}
	}
	return out
}

// Stop stops capture on every host.
func (s *Set) Stop(ctx context.Context) []Stopped {
	res, errs := each(ctx, s, nil, func(ctx context.Context, i int) (control.StopResult, error) { return s.clients[i].Stop(ctx) })
	out := make([]Stopped, len(s.urls))
	for i, u := range s.urls {
		out[i] = Stopped{Host: u}
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
		} else {
			out[i].Result = &res[i]
		}
	}
	return out
}

// Locate says which host holds each port: the named ports of each host,
// by index in the set. A host that does not answer, a port on no host or
// on two is an error naming them (ErrRefused for the ports).
func (s *Set) Locate(ctx context.Context, ports []string) (map[int][]string, error) {
	lists, errs := each(ctx, s, nil, func(ctx context.Context, i int) (control.PortList, error) { return s.clients[i].Ports(ctx) })
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", Name(s.urls[i]), err))
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("the ports' hosts are not known, nothing was started: %s", strings.Join(failed, "; "))
	}
	at := map[int][]string{}
	var problems []string
	for _, p := range ports {
		var on []string
		for i, l := range lists {
			if slices.Contains(l.Ports, p) {
				on = append(on, Name(s.urls[i]))
				at[i] = append(at[i], p)
			}
		}
		switch len(on) {
		case 0:
			problems = append(problems, fmt.Sprintf("port %s is on none of the hosts", p))
		case 1:
		default:
			problems = append(problems, fmt.Sprintf("port %s is on %s", p, strings.Join(on, " and ")))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s (hosts: %s); nothing was started", ErrRefused, strings.Join(problems, "; "), s.names())
	}
	return at, nil
}

func (s *Set) names() string {
	names := make([]string, len(s.urls))
	for i, u := range s.urls {
		names[i] = Name(u)
	}
	return strings.Join(names, ", ")
}

// Start starts r on each host holding one of its VFs, with those VFs (and
// PF0 there, when asked), all or nothing: when a host refuses, the hosts
// that started stop again. It returns the status of the hosts that started.
func (s *Set) Start(ctx context.Context, r control.StartRequest) ([]Status, error) {
	if len(r.VFs) == 0 {
		return nil, fmt.Errorf("%w: name the VFs to capture (--vf): they say which of the hosts (%s) to start on", ErrRefused, s.names())
	}
	at, err := s.Locate(ctx, r.VFs)
	if err != nil {
		return nil, err
	}
	var only []int
	for i := range s.urls {
		if _, ok := at[i]; ok {
			only = append(only, i)
		}
	}
	sts, errs := each(ctx, s, only, func(ctx context.Context, i int) (control.Status, error) {
		hr := r
		hr.VFs = at[i]
		return s.clients[i].Start(ctx, hr)
	})
	var failed []string
	var started []int
	for j, i := range only {
		if errs[j] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", Name(s.urls[i]), errs[j]))
		} else {
			started = append(started, j)
		}
	}
	if len(failed) > 0 {
		msg := strings.Join(failed, "; ")
		if len(started) > 0 {
			idx := make([]int, len(started))
			for n, j := range started {
				idx[n] = only[j]
			}
			_, serrs := each(context.WithoutCancel(ctx), s, idx, func(ctx context.Context, i int) (control.StopResult, error) { return s.clients[i].Stop(ctx) })
			for n, err := range serrs {
				if err != nil {
					msg += fmt.Sprintf("; and %s, which had started, could not be stopped: %v", Name(s.urls[idx[n]]), err)
				} else {
					msg += fmt.Sprintf("; %s, which had started, was stopped", Name(s.urls[idx[n]]))
				}
			}
		}
		return nil, errors.New(msg)
	}
	out := make([]Status, len(only))
	for j, i := range only {
		out[j] = Status{Host: s.urls[i], Status: &sts[j]}
	}
	return out, nil
}
