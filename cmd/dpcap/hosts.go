package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/hosts"
)

// hostsHelp is the help of the flags that address many dpcap serves.
const hostsHelp = `  --host URL          a dpcap serve on another host, https://NAME:PORT (its
                      --listen-tls); repeat for many hosts. The capture is
                      started where its ports are (each is looked up on every
                      host; one on no host or on two is refused and nothing is
                      started); status shows every host's capture. A host that
                      does not answer is named and makes the exit status 1
  --hosts FILE        the hosts, one URL a line (# comments)
  --cert FILE         the client certificate (PEM) for --host (default
                      $DPCAP_CERT), --key FILE its key ($DPCAP_KEY), --ca
                      FILE the authorities that signed the hosts' certificates
                      ($DPCAP_CA; default: the system's)
  --timeout D         how long each host has to answer (default 10s)
`

// hostFlags are the flags that address many dpcap serves instead of the
// local socket.
type hostFlags struct {
	urls                []string
	file, cert, key, ca string
	timeout             time.Duration
}

// addHostFlags adds --host, --hosts, --cert, --key, --ca and --timeout to fs.
func addHostFlags(fs *flag.FlagSet) *hostFlags {
	h := &hostFlags{}
	fs.Func("host", "", func(v string) error {
		u, err := hosts.ParseURL(v)
		h.urls = append(h.urls, u)
		return err
	})
	fs.StringVar(&h.file, "hosts", "", "")
	fs.StringVar(&h.cert, "cert", os.Getenv("DPCAP_CERT"), "")
	fs.StringVar(&h.key, "key", os.Getenv("DPCAP_KEY"), "")
	// dpcap capture's --ca (its sink's) is the hosts' too: it sets h.ca.
	h.ca = os.Getenv("DPCAP_CA")
	if fs.Lookup("ca") == nil {
		fs.StringVar(&h.ca, "ca", h.ca, "")
	}
	fs.DurationVar(&h.timeout, "timeout", 10*time.Second, "")
	return h
}

// set returns the hosts the flags name, nil when they name none (the
// local socket is used). Its errors are usage errors.
func (h *hostFlags) set(fs *flag.FlagSet) (*hosts.Set, error) {
	urls := h.urls
	if h.file != "" {
		f, err := os.Open(h.file)
		if err != nil {
			return nil, usageErr{fmt.Errorf("--hosts: %w", err)}
		}
		defer f.Close()
		more, err := hosts.ParseFile(f)
		if err != nil {
			return nil, usageErr{fmt.Errorf("--hosts %s: %w", h.file, err)}
		}
		if len(more) == 0 {
			return nil, usageErr{fmt.Errorf("--hosts %s lists no host", h.file)}
		}
		urls = append(urls, more...)
	}
	if len(urls) == 0 {
		return nil, nil
	}
	socket := false
	fs.Visit(func(f *flag.Flag) { socket = socket || f.Name == "socket" })
	if socket {
		return nil, usageErr{errors.New("give --socket or --host/--hosts, not both")}
	}
	if h.timeout <= 0 {
		return nil, usageErr{fmt.Errorf("invalid --timeout %v", h.timeout)}
	}
	cfg, err := control.ClientTLS(h.cert, h.key, h.ca)
	if err != nil {
		return nil, usageErr{err}
	}
	s, err := hosts.New(urls, cfg, h.timeout)
	if err != nil {
		return nil, usageErr{err}
	}
	return s, nil
}

// printHosts shows every host's status: one table with a HOST column, or
// a list (-o json, yaml). It returns an error naming the hosts that did
// not answer.
func printHosts(w io.Writer, sts []hosts.Status, format string) error {
	var err error
	switch format {
	case "json":
		var b []byte
		if b, err = json.MarshalIndent(sts, "", "  "); err == nil {
			_, err = fmt.Fprintln(w, string(b))
		}
	case "yaml":
		var b strings.Builder
		for _, st := range sts {
			var item strings.Builder
			yamlEntry(&item, "-", reflect.ValueOf(st), 0)
			b.WriteString("- " + strings.TrimPrefix(item.String(), "-\n  "))
		}
		_, err = io.WriteString(w, b.String())
	default:
		err = hostsTable(w, sts)
	}
	if err != nil {
		return err
	}
	var failed []string
	for _, st := range sts {
		if st.Error != "" {
			failed = append(failed, hosts.Name(st.Host))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("no answer from %s", strings.Join(failed, ", "))
	}
	return nil
}

func hostsTable(w io.Writer, sts []hosts.Status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCAPTURE\tID\tPORTS\tSINK\tTIME LEFT\tBACKEND")
	for _, h := range sts {
		st := h.Status
		switch {
		case st == nil:
			fmt.Fprintf(tw, "%s\tNO ANSWER\t-\t-\t-\t-\t-\n", esc(hosts.Name(h.Host)))
		case !st.Active:
			fmt.Fprintf(tw, "%s\tnot active\t-\t-\t-\t-\t%s\n", esc(hosts.Name(h.Host)), esc(st.Backend))
		default:
			var ports []string
			for _, p := range st.Ports {
				ports = append(ports, p.Name)
			}
			r := st.Request
			fmt.Fprintf(tw, "%s\tACTIVE\t%s\t%s\t[%s]:%d\t%s\t%s\n", esc(hosts.Name(h.Host)), dash(st.ID), list(ports),
				esc(r.SinkNodeIP), r.DstPort, dash(st.TimeLeft), esc(st.Backend))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, h := range sts {
		switch {
		case h.Error != "":
			fmt.Fprintf(w, "%s: %s\n", esc(hosts.Name(h.Host)), esc(h.Error))
		case h.Status.Problem != "":
			fmt.Fprintf(w, "%s: problem: %s\n", esc(hosts.Name(h.Host)), esc(h.Status.Problem))
		}
	}
	return nil
}

// stopHosts stops capture on every host, a line each.
func stopHosts(w io.Writer, s *hosts.Set) error {
	var failed []string
	for _, r := range s.Stop(context.Background()) {
		if r.Error != "" {
			failed = append(failed, hosts.Name(r.Host))
			fmt.Fprintf(w, "%s: %s\n", esc(hosts.Name(r.Host)), esc(r.Error))
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", esc(hosts.Name(r.Host)), esc(r.Result.Message))
	}
	if len(failed) > 0 {
		return fmt.Errorf("no answer from %s", strings.Join(failed, ", "))
	}
	return nil
}
