package hosts

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/testkit"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
		err        string
	}{
		{"comments and blanks", "# hypervisors\n\nhttps://hv-1:9312  # rack 1\n  https://[2001:db8::2]:9312/\n", []string{"https://hv-1:9312", "https://[2001:db8::2]:9312"}, ""},
		{"empty", "# none yet\n", nil, ""},
		{"not https", "https://hv-1:9312\nhttp://hv-2:9312\n", nil, `line 2: invalid host "http://hv-2:9312"`},
		{"no port", "https://hv-1\n", nil, `line 1: invalid host "https://hv-1"`},
		{"a path", "https://hv-1:9312/v1\n", nil, "line 1: invalid host"},
		{"a bare name", "hv-1:9312\n", nil, "line 1: invalid host"},
		{"two on a line", "https://hv-1:9312 https://hv-2:9312\n", nil, "line 1: invalid host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFile(strings.NewReader(tt.file))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err %v, want one line with %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := New([]string{"https://a:1", "https://a:1"}, nil, time.Second); err == nil {
		t.Error("a host given twice was taken")
	}
}

// ports is a backend that serves the ports it lists, and records what it
// applied.
type ports struct {
	names   []string
	applied []string
	refuse  string // a port Apply refuses
}

func (p *ports) Name() string { return "ports" }
func (p *ports) Check(_ context.Context, prog *flowprog.Program) error {
	for _, n := range prog.Config.Ports() {
		if !slices.Contains(p.names, n) {
			return control.ErrUnknownPort
		}
	}
	return nil
}
func (p *ports) Apply(_ context.Context, prog *flowprog.Program) error {
	if slices.Contains(prog.Config.Ports(), p.refuse) {
		return errors.New("the NIC refused " + p.refuse)
	}
	p.applied = prog.Config.Ports()
	return nil
}
func (p *ports) Clear() error                            { p.applied = nil; return nil }
func (p *ports) Counters() map[string]control.PortStatus { return nil }
func (p *ports) Ports(context.Context) ([]string, error) { return p.names, nil }

// serve runs a dpcap serve over b with mutual TLS on loopback, certificates
// by certs, and returns its URL.
func serve(t *testing.T, certs testkit.Certs, b control.Backend) string {
	t.Helper()
	cfg, err := control.ServerTLS(certs.Cert, certs.Key, certs.CA, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := control.ListenTLS("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := control.NewServer(context.Background(), b, control.Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Shutdown() })
	return "https://" + ln.Addr().String()
}

// twoHosts serves hv1 and hv2 and returns the set of both, their URLs and
// the configuration of a client their CA signed.
func twoHosts(t *testing.T, hv1, hv2 *ports) (*Set, []string, *tls.Config) {
	t.Helper()
	certs := testkit.NewCerts(t, "127.0.0.1")
	urls := []string{serve(t, certs, hv1), serve(t, certs, hv2)}
	cert, key := certs.ClientCert(t, "operator")
	cfg, err := control.ClientTLS(cert, key, certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	set, err := New(urls, cfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return set, urls, cfg
}

// TestStartWhereThePortsAre: a start goes to the hosts of its ports only;
// a port on no host or on two, or a host that does not answer, is refused
// in one line naming them, and nothing is started anywhere.
func TestStartWhereThePortsAre(t *testing.T) {
	hv1, hv2 := &ports{names: []string{"vm-1", "vm-both"}}, &ports{names: []string{"vm-2", "vm-3", "vm-both"}}
	set, urls, cfg := twoHosts(t, hv1, hv2)
	ctx := context.Background()
	req := control.StartRequest{SinkNodeIP: "2001:db8::1", DstPort: 3010, For: "1m"}

	for _, tt := range []struct {
		vfs  []string
		want string
	}{
		{[]string{"vm-9"}, "port vm-9 is on none of the hosts"},
		{[]string{"vm-2", "vm-both"}, "port vm-both is on " + Name(urls[0]) + " and " + Name(urls[1])},
	} {
		r := req
		r.VFs = tt.vfs
		_, err := set.Start(ctx, r)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("start %v: %v, want one line with %q", tt.vfs, err, tt.want)
		}
	}
	if hv1.applied != nil || hv2.applied != nil {
		t.Fatalf("a refused start applied %v and %v", hv1.applied, hv2.applied)
	}

	r := req
	r.VFs = []string{"vm-3", "vm-2"}
	sts, err := set.Start(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || sts[0].Host != urls[1] || !sts[0].Status.Active || !slices.Equal(hv2.applied, []string{"vm-3", "vm-2"}) || hv1.applied != nil {
		t.Errorf("started %+v; hv-1 applied %v, hv-2 %v", sts, hv1.applied, hv2.applied)
	}
	all := set.Status(ctx)
	if len(all) != 2 || all[0].Status.Active || !all[1].Status.Active || all[1].Status.ID != sts[0].Status.ID {
		t.Errorf("status %+v", all)
	}

	// A third host nothing listens on: named, in status and in a start.
	t.Run("dead host", func(t *testing.T) {
		deadSet, err := New(append(slices.Clone(urls), "https://127.0.0.1:1"), cfg, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st := deadSet.Status(ctx)
		if st[2].Error == "" || st[2].Status != nil || st[0].Status == nil {
			t.Errorf("status %+v", st)
		}
		r := req
		r.VFs = []string{"vm-1"}
		if _, err := deadSet.Start(ctx, r); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1: ") || hv1.applied != nil {
			t.Errorf("start with a dead host: %v; hv-1 applied %v", err, hv1.applied)
		}
	})
	stopped := set.Stop(ctx)
	if stopped[0].Result.Stopped || !stopped[1].Result.Stopped || hv2.applied != nil {
		t.Errorf("stop %+v", stopped)
	}
}

// TestStartAllOrNothing: when one host refuses its part of a start, the
// hosts that started stop again, and the error says so.
func TestStartAllOrNothing(t *testing.T) {
	hv1, hv2 := &ports{names: []string{"vm-1"}}, &ports{names: []string{"vm-2"}, refuse: "vm-2"}
	set, urls, _ := twoHosts(t, hv1, hv2)
	_, err := set.Start(context.Background(), control.StartRequest{SinkNodeIP: "2001:db8::1", DstPort: 3010, For: "1m", VFs: []string{"vm-1", "vm-2"}})
	want := Name(urls[1]) + ": start capture: the NIC refused vm-2 (nothing was changed); " + Name(urls[0]) + ", which had started, was stopped"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	for i, st := range set.Status(context.Background()) {
		if st.Status == nil || st.Status.Active {
			t.Errorf("host %d after the refused start: %+v", i, st)
		}
	}
	if hv1.applied != nil {
		t.Errorf("hv-1 still captures %v", hv1.applied)
	}
}

// TestHostsAnswerInParallel: hosts that accept a connection and never
// answer are each named once the timeout has passed, asked at once (both
// within one timeout, not two), and the host that answers is shown.
func TestHostsAnswerInParallel(t *testing.T) {
	var urls []string
	for range 2 {
		// The kernel completes the connections; nobody reads them.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		urls = append(urls, "https://"+ln.Addr().String())
	}
	_, live, cfg := twoHosts(t, &ports{}, &ports{})
	const timeout = 2 * time.Second
	all, err := New(append(urls, live[0]), cfg, timeout)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	sts := all.Status(context.Background())
	took := time.Since(begin)
	t.Logf("3 hosts, 2 silent, timeout %v: answered in %v", timeout, took)
	for i, u := range urls {
		if want := "no answer from " + u + " within 2s"; sts[i].Error != want || sts[i].Status != nil {
			t.Errorf("silent host %d: %+v, want %q", i, sts[i], want)
		}
	}
	if sts[2].Status == nil || sts[2].Error != "" {
		t.Errorf("the live host: %+v", sts[2])
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("took %v with a timeout of %v: the hosts were not asked at once", took, timeout)
	}
}

// TestOnly: the subset keeps the set's order, clients and timeout, and
// leaves out what the set does not hold.
func TestOnly(t *testing.T) {
	s, err := New([]string{"https://a:1", "https://b:1", "https://c:1"}, nil, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	o := s.Only([]string{"https://c:1", "https://a:1", "https://z:1"})
	if !slices.Equal(o.urls, []string{"https://a:1", "https://c:1"}) || o.clients[0] != s.clients[0] || o.clients[1] != s.clients[2] || o.timeout != s.timeout {
		t.Errorf("Only: urls %q, timeout %v", o.urls, o.timeout)
	}
}
